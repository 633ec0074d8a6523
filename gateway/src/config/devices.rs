//! The `devices:` registry: LoRaWAN devices by name, with their DevEUI, for ABP
//! their address and session keys (inline, or from a `keys_file` only mqgate may
//! read), and the decoder that maps their uplinks (a `.rhai` script) and the topic
//! it publishes on (default `lorawan/{device}`). A decoder is a `.rhai` script or
//! a `.js` codec in The Things Network's interface.

use std::path::{Path, PathBuf};

use config_report::{FieldPath, Report};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::paths;
use crate::lorawan::{DevAddr, Key};

/// The topic a registered device's decoded messages go to, unless it names one.
pub const DEFAULT_DEVICE_TOPIC: &str = "lorawan/{device}";

/// One registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Letters, digits, `_`, `-` and `.`: it goes into topics.
    pub name: String,
    /// Upper-case hex, 16 digits.
    pub dev_eui: Option<String>,
    /// An ABP device's session: its address and keys.
    pub abp: Option<AbpKeys>,
    /// The `.rhai` script or `.js` codec its uplinks are mapped by (resolved).
    pub decoder: Option<PathBuf>,
    /// Topic template of its decoded messages.
    pub topic: String,
}

/// An ABP device's address and session keys.
#[derive(Clone, PartialEq, Eq)]
pub struct AbpKeys {
    pub dev_addr: DevAddr,
    pub nwk_s_key: Key,
    pub app_s_key: Key,
}

impl std::fmt::Debug for AbpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbpKeys")
            .field("dev_addr", &self.dev_addr)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceItem {
    name: String,
    #[serde(default)]
    dev_eui: Option<String>,
    #[serde(default)]
    dev_addr: Option<String>,
    #[serde(default)]
    nwk_s_key: Option<String>,
    #[serde(default)]
    app_s_key: Option<String>,
    #[serde(default)]
    keys_file: Option<PathBuf>,
    #[serde(default)]
    decoder: Option<PathBuf>,
    #[serde(default)]
    topic: Option<String>,
}

/// What a `keys_file` holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    nwk_s_key: String,
    app_s_key: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Reads the `devices:` list; problems go to `report`, warnings (a keys file
/// others may read) to `warnings`.
pub(super) fn read(
    value: &Value,
    dir: &Path,
    report: &mut Report<'_>,
    warnings: &mut Vec<String>,
) -> Vec<DeviceConfig> {
    let at = FieldPath::root().key("devices");
    let items = match value {
        Value::Sequence(items) => items,
        Value::Null => return Vec::new(),
        _ => {
            report.add(&at, "must be a list of devices");
            return Vec::new();
        }
    };
    let mut devices: Vec<DeviceConfig> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = at.index(i);
        let Some(d) = report.piece::<DeviceItem>(&at, item) else {
            continue;
        };
        if let Some(device) = check(d, &at, dir, report, warnings) {
            let clash = devices.iter().find(|o| {
                o.name == device.name
                    || (o.dev_eui.is_some() && o.dev_eui == device.dev_eui)
                    || matches!((&o.abp, &device.abp), (Some(a), Some(b)) if a.dev_addr == b.dev_addr)
            });
            match clash {
                Some(o) => report.add(
                    &at,
                    format!(
                        "device {:?} has the name, DevEUI or DevAddr of device {:?}",
                        device.name, o.name
                    ),
                ),
                None => devices.push(device),
            }
        }
    }
    devices
}

