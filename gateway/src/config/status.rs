//! The `status:` section: where the status page listens, and who may read it.

use super::paths;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            token_file: None,
            username: None,
            password: None,
            password_file: None,
        }
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
    c.token_file = c.token_file.map(|f| paths::join(dir, f));
    c.password_file = c.password_file.map(|f| paths::join(dir, f));
    c
}

impl StatusConfig {
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
