//! A subscriber with a persistent session that records the sequence number in every
//! payload (`{"seq": 123, ...}`) and survives broker restarts, for counting what was
//! lost or duplicated.
//!
//! It speaks MQTT 3.1.1 itself (broker-lite's codec over a std socket) so that its
//! own session cannot lose or double a message: it connects with
//! `clean_session = false`, records a message before acknowledging it, and keeps the
//! packet ids of QoS 2 messages it has answered with PUBREC until their PUBREL, across
//! reconnects (the receiver's side of QoS 2, [MQTT-4.3.3-2]): a PUBLISH resent with
//! such an id is answered again but not counted twice. It reconnects by itself and
//! subscribes again only when the broker has lost its session.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_proto::codec::{
    encode, read_packet, ConnAck, Connect, ConnectReturnCode, Packet, Publish, QoS, Subscribe,
    SubscribeReturnCode, PROTOCOL_LEVEL_311,
};

/// How often the connection thread looks at its flags and the keep-alive clock.
const TICK: Duration = Duration::from_millis(20);
/// The longest a subscriber lives: its loop ends after this even if never dropped.
const LIFETIME: Duration = Duration::from_secs(1800);
/// Sequence numbers above this are counted as bad payloads (they would be indexes).
const MAX_SEQ: u64 = 50_000_000;

/// How to connect and what to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqOptions {
    pub client_id: String,
    pub filter: String,
    /// QoS of the subscription: 1 or 2.
    pub qos: u8,
    /// The payload's JSON field holding the sequence number.
    pub field: String,
    pub keep_alive_secs: u16,
    /// Pause between a lost connection and the next attempt.
    pub reconnect_delay: Duration,
}

impl SeqOptions {
    /// QoS 2, field `seq`, keep-alive 5 s, reconnect after 100 ms.
    pub fn new(client_id: &str, filter: &str) -> SeqOptions {
        SeqOptions {
            client_id: client_id.to_string(),
            filter: filter.to_string(),
            qos: 2,
            field: "seq".to_string(),
            keep_alive_secs: 5,
            reconnect_delay: Duration::from_millis(100),
        }
    }
}

/// What the subscriber has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqStats {
    /// Times each sequence number arrived, indexed by the number.
    pub seen: Vec<u32>,
    /// Sequence numbers in the order they arrived (duplicates included).
    pub arrivals: Vec<u64>,
    /// Distinct sequence numbers.
    pub unique: u64,
    /// Every number below this arrived (kept up to date, so waiting on it is cheap).
    pub contiguous: u64,
    /// Arrivals of a number already seen.
    pub duplicates: u64,
    /// Those of `duplicates` that came with the DUP flag set: the broker resending a
    /// message it had sent before (e.g. after losing its acknowledgement in a
    /// restart), not a second message from the publisher.
    pub resent_duplicates: u64,
    /// Arrivals of a new number below the highest seen before it.
    pub out_of_order: u64,
    /// QoS 2 PUBLISHes resent with a packet id still awaiting PUBREL: answered, not
    /// counted (the protocol's own duplicate suppression).
    pub redeliveries: u64,
    /// Payloads without a usable sequence number.
    pub bad_payloads: u64,
    /// The highest fence seen: a payload `{"fence": k}` (see `feeder::fence`), which
    /// is counted here and nowhere else.
    pub fence: u64,
    /// Messages by the QoS they arrived with.
    pub by_qos: [u64; 3],
    /// Successful connections (CONNACK accepted).
    pub connects: u64,
    /// Reconnections where the broker still had the session.
    pub sessions_resumed: u64,
    /// Reconnections where the broker had lost the session (subscribed again).
    pub sessions_lost: u64,
    pub connected: bool,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
    /// When the last message arrived.
    pub last_message_at: Option<Instant>,
}

impl SeqStats {
    /// The highest sequence number seen.
    pub fn max(&self) -> Option<u64> {
        self.seen.iter().rposition(|&c| c > 0).map(|i| i as u64)
    }

    /// Duplicates that came without the DUP flag: a message published twice
    /// upstream of the broker. At QoS 2 this must be 0 even across broker crashes.
    pub fn fresh_duplicates(&self) -> u64 {
        self.duplicates - self.resent_duplicates
    }

