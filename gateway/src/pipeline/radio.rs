//! Starting a LoRa modem source: its protocol from the configuration, on its serial
//! port (taking commands through its device side) or on a capture of its output.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{build, ReplayOverride};
use crate::airtime::Region;
use crate::config::{ReopenConfig, ReplayConfig, SourceConfig, SourceKind};
use crate::source::modem::engine::{self, Sink};
use crate::source::modem::rak3172::{self, Rak3172, Rak3172Settings};
use crate::source::modem::rn2483::{self, Rn2483, Rn2483Settings};
use crate::source::modem::transmit::{Radio, Transmitter};
use crate::source::modem::Protocol;
use crate::source::serial::SerialSettings;
use crate::source::DeviceSide;

/// Spawn the task of a modem source (`rn2483` or `rak3172`); `over` replaces its
/// input with a capture (`mqgate replay`). A live modem takes commands through
/// `device`.
pub(super) fn spawn(
    source: &SourceConfig,
    over: Option<&ReplayOverride>,
    sink: Sink,
    device: DeviceSide,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    match &source.kind {
        SourceKind::Rn2483(m) => {
            let port = m.path.as_deref().map(Arc::from);
            let settings = Rn2483Settings {
                setup: m.setup.clone(),
                read_rssi: m.read_rssi,
                reply_timeout: Duration::from_millis(m.reply_timeout_ms),
                reinit_initial: Duration::from_millis(m.reopen.initial_ms),
                reinit_max: Duration::from_millis(m.reopen.max_ms),
                port: port.clone(),
            };
            let lora = rn2483::lora_settings(&m.setup);
            let radio = Radio {
                region: m.duty_cycle.unwrap_or_else(|| match &lora {
                    Ok((hz, _)) => Radio::default_region(*hz),
                    Err(_) => Region::Eu868,
                }),
                settings: lora,
                max_payload: rn2483::MAX_TX_PAYLOAD,
            };
            let tx = Transmitter::new(&source.id, device, radio);
            let input = Input::new(m.path.as_deref(), m.baud, &m.reopen, &m.replay, over)?;
            input.spawn(Rn2483::new(settings), sink, tx, shutdown);
        }
        SourceKind::Rak3172(m) => {
            let settings = Rak3172Settings {
                p2p: m.p2p,
                reply_timeout: Duration::from_millis(m.reply_timeout_ms),
                reset_wait: Duration::from_millis(m.reset_wait_ms),
                reinit_initial: Duration::from_millis(m.reopen.initial_ms),
                reinit_max: Duration::from_millis(m.reopen.max_ms),
                port: m.path.as_deref().map(Arc::from),
            };
            let hz = u64::from(m.p2p.frequency_hz);
            let radio = Radio {
                settings: m.p2p.lora().map(|lora| (hz, lora)),
                region: m.duty_cycle.unwrap_or_else(|| Radio::default_region(hz)),
                max_payload: rak3172::MAX_TX_PAYLOAD,
            };
            let tx = Transmitter::new(&source.id, device, radio);
            let input = Input::new(m.path.as_deref(), m.baud, &m.reopen, &m.replay, over)?;
            input.spawn(Rak3172::new(settings), sink, tx, shutdown);
        }
        other => anyhow::bail!(
            "source {}: `{}` is not a modem source",
            source.id,
            other.type_name()
        ),
    }
    Ok(())
}

/// What a modem source reads.
enum Input {
    Port(SerialSettings),
    Capture(
        Arc<[crate::source::replay::Chunk]>,
        crate::source::replay::Speed,
        bool,
    ),
}

impl Input {
    fn new(
        path: Option<&str>,
        baud: u32,
        reopen: &ReopenConfig,
        replay: &Option<ReplayConfig>,
        over: Option<&ReplayOverride>,
    ) -> anyhow::Result<Input> {
        if let Some(over) = over {
            return Ok(Input::Capture(over.chunks.clone(), over.speed, false));
        }
        if let Some(r) = replay {
            let chunks = build::load_chunks(&r.file)?;
            return Ok(Input::Capture(chunks, r.playback(), r.looping));
        }
        let path =
            path.ok_or_else(|| anyhow::anyhow!("a modem source needs `path` or `replay`"))?;
        // The modems speak 8N1 without flow control.
        let mut settings = SerialSettings::new(path, baud);
        settings.reopen_initial = Duration::from_millis(reopen.initial_ms);
        settings.reopen_max = Duration::from_millis(reopen.max_ms);
        Ok(Input::Port(settings))
    }

    fn spawn<P: Protocol + 'static>(
        self,
        protocol: P,
        sink: Sink,
        tx: Transmitter,
        shutdown: watch::Receiver<bool>,
    ) {
        match self {
            Input::Port(port) => {
                tokio::spawn(engine::run_serial(port, protocol, sink, tx, shutdown));
            }
            Input::Capture(chunks, speed, looping) => {
                tokio::spawn(engine::run_replay(
                    chunks, speed, looping, protocol, sink, shutdown,
                ));
            }
        }
    }
}
