//! The source's task: one UDP socket for every gateway. Datagrams in are
//! acknowledged and their packets sent on as frames; commands from the device
//! side go out as PULL_RESP, one at a time, each part waiting for its TX_ACK
//! (version 2) while uplinks keep flowing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::codec::{ack, frames, parse, pull_resp, Datagram, Kind, TxAckReport};
use super::gateways::{Gateways, Target};
use super::txpk::{self, Defaults, Txpk};
use crate::airtime::Region;
use crate::config::SemtechUdpConfig;
use crate::frame::Frame;
use crate::source::link::{DeviceSide, TxOutcome, TxRequest};
use crate::source::status::{SourceState, SourceStatus};

/// Largest datagram read (the protocol's JSON stays well below).
const MAX_DATAGRAM: usize = 65_535;

/// How the source sends downlinks; from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The gateway for commands whose script names none (lower-case hex).
    pub gateway_eui: Option<String>,
    /// The forwarders' PULL_DATA interval.
    pub keepalive: Duration,
    /// How long a version 2 gateway has to send TX_ACK.
    pub tx_ack_timeout: Duration,
    pub region: Region,
}

impl Settings {
    pub fn of(config: &SemtechUdpConfig) -> Settings {
        Settings {
            gateway_eui: config.gateway_eui.clone(),
            keepalive: Duration::from_secs(config.keepalive_secs.max(1)),
            tx_ack_timeout: Duration::from_millis(config.tx_ack_timeout_ms.max(1)),
            region: config.region,
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            gateway_eui: None,
            keepalive: Duration::from_secs(10),
            tx_ack_timeout: Duration::from_secs(2),
            region: Region::Eu868,
        }
    }
}

/// Where the source's frames go, and its counters.
#[derive(Debug)]
pub struct Out {
    pub source: Arc<str>,
    pub tx: mpsc::Sender<Frame>,
    pub status: Arc<SourceStatus>,
}

/// The source's socket; a failure names the address (the gateway does not start).
pub async fn bind(listen: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on UDP {listen}: {e}")))
}

