//! Commands from MQTT over the air, end to end: `mosquitto_pub` → the embedded
//! broker → `mqgate run` → a simulated RN2483 on a pseudo-terminal, with the
//! result of each command read by `mosquitto_sub`, packets received before and
//! after, and the EU868 duty-cycle budget turning a command away.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::modem_sim::{Rn2483Model, Sim};
use common::temp_link;
use serde_json::Value;
use test_support::mosquitto::{mosquitto_pub, Msg, Subscriber};
use test_support::process::{Proc, Stream};
use test_support::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// Each packet's payload as text on `sensors/<source>`; commands sent as they come.
const SCRIPT: &str = "fn map(frame) {\n    #{ payload: frame.text }\n}\n";

/// A gateway with one `rn2483` source `lora` on `link`, set to SF12 at 868.9 MHz:
/// the 868.7–869.2 MHz sub-band allows 0.1 % of an hour, 3.6 s on air.
fn gateway(dir: &Scratch, link: &Path) -> std::path::PathBuf {
    dir.write("mappings/lora.rhai", SCRIPT);
    dir.write(
        "mappings/lora.yaml",
        "source: lora\nscript: lora.rhai\ntopic: \"sensors/{source}\"\n\
         commands:\n  topic: \"cmd/{source}/#\"\n",
    );
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: lora-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             sources:\n  - id: lora\n    type: rn2483\n    path: {link}\n\
             \x20   reply_timeout_ms: 1000\n\
             \x20   reopen: {{ initial_ms: 100, max_ms: 300 }}\n\
             \x20   setup:\n\
             \x20     - radio set mod lora\n\
             \x20     - radio set freq 868900000\n\
             \x20     - radio set sf sf12\n\
             \x20     - radio set bw 125\n\
             \x20     - radio set cr 4/5\n\
             \x20     - radio set wdt 0\n",
            state = dir.path().join("state").display(),
            link = link.display(),
        ),
    )
}

fn json(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

#[test]
fn a_command_goes_over_the_air_between_packets_and_the_next_one_over_the_duty_cycle_is_rejected() {
    let (dir, link) = temp_link("modem-commands");
    let model = Rn2483Model::new();
    let air = model.air();
    let sim = Sim::start(&link, model);
    let config = gateway(&dir, &link);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqgate"));
    cmd.arg("run").arg("--config").arg(&config);
    let mut gw = Proc::spawn("mqgate run", cmd);
    let line = gw.wait_for_line(Stream::Stdout, &["embedded broker listening on"], WAIT);
    let port: u16 = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    gw.wait_for_line(Stream::Stderr, &["modem receiving"], WAIT);
    let results = Subscriber::start("results", port, "cmd/lora/+/result");
    let sensors = Subscriber::start("sensors", port, "sensors/lora");

    sim.packet(b"before", -80, 3);
    sensors.wait_until("the packet before", WAIT, |m| !m.is_empty());
    // 51 bytes at SF12 take about 2.5 s: the first fits the 3.6 s, a second not.
    let command = "A".repeat(51);
    mosquitto_pub(port, &["-q", "1", "-t", "cmd/lora/tx", "-m", &command]);
    let got = results.wait_until("the first result", WAIT, |m| !m.is_empty());
    let first = json(&got[0]);
    assert_eq!(first["status"], "sent", "{first}");
    assert_eq!(*air.lock().expect("air log"), [command.as_bytes().to_vec()]);
    sim.packet(b"after", -81, 4);
    sensors.wait_until("the packet after", WAIT, |m| m.len() >= 2);

    mosquitto_pub(port, &["-q", "1", "-t", "cmd/lora/tx", "-m", &command]);
    let got = results.wait_until("the second result", WAIT, |m| m.len() >= 2);
    let second = json(&got[1]);
    assert_eq!(second["status"], "rejected", "{second}");
    let error = second["error"].as_str().expect("an error text");
    assert!(
        error.starts_with("duty_cycle: source lora: sub-band 868.7–869.2 MHz (0.1 %)"),
        "{error}"
    );
    assert_eq!(air.lock().expect("air log").len(), 1, "nothing more on air");
    let texts: Vec<String> = sensors.messages().iter().map(Msg::text).collect();
    assert_eq!(texts, ["before", "after"]);

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}
