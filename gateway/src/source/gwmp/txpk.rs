//! A command's part as a `txpk` (PROTOCOL.TXT section 6): the script's transport
//! options checked one by one, the region's defaults for the rest, and the air
//! time the duty cycle is charged with. Plain data, no I/O.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::codec::parse_eui;
use crate::airtime::{parse_coding_rate, parse_datarate, LoraParams, Region};
use crate::message::Part;

/// Longest LoRa payload a concentrator sends.
pub const MAX_PAYLOAD: usize = 255;

/// The options a script may set, for error messages.
const OPTIONS: &[&str] = &[
    "gateway_eui",
    "imme",
    "tmst",
    "freq",
    "rfch",
    "powe",
    "modu",
    "datr",
    "codr",
    "ipol",
    "prea",
    "ncrc",
];

/// What a region gives a downlink whose script left a setting out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// MHz; `None`: the script must give `freq`.
    pub freq: Option<f64>,
    /// `None`: the script must give `datr`.
    pub datr: Option<&'static str>,
    /// dBm.
    pub powe: i64,
}

impl Defaults {
    /// EU868: the RX2 window of the LoRaWAN Regional Parameters (869.525 MHz, DR0
    /// = SF12BW125), which every device listens on before the network changes it,
    /// at 14 dBm (below the band's 16 dBm EIRP default with a 2 dBi antenna).
    /// No region: frequency and data rate must come from the script.
    pub fn of(region: Region) -> Defaults {
        match region {
            Region::Eu868 => Defaults {
                freq: Some(869.525),
                datr: Some("SF12BW125"),
                powe: 14,
            },
            Region::None => Defaults {
                freq: None,
                datr: None,
                powe: 14,
            },
        }
    }
}

/// One part, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Txpk {
    /// The `txpk` object of the PULL_RESP.
    pub json: Map<String, Value>,
    /// The gateway the script named, lower-case hex.
    pub gateway_eui: Option<String>,
    pub frequency_hz: u64,
    /// Preamble to CRC, for the duty cycle.
    pub airtime: Duration,
    /// Sent at once (not at a timestamp).
    pub immediate: bool,
}

