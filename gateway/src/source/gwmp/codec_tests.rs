use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::source::{DeviceSide, SourceStatus};

/// `semtech-udp/gwmp-samples.json` from the real-data folder.
fn samples() -> Value {
    let path = crate::real_data::real_data("semtech-udp/gwmp-samples.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the GWMP samples are needed at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn datagrams() -> Vec<(String, Vec<u8>, Value)> {
    samples()["datagrams"]
        .as_array()
        .expect("datagrams")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                hex(d["hex"].as_str().unwrap()),
                d.clone(),
            )
        })
        .collect()
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn every_sample_datagram_parses_with_its_header_and_gets_the_right_ack() {
    let all = datagrams();
    assert!(all.len() >= 8, "the sample file has its datagrams");
    for (id, bytes, d) in all {
        let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
        let h = &d["header"];
        assert_eq!(
            parsed.version as u64,
            h["protocol_version"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            format!("{:04x}", parsed.token),
            h["token"].as_str().unwrap(),
            "{id}"
        );
        assert_eq!(
            parsed.gateway_eui,
            h["gateway_eui"].as_str().unwrap(),
            "{id}"
        );
        let [hi, lo] = parsed.token.to_be_bytes();
        let expected_ack = match h["identifier_name"].as_str().unwrap() {
            "PUSH_DATA" => Some([parsed.version, hi, lo, 0x01]),
            "PULL_DATA" => Some([parsed.version, hi, lo, 0x04]),
            "TX_ACK" => None,
            other => panic!("{id}: unexpected identifier {other}"),
        };
        assert_eq!(ack(&parsed), expected_ack, "{id}");
        if let Some(json) = d.get("json").filter(|j| j.is_object()) {
            let Kind::PushData(body) = &parsed.kind else {
                panic!("{id}: a JSON body belongs to PUSH_DATA");
            };
            assert_eq!(&Value::Object(body.clone()), json, "{id}");
        }
    }
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn rxpk_entries_become_frames_with_their_radio_meta() {
    let (_, bytes, _) = datagrams()
        .into_iter()
        .find(|(id, _, _)| id.ends_with("/test_push_data_rxpk"))
        .expect("sample");
    let d = parse(&bytes).unwrap();
    let Kind::PushData(body) = &d.kind else {
        panic!("PUSH_DATA")
    };
    let r = frames(&d.gateway_eui, body);
    assert_eq!(r.packets.len(), 1);
    assert!(r.bad.is_empty() && r.stats.is_empty());
    let (payload, meta) = &r.packets[0];
    assert_eq!(payload.len(), 23);
    assert_eq!(meta.rssi, Some(-58.0));
    assert_eq!(meta.snr, Some(10.8));
    assert_eq!(meta.frequency_hz, Some(912_600_000));
    assert_eq!(meta.datarate.as_deref(), Some("SF8BW500"));
    assert_eq!(meta.extra["gateway_eui"], "aa555a0000000000");
    assert_eq!(meta.extra["tmst"], "1472242252");
    assert_eq!(meta.extra["crc"], "ok");
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn version_2_signal_figures_come_from_the_first_antenna() {
    let (_, bytes, _) = datagrams()
        .into_iter()
        .find(|(id, _, _)| id.ends_with("jsonv2"))
        .expect("sample");
    let d = parse(&bytes).unwrap();
    let Kind::PushData(body) = &d.kind else {
        panic!("PUSH_DATA")
    };
    let r = frames(&d.gateway_eui, body);
    let (payload, meta) = &r.packets[0];
    assert_eq!(payload.len(), 16);
    assert_eq!(meta.rssi, Some(-46.0));
    assert_eq!(meta.snr, Some(10.0));
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn a_packet_whose_crc_failed_is_counted_not_mapped_and_stat_becomes_a_status_frame() {
    let all = datagrams();
    let crc = all
        .iter()
        .find(|(id, _, _)| id.ends_with("/new_packet"))
        .unwrap();
    let d = parse(&crc.1).unwrap();
    let Kind::PushData(body) = &d.kind else {
        panic!("PUSH_DATA")
    };
    let r = frames(&d.gateway_eui, body);
    assert!(r.packets.is_empty());
    assert_eq!(r.bad, ["CRC failed"]);

    let stat = all
        .iter()
        .find(|(id, _, _)| id.ends_with("/test_push_data_stat"))
        .unwrap();
    let d = parse(&stat.1).unwrap();
    let Kind::PushData(body) = &d.kind else {
        panic!("PUSH_DATA")
    };
    let r = frames(&d.gateway_eui, body);
    assert_eq!(r.stats.len(), 1);
    let (json, meta) = &r.stats[0];
    let v: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(v["gateway_eui"], "aa555a0000000000");
    assert_eq!(v["rxnb"], 3);
    assert_eq!(meta.extra["gwmp"], "stat");
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[test]
fn the_spec_examples_decode_leniently_and_match_their_sizes() {
    let spec = samples()["spec_examples"].clone();
    let rxpk = spec
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str().unwrap().ends_with("/rxpk"))
        .expect("the spec's rxpk example");
    let body = rxpk["json"].as_object().unwrap();
    let r = frames("0102030405060708", body);
    assert!(r.bad.is_empty(), "{:?}", r.bad);
    assert_eq!(r.packets.len(), 3);
    // URL-safe characters mixed in, and no padding: 32 bytes as `size` says.
    assert_eq!(r.packets[0].0.len(), 32);
    assert_eq!(&r.packets[1].0[..], b"TEST_PACKET_1234");
    assert_eq!(r.packets[1].1.datarate.as_deref(), Some("50000"));
    assert_eq!(r.packets[2].0.len(), 32);
}

#[test]
fn bad_datagrams_are_errors_that_say_why() {
    assert_eq!(parse(&[2, 0]), Err(GwmpError::Short(2)));
    assert_eq!(parse(&[3, 0, 0, 0]), Err(GwmpError::Version(3)));
    assert_eq!(
        parse(&[2, 0, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(GwmpError::Identifier(9))
    );
    let mut push = vec![2, 0x12, 0x34, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    push.extend_from_slice(b"{\"rxpk\":[");
    assert!(matches!(parse(&push), Err(GwmpError::Json(_))));
}

#[cfg_attr(
    not(real_data),
    ignore = "needs MQGATE_REAL_DATA: recordings from real devices (README, Tests)"
)]
#[tokio::test]
async fn the_source_acknowledges_every_sample_over_udp_with_its_token_and_sends_the_frames() {
    let socket = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let status = Arc::new(SourceStatus::new("lora"));
    let (_stop, shutdown) = watch::channel(false);
    let out = Out {
        source: Arc::from("lora"),
        tx,
        status: status.clone(),
    };
    tokio::spawn(run(
        socket,
        out,
        DeviceSide::none(),
        Settings::default(),
        None,
        shutdown,
    ));

    let gateway = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut expected_frames = 0;
    let mut expected_bad = 0;
    for (id, bytes, d) in datagrams() {
        gateway.send_to(&bytes, addr).await.unwrap();
        let parsed = parse(&bytes).unwrap();
        if let Some(want) = ack(&parsed) {
            let mut got = [0u8; 16];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), gateway.recv_from(&mut got))
                .await
                .unwrap_or_else(|_| panic!("{id}: no ack"))
                .unwrap();
            assert_eq!(&got[..n], &want, "{id}");
        }
        if let Kind::PushData(body) = &parsed.kind {
            let r = frames(&parsed.gateway_eui, body);
            expected_frames += r.packets.len() + r.stats.len();
            expected_bad += r.bad.len();
        }
        let _ = d;
    }
    for i in 0..expected_frames {
        let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("frame {i} of {expected_frames}"))
            .unwrap();
        assert_eq!(&*frame.source, "lora");
        assert!(frame.meta.extra.contains_key("gateway_eui"));
    }
    assert_eq!(SourceStatus::get(&status.frames), expected_frames as u64);
    assert_eq!(SourceStatus::get(&status.bad_frames), expected_bad as u64);
    // A datagram that is not GWMP is counted and answered with nothing.
    gateway.send_to(b"hello", addr).await.unwrap();
    let counted = tokio::time::timeout(Duration::from_secs(5), async {
        while SourceStatus::get(&status.bad_frames) == expected_bad as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "the bad datagram is counted");
}
