//! The MQTT source (`type: mqtt`) with real brokers: messages on a Mosquitto
//! (published with `mosquitto_pub`) → `mqgate run` → the embedded broker or back
//! to the Mosquitto, read by `mosquitto_sub` and a sequence-checking subscriber.
//!
//! The network servers' events are built from their published message formats:
//! The Things Stack's "Data Formats" page (integrations: JSON uplink messages on
//! `v3/{application}@{tenant}/devices/{device}/up`, and a `join_accept` message),
//! and ChirpStack v4's "Integrations / Events" page (the JSON encoding of its
//! `UplinkEvent` on `application/{id}/device/{dev_eui}/event/up`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqgate_tests::mqgate::{embedded_broker_port, start_mqgate_run};
use mqgate_tests::seqsub::{SeqOptions, SeqSubscriber};
use serde_json::{json, Value};
use test_support::mosquitto::{mosquitto_pub, Mosquitto, Msg, Subscriber};
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
/// The embedded broker on a free port, without `$SYS` messages.
const EMBEDDED: &str = "broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n";

/// `mosquitto_pub` of one QoS 1 message to the broker on `port`.
fn publish(port: u16, topic: &str, payload: &str) {
    mosquitto_pub(port, &["-q", "1", "-t", topic, "-m", payload]);
}

fn json_of(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

/// A gateway file: id `mqtt-gw`, status page, `extra` top-level sections
/// (YAML), and `sources` (YAML list items).
fn gateway(dir: &Scratch, extra: &str, sources: &str) -> PathBuf {
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: mqtt-gw\n  state_dir: {state}\n\
             status:\n  listen: 127.0.0.1:0\n{extra}sources:\n{sources}",
            state = dir.path().join("state").display(),
        ),
    )
}

/// Every meta key a network server's uplink gives, and the topic's levels.
const UPLINK_SCRIPT: &str = r#"
fn map(frame) {
    let m = frame.meta;
    #{ payload: #{
        hex: hex(frame.bytes), event: m.event, fport: m.fport, fcnt: m.fcnt,
        dev_eui: m.dev_eui, dev_addr: m.dev_addr, rssi: m.rssi, snr: m.snr,
        gateways: m.gateways, frequency_hz: m.frequency_hz, datarate: m.datarate,
        received_at: m.received_at, topic: m.topic, first_level: frame.levels[0],
        qos: m.qos, retain: m.retain
    } }
}
"#;

/// An uplink as The Things Stack's "Data Formats" page shows it: two gateways,
/// the second heard it better.
fn ttn_uplink(device: &str, fcnt: u32, payload_b64: &str) -> String {
    json!({
        "end_device_ids": {
            "device_id": device,
            "application_ids": { "application_id": "greenhouse" },
            "dev_eui": "0004A30B001C0530",
            "join_eui": "800000000000000C",
            "dev_addr": "00BCB929"
        },
        "correlation_ids": ["as:up:01E0ZRA2DX6AAN5H4ZGK0QAFFC"],
        "received_at": "2020-02-12T15:15:45.787420523Z",
        "uplink_message": {
            "f_port": 2,
            "f_cnt": fcnt,
            "frm_payload": payload_b64,
            "rx_metadata": [
                { "gateway_ids": { "gateway_id": "gtw1", "eui": "9C5C8E00001A05C4" },
                  "rssi": -80, "channel_rssi": -80, "snr": 7.5 },
                { "gateway_ids": { "gateway_id": "gtw2" },
                  "rssi": -35, "channel_rssi": -35, "snr": 5.2 }
            ],
            "settings": {
                "data_rate": { "lora": { "bandwidth": 125000, "spreading_factor": 7 } },
                "coding_rate": "4/5",
                "frequency": "868100000"
            },
            "received_at": "2020-02-12T15:15:45.787420523Z",
            "consumed_airtime": "0.056576s"
        }
    })
    .to_string()
}

/// An uplink as ChirpStack v4's "Integrations / Events" page shows its JSON.
fn chirpstack_uplink(fcnt: u32, payload_b64: &str) -> String {
    json!({
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2022-07-18T09:34:15.775023242+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "Test application",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "Test device-profile",
            "deviceName": "Test device",
            "devEui": "0101010101010101"
        },
        "devAddr": "00189440",
        "dr": 1,
        "fPort": 1,
        "fCnt": fcnt,
        "data": payload_b64,
        "rxInfo": [{
            "gatewayId": "0016c001f153a14c",
            "uplinkId": 4217106255u64,
            "rssi": -36,
            "snr": 10.5,
            "context": "E3OWOQ=="
        }],
        "txInfo": {
            "frequency": 867100000,
            "modulation": { "lora": { "bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5" } }
        }
    })
    .to_string()
}

