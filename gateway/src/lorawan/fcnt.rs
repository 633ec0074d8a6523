//! The 32-bit uplink counter behind the 16 bits a frame carries (§4.3.1.5).
//!
//! The frame sends FCnt's low half; the receiver keeps the counter and takes
//! the nearest value above the last one it accepted with those low bits, as
//! long as it is no more than MAX_FCNT_GAP ahead ("too many data frames have
//! been lost"). A counter not above the last accepted is a replay.

/// MAX_FCNT_GAP of LoRaWAN 1.0.x (§4.3.1.5 and the default settings of §7).
pub const MAX_FCNT_GAP: u32 = 16_384;

/// Why a frame's counter was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CounterError {
    /// The same as the last accepted or behind it (nearer behind than ahead).
    Replay,
    /// This many ahead of the last accepted, more than the gap.
    TooFarAhead(u32),
}

/// The 32-bit counter of a frame that carries `fcnt16`, given the last one
/// accepted from the device: the nearest value above `last_seen` with those
/// low 16 bits, or None when that is more than `max_gap` ahead (a replay or an
/// old frame lands almost 65,536 ahead, so it is refused the same way). With
/// nothing seen yet the counter is taken as sent, its high half zero.
pub fn recover_fcnt(last_seen: Option<u32>, fcnt16: u16, max_gap: u32) -> Option<u32> {
    resolve(last_seen, fcnt16, max_gap).ok()
}

/// `recover_fcnt`, saying why when it refuses.
pub(super) fn resolve(
    last_seen: Option<u32>,
    fcnt16: u16,
    max_gap: u32,
) -> Result<u32, CounterError> {
    let Some(last) = last_seen else {
        return Ok(fcnt16 as u32);
    };
    let same_epoch = last & 0xffff_0000 | fcnt16 as u32;
    let next = if same_epoch > last {
        same_epoch
    } else {
        // The low half wrapped, or this is a counter already seen.
        same_epoch
            .checked_add(0x1_0000)
            .ok_or(CounterError::Replay)?
    };
    let ahead = next - last;
    if ahead <= max_gap {
        return Ok(next);
    }
    // Refused either way; a replay when the counter read backwards is nearer.
    match next.checked_sub(0x1_0000) {
        Some(previous) if last - previous < ahead => Err(CounterError::Replay),
        _ => Err(CounterError::TooFarAhead(ahead)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_is_taken_as_sent() {
        assert_eq!(recover_fcnt(None, 0, MAX_FCNT_GAP), Some(0));
        assert_eq!(recover_fcnt(None, 50_000, MAX_FCNT_GAP), Some(50_000));
    }

    #[test]
    fn the_next_frames_count_up_within_the_high_half() {
        assert_eq!(recover_fcnt(Some(0), 1, MAX_FCNT_GAP), Some(1));
        assert_eq!(
            recover_fcnt(Some(0x0003_1234), 0x1235, MAX_FCNT_GAP),
            Some(0x0003_1235)
        );
        // Lost frames in between are fine up to the gap.
        assert_eq!(
            recover_fcnt(Some(10), 10 + 16_384, MAX_FCNT_GAP),
            Some(16_394)
        );
    }

    #[test]
    fn the_low_half_wrapping_at_65536_carries_into_the_high_half() {
        assert_eq!(recover_fcnt(Some(0xffff), 0, MAX_FCNT_GAP), Some(0x1_0000));
        assert_eq!(recover_fcnt(Some(0xfff0), 5, MAX_FCNT_GAP), Some(0x1_0005));
        assert_eq!(
            recover_fcnt(Some(0x0004_fffe), 0xffff, MAX_FCNT_GAP),
            Some(0x0004_ffff)
        );
        assert_eq!(
            recover_fcnt(Some(0x0004_ffff), 3, MAX_FCNT_GAP),
            Some(0x0005_0003)
        );
    }

    #[test]
    fn the_same_or_an_older_counter_is_a_replay() {
        assert_eq!(resolve(Some(7), 7, MAX_FCNT_GAP), Err(CounterError::Replay));
        assert_eq!(resolve(Some(7), 6, MAX_FCNT_GAP), Err(CounterError::Replay));
        assert_eq!(
            resolve(Some(0x1_0000), 0xffff, MAX_FCNT_GAP),
            Err(CounterError::Replay)
        );
        assert_eq!(recover_fcnt(Some(0x0002_8000), 0x8000, MAX_FCNT_GAP), None);
        assert_eq!(recover_fcnt(Some(0), 0, MAX_FCNT_GAP), None);
    }

    #[test]
    fn a_counter_more_than_the_gap_ahead_is_refused() {
        assert_eq!(recover_fcnt(Some(10), 10 + 16_385, MAX_FCNT_GAP), None);
        assert_eq!(
            resolve(Some(0), 40_000, MAX_FCNT_GAP),
            Err(CounterError::TooFarAhead(40_000))
        );
        // Across the wrap too: 0xfff0 -> 0x1_4000 is 16,400 ahead.
        assert_eq!(
            resolve(Some(0xfff0), 0x4000, MAX_FCNT_GAP),
            Err(CounterError::TooFarAhead(16_400))
        );
        // A smaller gap, as a caller may choose.
        assert_eq!(recover_fcnt(Some(100), 111, 10), None);
        assert_eq!(recover_fcnt(Some(100), 110, 10), Some(110));
    }

    #[test]
    fn a_gap_as_large_as_the_low_half_takes_any_new_value() {
        // With a gap of 65,535 every low half but the last one's is accepted.
        assert_eq!(recover_fcnt(Some(0x1_0005), 0x0004, 0xffff), Some(0x2_0004));
        assert_eq!(recover_fcnt(Some(0x1_0005), 0x0005, 0xffff), None);
    }

    #[test]
    fn the_counter_does_not_wrap_past_32_bits() {
        assert_eq!(
            recover_fcnt(Some(u32::MAX - 1), 0xffff, MAX_FCNT_GAP),
            Some(u32::MAX)
        );
        assert_eq!(
            resolve(Some(u32::MAX), 0, MAX_FCNT_GAP),
            Err(CounterError::Replay)
        );
        assert_eq!(
            resolve(Some(u32::MAX), 0xffff, MAX_FCNT_GAP),
            Err(CounterError::Replay)
        );
    }
}
