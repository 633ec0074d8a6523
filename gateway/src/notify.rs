//! Telling systemd how the service is doing (the sd_notify protocol): `READY=1` once
//! the sources and outputs are started, a `STATUS=` line, `WATCHDOG=1` every half of
//! the watchdog timeout, `STOPPING=1` at shutdown. Each message is one datagram of
//! `KEY=value` lines sent to the Unix socket named by `NOTIFY_SOCKET`: a path, or an
//! abstract name written with a leading `@`. Without `NOTIFY_SOCKET` (not started by
//! systemd) every call does nothing.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::config::GatewayConfig;

/// A socket to the service manager, or nothing when there is none.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    warned: AtomicBool,
}

impl Notifier {
    /// The socket named by `NOTIFY_SOCKET`.
    pub fn from_env() -> Notifier {
        Notifier::new(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// The socket named `notify_socket` (`/path` or `@abstract-name`); a notifier
    /// that does nothing for `None`, or (with a warning) for a name it cannot use.
    pub fn new(notify_socket: Option<&OsStr>) -> Notifier {
        let target = notify_socket.and_then(|name| match open(name) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET={name:?} cannot be used: {e}");
                None
            }
        });
        Notifier {
            target,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether messages go anywhere.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=value` lines) as one datagram. Never
    /// blocks: a full socket is an error. Without a socket: `Ok` and nothing sent.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let Some((socket, addr)) = &self.target else {
            return Ok(());
        };
        let sent = socket.send_to_addr(state.as_bytes(), addr)?;
        if sent == state.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "datagram cut short",
            ))
        }
    }

    /// `send`, with the first failure logged (later ones would repeat it).
    fn send_or_warn(&self, state: &str) {
        if let Err(e) = self.send(state) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("cannot notify the service manager: {e}");
            }
        }
    }
}

fn open(name: &OsStr) -> io::Result<(UnixDatagram, SocketAddr)> {
    let bytes = name.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => abstract_addr(&bytes[1..])?,
        Some(b'/') => SocketAddr::from_pathname(name)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor an @abstract name",
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

/// How often to ping: half the watchdog timeout `WATCHDOG_USEC` (microseconds),
/// when it is set, non-zero, and meant for this process (`WATCHDOG_PID` absent or
/// equal to `own_pid`).
pub fn watchdog_period(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.to_str()?.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

/// The service's conversation with systemd over its life: ready, pinging, stopping.
#[derive(Debug)]
pub struct Service {
    notifier: Arc<Notifier>,
    watchdog: Option<Duration>,
    pinger: Option<JoinHandle<()>>,
}

impl Service {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Service {
        let watchdog = watchdog_period(
            std::env::var_os("WATCHDOG_USEC").as_deref(),
            std::env::var_os("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Service::new(Notifier::from_env(), watchdog)
    }

    /// Pings every `watchdog` once ready, when given.
    pub fn new(notifier: Notifier, watchdog: Option<Duration>) -> Service {
        Service {
            notifier: Arc::new(notifier),
            watchdog,
            pinger: None,
        }
    }

    /// `READY=1` with `status`, then the watchdog pings (on the tokio runtime, so a
    /// runtime that stops making progress stops them too).
    pub fn ready(&mut self, status: &str) {
        self.notifier
            .send_or_warn(&format!("READY=1\nSTATUS={}", one_line(status)));
        if let (Some(period), None, true) = (self.watchdog, &self.pinger, self.notifier.is_active())
        {
            let notifier = Arc::clone(&self.notifier);
            self.pinger = Some(tokio::spawn(async move {
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    notifier.send_or_warn("WATCHDOG=1");
                }
            }));
        }
    }

    /// A new `STATUS=` line.
    pub fn status(&self, status: &str) {
        self.notifier
            .send_or_warn(&format!("STATUS={}", one_line(status)));
    }

    /// `RELOADING=1` (with the monotonic time systemd asks for), before a reload.
    pub fn reloading(&self) {
        self.notifier.send_or_warn(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }

    /// `READY=1` again after a reload, with the new status line.
    pub fn reloaded(&self, status: &str) {
        self.notifier
            .send_or_warn(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Stops the pings, then sends `STOPPING=1`.
    pub async fn stopping(&mut self) {
        if let Some(pinger) = self.pinger.take() {
            pinger.abort();
            let _ = pinger.await;
        }
        self.notifier.send_or_warn("STOPPING=1\nSTATUS=stopping");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(pinger) = self.pinger.take() {
            pinger.abort();
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` wants it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// A status must stay on one line: each line of a message is its own `KEY=value`.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// The `STATUS=` summary once running: the gateway id, the number of sources, where
/// the embedded broker listens (`embedded_broker`, when it runs) and which upstream
/// broker is used.
pub fn ready_status(
    config: &GatewayConfig,
    embedded_broker: Option<std::net::SocketAddr>,
) -> String {
    let sources = config.sources.len();
    let mut status = format!(
        "gateway {}: {sources} source{}",
        config.gateway.id,
        if sources == 1 { "" } else { "s" }
    );
    if let Some(addr) = embedded_broker {
        status.push_str(&format!(", embedded broker on {addr}"));
    }
    if let Some(upstream) = &config.upstream {
        status.push_str(&format!(", upstream {}", upstream.url));
    }
    status
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    /// A socket standing in for systemd's, bound at a fresh path; removed when dropped.
    struct Manager {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl Manager {
        fn bind() -> Manager {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "mqgate-notify-{}-{}.sock",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&path);
            let socket = UnixDatagram::bind(&path).expect("bind the manager's socket");
            Manager { socket, path }
        }

        fn notifier(&self) -> Notifier {
            let notifier = Notifier::new(Some(self.path.as_os_str()));
            assert!(notifier.is_active());
            notifier
        }
    }

    impl Drop for Manager {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The next datagram on `socket`, or `None` after `timeout`.
    fn next(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
        socket
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        match socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("receive: {e}"),
        }
    }

    #[tokio::test]
    async fn ready_arrives_with_its_status_on_the_socket_named_by_the_path() {
        let manager = Manager::bind();
        let mut service = Service::new(manager.notifier(), None);
        service.ready("gateway gw: 2 sources\nsecond line");
        assert_eq!(
            next(&manager.socket, WAIT).as_deref(),
            Some("READY=1\nSTATUS=gateway gw: 2 sources second line")
        );
        service.status("draining");
        assert_eq!(
            next(&manager.socket, WAIT).as_deref(),
            Some("STATUS=draining")
        );
        service.stopping().await;
        assert_eq!(
            next(&manager.socket, WAIT).as_deref(),
            Some("STOPPING=1\nSTATUS=stopping")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchdog_pings_come_every_half_of_watchdog_usec_and_end_at_stopping() {
        let manager = Manager::bind();
        let own = std::process::id().to_string();
        let period = watchdog_period(
            Some(OsStr::new("200000")),
            Some(OsStr::new(&own)),
            std::process::id(),
        )
        .expect("a watchdog for this process");
        assert_eq!(period, Duration::from_millis(100));
        let mut service = Service::new(manager.notifier(), Some(period));
        // Nothing before READY: the watchdog runs once start-up is complete.
        assert_eq!(next(&manager.socket, Duration::from_millis(300)), None);
        service.ready("up");
        assert_eq!(
            next(&manager.socket, WAIT).as_deref(),
            Some("READY=1\nSTATUS=up")
        );
        let mut times = Vec::new();
        while times.len() < 5 {
            assert_eq!(next(&manager.socket, WAIT).as_deref(), Some("WATCHDOG=1"));
            times.push(Instant::now());
        }
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // Never faster than the period (a little slack for the receiving side).
            assert!(gap >= period - Duration::from_millis(20), "gap {gap:?}");
        }
        let span = times[4] - times[0];
        assert!(span < period * 4 * 5, "4 periods took {span:?}");
        service.stopping().await;
        // Pings sent before `stopping` may still be queued; STOPPING=1 comes last.
        loop {
            match next(&manager.socket, WAIT).as_deref() {
                Some("WATCHDOG=1") => {}
                Some(other) => {
                    assert_eq!(other, "STOPPING=1\nSTATUS=stopping");
                    break;
                }
                None => panic!("no STOPPING=1"),
            }
        }
        assert_eq!(
            next(&manager.socket, period * 3),
            None,
            "a ping after STOPPING=1"
        );
    }

    #[tokio::test]
    async fn without_notify_socket_nothing_is_sent_and_nothing_pings() {
        let notifier = Notifier::new(None);
        assert!(!notifier.is_active());
        assert!(notifier.send("READY=1").is_ok());
        let mut service = Service::new(notifier, Some(Duration::from_millis(10)));
        service.ready("up");
        assert!(service.pinger.is_none(), "a pinger without a socket");
        service.stopping().await;
    }

    #[tokio::test]
    async fn an_abstract_socket_name_written_with_at_is_reached() {
        let name = format!("mqgate-notify-test-{}", std::process::id());
        let addr = abstract_addr(name.as_bytes()).expect("an abstract address");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
        let notifier = Notifier::new(Some(OsStr::new(&format!("@{name}"))));
        assert!(notifier.is_active());
        Service::new(notifier, None).ready("abstract");
        assert_eq!(
            next(&socket, WAIT).as_deref(),
            Some("READY=1\nSTATUS=abstract")
        );
    }

    #[test]
    fn a_socket_name_that_is_neither_a_path_nor_abstract_is_not_used() {
        for name in ["", "relative/notify", "vsock:2:1234"] {
            assert!(
                !Notifier::new(Some(OsStr::new(name))).is_active(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn the_watchdog_period_is_half_the_timeout_meant_for_this_process() {
        let os = |s: &'static str| Some(OsStr::new(s));
        let cases: [(Option<&OsStr>, Option<&OsStr>, Option<Duration>); 7] = [
            (os("30000000"), None, Some(Duration::from_secs(15))),
            (os("30000000"), os("4242"), Some(Duration::from_secs(15))),
            (os("30000000"), os("4243"), None),
            (os("0"), None, None),
            (os("soon"), None, None),
            (None, os("4242"), None),
            (None, None, None),
        ];
        for (usec, pid, expected) in cases {
            assert_eq!(
                watchdog_period(usec, pid, 4242),
                expected,
                "{usec:?} {pid:?}"
            );
        }
    }
}