    /// Times `seq` arrived.
    pub fn count_of(&self, seq: u64) -> u32 {
        usize::try_from(seq)
            .ok()
            .and_then(|i| self.seen.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Numbers of `range` that never arrived.
    pub fn missing(&self, range: std::ops::Range<u64>) -> Vec<u64> {
        range.filter(|&s| self.count_of(s) == 0).collect()
    }

    /// The numbers of `range` that never arrived, as runs of consecutive numbers
    /// (e.g. the one run a drop-oldest eviction leaves).
    pub fn missing_runs(&self, range: std::ops::Range<u64>) -> Vec<std::ops::Range<u64>> {
        let mut runs: Vec<std::ops::Range<u64>> = Vec::new();
        for s in self.missing(range) {
            match runs.last_mut() {
                Some(last) if last.end == s => last.end = s + 1,
                _ => runs.push(s..s + 1),
            }
        }
        runs
    }

    /// Whether every number of `range` arrived at least once.
    pub fn has_all(&self, range: std::ops::Range<u64>) -> bool {
        (range.start.max(self.contiguous)..range.end).all(|s| self.count_of(s) > 0)
    }

    /// Numbers that arrived more than once, with their counts.
    pub fn duplicated(&self) -> Vec<(u64, u32)> {
        (0u64..)
            .zip(&self.seen)
            .filter(|(_, &c)| c > 1)
            .map(|(s, &c)| (s, c))
            .collect()
    }

    /// A short line for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "unique {} max {:?} duplicates {} (resent {}) out-of-order {} redeliveries {} bad {} \
             by-qos {:?} connects {} resumed {} lost {} connected {} last error {:?}",
            self.unique,
            self.max(),
            self.duplicates,
            self.resent_duplicates,
            self.out_of_order,
            self.redeliveries,
            self.bad_payloads,
            self.by_qos,
            self.connects,
            self.sessions_resumed,
            self.sessions_lost,
            self.connected,
            self.last_error
        )
    }

