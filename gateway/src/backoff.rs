//! The one retry policy every reconnect uses: capped exponential back-off with jitter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Delays between attempts: `initial`, doubling up to `max`, each with up to ±25 % jitter
/// so that many gateways (or sources) restarting together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt; each call doubles the base up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // xorshift64: enough randomness for jitter, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = base.as_micros() as u64 / 2; // ±25 % → a window of 50 %
        let offset = if spread == 0 { 0 } else { self.rng % spread };
        let delay = base - base / 4 + Duration::from_micros(offset);
        delay.min(self.max)
    }

    /// After a success: start again from `initial`.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_the_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut bases = vec![];
        for _ in 0..8 {
            bases.push(b.next_delay());
        }
        let expected = [100u64, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (d, base) in bases.iter().zip(expected) {
            let ms = d.as_millis() as u64;
            assert!(
                ms >= base * 3 / 4 && ms <= base.min(2000) * 5 / 4,
                "{ms} for base {base}"
            );
            assert!(*d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn reset_starts_again_from_the_initial_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }
}
