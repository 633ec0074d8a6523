//! The `sources:` list. Each item has an `id`, a `type` that picks the kind of
//! source, the keys of that kind, and a `framing:` block.
//!
//! Adding a kind of source: a variant in [`SourceKind`], its config struct, and one
//! arm in `SourceKind::read` and in `SourceKind::type_name`.

use super::paths;
use std::path::{Path, PathBuf};

use config_report::{FieldPath, Report};
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::{Mapping, Value};

use super::qos::Number;
use super::store::Durability;

use super::yaml::kind_of;
use crate::frame::FramingConfig;
pub(crate) use modbus::Profiles;
pub use modbus::{ModbusBus, ModbusSource, Polling};
use modem::{check_rak3172, check_rn2483};
pub(super) use modem::{Rak3172Config, Rn2483Config};
pub use mqtt::{MqttBroker, MqttSource, OtherEvents, PayloadFormat};
pub use poll::PollConfig;

mod modbus;
mod modem;
mod mqtt;
mod poll;

/// One configured source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique among the sources; letters, digits, `_` and `-` (it goes into topics).
    pub id: String,
    pub kind: SourceKind,
    /// How its bytes are cut into frames; `type: lines` when left out.
    pub framing: FramingConfig,
    /// When its messages reach the store file; `store.durability` when left out.
    pub durability: Option<Durability>,
}

/// What a source reads from, chosen by its `type` key.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// `type: serial`: a serial port.
    Serial(SerialConfig),
    /// `type: replay`: a recorded capture file.
    Replay(ReplayConfig),
    /// `type: semtech_udp`: LoRa gateways' packet forwarders (GWMP over UDP).
    SemtechUdp(SemtechUdpConfig),
    /// `type: rn2483`: a Microchip RN2483 / RN2903 LoRa modem in raw radio mode.
    Rn2483(Rn2483Config),
    /// `type: rak3172`: a RAK3172 LoRa module (RUI3 firmware) in P2P mode.
    Rak3172(Rak3172Config),
    /// `type: modbus_rtu` / `type: modbus_tcp`: Modbus devices polled on a bus.
    Modbus(ModbusSource),
    /// `type: mqtt`: the messages of topic filters on a broker.
    Mqtt(MqttSource),
}

/// A UDP port LoRa gateways' Semtech packet forwarders send to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemtechUdpConfig {
    /// Default `127.0.0.1:1700` (a forwarder on the same machine); `0.0.0.0:1700`
    /// takes gateways on the network.
    #[serde(default = "default_gwmp_listen")]
    pub listen: std::net::SocketAddr,
    /// The gateway (EUI, 16 hex digits) that sends downlinks when a command's
    /// script names none; left out, the gateway of the latest uplink.
    #[serde(default)]
    pub gateway_eui: Option<String>,
    /// The forwarders' `keepalive_interval`: a gateway whose last PULL_DATA is
    /// older than three of these is gone, and takes no downlinks.
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// How long a version 2 gateway has to answer a downlink with TX_ACK.
    #[serde(default = "default_tx_ack_timeout_ms")]
    pub tx_ack_timeout_ms: u64,
    /// Whose rules apply to downlinks: default settings and duty-cycle limits.
    /// `eu868` (the default) or `none`.
    #[serde(default = "default_region")]
    pub region: crate::airtime::Region,
}

fn default_gwmp_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 1700))
}

/// The shipped forwarder configurations send PULL_DATA every 10 s (the
/// forwarder's own built-in default is 5 s, which this covers too).
const fn default_keepalive_secs() -> u64 {
    10
}

const fn default_tx_ack_timeout_ms() -> u64 {
    2000
}

const fn default_region() -> crate::airtime::Region {
    crate::airtime::Region::Eu868
}

