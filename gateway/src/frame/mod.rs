//! Frames and framers. A framer is pure and synchronous: bytes in, split anywhere,
//! frames out; no I/O. A bad frame is reported as an event, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// One unit of data from a source: a line, a packet, a radio message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The id of the source it came from (as configured).
    pub source: Arc<str>,
    pub received_at: SystemTime,
    pub bytes: Bytes,
    pub meta: Meta,
}

/// What the transport knows about a frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// Received signal strength, dBm.
    pub rssi: Option<f64>,
    /// Signal-to-noise ratio, dB.
    pub snr: Option<f64>,
    /// Radio frequency, Hz.
    pub frequency_hz: Option<u64>,
    /// Data rate as the radio names it, e.g. `SF7BW125`.
    pub datarate: Option<String>,
    /// Port the frame came from (serial path, UDP peer...).
    pub port: Option<String>,
    /// Anything else, by name.
    pub extra: BTreeMap<String, String>,
}
