//! From configuration to the parts the pipeline runs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use super::mapping::DeviceMappers;
use crate::capture::Capture;
use crate::config::{GatewayConfig, MappingFile, SerialConfig, UpstreamConfig};
use crate::mapping::{Mapper, MappingDefaults, MappingError, ScriptLimits};
use crate::output::client::ClientOptions;
use crate::output::upstream::{TlsFiles, UpstreamSettings};
use crate::source::poll;
use crate::source::replay::Chunk;
use crate::source::serial::SerialSettings;

/// One compiled mapper per source id.
pub type MapperSet = HashMap<String, Arc<Mapper>>;

/// Compile every mapping's script, and a pass-through mapper for each source
/// without a mapping. Every error is returned, each naming its file.
pub fn build_mappers(config: &GatewayConfig) -> Result<MapperSet, Vec<String>> {
    let mut set = MapperSet::new();
    let mut errors = Vec::new();
    for m in &config.mappings {
        match compile(m) {
            Ok(mapper) => {
                set.insert(m.source.clone(), Arc::new(mapper));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for source in &config.sources {
        if set.contains_key(&source.id) {
            continue;
        }
        let defaults = MappingDefaults {
            topic: "sensors/{source}".to_string(),
            qos: mqtt_proto::codec::QoS::AtLeastOnce,
            retain: false,
            filter: None,
        };
        match Mapper::new(&source.id, None, defaults, ScriptLimits::default()) {
            Ok(m) => {
                set.insert(source.id.clone(), Arc::new(m));
            }
            Err(e) => errors.push(format!("source {}: {e}", source.id)),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

/// Whether a source's frames can come from the registry's devices: a Semtech
/// source (its ABP devices) or an MQTT source reading a network server.
pub fn takes_devices(source: &crate::config::SourceConfig) -> bool {
    match &source.kind {
        crate::config::SourceKind::SemtechUdp(_) => true,
        crate::config::SourceKind::Mqtt(m) => {
            matches!(m.format, crate::config::PayloadFormat::NetworkServer(_))
        }
        _ => false,
    }
}

/// The registry's decoders, compiled for source `source`: each registered
/// device with a `decoder` maps its own frames, to its `topic`.
pub fn device_mappers(config: &GatewayConfig, source: &str) -> Result<DeviceMappers, Vec<String>> {
    let mut set = DeviceMappers::default();
    let mut errors = Vec::new();
    for d in &config.devices {
        let Some(path) = &d.decoder else { continue };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!(
                    "device {}: cannot read decoder {}: {e}",
                    d.name,
                    path.display()
                ));
                continue;
            }
        };
        let defaults = MappingDefaults {
            topic: d.topic.clone(),
            qos: mqtt_proto::codec::QoS::AtLeastOnce,
            retain: false,
            filter: None,
        };
        match Mapper::new(
            source,
            Some((path, &text)),
            defaults,
            ScriptLimits::default(),
        ) {
            Ok(m) => set.insert(d, Arc::new(m)),
            Err(e) => errors.push(format!("device {}: {e}", d.name)),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

/// The mapping file (and its script) of a source, as the status page names them.
pub fn files_of(config: &GatewayConfig, source: &str) -> super::MappingFiles {
    match config.mappings.iter().find(|m| m.source == source) {
        Some(m) => super::MappingFiles {
            mapping: Some(m.path.clone()),
            script: m.script.clone(),
        },
        None => super::MappingFiles::default(),
    }
}

/// Why a mapping file's mapper could not be built.
#[derive(Debug)]
pub enum CompileError {
    /// The script file cannot be read; the message names it.
    Read(String),
    /// The script, filter or topic template does not compile.
    Mapping {
        /// The mapping file, named in errors that are not about the script file.
        file: std::path::PathBuf,
        error: MappingError,
    },
}

impl CompileError {
    /// Whether loading the mapping file reports this problem already, with its
    /// line (a bad topic template): `check` then does not say it twice.
    pub fn reported_by_config(&self) -> bool {
        matches!(
            self,
            CompileError::Mapping {
                error: MappingError::Template { .. },
                ..
            }
        )
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Read(message) => f.write_str(message),
            // Errors in the script name the script's file and line; the others
            // are about fields of the mapping file.
            CompileError::Mapping { file, error } => match error {
                MappingError::Filter { .. } | MappingError::Template { .. } => {
                    write!(f, "{}: {error}", file.display())
                }
                MappingError::UnknownFunction { at, .. } if at.starts_with("filter ") => {
                    write!(f, "{}: {error}", file.display())
                }
                _ => write!(f, "{error}"),
            },
        }
    }
}

/// The sandbox a mapping file's `limits:` ask for (its `map` and `encode` scripts).
pub fn script_limits(m: &MappingFile) -> ScriptLimits {
    ScriptLimits {
        max_operations: m.limits.max_operations,
        max_expr_depth: m.limits.max_expr_depth,
        max_string_size: m.limits.max_string_size,
        max_array_size: m.limits.max_array_size,
        max_map_size: m.limits.max_map_size,
        max_call_time: Duration::from_millis(m.limits.max_call_ms),
    }
}

/// Compile one mapping file's script.
pub fn compile(m: &MappingFile) -> Result<Mapper, CompileError> {
    let defaults = MappingDefaults {
        topic: m.topic.clone(),
        qos: m.qos,
        retain: m.retain,
        filter: m.filter.clone(),
    };
    let limits = script_limits(m);
    let text = match &m.script {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CompileError::Read(format!("{}: cannot read: {e}", path.display())))?,
        ),
        None => None,
    };
    let script = m.script.as_deref().zip(text.as_deref());
    Mapper::with_codec(&m.source, script, defaults, limits, &m.codec_options()).map_err(|error| {
        CompileError::Mapping {
            file: m.path.clone(),
            error,
        }
    })
}

pub(super) fn serial_settings(s: &SerialConfig) -> SerialSettings {
    let mut settings = SerialSettings::new(&s.path, s.baud);
    settings.data_bits = s.data_bits.into();
    settings.parity = s.parity.into();
    settings.stop_bits = s.stop_bits.into();
    settings.flow_control = s.flow_control.into();
    settings.reopen_initial = Duration::from_millis(s.reopen.initial_ms);
    settings.reopen_max = Duration::from_millis(s.reopen.max_ms);
    settings
}

/// A serial source's `poll:` queries, as its writer takes them.
pub(super) fn poll_queries(s: &SerialConfig) -> Vec<poll::Query> {
    s.poll
        .iter()
        .map(|p| poll::Query {
            name: Arc::from(p.name()),
            bytes: Bytes::from(p.bytes()),
            every: p.every,
            timeout: p.timeout(),
        })
        .collect()
}

/// Read a capture (or raw byte file) into replay chunks.
pub fn load_chunks(path: &Path) -> anyhow::Result<Arc<[Chunk]>> {
    // The error names the file and its cause (once: not as a chain).
    let capture = Capture::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(capture
        .chunks
        .into_iter()
        .map(|c| (c.at, c.bytes))
        .collect())
}

pub(super) fn upstream_settings(
    config: &GatewayConfig,
    up: &UpstreamConfig,
) -> anyhow::Result<UpstreamSettings> {
    let default_id = || format!("mqgate-{}", config.gateway.id);
    Ok(UpstreamSettings {
        client: client_options(&config.dir, up, default_id)?,
        topic_prefix: up.topic_prefix.clone(),
        gateway_id: config.gateway.id.clone(),
        reconnect_initial: Duration::from_millis(up.reconnect.initial_ms),
        reconnect_max: Duration::from_millis(up.reconnect.max_ms),
        max_inflight: up.max_inflight as usize,
        echoes: None,
    })
}

/// How to connect to the broker of `up` (the `upstream:` keys, also an MQTT
/// source's): its files read (relative to `dir`), `default_id` when it names no
/// client id.
pub(super) fn client_options(
    dir: &Path,
    up: &UpstreamConfig,
    default_id: impl FnOnce() -> String,
) -> anyhow::Result<ClientOptions> {
    let read = |p: &Path| -> anyhow::Result<Vec<u8>> {
        let path = dir.join(p);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let password = match (&up.password, &up.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => Some(
            String::from_utf8_lossy(&read(file)?)
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        (None, None) => None,
    };
    let tls = if up.url.tls {
        let ca_pem = match &up.ca_file {
            Some(f) => read(f)?,
            None => Vec::new(),
        };
        let client = match (&up.cert_file, &up.key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        Some(TlsFiles { ca_pem, client })
    } else {
        None
    };
    let client_id = if up.client_id.is_empty() {
        default_id()
    } else {
        up.client_id.clone()
    };
    Ok(ClientOptions {
        tls,
        username: up.username.clone(),
        password,
        keep_alive: Duration::from_secs(u64::from(up.keep_alive_secs)),
        clean_session: up.clean_session,
        ..ClientOptions::new(&up.url.host, up.url.port, client_id)
    })
}
