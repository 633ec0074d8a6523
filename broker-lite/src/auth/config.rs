//! The `auth:` section of the configuration.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use config_report::{ConfigError, FieldPath};

use super::acl::AclFile;
use super::passwd::PasswordFile;

/// Who may connect and what each client may publish and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `user:hash` lines written by `broker-lite passwd`. Without it, user names
    /// are not checked (any password is accepted).
    pub password_file: Option<PathBuf>,
    /// Topic rules per user, client id and pattern; without it every client that
    /// may connect may publish and subscribe to anything.
    pub acl_file: Option<PathBuf>,
    /// Whether a client without a user name may connect. Default: true without a
    /// `password_file`, false with one.
    pub allow_anonymous: Option<bool>,
    /// Failed logins from one IP address, each less than `failure_window_secs`
    /// after the one before, after which that address is refused at once
    /// (CONNACK 5, no password check) until the window has passed. 0 = no limit.
    pub max_failures_per_ip: u32,
    /// Failed logins for one user name, counted like `max_failures_per_ip`,
    /// after which the name is refused at once from any address with a recent
    /// failure; an address without one is still checked. 0 = no limit.
    pub max_failures_per_user: u32,
    /// How long a failure is remembered after the one before it, in seconds.
    pub failure_window_secs: u64,
    /// IP addresses, and user names, remembered at most (each); past it the one
    /// whose last failure is oldest is forgotten.
    pub max_tracked_failures: usize,
    /// Longest a login waits for its turn at a password check, in
    /// milliseconds; then it gets CONNACK 3 (server unavailable).
    pub max_login_wait_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_file: None,
            acl_file: None,
            allow_anonymous: None,
            max_failures_per_ip: 10,
            max_failures_per_user: 10,
            failure_window_secs: 600,
            max_tracked_failures: 4096,
            max_login_wait_ms: 4000,
        }
    }
}

/// Largest `max_login_wait_ms`: a minute. A client waiting longer has long
/// given up.
const MAX_LOGIN_WAIT_MS: u64 = 60_000;

impl AuthConfig {
    /// The effective `allow_anonymous`.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }

    /// Make relative file names relative to `dir` (the folder of the file that
    /// named them).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for path in [&mut self.password_file, &mut self.acl_file]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// Problems visible without reading the files; `at` is the section's path.
    pub(crate) fn problems(&self, at: &FieldPath) -> Vec<(FieldPath, String)> {
        let mut problems = Vec::new();
        for (key, path) in [
            ("password_file", &self.password_file),
            ("acl_file", &self.acl_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                problems.push((at.key(key), "is empty".to_string()));
            }
        }
        if self.failure_window_secs == 0 {
            problems.push((at.key("failure_window_secs"), "must be at least 1".into()));
        }
        if self.max_tracked_failures == 0 {
            problems.push((at.key("max_tracked_failures"), "must be at least 1".into()));
        }
        if !(1..=MAX_LOGIN_WAIT_MS).contains(&self.max_login_wait_ms) {
            problems.push((
                at.key("max_login_wait_ms"),
                format!(
                    "must be 1 to {MAX_LOGIN_WAIT_MS}, got {}",
                    self.max_login_wait_ms
                ),
            ));
        }
        if self.allow_anonymous == Some(false) && self.password_file.is_none() {
            problems.push((
                at.key("allow_anonymous"),
                "false needs a password_file: without one no user name can be checked".into(),
            ));
        }
        problems
    }

    /// Read the password and ACL files and report every problem in them, each
    /// naming the file and line. Call after `resolve_paths`.
    pub fn check_files(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if let Some(path) = &self.password_file {
            if let Err(e) = PasswordFile::load(path) {
                errors.extend(e);
            }
        }
        if let Some(path) = &self.acl_file {
            if let Err(e) = AclFile::load(path) {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_are_allowed_until_a_password_file_is_set() {
        let mut c = AuthConfig::default();
        assert!(c.allows_anonymous());
        c.password_file = Some("pw".into());
        assert!(!c.allows_anonymous());
        c.allow_anonymous = Some(true);
        assert!(c.allows_anonymous());
    }

    #[test]
    fn relative_files_resolve_against_the_given_folder() {
        let mut c = AuthConfig {
            password_file: Some("pw".into()),
            acl_file: Some("/etc/acl".into()),
            ..AuthConfig::default()
        };
        c.resolve_paths(Path::new("conf"));
        assert_eq!(c.password_file, Some(PathBuf::from("conf/pw")));
        assert_eq!(c.acl_file, Some(PathBuf::from("/etc/acl")));
    }

    #[test]
    fn refusing_anonymous_clients_without_a_password_file_is_an_error() {
        let c = AuthConfig {
            allow_anonymous: Some(false),
            ..AuthConfig::default()
        };
        let problems = c.problems(&FieldPath::root().key("auth"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0.to_string(), "auth.allow_anonymous");
    }

    #[test]
    fn login_limits_out_of_range_are_errors_naming_their_keys() {
        let c = AuthConfig {
            failure_window_secs: 0,
            max_tracked_failures: 0,
            max_login_wait_ms: 0,
            ..AuthConfig::default()
        };
        let problems = c.problems(&FieldPath::root().key("auth"));
        let keys: Vec<String> = problems.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "auth.failure_window_secs",
                "auth.max_tracked_failures",
                "auth.max_login_wait_ms"
            ]
        );
        assert!(AuthConfig::default()
            .problems(&FieldPath::root().key("auth"))
            .is_empty());
    }

    #[test]
    fn login_limits_are_read_from_yaml() {
        let text = "auth:\n  max_failures_per_ip: 3\n  max_failures_per_user: 0\n  \
                    failure_window_secs: 60\n  max_tracked_failures: 100\n  max_login_wait_ms: 1500\n";
        let config = crate::Config::from_yaml_str(text, "b.yaml").unwrap();
        assert_eq!(config.auth.max_failures_per_ip, 3);
        assert_eq!(config.auth.max_failures_per_user, 0);
        assert_eq!(config.auth.failure_window_secs, 60);
        assert_eq!(config.auth.max_tracked_failures, 100);
        assert_eq!(config.auth.max_login_wait_ms, 1500);
    }

    #[test]
    fn the_example_configuration_loads_with_its_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let text = std::fs::read_to_string(dir.join("broker-auth.yaml")).unwrap();
        let mut config = crate::Config::from_yaml_str(&text, "broker-auth.yaml").unwrap();
        config.resolve_paths(&dir);
        assert_eq!(config.auth.acl_file, Some(dir.join("acl")));
        assert_eq!(config.auth.password_file, Some(dir.join("passwd")));
        assert!(config.auth.allows_anonymous());
        // The example has no password file (it holds secrets); the ACL file is checked.
        let errors = config.auth.check_files().unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].file.ends_with("passwd"), "{}", errors[0]);
    }

    #[test]
    fn a_missing_file_is_reported_with_its_name() {
        let c = AuthConfig {
            acl_file: Some("no/such/acl".into()),
            ..AuthConfig::default()
        };
        let errors = c.check_files().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .starts_with("no/such/acl: cannot read: "),
            "{}",
            errors[0]
        );
    }
}
