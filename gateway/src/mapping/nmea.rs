//! NMEA 0183 helpers for scripts: the sentence envelope (start character, checksum,
//! address) and the field formats every receiver uses (positions, UTC time, date).
//! What each sentence's fields mean stays in the script (`scripts/nmea.rhai`).

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, FLOAT};

use super::fields::parse_decimal;
use super::helpers::fail;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Register the NMEA helpers on `engine`.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("nmea_sentence", |line: ImmutableString| sentence(&line));
    engine.register_fn("nmea_sentence", |_: ()| -> Res<Dynamic> {
        fail("nmea_sentence: the frame is not text".into())
    });
    engine.register_fn(
        "nmea_degrees",
        |v: ImmutableString, hemisphere: ImmutableString| degrees(&v, &hemisphere, "nmea_degrees"),
    );
    engine.register_fn(
        "nmea_degrees",
        |v: ImmutableString, hemisphere: ImmutableString, what: ImmutableString| {
            degrees(&v, &hemisphere, &what)
        },
    );
    engine.register_fn("nmea_time", |v: ImmutableString| time(&v));
    engine.register_fn("nmea_date", |v: ImmutableString| date(&v));
}

/// `$GPGGA,...*hh` → `#{talker: "GP", type: "GGA", fields: ["GPGGA", ...]}`, so that
/// `fields[i]` is field `i` of the sentence as the NMEA tables number them. A blank
/// line is `()`. A checksum, when present, must match.
pub(super) fn sentence(line: &str) -> Res<Dynamic> {
    let line = line.trim();
    let Some(first) = line.chars().next() else {
        return Ok(Dynamic::UNIT);
    };
    if first != '$' && first != '!' {
        return fail(format!(
            "NMEA: a sentence starts with '$' or '!', this line starts with '{first}'"
        ));
    }
    let body = match line.rfind('*') {
        None => &line[1..],
        Some(star) => {
            let given = &line[star + 1..];
            let Ok(sum) = u8::from_str_radix(given, 16) else {
                return fail(format!("NMEA: checksum '{given}' is not two hex digits"));
            };
            if given.len() != 2 {
                return fail(format!("NMEA: checksum '{given}' is not two hex digits"));
            }
            let body = &line[1..star];
            let computed = body.bytes().fold(0u8, |acc, b| acc ^ b);
            if computed != sum {
                return fail(format!(
                    "NMEA: checksum is {given}, the sentence's is {computed:02X}"
                ));
            }
            body
        }
    };
    let fields: Array = body
        .split(',')
        .map(|f| Dynamic::from(ImmutableString::from(f)))
        .collect();
    let address = body.split(',').next().unwrap_or("");
    let (talker, kind) = if let Some(rest) = address.strip_prefix('P') {
        ("P", rest)
    } else if address.len() == 5 && address.is_ascii() {
        address.split_at(2)
    } else {
        return fail(format!(
            "NMEA: address field '{address}' is neither five letters nor proprietary"
        ));
    };
    let mut map = Map::new();
    map.insert("talker".into(), Dynamic::from(talker.to_string()));
    map.insert("type".into(), Dynamic::from(kind.to_string()));
    map.insert("fields".into(), Dynamic::from_array(fields));
    Ok(Dynamic::from_map(map))
}

/// `[d]ddmm.mmmm` with its hemisphere letter as signed decimal degrees (south and
/// west negative); `()` when the field is empty.
pub(super) fn degrees(v: &str, hemisphere: &str, what: &str) -> Res<Dynamic> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    let dot = t.find('.').unwrap_or(t.len());
    let not_degrees = || fail(format!("{what}: '{v}' is not [d]ddmm.mmmm"));
    if dot < 3 || !t[..dot].bytes().all(|c| c.is_ascii_digit()) {
        return not_degrees();
    }
    let Ok(d) = t[..dot - 2].parse::<u32>() else {
        return not_degrees();
    };
    let Some(m) = parse_decimal(&t[dot - 2..]).filter(|m| *m >= 0.0) else {
        return not_degrees();
    };
    let x = d as FLOAT + m / 60.0;
    match hemisphere.trim() {
        "N" | "E" => Ok(Dynamic::from_float(x)),
        "S" | "W" => Ok(Dynamic::from_float(-x)),
        other => fail(format!("{what}: hemisphere '{other}' is not N, S, E or W")),
    }
}

