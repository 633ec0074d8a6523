//! The 1.0.x data frame crypto: FRMPayload encryption (§4.3.3) and the MIC
//! (§4.4), and a frame built from its fields with both applied.
//!
//! Section numbers are those of LoRaWAN 1.0.2 and 1.0.3 (the same in both).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use cmac::{Cmac, Mac};

use super::frame::{fctrl, MType, MIC_LEN, PHY_MAX};
use super::keys::{DevAddr, Key};

/// The 16-byte block both §4.3.3 (A_i, `tag` 0x01, `last` = i) and §4.4 (B0,
/// `tag` 0x49, `last` = len(msg)) use: tag | 4 × 0x00 | Dir | DevAddr (LE) |
/// FCnt (32 bits, LE) | 0x00 | last. Dir is 0 up, 1 down.
fn block(tag: u8, dev_addr: DevAddr, fcnt: u32, uplink: bool, last: u8) -> [u8; 16] {
    let mut b = [0; 16];
    b[0] = tag;
    b[5] = if uplink { 0 } else { 1 };
    b[6..10].copy_from_slice(&dev_addr.to_le_bytes());
    b[10..14].copy_from_slice(&fcnt.to_le_bytes());
    b[15] = last;
    b
}

fn cmac_b0_msg(
    nwk_s_key: &Key,
    msg: &[u8],
    dev_addr: DevAddr,
    fcnt: u32,
    uplink: bool,
) -> Cmac<Aes128> {
    let len = u8::try_from(msg.len())
        .unwrap_or_else(|_| panic!("a MIC covers at most 255 bytes, not {}", msg.len()));
    let mut mac = <Cmac<Aes128> as KeyInit>::new(&nwk_s_key.0.into());
    mac.update(&block(0x49, dev_addr, fcnt, uplink, len));
    mac.update(msg);
    mac
}

/// The MIC of `msg` (MHDR through FRMPayload, the frame without its MIC):
/// the first 4 bytes of AES-CMAC(NwkSKey, B0 | msg) (§4.4, RFC 4493).
/// Panics if `msg` is longer than 255 bytes (B0 has one byte for its length).
pub fn mic(nwk_s_key: &Key, msg: &[u8], dev_addr: DevAddr, fcnt: u32, uplink: bool) -> [u8; 4] {
    let tag = cmac_b0_msg(nwk_s_key, msg, dev_addr, fcnt, uplink)
        .finalize()
        .into_bytes();
    [tag[0], tag[1], tag[2], tag[3]]
}

/// Whether `mic` is the MIC of `msg`, compared in constant time.
pub(super) fn mic_matches(
    nwk_s_key: &Key,
    msg: &[u8],
    dev_addr: DevAddr,
    fcnt: u32,
    uplink: bool,
    mic: &[u8; MIC_LEN],
) -> bool {
    cmac_b0_msg(nwk_s_key, msg, dev_addr, fcnt, uplink)
        .verify_truncated_left(mic)
        .is_ok()
}

/// Encrypts or decrypts (the same XOR) an FRMPayload (§4.3.3): block i of the
/// payload is XORed with AES-128-encrypt(K, A_i), i from 1. `key` is the one
/// `payload_key` picks for the frame's FPort.
pub fn crypt_frm_payload(
    key: &Key,
    dev_addr: DevAddr,
    fcnt: u32,
    uplink: bool,
    payload: &[u8],
) -> Vec<u8> {
    let aes = Aes128::new(&key.0.into());
    let mut out = payload.to_vec();
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        // At most 16 blocks in a 255-byte frame; a longer input wraps i, which
        // no frame can need.
        let mut s = block(0x01, dev_addr, fcnt, uplink, (i + 1) as u8).into();
        aes.encrypt_block(&mut s);
        for (b, k) in chunk.iter_mut().zip(s.iter()) {
            *b ^= k;
        }
    }
    out
}

/// The key of an FRMPayload (§4.3.3, table "FPort list"): NwkSKey for port 0
/// (MAC commands), AppSKey for every other port.
pub fn payload_key<'k>(fport: u8, nwk_s_key: &'k Key, app_s_key: &'k Key) -> &'k Key {
    if fport == 0 {
        nwk_s_key
    } else {
        app_s_key
    }
}

/// A data frame's fields in clear, for `encode_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFields<'a> {
    /// One of the four data types; it also gives the direction.
    pub mtype: MType,
    pub dev_addr: DevAddr,
    /// The flag bits (`frame::fctrl`); FOptsLen comes from `fopts`.
    pub fctrl: u8,
    /// The full counter; the frame carries its low 16 bits.
    pub fcnt: u32,
    /// Clear-text MAC commands, at most 15 bytes.
    pub fopts: &'a [u8],
    /// The port and the clear payload; None sends neither.
    pub port_payload: Option<(u8, &'a [u8])>,
}

