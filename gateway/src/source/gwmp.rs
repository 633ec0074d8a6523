//! The Semtech UDP packet forwarder protocol (GWMP, versions 1 and 2), as LoRa
//! gateways speak it to a network server: PUSH_DATA carries received packets
//! (`rxpk`) and gateway status (`stat`) as JSON and is answered with PUSH_ACK;
//! PULL_DATA keeps the downlink path open and is answered with PULL_ACK. mqgate
//! sends no downlinks: PULL_RESP is never sent, TX_ACK is counted.
//!
//! Each `rxpk` becomes a frame whose bytes are the radio payload and whose meta
//! holds rssi, snr, frequency, data rate, timestamp, CRC status and the gateway
//! EUI. Packets whose CRC failed are counted as bad, not mapped. Each `stat`
//! becomes a frame with meta `gwmp: stat` whose bytes are the status as JSON.
//!
//! Reference: Semtech's packet_forwarder PROTOCOL.TXT (sections 3 to 6).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::status::{SourceState, SourceStatus};
use crate::frame::{Frame, Meta};

const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;

/// Largest datagram read (the protocol's JSON stays well below).
const MAX_DATAGRAM: usize = 65_535;

/// One datagram from a gateway, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    pub version: u8,
    pub token: u16,
    pub kind: Kind,
    /// The gateway's EUI, lower-case hex.
    pub gateway_eui: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    PushData(Map<String, Value>),
    PullData,
    /// The gateway's answer to a downlink; mqgate sends none, so it is only counted.
    TxAck,
}

/// Why a datagram was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GwmpError {
    #[error("{0} bytes is too short for a GWMP header")]
    Short(usize),
    #[error("protocol version {0} (mqgate speaks 1 and 2)")]
    Version(u8),
    #[error("unknown identifier 0x{0:02x}")]
    Identifier(u8),
    #[error("PUSH_DATA body is not a JSON object: {0}")]
    Json(String),
}

/// Parse one datagram.
pub fn parse(d: &[u8]) -> Result<Datagram, GwmpError> {
    if d.len() < 4 {
        return Err(GwmpError::Short(d.len()));
    }
    let version = d[0];
    if !(1..=2).contains(&version) {
        return Err(GwmpError::Version(version));
    }
    let token = u16::from_be_bytes([d[1], d[2]]);
    let identifier = d[3];
    let eui = |d: &[u8]| -> Result<String, GwmpError> {
        let eui = d.get(4..12).ok_or(GwmpError::Short(d.len()))?;
        Ok(eui.iter().map(|b| format!("{b:02x}")).collect())
    };
    let kind = match identifier {
        PUSH_DATA => {
            let body = &d[12.min(d.len())..];
            let gateway_eui = eui(d)?;
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => {
                    return Ok(Datagram {
                        version,
                        token,
                        kind: Kind::PushData(o),
                        gateway_eui,
                    })
                }
                Ok(other) => return Err(GwmpError::Json(format!("got {other}"))),
                Err(e) => return Err(GwmpError::Json(e.to_string())),
            }
        }
        PULL_DATA => Kind::PullData,
        TX_ACK => Kind::TxAck,
        other => return Err(GwmpError::Identifier(other)),
    };
    Ok(Datagram {
        version,
        token,
        kind,
        gateway_eui: eui(d)?,
    })
}

/// The acknowledgement a datagram gets: PUSH_ACK or PULL_ACK with its token.
pub fn ack(d: &Datagram) -> Option<[u8; 4]> {
    let [hi, lo] = d.token.to_be_bytes();
    match d.kind {
        Kind::PushData(_) => Some([d.version, hi, lo, PUSH_ACK]),
        Kind::PullData => Some([d.version, hi, lo, PULL_ACK]),
        Kind::TxAck => None,
    }
}

/// What one PUSH_DATA holds.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    /// Radio packets with a good CRC (or none), as bytes and meta.
    pub packets: Vec<(Bytes, Meta)>,
    /// Gateway status reports, as JSON text.
    pub stats: Vec<(Bytes, Meta)>,
    /// Packets whose CRC failed, or that could not be read; with the reason.
    pub bad: Vec<String>,
}

/// The frames of a PUSH_DATA body.
pub fn frames(gateway_eui: &str, body: &Map<String, Value>) -> Received {
    let mut out = Received::default();
    if let Some(rxpk) = body.get("rxpk") {
        match rxpk.as_array() {
            Some(list) => {
                for p in list {
                    match packet(gateway_eui, p) {
                        Ok(Some(frame)) => out.packets.push(frame),
                        Ok(None) => out.bad.push("CRC failed".into()),
                        Err(why) => out.bad.push(why),
                    }
                }
            }
            None => out.bad.push("`rxpk` is not an array".into()),
        }
    }
    if let Some(stat) = body.get("stat") {
        let mut meta = Meta::default();
        meta.extra.insert("gwmp".into(), "stat".into());
        meta.extra
            .insert("gateway_eui".into(), gateway_eui.to_string());
        let mut status = Map::new();
        status.insert("gateway_eui".into(), Value::from(gateway_eui));
        match stat.as_object() {
            Some(o) => status.extend(o.clone()),
            None => {
                status.insert("stat".into(), stat.clone());
            }
        }
        out.stats
            .push((Bytes::from(Value::Object(status).to_string()), meta));
    }
    out
}

