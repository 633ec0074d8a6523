//! Modbus sources against a device no one here wrote: pymodbus 3.16 serving the
//! register layout of `tests/peers/modbus/layout.json` over TCP, RTU over TCP
//! and RTU on pseudo-terminals, with dead, late and busy units, exceptions and a
//! relay that spoils CRCs; mqgate's published values cross-checked against
//! `mbpoll` (libmodbus) reading the same registers; writes from `mosquitto_pub`
//! commands down to the device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mqgate_tests::http::{api_status, status_addr};
use mqgate_tests::modbus::{layout, mbpoll_tcp, mbpoll_values, CrcRelay, LayoutField, Slave};
use mqgate_tests::mqgate::{embedded_broker_port, run_mqgate, start_mqgate_run};
use serde_json::Value;
use test_support::mosquitto::{mosquitto_pub, Msg, Subscriber};
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(30);

/// Publishes each poll as `{values, registers, latency_ms, errors}`: the frame's
/// parts a script sees, for the checks.
const POLL_SCRIPT: &str = r#"
fn map(frame) {
    #{
        payload: json(#{
            values: frame.values,
            registers: frame.registers,
            latency_ms: parse_float(frame.meta.latency_ms),
            errors: frame.meta.errors,
        }),
    }
}
"#;

/// A gateway with one Modbus source `bus` (its YAML body after `type:`), the
/// embedded broker and the status server on free ports. `script`: the mapping
/// publishes through [`POLL_SCRIPT`] on `modbus/{device}`; otherwise as is.
fn gateway(dir: &Scratch, source: &str, script: bool, mapping_extra: &str) -> PathBuf {
    if script {
        dir.write("mappings/poll.rhai", POLL_SCRIPT);
    }
    dir.write(
        "mappings/bus.yaml",
        format!(
            "source: bus\n{}topic: \"modbus/{{device}}\"\n{mapping_extra}",
            if script { "script: poll.rhai\n" } else { "" }
        ),
    );
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: mb-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: bus\n{source}",
            state = dir.path().join("state").display(),
        ),
    )
}

fn started(config: &Path) -> (Proc, u16) {
    let gw = start_mqgate_run(config);
    let port = embedded_broker_port(&gw, WAIT);
    (gw, port)
}

fn json(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

/// `fields:` of a device, indented for a device item.
fn fields_yaml(fields: &[LayoutField]) -> String {
    fields
        .iter()
        .map(|f| format!("          - {}\n", f.yaml()))
        .collect()
}

/// The device `name` of the status API's source `bus`.
fn device_status(status: &Value, name: &str) -> Value {
    let bus = status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "bus"))
        .unwrap_or_else(|| panic!("no source bus in {status}"));
    bus["modbus"]["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no device {name} in {bus}"))
}