/// A serial port: 8N1 at 9600 baud with no flow control unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path. Prefer `/dev/serial/by-id/...`: it survives replugging.
    pub path: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// 5, 6, 7 or 8.
    #[serde(default)]
    pub data_bits: DataBits,
    /// `none`, `odd` or `even`.
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default)]
    pub stop_bits: StopBits,
    /// `none`, `software` (XON/XOFF) or `hardware` (RTS/CTS).
    #[serde(default)]
    pub flow_control: FlowControl,
    /// Back-off between attempts to reopen the port after it went away.
    #[serde(default)]
    pub reopen: ReopenConfig,
    /// Queries written to an instrument that answers only when asked.
    #[serde(default)]
    pub poll: Vec<PollConfig>,
}

const fn default_baud() -> u32 {
    9600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataBits {
    Five,
    Six,
    Seven,
    #[default]
    Eight,
}

impl<'de> Deserialize<'de> for DataBits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(Number {
            expected: "data bits 5, 6, 7 or 8",
            pick: |bits| match bits {
                5 => Some(DataBits::Five),
                6 => Some(DataBits::Six),
                7 => Some(DataBits::Seven),
                8 => Some(DataBits::Eight),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopBits {
    #[default]
    One,
    Two,
}

impl<'de> Deserialize<'de> for StopBits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_u64(Number {
            expected: "stop bits 1 or 2",
            pick: |bits| match bits {
                1 => Some(StopBits::One),
                2 => Some(StopBits::Two),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    #[default]
    None,
    Software,
    Hardware,
}

impl From<DataBits> for tokio_serial::DataBits {
    fn from(bits: DataBits) -> Self {
        match bits {
            DataBits::Five => tokio_serial::DataBits::Five,
            DataBits::Six => tokio_serial::DataBits::Six,
            DataBits::Seven => tokio_serial::DataBits::Seven,
            DataBits::Eight => tokio_serial::DataBits::Eight,
        }
    }
}

impl From<Parity> for tokio_serial::Parity {
    fn from(parity: Parity) -> Self {
        match parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Odd => tokio_serial::Parity::Odd,
            Parity::Even => tokio_serial::Parity::Even,
        }
    }
}

impl From<StopBits> for tokio_serial::StopBits {
    fn from(bits: StopBits) -> Self {
        match bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        }
    }
}

impl From<FlowControl> for tokio_serial::FlowControl {
    fn from(flow: FlowControl) -> Self {
        match flow {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Software => tokio_serial::FlowControl::Software,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        }
    }
}

/// A back-off (a source's `reopen:`, the upstream's `reconnect:`): the first wait,
/// doubled (with jitter) up to the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReopenConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for ReopenConfig {
    fn default() -> Self {
        ReopenConfig {
            initial_ms: 500,
            max_ms: 30_000,
        }
    }
}

/// A capture file played as if it came from a device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The capture; a relative path is resolved against the gateway file's folder.
    pub file: PathBuf,
    /// Playback speed: 1.0 is the recorded timing, 2.0 twice as fast. Default 1.0.
    #[serde(default)]
    pub speed: Option<f64>,
    /// `true`: as fast as possible (not with `speed`).
    #[serde(default)]
    pub fast: bool,
    /// Start again at the end, forever.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Where commands to this source go: a file they are appended to (through the
    /// source's framing, as a device would get them; resolved against the gateway
    /// file's folder), or `discard`. Default `discard`.
    #[serde(default)]
    pub commands_to: Option<PathBuf>,
}

impl ReplayConfig {
    /// The playback speed for the replay source.
    pub fn playback(&self) -> crate::source::replay::Speed {
        match (self.fast, self.speed) {
            (true, _) => crate::source::replay::Speed::Fast,
            (false, speed) => crate::source::replay::Speed::Times(speed.unwrap_or(1.0)),
        }
    }
}

impl SourceKind {
    /// The `type` values, for error messages.
    pub const TYPES: &'static [&'static str] = &[
        "serial",
        "replay",
        "semtech_udp",
        "rn2483",
        "rak3172",
        "modbus_rtu",
        "modbus_tcp",
        "mqtt",
    ];

    /// The `type` this kind is written as.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Serial(_) => "serial",
            SourceKind::Replay(_) => "replay",
            SourceKind::SemtechUdp(_) => "semtech_udp",
            SourceKind::Rn2483(_) => "rn2483",
            SourceKind::Rak3172(_) => "rak3172",
            SourceKind::Modbus(m) => match m.bus {
                ModbusBus::Rtu(_) => "modbus_rtu",
                ModbusBus::Tcp { .. } => "modbus_tcp",
            },
            SourceKind::Mqtt(_) => "mqtt",
        }
    }

    /// Reads the keys of a source of type `kind` (`body` is the item without `id`,
    /// `type` and `framing`), and checks them. `Err(())` means an unknown type.
    fn read(
        kind: &str,
        body: &Value,
        at: &FieldPath,
        dir: &Path,
        profiles: &mut Profiles,
        report: &mut Report<'_>,
    ) -> Result<Option<SourceKind>, ()> {
        Ok(match kind {
            "serial" => report.piece(at, body).map(|c| check_serial(c, at, report)),
            "replay" => report
                .piece(at, body)
                .map(|c| check_replay(c, at, dir, report)),
            "semtech_udp" => report.piece(at, body).map(|c| check_semtech(c, at, report)),
            "rn2483" => report
                .piece(at, body)
                .map(|c| check_rn2483(c, at, dir, report)),
            "rak3172" => report
                .piece(at, body)
                .map(|c| check_rak3172(c, at, dir, report)),
            "modbus_rtu" => modbus::read_rtu(body, at, profiles, report),
            "modbus_tcp" => modbus::read_tcp(body, at, profiles, report),
            "mqtt" => mqtt::read(body, at, dir, report),
            _ => return Err(()),
        })
    }
}

