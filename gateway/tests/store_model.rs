//! The store against a model: random sequences of append / read / ack / close,
//! crash or power cut and reopen / eviction / the output going down and up / the
//! write-behind window passing, in both durability modes, checked against a
//! `VecDeque` of the messages not yet acknowledged. Nothing is lost but what the
//! mode allows (a power cut loses the write-behind messages not yet in the
//! file, nothing else), the order is kept, the counts are right.

use std::collections::VecDeque;
use std::time::Duration;
use test_support::Scratch;

use bytes::Bytes;
use mqgate::config::{Durability, StoreConfig, WhenFull};
use mqgate::message::Message;
use mqgate::store::{OutputQueue, Store, StoreStats, Stored};
use mqtt_proto::codec::QoS;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append this many messages.
    Append(usize),
    /// Read up to this many.
    Read(usize),
    /// Acknowledge the in-flight message at this index (modulo their number).
    Ack(usize),
    /// Acknowledge every message in flight.
    AckAll,
    /// Stop the store without telling the outputs and open it again.
    CloseAndReopen,
    /// The process is killed (`kill -9`) and started again.
    Crash,
    /// The power goes: the process dies and the journal in memory is gone.
    PowerCut,
    /// The output connects or goes down.
    Up(bool),
    /// The write-behind window of every message in the journal passes.
    WindowPasses,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..20).prop_map(Op::Append),
        4 => (1usize..30).prop_map(Op::Read),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::AckAll),
        1 => Just(Op::CloseAndReopen),
        1 => Just(Op::Crash),
        1 => Just(Op::PowerCut),
        2 => any::<bool>().prop_map(Op::Up),
        1 => Just(Op::WindowPasses),
    ]
}

/// What the store should hold.
#[derive(Default)]
struct Model {
    /// Sequence numbers not acknowledged, in order, and whether each is in the
    /// file (`false`: only in the write-behind journal).
    kept: VecDeque<(u64, bool)>,
    /// The output is connected.
    up: bool,
    /// How many of `kept` (from the front, skipping in-flight ones) were read since the last reopen.
    read: Vec<u64>,
    in_flight: Vec<u64>,
    /// Evictions since the last reopen (the counters start again with each open).
    evicted: u64,
    next_seq: u64,
}

struct Real {
    store: Store,
    queue: OutputQueue,
    /// Row id of each sequence number in flight.
    ids: Vec<(u64, u64)>,
}

/// A fresh folder for one case's database, removed when dropped: also when a
/// `prop_assert!` returns early or the case panics.
fn scratch() -> Scratch {
    Scratch::new("mqgate-store-model")
}

fn open(cfg: &StoreConfig) -> Real {
    let store = Store::open(cfg, &["out"]).expect("the store opens");
    let queue = store.output("out").expect("the output exists");
    Real {
        store,
        queue,
        ids: Vec::new(),
    }
}

fn seq_of(s: &Stored) -> u64 {
    std::str::from_utf8(&s.message.payload)
        .expect("utf-8")
        .parse()
        .expect("a number")
}

impl Model {
    fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.kept.iter().map(|(s, _)| *s)
    }

    fn forget(&mut self, seq: u64) {
        self.kept.retain(|(s, _)| *s != seq);
        self.read.retain(|s| *s != seq);
        self.in_flight.retain(|s| *s != seq);
    }

    /// The store starts again: the output is down, nothing is read.
    fn restarted(&mut self) {
        self.read.clear();
        self.in_flight.clear();
        self.evicted = 0;
        self.up = false;
        // What was in the journal was taken over into the file.
        for (_, in_file) in &mut self.kept {
            *in_file = true;
        }
    }
}

