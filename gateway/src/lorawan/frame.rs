//! A LoRaWAN 1.0.x data frame read from its PHYPayload (§4): the fields borrowed
//! from the bytes, nothing decrypted or checked beyond the layout.
//!
//! PHYPayload = MHDR(1) | MACPayload | MIC(4); for data frames MACPayload =
//! FHDR | [FPort | FRMPayload], FHDR = DevAddr(4, LE) | FCtrl(1) | FCnt(2, LE) |
//! FOpts(FOptsLen = FCtrl & 0x0f).

use std::fmt;

use super::keys::DevAddr;

/// MIC length at the end of every frame except Proprietary (§4.4).
pub const MIC_LEN: usize = 4;
/// MHDR, DevAddr, FCtrl and FCnt: the least a data frame has before its MIC.
const FHDR_MIN: usize = 1 + 4 + 1 + 2;
/// A LoRa packet carries at most 255 bytes, and the MIC's B0 block gives
/// len(msg) one byte (§4.4).
pub const PHY_MAX: usize = 255;

/// The message type, MHDR bits 7..5 (§4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MType {
    JoinRequest,
    JoinAccept,
    UnconfirmedDataUp,
    UnconfirmedDataDown,
    ConfirmedDataUp,
    ConfirmedDataDown,
    /// RFU in 1.0.x; Rejoin Request in 1.1.
    RejoinRequest,
    Proprietary,
}

impl MType {
    pub const fn from_mhdr(mhdr: u8) -> MType {
        match mhdr >> 5 {
            0 => MType::JoinRequest,
            1 => MType::JoinAccept,
            2 => MType::UnconfirmedDataUp,
            3 => MType::UnconfirmedDataDown,
            4 => MType::ConfirmedDataUp,
            5 => MType::ConfirmedDataDown,
            6 => MType::RejoinRequest,
            _ => MType::Proprietary,
        }
    }

    /// The MHDR with Major 0 (LoRaWAN R1) and the RFU bits clear.
    pub const fn mhdr(self) -> u8 {
        (self as u8) << 5
    }

    /// A snake_case name, as the mappings show it.
    pub const fn name(self) -> &'static str {
        match self {
            MType::JoinRequest => "join_request",
            MType::JoinAccept => "join_accept",
            MType::UnconfirmedDataUp => "unconfirmed_data_up",
            MType::UnconfirmedDataDown => "unconfirmed_data_down",
            MType::ConfirmedDataUp => "confirmed_data_up",
            MType::ConfirmedDataDown => "confirmed_data_down",
            MType::RejoinRequest => "rejoin_request",
            MType::Proprietary => "proprietary",
        }
    }

    pub const fn is_data(self) -> bool {
        matches!(
            self,
            MType::UnconfirmedDataUp
                | MType::UnconfirmedDataDown
                | MType::ConfirmedDataUp
                | MType::ConfirmedDataDown
        )
    }

    /// Sent by a device (Dir = 0 in the crypto blocks).
    pub const fn is_uplink(self) -> bool {
        matches!(
            self,
            MType::JoinRequest
                | MType::UnconfirmedDataUp
                | MType::ConfirmedDataUp
                | MType::RejoinRequest
        )
    }
}

/// FCtrl bits (§4.3.1): ADR, then ADRACKReq (up) or RFU (down), ACK, ClassB (up)
/// or FPending (down), FOptsLen.
pub mod fctrl {
    pub const ADR: u8 = 0x80;
    pub const ADR_ACK_REQ: u8 = 0x40;
    pub const ACK: u8 = 0x20;
    /// ClassB in an uplink, FPending in a downlink.
    pub const CLASS_B_OR_F_PENDING: u8 = 0x10;
    pub const FOPTS_LEN: u8 = 0x0f;
}

