//! A field's registers ⇄ its value: the type (`u16` … `f64`, `bool`, `string(n)`,
//! `bits` of a register), the order of its bytes and words, and scale and offset.
//!
//! Modbus itself only says that a register is 16 bits sent high byte first; how
//! wider values are split over registers is each device's choice. The four orders
//! name the bytes of a 32-bit value `ABCD` from most to least significant:
//! `ABCD` (big-endian words, big-endian bytes, the most common), `CDAB` (the words
//! swapped, as many energy meters do), `BADC` (the bytes of each register swapped)
//! and `DCBA` (both). For 64-bit values the same two choices apply to all four
//! registers: the word order reversed for `CDAB` and `DCBA`, the bytes of each
//! register swapped for `BADC` and `DCBA`.

use serde::Deserialize;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// A coil or discrete input, or a register that is not 0.
    Bool,
    /// `n` characters, two per register, high byte first (before the order applies).
    Str(u16),
    /// `width` bits of one register starting at bit `from` (0 is the least significant).
    Bits {
        from: u8,
        width: u8,
    },
}

/// How a value's bytes are spread over its registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Order {
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    #[serde(rename = "CDAB")]
    Cdab,
    #[serde(rename = "BADC")]
    Badc,
    #[serde(rename = "DCBA")]
    Dcba,
}

impl Order {
    fn words_reversed(self) -> bool {
        matches!(self, Order::Cdab | Order::Dcba)
    }

    fn bytes_swapped(self) -> bool {
        matches!(self, Order::Badc | Order::Dcba)
    }

    /// The registers as they arrive → the value's bytes, most significant first.
    fn to_bytes(self, regs: &[u16]) -> Vec<u8> {
        let mut words: Vec<u16> = regs.to_vec();
        if self.words_reversed() {
            words.reverse();
        }
        words
            .iter()
            .flat_map(|w| {
                let w = if self.bytes_swapped() {
                    w.swap_bytes()
                } else {
                    *w
                };
                w.to_be_bytes()
            })
            .collect()
    }

    /// The value's bytes, most significant first → the registers to write.
    fn to_registers(self, bytes: &[u8]) -> Vec<u16> {
        let mut words: Vec<u16> = bytes
            .chunks(2)
            .map(|c| {
                let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
                if self.bytes_swapped() {
                    w.swap_bytes()
                } else {
                    w
                }
            })
            .collect();
        if self.words_reversed() {
            words.reverse();
        }
        words
    }
}

/// A value that cannot be read from, or written to, a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("a {kind} needs {needed} registers, got {got}")]
    Registers {
        kind: String,
        needed: usize,
        got: usize,
    },
    #[error("{value} does not fit a {kind}")]
    OutOfRange { value: f64, kind: String },
    #[error("a string field cannot be written with a number")]
    NotANumber,
}

