//! `lorawan_header(blob)`: the fields of a LoRaWAN PHYPayload that are not
//! encrypted (LoRaWAN 1.0.x / 1.1 link layer, section 4): MHDR, and for data
//! frames DevAddr, FCtrl, FCnt, FOpts and FPort; for a Join Request the EUIs and
//! DevNonce. The FRMPayload stays encrypted: decrypting needs the session keys,
//! which belong to the network server. Data frames are read by
//! `crate::lorawan::parse_data`.

use rhai::{Blob, Dynamic, Engine, EvalAltResult, Map, INT};

use super::helpers::{fail, hex};
use crate::lorawan::{fctrl, parse_data, MType, MIC_LEN};

type Res<T> = Result<T, Box<EvalAltResult>>;

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("lorawan_header", |b: &mut Blob| header(b));
}

/// Bytes shown most significant first, as EUIs and addresses are written.
fn reversed_hex(b: &[u8]) -> String {
    let mut v = b.to_vec();
    v.reverse();
    hex(&v)
}

fn int(v: u64) -> Dynamic {
    Dynamic::from_int(v as INT)
}

/// The header fields of a PHYPayload as a map.
pub(super) fn header(b: &[u8]) -> Res<Dynamic> {
    let Some(&mhdr) = b.first() else {
        return fail("lorawan_header: empty payload".into());
    };
    let mtype = MType::from_mhdr(mhdr);
    let mut m = Map::new();
    m.insert("mtype".into(), int((mhdr >> 5) as u64));
    m.insert("mtype_name".into(), Dynamic::from(mtype.name().to_string()));
    m.insert("major".into(), int((mhdr & 0x03) as u64));
    match mtype {
        MType::JoinRequest => {
            if b.len() != 1 + 8 + 8 + 2 + MIC_LEN {
                return fail(format!(
                    "lorawan_header: a Join Request is 23 bytes, this one is {}",
                    b.len()
                ));
            }
            m.insert("join_eui".into(), Dynamic::from(reversed_hex(&b[1..9])));
            m.insert("dev_eui".into(), Dynamic::from(reversed_hex(&b[9..17])));
            m.insert(
                "dev_nonce".into(),
                int(u16::from_le_bytes([b[17], b[18]]) as u64),
            );
            m.insert("mic".into(), Dynamic::from(hex(&b[19..])));
        }
        _ if mtype.is_data() => data(b, &mut m)?,
        _ => {
            // Join Accept is encrypted whole; Rejoin and Proprietary vary.
            m.insert("payload".into(), Dynamic::from_blob(b[1..].to_vec()));
        }
    }
    Ok(Dynamic::from_map(m))
}

fn data(b: &[u8], m: &mut Map) -> Res<()> {
    let f = match parse_data(b) {
        Ok(f) => f,
        Err(e) => return fail(format!("lorawan_header: {e}")),
    };
    let uplink = f.is_uplink();
    m.insert("dev_addr".into(), Dynamic::from(f.dev_addr.to_string()));
    let bit = |mask: u8| Dynamic::from_bool(f.fctrl & mask != 0);
    let mut c = Map::new();
    c.insert("adr".into(), bit(fctrl::ADR));
    c.insert(
        "adr_ack_req".into(),
        Dynamic::from_bool(uplink && f.fctrl & fctrl::ADR_ACK_REQ != 0),
    );
    c.insert("ack".into(), bit(fctrl::ACK));
    let class_b_or_pending = if uplink { "class_b" } else { "f_pending" };
    c.insert(class_b_or_pending.into(), bit(fctrl::CLASS_B_OR_F_PENDING));
    c.insert("fopts_len".into(), int(f.fopts.len() as u64));
    m.insert("fctrl".into(), Dynamic::from_map(c));
    m.insert("fcnt".into(), int(f.fcnt16 as u64));
    m.insert("fopts".into(), Dynamic::from_blob(f.fopts.to_vec()));
    let port = f.fport.map_or(Dynamic::UNIT, |p| int(p as u64));
    m.insert("fport".into(), port);
    m.insert("payload".into(), Dynamic::from_blob(f.frm_payload.to_vec()));
    m.insert("mic".into(), Dynamic::from(hex(&f.mic)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn text(m: &Map, key: &str) -> String {
        m[key].clone().into_string().unwrap()
    }

    #[test]
    fn an_unconfirmed_uplink_gives_its_address_counter_and_port() {
        // From a packet forwarder sample (Kerlink, jver 2).
        let m = header(&from_hex("40000000480012d703bcaee776604506"))
            .unwrap()
            .cast::<Map>();
        assert_eq!(text(&m, "mtype_name"), "unconfirmed_data_up");
        assert_eq!(text(&m, "dev_addr"), "48000000");
        assert_eq!(m["fcnt"].as_int().unwrap(), 0xd712);
        assert_eq!(m["fport"].as_int().unwrap(), 3);
        assert_eq!(m["payload"].clone().cast::<Blob>(), from_hex("bcaee7"));
        assert_eq!(text(&m, "mic"), "76604506");
        let f = m["fctrl"].clone().cast::<Map>();
        assert!(!f["adr"].as_bool().unwrap());
        assert_eq!(f["fopts_len"].as_int().unwrap(), 0);
    }

    #[test]
    fn a_join_request_gives_its_euis_and_nonce() {
        let m = header(&from_hex("00b40000000100000048656c69756d2020342c360236b0"))
            .unwrap()
            .cast::<Map>();
        assert_eq!(text(&m, "mtype_name"), "join_request");
        assert_eq!(text(&m, "join_eui"), "00000001000000b4");
        assert_eq!(text(&m, "dev_eui"), "20206d75696c6548");
        assert_eq!(m["dev_nonce"].as_int().unwrap(), 0x2c34);
    }

    #[test]
    fn fopts_and_a_missing_port_are_read() {
        // Confirmed uplink, ADR set, two bytes of FOpts, no FPort.
        let m = header(&from_hex("8004030201820a000203aabbccdd"))
            .unwrap()
            .cast::<Map>();
        assert_eq!(text(&m, "mtype_name"), "confirmed_data_up");
        assert_eq!(text(&m, "dev_addr"), "01020304");
        assert_eq!(m["fcnt"].as_int().unwrap(), 10);
        assert_eq!(m["fopts"].clone().cast::<Blob>(), vec![2, 3]);
        assert!(m["fport"].is_unit());
        let f = m["fctrl"].clone().cast::<Map>();
        assert!(f["adr"].as_bool().unwrap());
    }

    #[test]
    fn short_or_inconsistent_frames_are_errors() {
        let e = header(&from_hex("40000000")).unwrap_err().to_string();
        assert!(e.contains("at least 12 bytes"), "{e}");
        let e = header(&from_hex("400000004800")).unwrap_err().to_string();
        assert!(e.contains("at least 12 bytes"), "{e}");
        let e = header(&from_hex("400102030408000001020304"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("FOptsLen 8"), "{e}");
        let e = header(&from_hex("0001")).unwrap_err().to_string();
        assert!(e.contains("Join Request is 23 bytes"), "{e}");
        assert!(header(&[]).is_err());
    }
}
