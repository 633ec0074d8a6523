//! The sending side: a pipelined publisher with an in-flight window for QoS 1 and 2
//! (PUBLISH → PUBACK, or PUBLISH → PUBREC → PUBREL → PUBCOMP), driven either as fast
//! as the window allows or paced against a clock.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use mqtt_proto::codec::{encode, encode_publish, Packet, QoS};
use tokio::time::sleep_until;

use crate::client::Client;
use crate::payload::{self, Stamp, PAYLOAD_LEN};

/// Bytes queued before the publisher stops encoding and writes.
const WRITE_BATCH: usize = 64 * 1024;

/// Packet id states.
const FREE: u8 = 0;
const AWAIT_ACK: u8 = 1;
const AWAIT_COMP: u8 = 2;

/// One message to send; `update` closures change the stamp and, if needed, the topic.
pub(crate) struct Message {
    pub topic: String,
    pub payload: [u8; PAYLOAD_LEN],
    pub retain: bool,
}

impl Message {
    pub(crate) fn new(topic: String, retain: bool) -> Message {
        Message {
            topic,
            payload: payload::blank(),
            retain,
        }
    }
}

/// What a publisher did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PubStats {
    pub sent: u64,
    pub completed: u64,
    pub first_send: Option<Instant>,
    pub done_at: Instant,
    /// Paced runs: the most messages that were due but not yet sent at one time.
    pub max_backlog: u64,
}

/// Session state of one publishing connection.
pub(crate) struct Publisher {
    pub client: Client,
    qos: QoS,
    window: usize,
    inflight: usize,
    state: Vec<u8>,
    next_pkid: u16,
    sent: u64,
    completed: u64,
    first_send: Option<Instant>,
}

impl Publisher {
    /// `window` bounds the QoS 1/2 messages awaiting acknowledgement (1..=65535).
    pub(crate) fn new(mut client: Client, qos: QoS, window: usize) -> Publisher {
        client.grow_buffers();
        Publisher {
            client,
            qos,
            window: window.clamp(1, 65_535),
            inflight: 0,
            state: vec![FREE; 65_536],
            next_pkid: 1,
            sent: 0,
            completed: 0,
            first_send: None,
        }
    }

    /// True when enough of the window is free to send a batch (a quarter of the
    /// window, or all that is left), so that a trickle of acknowledgements does not
    /// turn into one small write per message.
    fn batch_due(&self, count: u64) -> bool {
        if self.qos == QoS::AtMostOnce {
            return true;
        }
        let free = (self.window - self.inflight) as u64;
        let batch = ((self.window / 4).max(1) as u64).min(count - self.sent);
        free >= batch
    }

    fn has_room(&self) -> bool {
        self.qos == QoS::AtMostOnce || self.inflight < self.window
    }

