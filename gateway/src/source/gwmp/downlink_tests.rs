//! Downlinks over real UDP on loopback: the source on one socket, fake packet
//! forwarders (test-support) on others, commands through the source's link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use test_support::gwmp::{Forwarder, PullResp};
use test_support::wait_for;
use tokio::sync::{mpsc, oneshot, watch};

use super::*;
use crate::airtime::LoraParams;
use crate::frame::Frame;
use crate::message::Part;
use crate::source::{link, CommandLink, SourceStatus, TxOutcome, TxRequest};

const WAIT: Duration = Duration::from_secs(5);
const GW_A: [u8; 8] = [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 0x0a];
const GW_B: [u8; 8] = [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 0x0b];

/// A running source with a command link.
struct Source {
    addr: SocketAddr,
    link: CommandLink,
    status: Arc<SourceStatus>,
    _frames: mpsc::Receiver<Frame>,
    _stop: watch::Sender<bool>,
}

async fn source(settings: Settings) -> Source {
    let socket = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, frames) = mpsc::channel(64);
    let status = Arc::new(SourceStatus::new("lora"));
    let (stop, shutdown) = watch::channel(false);
    let (link, device) = link();
    let out = Out {
        source: Arc::from("lora"),
        tx,
        status: status.clone(),
    };
    tokio::spawn(run(socket, out, device, settings, None, shutdown));
    Source {
        addr,
        link,
        status,
        _frames: frames,
        _stop: stop,
    }
}

fn part(bytes: &[u8], options: Value) -> Part {
    let Value::Object(options) = options else {
        panic!("options are an object")
    };
    Part {
        bytes: Bytes::copy_from_slice(bytes),
        delay_ms: 0,
        options,
    }
}

/// Hands a command to the source; its outcome comes later, through the receiver.
async fn command(link: &CommandLink, parts: Vec<Part>) -> oneshot::Receiver<TxOutcome> {
    let (reply, outcome) = oneshot::channel();
    link.tx
        .send(TxRequest { parts, reply })
        .await
        .expect("the source takes commands");
    outcome
}

async fn outcome(rx: oneshot::Receiver<TxOutcome>) -> TxOutcome {
    wait_for("the command's outcome", WAIT, rx)
        .await
        .expect("the source answers")
}

fn txpk(resp: &PullResp) -> Value {
    let v: Value = serde_json::from_str(&resp.json).expect("a PULL_RESP body is JSON");
    v["txpk"].clone()
}

async fn uplink(gw: &mut Forwarder) {
    let rxpk = r#"{"rxpk":[{"tmst":1000000,"freq":868.1,"chan":0,"rfch":0,"stat":1,
        "modu":"LORA","datr":"SF7BW125","codr":"4/5","rssi":-50,"lsnr":9.5,"size":2,"data":"AQI="}]}"#;
    gw.push_data(rxpk, WAIT).await;
}

