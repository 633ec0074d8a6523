//! What each `mqgate` subcommand does. `main.rs` only parses arguments and maps
//! the outcome to an exit code.

pub mod capture;
pub mod check;
pub mod map;
pub mod replay;
pub mod run;

use std::path::Path;

use crate::config::GatewayConfig;
use crate::message::Message;

/// Exit code for a configuration or script error (as `broker-lite` uses).
pub const EXIT_CONFIG: u8 = 2;

/// Load the gateway file, printing every error on stderr.
pub fn load_config(path: &Path) -> Result<GatewayConfig, u8> {
    GatewayConfig::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("mqgate: {} error(s) in the configuration", errors.len());
        EXIT_CONFIG
    })
}

/// One message as a JSON line: `{"topic","payload","qos","retain"}`. A payload that
/// is not UTF-8 is written as `payload_hex` instead.
pub fn message_json(m: &Message) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("topic".into(), m.topic.clone().into());
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

/// Wait for SIGINT or SIGTERM; SIGHUP is logged and otherwise ignored.
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    // The handlers are installed now, when this is called, not when it is first
    // awaited: a signal that comes in between is not lost. SIGHUP (`systemctl
    // reload`) would end the process by default; until reloading mappings is
    // implemented it is answered with a log line and nothing changes.
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        let hangups = async {
            match hangup.as_mut() {
                Some(h) => loop {
                    h.recv().await;
                    tracing::warn!("SIGHUP: reloading is not implemented yet; nothing changed");
                },
                None => std::future::pending::<()>().await,
            }
        };
        let terms = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terms => {}
            _ = hangups => {}
        }
    }
}
