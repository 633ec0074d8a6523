//! The LoRa modem sources' keys (`type: rn2483`, `type: rak3172`) and their checks.

use std::path::Path;

use serde::Deserialize;

use crate::airtime::Region;

use super::{
    check_backoff, check_replay, FieldPath, ReopenConfig, ReplayConfig, Report, SourceKind,
};

/// A Microchip RN2483 (868 MHz) or RN2903 (915 MHz) on a UART, receiving LoRa
/// packets in raw radio (P2P) mode. Give `path` (the modem) or `replay` (a capture
/// of one's output), not both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rn2483Config {
    /// Device path of the modem's UART. Prefer `/dev/serial/by-id/...`.
    #[serde(default)]
    pub path: Option<String>,
    /// The modem talks 57600 8N1 unless its baud rate was changed.
    #[serde(default = "default_rn2483_baud")]
    pub baud: u32,
    /// Commands sent after `mac pause`, each answered `ok`: the radio settings.
    /// Default: LoRa, 868.1 MHz, SF7, 125 kHz, 4/5, sync word 0x12, CRC on, watchdog off.
    #[serde(default = "default_rn2483_setup")]
    pub setup: Vec<String>,
    /// Read the RSSI of each packet (`radio get rssi`, firmware 1.0.5 and later).
    #[serde(default = "default_true")]
    pub read_rssi: bool,
    /// Whose duty-cycle rules commands sent over the air keep to: `eu868` or
    /// `none`. Default: `eu868` when the set-up's frequency is in 863–870 MHz.
    #[serde(default)]
    pub duty_cycle: Option<Region>,
    /// A command unanswered this long means the modem hangs: it is reset and set up again.
    #[serde(default = "default_reply_timeout_ms")]
    pub reply_timeout_ms: u64,
    /// Back-off between reopening the port, and between re-initialising a silent modem.
    #[serde(default)]
    pub reopen: ReopenConfig,
    /// Play a capture of the modem's output instead of opening a port.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
}

/// A RAK3172 (RUI3 firmware) on a UART, receiving LoRa packets in P2P mode. Give
/// `path` (the module) or `replay` (a capture of its output), not both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rak3172Config {
    /// Device path of the module's UART. Prefer `/dev/serial/by-id/...`.
    #[serde(default)]
    pub path: Option<String>,
    /// RUI3 talks 115200 8N1 unless its baud rate was changed.
    #[serde(default = "default_rak3172_baud")]
    pub baud: u32,
    /// The radio settings sent with `AT+P2P=...`.
    #[serde(default)]
    pub p2p: P2pConfig,
    /// Whose duty-cycle rules commands sent over the air keep to: `eu868` or
    /// `none`. Default: `eu868` when `p2p.frequency_hz` is in 863–870 MHz.
    #[serde(default)]
    pub duty_cycle: Option<Region>,
    /// A command unanswered this long means the module hangs: it is restarted (`ATZ`).
    #[serde(default = "default_reply_timeout_ms")]
    pub reply_timeout_ms: u64,
    /// Time the module takes to boot after `ATZ`.
    #[serde(default = "default_reset_wait_ms")]
    pub reset_wait_ms: u64,
    /// Back-off between reopening the port, and between restarting a silent module.
    #[serde(default)]
    pub reopen: ReopenConfig,
    /// Play a capture of the module's output instead of opening a port.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
}

/// `AT+P2P=<frequency_hz>:<spreading_factor>:<bandwidth_khz>:<coding_rate>:<preamble>:<tx_power>`;
/// RUI3's defaults are 868000000, 7, 125, 0 (4/5), 8 and 14. The keys are the
/// settings the source sends, read as they are.
pub(super) type P2pConfig = crate::source::modem::rak3172::P2pParams;

const fn default_rn2483_baud() -> u32 {
    57_600
}

const fn default_rak3172_baud() -> u32 {
    115_200
}

fn default_rn2483_setup() -> Vec<String> {
    crate::source::modem::rn2483::DEFAULT_SETUP
        .iter()
        .map(|s| s.to_string())
        .collect()
}

