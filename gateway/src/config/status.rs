//! The `status:` section: where the status page listens, who may read it, and
//! how many connections and how much time its clients may take.

use super::paths;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config_report::{FieldPath, Report};
use serde::Deserialize;

/// The `status:` section: the status page and its API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Address the HTTP server listens on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// A bearer token (`Authorization: Bearer <token>`, or `?token=` in the
    /// page's address); or use `token_file` (not both).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// HTTP basic authentication: the user name, with `password` or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Connections open at once. Past it a new connection takes the place of the
    /// oldest one that has not sent a whole request yet, or is answered 503.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, counted from the
    /// connection's start or the end of the previous response.
    pub header_timeout_secs: u64,
    /// Seconds without a byte read or written after which a connection is closed
    /// (a client that stopped reading); `/events` sends every second.
    pub idle_timeout_secs: u64,
    /// Host names (besides `localhost` and IP addresses the server listens on)
    /// that requests may carry in `Host:`; others are answered 421.
    pub allowed_hosts: Vec<String>,
}

/// Most `status.max_connections`: each is a file descriptor, and the unit's
/// `LimitNOFILE=` leaves room for this many beside the broker's.
pub const MAX_STATUS_CONNECTIONS: usize = 1024;
/// Most seconds for `status.header_timeout_secs` and `status.idle_timeout_secs`.
const MAX_TIMEOUT_SECS: u64 = 3600;
/// Least `status.idle_timeout_secs`: well above the second between two events on
/// `/events`, so that a live stream is never idle that long.
const MIN_IDLE_TIMEOUT_SECS: u64 = 5;

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            token_file: None,
            username: None,
            password: None,
            password_file: None,
            max_connections: 64,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            allowed_hosts: Vec::new(),
        }
    }
}

/// How the status server treats its connections, from the `status:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Lower-case host names allowed in `Host:` besides `localhost` and addresses.
    pub allowed_hosts: Vec<String>,
}

impl Default for StatusLimits {
    fn default() -> Self {
        StatusConfig::default().limits()
    }
}

/// Who may read the status page, with the secrets read from their files.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StatusAuth {
    pub token: Option<String>,
    /// User name and password for basic authentication.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for StatusAuth {
    /// Never the secrets themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusAuth")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("basic", &self.basic.as_ref().map(|(u, _)| (u, "***")))
            .finish()
    }
}

impl StatusAuth {
    pub fn is_open(&self) -> bool {
        self.token.is_none() && self.basic.is_none()
    }
}

/// Checks the combinations of the auth keys, and makes the files relative to `dir`.
pub(crate) fn check(mut c: StatusConfig, dir: &Path, report: &mut Report<'_>) -> StatusConfig {
    let at = FieldPath::root().key("status");
    if c.token.is_some() && c.token_file.is_some() {
        report.add(
            &at.key("token_file"),
            "give `token` or `token_file`, not both",
        );
    }
    if c.password.is_some() && c.password_file.is_some() {
        report.add(
            &at.key("password_file"),
            "give `password` or `password_file`, not both",
        );
    }
    let has_password = c.password.is_some() || c.password_file.is_some();
    match (&c.username, has_password) {
        (Some(_), false) => report.add(
            &at.key("username"),
            "basic authentication needs `password` or `password_file` too",
        ),
        (None, true) => report.add(
            &at.key(if c.password.is_some() {
                "password"
            } else {
                "password_file"
            }),
            "a password needs `username` too",
        ),
        _ => {}
    }
    if c.token.as_deref() == Some("") {
        report.add(&at.key("token"), "the token is empty");
    }
    if c.password.as_deref() == Some("") {
        report.add(&at.key("password"), "the password is empty");
    }
    if !(1..=MAX_STATUS_CONNECTIONS).contains(&c.max_connections) {
        report.add(
            &at.key("max_connections"),
            format!(
                "{} is out of range: 1 … {MAX_STATUS_CONNECTIONS}",
                c.max_connections
            ),
        );
    }
    for (key, secs, least) in [
        ("header_timeout_secs", c.header_timeout_secs, 1),
        (
            "idle_timeout_secs",
            c.idle_timeout_secs,
            MIN_IDLE_TIMEOUT_SECS,
        ),
    ] {
        if !(least..=MAX_TIMEOUT_SECS).contains(&secs) {
            report.add(
                &at.key(key),
                format!("{secs} is out of range: {least} … {MAX_TIMEOUT_SECS}"),
            );
        }
    }
    for (i, host) in c.allowed_hosts.iter().enumerate() {
        if let Err(why) = check_host_name(host) {
            report.add(&at.key("allowed_hosts").index(i), why);
        }
    }
    c.token_file = c.token_file.map(|f| paths::join(dir, f));
    c.password_file = c.password_file.map(|f| paths::join(dir, f));
    c
}

/// A name for `allowed_hosts`: letters, digits, `-` and `.`, without a port
/// (the port is never compared: a tunnel may change it).
fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("an empty host name".into());
    }
    if host.len() > 253 {
        return Err(format!("longer than 253 characters: {host:.40}..."));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, `-` and `.`; no port, no scheme)"
        ));
    }
    Ok(())
}

impl StatusConfig {
    /// The connection limits and allowed hosts, as the server uses them.
    pub fn limits(&self) -> StatusLimits {
        StatusLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            allowed_hosts: self
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The secrets, read from their files now (trailing newline ignored); an error
    /// names the file.
    pub fn auth(&self) -> anyhow::Result<StatusAuth> {
        let read = |p: &Path| -> anyhow::Result<String> {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("status: cannot read {}: {e}", p.display()))?;
            let secret = text.trim_end_matches(['\r', '\n']).to_string();
            if secret.is_empty() {
                anyhow::bail!("status: {} is empty", p.display());
            }
            Ok(secret)
        };
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(read(f)?),
            (None, None) => None,
        };
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(f)) => Some(read(f)?),
            (None, None) => None,
        };
        Ok(StatusAuth {
            token,
            basic: self.username.clone().zip(password),
        })
    }
}
