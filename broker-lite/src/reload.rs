//! Reading the broker's files again while it runs: the password file, the ACL
//! file and the TLS certificates and keys of its listeners (SIGHUP for the
//! `broker-lite` command, `Broker::reload` for a broker inside another program).
//!
//! Every file is read and checked first; only when all of them are good is
//! anything put in force, all together. On any error nothing changes and every
//! error is returned, each naming its file (and line). What changes:
//!
//! - passwords: the next CONNECT is checked against the new file; clients
//!   already connected stay connected;
//! - ACL rules: in force at once for every session, connected or not (each
//!   session's rules are compiled again for its user and client id);
//! - certificates: the next TLS handshake uses them; open connections keep theirs.
//!
//! The configuration file itself is not read again: new listeners, limits or
//! file names take a restart.

use std::fmt;

use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::auth::Auth;
use crate::router::Event;
use crate::server::Broker;

/// The files of a reload, read and checked, ready to be put in force.
pub struct PreparedReload {
    auth: Auth,
    /// A new acceptor for each TLS listener, by its place in `Broker::kinds`.
    tls: Vec<(usize, TlsAcceptor)>,
}

impl fmt::Debug for PreparedReload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedReload")
            .field("auth", &self.auth)
            .field("tls_listeners", &self.tls.len())
            .finish()
    }
}

/// What a reload put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Users and ACL rules now in force.
    pub auth: String,
    /// TLS listeners whose certificate and key were read again.
    pub tls_listeners: usize,
}

impl fmt::Display for Reloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reloaded: {}; {} TLS listener(s)",
            self.auth, self.tls_listeners
        )
    }
}

/// Why a reload changed nothing: every problem found, each naming its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadError {
    pub errors: Vec<String>,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reload refused, nothing changed: {}",
            self.errors.join("; ")
        )
    }
}

impl std::error::Error for ReloadError {}

impl Broker {
    /// Read the password, ACL and TLS files named in the configuration again
    /// and check them, without changing anything. The files are read on a
    /// blocking thread, off the runtime.
    pub async fn prepare_reload(&self) -> Result<PreparedReload, ReloadError> {
        let auth_config = self.auth_config.clone();
        let previous = self.accepting.shared.auth();
        let tls_files: Vec<(usize, crate::listener::TlsConfig)> = self
            .kinds
            .iter()
            .enumerate()
            .filter_map(|(i, kind)| kind.tls.as_ref().map(|t| (i, t.config.clone())))
            .collect();
        let read = move || {
            let mut errors = Vec::new();
            let auth = Auth::reload(&auth_config, &previous)
                .map_err(|e| errors.extend(e.iter().map(ToString::to_string)))
                .ok();
            let mut tls = Vec::new();
            for (i, files) in &tls_files {
                match crate::listener::tls_acceptor(files) {
                    Ok(acceptor) => tls.push((*i, acceptor)),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            match auth {
                Some(auth) if errors.is_empty() => Ok(PreparedReload { auth, tls }),
                _ => Err(ReloadError { errors }),
            }
        };
        tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
            Err(ReloadError {
                errors: vec![format!("reading the files failed: {e}")],
            })
        })
    }

    /// Put checked files in force, all together.
    pub async fn apply_reload(&self, prepared: PreparedReload) -> Reloaded {
        let auth = std::sync::Arc::new(prepared.auth);
        let summary = auth.summary();
        // The router first, so that a client let in by the new passwords finds
        // the new ACL rules already there.
        let (done, applied) = oneshot::channel();
        let event = Event::Reload {
            auth: auth.clone(),
            done,
        };
        if self.router.send(event).await.is_ok() {
            let _ = applied.await;
        }
        let shared = &self.accepting.shared;
        *shared
            .auth
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = auth;
        let tls_listeners = prepared.tls.len();
        for (i, acceptor) in prepared.tls {
            if let Some(listener) = &self.kinds[i].tls {
                listener.replace(acceptor);
            }
        }
        Reloaded {
            auth: summary,
            tls_listeners,
        }
    }

    /// `prepare_reload`, then `apply_reload` if every file is good. The outcome
    /// is logged: one line when it worked, every error when it did not.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let prepared = match self.prepare_reload().await {
            Ok(p) => p,
            Err(e) => {
                for why in &e.errors {
                    error!("reload: {why}");
                }
                error!(
                    "reload refused ({} error(s)); the files in force stay",
                    e.errors.len()
                );
                return Err(e);
            }
        };
        let reloaded = self.apply_reload(prepared).await;
        info!("{reloaded}");
        Ok(reloaded)
    }
}
