//! The duty-cycle budget: how much air time each sub-band of a region has left.
//!
//! EU868 follows ETSI EN 300 220 as the LoRaWAN Regional Parameters and
//! LoRaMac-node (`RegionEU868.c`, `VerifyRfFreq`) apply it: six sub-bands, each
//! with its own limit and its own budget, and nothing sent outside them. A
//! sub-band is the one holding the carrier's centre frequency, with LoRaMac-node's
//! edges: 868.0 MHz belongs to 865–868 MHz.
//!
//! The observation period is one hour, sliding: a sub-band may have been on air
//! for its limit × 3600 s within the last hour. Memory is bounded by slots:
//! transmissions starting within [`SLOT`] of a slot's first one share that slot,
//! and a slot counts until an hour after its last one. The budget therefore errs
//! on the safe side by at most [`SLOT`], and a sub-band never holds more than
//! 3600 s / [`SLOT`] + 1 slots however many transmissions it sees.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The observation period of ETSI EN 300 220.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// Transmissions this close to a slot's first one are counted in that slot.
pub(crate) const SLOT: Duration = Duration::from_secs(10);

/// Whose duty-cycle rules apply; the `region` key of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// Europe, 863–870 MHz.
    Eu868,
    /// No limit is enforced. Other regions (US915's dwell time, AS923's
    /// listen-before-talk) have rules of another kind and are not checked.
    None,
}

/// One sub-band of a region and its limit.
#[derive(Debug)]
struct SubBand {
    name: &'static str,
    /// The band's edges, and whether a carrier right on each edge belongs to it.
    low_hz: u64,
    high_hz: u64,
    with_low: bool,
    with_high: bool,
    /// Share of the hour that may be on air, per mille.
    per_mille: u16,
}

impl SubBand {
    fn contains(&self, hz: u64) -> bool {
        let above_low = hz > self.low_hz || (self.with_low && hz == self.low_hz);
        let below_high = hz < self.high_hz || (self.with_high && hz == self.high_hz);
        above_low && below_high
    }

    /// Air time allowed in one window.
    fn budget(&self) -> Duration {
        WINDOW * u32::from(self.per_mille) / 1000
    }
}

/// The EU863-870 sub-bands of the LoRaWAN Regional Parameters (RP002), from ERC
/// Recommendation 70-03 annex 1. Two alternatives the rules allow are not used:
/// listen-before-talk instead of 0.1 % at 863–865 MHz, and 5 mW without a limit
/// instead of 1 % at 869.7–870 MHz.
const EU868: &[SubBand] = &[
    SubBand {
        name: "863.0–865.0 MHz",
        low_hz: 863_000_000,
        high_hz: 865_000_000,
        with_low: true,
        with_high: false,
        per_mille: 1,
    },
    SubBand {
        name: "865.0–868.0 MHz",
        low_hz: 865_000_000,
        high_hz: 868_000_000,
        with_low: true,
        with_high: true,
        per_mille: 10,
    },
    SubBand {
        name: "868.0–868.6 MHz",
        low_hz: 868_000_000,
        high_hz: 868_600_000,
        with_low: false,
        with_high: true,
        per_mille: 10,
    },
    SubBand {
        name: "868.7–869.2 MHz",
        low_hz: 868_700_000,
        high_hz: 869_200_000,
        with_low: true,
        with_high: true,
        per_mille: 1,
    },
    SubBand {
        name: "869.4–869.65 MHz",
        low_hz: 869_400_000,
        high_hz: 869_650_000,
        with_low: true,
        with_high: true,
        per_mille: 100,
    },
    SubBand {
        name: "869.7–870.0 MHz",
        low_hz: 869_700_000,
        high_hz: 870_000_000,
        with_low: true,
        with_high: true,
        per_mille: 10,
    },
];

/// Transmissions close together in time, counted as one.
#[derive(Debug, Clone, Copy)]
struct Slot {
    first: Instant,
    last: Instant,
    air: Duration,
}

/// One sub-band's recent transmissions.
#[derive(Debug)]
struct Ledger {
    band: &'static SubBand,
    /// Oldest first.
    slots: VecDeque<Slot>,
    /// Sum of the slots' air time.
    used: Duration,
}

impl Ledger {
    /// Forgets the slots whose last transmission is an hour old.
    fn age(&mut self, now: Instant) {
        while let Some(slot) = self.slots.front() {
            if now.saturating_duration_since(slot.last) < WINDOW {
                break;
            }
            self.used -= slot.air;
            self.slots.pop_front();
        }
    }

    fn record(&mut self, airtime: Duration, now: Instant) {
        self.used += airtime;
        match self.slots.back_mut() {
            Some(slot) if now.saturating_duration_since(slot.first) < SLOT => {
                slot.last = slot.last.max(now);
                slot.air += airtime;
            }
            _ => self.slots.push_back(Slot {
                first: now,
                last: now,
                air: airtime,
            }),
        }
    }

    /// Air time used in the window ending at `now`, without changing anything.
    fn used_at(&self, now: Instant) -> Duration {
        self.slots
            .iter()
            .filter(|s| now.saturating_duration_since(s.last) < WINDOW)
            .map(|s| s.air)
            .sum()
    }

    /// How long from `now` until `needed` fits, going by the slots that age out;
    /// `None` if it never fits (it is more than the whole budget).
    fn free_in(&self, needed: Duration, now: Instant) -> Option<Duration> {
        let budget = self.band.budget();
        if needed > budget {
            return None;
        }
        let mut used = self.used;
        for slot in &self.slots {
            used -= slot.air;
            if used + needed <= budget {
                return Some((slot.last + WINDOW).saturating_duration_since(now));
            }
        }
        Some(Duration::ZERO)
    }
}

