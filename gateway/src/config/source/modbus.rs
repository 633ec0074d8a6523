//! The Modbus sources' keys (`type: modbus_rtu`, `type: modbus_tcp`), their
//! devices and register maps, and the device profiles (`profiles/<name>.yaml`)
//! the maps may come from. Every problem is placed at its field: in the gateway
//! file, or in the profile file for the profile's own fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config_report::{parse_file, ConfigError};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{
    check_backoff, DataBits, FieldPath, FlowControl, Parity, ReopenConfig, Report, SerialConfig,
    SourceKind, StopBits,
};
use crate::config::yaml;
use crate::modbus::{Device, Field, FieldType, Kind, Order};

/// A bus of Modbus devices, checked: where it is, how it is polled, and what is on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusSource {
    pub bus: ModbusBus,
    pub polling: Polling,
    pub devices: Vec<Device>,
}

/// Where the devices are.
#[derive(Debug, Clone, PartialEq)]
pub enum ModbusBus {
    /// `modbus_rtu`: a serial port (RS485 adapter).
    Rtu(SerialConfig),
    /// `modbus_tcp`: `host:port`, Modbus TCP or RTU frames over TCP.
    Tcp { host: String, rtu_over_tcp: bool },
}

/// How the poller treats the bus and its devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Polling {
    /// How long one request waits for its answer.
    pub timeout: Duration,
    /// Requests tried again after a timeout or a garbled answer.
    pub retries: u32,
    /// Wait after a "busy" (exception 6) or "acknowledge" (5) answer before asking again.
    pub busy_retry: Duration,
    /// Extra quiet time after each answer, for slow adapters and devices.
    pub turnaround: Duration,
    /// Polls in a row that get no answer before a device is marked unavailable.
    pub unavailable_after: u32,
    /// How often an unavailable device is tried.
    pub unavailable_every: Duration,
    /// Back-off for reopening the port / reconnecting.
    pub reopen: ReopenConfig,
}

/// `type: modbus_rtu` and `type: modbus_tcp`: one set of keys, the port's only
/// for RTU and `host` / `protocol` only for TCP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusConfig {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    baud: Option<u32>,
    #[serde(default)]
    data_bits: Option<DataBits>,
    #[serde(default)]
    parity: Option<Parity>,
    #[serde(default)]
    stop_bits: Option<StopBits>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    protocol: Option<TcpProtocol>,

    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_busy_retry_ms")]
    busy_retry_ms: u64,
    #[serde(default)]
    turnaround_ms: u64,
    #[serde(default = "default_unavailable_after")]
    unavailable_after: u32,
    #[serde(default)]
    unavailable_every: Option<String>,
    #[serde(default, alias = "reconnect")]
    reopen: ReopenConfig,
    devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TcpProtocol {
    #[default]
    Tcp,
    RtuOverTcp,
}

const fn default_timeout_ms() -> u64 {
    1000
}
const fn default_retries() -> u32 {
    2
}
const fn default_busy_retry_ms() -> u64 {
    200
}
const fn default_unavailable_after() -> u32 {
    3
}

/// The poll period when neither a field, its group, its device nor its profile gives one.
const DEFAULT_EVERY: Duration = Duration::from_secs(10);
/// The unavailable devices' poll period unless `unavailable_every` says otherwise.
const DEFAULT_UNAVAILABLE_EVERY: Duration = Duration::from_secs(30);
const DEFAULT_MAX_GAP: u16 = 10;
/// Devices on one bus, at most.
const MAX_DEVICES: usize = 247;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceConfig {
    name: String,
    unit: u8,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    every: Option<String>,
    #[serde(default)]
    max_gap: Option<u16>,
    #[serde(default)]
    one_per_field: Option<bool>,
    #[serde(default)]
    fields: Vec<FieldConfig>,
    #[serde(default)]
    groups: Vec<GroupConfig>,
}