    /// Encode one PUBLISH into the write buffer; the caller checked `has_room`.
    fn queue(&mut self, msg: &Message) {
        if self.first_send.is_none() {
            self.first_send = Some(Instant::now());
        }
        let pkid = if self.qos == QoS::AtMostOnce {
            self.completed += 1;
            0
        } else {
            self.alloc_pkid()
        };
        encode_publish(
            &mut self.client.wbuf,
            &msg.topic,
            &msg.payload,
            self.qos,
            msg.retain,
            false,
            pkid,
        );
        self.sent += 1;
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if self.state[id as usize] == FREE {
                self.state[id as usize] = AWAIT_ACK;
                self.inflight += 1;
                return id;
            }
        }
    }

    fn release(&mut self, id: u16) {
        self.state[id as usize] = FREE;
        self.inflight -= 1;
        self.completed += 1;
    }

    /// Handle one packet from the broker: acknowledgements of our publishes.
    fn handle(&mut self, packet: Packet) -> Result<()> {
        let state = |id: u16| self.state[id as usize];
        match (self.qos, packet) {
            (QoS::AtLeastOnce, Packet::PubAck(id)) if state(id) == AWAIT_ACK => self.release(id),
            (QoS::ExactlyOnce, Packet::PubRec(id)) if state(id) != FREE => {
                self.state[id as usize] = AWAIT_COMP;
                encode(&Packet::PubRel(id), &mut self.client.wbuf);
            }
            (QoS::ExactlyOnce, Packet::PubComp(id)) if state(id) == AWAIT_COMP => self.release(id),
            (_, Packet::PingResp) => {}
            (qos, other) => {
                let id_state = match &other {
                    Packet::PubAck(id) | Packet::PubRec(id) | Packet::PubComp(id) => state(*id),
                    _ => FREE,
                };
                bail!(
                    "publisher at QoS {} got an unexpected {} (packet id state {id_state})",
                    qos as u8,
                    other.name()
                )
            }
        }
        Ok(())
    }

    /// Non-blocking I/O round: write what is queued, read and handle acknowledgements.
    /// True when any byte moved.
    fn poll_io(&mut self) -> Result<bool> {
        let written = self.client.try_flush()?;
        let read = self.client.try_fill()?;
        if read > 0 {
            while let Some(packet) = self.client.decode_one()? {
                self.handle(packet)?;
            }
        }
        Ok(written > 0 || read > 0)
    }

    fn finished(&self, count: u64) -> bool {
        self.completed == count && self.client.wbuf.is_empty()
    }

    fn stats(&self, max_backlog: u64) -> PubStats {
        PubStats {
            sent: self.sent,
            completed: self.completed,
            first_send: self.first_send,
            done_at: Instant::now(),
            max_backlog,
        }
    }

    /// Send `count` messages as fast as the window and the socket allow, and wait
    /// for every acknowledgement. `update(i, msg)` prepares message `i`.
    pub(crate) async fn run(
        &mut self,
        count: u64,
        msg: &mut Message,
        mut update: impl FnMut(u64, &mut Message),
    ) -> Result<PubStats> {
        loop {
            if self.sent < count && self.batch_due(count) {
                while self.sent < count && self.has_room() && self.client.wbuf.len() < WRITE_BATCH {
                    update(self.sent, msg);
                    self.queue(msg);
                }
            }
            let moved = self.poll_io()?;
            if self.finished(count) {
                return Ok(self.stats(0));
            }
            if moved {
                // Let the other connections on this thread run between batches.
                tokio::task::yield_now().await;
            } else {
                self.client.wait().await?;
            }
        }
    }

    /// Send `rate` messages per second for `duration`, in bursts against the clock
    /// (message `i` is due at `start + i / rate`, so lateness never accumulates).
    pub(crate) async fn run_paced(
        &mut self,
        rate: u64,
        duration: Duration,
        msg: &mut Message,
        mut update: impl FnMut(u64, &mut Message),
    ) -> Result<PubStats> {
        let rate = rate.max(1);
        let count = (rate as u128 * duration.as_nanos() / 1_000_000_000) as u64;
        let start = Instant::now();
        let mut max_backlog = 0;
        loop {
            let elapsed = start.elapsed().as_nanos();
            let due = ((elapsed * rate as u128 / 1_000_000_000) as u64 + 1).min(count);
            while self.sent < due && self.has_room() {
                update(self.sent, msg);
                self.queue(msg);
            }
            max_backlog = max_backlog.max(due - self.sent);
            self.poll_io()?;
            if self.sent == count && self.finished(count) {
                return Ok(self.stats(max_backlog));
            }
            let next_due = start + Duration::from_nanos(self.sent * 1_000_000_000 / rate);
            if self.sent < count && self.has_room() && next_due <= Instant::now() {
                continue;
            }
            tokio::select! {
                r = self.client.wait() => r?,
                _ = sleep_until(next_due.into()), if self.sent < count => {}
            }
        }
    }
}

/// Prepare a benchmark message: stamp publisher `id`, sequence `seq`, send time now.
pub(crate) fn stamp(msg: &mut Message, id: u32, seq: u64) {
    payload::write(
        &mut msg.payload,
        Stamp {
            publisher: id,
            seq,
            sent_ns: payload::now_ns(),
        },
    );
}