#[test]
fn network_server_uplinks_on_a_mosquitto_become_frames_with_their_meta_and_other_events_are_counted(
) {
    let dir = Scratch::new("mqtt-netserver");
    let mosquitto = Mosquitto::start();
    dir.write("mappings/up.rhai", UPLINK_SCRIPT);
    dir.write(
        "mappings/ttn.yaml",
        "source: ttn\nscript: up.rhai\ntopic: \"lorawan/{device}\"\n",
    );
    dir.write(
        "mappings/cs.yaml",
        "source: cs\nscript: up.rhai\ntopic: \"lorawan/{device}\"\n",
    );
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        &dir,
        EMBEDDED,
        &format!(
            "  - id: ttn\n    type: mqtt\n    url: {url}\n    format: ttn_v3\n\
             \x20 - id: cs\n    type: mqtt\n    url: {url}\n    format: chirpstack_v4\n"
        ),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    wait_subscribed(&gw, 2);
    let sub = Subscriber::start("lorawan", port, "lorawan/#");
    let pub_q1 = |topic: &str, payload: &str| publish(mosquitto.port, topic, payload);
    // 03 67 01 10: Cayenne LPP temperature 27.2 on channel 3.
    pub_q1(
        "v3/greenhouse@ttn/devices/probe-7/up",
        &ttn_uplink("probe-7", 10, "A2cBEA=="),
    );
    let join = json!({
        "end_device_ids": { "device_id": "probe-7", "application_ids": { "application_id": "greenhouse" } },
        "join_accept": { "session_key_id": "AXA50...", "received_at": "2020-02-12T15:15:45Z" }
    });
    pub_q1("v3/greenhouse@ttn/devices/probe-7/join", &join.to_string());
    pub_q1(
        "application/17c82e96/device/0101010101010101/event/up",
        &chirpstack_uplink(10, "AQID"),
    );
    let got = sub.wait_until("two uplinks", WAIT, |m| m.len() >= 2);
    let by_topic = |t: &str| {
        got.iter()
            .find(|m| m.topic == t)
            .map(json_of)
            .unwrap_or_else(|| panic!("nothing on {t}: {got:?}"))
    };
    let ttn = by_topic("lorawan/probe-7");
    assert_eq!(ttn["hex"], "03670110");
    assert_eq!(ttn["event"], "up");
    assert_eq!(ttn["fport"], "2");
    assert_eq!(ttn["fcnt"], "10");
    assert_eq!(ttn["dev_eui"], "0004A30B001C0530");
    assert_eq!(ttn["dev_addr"], "00BCB929");
    assert_eq!(ttn["rssi"], -35.0, "the best gateway's");
    assert_eq!(ttn["snr"], 5.2);
    assert_eq!(ttn["gateways"], "2");
    assert_eq!(ttn["frequency_hz"], 868_100_000);
    assert_eq!(ttn["datarate"], "SF7BW125");
    assert_eq!(ttn["received_at"], "2020-02-12T15:15:45.787420523Z");
    assert_eq!(ttn["topic"], "v3/greenhouse@ttn/devices/probe-7/up");
    assert_eq!(ttn["first_level"], "v3");
    assert_eq!(ttn["qos"], "1");
    assert_eq!(ttn["retain"], "false");
    let cs = by_topic("lorawan/Test device");
    assert_eq!(cs["hex"], "010203");
    assert_eq!(cs["fport"], "1");
    assert_eq!(cs["dev_eui"], "0101010101010101");
    assert_eq!(cs["rssi"], -36.0);
    assert_eq!(cs["datarate"], "SF11BW125");
    assert_eq!(cs["frequency_hz"], 867_100_000);

    // The join was counted and dropped (the default): only the two uplinks came,
    // and the source's counters say so.
    let status = mqgate_tests::http::status_addr(&gw, WAIT);
    let sources = mqgate_tests::http::api_status(status, WAIT)["sources"].clone();
    let ttn_counts = sources
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "ttn"))
        .map(|s| s["mqtt"].clone())
        .unwrap_or_else(|| panic!("no ttn source in {sources}"));
    assert_eq!(ttn_counts["uplinks"], 1, "{ttn_counts}");
    assert_eq!(
        ttn_counts["messages"], 1,
        "the join is not on the uplink topic: {ttn_counts}"
    );
    assert_eq!(sub.messages().len(), 2, "{:?}", sub.messages());
    stop(gw);
}

