//! ABP devices on a Semtech source, end to end: uplinks encrypted by
//! `lora-packet` (npm, an implementation no one here wrote) from known session
//! keys, sent by two fake packet forwarders on loopback → `mqgate run` → the
//! registered device's decoder → `lorawan/{device}` on the embedded broker, read
//! by `mosquitto_sub`. Replays, bad MICs and unknown devices are refused or
//! passed and counted; the frame counter survives a restart.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mqgate_tests::lora_packet;
use mqgate_tests::mqgate::{embedded_broker_port, start_mqgate_run};
use serde_json::{json, Value};
use test_support::gwmp::Forwarder;
use test_support::mosquitto::{from_hex, Msg, Subscriber};
use test_support::process::Proc;
use test_support::scratch::Scratch;

const WAIT: Duration = Duration::from_secs(20);
const NWK: &str = "44024241ed4ce9a68c6a8bc055233fd3";
const APP: &str = "ec925802ae430ca77fd3dd73cb2cc588";
const ADDR: &str = "26011BDA";
const OTHER_ADDR: &str = "26011BDB";

/// The decoder of the registered device: what it decrypted and how it was heard.
const DECODER: &str = r#"
fn map(frame) {
    let m = frame.meta;
    #{ payload: #{
        hex: hex(frame.bytes), fport: m.fport, fcnt: m.fcnt, dev_addr: m.dev_addr,
        dev_eui: m.dev_eui, gateways: m.gateways, gateway_euis: m.gateway_euis,
        rssi: m.rssi, snr: m.snr, frequency_hz: m.frequency_hz, datarate: m.datarate
    } }
}
"#;

fn gateway(dir: &Scratch, keys_inline: bool) -> std::path::PathBuf {
    dir.write("decoders/probe.rhai", DECODER);
    let keys = if keys_inline {
        format!("    nwk_s_key: \"{NWK}\"\n    app_s_key: \"{APP}\"\n")
    } else {
        dir.write(
            "keys/probe.yaml",
            format!("nwk_s_key: \"{NWK}\"\napp_s_key: \"{APP}\"\n"),
        );
        "    keys_file: keys/probe.yaml\n".to_string()
    };
    dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: abp-gw\n  state_dir: {state}\n\
             broker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
             status:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: lora\n    type: semtech_udp\n    listen: 127.0.0.1:0\n\
             devices:\n  - name: probe-1\n    dev_eui: \"0004a30b001c0530\"\n    dev_addr: \"{ADDR}\"\n{keys}\
             \x20   decoder: decoders/probe.rhai\n",
            state = dir.path().join("state").display(),
        ),
    )
}

/// The source's UDP address.
fn udp_addr(gw: &Proc) -> SocketAddr {
    mqgate_tests::mqgate::semtech_udp_addr(gw, WAIT)
}

/// An uplink's PHYPayload from lora-packet, in base64.
fn uplinks(frames: &[(&str, u32, u8, &str, &str)]) -> Vec<String> {
    let requests: Vec<Value> = frames
        .iter()
        .map(|(addr, fcnt, fport, payload_hex, nwk)| {
            json!({ "op": "encode", "confirmed": false, "dev_addr": addr, "fctrl": 0,
                    "fcnt": fcnt, "fopts_hex": "", "fport": fport, "payload_hex": payload_hex,
                    "nwk_s_key": nwk, "app_s_key": APP })
        })
        .collect();
    lora_packet::ask(&requests)
        .into_iter()
        .map(|a| {
            let hex = a["phy_hex"]
                .as_str()
                .unwrap_or_else(|| panic!("lora-packet: {a}"));
            base64::engine::general_purpose::STANDARD.encode(from_hex(hex))
        })
        .collect()
}

fn rxpk(data: &str, rssi: i32, snr: f64) -> String {
    let size = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
        .len();
    json!({ "rxpk": [{ "tmst": 1000, "freq": 868.1, "chan": 0, "rfch": 0, "stat": 1,
        "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": rssi, "lsnr": snr,
        "size": size, "data": data }] })
    .to_string()
}

