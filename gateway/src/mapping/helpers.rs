//! Functions that decoder scripts call: fixed-width integers and floats at an offset,
//! bit fields, hex, base64, CRCs, JSON, rounding, slices. Every bad argument is a
//! runtime error naming the function, never a panic.

use base64::Engine as _;
use crc::{Crc, CRC_16_IBM_3740, CRC_16_IBM_SDLC, CRC_16_KERMIT, CRC_16_MODBUS, CRC_16_XMODEM};
use crc::{CRC_8_MAXIM_DOW, CRC_8_SMBUS};
use rhai::{Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position, FLOAT, INT};

use super::convert::{json_to_dynamic, write_json};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A runtime error whose position Rhai fills in with the call site.
pub(crate) fn fail<T>(message: String) -> Res<T> {
    Err(Box::new(EvalAltResult::ErrorRuntime(
        message.into(),
        Position::NONE,
    )))
}

/// The `width` bytes of `b` starting at `off`, or an error naming `name`.
fn window<'a>(name: &str, b: &'a [u8], off: INT, width: usize) -> Res<&'a [u8]> {
    if off < 0 {
        return fail(format!("{name}: negative offset {off}"));
    }
    let start = off as usize;
    match start.checked_add(width) {
        Some(end) if end <= b.len() => Ok(&b[start..end]),
        _ => fail(format!(
            "{name}: offset {off} + {width} byte(s) is past the end of a {}-byte blob",
            b.len()
        )),
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &x| (acc << 8) | x as u64)
}

fn le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, &x| (acc << 8) | x as u64)
}

