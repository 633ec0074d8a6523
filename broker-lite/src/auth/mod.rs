//! Authentication and authorisation: who may connect (password file, anonymous
//! clients) and which topics each client may publish, subscribe to and receive
//! (ACL file).
//!
//! The files are read when the broker starts, and again on a reload
//! (`Broker::reload`, SIGHUP). A connection checks the password right after CONNECT, on a blocking thread (a slow hash must not
//! stall the runtime); the router compiles the client's ACL when it takes the
//! CONNECT and checks it on every PUBLISH, SUBSCRIBE and delivery.
//!
//! Password checks run one per core (`verify_queue`). Failed logins are
//! remembered per address and user name (`throttle`): an address or name that
//! failed too often is refused without a check, and a login from an address
//! without recent failures waits in front of the others, for a bounded time.

pub mod acl;
mod config;
pub mod hash;
mod login;
pub mod passwd;
mod passwd_cli;
mod session_acls;
mod throttle;
mod verify_queue;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::error;

use config_report::ConfigError;

pub use acl::{AclFile, ClientAcl};
pub use config::AuthConfig;
pub(crate) use login::login;
pub use passwd::PasswordFile;
pub use passwd_cli::passwd_command;
pub(crate) use session_acls::SessionAcls;

use hash::{PasswordHash, DEFAULT_ITERATIONS};
use throttle::{FailureLimits, Failures};
use verify_queue::VerifyQueue;

/// The loaded password and ACL files and the anonymous policy.
#[derive(Debug)]
pub struct Auth {
    passwords: Option<PasswordFile>,
    acl: Option<AclFile>,
    allow_anonymous: bool,
    /// Password checks running at once; more wait their turn, so that a flood of
    /// logins cannot take every core from the router.
    verify_slots: Arc<VerifyQueue>,
    /// Recent failed logins per address and user name.
    failures: Arc<Mutex<Failures>>,
    /// Longest a login waits for a slot.
    max_login_wait: Duration,
}

impl Auth {
    /// Read the files named by `config`; every problem found is returned.
    pub fn load(config: &AuthConfig) -> Result<Auth, Vec<ConfigError>> {
        let passwords = config.password_file.as_deref().map(PasswordFile::load);
        let acl = config.acl_file.as_deref().map(AclFile::load);
        let mut errors = Vec::new();
        let passwords = passwords.and_then(|r| r.map_err(|e| errors.extend(e)).ok());
        let acl = acl.and_then(|r| r.map_err(|e| errors.extend(e)).ok());
        if !errors.is_empty() {
            return Err(errors);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Auth {
            passwords,
            acl,
            allow_anonymous: config.allows_anonymous(),
            verify_slots: VerifyQueue::new(cores),
            failures: Arc::new(Mutex::new(Failures::new(FailureLimits::from_config(
                config,
            )))),
            max_login_wait: Duration::from_millis(config.max_login_wait_ms.max(1)),
        })
    }

    /// `load` again for a reload: the new files, the same password-check slots
    /// (shared with the checks still under way) and the failures remembered so
    /// far, under the new limits.
    pub(crate) fn reload(config: &AuthConfig, previous: &Auth) -> Result<Auth, Vec<ConfigError>> {
        let mut auth = Auth::load(config)?;
        auth.verify_slots = previous.verify_slots.clone();
        auth.failures = previous.failures.clone();
        auth.failures()
            .set_limits(FailureLimits::from_config(config));
        Ok(auth)
    }

    /// The failure tables, locked (never across an await).
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What is in force, for the log: users in the password file and ACL rules.
    pub fn summary(&self) -> String {
        let users = self.passwords.as_ref().map_or(0, PasswordFile::len);
        match &self.acl {
            Some(acl) => format!("{users} user(s), {} ACL rule(s)", acl.rule_count()),
            None => format!("{users} user(s), no ACL file"),
        }
    }

    /// `load` for `Broker::start`: the errors are logged one by one and
    /// returned as one `io::Error`, so a bad file never opens the broker.
    /// (`Config::load` reads the files first: the command line reports them
    /// with exit code 2 before this point.)
    pub(crate) fn load_for_start(config: &AuthConfig) -> std::io::Result<Auth> {
        Auth::load(config).map_err(|errors| {
            for e in &errors {
                error!("{e}");
            }
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            std::io::Error::new(std::io::ErrorKind::InvalidData, list.join("; "))
        })
    }

    /// Whether an ACL file is in force.
    pub fn has_acl(&self) -> bool {
        self.acl.is_some()
    }

    /// The compiled ACL of a client; `None` when there is no ACL file (all allowed).
    pub fn acl_for(&self, user: Option<&str>, client_id: &str) -> Option<ClientAcl> {
        self.acl.as_ref().map(|acl| acl.compile(user, client_id))
    }

    /// Check `password` for `user` against the password file. Slow: call it on
    /// a blocking thread. An unknown user costs the same as a wrong password,
    /// so the time taken does not tell which user names exist.
    fn verify(&self, user: &str, password: &[u8]) -> bool {
        let Some(passwords) = &self.passwords else {
            return false;
        };
        match passwords.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = decoy().verify(password);
                false
            }
        }
    }
}

/// A hash of nothing in particular, checked for unknown users.
fn decoy() -> &'static PasswordHash {
    static DECOY: OnceLock<PasswordHash> = OnceLock::new();
    DECOY.get_or_init(|| {
        PasswordHash::new(b"decoy", DEFAULT_ITERATIONS)
            .unwrap_or_else(|_| PasswordHash::with_salt(b"decoy", vec![0; 16], DEFAULT_ITERATIONS))
    })
}

/// A problem on one line of a password or ACL file.
pub(crate) fn line_error(path: &Path, line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line: Some(line),
        ..ConfigError::whole_file(path, message)
    }
}

/// A password or ACL file that cannot be read.
pub(crate) fn unreadable(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError::whole_file(path, format!("cannot read: {e}"))
}
