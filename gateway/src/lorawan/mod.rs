//! LoRaWAN 1.0.x data frames for devices activated by personalisation (ABP):
//! session keys and addresses from their hex (`keys`), a data frame's fields
//! (`frame`), FRMPayload encryption and the MIC (`crypto`), the 32-bit uplink
//! counter behind the 16 bits sent (`fcnt`), and an uplink checked against a
//! device's session and decrypted (`session`). Pure functions over bytes: no
//! I/O, no state but the counter a caller keeps in its `AbpSession`.
//!
//! Not here (yet): OTAA joins and key derivation, building or scheduling
//! downlinks (`crypto::encode_data` can already make one), MAC commands
//! beyond handing them over, 16-bit-counter devices, LoRaWAN 1.1.

mod crypto;
mod fcnt;
mod frame;
mod keys;
mod session;

pub use crypto::{crypt_frm_payload, encode_data, mic, payload_key, DataFields, EncodeError};
pub use fcnt::{recover_fcnt, MAX_FCNT_GAP};
pub use frame::{fctrl, parse_data, DataFrame, FrameError, MType, MIC_LEN, PHY_MAX};
pub use keys::{DevAddr, HexError, Key};
pub use session::{verify_uplink, AbpSession, Decrypted, Refused};