async fn run(ops: Vec<Op>, max_messages: u64, durability: Durability) -> Result<(), TestCaseError> {
    let dir = scratch();
    let cfg = StoreConfig {
        file: dir.path().join("m.db"),
        max_messages,
        when_full: WhenFull::DropOldest,
        // The window passes only when the test says so.
        write_behind_ms: 3_600_000,
        write_behind_dir: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    let mut real = open(&cfg);
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(n) => {
                let msgs: Vec<Message> = (0..n)
                    .map(|i| Message {
                        topic: "m".parse().unwrap(),
                        payload: Bytes::from((model.next_seq + i as u64).to_string()),
                        qos: QoS::AtLeastOnce,
                        retain: false,
                    })
                    .collect();
                let msgs = msgs.into_iter().map(std::sync::Arc::new).collect();
                let appended = real
                    .store
                    .append_shared(msgs, durability)
                    .await
                    .expect("append");
                prop_assert_eq!(appended.accepted, n);
                let in_file = durability == Durability::OnReceipt;
                for _ in 0..n {
                    model.kept.push_back((model.next_seq, in_file));
                    model.next_seq += 1;
                    while model.kept.len() as u64 > max_messages {
                        let (gone, _) = model.kept.pop_front().expect("non-empty");
                        model.evicted += 1;
                        model.forget(gone);
                        real.ids.retain(|(s, _)| *s != gone);
                    }
                }
            }
            Op::Read(n) => {
                // The next unread messages, in order.
                let expected: Vec<u64> = model
                    .seqs()
                    .filter(|s| !model.read.contains(s))
                    .take(n)
                    .collect();
                if expected.is_empty() {
                    continue;
                }
                let got = tokio::time::timeout(Duration::from_secs(5), real.queue.next_batch(n))
                    .await
                    .expect("messages are there")
                    .expect("read");
                let seqs: Vec<u64> = got.iter().map(seq_of).collect();
                prop_assert_eq!(&seqs, &expected);
                for s in &got {
                    real.ids.push((seq_of(s), s.id));
                }
                model.read.extend(&seqs);
                model.in_flight.extend(&seqs);
            }
            Op::Ack(i) => {
                if model.in_flight.is_empty() {
                    continue;
                }
                let seq = model.in_flight.remove(i % model.in_flight.len());
                let pos = real
                    .ids
                    .iter()
                    .position(|(s, _)| *s == seq)
                    .expect("id known");
                let (_, id) = real.ids.remove(pos);
                real.queue.done(vec![id]).await.expect("done");
                model.forget(seq);
            }
            Op::AckAll => {
                let ids: Vec<u64> = real.ids.drain(..).map(|(_, id)| id).collect();
                real.queue.done(ids).await.expect("done");
                for seq in std::mem::take(&mut model.in_flight) {
                    model.forget(seq);
                }
            }
            Op::CloseAndReopen => {
                real.store.close().await;
                drop(real);
                real = open(&cfg);
                // Whatever was read but not acknowledged comes again.
                model.restarted();
            }
            Op::Crash => {
                real.store.crash().await;
                drop(real);
                real = open(&cfg);
                model.restarted();
            }
            Op::PowerCut => {
                // The journal lived in memory.
                real.store.journal_path().expect("a journal");
                real.store.power_cut().await;
                drop(real);
                model.kept.retain(|(_, in_file)| *in_file);
                real = open(&cfg);
                model.restarted();
            }
            Op::Up(up) => {
                real.queue.set_connected(up).await;
                if model.up && !up {
                    // It will not acknowledge soon: its messages go to the file.
                    for (_, in_file) in &mut model.kept {
                        *in_file = true;
                    }
                }
                model.up = up;
            }
            Op::WindowPasses => {
                real.store.write_behind_now().await;
                for (_, in_file) in &mut model.kept {
                    *in_file = true;
                }
            }
        }
        real.store.sync().await;
        let stats = real.store.stats();
        prop_assert_eq!(StoreStats::get(&stats.depth), model.kept.len() as u64);
        prop_assert_eq!(StoreStats::get(&stats.evicted_oldest), model.evicted);
    }
    // At the end, after one more reopen, the store holds exactly the model, in order.
    real.store.close().await;
    drop(real);
    let mut real = open(&cfg);
    let mut all = Vec::new();
    while all.len() < model.kept.len() {
        let got = tokio::time::timeout(Duration::from_secs(5), real.queue.next_batch(1000))
            .await
            .expect("messages are there")
            .expect("read");
        prop_assert!(!got.is_empty());
        all.extend(got.iter().map(seq_of));
    }
    prop_assert_eq!(all, model.seqs().collect::<Vec<_>>());
    real.store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_keeps_what_the_model_keeps(
        ops in proptest::collection::vec(op(), 1..60),
        max_messages in 5u64..200,
        write_behind in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let durability = if write_behind {
            Durability::WriteBehind
        } else {
            Durability::OnReceipt
        };
        rt.block_on(run(ops, max_messages, durability))?;
    }
}