fn check_every_field(fields: &[LayoutField], values: &Value) {
    let mut wrong = Vec::new();
    for f in fields {
        match values.get(&f.name) {
            Some(got) if f.matches(got) => {}
            got => wrong.push(format!("{}: want {}, got {got:?}", f.name, f.expected)),
        }
    }
    assert!(
        wrong.is_empty(),
        "fields decoded wrong:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_type_and_order_of_the_layout_reads_as_pymodbus_serves_it_and_as_mbpoll_reads_it() {
    let fields = layout();
    let slave = Slave::start(&["--tcp", "127.0.0.1:0"]);
    let dir = Scratch::new("modbus-layout");
    let source = format!(
        "    type: modbus_tcp\n    host: 127.0.0.1:{port}\n    devices:\n      - name: lab\n        unit: 1\n        every: 500ms\n        fields:\n{}",
        fields_yaml(&fields),
        port = slave.port()
    );
    let config = gateway(&dir, &source, true, "");
    let (gw, port) = started(&config);
    let sub = Subscriber::start("polls", port, "modbus/lab");
    let polls = sub.wait_until("a poll", WAIT, |m| !m.is_empty());
    let poll = json(&polls[0]);
    assert_eq!(poll["errors"], Value::Null, "{poll}");
    check_every_field(&fields, &poll["values"]);
    assert!(
        poll["latency_ms"].as_f64().is_some_and(|l| l > 0.0),
        "{poll}"
    );

    // mbpoll, on libmodbus, reads the same registers: mqgate's raw registers are
    // what it reads, and its values are what mbpoll's own decoding gives.
    let hex = |kind: &str, address: u16, count: u16| -> Vec<u64> {
        mbpoll_values(&mbpoll_tcp(
            slave.port(),
            1,
            &format!("{kind}:hex"),
            address,
            count,
            &[],
        ))
        .iter()
        .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex"))
        .collect()
    };
    for f in fields
        .iter()
        .filter(|f| f.register == "holding" || f.register == "input")
    {
        let count = poll["registers"][&f.name]
            .as_array()
            .unwrap_or_else(|| panic!("no registers for {}", f.name))
            .len() as u16;
        let kind = if f.register == "holding" { "4" } else { "3" };
        let theirs = hex(kind, f.address, count);
        let ours: Vec<u64> = poll["registers"][&f.name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(ours, theirs, "registers of {}", f.name);
    }
    // mbpoll's own 32-bit decoding (`-B`: ABCD; without: CDAB) against ours.
    for f in fields.iter().filter(|f| {
        matches!(f.ty.as_str(), "i32" | "f32" | "u32")
            && matches!(f.order.as_str(), "ABCD" | "CDAB")
            && f.register == "holding"
            && (f.ty != "u32" || f.expected.as_f64().unwrap_or(0.0) < 2_147_483_648.0)
    }) {
        let kind = if f.ty == "f32" { "4:float" } else { "4:int" };
        let extra: &[&str] = if f.order == "ABCD" { &["-B"] } else { &[] };
        let theirs: f64 = mbpoll_values(&mbpoll_tcp(slave.port(), 1, kind, f.address, 1, extra))[0]
            .parse()
            .expect("a number");
        let theirs = theirs * f.scale + f.offset;
        let ours = poll["values"][&f.name].as_f64().expect("a number");
        // mbpoll prints floats with six significant digits.
        assert!(
            (ours - theirs).abs() <= theirs.abs() * 1e-5,
            "{}: mqgate {ours}, mbpoll {theirs}",
            f.name
        );
    }
    // Coils and discrete inputs, bit by bit.
    for f in fields
        .iter()
        .filter(|f| f.register == "coil" || f.register == "discrete")
    {
        let kind = if f.register == "coil" { "0" } else { "1" };
        let theirs = mbpoll_values(&mbpoll_tcp(slave.port(), 1, kind, f.address, 1, &[]))[0] == "1";
        assert_eq!(poll["values"][&f.name], Value::Bool(theirs), "{}", f.name);
    }
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let lab = device_status(&status, "lab");
    assert_eq!(lab["available"], true);
    assert!(lab["polls_ok"].as_u64() >= Some(1), "{lab}");
    drop(slave);
}

#[test]
fn polls_without_a_script_are_one_json_object_per_device_over_rtu_on_a_pseudo_terminal() {
    let fields: Vec<LayoutField> = layout()
        .into_iter()
        .filter(|f| f.register == "input" || f.address < 40 && f.register == "holding")
        .collect();
    let slave = Slave::start(&["--rtu", "pty", "--baud", "19200", "--units", "7"]);
    let dir = Scratch::new("modbus-rtu");
    let source = format!(
        "    type: modbus_rtu\n    path: {path}\n    baud: 19200\n    devices:\n      - name: meter\n        unit: 7\n        every: 300ms\n        fields:\n{}",
        fields_yaml(&fields),
        path = slave.path().display()
    );
    let config = gateway(&dir, &source, false, "");
    let (gw, port) = started(&config);
    let sub = Subscriber::start("polls", port, "modbus/meter");
    let discovery = Subscriber::start("discovery", port, "homeassistant/#");
    let availability = Subscriber::start("availability", port, "mqgate/mb-gw/#");
    let polls = sub.wait_until("two polls", WAIT, |m| m.len() >= 2);
    for poll in &polls {
        let values = json(poll);
        check_every_field(&fields, &values);
        assert_eq!(
            values.as_object().map(|o| o.len()),
            Some(fields.len()),
            "one key per field, nothing else: {values}"
        );
    }
    gw.wait_for_line(Stream::Stderr, &["Modbus bus open", "source=bus"], WAIT);

    // A Home Assistant entity per field, on the device's topic, available while
    // the gateway and the device both are.
    let configs = discovery.wait_until("an entity per field", WAIT, |m| m.len() >= fields.len());
    assert_eq!(configs.len(), fields.len());
    let power = configs
        .iter()
        .find(|m| m.topic == "homeassistant/sensor/mb_gw/bus_meter_in_power/config")
        .unwrap_or_else(|| panic!("no entity for in_power: {configs:?}"));
    assert!(power.retain);
    let power = json(power);
    assert_eq!(power["state_topic"], "modbus/meter");
    assert_eq!(power["value_template"], "{{ value_json.in_power }}");
    assert_eq!(power["availability_mode"], "all");
    assert_eq!(
        power["availability"][1]["topic"],
        "mqgate/mb-gw/bus/meter/availability"
    );
    assert_eq!(power["device"]["name"], "meter");
    let online = availability.wait_until("the device online", WAIT, |m| {
        m.iter()
            .any(|m| m.topic == "mqgate/mb-gw/bus/meter/availability" && m.text() == "online")
    });
    assert!(online.iter().all(|m| m.text() != "offline"), "{online:?}");
    drop(slave);
}

/// The request log's times (seconds) per unit.
fn request_times(log: &Path) -> BTreeMap<u8, Vec<f64>> {
    let mut out: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        let Some(t) = parts.next().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        let Some(unit) = parts
            .find_map(|p| p.strip_prefix("unit="))
            .and_then(|u| u.parse().ok())
        else {
            continue;
        };
        out.entry(unit).or_default().push(t);
    }
    out
}

#[test]
fn a_dead_slave_is_marked_unavailable_and_polled_less_while_the_others_keep_their_schedule() {
    let dir = Scratch::new("modbus-dead");
    let log = dir.path().join("requests.log");
    let slave = Slave::start(&[
        "--rtu",
        "pty",
        "--baud",
        "115200",
        "--units",
        "1,2,3",
        "--dead",
        "3",
        "--log",
        log.to_str().unwrap(),
    ]);
    let device = |name: &str, unit: u8| {
        format!(
            "      - name: {name}\n        unit: {unit}\n        every: 200ms\n        fields:\n          - {{ name: temperature, register: input, address: 0, type: i16, scale: 0.1 }}\n"
        )
    };
    let source = format!(
        "    type: modbus_rtu\n    path: {path}\n    baud: 115200\n    timeout_ms: 100\n    retries: 1\n    unavailable_after: 2\n    unavailable_every: 2s\n    devices:\n{}{}{}",
        device("a", 1),
        device("b", 2),
        device("dead", 3),
        path = slave.path().display()
    );
    let config = gateway(&dir, &source, false, "");
    let (gw, port) = started(&config);
    let availability = Subscriber::start("availability", port, "mqgate/mb-gw/bus/+/availability");
    let sub = Subscriber::start("polls", port, "modbus/+");
    availability.wait_until("the dead device offline", WAIT, |m| {
        m.iter()
            .any(|m| m.topic == "mqgate/mb-gw/bus/dead/availability" && m.text() == "offline")
    });
    // Four seconds of polls after it was marked unavailable.
    let from = sub.messages().len();
    sub.wait_until("4 s more of polls", WAIT, |m| {
        m[from..].iter().filter(|m| m.topic == "modbus/a").count() >= 20
    });
    let got = sub.messages();
    assert!(
        got.iter().all(|m| m.topic != "modbus/dead"),
        "nothing published for the dead device"
    );
    let a = got[from..].iter().filter(|m| m.topic == "modbus/a").count();
    let b = got[from..].iter().filter(|m| m.topic == "modbus/b").count();
    assert!(b + 2 >= a, "b keeps up with a: {a} / {b}");
    for m in &got {
        assert_eq!(json(m)["temperature"], serde_json::json!(21.5), "{m:?}");
    }

    // The device's view: requests to units 1 and 2 keep their 200 ms grid. A
    // poll may wait for the one transaction ahead of it on the bus: at worst the
    // dead unit's probe, which holds the bus for its 100 ms timeout.
    let times = request_times(&log);
    for unit in [1u8, 2] {
        let t = &times[&unit];
        let steps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        // The last three seconds: the dead unit is only probed by then.
        let settled = &steps[steps.len().saturating_sub(15)..];
        let worst = settled
            .iter()
            .map(|s| (s - 0.2).abs())
            .fold(0.0f64, f64::max);
        assert!(
            worst < 0.13,
            "unit {unit}: polls 200 ms apart within the dead unit's timeout, steps {settled:?}"
        );
        let mut sorted = settled.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        assert!(
            (median - 0.2).abs() < 0.01,
            "unit {unit}: the grid does not drift, median step {median}"
        );
    }
    let dead = &times[&3];
    let last_steps: Vec<f64> = dead.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        last_steps.last().is_some_and(|s| (1.9..2.5).contains(s)),
        "an unavailable device is tried every 2 s: {last_steps:?}"
    );
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let d = device_status(&status, "dead");
    assert_eq!(d["available"], false, "{d}");
    assert!(d["no_answer"].as_u64() >= Some(3), "{d}");
    for name in ["a", "b"] {
        let d = device_status(&status, name);
        assert_eq!(d["available"], true, "{d}");
        assert_eq!(d["skipped"], 0, "no poll of a live device skipped: {d}");
    }
    let page_metrics = test_support::http::get(status_addr(&gw, WAIT), "/metrics", WAIT);
    assert!(
        page_metrics
            .body
            .contains("mqgate_modbus_device_available{source=\"bus\",device=\"dead\"} 0"),
        "{}",
        page_metrics.body
    );
    drop(slave);
}

