//! What the upstream output published lately, by fingerprint, so that a command
//! subscription on the same broker never takes the gateway's own messages back
//! (MQTT 3.1.1 has no "no local"; the embedded broker's in-process subscription
//! has it).

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Publications remembered at most, and for how long.
const CAPACITY: usize = 16_384;
const KEEP: Duration = Duration::from_secs(60);

/// Fingerprints of the last publications (topic as sent, and payload).
#[derive(Debug, Default)]
pub struct Echoes {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    order: VecDeque<(u64, Instant)>,
    count: HashMap<u64, u32>,
}

fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

impl Echoes {
    /// The output published this.
    pub fn record(&self, topic: &str, payload: &[u8]) {
        let key = fingerprint(topic, payload);
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.forget_old(now);
        if inner.order.len() >= CAPACITY {
            inner.pop();
        }
        inner.order.push_back((key, now));
        *inner.count.entry(key).or_default() += 1;
    }

    /// Whether this came from the output within the last minute.
    pub fn is_echo(&self, topic: &str, payload: &[u8]) -> bool {
        let key = fingerprint(topic, payload);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.forget_old(Instant::now());
        inner.count.contains_key(&key)
    }
}

impl Inner {
    fn forget_old(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) > KEEP)
        {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some((key, _)) = self.order.pop_front() {
            if let Some(n) = self.count.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.count.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_is_an_echo_and_another_is_not_and_memory_stays_bounded() {
        let e = Echoes::default();
        e.record("site/cmd/a", b"on");
        assert!(e.is_echo("site/cmd/a", b"on"));
        assert!(!e.is_echo("site/cmd/a", b"off"));
        assert!(!e.is_echo("site/cmd/b", b"on"));
        for i in 0..(CAPACITY + 10) {
            e.record("t", i.to_string().as_bytes());
        }
        let inner = e.inner.lock().unwrap();
        assert_eq!(inner.order.len(), CAPACITY);
        assert_eq!(inner.count.len(), CAPACITY);
        drop(inner);
        assert!(!e.is_echo("site/cmd/a", b"on"), "the oldest went first");
    }
}