/// A device of the registry (`devices:`) is decoded by its own decoder, the
/// project's Cayenne LPP script here, and published on `lorawan/{device}`; the
/// others by the source's mapping.
#[test]
fn a_registered_devices_uplinks_from_a_network_server_go_through_its_decoder() {
    let dir = Scratch::new("mqtt-registry");
    let mosquitto = Mosquitto::start();
    let lpp = mqgate_tests::mqgate::workspace_file("scripts/cayenne-lpp.rhai");
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        &dir,
        &format!(
            "broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             devices:\n  - name: greenhouse-probe\n    dev_eui: \"0004A30B001C0530\"\n\
             \x20   decoder: {lpp}\n\
             \x20 - name: field-node\n    dev_eui: \"0101010101010101\"\n    decoder: {lpp}\n",
            lpp = lpp.display()
        ),
        &format!(
            "  - id: ttn\n    type: mqtt\n    url: {url}\n    format: ttn_v3\n\
             \x20 - id: cs\n    type: mqtt\n    url: {url}\n    format: chirpstack_v4\n"
        ),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    wait_subscribed(&gw, 2);
    let mut sub = Subscriber::start("lorawan", port, "lorawan/#");
    publish(
        mosquitto.port,
        "v3/greenhouse@ttn/devices/probe-7/up",
        &ttn_uplink("probe-7", 3, "A2cBEA=="),
    );
    let m = sub.expect_msg();
    // Matched by DevEUI; `{device}` is the server's name for it.
    assert_eq!(m.topic, "lorawan/probe-7");
    let reading = json_of(&m);
    assert_eq!(reading["type_name"], "temperature", "{reading}");
    assert_eq!(reading["value"], 27.2, "{reading}");
    // The same through ChirpStack: its device name is `{device}`.
    publish(
        mosquitto.port,
        "application/17c82e96/device/0101010101010101/event/up",
        &chirpstack_uplink(4, "A2cBEA=="),
    );
    let m = sub.expect_msg();
    assert_eq!(m.topic, "lorawan/Test device");
    assert_eq!(json_of(&m)["value"], 27.2);
    stop(gw);
}