#[test]
fn exceptions_are_named_and_counted_per_field_busy_is_retried_and_a_late_answer_is_waited_for() {
    let dir = Scratch::new("modbus-faults");
    let slave = Slave::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--units",
        "1,2,3",
        "--busy",
        "2:2",
        "--late",
        "3:300",
    ]);
    let source = format!(
        "    type: modbus_tcp\n    host: 127.0.0.1:{port}\n    timeout_ms: 1000\n    busy_retry_ms: 50\n    retries: 3\n    devices:\n\
         \x20     - name: mixed\n        unit: 1\n        every: 300ms\n        one_per_field: true\n        fields:\n\
         \x20         - {{ name: u16_plain, register: holding, address: 0 }}\n\
         \x20         - {{ name: forbidden, register: holding, address: 903 }}\n\
         \x20     - name: busy\n        unit: 2\n        every: 300ms\n        fields:\n\
         \x20         - {{ name: u16_plain, register: holding, address: 0 }}\n\
         \x20     - name: late\n        unit: 3\n        every: 1s\n        fields:\n\
         \x20         - {{ name: u16_plain, register: holding, address: 0 }}\n",
        port = slave.port()
    );
    let config = gateway(&dir, &source, true, "");
    let (gw, port) = started(&config);
    let sub = Subscriber::start("polls", port, "modbus/+");
    let got = sub.wait_until("a poll of each device", WAIT, |m| {
        ["modbus/mixed", "modbus/busy", "modbus/late"]
            .iter()
            .all(|t| m.iter().any(|m| m.topic == *t))
    });
    let first = |topic: &str| json(got.iter().find(|m| m.topic == topic).unwrap());
    let mixed = first("modbus/mixed");
    assert_eq!(mixed["values"]["u16_plain"], 1234, "{mixed}");
    assert!(mixed["values"].get("forbidden").is_none(), "{mixed}");
    let errors = mixed["errors"].as_str().expect("the failed read is said");
    assert!(
        errors.contains("forbidden") && errors.contains("exception 2 (illegal data address)"),
        "{errors}"
    );
    assert_eq!(first("modbus/busy")["values"]["u16_plain"], 1234);
    let late = first("modbus/late");
    assert!(
        late["latency_ms"].as_f64().is_some_and(|l| l >= 290.0),
        "the late answer waited for: {late}"
    );
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let mixed = device_status(&status, "mixed");
    let e = &mixed["exceptions"][0];
    assert_eq!(
        (e["code"].as_u64(), e["name"].as_str(), e["field"].as_str()),
        (Some(2), Some("illegal data address"), Some("forbidden")),
        "{mixed}"
    );
    let busy = device_status(&status, "busy");
    assert!(busy["retries"].as_u64() >= Some(2), "{busy}");
    assert_eq!(busy["polls_failed"], 0, "{busy}");
    drop(slave);
}

