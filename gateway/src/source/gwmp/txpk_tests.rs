//! Options to `txpk`, TX_ACK bodies and PULL_RESP bytes: plain functions.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::*;
use crate::airtime::{LoraParams, Region};
use crate::message::Part;

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

fn eu868(p: &Part) -> Result<Txpk, String> {
    txpk(p, Defaults::of(Region::Eu868))
}

#[test]
fn a_part_without_options_goes_at_once_on_the_eu868_rx2_channel_with_inverted_polarity() {
    let t = eu868(&part(b"\x60\x01\x02", json!({}))).unwrap();
    assert_eq!(
        Value::Object(t.json),
        json!({
            "imme": true, "freq": 869.525, "rfch": 0, "powe": 14, "modu": "LORA",
            "datr": "SF12BW125", "codr": "4/5", "ipol": true, "size": 3, "data": "YAEC"
        })
    );
    assert_eq!(t.frequency_hz, 869_525_000);
    assert!(t.immediate);
    assert_eq!(
        t.airtime,
        LoraParams::new(12, 125_000, 1).time_on_air(3),
        "charged with the time on air of what is sent"
    );
}

#[test]
fn a_script_sets_timestamp_frequency_rate_power_and_polarity() {
    let t = eu868(&part(
        b"hello",
        json!({ "tmst": 3_000_000_000u64, "freq": 868.1, "datr": "sf7bw125", "codr": "4/6",
                "powe": 20, "ipol": false, "rfch": 1, "prea": 10, "ncrc": true,
                "gateway_eui": "AA-55-5A-00-00-00-00-01" }),
    ))
    .unwrap();
    assert_eq!(
        Value::Object(t.json),
        json!({
            "imme": false, "tmst": 3_000_000_000u64, "freq": 868.1, "rfch": 1, "powe": 20,
            "modu": "LORA", "datr": "SF7BW125", "codr": "4/6", "ipol": false, "prea": 10,
            "size": 5, "data": "aGVsbG8=", "ncrc": true
        })
    );
    assert_eq!(t.gateway_eui.as_deref(), Some("aa555a0000000001"));
    assert!(!t.immediate);
    let mut radio = LoraParams::new(7, 125_000, 2);
    radio.preamble_symbols = 10;
    radio.crc = false;
    assert_eq!(t.airtime, radio.time_on_air(5));
}

#[test]
fn an_unknown_option_or_a_bad_value_fails_naming_the_option() {
    let cases: &[(Value, &str)] = &[
        (json!({ "power": 14 }), "unknown option `power`"),
        (json!({ "data": "AAAA" }), "`data` is taken from `bytes`"),
        (json!({ "time": "2024-01-01T00:00:00Z" }), "option `time`"),
        (json!({ "freq": "868.1" }), "option `freq` must be"),
        (json!({ "freq": -1 }), "option `freq` must be"),
        (json!({ "datr": "SF13BW125" }), "option `datr` must be"),
        (json!({ "datr": 50000 }), "option `datr` must be"),
        (json!({ "codr": "4/9" }), "option `codr` must be"),
        (json!({ "powe": 14.5 }), "option `powe` must be"),
        (json!({ "powe": 99 }), "option `powe` must be"),
        (json!({ "tmst": -5 }), "option `tmst` must be"),
        (json!({ "tmst": 4_294_967_296u64 }), "option `tmst` must be"),
        (json!({ "imme": "yes" }), "option `imme` must be"),
        (
            json!({ "imme": true, "tmst": 5 }),
            "`imme: true` and `tmst`",
        ),
        (json!({ "imme": false }), "`imme: false` needs `tmst`"),
        (json!({ "ipol": 1 }), "option `ipol` must be"),
        (json!({ "rfch": 2 }), "option `rfch` must be"),
        (json!({ "modu": "FSK" }), "FSK downlinks are not supported"),
        (json!({ "prea": 2 }), "option `prea` must be"),
        (json!({ "gateway_eui": "00112233" }), "option `gateway_eui`"),
    ];
    for (options, expected) in cases {
        let err = eu868(&part(b"x", options.clone())).expect_err(&options.to_string());
        assert!(err.contains(expected), "{options}: {err}");
    }
    let err = eu868(&part(&[0; 256], json!({}))).unwrap_err();
    assert!(err.contains("256 bytes"), "{err}");
}