/// The air time taken in each sub-band of a region over the last hour.
#[derive(Debug)]
pub struct DutyCycle {
    region: Region,
    ledgers: Vec<Ledger>,
}

impl DutyCycle {
    pub fn new(region: Region) -> DutyCycle {
        let bands: &'static [SubBand] = match region {
            Region::Eu868 => EU868,
            Region::None => &[],
        };
        DutyCycle {
            region,
            ledgers: bands
                .iter()
                .map(|band| Ledger {
                    band,
                    slots: VecDeque::new(),
                    used: Duration::ZERO,
                })
                .collect(),
        }
    }

    pub fn region(&self) -> Region {
        self.region
    }

    /// Takes `airtime` on `frequency_hz` starting at `now`, or says why not:
    /// the frequency is outside the region's sub-bands, or its sub-band has not
    /// that much air time left in the last hour. A refusal takes nothing.
    pub fn try_take(
        &mut self,
        frequency_hz: u64,
        airtime: Duration,
        now: Instant,
    ) -> Result<(), DutyCycleRefusal> {
        if self.region == Region::None {
            return Ok(());
        }
        let Some(ledger) = self
            .ledgers
            .iter_mut()
            .find(|l| l.band.contains(frequency_hz))
        else {
            return Err(DutyCycleRefusal::OutsideSubBands { frequency_hz });
        };
        ledger.age(now);
        let left = ledger.band.budget().saturating_sub(ledger.used);
        if airtime > left {
            return Err(DutyCycleRefusal::NoAirTimeLeft {
                sub_band: ledger.band.name,
                per_mille: ledger.band.per_mille,
                left,
                needed: airtime,
                free_in: ledger.free_in(airtime, now),
            });
        }
        ledger.record(airtime, now);
        Ok(())
    }

    /// Each sub-band's limit, use and what is left at `now`, for the status page.
    /// Empty for [`Region::None`].
    pub fn budget(&self, now: Instant) -> Vec<SubBandBudget> {
        self.ledgers
            .iter()
            .map(|l| {
                let budget = l.band.budget();
                let used = l.used_at(now);
                SubBandBudget {
                    name: l.band.name.to_string(),
                    low_hz: l.band.low_hz,
                    high_hz: l.band.high_hz,
                    limit: percent(l.band.per_mille),
                    limit_per_mille: l.band.per_mille,
                    budget_secs: budget.as_secs_f64(),
                    used_secs: used.as_secs_f64(),
                    remaining_secs: budget.saturating_sub(used).as_secs_f64(),
                }
            })
            .collect()
    }

    /// Slots held over all sub-bands: what the memory bound is about.
    #[cfg(test)]
    fn slots_held(&self) -> usize {
        self.ledgers.iter().map(|l| l.slots.len()).sum()
    }
}

/// One sub-band on the status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubBandBudget {
    /// E.g. `868.0–868.6 MHz`.
    pub name: String,
    pub low_hz: u64,
    pub high_hz: u64,
    /// E.g. `1 %`.
    pub limit: String,
    pub limit_per_mille: u16,
    /// Air time allowed in an hour.
    pub budget_secs: f64,
    /// Air time taken in the last hour.
    pub used_secs: f64,
    pub remaining_secs: f64,
}

/// Why a transmission may not go out now. Its result is `rejected` with reason
/// [`DutyCycleRefusal::REASON`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DutyCycleRefusal {
    /// The region has no sub-band holding this frequency: sending there is not allowed.
    OutsideSubBands { frequency_hz: u64 },
    /// The sub-band has used its share of the last hour.
    NoAirTimeLeft {
        sub_band: &'static str,
        per_mille: u16,
        left: Duration,
        needed: Duration,
        /// When enough will be free; `None` if the transmission is longer than
        /// the sub-band's whole budget.
        free_in: Option<Duration>,
    },
}

impl DutyCycleRefusal {
    /// The `reason` of a rejected transmission.
    pub const REASON: &'static str = "duty_cycle";
}

impl fmt::Display for DutyCycleRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DutyCycleRefusal::OutsideSubBands { frequency_hz } => {
                let bands: Vec<&str> = EU868.iter().map(|b| b.name).collect();
                write!(
                    f,
                    "duty cycle: {} MHz is outside the EU868 sub-bands ({}); nothing may be sent there",
                    *frequency_hz as f64 / 1e6,
                    bands.join(", ")
                )
            }
            DutyCycleRefusal::NoAirTimeLeft {
                sub_band,
                per_mille,
                left,
                needed,
                free_in,
            } => {
                write!(
                    f,
                    "duty cycle: sub-band {sub_band} ({}) has {} of air time left in the last hour, \
                     this transmission needs {}",
                    percent(*per_mille),
                    air(*left),
                    air(*needed)
                )?;
                match free_in {
                    // Rounded up: retrying after that many seconds succeeds.
                    Some(d) => write!(f, "; enough is free in {} s", d.as_secs_f64().ceil()),
                    None => write!(f, "; that is more than the sub-band allows in an hour"),
                }
            }
        }
    }
}

impl std::error::Error for DutyCycleRefusal {}

/// A limit per mille as people write it: `0.1 %`, `1 %`, `10 %`.
fn percent(per_mille: u16) -> String {
    if per_mille.is_multiple_of(10) {
        format!("{} %", per_mille / 10)
    } else {
        format!("{}.{} %", per_mille / 10, per_mille % 10)
    }
}

/// An air time to a tenth of a millisecond below a second, to a millisecond above.
fn air(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