/// A command to a network-server source is a downlink request on the server's
/// topic (The Things Stack's `down/push`, as its "Scheduling downlinks" page
/// documents it); the server's `down/sent`, or `down/nack` for a confirmed one,
/// is the command's result.
#[test]
fn commands_become_downlinks_through_the_network_server_and_its_events_their_results() {
    let dir = Scratch::new("mqtt-downlink");
    let mosquitto = Mosquitto::start();
    dir.write(
        "mappings/ttn.rhai",
        r#"
fn map(frame) { #{ payload: frame.meta.fport } }
fn encode(command) {
    let c = command.json;
    #{ bytes: from_hex(c.hex), device: c.device, f_port: c.port, confirmed: c.confirmed }
}
"#,
    );
    dir.write(
        "mappings/ttn.yaml",
        "source: ttn\nscript: ttn.rhai\ntopic: \"lorawan/{device}\"\n\
         commands:\n  topic: \"cmd/{source}/#\"\n  send_timeout_ms: 10000\n",
    );
    let Downlinking {
        gw,
        port,
        mut pushes,
        results,
        ..
    } = downlinking(&dir, &mosquitto);

    let command = |json: &str| publish(port, "cmd/ttn/set", json);
    command(
        r#"{"device": "probe-7", "hex": "0102ff", "port": 5, "confirmed": false, "correlation": 1}"#,
    );
    let push = pushes.expect_msg();
    assert_eq!(push.topic, "v3/greenhouse@ttn/devices/probe-7/down/push");
    let down = json_of(&push)["downlinks"][0].clone();
    assert_eq!(down["f_port"], 5, "{down}");
    assert_eq!(down["frm_payload"], "AQL/", "base64 of 01 02 ff: {down}");
    assert_eq!(down["confirmed"], false);
    assert_eq!(down["priority"], "NORMAL");
    let id = down["correlation_ids"][0]
        .as_str()
        .expect("a correlation id")
        .to_string();
    // The server queues it, then sends it: a sent unconfirmed downlink is done.
    let event = |kind: &str, id: &str| {
        json!({ "end_device_ids": { "device_id": "probe-7" },
                "correlation_ids": ["as:downlink:01H", id], kind: { "f_port": 5 } })
        .to_string()
    };
    let tell = |suffix: &str, body: &str| {
        publish(
            mosquitto.port,
            &format!("v3/greenhouse@ttn/devices/probe-7/{suffix}"),
            body,
        )
    };
    tell("down/queued", &event("downlink_queued", &id));
    tell("down/sent", &event("downlink_sent", "another-downlink"));
    tell("down/sent", &event("downlink_sent", &id));
    let got = results.wait_until("the first result", WAIT, |m| !m.is_empty());
    let first = json_of(&got[0]);
    assert_eq!(first["status"], "sent", "{first}");
    assert_eq!(first["correlation"], 1);

    // A confirmed one the device does not acknowledge.
    command(
        r#"{"device": "probe-7", "hex": "03", "port": 6, "confirmed": true, "correlation": 2}"#,
    );
    let down = json_of(&pushes.expect_msg())["downlinks"][0].clone();
    assert_eq!(down["confirmed"], true);
    let id = down["correlation_ids"][0]
        .as_str()
        .expect("a correlation id")
        .to_string();
    tell("down/sent", &event("downlink_sent", &id));
    tell("down/nack", &event("downlink_nack", &id));
    let got = results.wait_until("the second result", WAIT, |m| m.len() >= 2);
    let second = json_of(&got[1]);
    assert_eq!(second["status"], "failed", "{second}");
    assert!(
        second["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not acknowledge"),
        "{second}"
    );
    // A device never heard, without its application: refused with why.
    command(
        r#"{"device": "stranger", "hex": "03", "port": 6, "confirmed": false, "correlation": 3}"#,
    );
    let got = results.wait_until("the third result", WAIT, |m| m.len() >= 3);
    let third = json_of(&got[2]);
    assert_eq!(third["status"], "failed", "{third}");
    assert!(
        third["error"]
            .as_str()
            .unwrap_or_default()
            .contains("has sent no uplink yet"),
        "{third}"
    );
    stop(gw);
}

/// The demo's LoRaWAN path, on ports of its own: the capture of The Things
/// Stack's events replayed onto the embedded broker, read back by a `ttn_v3`
/// source as a client of that broker, each device's payload through its
/// registered decoder (the JavaScript LHT65 codec, the Rhai LPP script).
#[test]
fn the_demos_lorawan_path_decodes_each_device_with_its_registered_decoder() {
    let dir = Scratch::new("mqtt-demo-path");
    let port = test_support::net::free_port();
    let root = mqgate_tests::mqgate::workspace_root();
    let demo = std::fs::read_to_string(root.join("examples/demo.yaml")).expect("the demo");
    let devices = demo
        .split_once("\ndevices:\n")
        .map(|(_, d)| d.replace("../", &format!("{}/", root.display())))
        .expect("the demo has a registry");
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: demo-path\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:{port}\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             mappings: {mappings}\n\
             sources:\n  - id: ttn-replay\n    type: replay\n    file: {capture}\n    loop: true\n\
             \x20 - id: ttn\n    type: mqtt\n    url: mqtt://127.0.0.1:{port}\n    format: ttn_v3\n\
             devices:\n{devices}",
            state = dir.path().join("state").display(),
            mappings = dir.path().join("mappings").display(),
            capture = root.join("tests/captures/demo/ttn-uplinks.cap").display(),
        ),
    );
    let mapping = std::fs::read_to_string(root.join("mappings/ttn-replay.yaml")).expect("mapping");
    dir.write(
        "mappings/ttn-replay.yaml",
        mapping.replace("../scripts/", &format!("{}/scripts/", root.display())),
    );
    // The replay plays a line a second, in a loop: the source and the subscriber
    // are subscribed before the next lines come.
    let gw = start_mqgate_run(&config);
    embedded_broker_port(&gw, WAIT);
    let sub = Subscriber::start("lorawan", port, "lorawan/#");
    let got = sub.wait_until("both devices", WAIT, |m| {
        m.iter().any(|m| m.topic == "lorawan/greenhouse-lht65")
            && m.iter().any(|m| m.topic == "lorawan/field-lpp")
    });
    let lht65 = got
        .iter()
        .find(|m| m.topic == "lorawan/greenhouse-lht65")
        .map(json_of)
        .expect("an LHT65 reading");
    assert_eq!(lht65["BatV"], 3.062, "{lht65}");
    assert!(
        lht65["TempC_SHT"]
            .as_f64()
            .is_some_and(|t| (21.0..23.0).contains(&t)),
        "{lht65}"
    );
    assert_eq!(lht65["Ext_sensor"], "Temperature Sensor", "{lht65}");
    let lpp = got
        .iter()
        .find(|m| m.topic == "lorawan/field-lpp")
        .map(json_of)
        .expect("an LPP reading");
    assert!(
        lpp["type_name"] == "temperature" || lpp["type_name"] == "relative_humidity",
        "{lpp}"
    );
    stop(gw);
}