fn check_serial(mut config: SerialConfig, at: &FieldPath, report: &mut Report<'_>) -> SourceKind {
    if config.path.trim().is_empty() {
        report.add(&at.key("path"), "must name a serial device");
    }
    if config.baud == 0 {
        report.add(&at.key("baud"), "must be at least 1");
    }
    check_backoff(&config.reopen, &at.key("reopen"), report);
    poll::check_polls(&mut config.poll, &at.key("poll"), report);
    SourceKind::Serial(config)
}

fn check_semtech(
    mut config: SemtechUdpConfig,
    at: &FieldPath,
    report: &mut Report<'_>,
) -> SourceKind {
    if let Some(eui) = &config.gateway_eui {
        match crate::source::gwmp::parse_eui(eui) {
            Ok(eui) => config.gateway_eui = Some(eui),
            Err(why) => report.add(&at.key("gateway_eui"), why),
        }
    }
    if config.keepalive_secs == 0 {
        report.add(&at.key("keepalive_secs"), "must be at least 1");
    }
    if !(1..=60_000).contains(&config.tx_ack_timeout_ms) {
        report.add(&at.key("tx_ack_timeout_ms"), "must be 1 to 60000");
    }
    SourceKind::SemtechUdp(config)
}

/// A back-off (`reopen:` of a source, `reconnect:` upstream) that cannot loop busily.
pub(super) fn check_backoff(backoff: &ReopenConfig, at: &FieldPath, report: &mut Report<'_>) {
    if backoff.initial_ms == 0 {
        report.add(
            &at.key("initial_ms"),
            "must be at least 1 (no busy retry loop)",
        );
    }
    if backoff.max_ms < backoff.initial_ms {
        report.add(
            &at.key("max_ms"),
            format!(
                "must be at least initial_ms ({}), got {}",
                backoff.initial_ms, backoff.max_ms
            ),
        );
    }
}