#[test]
fn without_a_region_frequency_and_data_rate_must_come_from_the_script() {
    let none = Defaults::of(Region::None);
    let err = txpk(&part(b"x", json!({ "datr": "SF9BW125" })), none).unwrap_err();
    assert!(err.contains("`freq` is needed"), "{err}");
    let err = txpk(&part(b"x", json!({ "freq": 915.2 })), none).unwrap_err();
    assert!(err.contains("`datr` is needed"), "{err}");
    let t = txpk(
        &part(b"x", json!({ "freq": 915.2, "datr": "SF10BW500" })),
        none,
    )
    .unwrap();
    assert_eq!(t.frequency_hz, 915_200_000);
}

#[test]
fn tx_ack_bodies_say_accepted_or_name_the_error() {
    let accepted = TxAckReport::Accepted { warning: None };
    let cases: &[(&[u8], TxAckReport)] = &[
        (b"", accepted.clone()),
        (b"\0", accepted.clone()),
        (br#"{"txpk_ack":{"error":"NONE"}}"#, accepted.clone()),
        (b"{\"txpk_ack\":{\"error\":\"NONE\"}}\0", accepted.clone()),
        (
            br#"{"txpk_ack":{"warn":"TX_POWER","value":20}}"#,
            TxAckReport::Accepted {
                warning: Some("TX_POWER (value 20)".into()),
            },
        ),
        (
            br#"{"txpk_ack":{"error":"TOO_LATE"}}"#,
            TxAckReport::Refused(
                "TOO_LATE (too late to program the packet for the requested time)".into(),
            ),
        ),
        (
            br#"{"txpk_ack":{"error":"SOMETHING_NEW"}}"#,
            TxAckReport::Refused("SOMETHING_NEW".into()),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            &tx_ack_report(body),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    for error in [
        "TOO_EARLY",
        "COLLISION_PACKET",
        "COLLISION_BEACON",
        "TX_FREQ",
        "TX_POWER",
        "GPS_UNLOCKED",
    ] {
        let body = format!(r#"{{"txpk_ack":{{"error":"{error}"}}}}"#);
        match tx_ack_report(body.as_bytes()) {
            TxAckReport::Refused(why) => assert!(why.starts_with(error), "{why}"),
            other => panic!("{error}: {other:?}"),
        }
    }
    assert!(matches!(
        tx_ack_report(b"{not json"),
        TxAckReport::Refused(why) if why.contains("not understood")
    ));
}

#[test]
fn a_pull_resp_is_the_gateways_version_the_token_identifier_3_and_the_txpk() {
    let mut txpk = Map::new();
    txpk.insert("imme".into(), Value::Bool(true));
    let d = pull_resp(2, 0xabcd, &txpk);
    assert_eq!(&d[..4], &[2, 0xab, 0xcd, 0x03]);
    assert_eq!(&d[4..], br#"{"txpk":{"imme":true}}"#);
    assert_eq!(pull_resp(1, 7, &txpk)[0], 1);
}

#[test]
fn a_tx_ack_datagram_keeps_its_body() {
    let mut d = vec![2, 0x12, 0x34, 0x05, 1, 2, 3, 4, 5, 6, 7, 8];
    d.extend_from_slice(br#"{"txpk_ack":{"error":"TOO_LATE"}}"#);
    let parsed = parse(&d).unwrap();
    assert_eq!(parsed.token, 0x1234);
    assert_eq!(parsed.gateway_eui, "0102030405060708");
    assert_eq!(
        parsed.kind,
        Kind::TxAck(br#"{"txpk_ack":{"error":"TOO_LATE"}}"#.to_vec())
    );
    assert_eq!(ack(&parsed), None, "a TX_ACK is not acknowledged");
}

#[test]
fn gateway_euis_are_16_hex_digits_with_optional_separators() {
    assert_eq!(parse_eui("AA555A0000000001").unwrap(), "aa555a0000000001");
    assert_eq!(
        parse_eui("aa:55:5a:00:00:00:00:01").unwrap(),
        "aa555a0000000001"
    );
    assert!(parse_eui("aa555a00000000").is_err());
    assert!(parse_eui("zz555a0000000001").is_err());
}
