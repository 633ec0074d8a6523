//! Durations as the gateway file writes them: `500ms`, `90s`, `5m`, `1h`, or a
//! bare number of seconds. Each key says what it allows (zero, a minimum).

use std::time::Duration;

use serde::Deserializer;

/// `500ms`, `90s`, `5m`, `1h`, or a number of seconds.
pub(super) fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration like 500ms, 90s, 5m or 1h");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// A duration read with `parse` (which may refuse more, e.g. zero).
pub(super) fn deserialize_with<'de, D: Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<Duration, String>,
) -> Result<Duration, D::Error> {
    struct Text(fn(&str) -> Result<Duration, String>);
    impl serde::de::Visitor<'_> for Text {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration like 500ms, 90s, 5m or 1h")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            (self.0)(&v.to_string()).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            (self.0)(&v.to_string()).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            (self.0)(v).map_err(E::custom)
        }
    }
    d.deserialize_any(Text(parse))
}

/// A duration as [`parse`] reads it; zero allowed.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    deserialize_with(d, parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_m_h_or_mean_seconds() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0ms"), Ok(Duration::ZERO));
        assert!(parse("soon").unwrap_err().contains("500ms"));
        assert!(parse("10 days").is_err());
    }
}
