//! broker-lite's YAML configuration: typed, defaulted, validated once at load.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The whole broker configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TCP address of the MQTT listener.
    pub listen: SocketAddr,
    pub limits: Limits,
    /// What a persistent session's queue does when it is full.
    pub queue_overflow: QueueOverflow,
    /// Topic filters that clients may not subscribe to (SUBACK 0x80).
    pub deny_subscribe: Vec<String>,
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    pub sys_interval_secs: u64,
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
    /// Upper bound on the keep-alive the server enforces, in seconds.
    pub max_keep_alive: u16,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
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
            limits: Limits::default(),
            queue_overflow: QueueOverflow::DropOldest,
            deny_subscribe: Vec::new(),
            sys_interval_secs: 10,
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
            connect_timeout_secs: 10,
        }
    }
}

/// A configuration error: file, line (when known), field path and cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: String,
    pub message: String,
}

impl Config {
    /// Read, parse and validate a YAML file; every error found is returned.
    pub fn load(_path: &Path) -> Result<Config, Vec<ConfigError>> {
        todo!()
    }
}