const fn default_true() -> bool {
    true
}

const fn default_reply_timeout_ms() -> u64 {
    2_000
}

const fn default_reset_wait_ms() -> u64 {
    2_000
}

/// The keys every modem source has, borrowed for their common checks.
struct ModemKeys<'a> {
    path: &'a Option<String>,
    replay: &'a mut Option<ReplayConfig>,
    baud: u32,
    reopen: &'a ReopenConfig,
    reply_timeout_ms: u64,
}

/// Borrows a modem config's [`ModemKeys`].
macro_rules! modem_keys {
    ($config:expr) => {
        ModemKeys {
            path: &$config.path,
            replay: &mut $config.replay,
            baud: $config.baud,
            reopen: &$config.reopen,
            reply_timeout_ms: $config.reply_timeout_ms,
        }
    };
}

impl ModemKeys<'_> {
    /// A modem source reads a port (`path`) or a capture (`replay`): exactly one. A
    /// replay that does not check out is dropped.
    fn check(self, at: &FieldPath, dir: &Path, report: &mut Report<'_>) {
        let replay = self.replay.take();
        match (self.path, &replay) {
            (Some(_), Some(_)) => {
                report.add(&at.key("replay"), "give `path` or `replay`, not both")
            }
            (None, None) => report.add(at, "missing field `path` (the modem's serial device)"),
            (Some(p), None) if p.trim().is_empty() => {
                report.add(&at.key("path"), "must name a serial device")
            }
            _ => {}
        }
        if self.baud == 0 {
            report.add(&at.key("baud"), "must be at least 1");
        }
        check_backoff(self.reopen, &at.key("reopen"), report);
        if let Some(replay) = replay {
            if let SourceKind::Replay(r) = check_replay(replay, &at.key("replay"), dir, report) {
                *self.replay = Some(r);
            }
        }
        if self.reply_timeout_ms == 0 {
            report.add(&at.key("reply_timeout_ms"), "must be at least 1");
        }
    }
}

pub(super) fn check_rn2483(
    mut config: Rn2483Config,
    at: &FieldPath,
    dir: &Path,
    report: &mut Report<'_>,
) -> SourceKind {
    modem_keys!(config).check(at, dir, report);
    for (i, command) in config.setup.iter().enumerate() {
        if command.trim().is_empty() || command.contains(['\r', '\n']) {
            report.add(
                &at.key("setup").index(i),
                "must be one non-empty command line, e.g. `radio set sf sf9`",
            );
        }
    }
    SourceKind::Rn2483(config)
}

pub(super) fn check_rak3172(
    mut config: Rak3172Config,
    at: &FieldPath,
    dir: &Path,
    report: &mut Report<'_>,
) -> SourceKind {
    modem_keys!(config).check(at, dir, report);
    let p = config.p2p;
    let p2p = at.key("p2p");
    let checks = [
        (
            (150_000_000..=960_000_000).contains(&p.frequency_hz),
            "frequency_hz",
            "150000000 to 960000000",
            p.frequency_hz,
        ),
        (
            (5..=12).contains(&p.spreading_factor),
            "spreading_factor",
            "5 to 12",
            u32::from(p.spreading_factor),
        ),
        (
            matches!(p.bandwidth_khz, 125 | 250 | 500),
            "bandwidth_khz",
            "125, 250 or 500",
            u32::from(p.bandwidth_khz),
        ),
        (
            p.coding_rate <= 3,
            "coding_rate",
            "0 (4/5), 1 (4/6), 2 (4/7) or 3 (4/8)",
            u32::from(p.coding_rate),
        ),
        (
            p.preamble >= 2,
            "preamble",
            "2 to 65535",
            u32::from(p.preamble),
        ),
        (
            (5..=22).contains(&p.tx_power),
            "tx_power",
            "5 to 22",
            u32::from(p.tx_power),
        ),
    ];
    for (ok, field, allowed, got) in checks {
        if !ok {
            report.add(&p2p.key(field), format!("must be {allowed}, got {got}"));
        }
    }
    SourceKind::Rak3172(config)
}
