//! broker-lite's YAML configuration: typed, defaulted, validated once at load.

use std::net::SocketAddr;
use std::path::Path;

use config_report::{parse_file, ConfigError, FieldPath, Report};
use mqtt_proto::topic::validate_topic_filter;
use serde::Deserialize;

pub use crate::persist::PersistenceConfig;

pub use crate::listener::{ListenerConfig, TlsConfig};

/// The whole broker configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TCP address of the MQTT listener.
    pub listen: SocketAddr,
    /// Plain, TLS and WebSocket listeners; when given, `listen` is not used.
    pub listeners: Vec<ListenerConfig>,
    pub limits: Limits,
    /// What a persistent session's queue does when it is full.
    pub queue_overflow: QueueOverflow,
    /// Topic filters that clients may not subscribe to (SUBACK 0x80).
    pub deny_subscribe: Vec<String>,
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    pub sys_interval_secs: u64,
    /// Retained messages and persistent sessions kept in a file; absent = not kept.
    pub persistence: Option<PersistenceConfig>,
    /// Passwords, anonymous clients and topic ACLs (`auth:`).
    pub auth: crate::auth::AuthConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted, fixed header included, in bytes.
    pub max_packet_size: usize,
    /// Connections open at once; more are closed right after accept.
    pub max_connections: usize,
    /// Messages queued per session (offline, or past the in-flight window).
    pub max_queued_messages: usize,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement per session.
    pub max_inflight: u16,
    /// Upper bound on the keep-alive the server enforces, in seconds. A client
    /// asking for none (keep-alive 0) gets this one: a silent connection does
    /// not stay forever.
    pub max_keep_alive: u16,
    /// Largest CONNECT packet accepted, in bytes: what a connection may make the
    /// broker hold before it has logged in (client id, user name, password, will).
    pub max_connect_size: usize,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Connections open at once from one IP address, across listeners; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Longest topic name or filter a client may use, in bytes (MQTT allows 65535).
    /// Longer PUBLISH topics are dropped (still acknowledged), longer filters get
    /// SUBACK 0x80, a longer will topic loses the will; each is counted.
    pub max_topic_length: usize,
    /// Most levels (`/`-separated parts) in a topic name or filter; treated like
    /// `max_topic_length`. Deep topics cost the subscription tree one node per level.
    pub max_topic_levels: usize,
    /// Subscriptions one session may hold; filters past it get SUBACK 0x80 and are
    /// counted. Replacing an existing filter does not count twice. 0 = no limit.
    pub max_subscriptions_per_client: usize,
    /// Bytes (topic and payload) queued per session; past it the queue gives up
    /// messages as `queue_overflow` says, as past `max_queued_messages`.
    pub max_queued_bytes: usize,
    /// Bytes queued in all sessions together: the memory budget for messages
    /// waiting for clients. Past it a message that would be queued is dropped and
    /// counted (one sent at once to a connected client with room is not).
    pub max_queued_bytes_total: usize,
    /// Persistent sessions (clean session 0) kept in all, connected or not. A
    /// CONNECT that would make one more is refused with CONNACK 3 and counted.
    pub max_sessions: usize,
    /// Persistent sessions one user name may hold (anonymous clients together
    /// count as one user); past it as `max_sessions`.
    pub max_sessions_per_user: usize,
    /// Retained messages kept in all. A retained PUBLISH that would make one more
    /// is dropped (not retained, not delivered; still acknowledged) and counted;
    /// one that replaces or clears a retained message always passes if it fits.
    pub max_retained_messages: usize,
    /// Bytes (topic and payload) of the retained messages in all; as above.
    pub max_retained_bytes: usize,
    /// Retained messages one user name's clients may have set (anonymous clients
    /// together count as one user); as above.
    pub max_retained_messages_per_user: usize,
    /// Bytes of the retained messages one user name's clients may have set.
    pub max_retained_bytes_per_user: usize,
}

/// Which message a full session queue gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    #[default]
    DropOldest,
    DropNewest,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listeners: Vec::new(),
            limits: Limits::default(),
            queue_overflow: QueueOverflow::DropOldest,
            deny_subscribe: Vec::new(),
            sys_interval_secs: 10,
            persistence: None,
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_connections: 1024,
            max_queued_messages: 1000,
            max_inflight: 32,
            max_keep_alive: 65535,
            max_connect_size: 16 * 1024,
            connect_timeout_secs: 10,
            max_connections_per_ip: 64,
            max_topic_length: DEFAULT_MAX_TOPIC_LENGTH,
            max_topic_levels: 32,
            max_subscriptions_per_client: 100,
            max_queued_bytes: 8 * MIB,
            max_queued_bytes_total: 128 * MIB,
            max_sessions: 10_000,
            max_sessions_per_user: 1_000,
            max_retained_messages: 10_000,
            max_retained_bytes: 64 * MIB,
            max_retained_messages_per_user: 1_000,
            max_retained_bytes_per_user: 16 * MIB,
        }
    }
}

const MIB: usize = 1024 * 1024;

