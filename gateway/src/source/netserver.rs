//! LoRaWAN network servers' events as frames: The Things Stack (v3) and
//! ChirpStack (v4) publish each device's uplinks on MQTT as JSON; an uplink
//! becomes a frame whose bytes are the application payload (FRMPayload, from
//! base64) and whose meta says where it came from and how it was heard, the
//! keys the device decoders read (`fport` first). Other events (joins,
//! downlink acknowledgements, status, locations) are told apart by kind.
//!
//! The formats, as the servers document them:
//! - The Things Stack, "Data Formats" (integrations), JSON uplink messages on
//!   `v3/{application}@{tenant}/devices/{device}/up`: `end_device_ids`
//!   (`device_id`, `application_ids.application_id`, `dev_eui`, `dev_addr`),
//!   `received_at`, and `uplink_message` with `f_port`, `f_cnt`, `frm_payload`
//!   (base64), `rx_metadata[]` (`gateway_ids`, `rssi`, `snr`), `settings`
//!   (`data_rate.lora.{bandwidth, spreading_factor}`, `frequency` as a string of
//!   Hz). Empty fields are left out by the server (`f_cnt` 0 is absent). Other
//!   messages carry `join_accept`, `downlink_ack`, `downlink_nack`,
//!   `downlink_sent`, `downlink_failed`, `downlink_queued`,
//!   `downlink_queue_invalidated`, `location_solved` or `service_data` instead.
//! - ChirpStack v4, "Integrations / Events" (JSON encoding of its protobuf
//!   messages), on `application/{id}/device/{dev_eui}/event/{type}` with type
//!   `up`, `join`, `ack`, `txack`, `log`, `status`, `location` or
//!   `integration`: an `up` has `deviceInfo` (`deviceName`, `devEui`,
//!   `applicationName`...), `devAddr`, `fCnt`, `fPort`, `data` (base64), `time`,
//!   `rxInfo[]` (`gatewayId`, `rssi`, `snr`) and `txInfo` (`frequency` in Hz,
//!   `modulation.lora.{bandwidth, spreadingFactor}`).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use crate::frame::Meta;
use crate::mapping::json_kind;

/// Which server's events a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Things Stack (The Things Network, The Things Industries), v3.
    TtnV3,
    /// ChirpStack v4.
    ChirpstackV4,
}

/// One event read.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Uplink(Uplink),
    /// Anything else: its kind (`join`, `downlink_ack`, `status`...) and device.
    Other {
        kind: String,
        device: Option<String>,
    },
}

/// A device's uplink, as the server received it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uplink {
    /// The application payload (FRMPayload), decrypted by the server.
    pub payload: Vec<u8>,
    pub fport: Option<u8>,
    pub fcnt: Option<u32>,
    /// Upper-case hex, as the servers write them.
    pub dev_eui: Option<String>,
    pub dev_addr: Option<String>,
    /// The server's name for the device (TTN device id, ChirpStack device name).
    pub device: Option<String>,
    pub application: Option<String>,
    /// Of the gateway that heard it best (highest RSSI, then SNR).
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
    /// How many gateways heard it.
    pub gateways: usize,
    pub frequency_hz: Option<u64>,
    /// `SF7BW125`, as the Semtech source names data rates.
    pub datarate: Option<String>,
    /// When the server received it (RFC 3339, as the server wrote it).
    pub received_at: Option<String>,
}

/// An event that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

impl Format {
    /// `ttn_v3` or `chirpstack_v4`, as written in the configuration.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "ttn_v3" => Some(Format::TtnV3),
            "chirpstack_v4" => Some(Format::ChirpstackV4),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::TtnV3 => "ttn_v3",
            Format::ChirpstackV4 => "chirpstack_v4",
        }
    }
}

