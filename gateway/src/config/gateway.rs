//! The gateway file: its sections, and loading it with every mapping file.

use super::paths;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config_report::{parse_file, ConfigError, FieldPath, Report};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::devices::{self, DeviceConfig};
use super::log::{self, LogConfig};
use super::mapping_file::{self, MappingFile};
use super::source::{self, SourceConfig, SourceKind};
use super::status::{self, StatusConfig};
use super::store::StoreConfig;
use super::upstream::{self, UpstreamConfig};
use super::yaml::{self, keys, kind_of};

/// The whole configuration: the gateway file and the mapping files it points to.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub gateway: GatewaySection,
    /// The embedded broker; `None` when the file has no `broker:` section.
    pub broker: Option<broker_lite::Config>,
    /// The upstream broker; `None` when the file has no `upstream:` section.
    pub upstream: Option<UpstreamConfig>,
    /// The message store (always on; `store.file` resolved against `gateway.state_dir`).
    pub store: StoreConfig,
    pub status: StatusConfig,
    pub log: LogConfig,
    pub sources: Vec<SourceConfig>,
    /// Every mapping file of the mappings folder, in file name order.
    pub mappings: Vec<MappingFile>,
    /// The mappings folder (the `mappings:` key, resolved).
    pub mappings_dir: PathBuf,
    /// The gateway file's folder: relative paths in it are resolved against this.
    pub dir: PathBuf,
    /// The LoRaWAN device registry (`devices:`).
    pub devices: Vec<DeviceConfig>,
    /// What is not wrong but worth saying (a keys file others may read).
    pub warnings: Vec<String>,
}

/// The `gateway:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Names this gateway in topics (`mqgate/<id>/status`) and in the upstream client id.
    pub id: String,
    /// Where the gateway keeps its state (the message store). Default `/var/lib/mqgate`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/mqgate")
}

/// The keys a gateway file may have at the top.
const SECTIONS: &[&str] = &[
    "gateway", "broker", "upstream", "store", "status", "log", "sources", "mappings", "devices",
];

impl GatewayConfig {
    /// Reads and checks the gateway file at `path` and every mapping file of its
    /// mappings folder. Every problem found, in any file, is returned.
    pub fn load(path: &Path) -> Result<GatewayConfig, Vec<ConfigError>> {
        Self::load_parts(path).0
    }

    /// Like `load`, and also the mapping files that did load, even when other parts
    /// have errors, so that `mqgate check` can compile their scripts as well.
    pub fn load_parts(path: &Path) -> (Result<GatewayConfig, Vec<ConfigError>>, Vec<MappingFile>) {
        let mut loaded = Vec::new();
        let result = Self::load_into(path, &mut loaded);
        (result, loaded)
    }