/// Receive datagrams until shutdown; acknowledge each, send the frames on, and
/// send the commands that come through `device` as downlinks.
pub async fn run(
    socket: UdpSocket,
    out: Out,
    device: DeviceSide,
    settings: Settings,
    mut abp: Option<super::abp::Abp>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Out { source, tx, status } = out;
    if let Ok(local) = socket.local_addr() {
        info!(source = %source, "listening for packet forwarders on UDP {local}");
    }
    status.set_state(SourceState::Connected {
        since: SystemTime::now(),
    });
    let mut down = Downlinks {
        source: source.clone(),
        gateways: Gateways::new(settings.region, settings.keepalive),
        defaults: Defaults::of(settings.region),
        settings,
        device,
        pending: None,
        status: status.clone(),
        tokens: std::hash::RandomState::new(),
        sent: 0,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Whoever can reach the port can send garbage: one line a minute about it.
    let not_understood = log_limit::LogLimit::default();
    loop {
        let ack_deadline = down
            .pending
            .as_ref()
            .and_then(|p| p.awaiting.map(|a| a.until));
        let next_part = down.pending.as_ref().and_then(|p| p.next_at);
        let window_closes = abp
            .as_ref()
            .and_then(|a| a.next_due())
            .map(Instant::from_std);
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(source = %source, "UDP receive: {e}");
                    continue;
                }
            },
            request = down.device.next(), if down.pending.is_none() => {
                down.start(request, &socket).await;
                continue;
            }
            _ = sleep_until(ack_deadline) => {
                down.no_tx_ack();
                continue;
            }
            _ = sleep_until(next_part) => {
                down.send_next(&socket).await;
                continue;
            }
            _ = sleep_until(window_closes) => {
                if let Some(abp) = abp.as_mut() {
                    for frame in abp.due(std::time::Instant::now()).await {
                        SourceStatus::add(&status.frames, 1);
                        if tx.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        SourceStatus::add(&status.bytes, n as u64);
        let datagram = match parse(&buf[..n]) {
            Ok(d) => d,
            Err(e) => {
                status.bad_frame(format!("datagram not understood: {e}"), n, &buf[..n]);
                if let Some(skipped) = not_understood.check() {
                    warn!(
                        source = %source,
                        %peer,
                        "GWMP datagram not understood: {e}{}",
                        log_limit::suppressed(skipped)
                    );
                }
                continue;
            }
        };
        if let Some(ack) = ack(&datagram) {
            if let Err(e) = socket.send_to(&ack, peer).await {
                debug!(source = %source, %peer, "cannot acknowledge: {e}");
            }
        }
        let body = match &datagram.kind {
            Kind::PullData => {
                down.pulled(&datagram, peer);
                continue;
            }
            Kind::TxAck(body) => {
                down.tx_ack(&datagram, body);
                continue;
            }
            Kind::PushData(body) => body,
        };
        let received = frames(&datagram.gateway_eui, body);
        for why in &received.bad {
            debug!(source = %source, gateway = %datagram.gateway_eui, "bad packet: {why}");
            status.bad_frame(
                format!("packet from gateway {}: {why}", datagram.gateway_eui),
                0,
                &[],
            );
        }
        if !received.packets.is_empty() {
            down.gateways
                .uplink(&datagram.gateway_eui, Instant::now().into_std());
        }
        let received_at = SystemTime::now();
        let packets = received.packets.len();
        for (i, (bytes, meta)) in received
            .packets
            .into_iter()
            .chain(received.stats)
            .enumerate()
        {
            let mut frame = Frame {
                source: source.clone(),
                received_at,
                bytes,
                meta,
            };
            // A registered ABP device's uplink waits for its copies first.
            if let (Some(abp), true) = (abp.as_mut(), i < packets) {
                match abp.offer(frame, std::time::Instant::now()) {
                    Some(passed) => frame = passed,
                    None => continue,
                }
            }
            SourceStatus::add(&status.frames, 1);
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    }
    if let Some(p) = down.pending.take() {
        let _ = p.reply.send(TxOutcome::Failed(format!(
            "source {source}: mqgate stopped before the gateway confirmed it"
        )));
    }
    down.device.set_ready(false);
    status.set_state(SourceState::Finished);
}

/// The command being sent.
struct Pending {
    reply: oneshot::Sender<TxOutcome>,
    target: Target,
    parts: VecDeque<(Txpk, u64)>,
    total: usize,
    /// The part whose TX_ACK is awaited.
    awaiting: Option<Awaiting>,
    /// When the next part goes out.
    next_at: Option<Instant>,
}

/// A PULL_RESP waiting for its TX_ACK.
#[derive(Debug, Clone, Copy)]
struct Awaiting {
    token: u16,
    until: Instant,
    /// The pause before the next part, counted from the TX_ACK.
    pause: Duration,
}

impl Pending {
    /// `part 2 of 3: ` for commands of several parts.
    fn which(&self) -> String {
        if self.total > 1 {
            format!("part {} of {}: ", self.total - self.parts.len(), self.total)
        } else {
            String::new()
        }
    }
}

/// The downlink side of the source.
struct Downlinks {
    source: Arc<str>,
    settings: Settings,
    defaults: Defaults,
    gateways: Gateways,
    device: DeviceSide,
    pending: Option<Pending>,
    status: Arc<SourceStatus>,
    tokens: std::hash::RandomState,
    /// PULL_RESPs sent so far, hashed into each token.
    sent: u64,
}

impl Downlinks {
    fn pulled(&mut self, d: &Datagram, peer: SocketAddr) {
        let now = Instant::now().into_std();
        self.gateways.pulled(&d.gateway_eui, peer, d.version, now);
        // A gateway is there: a command that waited for one is tried again (and
        // waits again, answered `NotReady`, if this is not its gateway).
        self.device.set_ready(true);
        if self.settings.region != Region::None {
            self.status.set_duty_cycle(self.gateways.budgets(now));
        }
    }

    /// A command arrives: check every part, choose the gateway, send the first part.
    async fn start(&mut self, request: TxRequest, socket: &UdpSocket) {
        let TxRequest { parts, reply } = request;
        let source = self.source.clone();
        let many = parts.len() > 1;
        let mut built = VecDeque::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            match txpk::build(part, self.defaults) {
                Ok(t) => built.push_back((t, part.delay_ms)),
                Err(why) => {
                    let which = if many {
                        format!(" part {i}:")
                    } else {
                        String::new()
                    };
                    let _ = reply.send(TxOutcome::Failed(format!("source {source}:{which} {why}")));
                    return;
                }
            }
        }
        let Some((first, _)) = built.front() else {
            let _ = reply.send(TxOutcome::Sent);
            return;
        };
        let named = first.gateway_eui.clone();
        if built.iter().any(|(t, _)| t.gateway_eui != named) {
            let _ = reply.send(TxOutcome::Failed(format!(
                "source {source}: the parts of one command name different gateways"
            )));
            return;
        }
        let now = Instant::now();
        let target = match self.gateways.choose(
            named.as_deref(),
            self.settings.gateway_eui.as_deref(),
            now.into_std(),
        ) {
            Ok(t) => t,
            Err(TxOutcome::NotReady(why)) => {
                // Not ready until the next PULL_DATA: the command path waits
                // instead of asking again at once.
                self.device.set_ready(false);
                let _ = reply.send(TxOutcome::NotReady(format!("source {source}: {why}")));
                return;
            }
            Err(TxOutcome::Failed(why)) => {
                let _ = reply.send(TxOutcome::Failed(format!("source {source}: {why}")));
                return;
            }
            Err(other) => {
                let _ = reply.send(other);
                return;
            }
        };
        self.pending = Some(Pending {
            reply,
            target,
            total: built.len(),
            parts: built,
            awaiting: None,
            next_at: None,
        });
        self.send_next(socket).await;
    }

    /// Send the next part of the pending command.
    async fn send_next(&mut self, socket: &UdpSocket) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        p.next_at = None;
        if p.reply.is_closed() {
            debug!(source = %self.source, "the command path gave up on a command; its other parts are not sent");
            return;
        }
        let Some((part, delay_ms)) = p.parts.pop_front() else {
            let _ = p.reply.send(TxOutcome::Sent);
            return;
        };
        let which = p.which();
        let now = Instant::now();
        let eui = p.target.eui.clone();
        let charged = self
            .gateways
            .charge(&eui, part.frequency_hz, part.airtime, now.into_std());
        if self.settings.region != Region::None {
            self.status
                .set_duty_cycle(self.gateways.budgets(now.into_std()));
        }
        if let Err(why) = charged {
            let earlier = if which.is_empty() {
                ""
            } else {
                " (the parts before it were sent)"
            };
            let _ = p.reply.send(TxOutcome::Rejected(format!("{why}{earlier}")));
            return;
        }
        self.sent += 1;
        let token = std::hash::BuildHasher::hash_one(&self.tokens, self.sent) as u16;
        let datagram = pull_resp(p.target.version, token, &part.json);
        if let Err(e) = socket.send_to(&datagram, p.target.addr).await {
            let _ = p.reply.send(TxOutcome::Failed(format!(
                "source {}: {which}cannot send PULL_RESP to gateway {} at {}: {e}",
                self.source, eui, p.target.addr
            )));
            return;
        }
        debug!(source = %self.source, gateway = %eui, token, "PULL_RESP sent");
        // Between parts: the time on air of one sent at once, then the script's pause.
        let pause = Duration::from_millis(delay_ms)
            + if part.immediate {
                part.airtime
            } else {
                Duration::ZERO
            };
        if p.target.version == 1 {
            // A version 1 forwarder never answers: sent is all there is to know.
            self.part_done(p, pause);
        } else {
            p.awaiting = Some(Awaiting {
                token,
                until: now + self.settings.tx_ack_timeout,
                pause,
            });
            self.pending = Some(p);
        }
    }

    /// A part went out: the next after `pause`, or the command is sent.
    fn part_done(&mut self, mut p: Pending, pause: Duration) {
        if p.parts.is_empty() {
            let _ = p.reply.send(TxOutcome::Sent);
            return;
        }
        p.next_at = Some(Instant::now() + pause);
        self.pending = Some(p);
    }

    /// A TX_ACK: the pending part's, or one to ignore.
    fn tx_ack(&mut self, d: &Datagram, body: &[u8]) {
        let matches = self.pending.as_ref().is_some_and(|p| {
            p.target.eui == d.gateway_eui && p.awaiting.is_some_and(|a| a.token == d.token)
        });
        if !matches {
            debug!(source = %self.source, gateway = %d.gateway_eui, token = d.token, "TX_ACK for no downlink in flight (late, or another server's)");
            return;
        }
        let mut p = self.pending.take().expect("checked above");
        let pause = p.awaiting.take().map_or(Duration::ZERO, |a| a.pause);
        match super::codec::tx_ack_report(body) {
            TxAckReport::Accepted { warning } => {
                if let Some(w) = warning {
                    info!(source = %self.source, gateway = %d.gateway_eui, "the gateway sent the downlink with a warning: {w}");
                }
                self.part_done(p, pause);
            }
            TxAckReport::Refused(why) => {
                let which = p.which();
                let _ = p.reply.send(TxOutcome::Failed(format!(
                    "source {}: {which}gateway {} refused the downlink: {why}",
                    self.source, d.gateway_eui
                )));
            }
        }
    }

    /// The TX_ACK did not come in time.
    fn no_tx_ack(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let which = p.which();
        let _ = p.reply.send(TxOutcome::Failed(format!(
            "source {}: {which}no TX_ACK from gateway {} within {} ms",
            self.source,
            p.target.eui,
            self.settings.tx_ack_timeout.as_millis()
        )));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