/// A profile file: a device's register map, shared by every device naming it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileConfig {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    every: Option<String>,
    #[serde(default)]
    max_gap: Option<u16>,
    #[serde(default)]
    one_per_field: Option<bool>,
    #[serde(default)]
    fields: Vec<FieldConfig>,
    #[serde(default)]
    groups: Vec<GroupConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupConfig {
    every: String,
    fields: Vec<FieldConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Register {
    Holding,
    Input,
    Coil,
    Discrete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldConfig {
    name: String,
    register: Register,
    address: u16,
    #[serde(default, rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    byte_order: Option<Order>,
    #[serde(default)]
    word_order: Option<Order>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    offset: Option<f64>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    device_class: Option<String>,
    #[serde(default)]
    state_class: Option<String>,
    #[serde(default)]
    every: Option<String>,
}

/// The profiles read so far (each file once, however many devices name it), and
/// the problems found in them.
#[derive(Debug)]
pub(crate) struct Profiles {
    /// Where `profile: NAME` is looked for: `<gateway file's folder>/profiles`.
    dir: PathBuf,
    /// The gateway file's folder, for profiles named by path.
    base: PathBuf,
    loaded: BTreeMap<PathBuf, Option<Arc<Profile>>>,
    pub(crate) errors: Vec<ConfigError>,
}

/// A profile's fields, checked on their own.
#[derive(Debug)]
struct Profile {
    name: String,
    every: Option<Duration>,
    max_gap: Option<u16>,
    one_per_field: Option<bool>,
    /// Fields with the period their profile gives them (`None`: the device's).
    fields: Vec<(Field, Option<Duration>)>,
}

impl Profiles {
    pub(crate) fn new(base: &Path) -> Profiles {
        Profiles {
            dir: base.join("profiles"),
            base: base.to_path_buf(),
            loaded: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// The file `profile: name` means: `profiles/<name>.yaml`, or a path.
    fn file_of(&self, name: &str) -> PathBuf {
        if name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml") {
            super::paths::join(&self.base, name)
        } else {
            self.dir.join(format!("{name}.yaml"))
        }
    }

    /// The profile `name`, read once; `Err` says why it cannot be used (its
    /// own problems are in `errors`, with their lines).
    fn get(&mut self, name: &str) -> Result<Arc<Profile>, String> {
        let file = self.file_of(name);
        if let Some(known) = self.loaded.get(&file) {
            return known
                .clone()
                .ok_or_else(|| format!("profile `{name}` ({}) has errors", file.display()));
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                self.loaded.insert(file.clone(), None);
                return Err(format!(
                    "profile `{name}`: cannot read {}: {e}",
                    file.display()
                ));
            }
        };
        let profile = read_profile(name, &file, &text, &mut self.errors).map(Arc::new);
        self.loaded.insert(file.clone(), profile.clone());
        profile.ok_or_else(|| format!("profile `{name}` ({}) has errors", file.display()))
    }
}

fn read_profile(
    name: &str,
    file: &Path,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Profile> {
    let value = match parse_file(file, text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut report = yaml::report(file, text);
    let root = FieldPath::root();
    let config: Option<ProfileConfig> = report.piece(&root, &value);
    let profile = config.map(|c| {
        let every = c
            .every
            .as_deref()
            .and_then(|e| period(e, &root.key("every"), &mut report));
        let mut fields = Vec::new();
        for (i, f) in c.fields.iter().enumerate() {
            let at = root.key("fields").index(i);
            if let Some(field) = check_field(f, &at, &mut report) {
                let own = f
                    .every
                    .as_deref()
                    .and_then(|e| period(e, &at.key("every"), &mut report));
                fields.push((field, own, at));
            }
        }
        for (g, group) in c.groups.iter().enumerate() {
            let at = root.key("groups").index(g);
            let every = period(&group.every, &at.key("every"), &mut report);
            for (i, f) in group.fields.iter().enumerate() {
                let at = at.key("fields").index(i);
                if let Some(field) = check_field(f, &at, &mut report) {
                    let own = f
                        .every
                        .as_deref()
                        .and_then(|e| period(e, &at.key("every"), &mut report))
                        .or(every);
                    fields.push((field, own, at));
                }
            }
        }
        check_names(fields.iter().map(|(f, _, at)| (f, at)), &mut report);
        // The profile on its own must be readable, whatever device uses it.
        let trial: Vec<Field> = fields
            .iter()
            .map(|(f, own, _)| Field {
                every: own.or(every).unwrap_or(DEFAULT_EVERY),
                ..f.clone()
            })
            .collect();
        if let Err(e) = Device::build(
            name.into(),
            1,
            None,
            trial,
            c.max_gap.unwrap_or(DEFAULT_MAX_GAP),
            c.one_per_field.unwrap_or(false),
        ) {
            let at = e.field.map_or(root.clone(), |i| fields[i].2.clone());
            report.add(&at, e.message);
        }
        Profile {
            name: name.to_string(),
            every,
            max_gap: c.max_gap,
            one_per_field: c.one_per_field,
            fields: fields.into_iter().map(|(f, own, _)| (f, own)).collect(),
        }
    });
    let problems = report.into_errors();
    let ok = problems.is_empty();
    errors.extend(problems);
    profile.filter(|_| ok)
}

/// A poll period: `500ms`, `10s`, `5m`, `1h`; at least 10 ms.
fn period(text: &str, at: &FieldPath, report: &mut Report<'_>) -> Option<Duration> {
    match crate::config::duration::parse(text) {
        Ok(d) if d >= Duration::from_millis(10) => Some(d),
        Ok(_) => {
            report.add(at, "a poll period must be at least 10ms");
            None
        }
        Err(_) => {
            report.add(
                at,
                format!("{text:?} is not a poll period like 500ms, 10s, 5m or 1h"),
            );
            None
        }
    }
}

/// A field as written, checked; its period is filled in later.
fn check_field(f: &FieldConfig, at: &FieldPath, report: &mut Report<'_>) -> Option<Field> {
    let mut ok = true;
    if !super::is_valid_id(&f.name) {
        report.add(
            &at.key("name"),
            format!(
                "{:?} is not a valid field name: use letters, digits, `_` and `-`",
                f.name
            ),
        );
        ok = false;
    }
    let kind = match f.register {
        Register::Holding => Kind::Holding,
        Register::Input => Kind::Input,
        Register::Coil => Kind::Coil,
        Register::Discrete => Kind::Discrete,
    };
    let bit_table = matches!(kind, Kind::Coil | Kind::Discrete);
    let ty = match (&f.ty, bit_table) {
        (None, true) => FieldType::Bool,
        (None, false) => FieldType::U16,
        (Some(t), _) => match FieldType::parse(t) {
            Ok(t) => t,
            Err(why) => {
                report.add(&at.key("type"), why);
                return None;
            }
        },
    };
    if bit_table && ty != FieldType::Bool {
        report.add(
            &at.key("type"),
            format!(
                "a {} holds one bit: its type is bool",
                if kind == Kind::Coil {
                    "coil"
                } else {
                    "discrete input"
                }
            ),
        );
        ok = false;
    }
    let order = match (f.byte_order, f.word_order) {
        (Some(a), Some(b)) if a != b => {
            report.add(
                &at.key("word_order"),
                "byte_order and word_order name the same thing (ABCD, CDAB, BADC, DCBA): give one",
            );
            ok = false;
            a
        }
        (a, b) => a.or(b).unwrap_or_default(),
    };
    let scale = f.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        report.add(&at.key("scale"), "must be a number other than 0");
        ok = false;
    }
    let offset = f.offset.unwrap_or(0.0);
    if !offset.is_finite() {
        report.add(&at.key("offset"), "must be a finite number");
        ok = false;
    }
    if let Some(class) = &f.state_class {
        if !matches!(class.as_str(), "measurement" | "total" | "total_increasing") {
            report.add(
                &at.key("state_class"),
                format!("{class:?}: expected measurement, total or total_increasing"),
            );
            ok = false;
        }
    }
    ok.then(|| Field {
        name: f.name.clone(),
        kind,
        address: f.address,
        ty,
        order,
        scale,
        offset,
        unit: f.unit.clone(),
        device_class: f.device_class.clone(),
        state_class: f.state_class.clone(),
        every: DEFAULT_EVERY,
    })
}

fn check_names<'a>(
    fields: impl Iterator<Item = (&'a Field, &'a FieldPath)>,
    report: &mut Report<'_>,
) {
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for (f, at) in fields {
        if seen.insert(&f.name, ()).is_some() {
            report.add(
                &at.key("name"),
                format!("duplicate field name `{}`", f.name),
            );
        }
    }
}

/// One device of a bus: its profile's fields, then its own.
fn check_device(
    d: &DeviceConfig,
    at: &FieldPath,
    profiles: &mut Profiles,
    report: &mut Report<'_>,
) -> Option<Device> {
    let mut ok = true;
    if !super::is_valid_id(&d.name) {
        report.add(
            &at.key("name"),
            format!(
                "{:?} is not a valid device name: use letters, digits, `_` and `-`",
                d.name
            ),
        );
        ok = false;
    }
    if d.unit == 0 || d.unit > 247 {
        let why = if d.unit == 0 {
            "unit 0 is the broadcast address: it is never polled (1 to 247)"
        } else {
            "unit ids 248 to 255 are reserved: use 1 to 247"
        };
        report.add(&at.key("unit"), why);
        ok = false;
    }
    let profile = match &d.profile {
        None => None,
        Some(name) => match profiles.get(name) {
            Ok(p) => Some(p),
            Err(why) => {
                report.add(&at.key("profile"), why);
                return None;
            }
        },
    };
    let own_every = d
        .every
        .as_deref()
        .and_then(|e| period(e, &at.key("every"), report));
    let every = own_every
        .or_else(|| profile.as_ref().and_then(|p| p.every))
        .unwrap_or(DEFAULT_EVERY);
    // (field, where it is written: None for a profile's)
    let mut fields: Vec<(Field, Option<FieldPath>)> = Vec::new();
    if let Some(p) = &profile {
        for (f, own) in &p.fields {
            fields.push((
                Field {
                    every: own.unwrap_or(every),
                    ..f.clone()
                },
                None,
            ));
        }
    }
    // The device's own fields, then its groups' (each with the group's period).
    let mut own: Vec<(&FieldConfig, FieldPath, Duration)> = Vec::new();
    for (i, f) in d.fields.iter().enumerate() {
        own.push((f, at.key("fields").index(i), every));
    }
    for (g, group) in d.groups.iter().enumerate() {
        let gat = at.key("groups").index(g);
        let group_every = period(&group.every, &gat.key("every"), report).unwrap_or(every);
        for (i, f) in group.fields.iter().enumerate() {
            own.push((f, gat.key("fields").index(i), group_every));
        }
    }
    for (f, at, default_every) in own {
        let Some(field) = check_field(f, &at, report) else {
            ok = false;
            continue;
        };
        let every = f
            .every
            .as_deref()
            .and_then(|e| period(e, &at.key("every"), report))
            .unwrap_or(default_every);
        fields.push((Field { every, ..field }, Some(at)));
    }
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    for (f, place) in &fields {
        if seen.insert(f.name.clone(), ()).is_some() {
            let from = profile
                .as_ref()
                .map(|p| format!(" (profile `{}` has one)", p.name))
                .unwrap_or_default();
            let place = place.clone().unwrap_or_else(|| at.key("profile"));
            report.add(
                &place.key("name"),
                format!("duplicate field name `{}`{from}", f.name),
            );
            ok = false;
        }
    }
    if fields.is_empty() && ok {
        report.add(at, "a device needs `fields:`, `groups:` or a `profile:`");
        return None;
    }
    if !ok {
        return None;
    }
    let max_gap = d
        .max_gap
        .or_else(|| profile.as_ref().and_then(|p| p.max_gap))
        .unwrap_or(DEFAULT_MAX_GAP);
    let one_per_field = d
        .one_per_field
        .or_else(|| profile.as_ref().and_then(|p| p.one_per_field))
        .unwrap_or(false);
    let places: Vec<Option<FieldPath>> = fields.iter().map(|(_, p)| p.clone()).collect();
    match Device::build(
        d.name.clone(),
        d.unit,
        profile.as_ref().map(|p| p.name.clone()),
        fields.into_iter().map(|(f, _)| f).collect(),
        max_gap,
        one_per_field,
    ) {
        Ok(device) => Some(device),
        Err(e) => {
            let place = e
                .field
                .and_then(|i| places[i].clone())
                .unwrap_or_else(|| at.clone());
            report.add(&place, format!("device {}: {}", d.name, e.message));
            None
        }
    }
}

fn check_common(
    c: &BusConfig,
    at: &FieldPath,
    profiles: &mut Profiles,
    report: &mut Report<'_>,
) -> Option<(Polling, Vec<Device>)> {
    if !(1..=60_000).contains(&c.timeout_ms) {
        report.add(&at.key("timeout_ms"), "must be 1 to 60000");
    }
    if c.retries > 10 {
        report.add(&at.key("retries"), "must be 0 to 10");
    }
    if !(1..=60_000).contains(&c.busy_retry_ms) {
        report.add(&at.key("busy_retry_ms"), "must be 1 to 60000");
    }
    if c.turnaround_ms > 10_000 {
        report.add(&at.key("turnaround_ms"), "must be 0 to 10000");
    }
    if c.unavailable_after == 0 {
        report.add(&at.key("unavailable_after"), "must be at least 1");
    }
    let unavailable_every = match &c.unavailable_every {
        None => Some(DEFAULT_UNAVAILABLE_EVERY),
        Some(text) => period(text, &at.key("unavailable_every"), report),
    };
    check_backoff(&c.reopen, &at.key("reopen"), report);
    if c.devices.is_empty() {
        report.add(&at.key("devices"), "a bus needs at least one device");
    }
    if c.devices.len() > MAX_DEVICES {
        report.add(
            &at.key("devices"),
            format!("at most {MAX_DEVICES} devices on one bus"),
        );
    }
    let mut devices = Vec::new();
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut units: BTreeMap<u8, usize> = BTreeMap::new();
    for (i, d) in c.devices.iter().enumerate() {
        let dat = at.key("devices").index(i);
        if let Some(first) = names.insert(&d.name, i) {
            report.add(
                &dat.key("name"),
                format!("duplicate device name `{}` (also devices[{first}])", d.name),
            );
        }
        if let Some(first) = units.insert(d.unit, i) {
            report.add(
                &dat.key("unit"),
                format!(
                    "unit {} is also devices[{first}]: one unit id is one device",
                    d.unit
                ),
            );
        }
        if let Some(device) = check_device(d, &dat, profiles, report) {
            devices.push(device);
        }
    }
    let polling = Polling {
        timeout: Duration::from_millis(c.timeout_ms),
        retries: c.retries,
        busy_retry: Duration::from_millis(c.busy_retry_ms),
        turnaround: Duration::from_millis(c.turnaround_ms),
        unavailable_after: c.unavailable_after,
        unavailable_every: unavailable_every?,
        reopen: c.reopen,
    };
    (devices.len() == c.devices.len()).then_some((polling, devices))
}

/// `type: modbus_rtu`.
pub(super) fn read_rtu(
    body: &Value,
    at: &FieldPath,
    profiles: &mut Profiles,
    report: &mut Report<'_>,
) -> Option<SourceKind> {
    let c: BusConfig = report.piece(at, body)?;
    for (key, given) in [
        ("host", c.host.is_some()),
        ("protocol", c.protocol.is_some()),
    ] {
        if given {
            report.add(
                &at.key(key),
                format!(
                    "`{key}` is for modbus_tcp sources; a modbus_rtu source has a serial `path`"
                ),
            );
        }
    }
    let path = c.path.clone().unwrap_or_default();
    if path.trim().is_empty() {
        report.add(
            &at.key("path"),
            "must name a serial device (the RS485 adapter)",
        );
    }
    let baud = c.baud.unwrap_or(9600);
    if baud == 0 {
        report.add(&at.key("baud"), "must be at least 1");
    }
    let (polling, devices) = check_common(&c, at, profiles, report)?;
    let serial = SerialConfig {
        path,
        baud,
        data_bits: c.data_bits.unwrap_or_default(),
        parity: c.parity.unwrap_or_default(),
        stop_bits: c.stop_bits.unwrap_or_default(),
        flow_control: FlowControl::None,
        reopen: polling.reopen,
        poll: Vec::new(),
    };
    Some(SourceKind::Modbus(ModbusSource {
        bus: ModbusBus::Rtu(serial),
        polling,
        devices,
    }))
}

/// `type: modbus_tcp`.
pub(super) fn read_tcp(
    body: &Value,
    at: &FieldPath,
    profiles: &mut Profiles,
    report: &mut Report<'_>,
) -> Option<SourceKind> {
    let c: BusConfig = report.piece(at, body)?;
    for (key, given) in [
        ("path", c.path.is_some()),
        ("baud", c.baud.is_some()),
        ("data_bits", c.data_bits.is_some()),
        ("parity", c.parity.is_some()),
        ("stop_bits", c.stop_bits.is_some()),
    ] {
        if given {
            report.add(
                &at.key(key),
                format!("`{key}` is for modbus_rtu sources; a modbus_tcp source has a `host`"),
            );
        }
    }
    let host = c.host.clone().unwrap_or_default();
    let host_ok = match host.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    };
    if !host_ok {
        report.add(
            &at.key("host"),
            format!("{host:?}: expected HOST:PORT, e.g. 192.168.1.50:502"),
        );
    }
    let (polling, devices) = check_common(&c, at, profiles, report)?;
    Some(SourceKind::Modbus(ModbusSource {
        bus: ModbusBus::Tcp {
            host,
            rtu_over_tcp: c.protocol == Some(TcpProtocol::RtuOverTcp),
        },
        polling,
        devices,
    }))
}