/// A mapping whose script is a JavaScript codec encodes commands with its
/// `encodeDownlink`: the command's JSON is its `data`, the device the command
/// topic's last level, the port the codec's `fPort`.
#[test]
fn a_codecs_encode_downlink_turns_a_command_into_a_downlink() {
    let dir = Scratch::new("mqtt-js-downlink");
    let mosquitto = Mosquitto::start();
    dir.write(
        "mappings/relay.js",
        "function decodeUplink(input) { return { data: { port: input.fPort } }; }\n\
         function encodeDownlink(input) {\n\
           if (typeof input.data.on !== 'boolean') return { errors: ['`on` must be true or false'] };\n\
           return { bytes: [input.data.on ? 1 : 0], fPort: 7 };\n\
         }\n",
    );
    dir.write(
        "mappings/ttn.yaml",
        "source: ttn\nscript: relay.js\ntopic: \"lorawan/{device}\"\n\
         commands:\n  topic: \"cmd/{source}/+\"\n  send_timeout_ms: 10000\n",
    );
    let Downlinking {
        gw,
        port,
        mut pushes,
        results,
        first_uplink,
    } = downlinking(&dir, &mosquitto);
    assert_eq!(json_of(&first_uplink)["port"], 2, "decodeUplink ran");
    publish(port, "cmd/ttn/probe-7", r#"{"on": true}"#);
    let push = pushes.expect_msg();
    assert_eq!(push.topic, "v3/greenhouse@ttn/devices/probe-7/down/push");
    let down = json_of(&push)["downlinks"][0].clone();
    assert_eq!(down["f_port"], 7, "{down}");
    assert_eq!(down["frm_payload"], "AQ==", "{down}");
    // The codec's own error fails the command, with its message.
    publish(port, "cmd/ttn/probe-7", r#"{"on": "yes"}"#);
    let got = results.wait_until("the failed command", WAIT, |m| {
        m.iter().any(|m| json_of(m)["status"] == "failed")
    });
    let failed = got
        .iter()
        .map(json_of)
        .find(|r| r["status"] == "failed")
        .expect("a failed result");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("`on` must be true or false"),
        "{failed}"
    );
    stop(gw);
}

#[test]
fn other_events_pass_as_json_and_an_unreadable_event_goes_to_the_dead_letter_topic() {
    let dir = Scratch::new("mqtt-events");
    let mosquitto = Mosquitto::start();
    dir.write(
        "mappings/ttn.yaml",
        "source: ttn\ntopic: \"ttn/{event}/{level3}\"\n",
    );
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        &dir,
        EMBEDDED,
        &format!(
            "  - id: ttn\n    type: mqtt\n    url: {url}\n    format: ttn_v3\n    other_events: pass\n"
        ),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    wait_subscribed(&gw, 1);
    let sub = Subscriber::start("events", port, "ttn/#");
    let dead = Subscriber::start("dead", port, "mqgate/mqtt-gw/deadletter/#");
    let join = json!({
        "end_device_ids": { "device_id": "probe-7", "application_ids": { "application_id": "greenhouse" } },
        "join_accept": { "session_key_id": "AXA50..." }
    })
    .to_string();
    publish(
        mosquitto.port,
        "v3/greenhouse@ttn/devices/probe-7/join",
        &join,
    );
    let mut sub = sub;
    let (_, m) = sub.msgs_until_topic("ttn/join_accept/probe-7");
    assert_eq!(json_of(&m), serde_json::from_str::<Value>(&join).unwrap());
    // Not JSON on an uplink topic: counted as a bad frame, and kept whole on the
    // dead-letter topic with why.
    publish(
        mosquitto.port,
        "v3/greenhouse@ttn/devices/probe-7/up",
        "{not json",
    );
    let letters = dead.wait_until("a dead letter", WAIT, |m| !m.is_empty());
    let letter = json_of(&letters[0]);
    assert_eq!(letter["text"], "{not json", "{letter}");
    let error = letter["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("source ttn") && error.contains("ttn_v3: not JSON"),
        "{letter}"
    );
    stop(gw);
}

/// Messages on `in/<n>` (raw, QoS 1) go back to the same Mosquitto as `out/<n>`
/// through the upstream output while the gateway is killed with SIGKILL and
/// started again: every one arrives, because a message is acknowledged to the
/// broker only once it is in the store.
#[test]
fn nothing_taken_from_a_broker_is_lost_across_a_kill_9() {
    const N: u64 = 3_000;
    let dir = Scratch::new("mqtt-kill9");
    let mosquitto = Mosquitto::start();
    // A slow mapping (a few milliseconds a message): many messages are taken from
    // the broker and not yet stored when the gateway is killed.
    dir.write(
        "mappings/in.rhai",
        "fn map(frame) { let n = 0; for i in 0..4000 { n += i; } #{ payload: frame.text } }\n",
    );
    dir.write(
        "mappings/in.yaml",
        "source: in\nscript: in.rhai\ntopic: \"out/seq\"\nqos: 1\n",
    );
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        &dir,
        &format!("upstream:\n  url: {url}\n  client_id: mqtt-gw-out\n"),
        &format!(
            "  - id: in\n    type: mqtt\n    url: {url}\n    client_id: mqtt-gw-in\n    topics: [\"in/seq\"]\n"
        ),
    );
    let mut options = SeqOptions::new("seq-out", "out/seq");
    options.qos = 1;
    let out = SeqSubscriber::start(mosquitto.port, options);
    out.wait_connected(WAIT);
    let mut gw = start_mqgate_run(&config);
    wait_subscribed(&gw, 1);
    // One publisher, QoS 1, a line per message.
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mosquitto.port.to_string()])
        .args(["-q", "1", "-t", "in/seq", "-l", "-i", "seq-in"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    {
        let mut stdin = publisher.stdin.take().expect("stdin");
        for seq in 0..N {
            writeln!(stdin, "{{\"seq\":{seq}}}").expect("write to mosquitto_pub");
        }
    }
    out.wait_until("a third before the kill", WAIT, |s| s.unique >= N / 3);
    let status = mqgate_tests::http::status_addr(&gw, WAIT);
    let taken = mqgate_tests::http::api_status(status, WAIT)["sources"][0]["mqtt"]["messages"]
        .as_u64()
        .unwrap_or(0);
    let unstored = taken.saturating_sub(out.stats().unique);
    gw.signal(libc::SIGKILL);
    let _ = gw.wait_exit(WAIT);
    let gw = start_mqgate_run(&config);
    let stats = out.wait_for_all(N, Duration::from_secs(60));
    assert!(
        stats.missing(0..N).is_empty(),
        "lost across the kill: {}",
        stats.summary()
    );
    assert!(publisher.wait().expect("mosquitto_pub").success());
    // Else the kill proved nothing.
    assert!(
        unstored >= 100,
        "only {unstored} messages were taken and not yet delivered at the kill"
    );
    stop(gw);
}

/// A `#` filter on the broker the gateway also publishes to: what the gateway
/// published comes back to its source and is skipped, or each message would be
/// mapped again and again.
#[test]
fn a_hash_filter_on_the_upstream_broker_never_takes_the_gateways_own_messages() {
    let dir = Scratch::new("mqtt-noloop");
    let mosquitto = Mosquitto::start();
    dir.write(
        "mappings/all.yaml",
        "source: all\ntopic: \"out/{level1}\"\n",
    );
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        &dir,
        &format!("upstream:\n  url: {url}\n"),
        &format!("  - id: all\n    type: mqtt\n    url: {url}\n    topics: [\"#\"]\n"),
    );
    let gw = start_mqgate_run(&config);
    wait_subscribed(&gw, 1);
    let mut sub = Subscriber::start("out", mosquitto.port, "out/#");
    publish(mosquitto.port, "in/a", "21.5");
    publish(mosquitto.port, "in/fence", "fence");
    let (before, fence) = sub.msgs_until_topic("out/fence");
    assert_eq!(fence.payload, b"fence");
    let topics: Vec<&str> = before.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["out/a"], "each message once, never mapped again");
    // The source saw its own two messages come back, and its status `online`,
    // and skipped them.
    let status = mqgate_tests::http::status_addr(&gw, WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        let s = mqgate_tests::http::api_status(status, WAIT)["sources"][0]["mqtt"].clone();
        if s["echoes"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "echoes not counted: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = test_support::http::get(status, "/metrics", WAIT).body;
    assert!(
        metrics.contains("mqgate_mqtt_source_messages_total{source=\"all\",kind=\"echo\"} 3"),
        "{metrics}"
    );
    stop(gw);
}

/// What other clients publish to the embedded broker (an ESP32 on the LAN) is
/// mapped; what the gateway publishes there itself is not taken back.
#[test]
fn an_embedded_broker_source_takes_other_clients_messages_and_never_its_own() {
    let dir = Scratch::new("mqtt-embedded");
    dir.write(
        "mappings/lan.yaml",
        "source: lan\ntopic: \"site/{level1}\"\n",
    );
    let config = gateway(
        &dir,
        EMBEDDED,
        "  - id: lan\n    type: mqtt\n    broker: embedded\n    topics: [\"#\"]\n",
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    gw.wait_for_line(Stream::Stderr, &["subscribed on the embedded broker"], WAIT);
    let mut sub = Subscriber::start("site", port, "site/#");
    publish(port, "esp32/kitchen", "21.5");
    publish(port, "esp32/fence", "fence");
    let (before, fence) = sub.msgs_until_topic("site/fence");
    assert_eq!(fence.payload, b"fence");
    let got: Vec<(&str, &[u8])> = before
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice()))
        .collect();
    assert_eq!(got, [("site/kitchen", &b"21.5"[..])], "no `site/site/...`");
    stop(gw);
}

