//! A gateway with a looping replay source and its status server on a free port,
//! in this process, for the status server's tests.
//!
//! Each test file compiles this module on its own and uses only part of it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use test_support::Scratch;

use mqgate::config::GatewayConfig;
use mqgate::pipeline;
use mqgate::status;
use tokio::sync::watch;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A gateway file in a scratch folder (with the gateway's state) that is removed
/// when this is dropped.
pub(crate) struct ConfigFile {
    pub(crate) path: PathBuf,
    _dir: Scratch,
}

/// A gateway file with one looping replay of `json-sensor.log` as source `sensor`,
/// and `outputs` (YAML sections) added.
pub(crate) fn write_config(name: &str, outputs: &str) -> ConfigFile {
    write_config_with(name, outputs, "", None)
}

/// Like `write_config`, with `status` (YAML lines indented under `status:`) added
/// and `script` (its text, written next to the file) in place of `json-lines.rhai`.
pub(crate) fn write_config_with(
    name: &str,
    outputs: &str,
    status: &str,
    script: Option<&str>,
) -> ConfigFile {
    let scratch = Scratch::new(&format!("mqgate-status-{name}"));
    let dir = scratch.path();
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    let script = match script {
        Some(text) => {
            let path = dir.join("sensor.rhai");
            std::fs::write(&path, text).unwrap();
            path
        }
        None => workspace().join("scripts/json-lines.rhai"),
    };
    std::fs::write(
        mappings.join("sensor.yaml"),
        format!(
            "source: sensor\nscript: {}\ntopic: \"sensors/{{source}}/{{name}}\"\nqos: 1\n",
            script.display()
        ),
    )
    .unwrap();
    let file = dir.join("mqgate.yaml");
    std::fs::write(
        &file,
        format!(
            "gateway:\n  id: status-test\n  state_dir: {state}\n{outputs}\
             status:\n  listen: 127.0.0.1:0\n{status}\
             sources:\n  - id: sensor\n    type: replay\n    file: {capture}\n    loop: true\n\
             \x20   framing:\n      type: lines\n",
            state = dir.join("state").display(),
            capture = workspace().join("tests/captures/json-sensor.log").display(),
        ),
    )
    .unwrap();
    ConfigFile {
        path: file,
        _dir: scratch,
    }
}

/// A started gateway with its status server.
pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    _running: pipeline::Running,
    _stop: watch::Sender<bool>,
    /// Dropped last: the folder goes after the gateway that uses it.
    _config: ConfigFile,
}

pub(crate) async fn start(config_file: ConfigFile) -> Gateway {
    let config = GatewayConfig::load(&config_file.path).expect("the config loads");
    let (stop, shutdown) = watch::channel(false);
    let running = pipeline::start(&config, None, None, None, shutdown)
        .await
        .expect("the gateway starts");
    let (addr, _task) = status::start(
        config.status.listen,
        config.status.auth().expect("the credentials are readable"),
        config.status.limits(),
        status::Watched::new(&running),
        stop.subscribe(),
    )
    .await
    .expect("the status server starts");
    assert_ne!(addr.port(), 0, "the bound port is reported");
    Gateway {
        addr,
        _running: running,
        _stop: stop,
        _config: config_file,
    }
}