/// Reads one message published on `topic`.
pub fn parse(format: Format, topic: &str, payload: &[u8]) -> Result<Event, FormatError> {
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| FormatError(format!("{}: not JSON: {e}", format.as_str())))?;
    if !doc.is_object() {
        return Err(FormatError(format!(
            "{}: expected a JSON object, got {}",
            format.as_str(),
            json_kind(&doc)
        )));
    }
    match format {
        Format::TtnV3 => ttn(&doc),
        Format::ChirpstackV4 => chirpstack(topic, &doc),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// A number the server may write as a number or as a string (64-bit values in
/// protobuf's JSON are strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn payload_bytes(v: &Value, key: &str) -> Result<Vec<u8>, FormatError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| FormatError(format!("`{key}` is not base64: {e}"))),
        other => Err(FormatError(format!(
            "`{key}` must be a base64 string, got {}",
            json_kind(other)
        ))),
    }
}

fn fport(v: &Value, key: &str) -> Result<Option<u8>, FormatError> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| FormatError(format!("`{key}` must be 0 to 255, got {v}"))),
    }
}

/// The best of the gateways' receptions: (rssi, snr, count).
fn best(receptions: Option<&Vec<Value>>) -> (Option<f64>, Option<f64>, usize) {
    let Some(list) = receptions else {
        return (None, None, 0);
    };
    let mut best: Option<(f64, f64)> = None;
    for r in list {
        let rssi = number(&r["rssi"]).or_else(|| number(&r["channel_rssi"]));
        let snr = number(&r["snr"]);
        if let Some(rssi) = rssi {
            let key = (rssi, snr.unwrap_or(f64::NEG_INFINITY));
            if best.is_none_or(|b| key > b) {
                best = Some(key);
            }
        }
    }
    match best {
        Some((rssi, snr)) => (Some(rssi), snr.is_finite().then_some(snr), list.len()),
        None => (None, None, list.len()),
    }
}

fn datarate(sf: Option<f64>, bw_hz: Option<f64>) -> Option<String> {
    Some(format!(
        "SF{}BW{}",
        sf? as u64,
        (bw_hz? / 1000.0).round() as u64
    ))
}

fn ttn(doc: &Value) -> Result<Event, FormatError> {
    let ids = &doc["end_device_ids"];
    let device = text(&ids["device_id"]);
    let Some(up) = doc.get("uplink_message") else {
        const KINDS: [&str; 9] = [
            "join_accept",
            "downlink_ack",
            "downlink_nack",
            "downlink_sent",
            "downlink_failed",
            "downlink_queued",
            "downlink_queue_invalidated",
            "location_solved",
            "service_data",
        ];
        let kind = KINDS
            .iter()
            .find(|k| doc.get(**k).is_some())
            .map_or("unknown", |k| k);
        return Ok(Event::Other {
            kind: kind.to_string(),
            device,
        });
    };
    let settings = &up["settings"];
    let lora = &settings["data_rate"]["lora"];
    let (rssi, snr, gateways) = best(up["rx_metadata"].as_array());
    Ok(Event::Uplink(Uplink {
        payload: payload_bytes(&up["frm_payload"], "uplink_message.frm_payload")?,
        fport: fport(&up["f_port"], "uplink_message.f_port")?,
        // Left out when 0.
        fcnt: Some(up["f_cnt"].as_u64().unwrap_or(0) as u32),
        dev_eui: text(&ids["dev_eui"]),
        dev_addr: text(&ids["dev_addr"]),
        device,
        application: text(&ids["application_ids"]["application_id"]),
        rssi,
        snr,
        gateways,
        frequency_hz: number(&settings["frequency"]).map(|f| f as u64),
        datarate: datarate(
            number(&lora["spreading_factor"]),
            number(&lora["bandwidth"]),
        ),
        received_at: text(&up["received_at"]).or_else(|| text(&doc["received_at"])),
    }))
}

