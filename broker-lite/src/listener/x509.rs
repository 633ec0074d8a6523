//! The subject common name of an X.509 certificate, read straight from its DER.
//!
//! The certificate has already been verified by rustls (webpki) when this runs,
//! so only the path to the subject is walked: Certificate → TBSCertificate →
//! (version, serial, signature, issuer, validity) → subject → the first
//! attribute with OID 2.5.4.3. A full X.509 crate would bring a parser stack
//! for one field; this reader is bounded, allocation-free until the result,
//! and returns `None` on anything it does not understand.

/// OID 2.5.4.3 (id-at-commonName), content bytes only.
const CN_OID: [u8; 3] = [0x55, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;
const BMP_STRING: u8 = 0x1e;

/// The subject CN of a DER certificate, if it has one that makes a valid MQTT
/// user name (UTF-8 without U+0000 [MQTT-1.5.3-2], at most 65535 bytes).
pub(crate) fn subject_common_name(der: &[u8]) -> Option<String> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs)?.2;
    }
    let (_serial, rest) = expect(tbs, INTEGER)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (_validity, rest) = expect(rest, SEQUENCE)?;
    let (mut rdns, _) = expect(rest, SEQUENCE)?;
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (attribute, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attribute, OID)?;
            if oid == CN_OID {
                let (tag, text, _) = element(value)?;
                return decode_string(tag, text);
            }
        }
    }
    None
}

/// A directory string as Rust text, refusing what MQTT forbids in a user name.
fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    let text = match tag {
        UTF8_STRING => String::from_utf8(bytes.to_vec()).ok()?,
        PRINTABLE_STRING | IA5_STRING if bytes.is_ascii() => {
            String::from_utf8(bytes.to_vec()).ok()?
        }
        BMP_STRING if bytes.len().is_multiple_of(2) => {
            let units = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()?
        }
        _ => return None,
    };
    let usable = !text.is_empty() && !text.contains('\0') && text.len() <= usize::from(u16::MAX);
    usable.then_some(text)
}

/// The next element if it has tag `tag`: its content and what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = element(input)?;
    (found == tag).then_some((content, rest))
}

/// Split one DER element off `input`: (tag, content, rest). Single-byte tags
/// and definite lengths of up to four bytes, as DER certificates use.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let len = input[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &input[count..])
    };
    if input.len() < len {
        return None;
    }
    let (content, rest) = input.split_at(len);
    Some((tag, content, rest))
}

#[cfg(test)]
mod tests;
