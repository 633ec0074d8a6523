//! Commands down through a LoRa gateway: `mosquitto_pub` → the embedded broker →
//! `mqgate run` with a `semtech_udp` source → PULL_RESP to a fake packet
//! forwarder on loopback → its TX_ACK → the command's result on its result topic.

use std::net::SocketAddr;
use std::time::Duration;

use mqgate_tests::mqgate::{embedded_broker_port, start_mqgate_run};
use serde_json::{json, Value};
use test_support::gwmp::{Forwarder, PullResp};
use test_support::mosquitto::{mosquitto_pub, Msg, Subscriber};
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);

/// Publishes each uplink's payload with its `tmst`; sends a command's `text` to
/// a P2P receiver (no inverted polarity) on 868.1 MHz at SF7, in the RX1 window
/// (a second after the uplink) when the command carries the uplink's `tmst`; a
/// `slow` one at SF12 in the 0.1 % sub-band (3.6 s of air time an hour).
const SCRIPT: &str = r#"
fn map(frame) {
    #{ payload: #{ size: frame.bytes.len(), tmst: parse_int(frame.meta.tmst) } }
}

fn encode(command) {
    let c = command.json;
    let part = #{ bytes: c.text, freq: 868.1, datr: "SF7BW125", powe: 14, ipol: false };
    if c.tmst != () {
        part.tmst = c.tmst + 1000000;
    }
    if c.slow == true {
        part.freq = 868.8;
        part.datr = "SF12BW125";
    }
    part
}
"#;

fn gateway(dir: &Scratch) -> std::path::PathBuf {
    dir.write("mappings/lora.rhai", SCRIPT);
    dir.write(
        "mappings/lora.yaml",
        "source: lora\nscript: lora.rhai\ntopic: \"up/{source}\"\n\
         commands:\n  topic: \"down/{source}/#\"\n",
    );
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: lora-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             sources:\n  - id: lora\n    type: semtech_udp\n    listen: 127.0.0.1:0\n",
            state = dir.path().join("state").display(),
        ),
    )
}

/// The source's UDP address.
fn udp_addr(gw: &Proc) -> SocketAddr {
    mqgate_tests::mqgate::semtech_udp_addr(gw, WAIT)
}

fn json_of(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

fn txpk(resp: &PullResp) -> Value {
    let v: Value = serde_json::from_str(&resp.json).expect("a PULL_RESP body is JSON");
    v["txpk"].clone()
}

fn publish(port: u16, payload: &str) {
    mosquitto_pub(port, &["-q", "1", "-t", "down/lora/node-1", "-m", payload]);
}

#[test]
fn commands_reach_the_gateway_as_the_script_set_them_and_tx_ack_or_the_duty_cycle_decides_each_result(
) {
    let dir = Scratch::new("gwmp-downlink");
    let config = gateway(&dir);
    let mut gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let udp = udp_addr(&gw);
    gw.wait_for_line(Stream::Stderr, &["taking commands"], WAIT);
    let up = Subscriber::start("uplinks", port, "up/lora");
    let results = Subscriber::start("results", port, "down/lora/+/result");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut fwd = Forwarder::new(udp, [0xb8, 0x27, 0xeb, 0xff, 0xfe, 0, 0, 1], 2).await;
        fwd.pull_data(WAIT).await;
        fwd.push_data(
            r#"{"rxpk":[{"tmst":3512348611,"freq":868.1,"chan":0,"rfch":0,"stat":1,"modu":"LORA",
                "datr":"SF7BW125","codr":"4/5","rssi":-40,"lsnr":9,"size":2,"data":"AQI="}]}"#,
            WAIT,
        )
        .await;
        let got = up.wait_until("the uplink", WAIT, |m| !m.is_empty());
        let tmst = json_of(&got[0])["tmst"]
            .as_u64()
            .expect("the uplink's tmst");
        assert_eq!(tmst, 3_512_348_611);

        // The application answers in RX1: the uplink's tmst plus a second.
        publish(
            port,
            &format!(r#"{{"text": "ON", "tmst": {tmst}, "correlation": "c-1"}}"#),
        );
        let resp = fwd.pull_resp(WAIT).await;
        assert_eq!(resp.version, 2);
        assert_eq!(
            txpk(&resp),
            json!({ "imme": false, "tmst": 3_513_348_611u64, "freq": 868.1, "rfch": 0,
                    "powe": 14, "modu": "LORA", "datr": "SF7BW125", "codr": "4/5",
                    "ipol": false, "size": 2, "data": "T04=" })
        );
        fwd.tx_ack(resp.token, Some(r#"{"txpk_ack":{"error":"NONE"}}"#))
            .await;
        let got = results.wait_until("the first result", WAIT, |m| !m.is_empty());
        let first = json_of(&got[0]);
        assert_eq!(first["status"], "sent", "{first}");
        assert_eq!(first["correlation"], "c-1");

        // At once, and refused by the gateway.
        publish(port, r#"{"text": "OFF", "correlation": "c-2"}"#);
        let resp = fwd.pull_resp(WAIT).await;
        assert_eq!(txpk(&resp)["imme"], true);
        assert_eq!(txpk(&resp)["data"], "T0ZG");
        fwd.tx_ack(resp.token, Some(r#"{"txpk_ack":{"error":"TOO_LATE"}}"#))
            .await;
        let got = results.wait_until("the second result", WAIT, |m| m.len() >= 2);
        let second = json_of(&got[1]);
        assert_eq!(second["status"], "failed", "{second}");
        assert_eq!(second["correlation"], "c-2");
        let error = second["error"].as_str().expect("an error text");
        assert!(
            error.contains("TOO_LATE") && error.contains("b827ebfffe000001"),
            "{error}"
        );

        // 200 bytes at SF12 take longer than the sub-band's hour allows: the
        // duty cycle refuses it and nothing reaches the gateway.
        let long = "x".repeat(200);
        publish(
            port,
            &format!(r#"{{"text": "{long}", "slow": true, "correlation": "c-3"}}"#),
        );
        let got = results.wait_until("the third result", WAIT, |m| m.len() >= 3);
        let third = json_of(&got[2]);
        assert_eq!(third["status"], "rejected", "{third}");
        let error = third["error"].as_str().expect("an error text");
        assert!(error.starts_with("duty_cycle: "), "{error}");
        publish(port, r#"{"text": "LAST", "correlation": "c-4"}"#);
        let resp = fwd.pull_resp(WAIT).await;
        assert_eq!(
            txpk(&resp)["data"],
            "TEFTVA==",
            "the next PULL_RESP after the refusal is the next command's"
        );
        fwd.tx_ack(resp.token, None).await;
        let got = results.wait_until("the fourth result", WAIT, |m| m.len() >= 4);
        assert_eq!(json_of(&got[3])["status"], "sent");
    });

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
    assert_eq!(results.messages().len(), 4, "one result per command");
}