    /// Records one payload as it arrived with `qos` and the `dup` flag, reading the
    /// number from `field`.
    pub fn record(&mut self, payload: &[u8], field: &str, qos: QoS, dup: bool) {
        let value = serde_json::from_slice::<serde_json::Value>(payload).ok();
        if let Some(k) = value
            .as_ref()
            .and_then(|v| v.get("fence").and_then(serde_json::Value::as_u64))
        {
            self.fence = self.fence.max(k);
            return;
        }
        self.by_qos[qos as usize] += 1;
        self.last_message_at = Some(Instant::now());
        let seq = value
            .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
            .filter(|&s| s <= MAX_SEQ);
        let Some(seq) = seq else {
            self.bad_payloads += 1;
            return;
        };
        let max = self.max();
        let i = usize::try_from(seq).expect("seq fits usize");
        if self.seen.len() <= i {
            self.seen.resize(i + 1, 0);
        }
        self.seen[i] += 1;
        self.arrivals.push(seq);
        if self.seen[i] > 1 {
            self.duplicates += 1;
            self.resent_duplicates += u64::from(dup);
        } else {
            self.unique += 1;
            while self.count_of(self.contiguous) > 0 {
                self.contiguous += 1;
            }
            if max.is_some_and(|m| seq < m) {
                self.out_of_order += 1;
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    stats: SeqStats,
    subscribed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    paused: AtomicBool,
    port: Mutex<u16>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

/// A persistent-session subscriber on its own thread; stops (without unsubscribing)
/// when dropped.
#[derive(Debug)]
pub struct SeqSubscriber {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

impl SeqSubscriber {
    /// Connects to `127.0.0.1:port` and returns once the subscription is acknowledged
    /// (panics after 10 s). From then on it reconnects by itself.
    pub fn start(port: u16, options: SeqOptions) -> SeqSubscriber {
        assert!(
            matches!(options.qos, 1 | 2),
            "subscribe at QoS 1 or 2, not {}",
            options.qos
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            port: Mutex::new(port),
        });
        let name = format!("subscriber {} on {}", options.client_id, options.filter);
        let s = shared.clone();
        let thread = std::thread::spawn(move || run(&s, &options));
        let sub = SeqSubscriber {
            shared,
            thread: Some(thread),
            name,
        };
        sub.wait_subscribed(Duration::from_secs(10));
        sub
    }

    /// A copy of what was seen so far.
    pub fn stats(&self) -> SeqStats {
        self.shared.lock().stats.clone()
    }

    /// Waits until the stats satisfy `done` and returns them; panics after `timeout`
    /// with `what` and a summary.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&SeqStats) -> bool,
    ) -> SeqStats {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        loop {
            if done(&guard.stats) {
                return guard.stats.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let summary = guard.stats.summary();
                drop(guard);
                panic!(
                    "{}: timed out after {timeout:?} waiting for {what}: {summary}",
                    self.name
                );
            }
            guard = self
                .shared
                .changed
                .wait_timeout(guard, (deadline - now).min(Duration::from_millis(200)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until every number of `0..n` arrived.
    pub fn wait_for_all(&self, n: u64, timeout: Duration) -> SeqStats {
        self.wait_until(&format!("every sequence number below {n}"), timeout, |s| {
            s.has_all(0..n)
        })
    }

    /// Waits until no message has arrived for `quiet` (late duplicates would have come
    /// by then); panics if messages keep coming for `timeout`.
    pub fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> SeqStats {
        self.wait_until(&format!("{quiet:?} without a message"), timeout, |s| {
            s.last_message_at.is_none_or(|t| t.elapsed() >= quiet)
        })
    }

    /// Waits until connected (after a pause or an outage).
    pub fn wait_connected(&self, timeout: Duration) -> SeqStats {
        self.wait_until("a connection", timeout, |s| s.connected)
    }

    /// Goes offline (DISCONNECT; the broker keeps the session and queues for it).
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
        self.wait_until("the connection to close", Duration::from_secs(10), |s| {
            !s.connected
        });
    }

    /// Comes back online with the same session.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    /// Connects to another port from the next connection on (e.g. a relay's).
    pub fn set_port(&self, port: u16) {
        *self.shared.port.lock().unwrap_or_else(|p| p.into_inner()) = port;
    }

    /// Waits until the subscriber has connected again after its `connects`-th
    /// connection and the broker holds its subscription: the session was resumed, or
    /// the subscription made again was acknowledged. After a broker restart, what is
    /// published from then on reaches it.
    pub fn wait_subscribed_after(&self, connects: u64, timeout: Duration) -> SeqStats {
        self.wait_state(
            &format!("a subscription after connection {connects}"),
            timeout,
            |s| s.stats.connects > connects && s.stats.connected && s.subscribed,
        )
    }

    fn wait_subscribed(&self, timeout: Duration) {
        self.wait_state("a SUBACK", timeout, |s| s.subscribed);
    }

    fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&State) -> bool,
    ) -> SeqStats {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        while !done(&guard) {
            let now = Instant::now();
            if now >= deadline {
                let summary = guard.stats.summary();
                drop(guard);
                panic!("{}: no {what} within {timeout:?}: {summary}", self.name);
            }
            guard = self
                .shared
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        guard.stats.clone()
    }
}

impl Drop for SeqSubscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The connection loop: connect, run the session, wait, again; until stopped.
fn run(shared: &Shared, options: &SeqOptions) {
    let born = Instant::now();
    // QoS 2 packet ids answered with PUBREC and not yet released: session state
    // that outlives each connection.
    let mut awaiting_rel: HashSet<u16> = HashSet::new();
    while !shared.stop.load(Ordering::SeqCst) && born.elapsed() < LIFETIME {
        if shared.paused.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        let port = *shared.port.lock().unwrap_or_else(|p| p.into_inner());
        let result = session(shared, options, port, &mut awaiting_rel);
        shared.update(|s| {
            s.stats.connected = false;
            if let Err(e) = result {
                s.stats.last_error = Some(e);
            }
        });
        let until = Instant::now() + options.reconnect_delay;
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
    last_sent: Instant,
}

impl Conn {
    fn send(&mut self, packet: &Packet) -> Result<(), String> {
        self.out.clear();
        encode(packet, &mut self.out);
        self.stream
            .write_all(&self.out)
            .map_err(|e| format!("sending {}: {e}", packet.name()))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet, or `None` after one tick without a whole packet.
    fn next(&mut self) -> Result<Option<Packet>, String> {
        if let Some(p) = read_packet(&mut self.buf, 1 << 20).map_err(|e| e.to_string())? {
            return Ok(Some(p));
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("the broker closed the connection".to_string()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                read_packet(&mut self.buf, 1 << 20).map_err(|e| e.to_string())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(format!("reading: {e}")),
        }
    }
}

/// One connection, until it fails, the subscriber pauses or stops.
fn session(
    shared: &Shared,
    o: &SeqOptions,
    port: u16,
    awaiting_rel: &mut HashSet<u16>,
) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TICK))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut c = Conn {
        stream,
        buf: BytesMut::new(),
        out: BytesMut::new(),
        last_sent: Instant::now(),
    };
    c.send(&Packet::Connect(Connect {
        protocol_level: PROTOCOL_LEVEL_311,
        clean_session: false,
        keep_alive: o.keep_alive_secs,
        client_id: o.client_id.clone(),
        will: None,
        username: None,
        password: None,
    }))?;
    let keep_alive = Duration::from_secs(u64::from(o.keep_alive_secs.max(1)));
    // The CONNACK, within one keep-alive period.
    let connack = loop {
        if c.last_sent.elapsed() > keep_alive {
            return Err(format!("no CONNACK within {keep_alive:?}"));
        }
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match c.next()? {
            Some(Packet::ConnAck(a)) => break a,
            Some(p) => return Err(format!("{} before CONNACK", p.name())),
            None => {}
        }
    };
    let ConnAck {
        session_present,
        code,
    } = connack;
    if code != ConnectReturnCode::Accepted {
        return Err(format!("connection refused: {code:?}"));
    }
    if !session_present {
        // The broker has no state for us: nothing it sends refers to old packet ids.
        awaiting_rel.clear();
    }
    let mut subscribed = false;
    shared.update(|s| {
        s.stats.connected = true;
        s.stats.connects += 1;
        if s.stats.connects > 1 {
            if session_present {
                s.stats.sessions_resumed += 1;
            } else {
                s.stats.sessions_lost += 1;
            }
        }
        subscribed = s.subscribed && session_present;
        // A broker that lost the session lost the subscription with it.
        s.subscribed = subscribed;
    });
    let qos = QoS::from_u8(o.qos).expect("QoS 1 or 2");
    if !subscribed {
        c.send(&Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![(o.filter.clone(), qos)],
        }))?;
    }
    let mut ping_sent: Option<Instant> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) || shared.paused.load(Ordering::SeqCst) {
            let _ = c.send(&Packet::Disconnect);
            return Ok(());
        }
        if let Some(t) = ping_sent {
            if t.elapsed() > keep_alive {
                return Err(format!("no PINGRESP within {keep_alive:?}"));
            }
        } else if c.last_sent.elapsed() >= keep_alive / 2 {
            c.send(&Packet::PingReq)?;
            ping_sent = Some(Instant::now());
        }
        let Some(packet) = c.next()? else { continue };
        match packet {
            Packet::Publish(p) => on_publish(shared, o, &mut c, p, awaiting_rel)?,
            Packet::PubRel(pkid) => {
                awaiting_rel.remove(&pkid);
                c.send(&Packet::PubComp(pkid))?;
            }
            Packet::PingResp => ping_sent = None,
            Packet::SubAck(a) => {
                if a.return_codes.first() == Some(&SubscribeReturnCode::Failure) {
                    return Err(format!(
                        "the broker refused the subscription to {}",
                        o.filter
                    ));
                }
                shared.update(|s| s.subscribed = true);
            }
            other => return Err(format!("unexpected {} from the broker", other.name())),
        }
    }
}

/// Records a message, then acknowledges it.
fn on_publish(
    shared: &Shared,
    o: &SeqOptions,
    c: &mut Conn,
    p: Publish,
    awaiting_rel: &mut HashSet<u16>,
) -> Result<(), String> {
    match p.qos {
        QoS::AtMostOnce => shared.update(|s| s.stats.record(&p.payload, &o.field, p.qos, p.dup)),
        QoS::AtLeastOnce => {
            shared.update(|s| s.stats.record(&p.payload, &o.field, p.qos, p.dup));
            c.send(&Packet::PubAck(p.pkid))?;
        }
        QoS::ExactlyOnce => {
            if awaiting_rel.insert(p.pkid) {
                shared.update(|s| s.stats.record(&p.payload, &o.field, p.qos, p.dup));
            } else {
                shared.update(|s| s.stats.redeliveries += 1);
            }
            c.send(&Packet::PubRec(p.pkid))?;
        }
    }
    Ok(())
}
