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

/// Wait for SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