/// `hhmmss[.fff]` → `hh:mm:ss[.fff]` as the receiver sent it; `()` when empty.
pub(super) fn time(v: &str) -> Res<Dynamic> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    let digits = t.len() >= 6 && t.as_bytes()[..6].iter().all(u8::is_ascii_digit);
    let fraction = &t[6.min(t.len())..];
    let fraction_ok = fraction.is_empty()
        || (fraction.starts_with('.') && fraction[1..].bytes().all(|c| c.is_ascii_digit()));
    if !digits || !fraction_ok {
        return fail(format!("NMEA time '{v}' is not hhmmss[.fff]"));
    }
    Ok(Dynamic::from(format!(
        "{}:{}:{}",
        &t[0..2],
        &t[2..4],
        &t[4..]
    )))
}

/// `ddmmyy` → `yyyy-mm-dd` (two-digit years 80–99 are 19xx, the rest 20xx); `()`
/// when empty.
pub(super) fn date(v: &str) -> Res<Dynamic> {
    let t = v.trim();
    if t.is_empty() {
        return Ok(Dynamic::UNIT);
    }
    if t.len() != 6 || !t.bytes().all(|c| c.is_ascii_digit()) {
        return fail(format!("NMEA date '{v}' is not ddmmyy"));
    }
    let century = if &t[4..6] >= "80" { "19" } else { "20" };
    Ok(Dynamic::from(format!(
        "{century}{}-{}-{}",
        &t[4..6],
        &t[2..4],
        &t[0..2]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(d: Dynamic) -> String {
        d.into_string().expect("a string")
    }

    #[test]
    fn a_sentence_splits_into_talker_type_and_numbered_fields() {
        let s = sentence("$GPGGA,214350.00,4023.86,N,00339.163,W,8,09,2.0,695.7,M,51.6,M,,*44")
            .unwrap()
            .cast::<Map>();
        assert_eq!(text(s["talker"].clone()), "GP");
        assert_eq!(text(s["type"].clone()), "GGA");
        let fields = s["fields"].clone().cast::<Array>();
        assert_eq!(fields.len(), 15);
        assert_eq!(text(fields[0].clone()), "GPGGA");
        assert_eq!(text(fields[1].clone()), "214350.00");
        assert_eq!(text(fields[14].clone()), "");
        let p = sentence("$PGRME,15.0,M,45.0,M,25.0,M*1C")
            .unwrap()
            .cast::<Map>();
        assert_eq!(text(p["talker"].clone()), "P");
        assert_eq!(text(p["type"].clone()), "GRME");
        assert!(sentence("  ").unwrap().is_unit());
    }

    #[test]
    fn bad_sentences_are_errors_that_say_why() {
        for (line, why) in [
            ("GPGGA,1*00", "starts with 'G'"),
            ("$GPGGA,1*4", "checksum '4' is not two hex digits"),
            ("$GPGGA,1*zz", "checksum 'zz' is not two hex digits"),
            ("$GPGGA,1*00", "checksum is 00, the sentence's is"),
            ("$GPGGAX,1", "address field 'GPGGAX'"),
        ] {
            let e = sentence(line).unwrap_err().to_string();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn positions_become_signed_degrees() {
        let lat = degrees("4023.86", "N", "lat").unwrap().as_float().unwrap();
        assert!((lat - (40.0 + 23.86 / 60.0)).abs() < 1e-12);
        let lon = degrees("00339.163", "W", "lon")
            .unwrap()
            .as_float()
            .unwrap();
        assert!((lon + (3.0 + 39.163 / 60.0)).abs() < 1e-12);
        let south = degrees("3351", "S", "lat").unwrap().as_float().unwrap();
        assert!((south + (33.0 + 51.0 / 60.0)).abs() < 1e-12);
        assert!(degrees("", "", "lat").unwrap().is_unit());
    }

    #[test]
    fn bad_positions_are_errors_naming_the_field() {
        for (v, h, why) in [
            ("40", "N", "is not [d]ddmm.mmmm"),
            ("4a23.86", "N", "is not [d]ddmm.mmmm"),
            ("4023.8x", "N", "is not [d]ddmm.mmmm"),
            ("4023.86", "Q", "hemisphere 'Q' is not N, S, E or W"),
        ] {
            let e = degrees(v, h, "GGA latitude").unwrap_err().to_string();
            assert!(
                e.contains("GGA latitude") && e.contains(why),
                "{v} {h}: {e}"
            );
        }
    }

    #[test]
    fn times_and_dates_keep_the_receivers_digits() {
        assert_eq!(text(time("214350.00").unwrap()), "21:43:50.00");
        assert_eq!(text(time("000001").unwrap()), "00:00:01");
        assert!(time("").unwrap().is_unit());
        assert!(time("2143").is_err());
        assert!(time("214350,0").is_err());
        assert_eq!(text(date("010203").unwrap()), "2003-02-01");
        assert_eq!(text(date("311299").unwrap()), "1999-12-31");
        assert!(date("").unwrap().is_unit());
        assert!(date("0102").is_err());
    }
}
