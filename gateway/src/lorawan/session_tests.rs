use proptest::prelude::*;

use super::*;
use crate::lorawan::crypto::{encode_data, DataFields};
use crate::lorawan::frame::fctrl;

use test_support::mosquitto::from_hex as hex;

/// lora-packet's README device: DevAddr 49be7df1.
fn readme_session() -> AbpSession {
    AbpSession::new(
        "49BE7DF1".parse().unwrap(),
        "44024241ed4ce9a68c6a8bc055233fd3".parse().unwrap(),
        "ec925802ae430ca77fd3dd73cb2cc588".parse().unwrap(),
    )
}

fn session() -> AbpSession {
    AbpSession::new(
        DevAddr(0x2601_1bda),
        Key::new([0x11; 16]),
        Key::new([0x22; 16]),
    )
}

fn uplink(s: &AbpSession, fcnt: u32, fopts: &[u8], port_payload: Option<(u8, &[u8])>) -> Vec<u8> {
    let fields = DataFields {
        mtype: MType::UnconfirmedDataUp,
        dev_addr: s.dev_addr,
        fctrl: fctrl::ADR,
        fcnt,
        fopts,
        port_payload,
    };
    encode_data(&fields, &s.nwk_s_key, &s.app_s_key).unwrap()
}

#[test]
fn the_lora_packet_readme_uplink_is_accepted_and_decrypted() {
    let d = verify_uplink(
        &readme_session(),
        &hex("40F17DBE4900020001954378762B11FF0D"),
    )
    .unwrap();
    assert_eq!(d.fcnt, 2);
    assert_eq!(d.fport, Some(1));
    assert_eq!(d.payload, b"test");
    assert!(!d.confirmed);
}

#[test]
fn the_same_uplink_with_other_keys_has_a_bad_mic() {
    let mut s = readme_session();
    s.nwk_s_key = Key::new([0; 16]);
    let phy = hex("40F17DBE4900020001954378762B11FF0D");
    assert_eq!(verify_uplink(&s, &phy), Err(Refused::BadMic));
    // The application key does not enter the MIC.
    let mut s = readme_session();
    s.app_s_key = Key::new([0; 16]);
    assert_ne!(verify_uplink(&s, &phy).unwrap().payload, b"test");
}

#[test]
fn an_accepted_counter_refuses_the_same_frame_again() {
    let mut s = session();
    let phy = uplink(&s, 5, &[], Some((1, b"a")));
    let d = verify_uplink(&s, &phy).unwrap();
    s.accept(&d);
    assert_eq!(s.fcnt_up, Some(5));
    let e = verify_uplink(&s, &phy).unwrap_err();
    assert_eq!(e, Refused::Replay { fcnt16: 5, last: 5 });
    assert_eq!(
        e.to_string(),
        "FCnt 5 is not above the last accepted 5 (a replay or an old frame)"
    );
}

#[test]
fn counters_past_65535_are_recovered_and_enter_mic_and_keystream() {
    let mut s = session();
    s.fcnt_up = Some(0xfffe);
    let phy = uplink(&s, 0x1_0001, &[], Some((9, b"after the wrap")));
    assert_eq!(phy[6..8], [0x01, 0x00]);
    let d = verify_uplink(&s, &phy).unwrap();
    assert_eq!(d.fcnt, 0x1_0001);
    assert_eq!(d.payload, b"after the wrap");
    // A device that counted only 16 bits would have used 1 in B0 and A_i.
    s.fcnt_up = None;
    assert_eq!(verify_uplink(&s, &phy), Err(Refused::BadMic));
}

#[test]
fn a_counter_too_far_ahead_is_refused_before_the_mic() {
    let mut s = session();
    s.fcnt_up = Some(100);
    let phy = uplink(&s, 100 + 16_385, &[], None);
    let e = verify_uplink(&s, &phy).unwrap_err();
    assert_eq!(
        e,
        Refused::TooFarAhead {
            fcnt16: 16_485,
            ahead: 16_385,
            max_gap: 16_384
        }
    );
    assert_eq!(
        e.to_string(),
        "FCnt 16485 would be 16385 ahead of the last accepted, more than 16384"
    );
    let phy = uplink(&s, 100 + 16_384, &[], None);
    assert_eq!(verify_uplink(&s, &phy).unwrap().fcnt, 16_484);
}

#[test]
fn port_zero_is_decrypted_with_the_network_key() {
    let s = session();
    let phy = uplink(&s, 3, &[], Some((0, &[0x02])));
    let d = verify_uplink(&s, &phy).unwrap();
    assert_eq!((d.fport, d.payload.as_slice()), (Some(0), &[0x02][..]));
    let sealed = crypt_frm_payload(&s.nwk_s_key, s.dev_addr, 3, true, &[0x02]);
    assert_eq!(phy[9..10], sealed);
}

#[test]
fn fopts_alone_come_back_in_clear_without_a_port() {
    let s = session();
    let phy = uplink(&s, 1, &[0x02, 0x03, 0x04], None);
    let d = verify_uplink(&s, &phy).unwrap();
    assert_eq!(d.fopts, [2, 3, 4]);
    assert_eq!(d.fport, None);
    assert!(d.payload.is_empty());
    assert_eq!(d.fctrl, fctrl::ADR | 3);
}

#[test]
fn mac_commands_in_fopts_and_on_port_zero_at_once_are_refused() {
    let s = session();
    let phy = uplink(&s, 1, &[0x02], Some((0, &[0x02])));
    assert_eq!(verify_uplink(&s, &phy), Err(Refused::PortZeroWithFOpts));
}

