//! The `mqgate` binary: where it is (built once if needed), running it, and
//! reading what `mqgate replay --dry-run` prints.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use test_support::mosquitto::{from_hex, Msg};
use test_support::process::{run_to_end, Finished, Proc, Stream};
use test_support::scratch::Scratch;

/// The workspace root (the folder of the top Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file of the workspace, e.g. `workspace_file("tests/captures/gps-nmea.log")`.
pub fn workspace_file(relative: &str) -> PathBuf {
    let path = workspace_root().join(relative);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// The `mqgate` binary of this build's profile. Built once per test process with
/// `cargo build -p mqgate --bin mqgate` into the same target folder, so that the
/// tests always run the current code (a no-op when it is up to date).
pub fn mqgate_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workspace_bin("mqgate", "mqgate"))
}

/// Builds binary `bin` of workspace package `package` with this test binary's
/// profile into the same target folder (a no-op when it is up to date) and returns
/// its path. Callers keep the path in a `OnceLock`, to build once per process.
pub fn build_workspace_bin(package: &str, bin: &str) -> PathBuf {
    let (target_dir, profile) = target_dir_and_profile();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--profile")
        .arg(cargo_profile_name(&profile))
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(workspace_root());
    let what = format!("cargo build -p {package}");
    let done = run_to_end(&what, cmd, Duration::from_secs(900));
    assert!(done.status.success(), "{what} failed:\n{}", done.stderr);
    let path = target_dir.join(&profile).join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// The target folder and the profile folder name this test binary was built into
/// (the test binary lives in `<target>/<profile>/deps/`).
fn target_dir_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary is in a folder");
    if deps.file_name() == Some(OsStr::new("deps")) {
        let profile_dir = deps.parent().expect("deps/ has a parent");
        if let (Some(target), Some(name)) = (profile_dir.parent(), profile_dir.file_name()) {
            return (target.to_path_buf(), name.to_string_lossy().into_owned());
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    (target, "debug".to_string())
}

/// The profile folder `debug` belongs to the `dev` profile; others share their name.
fn cargo_profile_name(folder: &str) -> &str {
    if folder == "debug" {
        "dev"
    } else {
        folder
    }
}

/// A `mqgate` command with plain (uncoloured) logs at level info.
pub fn mqgate() -> Command {
    let mut cmd = Command::new(mqgate_bin());
    cmd.env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .current_dir(workspace_root());
    cmd
}

/// Runs `mqgate ARGS` to its end (at most 30 s).
pub fn run_mqgate<S: AsRef<OsStr>>(args: &[S]) -> Finished {
    let mut cmd = mqgate();
    cmd.args(args);
    run_to_end("mqgate", cmd, Duration::from_secs(30))
}

/// Runs `mqgate ARGS` to its end (at most 30 s) in the folder `dir`, as a user
/// who types relative paths does.
pub fn run_mqgate_in<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Finished {
    let mut cmd = mqgate();
    cmd.current_dir(dir).args(args);
    run_to_end("mqgate", cmd, Duration::from_secs(30))
}

/// The embedded broker's port, from the line `mqgate run` prints when it listens
/// (`embedded broker listening on ADDR`).
pub fn embedded_broker_port(gw: &Proc, timeout: Duration) -> u16 {
    let line = gw.wait_for_line(Stream::Stdout, &["embedded broker listening on"], timeout);
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

pub fn start_mqgate_run(config: &Path) -> Proc {
    let mut cmd = mqgate();
    cmd.arg("run").arg("--config").arg(config);
    Proc::spawn("mqgate run", cmd)
}

/// The messages `mqgate replay --dry-run --fast` prints for `capture` through
/// source `source` of `config`, in order. Panics unless it exits 0.
pub fn dry_run(config: &Path, source: &str, capture: &Path) -> Vec<Msg> {
    let done = run_mqgate(&[
        OsStr::new("replay"),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--source"),
        OsStr::new(source),
        OsStr::new("--fast"),
        OsStr::new("--dry-run"),
        capture.as_os_str(),
    ]);
    assert_eq!(
        done.code(),
        0,
        "mqgate replay --dry-run failed:\n{}",
        done.stderr
    );
    done.stdout.lines().map(parse_json_message).collect()
}

/// One `{"topic","payload"|"payload_hex","qos","retain"}` line.
pub fn parse_json_message(line: &str) -> Msg {
    let v: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not a JSON message line ({e}): {line:?}"));
    let payload = match (v.get("payload"), v.get("payload_hex")) {
        (Some(serde_json::Value::String(text)), None) => text.as_bytes().to_vec(),
        (None, Some(serde_json::Value::String(hex))) => from_hex(hex),
        _ => panic!("no string `payload` or `payload_hex` in {line:?}"),
    };
    Msg {
        topic: v["topic"]
            .as_str()
            .unwrap_or_else(|| panic!("no `topic` in {line:?}"))
            .to_string(),
        payload,
        qos: v["qos"]
            .as_u64()
            .and_then(|q| u8::try_from(q).ok())
            .unwrap_or_else(|| panic!("no numeric `qos` in {line:?}")),
        retain: v["retain"]
            .as_bool()
            .unwrap_or_else(|| panic!("no boolean `retain` in {line:?}")),
    }
}

/// The `source ID: N frames, M bad, K dead-lettered` counts that `mqgate replay`
/// prints on stderr.
pub fn replay_counts(stderr: &str, source: &str) -> (u64, u64, u64) {
    let prefix = format!("source {source}: ");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line on stderr:\n{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("digits"))
        .collect();
    assert!(
        numbers.len() == 3
            && line.contains("frames")
            && line.contains("bad")
            && line.contains("dead-lettered"),
        "unexpected counts line {line:?}"
    );
    (numbers[0], numbers[1], numbers[2])
}

/// A mappings folder inside `dir` holding the repository's `mappings/nmea-gps.yaml`
/// unchanged (its `../scripts/nmea.rhai` reaches the repository's scripts through a
/// `scripts` link beside it). Returns the folder.
pub fn gps_mappings(dir: &Path) -> PathBuf {
    let mappings = dir.join("mappings");
    std::fs::create_dir_all(&mappings).expect("create mappings folder");
    std::os::unix::fs::symlink(
        workspace_file("mappings/nmea-gps.yaml"),
        mappings.join("nmea-gps.yaml"),
    )
    .expect("link nmea-gps.yaml");
    std::os::unix::fs::symlink(workspace_file("scripts"), dir.join("scripts"))
        .expect("link scripts/");
    mappings
}

/// A gateway in `dir` (`mqgate.yaml`, its mapping and state folder) with the
/// embedded broker and the status page on free loopback ports, `broker_extra`
/// (YAML lines indented under `broker:`) added to the broker section, and one
/// source `json-sensor` looping `tests/captures/json-sensor.log` through
/// `scripts/json-lines.rhai` to `sensors/json-sensor/<name>` at QoS 1.
pub fn json_sensor_gateway(dir: &Scratch, id: &str, broker_extra: &str) -> PathBuf {
    dir.write(
        "mappings/json-sensor.yaml",
        format!(
            "source: json-sensor\nscript: {}\ntopic: \"sensors/{{source}}/{{name}}\"\nqos: 1\n",
            workspace_file("scripts/json-lines.rhai").display()
        ),
    );
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: {id}\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n{broker_extra}\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: json-sensor\n    type: replay\n    file: {capture}\n    loop: true\n\
             \x20   framing: {{ type: lines }}\n",
            state = dir.path().join("state").display(),
            capture = workspace_file("tests/captures/json-sensor.log").display(),
        ),
    )
}

/// A `semtech_udp` source's UDP address, from the line it logs when it listens.
pub fn semtech_udp_addr(gw: &Proc, timeout: Duration) -> std::net::SocketAddr {
    let line = gw.wait_for_line(
        Stream::Stderr,
        &["listening for packet forwarders on UDP"],
        timeout,
    );
    let after = line.split("on UDP ").nth(1).expect("the address follows");
    after
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("no address in {line:?}: {e}"))
}
