//! The `upstream:` section: an MQTT broker the gateway publishes to.

use super::paths;
use std::fmt;
use std::path::{Path, PathBuf};

use config_report::{FieldPath, Report};
use serde::{Deserialize, Deserializer};

use super::qos::Text;
use super::source::{check_backoff, ReopenConfig};

/// Where and how to connect upstream. Relative file paths are resolved against
/// the gateway file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `mqtt://host[:port]` (port 1883) or `mqtts://host[:port]` (TLS, port 8883).
    pub url: BrokerUrl,
    /// Absent or empty: `mqgate-<gateway id>`.
    #[serde(default)]
    pub client_id: String,
    pub username: Option<String>,
    /// The password itself; or use `password_file` (not both).
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust instead of the system's roots. Needs `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), together with `key_file`. Needs `mqtts://`.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM), together with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Seconds between PINGREQs when idle; 0 turns keep-alive off.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u16,
    /// `false` (the default) keeps the broker's session across reconnects, which QoS 2
    /// needs to finish an exchange begun before a restart.
    #[serde(default)]
    pub clean_session: bool,
    /// Put in front of every topic sent upstream, e.g. `site1/` (empty: nothing).
    #[serde(default)]
    pub topic_prefix: String,
    /// QoS 1 and 2 messages sent and not yet acknowledged (PUBACK, PUBCOMP), at most.
    /// The default suits every broker tried with its default limits; a link with a
    /// long round trip needs more (messages/s ≈ max_inflight / round-trip time).
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u32,
    /// Waits between connect attempts: `initial_ms`, doubled (with jitter) up to
    /// `max_ms`. The longest wait is how late mqgate may notice a broker is back.
    #[serde(default = "default_reconnect")]
    pub reconnect: ReopenConfig,
}

const fn default_reconnect() -> ReopenConfig {
    ReopenConfig {
        initial_ms: 500,
        max_ms: 5_000,
    }
}

const fn default_keep_alive() -> u16 {
    30
}

/// Within EMQX's default `max_awaiting_rel` (100), the smallest limit of the brokers
/// tried (aedes closes the connection past 1,000 QoS 2 messages awaiting PUBREL).
pub const DEFAULT_MAX_INFLIGHT: u32 = 100;
/// Packet ids wrap after 65,535: far fewer may be in flight at once.
pub const MAX_INFLIGHT_LIMIT: u32 = 30_000;

const fn default_max_inflight() -> u32 {
    DEFAULT_MAX_INFLIGHT
}

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl TryFrom<String> for BrokerUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(format!(
                "{url:?} is not an MQTT url: write mqtt://host:port or mqtts://host:port"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "{url:?}: only a host and a port may follow the scheme (credentials go in username and password)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // A bracketed IPv6 address without a port: `[::1]`.
            Some((_, tail)) if tail.ends_with(']') => (rest, None),
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{url:?}: port must be 1 to 65535, got {port:?}"))?;
                (host, Some(port))
            }
            None => (rest, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls { 8883 } else { 1883 }),
        })
    }
}

impl<'de> Deserialize<'de> for BrokerUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Text {
            expected: "an mqtt:// or mqtts:// url",
            parse: |url| BrokerUrl::try_from(url.to_string()),
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Resolves relative paths and checks what the types cannot.
pub(crate) fn check(
    mut config: UpstreamConfig,
    default_client_id: impl FnOnce() -> String,
    dir: &Path,
    at: &FieldPath,
    report: &mut Report<'_>,
) -> UpstreamConfig {
    if config.client_id.is_empty() {
        config.client_id = default_client_id();
    }
    if config.password.is_some() && config.password_file.is_some() {
        report.add(
            &at.key("password_file"),
            "set `password` or `password_file`, not both",
        );
    }
    if (config.password.is_some() || config.password_file.is_some()) && config.username.is_none() {
        report.add(
            &at.key("username"),
            "a password needs a username too (MQTT 3.1.1 [MQTT-3.1.2-22])",
        );
    }
    if config.cert_file.is_some() != config.key_file.is_some() {
        let missing = if config.cert_file.is_some() {
            "key_file"
        } else {
            "cert_file"
        };
        let given = if config.cert_file.is_some() {
            "cert_file"
        } else {
            "key_file"
        };
        report.add(
            &at.key(given),
            format!("`cert_file` and `key_file` go together: `{missing}` is missing"),
        );
    }
    for (name, file) in [
        ("password_file", &mut config.password_file),
        ("ca_file", &mut config.ca_file),
        ("cert_file", &mut config.cert_file),
        ("key_file", &mut config.key_file),
    ] {
        let Some(file) = file else { continue };
        *file = paths::join(dir, &*file);
        if !file.is_file() {
            report.add(
                &at.key(name),
                format!("file {} does not exist", file.display()),
            );
        }
        if name != "password_file" && !config.url.tls {
            report.add(
                &at.key(name),
                format!("needs an mqtts:// url; got {}", config.url),
            );
        }
    }
    check_backoff(&config.reconnect, &at.key("reconnect"), report);
    if !(1..=MAX_INFLIGHT_LIMIT).contains(&config.max_inflight) {
        report.add(
            &at.key("max_inflight"),
            format!(
                "must be 1 to {MAX_INFLIGHT_LIMIT} (messages awaiting PUBACK or PUBCOMP), got {}",
                config.max_inflight
            ),
        );
    }
    if let Some(c) = config
        .topic_prefix
        .chars()
        .find(|c| matches!(c, '+' | '#' | '\0'))
    {
        report.add(
            &at.key("topic_prefix"),
            format!("{c:?} is not allowed in a topic"),
        );
    }
    config
}

#[cfg(test)]
mod tests {
    use super::BrokerUrl;

    fn url(s: &str) -> Result<BrokerUrl, String> {
        BrokerUrl::try_from(s.to_string())
    }

    #[test]
    fn broker_urls_take_default_ports_by_scheme() {
        assert_eq!(url("mqtt://broker.local").unwrap().port, 1883);
        let tls = url("mqtts://broker.example.com").unwrap();
        assert!(tls.tls);
        assert_eq!(tls.port, 8883);
        let v6 = url("mqtt://[::1]:1884").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1884));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1884");
        assert_eq!(url("mqtt://[::1]").unwrap().port, 1883);
    }

    #[test]
    fn broker_urls_refuse_other_schemes_paths_and_bad_ports() {
        for bad in [
            "http://x",
            "tcp://x:1883",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://u:p@x",
            "mqtt://x/t",
        ] {
            assert!(url(bad).is_err(), "{bad} was accepted");
        }
    }
}
