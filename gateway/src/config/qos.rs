//! Values read from a plain YAML scalar through a visitor, so that a bad value
//! is reported by serde_yaml_ng with its own field path and position (an error
//! from `try_from` would be placed at the enclosing mapping instead).

use std::fmt;

use mqtt_proto::codec::QoS;
use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A whole number in YAML, turned into `T` by `pick`, or an error naming `expected`.
pub(crate) struct Number<T> {
    pub(crate) expected: &'static str,
    pub(crate) pick: fn(u64) -> Option<T>,
}

impl<'de, T> Visitor<'de> for Number<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.pick)(v).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }
}

/// A string in YAML, turned into `T` by `parse`, whose error message is used as is.
pub(crate) struct Text<T> {
    pub(crate) expected: &'static str,
    pub(crate) parse: fn(&str) -> Result<T, String>,
}

impl<'de, T> Visitor<'de> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

/// For `#[serde(deserialize_with = "...")]` on a `QoS` field: 0, 1 or 2.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<QoS, D::Error> {
    deserializer.deserialize_u64(Number {
        expected: "qos 0, 1 or 2",
        pick: |v| u8::try_from(v).ok().and_then(QoS::from_u8),
    })
}

/// The QoS a mapping publishes with when it does not say.
pub(crate) const fn at_least_once() -> QoS {
    QoS::AtLeastOnce
}