#[test]
fn downlinks_other_devices_other_majors_and_joins_are_refused() {
    let s = session();
    let down = DataFields {
        mtype: MType::UnconfirmedDataDown,
        dev_addr: s.dev_addr,
        fctrl: 0,
        fcnt: 1,
        fopts: &[],
        port_payload: Some((1, b"x")),
    };
    let phy = encode_data(&down, &s.nwk_s_key, &s.app_s_key).unwrap();
    assert_eq!(verify_uplink(&s, &phy), Err(Refused::Downlink));

    let mut other = session();
    other.dev_addr = DevAddr(0x2601_1bdb);
    let phy = uplink(&other, 1, &[], None);
    let e = verify_uplink(&s, &phy).unwrap_err();
    assert_eq!(e.to_string(), "for DevAddr 26011bdb, not this device");

    let mut phy = uplink(&s, 1, &[], None);
    phy[0] |= 0x01;
    assert_eq!(verify_uplink(&s, &phy), Err(Refused::Major(1)));

    let join = hex("00b40000000100000048656c69756d2020342c360236b0");
    let e = verify_uplink(&s, &join).unwrap_err();
    assert_eq!(e, Refused::Frame(FrameError::NotData(MType::JoinRequest)));
    assert_eq!(e.to_string(), "not a data frame but a join_request");
}

#[test]
fn a_confirmed_uplink_says_so() {
    let s = session();
    let fields = DataFields {
        mtype: MType::ConfirmedDataUp,
        dev_addr: s.dev_addr,
        fctrl: 0,
        fcnt: 0,
        fopts: &[],
        port_payload: Some((2, b"ok?")),
    };
    let phy = encode_data(&fields, &s.nwk_s_key, &s.app_s_key).unwrap();
    assert!(verify_uplink(&s, &phy).unwrap().confirmed);
}

fn any_session() -> impl Strategy<Value = AbpSession> {
    (
        any::<u32>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u32>(),
    )
        .prop_map(|(addr, nwk, app, fcnt)| {
            let mut s = AbpSession::new(DevAddr(addr), Key::new(nwk), Key::new(app));
            // Last seen a little behind the frames made below.
            s.fcnt_up = fcnt.checked_sub(1);
            s
        })
}

prop_compose! {
    fn any_uplink()(
        s in any_session(),
        fopts in proptest::collection::vec(any::<u8>(), 0..=15),
        port in proptest::option::of(any::<u8>()),
        payload in proptest::collection::vec(any::<u8>(), 0..=200),
        confirmed in any::<bool>(),
        flags in any::<u8>(),
    ) -> (AbpSession, Vec<u8>, Option<u8>, Vec<u8>) {
        let fcnt = s.fcnt_up.map_or(0, |l| l + 1);
        let payload = if port.is_some() { payload } else { Vec::new() };
        // Port 0 goes without FOpts (§4.3.1.6).
        let fopts = if port == Some(0) { Vec::new() } else { fopts };
        let fields = DataFields {
            mtype: if confirmed { MType::ConfirmedDataUp } else { MType::UnconfirmedDataUp },
            dev_addr: s.dev_addr,
            fctrl: flags,
            fcnt,
            fopts: &fopts,
            port_payload: port.map(|p| (p, payload.as_slice())),
        };
        let phy = encode_data(&fields, &s.nwk_s_key, &s.app_s_key).unwrap();
        (s, phy, port, payload)
    }
}

proptest! {
    #[test]
    fn decrypting_what_was_encrypted_gives_it_back(
        key in any::<[u8; 16]>(),
        addr in any::<u32>(),
        fcnt in any::<u32>(),
        uplink in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 0..=255),
    ) {
        let key = Key::new(key);
        let sealed = crypt_frm_payload(&key, DevAddr(addr), fcnt, uplink, &data);
        prop_assert_eq!(sealed.len(), data.len());
        prop_assert_eq!(crypt_frm_payload(&key, DevAddr(addr), fcnt, uplink, &sealed), data);
    }

    #[test]
    fn an_encoded_uplink_verifies_to_its_fields((s, phy, port, payload) in any_uplink()) {
        let d = verify_uplink(&s, &phy).unwrap();
        prop_assert_eq!(Some(d.fcnt), s.fcnt_up.map_or(Some(0), |l| l.checked_add(1)));
        prop_assert_eq!(d.fport, port);
        prop_assert_eq!(d.payload, payload);
    }

    #[test]
    fn one_flipped_bit_anywhere_fails_verification(
        (s, phy, _, _) in any_uplink(),
        at in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut bad = phy.clone();
        bad[at.index(phy.len())] ^= 1 << bit;
        prop_assert!(verify_uplink(&s, &bad).is_err());
    }
}

proptest! {
    #[test]
    fn any_bytes_are_refused_or_read_without_panicking(
        mut phy in proptest::collection::vec(any::<u8>(), 0..=300),
        last in proptest::option::of(any::<u32>()),
        as_uplink in any::<bool>(),
    ) {
        let mut s = session();
        s.fcnt_up = last;
        if as_uplink && phy.len() >= 5 {
            // Far enough to reach the counter and the MIC.
            phy[0] = MType::UnconfirmedDataUp.mhdr();
            phy[1..5].copy_from_slice(&s.dev_addr.to_le_bytes());
        }
        if let Ok(f) = crate::lorawan::parse_data(&phy) {
            prop_assert_eq!(f.msg.len() + crate::lorawan::MIC_LEN, phy.len());
        }
        let _ = verify_uplink(&s, &phy);
    }
}
