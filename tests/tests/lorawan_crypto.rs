//! mqgate's LoRaWAN 1.0.x crypto (`mqgate::lorawan`) against lora-packet (npm):
//! a few hundred uplinks made by one and checked and decrypted by the other,
//! both ways, with keys, DevAddr, 32-bit counters, ports, payloads and FOpts
//! drawn from a fixed seed.

use mqgate::lorawan::{encode_data, verify_uplink, AbpSession, DataFields, DevAddr, Key, MType};
use mqgate_tests::captures::drive::Noise;
use mqgate_tests::lora_packet;
use serde_json::{json, Value};

const CASES: usize = 300;

/// One uplink in clear.
#[derive(Debug, Clone)]
struct Case {
    nwk: [u8; 16],
    app: [u8; 16],
    dev_addr: u32,
    confirmed: bool,
    /// ADR, ADRACKReq, ACK, ClassB.
    fctrl: u8,
    fcnt: u32,
    fopts: Vec<u8>,
    fport: Option<u8>,
    payload: Vec<u8>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes<const N: usize>(rng: &mut Noise) -> [u8; N] {
    std::array::from_fn(|_| rng.next_u64() as u8)
}

fn below(rng: &mut Noise, n: u64) -> u64 {
    rng.next_u64() % n
}

/// Counters from the start, around the 16-bit wrap, and anywhere in 32 bits.
fn counter(rng: &mut Noise) -> u32 {
    match below(rng, 4) {
        0 => below(rng, 100) as u32,
        1 => 0xffff - 20 + below(rng, 40) as u32,
        2 => (below(rng, 300) as u32) << 16 | rng.next_u64() as u16 as u32,
        _ => rng.next_u64() as u32,
    }
}

fn cases() -> Vec<Case> {
    let mut rng = Noise::new(0x10ba_3a11);
    (0..CASES)
        .map(|_| {
            let fport = match below(&mut rng, 6) {
                0 => None,
                1 => Some(0),
                _ => Some(1 + below(&mut rng, 223) as u8),
            };
            // FOpts and port 0 together are not a valid frame (§4.3.1.6).
            let fopts_len = if fport == Some(0) {
                0
            } else {
                [0, 0, 1, 3, 15][below(&mut rng, 5) as usize]
            };
            let payload_len = if fport.is_some() {
                below(&mut rng, 65) as usize
            } else {
                0
            };
            Case {
                nwk: bytes(&mut rng),
                app: bytes(&mut rng),
                dev_addr: rng.next_u64() as u32,
                confirmed: below(&mut rng, 2) == 1,
                fctrl: rng.next_u64() as u8 & 0xf0,
                fcnt: counter(&mut rng),
                fopts: (0..fopts_len).map(|_| rng.next_u64() as u8).collect(),
                fport,
                payload: (0..payload_len).map(|_| rng.next_u64() as u8).collect(),
            }
        })
        .collect()
}

impl Case {
    /// The device's session as mqgate keeps it, the last uplink one before this.
    fn session(&self) -> AbpSession {
        let mut s = AbpSession::new(
            DevAddr(self.dev_addr),
            Key::new(self.nwk),
            Key::new(self.app),
        );
        s.fcnt_up = self.fcnt.checked_sub(1);
        s
    }

    fn encode_in_mqgate(&self) -> Vec<u8> {
        let fields = DataFields {
            mtype: if self.confirmed {
                MType::ConfirmedDataUp
            } else {
                MType::UnconfirmedDataUp
            },
            dev_addr: DevAddr(self.dev_addr),
            fctrl: self.fctrl,
            fcnt: self.fcnt,
            fopts: &self.fopts,
            port_payload: self.fport.map(|p| (p, self.payload.as_slice())),
        };
        encode_data(&fields, &Key::new(self.nwk), &Key::new(self.app)).unwrap()
    }

    fn encode_request(&self) -> Value {
        json!({
            "op": "encode",
            "confirmed": self.confirmed,
            "dev_addr": format!("{:08X}", self.dev_addr),
            "fctrl": self.fctrl,
            "fcnt": self.fcnt,
            "fopts_hex": hex(&self.fopts),
            "fport": self.fport,
            "payload_hex": hex(&self.payload),
            "nwk_s_key": hex(&self.nwk),
            "app_s_key": hex(&self.app),
        })
    }