    fn load_into(
        path: &Path,
        loaded: &mut Vec<MappingFile>,
    ) -> Result<GatewayConfig, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::whole_file(path, format!("cannot read: {e}"))])?;
        let value = parse_file(path, &text).map_err(|e| vec![e])?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => paths::tidy(dir),
            _ => PathBuf::from("."),
        };
        let mut report = yaml::report(path, &text);
        let root = FieldPath::root();
        let Value::Mapping(top) = &value else {
            report.add(
                &root,
                format!(
                    "expected a mapping with a `gateway:` section, got {}",
                    kind_of(&value)
                ),
            );
            return Err(report.into_errors());
        };
        for key in keys(&value) {
            if !SECTIONS.contains(&key.as_str()) {
                report.add(
                    &root.key(&key),
                    format!(
                        "unknown key `{key}`, expected one of {}",
                        SECTIONS.join(", ")
                    ),
                );
            }
        }

        let gateway = match top.get("gateway") {
            None => {
                report.add(&root, "missing section `gateway` (with at least `id`)");
                None
            }
            Some(value) => report
                .piece::<GatewaySection>(&root.key("gateway"), value)
                .map(|mut gateway| {
                    if !source::is_valid_id(&gateway.id) {
                        report.add(
                            &root.key("gateway").key("id"),
                            format!(
                                "{:?} is not a valid id: use letters, digits, `_` and `-`",
                                gateway.id
                            ),
                        );
                    }
                    gateway.state_dir = paths::join(&dir, &gateway.state_dir);
                    gateway
                }),
        };
        let gateway_id = gateway.as_ref().map_or("", |g| g.id.as_str());

        let broker = top
            .get("broker")
            .and_then(|value| read_broker(value, &dir, &mut report));
        let broker_ok = broker.is_some() || !top.contains_key("broker");
        let upstream = top.get("upstream").and_then(|value| {
            report.piece(&root.key("upstream"), value).map(|c| {
                let default_id = || format!("mqgate-{gateway_id}");
                upstream::check(c, default_id, &dir, &root.key("upstream"), &mut report)
            })
        });
        let upstream_ok = upstream.is_some() || !top.contains_key("upstream");
        let store = match top.get("store") {
            None => Some(StoreConfig::default()),
            Some(Value::Null) => Some(StoreConfig::default()),
            Some(value) => report.piece::<StoreConfig>(&root.key("store"), value),
        };
        let status = match top.get("status") {
            None => Some(StatusConfig::default()),
            Some(value) => report
                .piece(&root.key("status"), value)
                .map(|c| status::check(c, &dir, &mut report)),
        };
        let log = match top.get("log") {
            None | Some(Value::Null) => Some(LogConfig::default()),
            Some(value) => report
                .piece(&root.key("log"), value)
                .map(|c| log::check(c, &mut report)),
        };

        let mut warnings = Vec::new();
        let devices = match top.get("devices") {
            None => Vec::new(),
            Some(value) => devices::read(value, &dir, &mut report, &mut warnings),
        };
        let mut profiles = source::Profiles::new(&dir);
        let (sources, known_ids) =
            read_sources(top.get("sources"), &dir, &mut profiles, &mut report);
        if !top.contains_key("broker") {
            // Placed at the item of the file's list (some may not have been read).
            let items = match top.get("sources") {
                Some(Value::Sequence(items)) => items.as_slice(),
                _ => &[],
            };
            for s in &sources {
                let SourceKind::Mqtt(m) = &s.kind else {
                    continue;
                };
                let at = items
                    .iter()
                    .position(|item| item.get("id").and_then(Value::as_str) == Some(&s.id));
                if let (source::MqttBroker::Embedded, Some(i)) = (&m.broker, at) {
                    report.add(
                        &root.key("sources").index(i).key("broker"),
                        "`broker: embedded` needs the embedded broker: add a `broker:` section",
                    );
                }
            }
        }

        let mappings_dir = match top.get("mappings") {
            None => Some(paths::join(&dir, "mappings")),
            Some(value) => report
                .piece::<PathBuf>(&root.key("mappings"), value)
                .map(|folder| paths::join(&dir, folder)),
        };
        let mut errors = report.into_errors();
        errors.append(&mut profiles.errors);
        let mappings = match &mappings_dir {
            Some(folder) => {
                let explicit = top.contains_key("mappings");
                read_mappings(folder, explicit, path, &text, &known_ids, &mut errors)
            }
            None => Vec::new(),
        };
        loaded.clone_from(&mappings);

        match (gateway, status, log, mappings_dir, store) {
            (Some(gateway), Some(status), Some(log), Some(mappings_dir), Some(mut store))
                if errors.is_empty() && broker_ok && upstream_ok =>
            {
                store.file = paths::join(&gateway.state_dir, &store.file);
                store.write_behind_dir = paths::join(&dir, &store.write_behind_dir);
                Ok(GatewayConfig {
                    gateway,
                    broker,
                    upstream,
                    store,
                    status,
                    log,
                    sources,
                    mappings,
                    mappings_dir,
                    dir,
                    devices,
                    warnings,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The `broker:` section, read into broker-lite's own config and checked by its rules.
/// `broker:` with nothing after it turns the broker on with its defaults.
/// Its files are relative to `dir`, the gateway file's folder.
fn read_broker(value: &Value, dir: &Path, report: &mut Report<'_>) -> Option<broker_lite::Config> {
    let at = FieldPath::root().key("broker");
    let mut config: broker_lite::Config = report.piece(&at, value)?;
    // Checked by broker-lite's own rules, from the parsed section: each problem
    // is placed at its field in the gateway file.
    let problems = config.problems();
    if !problems.is_empty() {
        for (path, message) in problems {
            report.add(&at.join(&path), message);
        }
        return None;
    }
    // Its files (certificates, password and ACL files, the persistence file)
    // are relative to the gateway file, like every other path in it.
    config.resolve_paths(dir);
    if let Err(errors) = config.auth.check_files() {
        for e in errors {
            report.add(&at.key("auth"), e.to_string());
        }
        return None;
    }
    Some(config)
}

/// Reads the `sources:` list. Also returns every id written in it, even of
/// sources with errors, so that a mapping naming one is not reported as well.
fn read_sources(
    value: Option<&Value>,
    dir: &Path,
    profiles: &mut source::Profiles,
    report: &mut Report<'_>,
) -> (Vec<SourceConfig>, Vec<String>) {
    let at = FieldPath::root().key("sources");
    let items = match value {
        None | Some(Value::Null) => return (Vec::new(), Vec::new()),
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            report.add(
                &at,
                format!("expected a list of sources, got {}", kind_of(other)),
            );
            return (Vec::new(), Vec::new());
        }
    };
    let mut sources = Vec::new();
    let mut ids = Vec::new();
    let mut first_at: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let item_at = at.index(i);
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
            if let Some(first) = first_at.get(id) {
                report.add(
                    &item_at.key("id"),
                    format!("duplicate source id `{id}` (also sources[{first}])"),
                );
            } else {
                first_at.insert(id.to_string(), i);
            }
        }
        if let Some(source) = source::read(item, &item_at, dir, profiles, report) {
            sources.push(source);
        }
    }
    (sources, ids)
}

/// Reads every `*.yaml` / `*.yml` file of `folder`; their errors go to `errors`.
fn read_mappings(
    folder: &Path,
    explicit: bool,
    gateway_file: &Path,
    gateway_text: &str,
    known_ids: &[String],
    errors: &mut Vec<ConfigError>,
) -> Vec<MappingFile> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Vec::new(),
        Err(e) => {
            let mut report = yaml::report(gateway_file, gateway_text);
            report.add(
                &FieldPath::root().key("mappings"),
                format!("cannot read the mappings folder {}: {e}", folder.display()),
            );
            errors.extend(report.into_errors());
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();

    let mut mappings = Vec::new();
    let mut owner: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                errors.push(ConfigError::whole_file(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        let value = match parse_file(&file, &text) {
            Ok(value) => value,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut report = yaml::report(&file, &text);
        let mapping = mapping_file::from_value(&file, &value, &mut report);
        // The source is checked even when other fields are wrong.
        if let Some(source) = value.get("source").and_then(Value::as_str) {
            let at = FieldPath::root().key("source");
            if !known_ids.iter().any(|id| id == source) {
                let known = if known_ids.is_empty() {
                    "there are none".to_string()
                } else {
                    format!("configured: {}", known_ids.join(", "))
                };
                report.add(
                    &at,
                    format!(
                        "no source `{source}` in {} ({known})",
                        gateway_file.display()
                    ),
                );
            } else if let Some(first) = owner.get(source) {
                report.add(
                    &at,
                    format!(
                        "source `{source}` already has a mapping in {}; a source has at most one",
                        first.display()
                    ),
                );
            } else {
                owner.insert(source.to_string(), file.clone());
            }
        }
        mappings.extend(mapping);
        errors.extend(report.into_errors());
    }
    mappings
}
