//! LoRaWAN 1.0.x data frames for devices activated by personalisation (ABP):
//! session keys and addresses from their hex (`keys`), a data frame's fields
//! (`frame`), FRMPayload encryption and the MIC (`crypto`), the 32-bit uplink
//! counter behind the 16 bits sent (`fcnt`), an uplink checked against a
//! device's session and decrypted (`session`), and the copies of one uplink
//! that several gateways heard gathered into one (`dedup`). Pure functions over
//! bytes: no I/O, no state but what a caller keeps (its `AbpSession`'s counter,
//! the uplinks inside their dedup window).
//!
//! Not here (yet): OTAA joins and key derivation, building or scheduling
//! downlinks (`crypto::encode_data` can already make one), MAC commands
//! beyond handing them over, 16-bit-counter devices, LoRaWAN 1.1.

mod crypto;
mod dedup;
mod fcnt;
mod frame;
mod keys;
mod session;

pub use crypto::{crypt_frm_payload, encode_data, mic, payload_key, DataFields, EncodeError};
pub use dedup::{Dedup, Gathered, Offered, Reception, DEFAULT_WINDOW, MAX_PENDING};
pub use fcnt::{recover_fcnt, MAX_FCNT_GAP};
pub use frame::{fctrl, parse_data, DataFrame, FrameError, MType, MIC_LEN, PHY_MAX};
pub use keys::{DevAddr, HexError, Key};
pub use session::{verify_uplink, AbpSession, Decrypted, Refused};