fn chirpstack(topic: &str, doc: &Value) -> Result<Event, FormatError> {
    let info = &doc["deviceInfo"];
    let device = text(&info["deviceName"]);
    // `.../event/up`; without the topic's word, an uplink has `fCnt` or `data`.
    let kind = match topic.rsplit_once("/event/") {
        Some((_, kind)) => kind.to_string(),
        None if doc.get("fCnt").is_some() || doc.get("data").is_some() => "up".into(),
        None => "unknown".into(),
    };
    if kind != "up" {
        return Ok(Event::Other { kind, device });
    }
    let lora = &doc["txInfo"]["modulation"]["lora"];
    let (rssi, snr, gateways) = best(doc["rxInfo"].as_array());
    Ok(Event::Uplink(Uplink {
        payload: payload_bytes(&doc["data"], "data")?,
        fport: fport(&doc["fPort"], "fPort")?,
        fcnt: Some(doc["fCnt"].as_u64().unwrap_or(0) as u32),
        dev_eui: text(&info["devEui"]).map(|e| e.to_ascii_uppercase()),
        dev_addr: text(&doc["devAddr"]).map(|a| a.to_ascii_uppercase()),
        device,
        application: text(&info["applicationName"]),
        rssi,
        snr,
        gateways,
        frequency_hz: number(&doc["txInfo"]["frequency"]).map(|f| f as u64),
        datarate: datarate(number(&lora["spreadingFactor"]), number(&lora["bandwidth"])),
        received_at: text(&doc["time"]),
    }))
}

impl Uplink {
    /// The frame's meta: `rssi`, `snr`, `frequency_hz`, `datarate`, and as extra
    /// keys `fport`, `fcnt`, `dev_eui`, `dev_addr`, `device`, `application`,
    /// `gateways`, `received_at` (those the event has).
    pub fn meta(&self) -> Meta {
        let mut extra = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                extra.insert(k.to_string(), v);
            }
        };
        put("fport", self.fport.map(|p| p.to_string()));
        put("fcnt", self.fcnt.map(|c| c.to_string()));
        put("dev_eui", self.dev_eui.clone());
        put("dev_addr", self.dev_addr.clone());
        put("device", self.device.clone());
        put("application", self.application.clone());
        put("gateways", Some(self.gateways.to_string()));
        put("received_at", self.received_at.clone());
        Meta {
            rssi: self.rssi,
            snr: self.snr,
            frequency_hz: self.frequency_hz,
            datarate: self.datarate.clone(),
            extra,
            ..Meta::default()
        }
    }
}

/// What a network server says about a downlink it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownlinkNews {
    /// In the device's queue.
    Queued,
    /// Sent to the device by a gateway.
    Sent,
    /// The device acknowledged a confirmed downlink.
    Acked,
    /// The device did not acknowledge it (a nack, or ChirpStack's ack with
    /// `acknowledged: false`).
    Nacked,
    /// The server gave up on it; why, as the server said it.
    Failed(String),
}

/// A downlink to `device` on the server's topic for its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A downlink to send: to `device` (the device id, or the DevEUI for ChirpStack)
/// of `application` (the topic's application level, `{application}@{tenant}` for
/// The Things Stack); `id` comes back in the server's events about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownlinkRequest<'a> {
    pub application: &'a str,
    pub device: &'a str,
    pub fport: u8,
    pub bytes: &'a [u8],
    pub confirmed: bool,
    /// The Things Stack's priority (`LOWEST` ... `HIGHEST`, default `NORMAL`).
    pub priority: &'a str,
    pub id: &'a str,
}

/// A downlink request in the server's format: The Things Stack's
/// `.../down/push` (`{"downlinks": [{f_port, frm_payload, priority, confirmed,
/// correlation_ids}]}`), ChirpStack v4's `.../command/down` (`{id, devEui,
/// confirmed, fPort, data}`).
pub fn downlink(format: Format, r: &DownlinkRequest<'_>) -> Downlink {
    let data = base64::engine::general_purpose::STANDARD.encode(r.bytes);
    match format {
        Format::TtnV3 => Downlink {
            topic: format!("v3/{}/devices/{}/down/push", r.application, r.device),
            payload: serde_json::json!({ "downlinks": [{
                "f_port": r.fport, "frm_payload": data, "priority": r.priority,
                "confirmed": r.confirmed, "correlation_ids": [r.id],
            }]})
            .to_string()
            .into_bytes(),
        },
        Format::ChirpstackV4 => Downlink {
            topic: format!(
                "application/{}/device/{}/command/down",
                r.application, r.device
            ),
            payload: serde_json::json!({
                "id": r.id, "devEui": r.device, "confirmed": r.confirmed,
                "fPort": r.fport, "data": data,
            })
            .to_string()
            .into_bytes(),
        },
    }
}