#[tokio::test]
async fn a_command_goes_to_a_version_2_gateway_as_pull_resp_and_is_sent_once_tx_ack_says_none() {
    let s = source(Settings::default()).await;
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    wait_for("ready", WAIT, s.link.ready.clone().wait_for(|r| *r))
        .await
        .unwrap();

    let pending = command(
        &s.link,
        vec![part(
            b"\x60\x04\x03\x02\x01",
            json!({ "freq": 868.1, "datr": "SF7BW125", "powe": 14 }),
        )],
    )
    .await;
    let resp = gw.pull_resp(WAIT).await;
    assert_eq!(resp.version, 2);
    assert_eq!(
        txpk(&resp),
        json!({ "imme": true, "freq": 868.1, "rfch": 0, "powe": 14, "modu": "LORA",
                "datr": "SF7BW125", "codr": "4/5", "ipol": true, "size": 5, "data": "YAQDAgE=" })
    );
    // A TX_ACK with another token is not this command's answer.
    gw.tx_ack(
        resp.token.wrapping_add(1),
        Some(r#"{"txpk_ack":{"error":"TOO_LATE"}}"#),
    )
    .await;
    gw.tx_ack(resp.token, Some(r#"{"txpk_ack":{"error":"NONE"}}"#))
        .await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);

    // A TX_ACK without JSON means no error too; each PULL_RESP has its own token.
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    let second = gw.pull_resp(WAIT).await;
    assert_ne!(second.token, resp.token);
    gw.tx_ack(second.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
}

#[tokio::test]
async fn a_tx_ack_with_too_late_fails_the_command_naming_the_gateway_and_the_reason() {
    let s = source(Settings::default()).await;
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    let pending = command(&s.link, vec![part(b"\x01", json!({ "tmst": 2_000_000 }))]).await;
    let resp = gw.pull_resp(WAIT).await;
    let t = txpk(&resp);
    assert_eq!(
        (t["imme"].clone(), t["tmst"].clone()),
        (json!(false), json!(2_000_000))
    );
    gw.tx_ack(resp.token, Some(r#"{"txpk_ack":{"error":"TOO_LATE"}}"#))
        .await;
    match outcome(pending).await {
        TxOutcome::Failed(why) => {
            assert!(why.contains("TOO_LATE"), "{why}");
            assert!(why.contains(&gw.eui_hex()), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_version_2_gateway_that_sends_no_tx_ack_fails_the_command_and_a_late_one_is_ignored() {
    let s = source(Settings {
        tx_ack_timeout: Duration::from_millis(300),
        ..Settings::default()
    })
    .await;
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    let silent = gw.pull_resp(WAIT).await;
    match outcome(pending).await {
        TxOutcome::Failed(why) => assert!(why.contains("no TX_ACK"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The late answer is for no command; the next command gets its own.
    gw.tx_ack(silent.token, None).await;
    let pending = command(&s.link, vec![part(b"\x02", json!({}))]).await;
    let next = gw.pull_resp(WAIT).await;
    assert_eq!(txpk(&next)["data"], "Ag==");
    gw.tx_ack(next.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
}

#[tokio::test]
async fn a_version_1_gateway_gets_a_version_1_pull_resp_and_the_command_is_sent_when_it_goes_out() {
    let s = source(Settings::default()).await;
    let mut gw = Forwarder::new(s.addr, GW_A, 1).await;
    gw.pull_data(WAIT).await;
    let pending = command(&s.link, vec![part(b"\x01\x02", json!({}))]).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
    let resp = gw.pull_resp(WAIT).await;
    assert_eq!(resp.version, 1);
    assert_eq!(txpk(&resp)["data"], "AQI=");
}

#[tokio::test]
async fn without_pull_data_a_command_waits_and_goes_out_once_a_gateway_sends_pull_data() {
    let s = source(Settings::default()).await;
    assert!(!*s.link.ready.borrow(), "no gateway yet: not ready");
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    match outcome(pending).await {
        TxOutcome::NotReady(why) => assert!(why.contains("no gateway has sent PULL_DATA"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    wait_for("ready", WAIT, s.link.ready.clone().wait_for(|r| *r))
        .await
        .unwrap();
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    let resp = gw.pull_resp(WAIT).await;
    gw.tx_ack(resp.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
}

#[tokio::test]
async fn a_gateway_without_pull_data_for_three_keepalives_is_gone_until_it_pulls_again() {
    let keepalive = Duration::from_millis(100);
    let s = source(Settings {
        keepalive,
        ..Settings::default()
    })
    .await;
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    // Gone is a matter of time passed since the PULL_DATA, nothing else.
    tokio::time::sleep(keepalive * 3 + Duration::from_millis(50)).await;
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    match outcome(pending).await {
        TxOutcome::Failed(why) => {
            assert!(why.contains("is gone"), "{why}");
            assert!(why.contains(&gw.eui_hex()), "{why}");
        }
        other => panic!("{other:?}"),
    }
    gw.pull_data(WAIT).await;
    let pending = command(&s.link, vec![part(b"\x02", json!({}))]).await;
    let resp = gw.pull_resp(WAIT).await;
    gw.tx_ack(resp.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
}

/// Sends a command, and returns which of `a` and `b` got it (answering TX_ACK).
async fn which_gets(s: &Source, a: &mut Forwarder, b: &mut Forwarder, options: Value) -> char {
    let pending = command(&s.link, vec![part(b"\x01", options)]).await;
    let (got, resp) = tokio::select! {
        r = a.pull_resp(WAIT) => ('a', r),
        r = b.pull_resp(WAIT) => ('b', r),
    };
    let gw = if got == 'a' { &*a } else { &*b };
    gw.tx_ack(resp.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);
    got
}

#[tokio::test]
async fn the_gateway_is_the_scripts_else_the_configured_else_the_last_uplinks_else_the_only_one() {
    let s = source(Settings::default()).await;
    let mut a = Forwarder::new(s.addr, GW_A, 2).await;
    let mut b = Forwarder::new(s.addr, GW_B, 2).await;
    a.pull_data(WAIT).await;
    // One gateway known: it is the one.
    assert_eq!(which_gets(&s, &mut a, &mut b, json!({})).await, 'a');
    b.pull_data(WAIT).await;
    // Two and no uplink: not clear.
    let pending = command(&s.link, vec![part(b"\x01", json!({}))]).await;
    match outcome(pending).await {
        TxOutcome::Failed(why) => assert!(why.contains("2 gateways"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The latest uplink's gateway.
    uplink(&mut b).await;
    assert_eq!(which_gets(&s, &mut a, &mut b, json!({})).await, 'b');
    // The script's choice over the uplink's.
    let named = json!({ "gateway_eui": a.eui_hex() });
    assert_eq!(which_gets(&s, &mut a, &mut b, named).await, 'a');
    // A named gateway that has not sent PULL_DATA: the command waits.
    let pending = command(
        &s.link,
        vec![part(b"\x01", json!({ "gateway_eui": "0000000000000001" }))],
    )
    .await;
    match outcome(pending).await {
        TxOutcome::NotReady(why) => assert!(why.contains("0000000000000001"), "{why}"),
        other => panic!("{other:?}"),
    }

    // The configured gateway over the latest uplink's.
    let s = source(Settings {
        gateway_eui: Some(a.eui_hex()),
        ..Settings::default()
    })
    .await;
    let mut a = Forwarder::new(s.addr, GW_A, 2).await;
    let mut b = Forwarder::new(s.addr, GW_B, 2).await;
    a.pull_data(WAIT).await;
    b.pull_data(WAIT).await;
    uplink(&mut b).await;
    assert_eq!(which_gets(&s, &mut a, &mut b, json!({})).await, 'a');
    let named = json!({ "gateway_eui": b.eui_hex() });
    assert_eq!(which_gets(&s, &mut a, &mut b, named).await, 'b');
}

#[tokio::test]
async fn a_gateway_out_of_duty_cycle_rejects_the_command_sends_nothing_and_shows_its_budget() {
    let s = source(Settings::default()).await;
    let mut gw = Forwarder::new(s.addr, GW_A, 2).await;
    gw.pull_data(WAIT).await;
    // 868.8 MHz is in the 0.1 % sub-band: 3.6 s an hour. At SF12 two 60-byte
    // packets need more than that, one fits.
    let one = LoraParams::new(12, 125_000, 1).time_on_air(60);
    assert!(one < Duration::from_millis(3600) && one * 2 > Duration::from_millis(3600));
    let slow = json!({ "freq": 868.8, "datr": "SF12BW125" });
    let pending = command(&s.link, vec![part(&[7; 60], slow.clone())]).await;
    let resp = gw.pull_resp(WAIT).await;
    gw.tx_ack(resp.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);

    let pending = command(&s.link, vec![part(&[8; 60], slow)]).await;
    match outcome(pending).await {
        TxOutcome::Rejected(why) => {
            assert!(why.starts_with("duty_cycle: "), "{why}");
            assert!(
                why.contains(&gw.eui_hex()) && why.contains("868.7"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The fence: the next PULL_RESP the gateway sees is the next command's.
    let pending = command(&s.link, vec![part(b"\x09", json!({}))]).await;
    let next = gw.pull_resp(WAIT).await;
    assert_eq!(txpk(&next)["data"], "CQ==");
    gw.tx_ack(next.token, None).await;
    assert_eq!(outcome(pending).await, TxOutcome::Sent);

    let budgets = s.status.duty_cycle();
    assert_eq!(budgets.len(), 1);
    assert_eq!(budgets[0].radio, gw.eui_hex());
    let band = budgets[0]
        .sub_bands
        .iter()
        .find(|b| b.low_hz == 868_700_000)
        .expect("the 868.7 MHz sub-band");
    assert!(
        (band.used_secs - one.as_secs_f64()).abs() < 1e-6,
        "only the sent packet is charged: {band:?}"
    );
}
