//! CPU time, for tests that check that something idle stays idle.

/// CPU time (user + system) this process has used so far, in seconds. It counts
/// every thread, the test harness's other tests too: measure in a test binary
/// whose tests run one at a time.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills one rusage struct through a valid pointer.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(
            libc::getrusage(libc::RUSAGE_SELF, &mut usage),
            0,
            "getrusage"
        );
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
