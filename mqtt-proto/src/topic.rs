//! Topic names and topic filters: validation and matching [MQTT-4.7].
//!
//! A topic name is what a PUBLISH is sent to; a topic filter is what a
//! subscription asks for and may hold the wildcards `+` (one level) and `#`
//! (the rest). `TopicName` and `TopicFilter` can only be built through
//! validation, so code that holds one does not check again.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use thiserror::Error;

/// Longest topic in bytes: it travels as a UTF-8 string with a 16-bit length.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Why a string is not a valid topic name or topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("[MQTT-4.7.1-1] topic name contains a wildcard")]
    WildcardInName,
    #[error("[MQTT-4.7.1-2] '#' must be the last level and alone in it")]
    MultiLevelWildcardMisplaced,
    #[error("[MQTT-4.7.1-3] '+' must be alone in its level")]
    SingleLevelWildcardMisplaced,
    #[error("[MQTT-4.7.3-1] topic is empty")]
    Empty,
    #[error("[MQTT-4.7.3-2] topic contains the null character U+0000")]
    NullCharacter,
    #[error("[MQTT-4.7.3-3] topic is {0} bytes long, over the limit of 65535")]
    TooLong(usize),
}

impl TopicError {
    /// The spec rule the topic breaks, e.g. `MQTT-4.7.1-1`.
    pub fn spec_ref(&self) -> &'static str {
        match self {
            TopicError::WildcardInName => "MQTT-4.7.1-1",
            TopicError::MultiLevelWildcardMisplaced => "MQTT-4.7.1-2",
            TopicError::SingleLevelWildcardMisplaced => "MQTT-4.7.1-3",
            TopicError::Empty => "MQTT-4.7.3-1",
            TopicError::NullCharacter => "MQTT-4.7.3-2",
            TopicError::TooLong(_) => "MQTT-4.7.3-3",
        }
    }
}

/// Rules shared by names and filters: non-empty, no U+0000, at most 65535 bytes.
fn validate_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(s.len()));
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Check that `s` may be published to: no wildcards.
pub fn validate_topic_name(s: &str) -> Result<(), TopicError> {
    validate_common(s)?;
    if s.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Check that `s` may be subscribed to: `+` alone in its level, `#` alone in the last level.
pub fn validate_topic_filter(s: &str) -> Result<(), TopicError> {
    validate_common(s)?;
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

/// Whether the valid `filter` matches the valid topic name `topic`.
///
/// `#` also matches the parent level (`sport/#` matches `sport`), `+` matches
/// exactly one level (which may be empty), and a topic starting with `$` is not
/// matched by a filter whose first level is a wildcard [MQTT-4.7.2-1].
/// Invalid input gives an unspecified answer, never a panic.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic the valid filter `inner` can match is also matched by
/// the valid filter `outer` (`a/+` lies within `a/#`, `#` within `#`).
///
/// A filter whose first level is a wildcard does not reach topics starting with
/// `$` [MQTT-4.7.2-1], so `$SYS/#` does not lie within `#` or `+/#`.
pub fn filter_within(inner: &str, outer: &str) -> bool {
    if reaches_dollar_past_wildcard(inner, outer) {
        return false;
    }
    let mut inner_levels = inner.split('/');
    let mut outer_levels = outer.split('/');
    loop {
        match (inner_levels.next(), outer_levels.next()) {
            (_, Some("#")) => return true,
            (None, None) => return true,
            (Some(i), Some("+")) if i != "#" => {}
            (Some(i), Some(o)) if i == o && i != "+" && i != "#" => {}
            _ => return false,
        }
    }
}

/// Whether some topic name is matched by both valid filters `a` and `b`.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    if reaches_dollar_past_wildcard(a, b) || reaches_dollar_past_wildcard(b, a) {
        return false;
    }
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(l), Some(r)) if l == r => {}
            _ => return false,
        }
    }
}

/// `literal` starts with a `$` level and `wild` with a wildcard, which does not
/// reach `$` topics [MQTT-4.7.2-1].
fn reaches_dollar_past_wildcard(literal: &str, wild: &str) -> bool {
    literal.starts_with('$') && (wild.starts_with('+') || wild.starts_with('#'))
}

/// A validated topic name: what a PUBLISH is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

/// A validated topic filter: what a subscription asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(String);

impl TopicName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl TopicFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this filter matches `topic`.
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(&self.0, &topic.0)
    }

    /// Whether the filter holds `+` or `#`, i.e. can match more than one name.
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }
}

/// A string refused as a topic name or filter, handed back with the reason so
/// that an error message can quote it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{topic:?}: {error}")]
pub struct InvalidTopic {
    pub topic: String,
    pub error: TopicError,
}