/// The source on a broker over TLS that wants a client certificate and a
/// password (the keys and code of `upstream:`): what a client publishes there
/// is mapped, and the broker's log shows mqgate's user.
#[test]
fn an_mqtt_source_reads_a_tls_broker_with_a_client_certificate_and_a_password() {
    use test_support::mosquitto_tls::{mosquitto_password_file, BrokerTls, ClientTls};
    let dir = Scratch::new("mqtt-tls");
    let ca = test_support::pki::Ca::new(dir.path(), "ca");
    let gateway_cert = ca.client("gateway", "/CN=mqtt-gw");
    let publisher = ClientTls {
        ca: ca.cert.clone(),
        client: ca.client("sensor", "/CN=sensor"),
        username: "sensor".into(),
        password: "sensor-pass".into(),
    };
    let mosquitto = Mosquitto::start_tls(&BrokerTls {
        client_ca: ca.cert.clone(),
        server: ca.server("server"),
        password_file: mosquitto_password_file(
            &dir.path().join("mosquitto.passwd"),
            &[("mqgate", "gateway pass: 7&x"), ("sensor", "sensor-pass")],
        ),
    });
    let password = dir.write("gateway-password", "gateway pass: 7&x\n");
    dir.write(
        "mappings/tls.yaml",
        "source: tls\ntopic: \"site/{level1}\"\n",
    );
    let config = gateway(
        &dir,
        EMBEDDED,
        &format!(
            "  - id: tls\n    type: mqtt\n    url: mqtts://127.0.0.1:{port}\n\
             \x20   username: mqgate\n    password_file: {password}\n    ca_file: {ca}\n\
             \x20   cert_file: {cert}\n    key_file: {key}\n    topics: [\"tele/+/SENSOR\"]\n",
            port = mosquitto.port,
            password = password.display(),
            ca = ca.cert.display(),
            cert = gateway_cert.cert.display(),
            key = gateway_cert.key.display(),
        ),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    wait_subscribed(&gw, 1);
    let mut sub = Subscriber::start("site", port, "site/#");
    let mut args = publisher.mosquitto_args(mosquitto.port);
    for a in [
        "-q",
        "1",
        "-t",
        "tele/kitchen/SENSOR",
        "-m",
        "{\"Temperature\":21.5}",
    ] {
        args.push(a.into());
    }
    let published = Command::new("mosquitto_pub")
        .args(&args)
        .status()
        .expect("mosquitto_pub");
    assert!(published.success());
    let m = sub.expect_msg();
    assert_eq!(m.topic, "site/kitchen");
    assert_eq!(m.payload, b"{\"Temperature\":21.5}");
    assert!(
        mosquitto.transcript().contains("u'mqgate'"),
        "mqgate logged in as its user: {}",
        mosquitto.transcript()
    );
    stop(gw);
}

/// A broker that is down when the gateway starts: the source says so (state
/// `waiting`, naming the broker) and tries again with back-off while the rest of
/// the gateway runs; once the broker is up its messages come through.
#[test]
fn a_broker_that_is_down_is_waited_for_and_its_messages_come_once_it_is_up() {
    let dir = Scratch::new("mqtt-down");
    let mut broker = mqgate_tests::upstream::Upstream::start(&dir.path().join("broker"));
    let broker_port = broker.port();
    assert!(broker.stop().success());
    dir.write(
        "mappings/far.yaml",
        "source: far\ntopic: \"site/{level1}\"\n",
    );
    let config = gateway(
        &dir,
        EMBEDDED,
        &format!(
            "  - id: far\n    type: mqtt\n    url: mqtt://127.0.0.1:{broker_port}\n\
             \x20   topics: [\"tele/#\"]\n    reconnect: {{ initial_ms: 100, max_ms: 300 }}\n"
        ),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let status = mqgate_tests::http::status_addr(&gw, WAIT);
    mqgate_tests::http::wait_status(status, "the source waiting for its broker", WAIT, |s| {
        let src = &s["sources"][0];
        src["state"] == "waiting"
            && src["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("127.0.0.1:{broker_port}")))
    });
    broker.restart();
    wait_subscribed(&gw, 1);
    let mut sub = Subscriber::start("site", port, "site/#");
    publish(broker_port, "tele/pump", "on");
    let m = sub.expect_msg();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("site/pump", &b"on"[..])
    );
    stop(gw);
}

#[test]
fn bad_mqtt_source_settings_are_refused_with_their_field() {
    let dir = Scratch::new("mqtt-bad");
    let config = gateway(
        &dir,
        "",
        "  - id: a\n    type: mqtt\n    url: mqtt://127.0.0.1:1883\n    format: ttn_v4\n\
         \x20 - id: b\n    type: mqtt\n    topics: [\"x/#\"]\n\
         \x20 - id: c\n    type: mqtt\n    url: mqtt://127.0.0.1:1883\n    topics: [\"x/#/y\"]\n    max_inflight: 5\n\
         \x20 - id: d\n    type: mqtt\n    broker: embedded\n    topics: [\"x\"]\n",
    );
    let out =
        mqgate_tests::mqgate::run_mqgate(&["check", "--config", config.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "{out:?}");
    let err = out.stderr;
    for want in [
        "sources[0].format: unknown format `ttn_v4`, expected one of raw, ttn_v3, chirpstack_v4",
        "sources[1]: an MQTT source needs `url: mqtt://HOST:PORT` (another broker) or `broker: embedded`",
        "sources[2].topics[0]: \"x/#/y\" is not a topic filter",
        "sources[2].max_inflight: `max_inflight` is for publishing",
        "sources[3].broker: `broker: embedded` needs the embedded broker",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
}

/// A gateway whose `ttn` source (format ttn_v3, on `mosquitto`) takes commands
/// with the mapping `dir` holds, after device `probe-7` of application
/// `greenhouse@ttn` was heard once (so its downlinks have an address).
struct Downlinking {
    gw: Proc,
    /// The embedded broker's port.
    port: u16,
    /// The downlink requests on the network server's broker.
    pushes: Subscriber,
    /// The commands' results on the embedded broker.
    results: Subscriber,
    /// What the mapping made of the device's first uplink.
    first_uplink: Msg,
}

fn downlinking(dir: &Scratch, mosquitto: &Mosquitto) -> Downlinking {
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let config = gateway(
        dir,
        EMBEDDED,
        &format!("  - id: ttn\n    type: mqtt\n    url: {url}\n    format: ttn_v3\n"),
    );
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    wait_subscribed(&gw, 1);
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    let pushes = Subscriber::start("pushes", mosquitto.port, "v3/+/devices/+/down/push");
    let results = Subscriber::start("results", port, "cmd/ttn/+/result");
    let mut uplinks = Subscriber::start("up", port, "lorawan/#");
    // The device is heard first: its downlinks go to the same application.
    publish(
        mosquitto.port,
        "v3/greenhouse@ttn/devices/probe-7/up",
        &ttn_uplink("probe-7", 1, "AQ=="),
    );
    let first_uplink = uplinks.expect_msg();
    Downlinking {
        gw,
        port,
        pushes,
        results,
        first_uplink,
    }
}

/// Waits until `n` MQTT sources have had their subscriptions acknowledged (each
/// logs `subscribed` with its `source=` once per filter, after its SUBACK).
fn wait_subscribed(gw: &Proc, n: usize) {
    gw.wait_until("the MQTT sources to subscribe", WAIT, |lines| {
        let sources: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|l| l.text.contains("subscribed"))
            .filter_map(|l| l.text.split("source=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        (sources.len() >= n).then_some(())
    });
}

fn stop(mut gw: Proc) {
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}
