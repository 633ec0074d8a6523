//! LoRa time on air, and (in `duty`) the regional duty-cycle budget it is charged to.
//! Plain data, no I/O: a transmitter asks here before it keys the radio.
//!
//! The time on air follows the Semtech SX127x datasheet (section 4.1.1.6) and the
//! LoRa Modem Designer's Guide (AN1200.13):
//!
//! ```text
//! Tsym      = 2^SF / BW
//! Tpreamble = (n_preamble + 4.25) · Tsym
//! n_payload = 8 + max(ceil((8·PL − 4·SF + 28 + 16·CRC − 20·IH) / (4·(SF − 2·DE))) · (CR + 4), 0)
//! Ttotal    = Tpreamble + n_payload · Tsym
//! ```
//!
//! RN2483 `radio set` and RAK3172 P2P take the same four numbers (SF, BW, CR,
//! preamble length, 8 by default on both), and Semtech packet forwarders write
//! the first two as `datr` (`SF7BW125`) and the coding rate as `codr` (`4/5`).
//! The SX126x in the RAK3172 counts SF7 to SF12 the same way; its SF5 and SF6 are
//! counted differently and are not covered here.
//!
//! The arithmetic is in integers: every SX127x bandwidth is 500 kHz divided by a
//! whole number, so a symbol lasts a whole number of nanoseconds and a result is
//! exact to the nanosecond, not rounded through floating point.

mod duty;

use std::time::Duration;

pub use duty::{DutyCycle, DutyCycleRefusal, Region, SubBandBudget};

/// Bandwidths an SX127x offers, as its datasheet names them (Hz), with the
/// divisor of 500 kHz that is the real bandwidth: "7.8 kHz" is 500/64 = 7.8125 kHz.
const BANDWIDTHS: [(u32, u32, &str); 10] = [
    (7_800, 64, "7.8"),
    (10_400, 48, "10.4"),
    (15_600, 32, "15.6"),
    (20_800, 24, "20.8"),
    (31_250, 16, "31.25"),
    (41_700, 12, "41.7"),
    (62_500, 8, "62.5"),
    (125_000, 4, "125"),
    (250_000, 2, "250"),
    (500_000, 1, "500"),
];

/// Above this symbol time the datasheet mandates the low data rate optimisation.
const LOW_DATA_RATE_SYMBOL: Duration = Duration::from_millis(16);

/// The modem settings a packet's time on air depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraParams {
    /// 6 to 12. SF6 works only with an implicit header.
    pub spreading_factor: u8,
    /// One of the SX127x bandwidths in Hz as the datasheet names them: 7_800,
    /// 10_400, 15_600, 20_800, 31_250, 41_700, 62_500, 125_000, 250_000, 500_000.
    pub bandwidth_hz: u32,
    /// 1 to 4, meaning 4/5 to 4/8.
    pub coding_rate: u8,
    /// Programmed preamble length; the radio adds 4.25 symbols of sync word and
    /// start-of-frame. 8 on LoRaWAN, the RN2483 and the RAK3172.
    pub preamble_symbols: u16,
    /// The low-level header giving length, coding rate and CRC presence.
    pub explicit_header: bool,
    /// A 16-bit payload CRC follows the payload.
    pub crc: bool,
    /// `None`: on when a symbol lasts more than 16 ms (SF11 and SF12 at 125 kHz,
    /// SF12 at 250 kHz), as the datasheet asks and LoRaWAN does.
    pub low_data_rate_optimize: Option<bool>,
}

impl LoraParams {
    /// The given spreading factor, bandwidth and coding rate (1 = 4/5) with the
    /// LoRaWAN framing: 8-symbol preamble, explicit header, CRC on, automatic
    /// low data rate optimisation.
    pub const fn new(spreading_factor: u8, bandwidth_hz: u32, coding_rate: u8) -> LoraParams {
        LoraParams {
            spreading_factor,
            bandwidth_hz,
            coding_rate,
            preamble_symbols: 8,
            explicit_header: true,
            crc: true,
            low_data_rate_optimize: None,
        }
    }

