//! One ABP device's session as the network side keeps it, and the check of
//! an uplink against it: the frame parsed, its counter recovered, its MIC
//! verified, its payload decrypted.

use std::fmt;

use super::crypto::{crypt_frm_payload, mic_matches, payload_key};
use super::fcnt::{resolve, CounterError, MAX_FCNT_GAP};
use super::frame::{parse_data, FrameError, MType};
use super::keys::{DevAddr, Key};

/// An activated-by-personalisation device (§6.1): address and session keys
/// given, no join. The uplink counter is the only state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbpSession {
    pub dev_addr: DevAddr,
    pub nwk_s_key: Key,
    pub app_s_key: Key,
    /// The counter of the last accepted uplink; None until one is.
    pub fcnt_up: Option<u32>,
    /// How far ahead of `fcnt_up` a frame's counter may be.
    pub max_fcnt_gap: u32,
}

impl AbpSession {
    /// A session with nothing received yet and the 1.0.x MAX_FCNT_GAP.
    pub fn new(dev_addr: DevAddr, nwk_s_key: Key, app_s_key: Key) -> AbpSession {
        AbpSession {
            dev_addr,
            nwk_s_key,
            app_s_key,
            fcnt_up: None,
            max_fcnt_gap: MAX_FCNT_GAP,
        }
    }

    /// Records an uplink `verify_uplink` accepted: its counter becomes the last.
    pub fn accept(&mut self, uplink: &Decrypted) {
        self.fcnt_up = Some(uplink.fcnt);
    }
}

/// An uplink that passed: its fields and its payload in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub dev_addr: DevAddr,
    pub confirmed: bool,
    /// FCtrl as sent (ADR, ADRACKReq, ACK, ClassB, FOptsLen).
    pub fctrl: u8,
    /// The full 32-bit counter.
    pub fcnt: u32,
    /// MAC commands piggybacked in the header.
    pub fopts: Vec<u8>,
    pub fport: Option<u8>,
    /// The FRMPayload decrypted: MAC commands on port 0, application data on
    /// the others.
    pub payload: Vec<u8>,
}

/// Why an uplink was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Frame(FrameError),
    /// A data frame from the network to a device.
    Downlink,
    /// MHDR Major other than 0 (LoRaWAN R1), RFU in 1.0.x (§4.2.2).
    Major(u8),
    /// The frame is for another address than the session's.
    OtherDevice(DevAddr),
    /// MAC commands both in FOpts and as an FPort 0 payload (§4.3.1.6: with
    /// FOpts, port 0 cannot be used).
    PortZeroWithFOpts,
    /// The counter is not above the last accepted one: sent again, or old.
    Replay {
        fcnt16: u16,
        last: u32,
    },
    /// The counter is further ahead than the session's gap allows.
    TooFarAhead {
        fcnt16: u16,
        ahead: u32,
        max_gap: u32,
    },
    /// The MIC does not match: other keys, or bytes changed on the way.
    BadMic,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Frame(e) => e.fmt(f),
            Refused::Downlink => f.write_str("a downlink, not an uplink"),
            Refused::Major(m) => write!(f, "LoRaWAN major version {m}, only 0 (R1) is known"),
            Refused::OtherDevice(a) => write!(f, "for DevAddr {a}, not this device"),
            Refused::PortZeroWithFOpts => {
                f.write_str("MAC commands in FOpts and on FPort 0 at once")
            }
            Refused::Replay { fcnt16, last } => write!(
                f,
                "FCnt {fcnt16} is not above the last accepted {last} (a replay or an old frame)"
            ),
            Refused::TooFarAhead {
                fcnt16,
                ahead,
                max_gap,
            } => write!(
                f,
                "FCnt {fcnt16} would be {ahead} ahead of the last accepted, more than {max_gap}"
            ),
            Refused::BadMic => f.write_str("MIC does not match"),
        }
    }
}

impl std::error::Error for Refused {}

impl From<FrameError> for Refused {
    fn from(e: FrameError) -> Refused {
        Refused::Frame(e)
    }
}

/// Checks an uplink PHYPayload against `session` and decrypts it. Does not
/// change the session: `AbpSession::accept` records the counter of one taken.
pub fn verify_uplink(session: &AbpSession, phy: &[u8]) -> Result<Decrypted, Refused> {
    let frame = parse_data(phy)?;
    if !frame.is_uplink() {
        return Err(Refused::Downlink);
    }
    if frame.major != 0 {
        return Err(Refused::Major(frame.major));
    }
    if frame.dev_addr != session.dev_addr {
        return Err(Refused::OtherDevice(frame.dev_addr));
    }
    if frame.fport == Some(0) && !frame.fopts.is_empty() {
        return Err(Refused::PortZeroWithFOpts);
    }
    let fcnt = resolve(session.fcnt_up, frame.fcnt16, session.max_fcnt_gap).map_err(|e| {
        let fcnt16 = frame.fcnt16;
        match e {
            CounterError::Replay => Refused::Replay {
                fcnt16,
                last: session.fcnt_up.unwrap_or_default(),
            },
            CounterError::TooFarAhead(ahead) => Refused::TooFarAhead {
                fcnt16,
                ahead,
                max_gap: session.max_fcnt_gap,
            },
        }
    })?;
    let nwk = &session.nwk_s_key;
    if !mic_matches(nwk, frame.msg, frame.dev_addr, fcnt, true, &frame.mic) {
        return Err(Refused::BadMic);
    }
    let payload = match frame.fport {
        Some(port) => {
            let key = payload_key(port, nwk, &session.app_s_key);
            crypt_frm_payload(key, frame.dev_addr, fcnt, true, frame.frm_payload)
        }
        None => Vec::new(),
    };
    Ok(Decrypted {
        dev_addr: frame.dev_addr,
        confirmed: frame.mtype == MType::ConfirmedDataUp,
        fctrl: frame.fctrl,
        fcnt,
        fopts: frame.fopts.to_vec(),
        fport: frame.fport,
        payload,
    })
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