macro_rules! topic_newtype_impls {
    ($ty:ident, $validate:ident) => {
        impl $ty {
            /// Validates `topic` and keeps it; on refusal the string comes back.
            pub fn new(topic: String) -> Result<$ty, InvalidTopic> {
                match $validate(&topic) {
                    Ok(()) => Ok($ty(topic)),
                    Err(error) => Err(InvalidTopic { topic, error }),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;

            fn try_from(s: String) -> Result<Self, TopicError> {
                $validate(&s)?;
                Ok($ty(s))
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;

            fn try_from(s: &str) -> Result<Self, TopicError> {
                $validate(s)?;
                Ok($ty(s.to_owned()))
            }
        }

        impl FromStr for $ty {
            type Err = TopicError;

            fn from_str(s: &str) -> Result<Self, TopicError> {
                $ty::try_from(s)
            }
        }

        /// Read access to the text; there is no way to change it.
        impl Deref for $ty {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $ty {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        /// Hashes and compares like its text, so a map keyed by it is searched by `&str`.
        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$ty> for String {
            fn from(t: $ty) -> String {
                t.0
            }
        }
    };
}

topic_newtype_impls!(TopicName, validate_topic_name);
topic_newtype_impls!(TopicFilter, validate_topic_filter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_from_the_spec_are_judged_like_the_spec() {
        let table: &[(&str, Result<(), TopicError>)] = &[
            ("#", Ok(())),
            ("sport/tennis/#", Ok(())),
            ("sport/tennis/player1/#", Ok(())),
            (
                "sport/tennis#",
                Err(TopicError::MultiLevelWildcardMisplaced),
            ),
            (
                "sport/tennis/#/ranking",
                Err(TopicError::MultiLevelWildcardMisplaced),
            ),
            ("sport/#/", Err(TopicError::MultiLevelWildcardMisplaced)),
            ("##", Err(TopicError::MultiLevelWildcardMisplaced)),
            ("+", Ok(())),
            ("+/tennis/#", Ok(())),
            ("sport/+/player1", Ok(())),
            ("+/+", Ok(())),
            ("/+", Ok(())),
            ("sport+", Err(TopicError::SingleLevelWildcardMisplaced)),
            (
                "sport/+x/player1",
                Err(TopicError::SingleLevelWildcardMisplaced),
            ),
            ("++", Err(TopicError::SingleLevelWildcardMisplaced)),
            ("/", Ok(())),
            ("$SYS/#", Ok(())),
            ("Accounts payable", Ok(())),
            ("", Err(TopicError::Empty)),
            ("a\0b", Err(TopicError::NullCharacter)),
        ];
        for (filter, expected) in table {
            assert_eq!(
                validate_topic_filter(filter),
                *expected,
                "filter {filter:?}"
            );
        }
    }

    #[test]
    fn topic_names_from_the_spec_are_judged_like_the_spec() {
        let table: &[(&str, Result<(), TopicError>)] = &[
            ("sport/tennis/player1", Ok(())),
            ("sport/tennis/player1/", Ok(())),
            ("/finance", Ok(())),
            ("/", Ok(())),
            ("//", Ok(())),
            ("ACCOUNTS", Ok(())),
            ("Accounts payable", Ok(())),
            ("$SYS/monitor/Clients", Ok(())),
            ("sport/+", Err(TopicError::WildcardInName)),
            ("sport/#", Err(TopicError::WildcardInName)),
            ("a+b", Err(TopicError::WildcardInName)),
            ("", Err(TopicError::Empty)),
            ("x\0", Err(TopicError::NullCharacter)),
        ];
        for (name, expected) in table {
            assert_eq!(validate_topic_name(name), *expected, "name {name:?}");
        }
    }

    #[test]
    fn topic_over_65535_bytes_is_too_long_and_65535_is_fine() {
        let limit = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic_name(&limit), Ok(()));
        assert_eq!(validate_topic_filter(&limit), Ok(()));
        let over = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_topic_name(&over), Err(TopicError::TooLong(65_536)));
        assert_eq!(
            validate_topic_filter(&over),
            Err(TopicError::TooLong(65_536))
        );
    }

    #[test]
    fn matching_follows_the_examples_of_section_4_7() {
        let table: &[(&str, &str, bool)] = &[
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/#", "sport/", true),
            ("#", "sport/tennis", true),
            ("#", "/", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player2", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("+", "finance", true),
            ("+/tennis/#", "sport/tennis/player1", true),
            ("+/tennis/#", "sport/tennis", true),
            ("sport/+/player1", "sport/tennis/player1", true),
            ("sport/+/player1", "sport/tennis/player2", false),
            ("sport/tennis/player1", "sport/tennis/player1", true),
            ("sport/tennis/player1", "sport/tennis/player1/", false),
            ("ACCOUNTS", "Accounts", false),
            ("sport/tennis", "sport/tennis/player1", false),
            ("sport/tennis/player1", "sport/tennis", false),
        ];
        for (filter, topic, expected) in table {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
        let table: &[(&str, &str, bool)] = &[
            ("#", "$SYS/monitor/Clients", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("+", "$SYS", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("$SYS/#", "$SYS", true),
            ("a/+", "a/$b", true),
            ("#", "a/$b", true),
        ];
        for (filter, topic, expected) in table {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn a_filter_lies_within_another_when_every_topic_it_matches_does() {
        let table: &[(&str, &str, bool)] = &[
            ("secret/a", "secret/#", true),
            ("secret", "secret/#", true),
            ("secret/+/x", "secret/#", true),
            ("#", "#", true),
            ("a/b", "a/+", true),
            ("a/+", "a/+", true),
            ("a", "a/#", true),
            ("a/#", "a/+", false),
            ("a/+", "a/b", false),
            ("a/#", "a", false),
            ("#", "secret/#", false),
            ("public/a", "secret/#", false),
            ("a/b/c", "a/+", false),
            ("+/+", "a/#", false),
        ];
        for (inner, outer, expected) in table {
            assert_eq!(
                filter_within(inner, outer),
                *expected,
                "{inner:?} within {outer:?}"
            );
        }
    }

    #[test]
    fn dollar_filters_lie_only_within_filters_that_name_their_first_level() {
        let table: &[(&str, &str, bool)] = &[
            ("$SYS/#", "#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS", "+", false),
            ("$SYS/broker/x", "+/#", false),
            ("$SYS/broker/x", "$SYS/#", true),
            ("$SYS/broker/+", "$SYS/#", true),
            ("$SYS/+", "$SYS/#", true),
            ("$SYS/x", "$SYS/+", true),
            ("#", "$SYS/#", false),
            ("+/x", "$SYS/+", false),
            ("a/$b", "a/+", true),
            ("a/$b", "#", true),
        ];
        for (inner, outer, expected) in table {
            assert_eq!(
                filter_within(inner, outer),
                *expected,
                "{inner:?} within {outer:?}"
            );
        }
    }

    #[test]
    fn filters_overlap_when_some_topic_matches_both() {
        let table: &[(&str, &str, bool)] = &[
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/#", "a", true),
            ("+/+", "a/#", true),
            ("a/b/c", "a/+", false),
            ("a/b", "a/c", false),
            ("#", "$SYS/#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS/+", "$SYS/#", true),
        ];
        for (a, b, expected) in table {
            assert_eq!(filters_overlap(a, b), *expected, "{a:?} overlaps {b:?}");
            assert_eq!(filters_overlap(b, a), *expected, "{b:?} overlaps {a:?}");
        }
    }

    #[test]
    fn newtypes_are_built_only_from_valid_strings() {
        let name = TopicName::try_from("sensors/temp").expect("valid name");
        assert_eq!(name.as_str(), "sensors/temp");
        assert_eq!(name.to_string(), "sensors/temp");
        assert_eq!(
            TopicName::try_from("sensors/+"),
            Err(TopicError::WildcardInName)
        );
        assert_eq!(TopicName::try_from(String::new()), Err(TopicError::Empty));

        let refused = TopicName::new(String::from("a/#")).expect_err("a wildcard in a name");
        assert_eq!(
            refused,
            InvalidTopic {
                topic: "a/#".into(),
                error: TopicError::WildcardInName
            }
        );

        let filter = TopicFilter::try_from(String::from("sensors/+")).expect("valid filter");
        assert!(filter.matches(&name));
        assert!(filter.has_wildcards());
        assert_eq!(
            "sensors/+x".parse::<TopicFilter>(),
            Err(TopicError::SingleLevelWildcardMisplaced)
        );
    }

    #[test]
    fn topic_errors_name_their_spec_rule_in_the_message() {
        for e in [
            TopicError::WildcardInName,
            TopicError::MultiLevelWildcardMisplaced,
            TopicError::SingleLevelWildcardMisplaced,
            TopicError::Empty,
            TopicError::NullCharacter,
            TopicError::TooLong(70_000),
        ] {
            assert!(
                e.to_string().starts_with(&format!("[{}] ", e.spec_ref())),
                "{e}"
            );
        }
    }
}