/// The `txpk` of `part`; an error names the option and what is wrong with it.
pub fn build(part: &Part, defaults: Defaults) -> Result<Txpk, String> {
    let o = &part.options;
    if let Some(key) = o.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(match key.as_str() {
            "size" | "data" => format!("option `{key}` is taken from `bytes`; leave it out"),
            "time" => "option `time` (GPS time) is not supported; use `tmst` or `imme`".into(),
            _ => format!(
                "unknown option `{key}` for a Semtech UDP downlink (known: {})",
                OPTIONS.join(", ")
            ),
        });
    }
    if part.bytes.len() > MAX_PAYLOAD {
        return Err(format!(
            "{} bytes is more than a LoRa packet holds ({MAX_PAYLOAD})",
            part.bytes.len()
        ));
    }
    let gateway_eui = o
        .get("gateway_eui")
        .map(|v| match v {
            Value::String(s) => parse_eui(s).map_err(|e| format!("option `gateway_eui`: {e}")),
            other => Err(format!(
                "option `gateway_eui` must be a string of 16 hex digits, got {other}"
            )),
        })
        .transpose()?;
    let tmst = o
        .get("tmst")
        .map(|v| {
            v.as_u64()
                .filter(|t| *t <= u64::from(u32::MAX))
                .ok_or_else(|| bad("tmst", "a whole number 0 to 4294967295 (µs)", v))
        })
        .transpose()?;
    let imme = match o.get("imme") {
        None => tmst.is_none(),
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(bad("imme", "true or false", v)),
    };
    match (imme, tmst) {
        (true, Some(_)) => {
            return Err(
                "options `imme: true` and `tmst` together: the gateway would ignore `tmst`".into(),
            )
        }
        (false, None) => return Err("option `imme: false` needs `tmst`".into()),
        _ => {}
    }
    let freq = match o.get("freq") {
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 10_000.0)
            .ok_or_else(|| bad("freq", "a frequency in MHz, e.g. 869.525", v))?,
        None => defaults
            .freq
            .ok_or("option `freq` is needed (region `none` has no default frequency)")?,
    };
    let rfch = match o.get("rfch") {
        Some(v) => v
            .as_u64()
            .filter(|r| *r <= 1)
            .ok_or_else(|| bad("rfch", "0 or 1", v))?,
        None => 0,
    };
    let powe = match o.get("powe") {
        Some(v) => v
            .as_i64()
            .filter(|p| (0..=30).contains(p))
            .ok_or_else(|| bad("powe", "a whole number of dBm, 0 to 30", v))?,
        None => defaults.powe,
    };
    match o.get("modu") {
        None => {}
        Some(Value::String(m)) if m == "LORA" => {}
        Some(Value::String(m)) if m == "FSK" => {
            return Err("option `modu`: FSK downlinks are not supported, only \"LORA\"".into())
        }
        Some(v) => return Err(bad("modu", "\"LORA\"", v)),
    }
    let datr = match o.get("datr") {
        Some(Value::String(d)) => d.clone(),
        Some(v) => return Err(bad("datr", "a LoRa data rate such as \"SF9BW125\"", v)),
        None => defaults
            .datr
            .ok_or("option `datr` is needed (region `none` has no default data rate)")?
            .to_string(),
    };
    let (sf, bw) = parse_datarate(&datr).ok_or_else(|| {
        bad(
            "datr",
            "a LoRa data rate such as \"SF9BW125\"",
            &Value::from(datr.as_str()),
        )
    })?;
    let codr = match o.get("codr") {
        Some(Value::String(c)) => c.clone(),
        Some(v) => return Err(bad("codr", "\"4/5\" to \"4/8\"", v)),
        None => "4/5".to_string(),
    };
    let cr = parse_coding_rate(&codr)
        .ok_or_else(|| bad("codr", "\"4/5\" to \"4/8\"", &Value::from(codr.as_str())))?;
    let flag = |key: &str, default: bool| match o.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(bad(key, "true or false", v)),
    };
    // Devices listen with inverted polarity for LoRaWAN downlinks; a P2P
    // receiver sets `ipol: false`.
    let ipol = flag("ipol", true)?;
    let ncrc = flag("ncrc", false)?;
    let prea = match o.get("prea") {
        Some(v) => Some(
            v.as_u64()
                .filter(|p| (6..=65_535).contains(p))
                .ok_or_else(|| bad("prea", "a preamble of 6 to 65535 symbols", v))?,
        ),
        None => None,
    };

    let mut radio = LoraParams::new(sf, bw, cr);
    radio.crc = !ncrc;
    if let Some(p) = prea {
        radio.preamble_symbols = p as u16;
    }
    let airtime = radio.time_on_air(part.bytes.len());

    let mut json = Map::new();
    json.insert("imme".into(), Value::Bool(imme));
    if let Some(t) = tmst {
        json.insert("tmst".into(), Value::from(t));
    }
    json.insert("freq".into(), Value::from(freq));
    json.insert("rfch".into(), Value::from(rfch));
    json.insert("powe".into(), Value::from(powe));
    json.insert("modu".into(), Value::from("LORA"));
    json.insert("datr".into(), Value::from(datr.to_ascii_uppercase()));
    json.insert("codr".into(), Value::from(codr));
    json.insert("ipol".into(), Value::Bool(ipol));
    if let Some(p) = prea {
        json.insert("prea".into(), Value::from(p));
    }
    json.insert("size".into(), Value::from(part.bytes.len()));
    json.insert(
        "data".into(),
        Value::from(base64::engine::general_purpose::STANDARD.encode(&part.bytes)),
    );
    if ncrc {
        json.insert("ncrc".into(), Value::Bool(true));
    }
    Ok(Txpk {
        json,
        gateway_eui,
        frequency_hz: (freq * 1e6).round() as u64,
        airtime,
        immediate: imme,
    })
}

fn bad(key: &str, expected: &str, got: &Value) -> String {
    let got: String = got.to_string().chars().take(40).collect();
    format!("option `{key}` must be {expected}, got {got}")
}