/// Why `encode_data` cannot build a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{} is not a data frame type", .0.name())]
    NotData(MType),
    #[error("FOpts holds at most 15 bytes, not {0}")]
    FOptsTooLong(usize),
    #[error("the frame would be {0} bytes, more than the 255 a LoRa packet carries")]
    TooLong(usize),
}

/// The PHYPayload of a data frame: FRMPayload encrypted with the key its port
/// picks, MIC computed with NwkSKey. For the tests now, downlinks later.
pub fn encode_data(
    fields: &DataFields<'_>,
    nwk_s_key: &Key,
    app_s_key: &Key,
) -> Result<Vec<u8>, EncodeError> {
    let f = fields;
    if !f.mtype.is_data() {
        return Err(EncodeError::NotData(f.mtype));
    }
    if f.fopts.len() > fctrl::FOPTS_LEN as usize {
        return Err(EncodeError::FOptsTooLong(f.fopts.len()));
    }
    let body = f.port_payload.map_or(0, |(_, p)| 1 + p.len());
    let len = 1 + 4 + 1 + 2 + f.fopts.len() + body + MIC_LEN;
    if len > PHY_MAX {
        return Err(EncodeError::TooLong(len));
    }
    let uplink = f.mtype.is_uplink();
    let mut phy = Vec::with_capacity(len);
    phy.push(f.mtype.mhdr());
    phy.extend_from_slice(&f.dev_addr.to_le_bytes());
    phy.push(f.fctrl & !fctrl::FOPTS_LEN | f.fopts.len() as u8);
    phy.extend_from_slice(&(f.fcnt as u16).to_le_bytes());
    phy.extend_from_slice(f.fopts);
    if let Some((port, payload)) = f.port_payload {
        phy.push(port);
        let key = payload_key(port, nwk_s_key, app_s_key);
        phy.extend(crypt_frm_payload(key, f.dev_addr, f.fcnt, uplink, payload));
    }
    let mic = mic(nwk_s_key, &phy, f.dev_addr, f.fcnt, uplink);
    phy.extend_from_slice(&mic);
    Ok(phy)
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_support::mosquitto::from_hex as hex;

    fn key(s: &str) -> Key {
        s.parse().unwrap()
    }

    const ONES: Key = Key::new([1; 16]);
    const TWOS: Key = Key::new([2; 16]);

    // The Things Stack, pkg/crypto/data_messages_test.go (TestUplinkDownlinkEncryption,
    // TestUplinkDownlinkMIC): key 01×16, DevAddr 01020304, FCnt 1.
    #[test]
    fn the_things_stack_vectors_encrypt_both_ways() {
        let up = crypt_frm_payload(&ONES, DevAddr(0x0102_0304), 1, true, &[1, 2, 3, 4]);
        assert_eq!(up, [0xcf, 0xf3, 0x0b, 0x4e]);
        let down = crypt_frm_payload(&ONES, DevAddr(0x0102_0304), 1, false, &[1, 2, 3, 4]);
        assert_eq!(down, [0x4e, 0x75, 0xf4, 0x40]);
        let back = crypt_frm_payload(&ONES, DevAddr(0x0102_0304), 1, true, &up);
        assert_eq!(back, [1, 2, 3, 4]);
    }

    #[test]
    fn the_things_stack_vectors_give_the_mic_both_ways() {
        let msg = hex("40040302010001000101020304");
        let a = DevAddr(0x0102_0304);
        assert_eq!(mic(&ONES, &msg, a, 1, true), [0x3b, 0x07, 0x31, 0x82]);
        assert_eq!(mic(&ONES, &msg, a, 1, false), [0xa5, 0x60, 0x9f, 0xa9]);
        assert!(mic_matches(
            &ONES,
            &msg,
            a,
            1,
            true,
            &[0x3b, 0x07, 0x31, 0x82]
        ));
        assert!(!mic_matches(
            &ONES,
            &msg,
            a,
            1,
            true,
            &[0x3b, 0x07, 0x31, 0x83]
        ));
    }

    // lora-packet's README and its MIC test: an uplink with "test" on port 1.
    #[test]
    fn the_lora_packet_readme_packet_decrypts_to_test() {
        let phy = hex("40F17DBE4900020001954378762B11FF0D");
        let nwk = key("44024241ed4ce9a68c6a8bc055233fd3");
        let app = key("ec925802ae430ca77fd3dd73cb2cc588");
        let a = DevAddr(0x49be_7df1);
        assert_eq!(mic(&nwk, &phy[..13], a, 2, true), [0x2b, 0x11, 0xff, 0x0d]);
        let clear = crypt_frm_payload(payload_key(1, &nwk, &app), a, 2, true, &phy[9..13]);
        assert_eq!(clear, b"test");
    }

    // brocaar/lorawan, phypayload_test.go (TestPHYPayloadData): "hello" on port 1,
    // ADR, FCnt 1, NwkSKey 02×16, AppSKey 01×16.
    #[test]
    fn the_brocaar_lorawan_vector_round_trips() {
        let phy = hex("400403020180010001a694642615d6c3b582");
        let a = DevAddr(0x0102_0304);
        assert_eq!(mic(&TWOS, &phy[..14], a, 1, true), phy[14..]);
        assert_eq!(crypt_frm_payload(&ONES, a, 1, true, &phy[9..14]), b"hello");
        let fields = DataFields {
            mtype: MType::UnconfirmedDataUp,
            dev_addr: a,
            fctrl: fctrl::ADR,
            fcnt: 1,
            fopts: &[],
            port_payload: Some((1, b"hello")),
        };
        assert_eq!(encode_data(&fields, &TWOS, &ONES).unwrap(), phy);
    }

    // brocaar/lorawan, phypayload_test.go (ExampleNewPHYPayload): confirmed uplink,
    // FCnt 0, port 10, NwkSKey 01..10, AppSKey 10..01.
    #[test]
    fn the_brocaar_lorawan_example_is_built_byte_for_byte() {
        let nwk = Key::new(std::array::from_fn(|i| i as u8 + 1));
        let app = Key::new(std::array::from_fn(|i| 16 - i as u8));
        let fields = DataFields {
            mtype: MType::ConfirmedDataUp,
            dev_addr: DevAddr(0x0102_0304),
            fctrl: 0,
            fcnt: 0,
            fopts: &[],
            port_payload: Some((10, &[1, 2, 3, 4])),
        };
        let phy = encode_data(&fields, &nwk, &app).unwrap();
        assert_eq!(
            phy,
            [128, 4, 3, 2, 1, 0, 0, 0, 10, 226, 100, 212, 247, 181, 106, 14, 117]
        );
    }

    #[test]
    fn port_zero_uses_the_network_key_and_other_ports_the_application_key() {
        assert!(std::ptr::eq(payload_key(0, &ONES, &TWOS), &ONES));
        assert!(std::ptr::eq(payload_key(1, &ONES, &TWOS), &TWOS));
        assert!(std::ptr::eq(payload_key(255, &ONES, &TWOS), &TWOS));
    }

    #[test]
    fn a_payload_longer_than_a_block_uses_the_next_counter_block() {
        let a = DevAddr(0x2601_1bda);
        let clear: Vec<u8> = (0..40).collect();
        let sealed = crypt_frm_payload(&ONES, a, 7, true, &clear);
        // Each 16-byte block has its own keystream: equal clear blocks differ.
        let same = crypt_frm_payload(&ONES, a, 7, true, &[0; 32]);
        assert_ne!(same[..16], same[16..]);
        assert_eq!(crypt_frm_payload(&ONES, a, 7, true, &sealed), clear);
        assert!(crypt_frm_payload(&ONES, a, 7, true, &[]).is_empty());
    }

    #[test]
    fn encoding_refuses_what_no_frame_can_hold() {
        let mut f = DataFields {
            mtype: MType::JoinRequest,
            dev_addr: DevAddr(1),
            fctrl: 0,
            fcnt: 0,
            fopts: &[],
            port_payload: None,
        };
        assert_eq!(
            encode_data(&f, &ONES, &TWOS),
            Err(EncodeError::NotData(MType::JoinRequest))
        );
        f.mtype = MType::UnconfirmedDataUp;
        f.fopts = &[0; 16];
        let e = encode_data(&f, &ONES, &TWOS).unwrap_err();
        assert_eq!(e.to_string(), "FOpts holds at most 15 bytes, not 16");
        f.fopts = &[];
        let big = [0; 243];
        f.port_payload = Some((1, &big));
        assert_eq!(
            encode_data(&f, &ONES, &TWOS),
            Err(EncodeError::TooLong(256))
        );
        f.port_payload = Some((1, &big[..242]));
        assert_eq!(encode_data(&f, &ONES, &TWOS).unwrap().len(), 255);
    }

    #[test]
    fn encoding_sets_fopts_len_from_the_options_and_keeps_the_flags() {
        let f = DataFields {
            mtype: MType::UnconfirmedDataDown,
            dev_addr: DevAddr(0x0102_0304),
            fctrl: fctrl::ACK | fctrl::FOPTS_LEN,
            fcnt: 0x0001_0203,
            fopts: &[0x02, 0x05],
            port_payload: None,
        };
        let phy = encode_data(&f, &ONES, &TWOS).unwrap();
        // MHDR, DevAddr, FCtrl = ACK | FOptsLen 2, FCnt's low half, FOpts, MIC.
        assert_eq!(phy[..10], hex("60040302012203020205"));
        assert_eq!(phy.len(), 14);
        let want = mic(&ONES, &phy[..10], f.dev_addr, 0x0001_0203, false);
        assert_eq!(phy[10..], want);
    }
}