    /// How long a packet with `payload_len` bytes of payload keeps the channel,
    /// preamble to CRC. Exact for valid settings; for settings that fail
    /// [`LoraParams::validate`] it is some duration, never a panic.
    pub fn time_on_air(&self, payload_len: usize) -> Duration {
        let (num, den) = self.bandwidth_fraction();
        let sf = i128::from(self.spreading_factor.min(12));
        let pl = i128::try_from(payload_len).unwrap_or(i128::MAX >> 8);
        let crc = i128::from(self.crc);
        let ih = i128::from(!self.explicit_header);
        let de = i128::from(self.low_data_rate_on());
        let cr = i128::from(self.coding_rate);

        let bits = 8 * pl - 4 * sf + 28 + 16 * crc - 20 * ih;
        let per_block = (4 * (sf - 2 * de)).max(1);
        let blocks = div_ceil(bits, per_block).max(0);
        let payload_symbols = 8 + blocks * (cr + 4);

        // In quarter symbols, so that the preamble's 4.25 stays whole.
        let quarters = 4 * i128::from(self.preamble_symbols) + 17 + 4 * payload_symbols;
        // Tsym = 2^SF / (num / den) s, so quarters · Tsym = quarters · 2^SF · den / num.
        let ns = div_ceil(quarters * (1i128 << sf) * den * 1_000_000_000, 4 * num);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// One symbol's duration.
    pub fn symbol_time(&self) -> Duration {
        let (num, den) = self.bandwidth_fraction();
        let sf = i128::from(self.spreading_factor.min(12));
        let ns = div_ceil((1i128 << sf) * den * 1_000_000_000, num);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Whether the low data rate optimisation is on, set or chosen.
    pub fn low_data_rate_on(&self) -> bool {
        self.low_data_rate_optimize
            .unwrap_or_else(|| self.symbol_time() > LOW_DATA_RATE_SYMBOL)
    }

    /// Problems as (field, message), e.g. `("coding_rate", "must be 1 (4/5) to 4
    /// (4/8), got 5")`. Empty when the settings are usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(6..=12).contains(&self.spreading_factor) {
            problems.push((
                "spreading_factor".to_string(),
                format!("must be 6 to 12, got {}", self.spreading_factor),
            ));
        }
        if !BANDWIDTHS.iter().any(|b| b.0 == self.bandwidth_hz) {
            let allowed: Vec<String> = BANDWIDTHS.iter().map(|b| b.0.to_string()).collect();
            problems.push((
                "bandwidth_hz".to_string(),
                format!(
                    "must be one of {}, got {}",
                    allowed.join(", "),
                    self.bandwidth_hz
                ),
            ));
        }
        if !(1..=4).contains(&self.coding_rate) {
            problems.push((
                "coding_rate".to_string(),
                format!("must be 1 (4/5) to 4 (4/8), got {}", self.coding_rate),
            ));
        }
        if self.spreading_factor == 6 && self.explicit_header {
            problems.push((
                "explicit_header".to_string(),
                "must be false with spreading factor 6 (the radio has no explicit header there)"
                    .to_string(),
            ));
        }
        problems
    }

    /// The real bandwidth as a fraction num/den of hertz. A bandwidth the radio
    /// does not have is taken as it is written, at least 1 Hz.
    fn bandwidth_fraction(&self) -> (i128, i128) {
        match BANDWIDTHS.iter().find(|b| b.0 == self.bandwidth_hz) {
            Some(&(_, divisor, _)) => (500_000, i128::from(divisor)),
            None => (i128::from(self.bandwidth_hz.max(1)), 1),
        }
    }
}

/// A packet forwarder's `datr` for LoRa, e.g. `SF7BW125`, as (spreading factor,
/// bandwidth in Hz): `(7, 125_000)`. `None` for FSK rates and for spreading
/// factors or bandwidths an SX127x does not have.
pub fn parse_datarate(s: &str) -> Option<(u8, u32)> {
    let upper = s.to_ascii_uppercase();
    let (sf, bw) = upper.strip_prefix("SF")?.split_once("BW")?;
    if !sf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sf: u8 = sf.parse().ok().filter(|sf| (6..=12).contains(sf))?;
    let bw = BANDWIDTHS.iter().find(|b| b.2 == bw)?.0;
    Some((sf, bw))
}

/// A coding rate as packet forwarders (`codr`) and the RN2483 (`radio set cr`)
/// write it, `4/5` to `4/8`, as 1 to 4.
pub fn parse_coding_rate(s: &str) -> Option<u8> {
    match s {
        "4/5" => Some(1),
        "4/6" => Some(2),
        "4/7" => Some(3),
        "4/8" => Some(4),
        _ => None,
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests;