impl Config {
    /// Read, parse and validate a YAML file; every error found is returned.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::whole_file(path, format!("cannot read: {e}"))])?;
        let mut config = Config::from_yaml_str(&text, &path.display().to_string())?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        config.auth.check_files()?;
        Ok(config)
    }

    /// Make the relative file names in the configuration relative to `dir`
    /// (the configuration file's folder) instead of the working directory.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for listener in &mut self.listeners {
            listener.resolve_paths(dir);
        }
        if let Some(p) = &mut self.persistence {
            p.resolve_paths(dir);
        }
        self.auth.resolve_paths(dir);
    }

    /// Parse and validate YAML text; `file` names it in the errors. Every bad
    /// field is reported, not only the first.
    pub fn from_yaml_str(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
        let file = Path::new(file);
        // An empty document, or one that is only `~` or `null`, means "all defaults".
        let value = parse_file(file, text).map_err(|e| vec![e])?;
        let mut report = Report::new(file, text);
        if let Some(config) = report.whole::<Config>(&value) {
            for (path, message) in config.problems() {
                report.add(&path, message);
            }
            if report.is_empty() {
                return Ok(config);
            }
        }
        Err(report.into_errors_as_found())
    }

    /// Every semantic problem: the field path (from the top of the file) and
    /// what is wrong with it. The gateway checks its `broker:` section with these.
    pub fn problems(&self) -> Vec<(FieldPath, String)> {
        let mut problems = Vec::new();
        for (i, filter) in self.deny_subscribe.iter().enumerate() {
            if let Err(e) = validate_topic_filter(filter) {
                let path = FieldPath::root().key("deny_subscribe").index(i);
                problems.push((path, format!("{filter:?} is not a valid topic filter: {e}")));
            }
        }
        if let Some(p) = &self.persistence {
            problems.extend(p.problems(&FieldPath::root().key("persistence")));
        }
        problems.extend(self.auth.problems(&FieldPath::root().key("auth")));
        problems.extend(crate::listener::config::problems(&self.listeners));
        let limits = &self.limits;
        let limit = |name: &'static str, value: u64, min: u64, max: u64| {
            let path = FieldPath::root().key("limits").key(name);
            if value < min {
                Some((path, format!("must be at least {min}, got {value}")))
            } else if value > max {
                Some((path, format!("must be at most {max}, got {value}")))
            } else {
                None
            }
        };
        problems.extend(
            [
                limit(
                    "max_packet_size",
                    limits.max_packet_size as u64,
                    MIN_PACKET_SIZE,
                    MAX_PACKET_SIZE,
                ),
                limit(
                    "max_connections",
                    limits.max_connections as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_queued_messages",
                    limits.max_queued_messages as u64,
                    1,
                    u64::MAX,
                ),
                limit("max_inflight", limits.max_inflight.into(), 1, u64::MAX),
                limit("max_keep_alive", limits.max_keep_alive.into(), 1, u64::MAX),
                limit(
                    "max_connect_size",
                    limits.max_connect_size as u64,
                    MIN_PACKET_SIZE,
                    MAX_PACKET_SIZE,
                ),
                limit(
                    "connect_timeout_secs",
                    limits.connect_timeout_secs,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_topic_length",
                    limits.max_topic_length as u64,
                    1,
                    mqtt_proto::topic::MAX_TOPIC_LEN as u64,
                ),
                limit(
                    "max_queued_bytes",
                    limits.max_queued_bytes as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_queued_bytes_total",
                    limits.max_queued_bytes_total as u64,
                    1,
                    u64::MAX,
                ),
                limit("max_sessions", limits.max_sessions as u64, 1, u64::MAX),
                limit(
                    "max_sessions_per_user",
                    limits.max_sessions_per_user as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_retained_messages",
                    limits.max_retained_messages as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_retained_bytes",
                    limits.max_retained_bytes as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_retained_messages_per_user",
                    limits.max_retained_messages_per_user as u64,
                    1,
                    u64::MAX,
                ),
                limit(
                    "max_retained_bytes_per_user",
                    limits.max_retained_bytes_per_user as u64,
                    1,
                    u64::MAX,
                ),
                // A topic of 65535 bytes has at most 65536 levels (all of them empty).
                limit(
                    "max_topic_levels",
                    limits.max_topic_levels as u64,
                    1,
                    mqtt_proto::topic::MAX_TOPIC_LEN as u64 + 1,
                ),
            ]
            .into_iter()
            .flatten(),
        );
        problems
    }
}

/// Default `max_topic_length`. MQTT allows 65535 bytes; the topics of sensors,
/// Home Assistant and cloud brokers are far shorter (AWS IoT stops at 256), and
/// every retained message and subscription keeps its topic, so 1 KiB leaves room
/// for any sensible scheme while a client cannot make the broker hold 64 KiB keys.
pub const DEFAULT_MAX_TOPIC_LENGTH: usize = 1024;

/// Smallest `max_packet_size` accepted: room for a CONNECT with a short client id.
pub const MIN_PACKET_SIZE: u64 = 64;

/// Largest MQTT packet: a 4-byte remaining length of 268,435,455 [MQTT-2.2.3].
pub const MAX_PACKET_SIZE: u64 = 268_435_455;

#[cfg(test)]
mod tests;