fn check(
    d: DeviceItem,
    at: &FieldPath,
    dir: &Path,
    report: &mut Report<'_>,
    warnings: &mut Vec<String>,
) -> Option<DeviceConfig> {
    let errors_before = report.len();
    if !valid_name(&d.name) {
        report.add(
            &at.key("name"),
            format!(
                "{:?} is not a valid device name: use letters, digits, `_`, `-` and `.`",
                d.name
            ),
        );
    }
    let dev_eui = d.dev_eui.as_deref().and_then(|eui| {
        let ok = eui.len() == 16 && eui.chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            report.add(
                &at.key("dev_eui"),
                format!("{eui:?}: expected 16 hex digits"),
            );
        }
        ok.then(|| eui.to_ascii_uppercase())
    });
    let key = |field: &str, text: &str, report: &mut Report<'_>| -> Option<Key> {
        text.parse::<Key>()
            .map_err(|e| report.add(&at.key(field), format!("{e}")))
            .ok()
    };
    let (nwk, app) = match (&d.keys_file, &d.nwk_s_key, &d.app_s_key) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            report.add(
                &at.key("keys_file"),
                "give the session keys inline or in `keys_file`, not both",
            );
            (None, None)
        }
        (Some(file), None, None) => {
            let file = paths::join(dir, file);
            match read_keys_file(&file, warnings) {
                Ok(k) => (
                    key("keys_file", &k.nwk_s_key, report),
                    key("keys_file", &k.app_s_key, report),
                ),
                Err(why) => {
                    report.add(&at.key("keys_file"), why);
                    (None, None)
                }
            }
        }
        (None, nwk, app) => (
            nwk.as_deref().and_then(|t| key("nwk_s_key", t, report)),
            app.as_deref().and_then(|t| key("app_s_key", t, report)),
        ),
    };
    let has_keys = d.keys_file.is_some() || d.nwk_s_key.is_some() || d.app_s_key.is_some();
    let abp = match (&d.dev_addr, has_keys) {
        (None, false) => None,
        (None, true) => {
            report.add(
                &at.key("dev_addr"),
                "an ABP device needs its `dev_addr` (8 hex digits) with its keys",
            );
            None
        }
        (Some(addr), _) => {
            let dev_addr = addr
                .parse::<DevAddr>()
                .map_err(|e| report.add(&at.key("dev_addr"), format!("{e}")))
                .ok();
            if d.keys_file.is_none() && (d.nwk_s_key.is_none() || d.app_s_key.is_none()) {
                report.add(
                    at,
                    "an ABP device needs `nwk_s_key` and `app_s_key` (32 hex digits each), or a `keys_file` with them",
                );
            }
            match (dev_addr, nwk, app) {
                (Some(dev_addr), Some(nwk_s_key), Some(app_s_key)) => Some(AbpKeys {
                    dev_addr,
                    nwk_s_key,
                    app_s_key,
                }),
                _ => None,
            }
        }
    };
    let decoder = d.decoder.map(|p| {
        let p = paths::join(dir, &p);
        if !p.is_file() {
            report.add(
                &at.key("decoder"),
                format!("decoder {} does not exist", p.display()),
            );
        } else if !matches!(p.extension().and_then(|e| e.to_str()), Some("rhai" | "js")) {
            report.add(
                &at.key("decoder"),
                format!(
                    "{}: a decoder is a `.rhai` script or a `.js` codec",
                    p.display()
                ),
            );
        }
        p
    });
    let topic = d.topic.unwrap_or_else(|| DEFAULT_DEVICE_TOPIC.to_string());
    if report.len() > errors_before {
        return None;
    }
    Some(DeviceConfig {
        name: d.name,
        dev_eui,
        abp,
        decoder,
        topic,
    })
}

/// A keys file's keys; a warning when others than its owner may read it.
fn read_keys_file(file: &Path, warnings: &mut Vec<String>) -> Result<KeysFile, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read keys file {}: {e}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                warnings.push(format!(
                    "keys file {} may be read by others than its owner (mode {:o}): \
                     `chmod 600` it, owned by the user mqgate runs as",
                    file.display(),
                    mode & 0o777
                ));
            }
        }
    }
    serde_yaml_ng::from_str::<KeysFile>(&text)
        .map_err(|e| format!("keys file {}: {e}", file.display()))
}