/// A data frame's fields, borrowed from its PHYPayload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub mtype: MType,
    /// MHDR bits 1..0; 0 is LoRaWAN R1, the rest RFU.
    pub major: u8,
    pub dev_addr: DevAddr,
    pub fctrl: u8,
    /// The low 16 bits of the frame counter, as sent.
    pub fcnt16: u16,
    /// MAC commands piggybacked in the header; clear text in 1.0.x.
    pub fopts: &'a [u8],
    /// Absent when the frame carries no FRMPayload (§4.3.2).
    pub fport: Option<u8>,
    /// Encrypted, empty when `fport` is None.
    pub frm_payload: &'a [u8],
    pub mic: [u8; MIC_LEN],
    /// MHDR through FRMPayload: the `msg` the MIC covers (§4.4).
    pub msg: &'a [u8],
}

impl DataFrame<'_> {
    pub const fn is_uplink(&self) -> bool {
        self.mtype.is_uplink()
    }

    pub const fn confirmed(&self) -> bool {
        matches!(
            self.mtype,
            MType::ConfirmedDataUp | MType::ConfirmedDataDown
        )
    }
}

/// Why bytes are not a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Empty,
    /// A data frame needs MHDR, FHDR without options and the MIC: 12 bytes.
    TooShort {
        len: usize,
    },
    TooLong {
        len: usize,
    },
    /// A Join Request or Accept, a 1.1 Rejoin or a proprietary frame.
    NotData(MType),
    /// FCtrl says more FOpts than there are bytes before the MIC.
    FOptsPastEnd {
        fopts_len: usize,
        len: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => f.write_str("empty payload"),
            FrameError::TooShort { len } => write!(
                f,
                "a data frame is at least {} bytes, this one is {len}",
                FHDR_MIN + MIC_LEN
            ),
            FrameError::TooLong { len } => {
                write!(
                    f,
                    "a LoRa frame is at most {PHY_MAX} bytes, this one is {len}"
                )
            }
            FrameError::NotData(mtype) => write!(f, "not a data frame but a {}", mtype.name()),
            FrameError::FOptsPastEnd { fopts_len, len } => {
                write!(f, "FOptsLen {fopts_len} does not fit in a {len}-byte frame")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads a data frame (up or down) from a PHYPayload.
pub fn parse_data(phy: &[u8]) -> Result<DataFrame<'_>, FrameError> {
    let Some(&mhdr) = phy.first() else {
        return Err(FrameError::Empty);
    };
    let mtype = MType::from_mhdr(mhdr);
    if !mtype.is_data() {
        return Err(FrameError::NotData(mtype));
    }
    let len = phy.len();
    if len < FHDR_MIN + MIC_LEN {
        return Err(FrameError::TooShort { len });
    }
    if len > PHY_MAX {
        return Err(FrameError::TooLong { len });
    }
    let (msg, mic) = phy.split_at(len - MIC_LEN);
    let fctrl = phy[5];
    let fopts_len = (fctrl & fctrl::FOPTS_LEN) as usize;
    let Some((fopts, rest)) = msg[FHDR_MIN..].split_at_checked(fopts_len) else {
        return Err(FrameError::FOptsPastEnd { fopts_len, len });
    };
    let (fport, frm_payload) = match rest.split_first() {
        Some((&port, payload)) => (Some(port), payload),
        None => (None, rest),
    };
    Ok(DataFrame {
        mtype,
        major: mhdr & 0x03,
        dev_addr: DevAddr::from_le_bytes([phy[1], phy[2], phy[3], phy[4]]),
        fctrl,
        fcnt16: u16::from_le_bytes([phy[6], phy[7]]),
        fopts,
        fport,
        frm_payload,
        mic: [mic[0], mic[1], mic[2], mic[3]],
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_support::mosquitto::from_hex as hex;

    #[test]
    fn an_uplink_gives_its_fields_borrowed_from_the_bytes() {
        // lora-packet's README example: DevAddr 49be7df1, FCnt 2, FPort 1.
        let phy = hex("40F17DBE4900020001954378762B11FF0D");
        let f = parse_data(&phy).unwrap();
        assert_eq!(f.mtype, MType::UnconfirmedDataUp);
        assert!(f.is_uplink() && !f.confirmed());
        assert_eq!(f.major, 0);
        assert_eq!(f.dev_addr, DevAddr(0x49be_7df1));
        assert_eq!(f.fctrl, 0);
        assert_eq!(f.fcnt16, 2);
        assert!(f.fopts.is_empty());
        assert_eq!(f.fport, Some(1));
        assert_eq!(f.frm_payload, hex("95437876"));
        assert_eq!(f.mic, [0x2b, 0x11, 0xff, 0x0d]);
        assert_eq!(f.msg, &phy[..phy.len() - 4]);
    }

    #[test]
    fn fopts_and_a_missing_port_are_read() {
        // Confirmed uplink, ADR, two bytes of FOpts, no FPort.
        let phy = hex("8004030201820a000203aabbccdd");
        let f = parse_data(&phy).unwrap();
        assert_eq!(f.mtype, MType::ConfirmedDataUp);
        assert!(f.confirmed());
        assert_eq!(f.dev_addr, DevAddr(0x0102_0304));
        assert_eq!(f.fctrl & fctrl::ADR, fctrl::ADR);
        assert_eq!(f.fcnt16, 10);
        assert_eq!(f.fopts, [2, 3]);
        assert_eq!(f.fport, None);
        assert!(f.frm_payload.is_empty());
    }

    #[test]
    fn a_port_without_payload_is_kept() {
        let phy = hex("40040302010001000701020304");
        let f = parse_data(&phy).unwrap();
        assert_eq!(f.fport, Some(7));
        assert!(f.frm_payload.is_empty());
    }

    #[test]
    fn downlinks_parse_too_and_say_so() {
        let phy = hex("a004030201000100aabbccdd");
        let f = parse_data(&phy).unwrap();
        assert_eq!(f.mtype, MType::ConfirmedDataDown);
        assert!(!f.is_uplink());
    }

    #[test]
    fn frames_that_are_not_data_are_named() {
        let join = hex("00b40000000100000048656c69756d2020342c360236b0");
        assert_eq!(
            parse_data(&join),
            Err(FrameError::NotData(MType::JoinRequest))
        );
        let e = parse_data(&hex("20aabbccddeeff0011223344556677")).unwrap_err();
        assert_eq!(e, FrameError::NotData(MType::JoinAccept));
        assert_eq!(e.to_string(), "not a data frame but a join_accept");
        assert_eq!(
            parse_data(&hex("e0010203")),
            Err(FrameError::NotData(MType::Proprietary))
        );
        assert_eq!(
            parse_data(&hex("c0010203040506070809")),
            Err(FrameError::NotData(MType::RejoinRequest))
        );
    }

    #[test]
    fn short_long_and_inconsistent_frames_are_errors() {
        assert_eq!(parse_data(&[]), Err(FrameError::Empty));
        let e = parse_data(&hex("400000004800")).unwrap_err();
        assert_eq!(e, FrameError::TooShort { len: 6 });
        assert_eq!(
            e.to_string(),
            "a data frame is at least 12 bytes, this one is 6"
        );
        // 11 bytes: one short of the MIC.
        assert!(matches!(
            parse_data(&hex("4001020304000000aabbcc")),
            Err(FrameError::TooShort { len: 11 })
        ));
        let e = parse_data(&hex("400102030408000001020304")).unwrap_err();
        assert_eq!(
            e,
            FrameError::FOptsPastEnd {
                fopts_len: 8,
                len: 12
            }
        );
        assert_eq!(e.to_string(), "FOptsLen 8 does not fit in a 12-byte frame");
        // FOpts that end exactly at the MIC are fine; one more byte is not.
        assert!(parse_data(&hex("40010203040200000a0baabbccdd")).is_ok());
        assert!(parse_data(&hex("40010203040300000a0baabbccdd")).is_err());
        let mut long = vec![0x40; 256];
        long[5] = 0;
        assert_eq!(parse_data(&long), Err(FrameError::TooLong { len: 256 }));
        assert!(parse_data(&long[..255]).is_ok());
    }
}
