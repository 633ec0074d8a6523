//! The receiving side: acknowledges deliveries at QoS 1/2, checks sequence numbers
//! per publisher (lost, duplicated, out of order) and records latencies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use mqtt_proto::codec::{encode, Packet, QoS};
use tokio::time::{sleep_until, Instant as TokioInstant};

use crate::client::Client;
use crate::payload;

/// Bytes of acknowledgements that are written without waiting for the socket to drain.
const ACK_BATCH: usize = 16 * 1024;
/// How often an idle subscriber checks whether it should stop.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// What a subscriber expects: `publishers` senders of `per_publisher` messages each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub publishers: u32,
    pub per_publisher: u64,
    /// Stop this long after the publishers finished and nothing more arrived.
    pub quiet: Duration,
    /// Record receive − send times of messages sent at or after this clock value.
    pub latency_from_ns: Option<u64>,
}

/// Sequence bookkeeping for one publisher.
struct Track {
    seen: Vec<u64>,
    highest: Option<u64>,
}

/// What a subscriber saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct SubStats {
    /// Every PUBLISH received, duplicates included.
    pub received: u64,
    /// Distinct (publisher, sequence) pairs received.
    pub distinct: u64,
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same publisher.
    pub out_of_order: u64,
    /// Payloads that were not benchmark payloads of this run.
    pub foreign: u64,
    pub retained: u64,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    /// Nanoseconds from send to receipt.
    pub latencies_ns: Vec<u64>,
}

/// A subscribing connection that counts what it receives.
pub(crate) struct Subscriber {
    client: Client,
    expect: Expect,
    tracks: Vec<Track>,
    stats: SubStats,
}

impl Subscriber {
    pub(crate) fn new(mut client: Client, expect: Expect) -> Subscriber {
        client.grow_buffers();
        let words = expect.per_publisher.div_ceil(64) as usize;
        let tracks = (0..expect.publishers)
            .map(|_| Track {
                seen: vec![0; words],
                highest: None,
            })
            .collect();
        Subscriber {
            client,
            expect,
            tracks,
            stats: SubStats::default(),
        }
    }

    /// Access to the connection, e.g. to queue a SUBSCRIBE before `run`.
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn total(&self) -> u64 {
        self.expect.publishers as u64 * self.expect.per_publisher
    }

    fn handle(&mut self, packet: Packet, now: Instant) -> Result<()> {
        match packet {
            Packet::Publish(publish) => {
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        encode(&Packet::PubAck(publish.pkid), &mut self.client.wbuf)
                    }
                    QoS::ExactlyOnce => {
                        encode(&Packet::PubRec(publish.pkid), &mut self.client.wbuf)
                    }
                }
                if publish.retain {
                    self.stats.retained += 1;
                }
                self.count(&publish.payload, now);
            }
            Packet::PubRel(id) => encode(&Packet::PubComp(id), &mut self.client.wbuf),
            Packet::SubAck(_) | Packet::PingResp => {}
            other => bail!("subscriber got an unexpected {}", other.name()),
        }
        Ok(())
    }

    fn count(&mut self, bytes: &[u8], now: Instant) {
        let s = &mut self.stats;
        s.received += 1;
        s.first_at.get_or_insert(now);
        s.last_at = Some(now);
        let Some(stamp) = payload::read(bytes) else {
            s.foreign += 1;
            return;
        };
        let Some(track) = self.tracks.get_mut(stamp.publisher as usize) else {
            s.foreign += 1;
            return;
        };
        if stamp.seq >= self.expect.per_publisher {
            s.foreign += 1;
            return;
        }
        let (word, bit) = ((stamp.seq / 64) as usize, 1u64 << (stamp.seq % 64));
        if track.seen[word] & bit != 0 {
            s.duplicates += 1;
            return;
        }
        track.seen[word] |= bit;
        s.distinct += 1;
        match track.highest {
            Some(h) if stamp.seq < h => s.out_of_order += 1,
            _ => track.highest = Some(stamp.seq),
        }
        if let Some(from) = self.expect.latency_from_ns {
            if stamp.sent_ns >= from {
                s.latencies_ns
                    .push(payload::now_ns().saturating_sub(stamp.sent_ns));
            }
        }
    }

    /// Receive until every expected message arrived, or until the publishers are
    /// done (`publishers_done`) and nothing arrived for `expect.quiet`.
    pub(crate) async fn run(mut self, publishers_done: Arc<AtomicBool>) -> Result<SubStats> {
        let total = self.total();
        let mut done_seen_at: Option<Instant> = None;
        let check = sleep_until(TokioInstant::now() + CHECK_EVERY);
        tokio::pin!(check);
        loop {
            let read = self.client.try_fill()?;
            if read > 0 {
                let now = Instant::now();
                while let Some(packet) = self.client.decode_one()? {
                    self.handle(packet, now)?;
                }
            }
            // Acknowledgements go out when the socket is drained (or many are waiting),
            // so that several share one write.
            if read == 0 || self.client.wbuf.len() >= ACK_BATCH {
                self.client.try_flush()?;
            }
            if self.stats.distinct >= total {
                self.client.flush().await?;
                break;
            }
            if read > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut check => {
                    let now = Instant::now();
                    if publishers_done.load(Ordering::Acquire) {
                        let since = *done_seen_at.get_or_insert(now);
                        let last = self.stats.last_at.map_or(since, |t| t.max(since));
                        if now.duration_since(last) >= self.expect.quiet {
                            break;
                        }
                    }
                    check.as_mut().reset(TokioInstant::now() + CHECK_EVERY);
                }
                r = self.client.wait() => r?,
            }
        }
        self.client.disconnect().await;
        Ok(self.stats)
    }
}