impl FieldType {
    /// `u16`, `string(8)`, `bits(4..6)`: as written in a register map.
    pub fn parse(text: &str) -> Result<FieldType, String> {
        let t = text.trim();
        let simple = match t {
            "u16" => Some(FieldType::U16),
            "i16" => Some(FieldType::I16),
            "u32" => Some(FieldType::U32),
            "i32" => Some(FieldType::I32),
            "u64" => Some(FieldType::U64),
            "i64" => Some(FieldType::I64),
            "f32" => Some(FieldType::F32),
            "f64" => Some(FieldType::F64),
            "bool" => Some(FieldType::Bool),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let inner = |prefix: &str| {
            t.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        let bad = || {
            format!(
                "{t:?} is not a type: use u16, i16, u32, i32, u64, i64, f32, f64, bool, string(n) or bits(from..to)"
            )
        };
        if let Some(n) = inner("string") {
            let n: u16 = n.trim().parse().map_err(|_| bad())?;
            if n == 0 || n > 250 {
                return Err(format!("string({n}): 1 to 250 characters"));
            }
            return Ok(FieldType::Str(n));
        }
        if let Some(range) = inner("bits") {
            let (from, to) = range.split_once("..").ok_or_else(bad)?;
            let from: u8 = from.trim().parse().map_err(|_| bad())?;
            let to: u8 = to.trim().parse().map_err(|_| bad())?;
            if from >= to || to > 16 {
                return Err(format!(
                    "bits({from}..{to}): a register has bits 0..16, and the range must not be empty"
                ));
            }
            return Ok(FieldType::Bits {
                from,
                width: to - from,
            });
        }
        Err(bad())
    }

    /// Registers (or coils) the field spans.
    pub fn registers(self) -> u16 {
        match self {
            FieldType::U16 | FieldType::I16 | FieldType::Bool | FieldType::Bits { .. } => 1,
            FieldType::U32 | FieldType::I32 | FieldType::F32 => 2,
            FieldType::U64 | FieldType::I64 | FieldType::F64 => 4,
            FieldType::Str(n) => n.div_ceil(2),
        }
    }

    fn name(self) -> String {
        match self {
            FieldType::U16 => "u16".into(),
            FieldType::I16 => "i16".into(),
            FieldType::U32 => "u32".into(),
            FieldType::I32 => "i32".into(),
            FieldType::U64 => "u64".into(),
            FieldType::I64 => "i64".into(),
            FieldType::F32 => "f32".into(),
            FieldType::F64 => "f64".into(),
            FieldType::Bool => "bool".into(),
            FieldType::Str(n) => format!("string({n})"),
            FieldType::Bits { from, width } => format!("bits({from}..{})", from + width),
        }
    }

    /// The field's value from its registers, scaled: `raw × scale + offset` for
    /// numbers; JSON for the others.
    pub fn decode(
        self,
        regs: &[u16],
        order: Order,
        scale: f64,
        offset: f64,
    ) -> Result<serde_json::Value, ValueError> {
        let needed = self.registers() as usize;
        if regs.len() != needed {
            return Err(ValueError::Registers {
                kind: self.name(),
                needed,
                got: regs.len(),
            });
        }
        let bytes = order.to_bytes(regs);
        let number = |raw: f64| {
            let v = raw * scale + offset;
            serde_json::Number::from_f64(v)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        };
        // An unscaled integer stays an integer (no 1.0e18 for a counter).
        let integer = |raw: i128| {
            if scale == 1.0 && offset == 0.0 {
                match (i64::try_from(raw), u64::try_from(raw)) {
                    (Ok(i), _) => serde_json::Value::from(i),
                    (_, Ok(u)) => serde_json::Value::from(u),
                    _ => number(raw as f64),
                }
            } else {
                number(raw as f64)
            }
        };
        let be = |n: usize| -> [u8; 8] {
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(&bytes[..n]);
            b
        };
        Ok(match self {
            FieldType::U16 => integer(u16::from_be_bytes([bytes[0], bytes[1]]) as i128),
            FieldType::I16 => integer(i16::from_be_bytes([bytes[0], bytes[1]]) as i128),
            FieldType::U32 => integer(u64::from_be_bytes(be(4)) as i128),
            FieldType::I32 => {
                integer(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i128)
            }
            FieldType::U64 => integer(u64::from_be_bytes(be(8)) as i128),
            FieldType::I64 => integer(i64::from_be_bytes(be(8)) as i128),
            FieldType::F32 => {
                number(f32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f64)
            }
            FieldType::F64 => number(f64::from_be_bytes(be(8))),
            FieldType::Bool => serde_json::Value::Bool(regs[0] != 0),
            FieldType::Bits { from, width } => {
                let raw = u16::from_be_bytes([bytes[0], bytes[1]]);
                let mask = if width >= 16 {
                    u16::MAX
                } else {
                    (1u16 << width) - 1
                };
                integer(((raw >> from) & mask) as i128)
            }
            FieldType::Str(n) => {
                let text: String = bytes[..n as usize]
                    .iter()
                    .take_while(|b| **b != 0)
                    .map(|b| *b as char)
                    .collect();
                serde_json::Value::String(text.trim_end().to_string())
            }
        })
    }

    /// The registers that hold `value` (unscaled first: `(value − offset) / scale`),
    /// for a write. A `bits` field gives the whole register with only its bits set.
    pub fn encode(
        self,
        value: f64,
        order: Order,
        scale: f64,
        offset: f64,
    ) -> Result<Vec<u16>, ValueError> {
        let raw = (value - offset) / scale;
        let out_of_range = || ValueError::OutOfRange {
            value,
            kind: self.name(),
        };
        let int = |lo: f64, hi: f64| -> Result<i128, ValueError> {
            let r = raw.round();
            if !r.is_finite() || r < lo || r > hi {
                Err(out_of_range())
            } else {
                Ok(r as i128)
            }
        };
        let bytes: Vec<u8> = match self {
            FieldType::U16 => (int(0.0, u16::MAX as f64)? as u16).to_be_bytes().to_vec(),
            FieldType::I16 => (int(i16::MIN as f64, i16::MAX as f64)? as i16)
                .to_be_bytes()
                .to_vec(),
            FieldType::U32 => (int(0.0, u32::MAX as f64)? as u32).to_be_bytes().to_vec(),
            FieldType::I32 => (int(i32::MIN as f64, i32::MAX as f64)? as i32)
                .to_be_bytes()
                .to_vec(),
            FieldType::U64 => (int(0.0, u64::MAX as f64)? as u64).to_be_bytes().to_vec(),
            FieldType::I64 => (int(i64::MIN as f64, i64::MAX as f64)? as i64)
                .to_be_bytes()
                .to_vec(),
            FieldType::F32 => {
                if !raw.is_finite() || raw.abs() > f32::MAX as f64 {
                    return Err(out_of_range());
                }
                (raw as f32).to_be_bytes().to_vec()
            }
            FieldType::F64 => {
                if !raw.is_finite() {
                    return Err(out_of_range());
                }
                raw.to_be_bytes().to_vec()
            }
            FieldType::Bool => vec![0, u8::from(raw != 0.0)],
            FieldType::Bits { from, width } => {
                let max = ((1u32 << width) - 1) as f64;
                let v = int(0.0, max)? as u16;
                (v << from).to_be_bytes().to_vec()
            }
            FieldType::Str(_) => return Err(ValueError::NotANumber),
        };
        Ok(order.to_registers(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ORDERS: [Order; 4] = [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba];

    #[test]
    fn a_float_reads_the_same_in_each_order_from_its_own_registers() {
        // 230.5 as an IEEE 754 single is 0x43668000: bytes A=43 B=66 C=80 D=00.
        let cases = [
            (Order::Abcd, [0x4366, 0x8000]),
            (Order::Cdab, [0x8000, 0x4366]),
            (Order::Badc, [0x6643, 0x0080]),
            (Order::Dcba, [0x0080, 0x6643]),
        ];
        for (order, regs) in cases {
            assert_eq!(
                FieldType::F32.decode(&regs, order, 1.0, 0.0),
                Ok(json!(230.5)),
                "{order:?}"
            );
        }
    }

    #[test]
    fn integers_sign_scale_and_offset() {
        assert_eq!(
            FieldType::I16.decode(&[0xFFFE], Order::Abcd, 1.0, 0.0),
            Ok(json!(-2))
        );
        // 0xFFFF0000 words swapped is 0x0000FFFF.
        assert_eq!(
            FieldType::U32.decode(&[0xFFFF, 0x0000], Order::Cdab, 1.0, 0.0),
            Ok(json!(65535))
        );
        assert_eq!(
            FieldType::U16.decode(&[2315], Order::Abcd, 0.1, -0.5),
            Ok(json!(231.0))
        );
        assert_eq!(
            FieldType::U64.decode(&[0xFFFF; 4], Order::Abcd, 1.0, 0.0),
            Ok(json!(u64::MAX))
        );
    }

    #[test]
    fn bits_strings_and_bools() {
        let bits = FieldType::parse("bits(4..7)").unwrap();
        assert_eq!(
            bits.decode(&[0b0101_0000], Order::Abcd, 1.0, 0.0),
            Ok(json!(5))
        );
        assert_eq!(
            bits.encode(5.0, Order::Abcd, 1.0, 0.0),
            Ok(vec![0b0101_0000])
        );
        let s = FieldType::parse("string(5)").unwrap();
        assert_eq!(s.registers(), 3);
        assert_eq!(
            s.decode(&[0x5344, 0x4D31, 0x3230], Order::Abcd, 1.0, 0.0),
            Ok(json!("SDM12"))
        );
        assert_eq!(
            FieldType::Bool.decode(&[7], Order::Abcd, 1.0, 0.0),
            Ok(json!(true))
        );
    }

    #[test]
    fn bad_types_and_values_say_why() {
        for bad in ["u24", "string(0)", "bits(8..4)", "bits(0..17)", "string(x)"] {
            assert!(FieldType::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            FieldType::U16.encode(70_000.0, Order::Abcd, 1.0, 0.0),
            Err(ValueError::OutOfRange {
                value: 70_000.0,
                kind: "u16".into()
            })
        );
        assert!(FieldType::F32
            .decode(&[1], Order::Abcd, 1.0, 0.0)
            .unwrap_err()
            .to_string()
            .contains("needs 2 registers, got 1"));
        assert_eq!(
            FieldType::Str(4).encode(1.0, Order::Abcd, 1.0, 0.0),
            Err(ValueError::NotANumber)
        );
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back_in_every_order(
            i in any::<i32>(), f in -1.0e6f64..1.0e6, order in 0usize..4, scale_tenths in prop::bool::ANY
        ) {
            let order = ORDERS[order];
            let scale = if scale_tenths { 0.1 } else { 1.0 };
            let regs = FieldType::I32.encode(i as f64 * scale, order, scale, 0.0).unwrap();
            let back = FieldType::I32.decode(&regs, order, 1.0, 0.0).unwrap();
            prop_assert_eq!(back, json!(i));
            let regs = FieldType::F64.encode(f, order, 1.0, 0.0).unwrap();
            prop_assert_eq!(FieldType::F64.decode(&regs, order, 1.0, 0.0).unwrap(), json!(f));
        }
    }
}
