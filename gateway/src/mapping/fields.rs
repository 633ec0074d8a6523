//! Helpers for text fields (NMEA sentences, CSV lines, AT responses): numbers where an
//! empty field means "no value". Scripts could do
//! this themselves, but each would cost a dozen interpreted operations per field.

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, FLOAT, INT};

use super::helpers::fail;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Register the field helpers on `engine`.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("float_or_null", |s: ImmutableString| {
        float_or_null(&s, "float_or_null")
    });
    engine.register_fn(
        "float_or_null",
        |s: ImmutableString, what: ImmutableString| float_or_null(&s, &what),
    );
    engine.register_fn("int_or_null", |s: ImmutableString| {
        int_or_null(&s, "int_or_null")
    });
    engine.register_fn(
        "int_or_null",
        |s: ImmutableString, what: ImmutableString| int_or_null(&s, &what),
    );
}

/// A decimal number, `()` when the field is empty; `what` names the field in errors.
pub(super) fn float_or_null(s: &str, what: &str) -> Res<Dynamic> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    match parse_decimal(t) {
        Some(x) => Ok(Dynamic::from_float(x)),
        None => fail(format!("{what}: '{s}' is not a number")),
    }
}

/// An integer, `()` when the field is empty; `what` names the field in errors.
pub(super) fn int_or_null(s: &str, what: &str) -> Res<Dynamic> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    match t.parse::<INT>() {
        Ok(i) => Ok(Dynamic::from_int(i)),
        Err(_) => fail(format!("{what}: '{s}' is not an integer")),
    }
}

/// A plain decimal number: Rust's float syntax without `inf`, `nan` and friends, which
/// no sensor means when it sends them.
pub(crate) fn parse_decimal(t: &str) -> Option<FLOAT> {
    let plain = t
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plain {
        return None;
    }
    t.parse::<FLOAT>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(d: Dynamic) -> FLOAT {
        d.as_float().expect("a float")
    }

    #[test]
    fn empty_fields_are_null_and_numbers_parse() {
        assert!(float_or_null("", "x").unwrap().is_unit());
        assert!(float_or_null("  ", "x").unwrap().is_unit());
        assert!(int_or_null("", "x").unwrap().is_unit());
        assert_eq!(f(float_or_null("695.7", "x").unwrap()), 695.7);
        assert_eq!(f(float_or_null("-0.5", "x").unwrap()), -0.5);
        assert_eq!(int_or_null("09", "x").unwrap().as_int().unwrap(), 9);
    }

    #[test]
    fn a_bad_field_is_an_error_naming_it() {
        let e = float_or_null("12,5", "GGA hdop").unwrap_err().to_string();
        assert!(e.contains("GGA hdop: '12,5' is not a number"), "{e}");
        let e = float_or_null("inf", "speed").unwrap_err().to_string();
        assert!(e.contains("'inf' is not a number"), "{e}");
        let e = int_or_null("7.5", "satellites").unwrap_err().to_string();
        assert!(e.contains("satellites: '7.5' is not an integer"), "{e}");
    }
}
