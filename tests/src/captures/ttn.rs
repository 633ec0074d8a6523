//! Uplinks as The Things Stack publishes them on MQTT (its "Data Formats" page:
//! `end_device_ids`, `received_at`, `uplink_message` with `f_port`, `f_cnt`,
//! `frm_payload`, `rx_metadata`, `settings`), one JSON object a line, for the
//! demo's LoRaWAN path: two invented devices, a Dragino LHT65 (its payload as
//! the LHT65 manual lays it out) and a Cayenne LPP sensor, heard by one or two
//! gateways.

use base64::Engine as _;
use serde_json::json;

/// Lines a pass holds: the devices take turns.
const LINES: u32 = 40;

/// An LHT65 uplink: battery 3.062 V (with the status bits of a good battery),
/// temperature and humidity in hundredths and tenths, and an external probe (type 1)
/// a degree cooler.
fn lht65(temp_centi: i16, hum_deci: u16) -> Vec<u8> {
    let mut b = vec![0xcb, 0xf6];
    b.extend_from_slice(&temp_centi.to_be_bytes());
    b.extend_from_slice(&hum_deci.to_be_bytes());
    b.push(0x01);
    b.extend_from_slice(&(temp_centi - 100).to_be_bytes());
    b.extend_from_slice(&[0x7f, 0xff]);
    b
}

/// Cayenne LPP: temperature (type 0x67, tenths) on channel 1, humidity (0x68, half
/// percent) on channel 2.
fn lpp(temp_deci: i16, hum_half: u8) -> Vec<u8> {
    let mut b = vec![0x01, 0x67];
    b.extend_from_slice(&temp_deci.to_be_bytes());
    b.extend_from_slice(&[0x02, 0x68, hum_half]);
    b
}

fn uplink(
    device: &str,
    dev_eui: &str,
    dev_addr: &str,
    fport: u8,
    fcnt: u32,
    payload: &[u8],
    two_gateways: bool,
) -> String {
    let mut rx = vec![
        json!({ "gateway_ids": { "gateway_id": "demo-gw-1", "eui": "B827EBFFFE000001" },
                              "rssi": -97, "channel_rssi": -97, "snr": 6.5 }),
    ];
    if two_gateways {
        rx.push(
            json!({ "gateway_ids": { "gateway_id": "demo-gw-2", "eui": "B827EBFFFE000002" },
                        "rssi": -71, "channel_rssi": -71, "snr": 9.25 }),
        );
    }
    let received_at = format!("2026-11-26T06:00:{:02}.000000000Z", fcnt % 60);
    json!({
        "end_device_ids": {
            "device_id": device,
            "application_ids": { "application_id": "demo" },
            "dev_eui": dev_eui,
            "dev_addr": dev_addr
        },
        "received_at": received_at,
        "uplink_message": {
            "f_port": fport,
            "f_cnt": fcnt,
            "frm_payload": base64::engine::general_purpose::STANDARD.encode(payload),
            "rx_metadata": rx,
            "settings": {
                "data_rate": { "lora": { "bandwidth": 125000, "spreading_factor": 7 } },
                "coding_rate": "4/5",
                "frequency": "868300000"
            },
            "received_at": received_at
        }
    })
    .to_string()
}

/// The lines of one pass, each ending in `\n`.
pub fn lines() -> Vec<Vec<u8>> {
    (0..LINES)
        .map(|i| {
            let n = i / 2 + 1;
            let line = if i % 2 == 0 {
                let temp = 2150 + 10 * n as i16;
                uplink(
                    "greenhouse-lht65",
                    "70B3D57ED0001001",
                    "260B1001",
                    2,
                    n,
                    &lht65(temp, 620 + n as u16),
                    true,
                )
            } else {
                uplink(
                    "field-lpp",
                    "70B3D57ED0001002",
                    "260B1002",
                    1,
                    n,
                    &lpp(180 + n as i16, 110 + n as u8),
                    false,
                )
            };
            format!("{line}\n").into_bytes()
        })
        .collect()
}
