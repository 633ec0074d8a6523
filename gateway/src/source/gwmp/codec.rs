//! GWMP datagrams as plain functions over bytes: parsing, the acknowledgements,
//! a PUSH_DATA body into frames, PULL_RESP out and TX_ACK in.
//!
//! Reference: Semtech's packet_forwarder PROTOCOL.TXT (sections 3 to 6).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::frame::Meta;

const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_RESP: u8 = 0x03;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;

/// One datagram from a gateway, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    pub version: u8,
    pub token: u16,
    pub kind: Kind,
    /// The gateway's EUI, lower-case hex.
    pub gateway_eui: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    PushData(Map<String, Value>),
    PullData,
    /// The gateway's answer to a PULL_RESP: its optional JSON body, as sent.
    TxAck(Vec<u8>),
}

/// Why a datagram was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GwmpError {
    #[error("{0} bytes is too short for a GWMP header")]
    Short(usize),
    #[error("protocol version {0} (mqgate speaks 1 and 2)")]
    Version(u8),
    #[error("unknown identifier 0x{0:02x}")]
    Identifier(u8),
    #[error("PUSH_DATA body is not a JSON object: {0}")]
    Json(String),
}

/// Parse one datagram.
pub fn parse(d: &[u8]) -> Result<Datagram, GwmpError> {
    if d.len() < 4 {
        return Err(GwmpError::Short(d.len()));
    }
    let version = d[0];
    if !(1..=2).contains(&version) {
        return Err(GwmpError::Version(version));
    }
    let token = u16::from_be_bytes([d[1], d[2]]);
    let identifier = d[3];
    let eui = |d: &[u8]| -> Result<String, GwmpError> {
        let eui = d.get(4..12).ok_or(GwmpError::Short(d.len()))?;
        Ok(eui.iter().map(|b| format!("{b:02x}")).collect())
    };
    let kind = match identifier {
        PUSH_DATA => {
            let body = &d[12.min(d.len())..];
            let gateway_eui = eui(d)?;
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => {
                    return Ok(Datagram {
                        version,
                        token,
                        kind: Kind::PushData(o),
                        gateway_eui,
                    })
                }
                Ok(other) => return Err(GwmpError::Json(format!("got {other}"))),
                Err(e) => return Err(GwmpError::Json(e.to_string())),
            }
        }
        PULL_DATA => Kind::PullData,
        TX_ACK => Kind::TxAck(d.get(12..).unwrap_or_default().to_vec()),
        other => return Err(GwmpError::Identifier(other)),
    };
    Ok(Datagram {
        version,
        token,
        kind,
        gateway_eui: eui(d)?,
    })
}

/// The acknowledgement a datagram gets: PUSH_ACK or PULL_ACK with its token.
pub fn ack(d: &Datagram) -> Option<[u8; 4]> {
    let [hi, lo] = d.token.to_be_bytes();
    match d.kind {
        Kind::PushData(_) => Some([d.version, hi, lo, PUSH_ACK]),
        Kind::PullData => Some([d.version, hi, lo, PULL_ACK]),
        Kind::TxAck(_) => None,
    }
}

/// What one PUSH_DATA holds.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    /// Radio packets with a good CRC (or none), as bytes and meta.
    pub packets: Vec<(Bytes, Meta)>,
    /// Gateway status reports, as JSON text.
    pub stats: Vec<(Bytes, Meta)>,
    /// Packets whose CRC failed, or that could not be read; with the reason.
    pub bad: Vec<String>,
}

/// The frames of a PUSH_DATA body.
pub fn frames(gateway_eui: &str, body: &Map<String, Value>) -> Received {
    let mut out = Received::default();
    if let Some(rxpk) = body.get("rxpk") {
        match rxpk.as_array() {
            Some(list) => {
                for p in list {
                    match packet(gateway_eui, p) {
                        Ok(Some(frame)) => out.packets.push(frame),
                        Ok(None) => out.bad.push("CRC failed".into()),
                        Err(why) => out.bad.push(why),
                    }
                }
            }
            None => out.bad.push("`rxpk` is not an array".into()),
        }
    }
    if let Some(stat) = body.get("stat") {
        let mut meta = Meta::default();
        meta.extra.insert("gwmp".into(), "stat".into());
        meta.extra
            .insert("gateway_eui".into(), gateway_eui.to_string());
        let mut status = Map::new();
        status.insert("gateway_eui".into(), Value::from(gateway_eui));
        match stat.as_object() {
            Some(o) => status.extend(o.clone()),
            None => {
                status.insert("stat".into(), stat.clone());
            }
        }
        out.stats
            .push((Bytes::from(Value::Object(status).to_string()), meta));
    }
    out
}

