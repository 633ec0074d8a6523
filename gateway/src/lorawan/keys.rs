//! Session keys and device addresses as users write them: hex, most significant
//! digit first.

use std::fmt;
use std::str::FromStr;

/// An AES-128 session key (NwkSKey or AppSKey). Its Debug never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub(super) [u8; 16]);

impl Key {
    pub const fn new(bytes: [u8; 16]) -> Key {
        Key(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

impl FromStr for Key {
    type Err = HexError;

    /// 32 hex digits, either case, as consoles show keys (MSB first).
    fn from_str(s: &str) -> Result<Key, HexError> {
        let mut bytes = [0; 16];
        parse_hex("a key", s, &mut bytes)?;
        Ok(Key(bytes))
    }
}

/// A device address. Written most significant byte first ("26011BDA"); sent
/// little-endian (LoRaWAN 1.0.x §1.2: every multi-octet field is little endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevAddr(pub u32);

impl DevAddr {
    /// The four bytes as they are on air.
    pub const fn from_le_bytes(b: [u8; 4]) -> DevAddr {
        DevAddr(u32::from_le_bytes(b))
    }

    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

/// Lower-case hex, as the mappings' `lorawan_header` shows it.
impl fmt::Display for DevAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for DevAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevAddr({self})")
    }
}

impl FromStr for DevAddr {
    type Err = HexError;

    /// 8 hex digits, most significant first.
    fn from_str(s: &str) -> Result<DevAddr, HexError> {
        let mut bytes = [0; 4];
        parse_hex("a DevAddr", s, &mut bytes)?;
        Ok(DevAddr(u32::from_be_bytes(bytes)))
    }
}

/// Why a key or address did not parse. Never quotes a key's digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("{what} is {expected} hex digits, this one has {found}")]
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{what} is hex digits only; character {position} is not one")]
    NotHex { what: &'static str, position: usize },
}

/// `s` into `out` (zeroed), two digits a byte.
fn parse_hex(what: &'static str, s: &str, out: &mut [u8]) -> Result<(), HexError> {
    let expected = out.len() * 2;
    let found = s.chars().count();
    if found != expected {
        return Err(HexError::Length {
            what,
            expected,
            found,
        });
    }
    for (i, c) in s.chars().enumerate() {
        let digit = c.to_digit(16).ok_or(HexError::NotHex {
            what,
            position: i + 1,
        })?;
        out[i / 2] |= (digit as u8) << if i % 2 == 0 { 4 } else { 0 };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_parses_from_32_digits_of_either_case() {
        let k: Key = "2B7E151628AED2A6abf7158809cf4f3c".parse().unwrap();
        assert_eq!(
            k.0,
            [
                0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
                0x4f, 0x3c
            ]
        );
    }

    #[test]
    fn a_key_of_the_wrong_length_says_how_many_digits_it_has() {
        let e = "2B7E151628AED2A6".parse::<Key>().unwrap_err();
        assert_eq!(e.to_string(), "a key is 32 hex digits, this one has 16");
        let e = "".parse::<Key>().unwrap_err();
        assert_eq!(e.to_string(), "a key is 32 hex digits, this one has 0");
    }

    #[test]
    fn a_key_with_a_foreign_character_names_its_position_not_the_digits() {
        let e = "2B7E151628AED2A6ABF7158809CF4F3G"
            .parse::<Key>()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a key is hex digits only; character 32 is not one"
        );
        let e = "0x7E151628AED2A6ABF7158809CF4F3C"
            .parse::<Key>()
            .unwrap_err();
        assert_eq!(
            e,
            HexError::NotHex {
                what: "a key",
                position: 2
            }
        );
        // A multi-byte character counts as one.
        let e = "é7E151628AED2A6ABF7158809CF4F3C0"
            .parse::<Key>()
            .unwrap_err();
        assert_eq!(
            e,
            HexError::NotHex {
                what: "a key",
                position: 1
            }
        );
    }

    #[test]
    fn a_key_debugs_without_its_bytes() {
        let k = Key::new([0xab; 16]);
        assert_eq!(format!("{k:?}"), "Key(…)");
        assert_eq!(format!("{:?}", Some(k)), "Some(Key(…))");
    }

    #[test]
    fn a_dev_addr_is_written_msb_first_and_sent_little_endian() {
        let a: DevAddr = "26011BDA".parse().unwrap();
        assert_eq!(a, DevAddr(0x2601_1bda));
        assert_eq!(a.to_le_bytes(), [0xda, 0x1b, 0x01, 0x26]);
        assert_eq!(DevAddr::from_le_bytes([0xda, 0x1b, 0x01, 0x26]), a);
        assert_eq!(a.to_string(), "26011bda");
        assert_eq!(format!("{a:?}"), "DevAddr(26011bda)");
    }

    #[test]
    fn a_dev_addr_refuses_other_lengths_and_digits() {
        let e = "26011BD".parse::<DevAddr>().unwrap_err();
        assert_eq!(e.to_string(), "a DevAddr is 8 hex digits, this one has 7");
        let e = "26011BDZ".parse::<DevAddr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "a DevAddr is hex digits only; character 8 is not one"
        );
        assert!("+6011BDA".parse::<DevAddr>().is_err());
    }
}
