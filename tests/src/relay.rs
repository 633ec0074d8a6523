//! A TCP relay on 127.0.0.1 that a test can stall, resume and cut, standing in for
//! a network between a client and a broker.
//!
//! Each accepted connection gets a connection to the target and two pump threads,
//! one per direction. A pump reads with a short timeout so that it sees `stall`,
//! `cut` and drop quickly. While stalled, the pumps read nothing: the sockets stay
//! open, the bytes wait in the kernel's buffers, and only a keep-alive timeout can
//! tell the peers that something is wrong. `resume` forwards what waited (as TCP
//! delivers late segments after a network comes back); `cut` then `resume` drops it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a pump or the listener looks at the control flags.
const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    accepted: AtomicU64,
}

#[derive(Debug)]
struct Control {
    stalled: AtomicBool,
    /// Pumps between a look at `stalled` and the end of forwarding what they read.
    forwarding: AtomicUsize,
    stopping: AtomicBool,
    counters: Counters,
    /// Both sockets of every open connection, by connection number.
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    /// Signalled whenever a connection is accepted or closed.
    changed: Condvar,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Control {
    fn open(&self) -> std::sync::MutexGuard<'_, Vec<(u64, TcpStream, TcpStream)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A relay from `127.0.0.1:port()` to `127.0.0.1:target`; stops and closes every
/// connection when dropped.
#[derive(Debug)]
pub struct Relay {
    port: u16,
    target: u16,
    control: Arc<Control>,
    listener: Option<JoinHandle<()>>,
}

/// Byte counts of a relay, per direction, and the connections it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayCounts {
    /// Bytes forwarded from clients to the target.
    pub up: u64,
    /// Bytes forwarded from the target to clients.
    pub down: u64,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections open now.
    pub open: usize,
}

impl Relay {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:target`.
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay on 127.0.0.1:0");
        let port = listener.local_addr().expect("relay address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking relay listener");
        let control = Arc::new(Control {
            stalled: AtomicBool::new(false),
            forwarding: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            open: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            pumps: Mutex::new(Vec::new()),
        });
        let c = control.clone();
        let listener = std::thread::spawn(move || accept_loop(&listener, target, &c));
        Relay {
            port,
            target,
            control,
            listener: Some(listener),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port it forwards to.
    pub fn target(&self) -> u16 {
        self.target
    }

    /// Stops forwarding in both directions; sockets stay open. New connections are
    /// accepted and connected to the target, but nothing crosses until `resume`.
    /// Returns once no pump is forwarding any more (what it was forwarding is
    /// already counted).
    pub fn stall(&self) {
        self.control.stalled.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.control.forwarding.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "relay: a pump is still forwarding 5 s after stall()"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Forwards again, starting with what waited while stalled.
    pub fn resume(&self) {
        self.control.stalled.store(false, Ordering::SeqCst);
    }

    pub fn is_stalled(&self) -> bool {
        self.control.stalled.load(Ordering::SeqCst)
    }

    /// Closes every current connection (both sides see the end of the stream);
    /// new connections are still accepted. Returns how many were closed.
    pub fn cut(&self) -> usize {
        let closed: Vec<_> = self.control.open().drain(..).collect();
        for (_, client, server) in &closed {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        self.control.changed.notify_all();
        closed.len()
    }

    /// Bytes forwarded so far and connections.
    pub fn counts(&self) -> RelayCounts {
        let c = &self.control.counters;
        RelayCounts {
            up: c.up.load(Ordering::SeqCst),
            down: c.down.load(Ordering::SeqCst),
            accepted: c.accepted.load(Ordering::SeqCst),
            open: self.control.open().len(),
        }
    }

    /// Waits until the counts satisfy `done`; panics after `timeout` naming `what`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&RelayCounts) -> bool,
    ) -> RelayCounts {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts();
            if done(&counts) {
                return counts;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "relay :{} -> :{}: timed out after {timeout:?} waiting for {what}; counts {counts:?}",
                self.port,
                self.target
            );
            // Byte counts change without a signal: wake up at least every tick.
            let guard = self.control.open();
            let wait = (deadline - now).min(TICK * 5);
            let _ = self.control.changed.wait_timeout(guard, wait);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.control.stopping.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(l) = self.listener.take() {
            let _ = l.join();
        }
        let pumps: Vec<_> = self
            .control
            .pumps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, target: u16, control: &Arc<Control>) {
    let mut next_id = 0u64;
    while !control.stopping.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        control.counters.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
            // Nothing listens on the target: the client sees its connection closed.
            let _ = client.shutdown(Shutdown::Both);
            control.changed.notify_all();
            continue;
        };
        next_id += 1;
        if let Err(e) = start_pumps(next_id, client, server, control) {
            eprintln!("relay: cannot set up a connection: {e}");
        }
        control.changed.notify_all();
    }
}

fn start_pumps(
    id: u64,
    client: TcpStream,
    server: TcpStream,
    control: &Arc<Control>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    control
        .open()
        .push((id, client.try_clone()?, server.try_clone()?));
    let (c_read, s_write) = (client.try_clone()?, server.try_clone()?);
    let up = {
        let control = control.clone();
        std::thread::spawn(move || pump(id, c_read, s_write, &control, true))
    };
    let down = {
        let control = control.clone();
        std::thread::spawn(move || pump(id, server, client, &control, false))
    };
    let mut pumps = control.pumps.lock().unwrap_or_else(|p| p.into_inner());
    pumps.retain(|p| !p.is_finished());
    pumps.push(up);
    pumps.push(down);
    Ok(())
}

/// Copies `from` to `to` until either ends, the relay cuts or stops.
fn pump(id: u64, mut from: TcpStream, mut to: TcpStream, control: &Control, upward: bool) {
    let counter = if upward {
        &control.counters.up
    } else {
        &control.counters.down
    };
    let is_open = || control.open().iter().any(|(i, _, _)| *i == id);
    if from.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if control.stopping.load(Ordering::SeqCst) || !is_open() {
            break;
        }
        if control.stalled.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        // Announce, then look again: `stall` either sees this pump forwarding and
        // waits for it, or this pump sees the stall.
        control.forwarding.fetch_add(1, Ordering::SeqCst);
        let go_on = if control.stalled.load(Ordering::SeqCst) {
            true
        } else {
            forward_once(&mut from, &mut to, &mut buf, counter)
        };
        control.forwarding.fetch_sub(1, Ordering::SeqCst);
        if !go_on {
            break;
        }
    }
    // Either direction ending closes the connection.
    let mut open = control.open();
    if let Some(i) = open.iter().position(|(i, _, _)| *i == id) {
        let (_, c, s) = open.remove(i);
        let _ = c.shutdown(Shutdown::Both);
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(open);
    control.changed.notify_all();
}

/// Reads what is there (waiting at most a tick) and forwards it; `false` when the
/// connection is over.
fn forward_once(
    from: &mut TcpStream,
    to: &mut TcpStream,
    buf: &mut [u8],
    counter: &AtomicU64,
) -> bool {
    match from.read(buf) {
        Ok(0) => {
            // One side finished: pass the end on, and let the other pump see it.
            let _ = to.shutdown(Shutdown::Write);
            false
        }
        Ok(n) => {
            counter.fetch_add(n as u64, Ordering::SeqCst);
            to.write_all(&buf[..n]).is_ok()
        }
        Err(e) => matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
        ),
    }
}