/// One `rxpk` as a frame; `Ok(None)` when its CRC failed.
fn packet(gateway_eui: &str, p: &Value) -> Result<Option<(Bytes, Meta)>, String> {
    let o = p.as_object().ok_or("an rxpk entry is not an object")?;
    let stat = o.get("stat").and_then(Value::as_i64).unwrap_or(1);
    if stat == -1 {
        return Ok(None);
    }
    let data = o
        .get("data")
        .and_then(Value::as_str)
        .ok_or("an rxpk entry has no `data`")?;
    let bytes = lenient_base64(data).map_err(|e| format!("rxpk data {data:?}: {e}"))?;
    if let Some(size) = o.get("size").and_then(Value::as_u64) {
        if size != bytes.len() as u64 {
            return Err(format!(
                "rxpk data decodes to {} bytes, its size says {size}",
                bytes.len()
            ));
        }
    }
    // Version 2 (and Kerlink's `jver: 2`) puts signal figures per antenna in `rsig`.
    let first_antenna = o
        .get("rsig")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_object);
    let figure = |key: &str, v2_key: &str| {
        o.get(key).and_then(Value::as_f64).or_else(|| {
            first_antenna
                .and_then(|a| a.get(v2_key))
                .and_then(Value::as_f64)
        })
    };
    let mut extra = BTreeMap::new();
    extra.insert("gwmp".to_string(), "rxpk".to_string());
    extra.insert("gateway_eui".to_string(), gateway_eui.to_string());
    extra.insert(
        "crc".to_string(),
        if stat == 1 { "ok" } else { "none" }.to_string(),
    );
    for key in ["tmst", "time", "tmms", "chan", "rfch", "codr", "modu"] {
        if let Some(v) = o.get(key) {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            extra.insert(key.to_string(), text);
        }
    }
    let meta = Meta {
        rssi: figure("rssi", "rssic"),
        snr: figure("lsnr", "lsnr"),
        frequency_hz: o
            .get("freq")
            .and_then(Value::as_f64)
            .map(|mhz| (mhz * 1e6).round() as u64),
        datarate: o.get("datr").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        port: None,
        extra,
        ..Meta::default()
    };
    Ok(Some((Bytes::from(bytes), meta)))
}

/// Base64 as gateways send it: the standard or URL-safe alphabet (even mixed),
/// padded or not, spaces ignored.
pub fn lenient_base64(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(cleaned).map_err(|e| e.to_string())
}

/// A gateway EUI as written in configuration and scripts (16 hex digits, `-` or
/// `:` between bytes allowed), as lower-case hex.
pub fn parse_eui(s: &str) -> Result<String, String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "a gateway EUI is 16 hex digits (8 bytes), got {:?}",
            s.chars().take(40).collect::<String>()
        ))
    }
}

/// A PULL_RESP carrying one `txpk`. Its version is the gateway's: a version 1
/// forwarder drops version 2 datagrams and the other way round. Version 1 has
/// no token (the bytes are unused); version 2 echoes it in TX_ACK.
pub fn pull_resp(version: u8, token: u16, txpk: &Map<String, Value>) -> Vec<u8> {
    let [hi, lo] = token.to_be_bytes();
    let mut out = vec![version, hi, lo, PULL_RESP];
    let mut body = Map::new();
    body.insert("txpk".into(), Value::Object(txpk.clone()));
    serde_json::to_writer(&mut out, &Value::Object(body)).expect("JSON to a Vec");
    out
}

/// What a gateway's TX_ACK says about a downlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxAckReport {
    /// Programmed for transmission; some forwarders add a warning (the power
    /// was lowered to what the board can do...).
    Accepted { warning: Option<String> },
    /// Refused; the text names the error the gateway gave and what it means.
    Refused(String),
}

/// The errors of PROTOCOL.TXT section 6 (TX_ACK), with their meaning.
const TX_ACK_ERRORS: [(&str, &str); 7] = [
    (
        "TOO_LATE",
        "too late to program the packet for the requested time",
    ),
    ("TOO_EARLY", "the requested time is too far ahead"),
    (
        "COLLISION_PACKET",
        "another packet is programmed for that time",
    ),
    ("COLLISION_BEACON", "a beacon is planned for that time"),
    (
        "TX_FREQ",
        "the frequency is not supported by the TX RF chain",
    ),
    ("TX_POWER", "the power is not supported by the gateway"),
    (
        "GPS_UNLOCKED",
        "GPS is unlocked, so a GPS time cannot be used",
    ),
];

/// Read a TX_ACK body: none (or `"error": "NONE"`) means accepted. Forwarders
/// written in C may end it with a NUL.
pub fn tx_ack_report(body: &[u8]) -> TxAckReport {
    let trimmed = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != 0)
        .map_or(&body[..0], |end| &body[..=end]);
    if trimmed.iter().all(u8::is_ascii_whitespace) {
        return TxAckReport::Accepted { warning: None };
    }
    let value: Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        Err(e) => {
            let text = String::from_utf8_lossy(&trimmed[..trimmed.len().min(80)]);
            return TxAckReport::Refused(format!("TX_ACK not understood ({e}): {text:?}"));
        }
    };
    let ack = value.get("txpk_ack");
    match ack.and_then(|a| a.get("error")).and_then(Value::as_str) {
        None | Some("NONE") => TxAckReport::Accepted {
            warning: ack.and_then(|a| a.get("warn")).map(|w| {
                match ack.and_then(|a| a.get("value")) {
                    Some(v) => format!("{} (value {v})", text_of(w)),
                    None => text_of(w),
                }
            }),
        },
        Some(error) => {
            let error: String = error.chars().take(40).collect();
            TxAckReport::Refused(match TX_ACK_ERRORS.iter().find(|(e, _)| *e == error) {
                Some((_, meaning)) => format!("{error} ({meaning})"),
                None => error,
            })
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(40).collect(),
        other => other.to_string(),
    }
}