fn check_replay(
    mut config: ReplayConfig,
    at: &FieldPath,
    dir: &Path,
    report: &mut Report<'_>,
) -> SourceKind {
    config.file = paths::join(dir, &config.file);
    config.commands_to = config
        .commands_to
        .take()
        .filter(|p| p.as_os_str() != "discard")
        .map(|p| paths::join(dir, &p));
    if !config.file.is_file() {
        report.add(
            &at.key("file"),
            format!("capture file {} does not exist", config.file.display()),
        );
    }
    if let Some(speed) = config.speed {
        if !(speed.is_finite() && speed > 0.0) {
            report.add(
                &at.key("speed"),
                format!("must be a number above 0, got {speed}"),
            );
        }
        if config.fast {
            report.add(
                &at.key("fast"),
                "set either `speed` or `fast: true`, not both",
            );
        }
    }
    SourceKind::Replay(config)
}

/// Whether `id` is usable as a source id (and in a topic level).
pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads `sources[i]`; problems go to `report`. `None` when it is unusable.
pub(crate) fn read(
    item: &Value,
    at: &FieldPath,
    dir: &Path,
    profiles: &mut Profiles,
    report: &mut Report<'_>,
) -> Option<SourceConfig> {
    let Value::Mapping(map) = item else {
        report.add(
            at,
            format!(
                "a source must be a mapping with `id` and `type`, got {}",
                kind_of(item)
            ),
        );
        return None;
    };
    let id = match map.get("id") {
        None => {
            report.add(at, "missing field `id`");
            None
        }
        Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(Value::String(id)) => {
            report.add(
                &at.key("id"),
                format!("{id:?} is not a valid source id: use letters, digits, `_` and `-`"),
            );
            None
        }
        Some(other) => {
            report.add(
                &at.key("id"),
                format!("expected a string, got {}", kind_of(other)),
            );
            None
        }
    };
    let framing = match map.get("framing") {
        None => Some(FramingConfig::default()),
        Some(value) => {
            let path = at.key("framing");
            let framing: Option<FramingConfig> = report.piece(&path, value);
            if let Some(framing) = &framing {
                for (field, message) in framing.validate() {
                    report.add(&path.join_str(&field), message);
                }
            }
            framing
        }
    };
    let durability = match map.get("durability") {
        None => Some(None),
        Some(value) => report
            .piece::<Durability>(&at.key("durability"), value)
            .map(Some),
    };
    let types = SourceKind::TYPES.join(", ");
    let kind = match map.get("type") {
        None => {
            report.add(at, format!("missing field `type` (one of {types})"));
            None
        }
        Some(Value::String(kind)) => {
            let body: Mapping = map
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), Some("id" | "type" | "framing" | "durability"))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match SourceKind::read(kind, &Value::Mapping(body), at, dir, profiles, report) {
                Ok(kind) => kind,
                Err(()) => {
                    report.add(
                        &at.key("type"),
                        format!("unknown source type `{kind}`, expected one of {types}"),
                    );
                    None
                }
            }
        }
        Some(other) => {
            report.add(
                &at.key("type"),
                format!("expected one of {types}, got {}", kind_of(other)),
            );
            None
        }
    };
    if matches!(kind, Some(SourceKind::SemtechUdp(_))) && map.contains_key("framing") {
        report.add(
            &at.key("framing"),
            "a semtech_udp source takes no framing: each received packet is a frame",
        );
    }
    if matches!(kind, Some(SourceKind::Rn2483(_) | SourceKind::Rak3172(_)))
        && map.contains_key("framing")
    {
        report.add(
            &at.key("framing"),
            "a modem source takes no framing: each received radio packet is a frame",
        );
    }
    if matches!(kind, Some(SourceKind::Modbus(_))) && map.contains_key("framing") {
        report.add(
            &at.key("framing"),
            "a Modbus source takes no framing: each poll of a device is a frame",
        );
    }
    if matches!(kind, Some(SourceKind::Mqtt(_))) && map.contains_key("framing") {
        report.add(
            &at.key("framing"),
            "an MQTT source takes no framing: each message is a frame",
        );
    }
    Some(SourceConfig {
        id: id?,
        kind: kind?,
        framing: framing?,
        durability: durability?,
    })
}