/// Where a device's downlinks go, from the topic of its uplink: the topic's
/// application level, and the device level.
pub fn downlink_address(format: Format, uplink_topic: &str) -> Option<(String, String)> {
    let levels: Vec<&str> = uplink_topic.split('/').collect();
    match (format, levels.as_slice()) {
        (Format::TtnV3, ["v3", app, "devices", device, ..]) => {
            Some((app.to_string(), device.to_string()))
        }
        (Format::ChirpstackV4, ["application", app, "device", eui, ..]) => {
            Some((app.to_string(), eui.to_string()))
        }
        _ => None,
    }
}

/// What the event says about the downlink `id`, if it is about that one.
pub fn downlink_news(
    format: Format,
    topic: &str,
    payload: &[u8],
    id: &str,
) -> Option<DownlinkNews> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    match format {
        Format::TtnV3 => {
            let ours = doc["correlation_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|c| c.as_str() == Some(id)));
            if !ours {
                return None;
            }
            if doc.get("downlink_queued").is_some() {
                Some(DownlinkNews::Queued)
            } else if doc.get("downlink_sent").is_some() {
                Some(DownlinkNews::Sent)
            } else if doc.get("downlink_ack").is_some() {
                Some(DownlinkNews::Acked)
            } else if doc.get("downlink_nack").is_some() {
                Some(DownlinkNews::Nacked)
            } else if let Some(f) = doc.get("downlink_failed") {
                let why = f["error"]["message_format"]
                    .as_str()
                    .or_else(|| f["error"]["name"].as_str())
                    .unwrap_or("downlink_failed");
                Some(DownlinkNews::Failed(why.to_string()))
            } else {
                None
            }
        }
        Format::ChirpstackV4 => {
            if doc["queueItemId"].as_str() != Some(id) {
                return None;
            }
            match topic.rsplit_once("/event/").map(|(_, k)| k) {
                Some("txack") => Some(DownlinkNews::Sent),
                Some("ack") if doc["acknowledged"].as_bool() == Some(true) => {
                    Some(DownlinkNews::Acked)
                }
                Some("ack") => Some(DownlinkNews::Nacked),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uplink in the shape of The Things Stack's "Data Formats" page: two
    /// gateways, the second heard it better.
    const TTN_UP: &str = r#"{
      "end_device_ids": {
        "device_id": "dev1",
        "application_ids": { "application_id": "app1" },
        "dev_eui": "0004A30B001C0530",
        "join_eui": "800000000000000C",
        "dev_addr": "00BCB929"
      },
      "correlation_ids": ["as:up:01E0ZRA2DX6AAN5H4ZGK0QAFFC"],
      "received_at": "2020-02-12T15:15:45.787420523Z",
      "uplink_message": {
        "session_key_id": "AXA50...",
        "f_port": 1,
        "f_cnt": 10,
        "frm_payload": "A2cBEA==",
        "rx_metadata": [
          { "gateway_ids": { "gateway_id": "gtw1", "eui": "9C5C8E00001A05C4" },
            "time": "2020-02-12T15:15:45.353Z", "timestamp": 2463457000,
            "rssi": -80, "channel_rssi": -80, "snr": 7.5, "uplink_token": "ChIKEA..." },
          { "gateway_ids": { "gateway_id": "gtw2" },
            "rssi": -35, "channel_rssi": -35, "snr": 5.2 }
        ],
        "settings": {
          "data_rate": { "lora": { "bandwidth": 125000, "spreading_factor": 7 } },
          "coding_rate": "4/5",
          "frequency": "868500000",
          "timestamp": 2463457000
        },
        "received_at": "2020-02-12T15:15:45.596999999Z",
        "consumed_airtime": "0.056576s"
      }
    }"#;

    /// A ChirpStack v4 `up` event in the shape of its "Events" page.
    const CHIRPSTACK_UP: &str = r#"{
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
        "devEui": "0101010101010101",
        "tags": {}
      },
      "devAddr": "00189440",
      "dr": 1,
      "fCnt": 4,
      "fPort": 1,
      "data": "qg==",
      "rxInfo": [{
        "gatewayId": "0016c001f153a14c",
        "uplinkId": 4217106255,
        "rssi": -36,
        "snr": 10.5,
        "context": "E3OWOQ=="
      }],
      "txInfo": {
        "frequency": 867100000,
        "modulation": { "lora": { "bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5" } }
      }
    }"#;

    #[test]
    fn a_ttn_uplink_gives_its_payload_and_the_best_gateway() {
        let Event::Uplink(up) = parse(
            Format::TtnV3,
            "v3/app1@ttn/devices/dev1/up",
            TTN_UP.as_bytes(),
        )
        .unwrap() else {
            panic!("an uplink")
        };
        assert_eq!(up.payload, [0x03, 0x67, 0x01, 0x10]);
        assert_eq!((up.fport, up.fcnt), (Some(1), Some(10)));
        assert_eq!(up.device.as_deref(), Some("dev1"));
        assert_eq!(up.application.as_deref(), Some("app1"));
        assert_eq!(up.dev_eui.as_deref(), Some("0004A30B001C0530"));
        assert_eq!(up.dev_addr.as_deref(), Some("00BCB929"));
        assert_eq!((up.rssi, up.snr, up.gateways), (Some(-35.0), Some(5.2), 2));
        assert_eq!(up.frequency_hz, Some(868_500_000));
        assert_eq!(up.datarate.as_deref(), Some("SF7BW125"));
        assert_eq!(
            up.received_at.as_deref(),
            Some("2020-02-12T15:15:45.596999999Z")
        );
        let meta = up.meta();
        assert_eq!(meta.extra["fport"], "1");
        assert_eq!(meta.extra["gateways"], "2");
        assert_eq!(meta.rssi, Some(-35.0));
    }

    #[test]
    fn a_ttn_message_without_an_uplink_is_told_by_its_kind() {
        let join = r#"{"end_device_ids":{"device_id":"dev1"},"received_at":"2020-02-17T07:49:09Z",
                       "join_accept":{"session_key_id":"AXBSH1Pk6Z0G166RlH16CQ=="}}"#;
        assert_eq!(
            parse(
                Format::TtnV3,
                "v3/app1@ttn/devices/dev1/join",
                join.as_bytes()
            )
            .unwrap(),
            Event::Other {
                kind: "join_accept".into(),
                device: Some("dev1".into())
            }
        );
        let nack = r#"{"end_device_ids":{"device_id":"dev1"},"downlink_nack":{"f_port":15}}"#;
        assert!(matches!(
            parse(Format::TtnV3, "v3/app1@ttn/devices/dev1/down/nack", nack.as_bytes()).unwrap(),
            Event::Other { kind, .. } if kind == "downlink_nack"
        ));
    }

    #[test]
    fn a_ttn_uplink_with_counter_zero_and_no_payload_has_them_as_the_server_means() {
        // The server leaves out empty fields: `f_cnt` 0 and an empty payload.
        let up = r#"{"end_device_ids":{"device_id":"d"},"uplink_message":{"f_port":2}}"#;
        let Event::Uplink(up) = parse(Format::TtnV3, "t", up.as_bytes()).unwrap() else {
            panic!("an uplink")
        };
        assert_eq!((up.fcnt, up.payload.len(), up.gateways), (Some(0), 0, 0));
        assert_eq!(up.rssi, None);
    }

    #[test]
    fn a_chirpstack_uplink_gives_its_payload_and_meta() {
        let Event::Uplink(up) = parse(
            Format::ChirpstackV4,
            "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up",
            CHIRPSTACK_UP.as_bytes(),
        )
        .unwrap() else {
            panic!("an uplink")
        };
        assert_eq!(up.payload, [0xAA]);
        assert_eq!((up.fport, up.fcnt), (Some(1), Some(4)));
        assert_eq!(up.device.as_deref(), Some("Test device"));
        assert_eq!(up.dev_eui.as_deref(), Some("0101010101010101"));
        assert_eq!(up.dev_addr.as_deref(), Some("00189440"));
        assert_eq!((up.rssi, up.snr, up.gateways), (Some(-36.0), Some(10.5), 1));
        assert_eq!(up.frequency_hz, Some(867_100_000));
        assert_eq!(up.datarate.as_deref(), Some("SF11BW125"));
        assert_eq!(up.application.as_deref(), Some("Test application"));
    }

    #[test]
    fn chirpstack_events_other_than_up_are_told_by_the_topic() {
        let status =
            r#"{"deviceInfo":{"deviceName":"Test device"},"margin":10,"batteryLevel":100}"#;
        assert_eq!(
            parse(
                Format::ChirpstackV4,
                "application/x/device/0101010101010101/event/status",
                status.as_bytes()
            )
            .unwrap(),
            Event::Other {
                kind: "status".into(),
                device: Some("Test device".into())
            }
        );
    }

    #[test]
    fn malformed_events_are_errors_that_say_what_is_wrong() {
        let e = parse(Format::TtnV3, "t", b"{not json").unwrap_err();
        assert!(e.0.starts_with("ttn_v3: not JSON"), "{e}");
        let e = parse(Format::ChirpstackV4, "a/event/up", b"[1,2]").unwrap_err();
        assert_eq!(e.0, "chirpstack_v4: expected a JSON object, got an array");
        let bad = r#"{"uplink_message":{"f_port":1,"frm_payload":"%%%"}}"#;
        let e = parse(Format::TtnV3, "t", bad.as_bytes()).unwrap_err();
        assert!(
            e.0.contains("uplink_message.frm_payload` is not base64"),
            "{e}"
        );
        let bad = r#"{"fPort":300,"data":"qg=="}"#;
        let e = parse(Format::ChirpstackV4, "a/event/up", bad.as_bytes()).unwrap_err();
        assert_eq!(e.0, "`fPort` must be 0 to 255, got 300");
    }

    /// ChirpStack v4's downlink command and its events, as its "Integrations /
    /// Events" and "Send downlink" pages give the JSON.
    #[test]
    fn chirpstack_downlinks_are_commands_on_the_device_topic_and_their_events_say_how_they_went() {
        let id = "00000000-0000-4000-8000-000000000001";
        let d = downlink(
            Format::ChirpstackV4,
            &DownlinkRequest {
                application: "17c82e96",
                device: "0101010101010101",
                fport: 10,
                bytes: &[1, 2, 3],
                confirmed: true,
                priority: "NORMAL",
                id,
            },
        );
        assert_eq!(
            d.topic,
            "application/17c82e96/device/0101010101010101/command/down"
        );
        let body: Value = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "id": id, "devEui": "0101010101010101", "confirmed": true,
                                "fPort": 10, "data": "AQID" })
        );
        let at = |kind: &str| format!("application/17c82e96/device/0101010101010101/event/{kind}");
        let txack = format!(r#"{{"queueItemId": "{id}", "fCntDown": 7}}"#);
        assert_eq!(
            downlink_news(Format::ChirpstackV4, &at("txack"), txack.as_bytes(), id),
            Some(DownlinkNews::Sent)
        );
        let nack = format!(r#"{{"queueItemId": "{id}", "acknowledged": false, "fCntDown": 7}}"#);
        assert_eq!(
            downlink_news(Format::ChirpstackV4, &at("ack"), nack.as_bytes(), id),
            Some(DownlinkNews::Nacked)
        );
        let other = r#"{"queueItemId": "another", "acknowledged": true}"#;
        assert_eq!(
            downlink_news(Format::ChirpstackV4, &at("ack"), other.as_bytes(), id),
            None
        );
        assert_eq!(
            downlink_address(Format::ChirpstackV4, &at("up")),
            Some(("17c82e96".into(), "0101010101010101".into()))
        );
        assert_eq!(
            downlink_address(Format::TtnV3, "v3/app@ttn/devices/dev1/up"),
            Some(("app@ttn".into(), "dev1".into()))
        );
    }
}