/// Sign-extend the low `bits` bits of `v`.
fn signed(v: u64, bits: u32) -> INT {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// A `width`-byte integer (1 to 8 bytes; unsigned up to 7) at `off`, in either byte order.
fn int_at(
    name: &str,
    b: &[u8],
    off: INT,
    width: INT,
    order: fn(&[u8]) -> u64,
    is_signed: bool,
) -> Res<INT> {
    let max = if is_signed { 8 } else { 7 };
    if !(1..=max).contains(&width) {
        return fail(format!(
            "{name}: width must be 1 to {max} bytes, got {width}{}",
            if is_signed || width != 8 {
                ""
            } else {
                " (an unsigned 64-bit value does not fit in an int)"
            }
        ));
    }
    let v = order(window(name, b, off, width as usize)?);
    Ok(if is_signed {
        signed(v, width as u32 * 8)
    } else {
        v as INT
    })
}

macro_rules! int_reader {
    ($engine:ident, $name:literal, $width:literal, $order:ident, $signed:literal) => {
        $engine.register_fn($name, |b: &mut Blob, off: INT| -> Res<INT> {
            let v = $order(window($name, b, off, $width)?);
            Ok(if $signed {
                signed(v, $width * 8)
            } else {
                v as INT
            })
        });
    };
}

/// The LoRaWAN port of a frame: its meta key `fport`, a number or a decimal text.
fn fport(frame: &Map) -> Res<INT> {
    let port = frame
        .get("meta")
        .and_then(|m| m.read_lock::<Map>().and_then(|m| m.get("fport").cloned()));
    match port {
        None => fail("frame meta has no fport".into()),
        Some(p) if p.is_unit() => fail("frame meta has no fport".into()),
        Some(p) if p.is_int() => Ok(p.as_int().unwrap_or_default()),
        Some(p) => {
            let text = p.to_string();
            text.trim()
                .parse::<INT>()
                .or_else(|_| fail(format!("frame meta fport {text:?} is not a number")))
        }
    }
}

/// Register every helper on `engine`.
pub(super) fn register(engine: &mut Engine) {
    int_reader!(engine, "u8", 1, be, false);
    int_reader!(engine, "i8", 1, be, true);
    int_reader!(engine, "u16be", 2, be, false);
    int_reader!(engine, "u16le", 2, le, false);
    int_reader!(engine, "i16be", 2, be, true);
    int_reader!(engine, "i16le", 2, le, true);
    int_reader!(engine, "u24be", 3, be, false);
    int_reader!(engine, "u24le", 3, le, false);
    int_reader!(engine, "i24be", 3, be, true);
    int_reader!(engine, "i24le", 3, le, true);
    int_reader!(engine, "u32be", 4, be, false);
    int_reader!(engine, "u32le", 4, le, false);
    int_reader!(engine, "i32be", 4, be, true);
    int_reader!(engine, "i32le", 4, le, true);
    engine.register_fn("uint_be", |b: &mut Blob, off: INT, width: INT| {
        int_at("uint_be", b, off, width, be, false)
    });
    engine.register_fn("int_be", |b: &mut Blob, off: INT, width: INT| {
        int_at("int_be", b, off, width, be, true)
    });
    engine.register_fn("uint_le", |b: &mut Blob, off: INT, width: INT| {
        int_at("uint_le", b, off, width, le, false)
    });
    engine.register_fn("int_le", |b: &mut Blob, off: INT, width: INT| {
        int_at("int_le", b, off, width, le, true)
    });
    engine.register_fn("f32be", |b: &mut Blob, off: INT| -> Res<FLOAT> {
        Ok(f32::from_bits(be(window("f32be", b, off, 4)?) as u32) as FLOAT)
    });
    engine.register_fn("f32le", |b: &mut Blob, off: INT| -> Res<FLOAT> {
        Ok(f32::from_bits(le(window("f32le", b, off, 4)?) as u32) as FLOAT)
    });
    engine.register_fn("f64be", |b: &mut Blob, off: INT| -> Res<FLOAT> {
        Ok(f64::from_bits(be(window("f64be", b, off, 8)?)))
    });
    engine.register_fn("f64le", |b: &mut Blob, off: INT| -> Res<FLOAT> {
        Ok(f64::from_bits(le(window("f64le", b, off, 8)?)))
    });
    engine.register_fn("fport", |frame: &mut Map| fport(frame));
    engine.register_fn("bits", bits);
    engine.register_fn("hex", |b: &mut Blob| hex(b));
    engine.register_fn("from_hex", |s: ImmutableString| from_hex(&s));
    engine.register_fn("base64", |b: &mut Blob| {
        base64::engine::general_purpose::STANDARD.encode(b)
    });
    engine.register_fn("from_base64", |s: ImmutableString| from_base64(&s));
    engine.register_fn("crc16", |b: &mut Blob, variant: ImmutableString| {
        crc16(b, &variant)
    });
    engine.register_fn("crc8", |b: &mut Blob, variant: ImmutableString| {
        crc8(b, &variant)
    });
    engine.register_fn("xor8", |b: &mut Blob| {
        b.iter().fold(0u8, |acc, &x| acc ^ x) as INT
    });
    engine.register_fn("json_parse", |s: ImmutableString| json_parse(&s));
    engine.register_fn("json", |v: Dynamic| json(&v));
    engine.register_fn("round", round);
    engine.register_fn("round", |x: INT, digits: INT| round(x as FLOAT, digits));
    engine.register_fn("text", |b: &mut Blob| {
        String::from_utf8_lossy(b).into_owned()
    });
    engine.register_fn("slice", slice);
    super::fields::register(engine);
    super::nmea::register(engine);
    super::lorawan::register(engine);
}

/// `count` bits of `value` starting at bit `lowest` (bit 0 is the least significant).
pub(super) fn bits(value: INT, lowest: INT, count: INT) -> Res<INT> {
    if !(0..64).contains(&lowest) || !(1..=64).contains(&count) || lowest + count > 64 {
        return fail(format!(
            "bits: lowest bit {lowest} and count {count} must lie within 64 bits (count ≥ 1)"
        ));
    }
    let shifted = (value as u64) >> lowest;
    let mask = if count == 64 {
        u64::MAX
    } else {
        (1u64 << count) - 1
    };
    Ok((shifted & mask) as INT)
}

/// Lower-case hex, two digits per byte.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Bytes from hex digits; spaces, `:` and `-` between bytes are ignored.
pub(super) fn from_hex(s: &str) -> Res<Blob> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !matches!(c, b' ' | b':' | b'-' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return fail(format!(
            "from_hex: odd number of hex digits ({})",
            digits.len()
        ));
    }
    let nibble = |c: u8| -> Res<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => fail(format!("from_hex: {:?} is not a hex digit", c as char)),
        }
    };
    digits
        .chunks(2)
        .map(|p| Ok((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// Standard base64, with or without padding.
pub(super) fn from_base64(s: &str) -> Res<Blob> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT
        .decode(s.trim())
        .or_else(|e| fail(format!("from_base64: {e}")))
}

static CRC16_MODBUS: Crc<u16> = Crc::<u16>::new(&CRC_16_MODBUS);
static CRC16_CCITT_FALSE: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);
static CRC16_KERMIT: Crc<u16> = Crc::<u16>::new(&CRC_16_KERMIT);
static CRC16_XMODEM: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);
static CRC16_X25: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_SDLC);
static CRC8_SMBUS: Crc<u8> = Crc::<u8>::new(&CRC_8_SMBUS);
static CRC8_MAXIM: Crc<u8> = Crc::<u8>::new(&CRC_8_MAXIM_DOW);