#[test]
fn crc_errors_and_cut_answers_from_a_spoiling_relay_are_counted_and_the_bus_recovers() {
    let dir = Scratch::new("modbus-crc");
    let relay = CrcRelay::start(&[
        "--master",
        "pty",
        "--slave",
        "pty",
        "--corrupt-every",
        "3",
        "--truncate-every",
        "7",
    ]);
    let line = relay.transcript();
    // `ready MASTER SLAVE`: the slave side's path is the second.
    let device_side = line
        .lines()
        .find_map(|l| l.split("ready ").nth(1))
        .and_then(|r| r.split_whitespace().nth(1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no ready line: {line}"));
    let slave = Slave::start(&["--rtu", device_side.to_str().unwrap()]);
    let source = format!(
        "    type: modbus_rtu\n    path: {path}\n    timeout_ms: 300\n    retries: 2\n    devices:\n\
         \x20     - name: probe\n        unit: 1\n        every: 200ms\n        fields:\n\
         \x20         - {{ name: in_temperature, register: input, address: 0, type: i16, scale: 0.1 }}\n\
         \x20         - {{ name: in_humidity, register: input, address: 1, scale: 0.1 }}\n",
        path = relay.path.display()
    );
    let config = gateway(&dir, &source, false, "");
    let (gw, port) = started(&config);
    let sub = Subscriber::start("polls", port, "modbus/probe");
    let got = sub.wait_until("12 polls", WAIT, |m| m.len() >= 12);
    for m in &got {
        let v = json(m);
        assert_eq!(
            (v["in_temperature"].as_f64(), v["in_humidity"].as_f64()),
            (Some(21.5), Some(45.6)),
            "a spoiled answer never gives a value: {v}"
        );
    }
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let probe = device_status(&status, "probe");
    assert!(probe["crc_errors"].as_u64() >= Some(2), "{probe}");
    assert!(probe["garbled"].as_u64() >= Some(1), "{probe}");
    assert_eq!(probe["available"], true, "{probe}");
    drop(slave);
    drop(relay);
}

#[test]
fn a_command_writes_a_field_by_name_and_the_next_poll_and_mbpoll_read_it_back() {
    let dir = Scratch::new("modbus-write");
    let slave = Slave::start(&["--tcp", "127.0.0.1:0"]);
    let source = format!(
        "    type: modbus_tcp\n    host: 127.0.0.1:{port}\n    devices:\n\
         \x20     - name: hvac\n        unit: 1\n        every: 300ms\n        fields:\n\
         \x20         - {{ name: setpoint, register: holding, address: 107, type: f32 }}\n\
         \x20         - {{ name: status_low, register: holding, address: 101, type: \"bits(0..4)\" }}\n\
         \x20         - {{ name: status_high, register: holding, address: 101, type: \"bits(4..8)\" }}\n\
         \x20         - {{ name: relay, register: coil, address: 0 }}\n\
         \x20         - {{ name: in_temperature, register: input, address: 0, type: i16, scale: 0.1 }}\n",
        port = slave.port()
    );
    let config = gateway(
        &dir,
        &source,
        false,
        "commands:\n  topic: \"cmd/{source}\"\n",
    );
    let (gw, port) = started(&config);
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    let results = Subscriber::start("results", port, "cmd/bus/result");
    let sub = Subscriber::start("polls", port, "modbus/hvac");
    let before = json(&sub.wait_until("a poll", WAIT, |m| !m.is_empty())[0]);
    assert_eq!(before["setpoint"], serde_json::json!(20.0));
    assert_eq!(before["relay"], false);

    let publish = |payload: &str| mosquitto_pub(port, &["-q", "1", "-t", "cmd/bus", "-m", payload]);
    publish(r#"{"field": "setpoint", "value": 21.5}"#);
    publish(r#"{"device": "hvac", "field": "relay", "value": true}"#);
    publish(r#"{"field": "status_high", "value": 3}"#);
    publish(r#"{"field": "in_temperature", "value": 30}"#);
    publish(r#"{"field": "nonsense", "value": 1}"#);
    let got = results.wait_until("five results", WAIT, |m| m.len() >= 5);
    let got: Vec<Value> = got.iter().map(json).collect();
    let statuses: Vec<&str> = got.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["sent", "sent", "sent", "rejected", "rejected"],
        "{got:?}"
    );
    assert!(
        got[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("in_temperature") && e.contains("read-only")),
        "{got:?}"
    );
    assert!(
        got[4]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no field `nonsense`")),
        "{got:?}"
    );
    // The next polls read the new values back; the bits next to the written ones kept theirs.
    let from = sub.messages().len();
    let written = |v: &Value| v["setpoint"] == serde_json::json!(21.5) && v["relay"] == true;
    let polls = sub.wait_until("a poll with the writes", WAIT, |m| {
        m[from..].iter().map(json).any(|v| written(&v))
    });
    let after = polls[from..]
        .iter()
        .map(json)
        .find(written)
        .expect("the poll waited for");
    assert_eq!(after["status_high"], 3, "{after}");
    assert_eq!(after["status_low"], 5, "{after}");
    // And libmodbus reads what the device now holds.
    let setpoint = mbpoll_values(&mbpoll_tcp(slave.port(), 1, "4:float", 107, 1, &["-B"]));
    assert_eq!(setpoint, ["21.5"]);
    let status_reg = mbpoll_values(&mbpoll_tcp(slave.port(), 1, "4:hex", 101, 1, &[]));
    assert_eq!(status_reg, ["0x0035"]);
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    assert_eq!(device_status(&status, "hvac")["writes_ok"], 3);
    drop(slave);
}

#[test]
fn rtu_frames_over_tcp_reach_devices_behind_a_serial_to_ethernet_converter() {
    let dir = Scratch::new("modbus-rtu-tcp");
    let slave = Slave::start(&[
        "--rtu-over-tcp",
        "127.0.0.1:0",
        "--units",
        "1,2",
        "--dead",
        "2",
    ]);
    let fields: Vec<LayoutField> = layout()
        .into_iter()
        .filter(|f| f.register == "input")
        .collect();
    let source = format!(
        "    type: modbus_tcp\n    host: 127.0.0.1:{port}\n    protocol: rtu_over_tcp\n    timeout_ms: 200\n    retries: 0\n    devices:\n\
         \x20     - name: probe\n        unit: 1\n        every: 300ms\n        fields:\n{}\
         \x20     - name: gone\n        unit: 2\n        every: 300ms\n        fields:\n\
         \x20         - {{ name: in_temperature, register: input, address: 0, type: i16 }}\n",
        fields_yaml(&fields),
        port = slave.port()
    );
    let config = gateway(&dir, &source, false, "");
    let (gw, port) = started(&config);
    let sub = Subscriber::start("polls", port, "modbus/+");
    let polls = sub.wait_until("three polls", WAIT, |m| m.len() >= 3);
    for poll in &polls {
        assert_eq!(poll.topic, "modbus/probe", "nothing from the dead unit");
        check_every_field(&fields, &json(poll));
    }
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let gone = device_status(&status, "gone");
    assert!(gone["no_answer"].as_u64() >= Some(1), "{gone}");
    assert_eq!(device_status(&status, "probe")["polls_failed"], 0);
    drop(slave);
}

#[test]
fn mqgate_send_writes_one_field_from_the_command_line_and_refuses_a_read_only_one() {
    let dir = Scratch::new("modbus-send");
    let slave = Slave::start(&["--tcp", "127.0.0.1:0"]);
    let source = format!(
        "    type: modbus_tcp\n    host: 127.0.0.1:{port}\n    devices:\n\
         \x20     - name: hvac\n        unit: 1\n        fields:\n\
         \x20         - {{ name: setpoint, register: holding, address: 107, type: f32 }}\n\
         \x20         - {{ name: in_temperature, register: input, address: 0, type: i16 }}\n",
        port = slave.port()
    );
    let config = gateway(
        &dir,
        &source,
        false,
        "commands:\n  topic: \"cmd/{source}\"\n",
    );
    let send = |json: &str| {
        run_mqgate(&[
            "send",
            "--config",
            config.to_str().unwrap(),
            "--source",
            "bus",
            "--json",
            json,
        ])
    };
    let done = send(r#"{"field": "setpoint", "value": 22.5}"#);
    assert_eq!(done.code(), 0, "{}\n{}", done.stdout, done.stderr);
    let result: Value = serde_json::from_str(done.stdout.trim()).expect("a JSON result");
    assert_eq!(result["status"], "sent", "{result}");
    assert_eq!(
        mbpoll_values(&mbpoll_tcp(slave.port(), 1, "4:float", 107, 1, &["-B"])),
        ["22.5"]
    );
    let done = send(r#"{"field": "in_temperature", "value": 1}"#);
    assert_eq!(done.code(), 1, "{}\n{}", done.stdout, done.stderr);
    let result: Value = serde_json::from_str(done.stdout.trim()).expect("a JSON result");
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("read-only")),
        "{result}"
    );
    drop(slave);
}

#[test]
fn a_device_that_goes_away_is_waited_for_with_back_off_and_polled_again_when_it_is_back() {
    let dir = Scratch::new("modbus-gone");
    let port = test_support::net::free_port();
    let addr = format!("127.0.0.1:{port}");
    let slave = Slave::start(&["--tcp", &addr]);
    let source = format!(
        "    type: modbus_tcp\n    host: {addr}\n    timeout_ms: 200\n    reconnect: {{ initial_ms: 100, max_ms: 400 }}\n    devices:\n\
         \x20     - name: probe\n        unit: 1\n        every: 200ms\n        fields:\n\
         \x20         - {{ name: in_temperature, register: input, address: 0, type: i16, scale: 0.1 }}\n"
    );
    let config = gateway(&dir, &source, false, "");
    let (gw, broker) = started(&config);
    let sub = Subscriber::start("polls", broker, "modbus/probe");
    sub.wait_until("a poll", WAIT, |m| !m.is_empty());
    drop(slave);
    gw.wait_for_line(
        Stream::Stderr,
        &["reopening with back-off", "source=bus"],
        WAIT,
    );
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    let bus = &status["sources"][0];
    assert_eq!(bus["state"], "waiting", "{bus}");
    assert!(
        bus["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&addr)),
        "the error names the device's address: {bus}"
    );
    // Back on the same address: polls go on.
    let slave = Slave::start(&["--tcp", &addr]);
    let before = sub.messages().len();
    sub.wait_until("polls after the device came back", WAIT, |m| {
        m.len() >= before + 2
    });
    let status = api_status(status_addr(&gw, WAIT), WAIT);
    assert_eq!(status["sources"][0]["state"], "connected");
    assert!(status["sources"][0]["reopens"].as_u64() >= Some(1));
    drop(slave);
}
