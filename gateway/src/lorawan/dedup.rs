//! One uplink heard by several gateways (or repeated by the device within a
//! moment) is one uplink: receptions of the same PHYPayload within a window
//! from the first are gathered, and the uplink is handed on once, when its
//! window closes, with every gateway that heard it and the best reception.
//! Pure: the caller gives the time, and asks for what is due.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window unless configured: receptions of one uplink by gateways in
/// reach arrive within tens of milliseconds of each other.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(200);
/// Uplinks waiting for their window at most; past this the oldest is handed on
/// early rather than the list growing.
pub const MAX_PENDING: usize = 1024;

/// One gateway's reception.
#[derive(Debug, Clone, PartialEq)]
pub struct Reception {
    pub gateway: String,
    pub rssi: Option<f64>,
    pub snr: Option<f64>,
}

/// An uplink whose window closed: its bytes and who heard it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered {
    pub phy: Vec<u8>,
    /// In the order they arrived; the same gateway twice (a repeat) once.
    pub receptions: Vec<Reception>,
    /// How many copies arrived in all (repeats included).
    pub copies: usize,
}

impl Gathered {
    /// The reception with the highest RSSI (then SNR).
    pub fn best(&self) -> Option<&Reception> {
        let key = |r: &Reception| {
            (
                r.rssi.unwrap_or(f64::NEG_INFINITY),
                r.snr.unwrap_or(f64::NEG_INFINITY),
            )
        };
        self.receptions.iter().max_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    }
}

#[derive(Debug)]
struct Pending {
    closes_at: Instant,
    gathered: Gathered,
}

/// The uplinks inside their window.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    pending: VecDeque<Pending>,
}

/// What an offered reception was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The first copy: a window opened.
    First,
    /// Another copy within the window: gathered with the first.
    Copy,
}

impl Dedup {
    pub fn new(window: Duration) -> Dedup {
        Dedup {
            window,
            pending: VecDeque::new(),
        }
    }

    /// A reception of `phy` at `now`. When the list is full the oldest uplink is
    /// handed on at once: it comes back from the next [`Dedup::due`].
    pub fn offer(&mut self, now: Instant, phy: &[u8], reception: Reception) -> Offered {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.gathered.phy == phy && now < p.closes_at)
        {
            p.gathered.copies += 1;
            if !p
                .gathered
                .receptions
                .iter()
                .any(|r| r.gateway == reception.gateway)
            {
                p.gathered.receptions.push(reception);
            }
            return Offered::Copy;
        }
        if self.pending.len() >= MAX_PENDING {
            if let Some(oldest) = self.pending.front_mut() {
                oldest.closes_at = now;
            }
        }
        self.pending.push_back(Pending {
            closes_at: now + self.window,
            gathered: Gathered {
                phy: phy.to_vec(),
                receptions: vec![reception],
                copies: 1,
            },
        });
        Offered::First
    }

    /// The uplinks whose window has closed by `now`, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<Gathered> {
        let mut out = Vec::new();
        while self.pending.front().is_some_and(|p| p.closes_at <= now) {
            if let Some(p) = self.pending.pop_front() {
                out.push(p.gathered);
            }
        }
        out
    }

    /// When the next window closes.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.closes_at).min()
    }

    /// Uplinks waiting for their window.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(gateway: &str, rssi: f64, snr: f64) -> Reception {
        Reception {
            gateway: gateway.into(),
            rssi: Some(rssi),
            snr: Some(snr),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn copies_from_several_gateways_within_the_window_are_one_uplink_with_the_best_reception() {
        let t0 = Instant::now();
        let mut d = Dedup::new(DEFAULT_WINDOW);
        assert_eq!(
            d.offer(t0, b"up-1", heard("gw-a", -90.0, 2.0)),
            Offered::First
        );
        assert_eq!(
            d.offer(t0 + 30 * MS, b"up-1", heard("gw-b", -60.0, 7.5)),
            Offered::Copy
        );
        // The device's repeat, heard by gw-a again: counted, gateway listed once.
        assert_eq!(
            d.offer(t0 + 80 * MS, b"up-1", heard("gw-a", -91.0, 1.0)),
            Offered::Copy
        );
        assert_eq!(
            d.offer(t0 + 90 * MS, b"up-2", heard("gw-a", -95.0, 0.0)),
            Offered::First
        );
        assert!(d.due(t0 + 199 * MS).is_empty(), "the window is still open");
        assert_eq!(d.next_due(), Some(t0 + 200 * MS));
        let got = d.due(t0 + 200 * MS);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].phy, b"up-1");
        assert_eq!(got[0].copies, 3);
        let gateways: Vec<&str> = got[0]
            .receptions
            .iter()
            .map(|r| r.gateway.as_str())
            .collect();
        assert_eq!(gateways, ["gw-a", "gw-b"]);
        assert_eq!(got[0].best().map(|r| r.gateway.as_str()), Some("gw-b"));
        assert_eq!(d.due(t0 + 290 * MS)[0].phy, b"up-2");
        assert!(d.is_empty());
    }

    #[test]
    fn the_same_bytes_after_the_window_are_a_new_uplink_for_the_counter_check_to_refuse() {
        let t0 = Instant::now();
        let mut d = Dedup::new(DEFAULT_WINDOW);
        d.offer(t0, b"up", heard("gw", -80.0, 5.0));
        assert_eq!(
            d.offer(t0 + 250 * MS, b"up", heard("gw", -80.0, 5.0)),
            Offered::First
        );
        assert_eq!(d.due(t0 + 500 * MS).len(), 2);
    }

    #[test]
    fn a_full_list_hands_the_oldest_on_early_instead_of_growing() {
        let t0 = Instant::now();
        let mut d = Dedup::new(DEFAULT_WINDOW);
        for i in 0..MAX_PENDING {
            d.offer(t0, format!("up-{i}").as_bytes(), heard("gw", -80.0, 5.0));
        }
        d.offer(t0 + MS, b"one more", heard("gw", -80.0, 5.0));
        let early = d.due(t0 + MS);
        assert_eq!(early.len(), 1);
        assert_eq!(early[0].phy, b"up-0");
        assert_eq!(d.len(), MAX_PENDING);
    }
}
