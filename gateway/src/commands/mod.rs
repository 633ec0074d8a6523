//! What each `mqgate` subcommand does. `main.rs` only parses arguments and maps
//! the outcome to an exit code.

pub mod capture;
pub mod check;
pub mod encode;
pub mod map;
pub mod replay;
pub mod run;
pub mod send;

use std::path::Path;

use crate::config::GatewayConfig;
use crate::message::Message;

/// Exit code for a configuration or script error (as `broker-lite` uses).
pub const EXIT_CONFIG: u8 = 2;

/// Load the gateway file, printing every error on stderr.
pub fn load_config(path: &Path) -> Result<GatewayConfig, u8> {
    let config = GatewayConfig::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("mqgate: {} error(s) in the configuration", errors.len());
        EXIT_CONFIG
    })?;
    crate::logging::set_level(&config.log.level);
    Ok(config)
}

/// One message as a JSON line: `{"topic","payload","qos","retain"}`. A payload that
/// is not UTF-8 is written as `payload_hex` instead.
pub fn message_json(m: &Message) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("topic".into(), m.topic.as_str().into());
    match std::str::from_utf8(&m.payload) {
        Ok(text) => obj.insert("payload".into(), text.into()),
        Err(_) => obj.insert(
            "payload_hex".into(),
            m.payload
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        ),
    };
    obj.insert("qos".into(), (m.qos as u8).into());
    obj.insert("retain".into(), m.retain.into());
    serde_json::Value::Object(obj).to_string()
}

/// What a signal asks of a running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP (`systemctl reload`).
    Reload,
}

/// The signals a long-running command answers. The handlers are installed when
/// this is made, not when first awaited, so a signal that comes in between is
/// not lost (and SIGHUP, which would end the process by default, never does).
#[derive(Debug)]
pub struct Signals {
    hangup: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot catch {name}: {e}");
                None
            }
        };
        Signals {
            hangup: install(SignalKind::hangup(), "SIGHUP"),
            term: install(SignalKind::terminate(), "SIGTERM"),
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// The next signal.
    pub async fn next(&mut self) -> Asked {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => Asked::Stop,
            _ = recv(&mut self.interrupt) => Asked::Stop,
            _ = recv(&mut self.hangup) => Asked::Reload,
        }
    }
}

/// Wait for SIGINT or SIGTERM; SIGHUP is logged and otherwise ignored (for
/// commands that have nothing to reload).
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    let mut signals = Signals::install();
    async move {
        while signals.next().await == Asked::Reload {
            tracing::warn!("SIGHUP: this command has nothing to reload");
        }
    }
}
