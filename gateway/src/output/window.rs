//! How many messages the upstream output keeps in flight, and when to send fewer.
//!
//! MQTT 3.1.1 gives a client no way to learn how many unacknowledged messages a
//! broker accepts from it: aedes closes the connection past 1,000 QoS 2 messages
//! awaiting PUBREL, EMQX refuses more than 100 (`max_awaiting_rel`). The window
//! starts at `upstream.max_inflight`. A connection that the broker closes while
//! many messages are in flight, followed by a connect that the broker accepts at
//! once, is a cut-off: the broker is up and chose to drop us. Two cut-offs in a
//! row halve the window, down to a floor; it stays there until the gateway starts
//! again. A broker that goes away (a restart, a network outage) refuses the next
//! connect, so it does not count.

use super::client::ClientError;

/// The window is never halved below this (or below `max_inflight` if smaller).
const FLOOR: usize = 16;
/// Cut-offs in a row that halve the window.
const CUTOFFS_TO_HALVE: u32 = 2;

/// The in-flight window and what the last connections told about the broker.
#[derive(Debug, Clone)]
pub(super) struct Window {
    configured: usize,
    current: usize,
    /// Cut-offs in a row since the window last changed.
    streak: u32,
    /// The last connection ended the way a cut-off does; the next connect decides.
    suspect: bool,
}

/// The window was halved: from, to, after how many messages in flight were cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Halved {
    pub(super) from: usize,
    pub(super) to: usize,
}

impl Window {
    pub(super) fn new(max_inflight: usize) -> Window {
        let configured = max_inflight.max(1);
        Window {
            configured,
            current: configured,
            streak: 0,
            suspect: false,
        }
    }

    /// Messages that may be in flight now.
    pub(super) fn size(&self) -> usize {
        self.current
    }

    fn floor(&self) -> usize {
        FLOOR.min(self.configured)
    }

    /// A connection ended with `error` while `in_flight` messages awaited their
    /// acknowledgement. Only the server closing the connection on a full window
    /// looks like a limit; a keep-alive timeout or a protocol error does not.
    pub(super) fn lost(&mut self, error: &ClientError, in_flight: usize) {
        // "Right after a burst": at least half the window was out.
        let burst = in_flight > self.floor() && in_flight * 2 >= self.current;
        self.suspect = closed_by_server(error) && burst;
        if !self.suspect {
            self.streak = 0;
        }
    }

    /// The last connection ended the way a cut-off does (the next connect decides).
    pub(super) fn suspects_cutoff(&self) -> bool {
        self.suspect
    }

    /// A connect attempt failed: the broker was away, so the connection before was
    /// not cut by a broker that is up.
    pub(super) fn connect_failed(&mut self) {
        self.suspect = false;
    }

    /// The broker accepted a connect. Returns whether this proved a cut-off, and the
    /// new window when it was halved.
    pub(super) fn connected(&mut self) -> (bool, Option<Halved>) {
        if !std::mem::take(&mut self.suspect) {
            return (false, None);
        }
        self.streak += 1;
        if self.streak < CUTOFFS_TO_HALVE || self.current <= self.floor() {
            return (true, None);
        }
        self.streak = 0;
        let from = self.current;
        self.current = (self.current / 2).max(self.floor());
        (
            true,
            Some(Halved {
                from,
                to: self.current,
            }),
        )
    }
}

/// The server closed the connection (an end of stream or a reset), rather than the
/// network going silent or the server breaking the protocol.
pub(super) fn closed_by_server(error: &ClientError) -> bool {
    matches!(error, ClientError::Closed)
        || matches!(error, ClientError::Io(e) if matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(w: &mut Window, in_flight: usize) -> (bool, Option<Halved>) {
        w.lost(&ClientError::Closed, in_flight);
        w.connected()
    }

    #[test]
    fn two_cutoffs_in_a_row_halve_the_window_down_to_the_floor() {
        let mut w = Window::new(1024);
        assert_eq!(cut(&mut w, 1000), (true, None));
        assert_eq!(
            cut(&mut w, 1000),
            (
                true,
                Some(Halved {
                    from: 1024,
                    to: 512
                })
            )
        );
        assert_eq!(w.size(), 512);
        let mut sizes = vec![];
        for _ in 0..20 {
            let full = w.size();
            cut(&mut w, full);
            sizes.push(w.size());
        }
        assert_eq!(sizes[..7], [512, 256, 256, 128, 128, 64, 64]);
        assert_eq!(*sizes.last().unwrap(), FLOOR, "never below the floor");
    }

    #[test]
    fn a_broker_that_was_away_at_the_next_connect_did_not_cut_us_off() {
        let mut w = Window::new(100);
        for _ in 0..5 {
            w.lost(&ClientError::Closed, 100);
            w.connect_failed();
            assert_eq!(w.connected(), (false, None));
        }
        assert_eq!(w.size(), 100);
    }

    #[test]
    fn losing_the_connection_with_little_in_flight_or_on_a_timeout_is_no_cutoff() {
        let mut w = Window::new(100);
        assert_eq!(cut(&mut w, 49), (false, None), "less than half the window");
        assert_eq!(cut(&mut w, 10), (false, None));
        w.lost(
            &ClientError::KeepAliveTimeout(std::time::Duration::from_secs(2)),
            100,
        );
        assert_eq!(w.connected(), (false, None));
        assert_eq!(w.size(), 100);
    }

    #[test]
    fn an_ordinary_loss_between_two_cutoffs_breaks_the_streak() {
        let mut w = Window::new(100);
        assert_eq!(cut(&mut w, 100), (true, None));
        assert_eq!(cut(&mut w, 3), (false, None));
        assert_eq!(cut(&mut w, 100), (true, None));
        assert_eq!(w.size(), 100);
        assert!(cut(&mut w, 100).1.is_some());
        assert_eq!(w.size(), 50);
    }

    #[test]
    fn a_window_at_or_below_the_floor_is_never_halved() {
        let mut w = Window::new(8);
        for _ in 0..6 {
            cut(&mut w, 8);
        }
        assert_eq!(w.size(), 8);
    }
}