/// CRC-16 of `b` in one of the named variants.
pub(super) fn crc16(b: &[u8], variant: &str) -> Res<INT> {
    let crc = match variant {
        "modbus" => &CRC16_MODBUS,
        "ccitt_false" => &CRC16_CCITT_FALSE,
        "kermit" => &CRC16_KERMIT,
        "xmodem" => &CRC16_XMODEM,
        "x25" => &CRC16_X25,
        _ => {
            return fail(format!(
                "crc16: unknown variant {variant:?} (modbus, ccitt_false, kermit, xmodem, x25)"
            ))
        }
    };
    Ok(crc.checksum(b) as INT)
}

/// CRC-8 of `b` in one of the named variants.
pub(super) fn crc8(b: &[u8], variant: &str) -> Res<INT> {
    let crc = match variant {
        "smbus" => &CRC8_SMBUS,
        "maxim" => &CRC8_MAXIM,
        _ => return fail(format!("crc8: unknown variant {variant:?} (smbus, maxim)")),
    };
    Ok(crc.checksum(b) as INT)
}

/// A JSON text as Rhai values: objects become maps, arrays arrays, null `()`.
pub(super) fn json_parse(s: &str) -> Res<Dynamic> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => Ok(json_to_dynamic(v)),
        Err(e) => fail(format!("json_parse: {e}")),
    }
}

/// A Rhai value as compact JSON text.
pub(super) fn json(v: &Dynamic) -> Res<String> {
    let mut out = Vec::with_capacity(64);
    write_json(v, &mut out).or_else(|e| fail(format!("json: {e}")))?;
    String::from_utf8(out).or_else(|e| fail(format!("json: {e}")))
}

/// `x` rounded to `digits` decimal places (half away from zero).
pub(super) fn round(x: FLOAT, digits: INT) -> Res<FLOAT> {
    if !(0..=15).contains(&digits) {
        return fail(format!("round: digits must be 0..=15, got {digits}"));
    }
    let scale = 10f64.powi(digits as i32);
    let r = (x * scale).round() / scale;
    Ok(if r.is_finite() { r } else { x })
}

/// `len` bytes of `b` from `from`.
pub(super) fn slice(b: &mut Blob, from: INT, len: INT) -> Res<Blob> {
    if len < 0 {
        return fail(format!("slice: negative length {len}"));
    }
    Ok(window("slice", b, from, len as usize)?.to_vec())
}

#[cfg(test)]
#[path = "helpers_tests.rs"]
mod tests;