fn json_of(m: &Msg) -> Value {
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{m:?} is not JSON: {e}"))
}

/// The source's `lorawan` counters once `done` holds.
fn wait_counts(gw: &Proc, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let addr = mqgate_tests::http::status_addr(gw, WAIT);
    let deadline = Instant::now() + WAIT;
    loop {
        let c = mqgate_tests::http::api_status(addr, WAIT)["sources"][0]["lorawan"].clone();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: {c}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn abp_uplinks_from_two_gateways_are_decrypted_once_and_replays_bad_mics_and_strangers_are_counted()
{
    let dir = Scratch::new("abp");
    let config = gateway(&dir, false);
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let udp = udp_addr(&gw);
    let decoded = Subscriber::start("decoded", port, "lorawan/#");
    let raw = Subscriber::start("raw", port, "sensors/lora");
    let wrong_nwk = "00000000000000000000000000000001";
    let phys = uplinks(&[
        (ADDR, 10, 2, "03670110", NWK),
        (ADDR, 11, 2, "0102", wrong_nwk),
        (OTHER_ADDR, 5, 1, "aa", NWK),
        (ADDR, 20_010, 3, "ff", NWK),
    ]);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut near = Forwarder::new(udp, [0xb8, 0x27, 0xeb, 0xff, 0xfe, 0, 0, 1], 2).await;
        let mut far = Forwarder::new(udp, [0xb8, 0x27, 0xeb, 0xff, 0xfe, 0, 0, 2], 2).await;
        // One uplink heard by both gateways, the second better.
        far.push_data(&rxpk(&phys[0], -110, -5.0), WAIT).await;
        near.push_data(&rxpk(&phys[0], -40, 9.5), WAIT).await;
        let got = decoded.wait_until("the uplink", WAIT, |m| !m.is_empty());
        assert_eq!(got[0].topic, "lorawan/probe-1");
        let up = json_of(&got[0]);
        assert_eq!(up["hex"], "03670110", "decrypted: {up}");
        assert_eq!(up["fport"], "2");
        assert_eq!(up["fcnt"], "10");
        assert_eq!(up["dev_addr"], ADDR);
        assert_eq!(up["dev_eui"], "0004A30B001C0530");
        assert_eq!(up["gateways"], "2");
        assert_eq!(up["gateway_euis"], "b827ebfffe000002,b827ebfffe000001");
        assert_eq!(up["rssi"], -40.0, "the best gateway's: {up}");
        assert_eq!(up["snr"], 9.5);
        assert_eq!(up["frequency_hz"], 868_100_000);
        assert_eq!(up["datarate"], "SF7BW125");
        // The same uplink again, after its window: a replay.
        near.push_data(&rxpk(&phys[0], -40, 9.5), WAIT).await;
        // A frame with a MIC from other keys.
        near.push_data(&rxpk(&phys[1], -40, 9.5), WAIT).await;
        // A device the registry does not have: passed on as before.
        near.push_data(&rxpk(&phys[2], -40, 9.5), WAIT).await;
        raw.wait_until("the stranger's packet", WAIT, |m| !m.is_empty());
        let counts = wait_counts(&gw, "two refusals", |c| {
            c["refused"]["replay"] == 1 && c["refused"]["bad_mic"] == 1
        });
        assert_eq!(counts["accepted"], 1, "{counts}");
        assert_eq!(counts["duplicates"], 1, "{counts}");
        assert_eq!(counts["unknown_dev_addr"], 1, "{counts}");
        // A counter far ahead (the 32-bit counter recovered from 16 bits on air)
        // is refused; one step ahead is taken. Each is a fence for the others.
        near.push_data(&rxpk(&phys[3], -40, 9.5), WAIT).await;
        wait_counts(&gw, "too far ahead", |c| c["refused"]["too_far_ahead"] == 1);
    });
    // The same counts for Prometheus.
    let metrics =
        test_support::http::get(mqgate_tests::http::status_addr(&gw, WAIT), "/metrics", WAIT).body;
    for line in [
        "mqgate_lorawan_uplinks_total{source=\"lora\",outcome=\"accepted\"} 1",
        "mqgate_lorawan_uplinks_total{source=\"lora\",outcome=\"refused_bad_mic\"} 1",
        "mqgate_lorawan_uplinks_total{source=\"lora\",outcome=\"refused_replay\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    assert_eq!(
        decoded.messages().len(),
        1,
        "one message for the uplink heard twice, none for the refused: {:?}",
        decoded.messages()
    );
    let mut gw = gw;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn the_frame_counter_is_kept_across_a_restart_so_an_old_uplink_stays_refused() {
    let dir = Scratch::new("abp-restart");
    let config = gateway(&dir, true);
    let phys = uplinks(&[(ADDR, 20, 1, "01", NWK), (ADDR, 21, 1, "02", NWK)]);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let eui = [0xb8, 0x27, 0xeb, 0xff, 0xfe, 0, 0, 1];
    {
        let gw = start_mqgate_run(&config);
        let port = embedded_broker_port(&gw, WAIT);
        let udp = udp_addr(&gw);
        let decoded = Subscriber::start("decoded", port, "lorawan/#");
        runtime.block_on(async {
            let mut fwd = Forwarder::new(udp, eui, 2).await;
            fwd.push_data(&rxpk(&phys[0], -40, 9.5), WAIT).await;
        });
        decoded.wait_until("the first uplink", WAIT, |m| !m.is_empty());
        let mut gw = gw;
        gw.signal(libc::SIGTERM);
        assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
    }
    let gw = start_mqgate_run(&config);
    let port = embedded_broker_port(&gw, WAIT);
    let udp = udp_addr(&gw);
    let mut decoded = Subscriber::start("decoded", port, "lorawan/#");
    runtime.block_on(async {
        let mut fwd = Forwarder::new(udp, eui, 2).await;
        // The old uplink again, then the next one as a fence.
        fwd.push_data(&rxpk(&phys[0], -40, 9.5), WAIT).await;
        fwd.push_data(&rxpk(&phys[1], -40, 9.5), WAIT).await;
    });
    let first = json_of(&decoded.expect_msg());
    assert_eq!(
        first["fcnt"], "21",
        "the replay after the restart got through: {first}"
    );
    let counts = wait_counts(&gw, "the replay", |c| c["refused"]["replay"] == 1);
    assert_eq!(counts["accepted"], 1, "{counts}");
    let mut gw = gw;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}

#[test]
fn a_keys_file_others_may_read_is_warned_about_and_bad_keys_are_refused_with_their_field() {
    let dir = Scratch::new("abp-check");
    let config = gateway(&dir, false);
    let keys = dir.path().join("keys/probe.yaml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out =
        mqgate_tests::mqgate::run_mqgate(&["check", "--config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.contains("keys file") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out =
        mqgate_tests::mqgate::run_mqgate(&["check", "--config", config.to_str().expect("utf-8")]);
    assert!(!out.stderr.contains("keys file"), "{}", out.stderr);

    let text = std::fs::read_to_string(&config).expect("gateway file");
    std::fs::write(
        &config,
        text.replace(&format!("dev_addr: \"{ADDR}\""), "dev_addr: \"26011BD\""),
    )
    .expect("write");
    dir.write("keys/probe.yaml", "nwk_s_key: \"abc\"\napp_s_key: \"00\"\n");
    let out =
        mqgate_tests::mqgate::run_mqgate(&["check", "--config", config.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.contains("devices[0].dev_addr"), "{}", out.stderr);
    assert!(
        out.stderr.contains("devices[0].keys_file"),
        "{}",
        out.stderr
    );
}
