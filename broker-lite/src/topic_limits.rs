//! The configured limits on what a client may put in a topic and how many
//! filters it may hold: `max_topic_length`, `max_topic_levels` and
//! `max_subscriptions_per_client`. MQTT allows topics of 65535 bytes and any
//! number of subscriptions; a broker on a small machine holds every retained
//! topic and every filter (one tree node per level), so it sets its own bounds.
//! A topic over them is not a protocol violation: the caller refuses that one
//! topic (drops the message, SUBACK 0x80) and keeps the connection.

use std::fmt;

use crate::config::Limits;

/// Checked limits, copied out of the configuration once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicLimits {
    pub max_length: usize,
    pub max_levels: usize,
    /// 0 = no limit.
    pub max_subscriptions: usize,
}

/// Why a topic or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopicLimitError {
    TooLong { length: usize, max: usize },
    TooDeep { levels: usize, max: usize },
}

impl fmt::Display for TopicLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicLimitError::TooLong { length, max } => {
                write!(f, "{length} bytes long, over max_topic_length {max}")
            }
            TopicLimitError::TooDeep { levels, max } => {
                write!(f, "{levels} levels deep, over max_topic_levels {max}")
            }
        }
    }
}

impl TopicLimits {
    pub(crate) fn from_config(l: &Limits) -> TopicLimits {
        TopicLimits {
            max_length: l.max_topic_length,
            max_levels: l.max_topic_levels,
            max_subscriptions: l.max_subscriptions_per_client,
        }
    }

    /// Check a topic name or filter (already valid MQTT) against the limits.
    /// The length is checked first, so a long topic is never scanned for levels.
    pub(crate) fn check_topic(&self, topic: &str) -> Result<(), TopicLimitError> {
        if topic.len() > self.max_length {
            return Err(TopicLimitError::TooLong {
                length: topic.len(),
                max: self.max_length,
            });
        }
        let levels = 1 + topic.bytes().filter(|&b| b == b'/').count();
        if levels > self.max_levels {
            return Err(TopicLimitError::TooDeep {
                levels,
                max: self.max_levels,
            });
        }
        Ok(())
    }

    /// Whether a session holding `held` subscriptions may add a new filter.
    pub(crate) fn may_add_subscription(&self, held: usize) -> bool {
        self.max_subscriptions == 0 || held < self.max_subscriptions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_length: usize, max_levels: usize, max_subscriptions: usize) -> TopicLimits {
        TopicLimits {
            max_length,
            max_levels,
            max_subscriptions,
        }
    }

    #[test]
    fn a_topic_at_the_length_limit_fits_and_one_byte_more_does_not() {
        let l = limits(8, 32, 0);
        assert_eq!(l.check_topic("abcd/efg"), Ok(()));
        assert_eq!(
            l.check_topic("abcd/efgh"),
            Err(TopicLimitError::TooLong { length: 9, max: 8 })
        );
        // Bytes, not characters: "é" is two bytes in UTF-8.
        assert_eq!(
            l.check_topic("abcd/éé"),
            Err(TopicLimitError::TooLong { length: 9, max: 8 })
        );
    }

    #[test]
    fn levels_are_counted_by_separator_including_empty_ones() {
        let l = limits(1024, 3, 0);
        assert_eq!(l.check_topic("a/b/c"), Ok(()));
        assert_eq!(l.check_topic("a/+/#"), Ok(()));
        assert_eq!(l.check_topic("//"), Ok(()), "three empty levels");
        assert_eq!(
            l.check_topic("a/b/c/d"),
            Err(TopicLimitError::TooDeep { levels: 4, max: 3 })
        );
        assert_eq!(
            l.check_topic("/a/b/"),
            Err(TopicLimitError::TooDeep { levels: 4, max: 3 })
        );
    }

    #[test]
    fn errors_name_the_setting_that_refused() {
        let l = limits(4, 1, 0);
        let long = l.check_topic("abcde").unwrap_err().to_string();
        assert_eq!(long, "5 bytes long, over max_topic_length 4");
        let deep = l.check_topic("a/b").unwrap_err().to_string();
        assert_eq!(deep, "2 levels deep, over max_topic_levels 1");
    }

    #[test]
    fn the_subscription_limit_counts_held_filters_and_zero_means_none() {
        let l = limits(1024, 32, 2);
        assert!(l.may_add_subscription(0));
        assert!(l.may_add_subscription(1));
        assert!(!l.may_add_subscription(2));
        let unlimited = limits(1024, 32, 0);
        assert!(unlimited.may_add_subscription(1_000_000));
    }

    #[test]
    fn limits_come_from_the_configuration() {
        let c = Limits {
            max_topic_length: 100,
            max_topic_levels: 5,
            max_subscriptions_per_client: 7,
            ..Limits::default()
        };
        assert_eq!(TopicLimits::from_config(&c), limits(100, 5, 7));
    }
}