    fn decode_request(&self, phy: &[u8], fcnt: u32) -> Value {
        json!({
            "op": "decode",
            "phy_hex": hex(phy),
            "fcnt": fcnt,
            "nwk_s_key": hex(&self.nwk),
            "app_s_key": hex(&self.app),
        })
    }
}

#[test]
fn the_cases_cover_ports_counters_payloads_and_fopts() {
    let cases = cases();
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    assert!(count(&|c| c.fport.is_none()) > 20);
    assert!(count(&|c| c.fport == Some(0)) > 20);
    assert!(count(&|c| c.fport.is_some_and(|p| p > 0) && c.payload.len() > 16) > 50);
    assert!(count(&|c| c.fport.is_some() && c.payload.is_empty()) > 2);
    assert!(count(&|c| c.fcnt > 0xffff) > 100);
    assert!(count(&|c| c.fcnt & 0xffff == 0) + count(&|c| c.fcnt & 0xffff == 0xffff) > 0);
    assert!(count(&|c| c.fopts.len() == 15) > 20);
}

#[test]
fn uplinks_lora_packet_made_verify_and_decrypt_in_mqgate() {
    let cases = cases();
    let answers = lora_packet::ask(&cases.iter().map(Case::encode_request).collect::<Vec<_>>());
    for (case, answer) in cases.iter().zip(&answers) {
        let phy = unhex(
            answer["phy_hex"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer} for {case:?}")),
        );
        // The same bytes as mqgate makes: header, ciphertext and MIC.
        assert_eq!(hex(&phy), hex(&case.encode_in_mqgate()), "{case:?}");
        let d = verify_uplink(&case.session(), &phy).unwrap_or_else(|e| panic!("{e} for {case:?}"));
        assert_eq!(d.dev_addr, DevAddr(case.dev_addr));
        assert_eq!(d.confirmed, case.confirmed);
        assert_eq!(d.fctrl, case.fctrl | case.fopts.len() as u8);
        assert_eq!(d.fcnt, case.fcnt);
        assert_eq!(d.fopts, case.fopts);
        assert_eq!(d.fport, case.fport);
        assert_eq!(hex(&d.payload), hex(&case.payload), "{case:?}");
    }
}

#[test]
fn uplinks_mqgate_made_verify_and_decrypt_in_lora_packet() {
    let cases = cases();
    let frames: Vec<Vec<u8>> = cases.iter().map(Case::encode_in_mqgate).collect();
    let requests: Vec<Value> = cases
        .iter()
        .zip(&frames)
        .map(|(c, phy)| c.decode_request(phy, c.fcnt))
        .collect();
    let answers = lora_packet::ask(&requests);
    for (case, answer) in cases.iter().zip(&answers) {
        let want = json!({
            "mic_ok": true,
            "mtype": if case.confirmed { "Confirmed Data Up" } else { "Unconfirmed Data Up" },
            "dev_addr": format!("{:08x}", case.dev_addr),
            "fcnt": case.fcnt & 0xffff,
            "fopts_hex": hex(&case.fopts),
            "fport": case.fport,
            "payload_hex": hex(&case.payload),
        });
        assert_eq!(answer, &want, "{case:?}");
    }
}

#[test]
fn a_flipped_mic_bit_or_a_counter_without_its_upper_half_fails_on_both_sides() {
    let cases = cases();
    let mut requests = Vec::new();
    let mut expected_refusals = 0;
    for (i, case) in cases.iter().enumerate() {
        let mut phy = case.encode_in_mqgate();
        let at = phy.len() - 1 - i % 4;
        phy[at] ^= 1 << (i % 8);
        assert!(verify_uplink(&case.session(), &phy).is_err(), "{case:?}");
        requests.push(case.decode_request(&phy, case.fcnt));
        expected_refusals += 1;
        if case.fcnt > 0xffff {
            // A receiver that dropped the high half: the MIC no longer matches.
            let phy = case.encode_in_mqgate();
            let mut s = case.session();
            s.fcnt_up = None;
            assert!(verify_uplink(&s, &phy).is_err(), "{case:?}");
            requests.push(case.decode_request(&phy, case.fcnt & 0xffff));
            expected_refusals += 1;
        }
    }
    let answers = lora_packet::ask(&requests);
    let refused = answers
        .iter()
        .filter(|a| a["mic_ok"] == json!(false))
        .count();
    assert_eq!(refused, expected_refusals, "{answers:?}");
}