/// One `rxpk` as a frame; `Ok(None)` when its CRC failed.
fn packet(gateway_eui: &str, p: &Value) -> Result<Option<(Bytes, Meta)>, String> {
    let o = p.as_object().ok_or("an rxpk entry is not an object")?;
    let stat = o.get("stat").and_then(Value::as_i64).unwrap_or(1);
    if stat == -1 {
        return Ok(None);
    }
    let data = o
        .get("data")
        .and_then(Value::as_str)
        .ok_or("an rxpk entry has no `data`")?;
    let bytes = lenient_base64(data).map_err(|e| format!("rxpk data {data:?}: {e}"))?;
    if let Some(size) = o.get("size").and_then(Value::as_u64) {
        if size != bytes.len() as u64 {
            return Err(format!(
                "rxpk data decodes to {} bytes, its size says {size}",
                bytes.len()
            ));
        }
    }
    // Version 2 (and Kerlink's `jver: 2`) puts signal figures per antenna in `rsig`.
    let first_antenna = o
        .get("rsig")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object);
    let figure = |key: &str, v2_key: &str| {
        o.get(key).and_then(Value::as_f64).or_else(|| {
            first_antenna
                .and_then(|a| a.get(v2_key))
                .and_then(Value::as_f64)
        })
    };
    let mut extra = BTreeMap::new();
    extra.insert("gwmp".to_string(), "rxpk".to_string());
    extra.insert("gateway_eui".to_string(), gateway_eui.to_string());
    extra.insert(
        "crc".to_string(),
        if stat == 1 { "ok" } else { "none" }.to_string(),
    );
    for key in ["tmst", "time", "tmms", "chan", "rfch", "codr", "modu"] {
        if let Some(v) = o.get(key) {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            extra.insert(key.to_string(), text);
        }
    }
    let meta = Meta {
        rssi: figure("rssi", "rssic"),
        snr: figure("lsnr", "lsnr"),
        frequency_hz: o
            .get("freq")
            .and_then(Value::as_f64)
            .map(|mhz| (mhz * 1e6).round() as u64),
        datarate: o.get("datr").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        port: None,
        extra,
    };
    Ok(Some((Bytes::from(bytes), meta)))
}

/// Base64 as gateways send it: the standard or URL-safe alphabet (even mixed),
/// padded or not, spaces ignored.
pub fn lenient_base64(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(cleaned).map_err(|e| e.to_string())
}

/// The source's socket; a failure names the address (the gateway does not start).
pub async fn bind(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on UDP {listen}: {e}")))
}

/// Receive datagrams until shutdown; acknowledge each, send the frames on.
pub async fn run(
    socket: UdpSocket,
    source: Arc<str>,
    tx: mpsc::Sender<Frame>,
    status: Arc<SourceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(local) = socket.local_addr() {
        info!(source = %source, "listening for packet forwarders on UDP {local}");
    }
    status.set_state(SourceState::Connected {
        since: SystemTime::now(),
    });
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Whoever can reach the port can send garbage: one line a minute about it.
    let not_understood = log_limit::LogLimit::default();
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(source = %source, "UDP receive: {e}");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        SourceStatus::add(&status.bytes, n as u64);
        let datagram = match parse(&buf[..n]) {
            Ok(d) => d,
            Err(e) => {
                status.bad_frame(format!("datagram not understood: {e}"), n, &buf[..n]);
                if let Some(skipped) = not_understood.check() {
                    warn!(
                        source = %source,
                        %peer,
                        "GWMP datagram not understood: {e}{}",
                        log_limit::suppressed(skipped)
                    );
                }
                continue;
            }
        };
        if let Some(ack) = ack(&datagram) {
            if let Err(e) = socket.send_to(&ack, peer).await {
                debug!(source = %source, %peer, "cannot acknowledge: {e}");
            }
        }
        let Kind::PushData(body) = &datagram.kind else {
            continue;
        };
        let received = frames(&datagram.gateway_eui, body);
        for why in &received.bad {
            debug!(source = %source, gateway = %datagram.gateway_eui, "bad packet: {why}");
            status.bad_frame(
                format!("packet from gateway {}: {why}", datagram.gateway_eui),
                0,
                &[],
            );
        }
        let received_at = SystemTime::now();
        for (bytes, meta) in received.packets.into_iter().chain(received.stats) {
            SourceStatus::add(&status.frames, 1);
            let frame = Frame {
                source: source.clone(),
                received_at,
                bytes,
                meta,
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    }
    status.set_state(SourceState::Finished);
}

#[cfg(test)]
#[path = "gwmp_tests.rs"]
mod tests;
