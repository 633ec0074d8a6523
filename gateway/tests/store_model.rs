//! The store against a model: random sequences of append / read / ack / crash and
//! reopen / eviction, checked against a `VecDeque` of the messages not yet
//! acknowledged. Nothing is lost, the order is kept, the counts are right.

use std::collections::VecDeque;
use std::time::Duration;
use test_support::Scratch;

use bytes::Bytes;
use mqgate::config::{StoreConfig, WhenFull};
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
    CrashAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..20).prop_map(Op::Append),
        4 => (1usize..30).prop_map(Op::Read),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::AckAll),
        1 => Just(Op::CrashAndReopen),
    ]
}

/// What the store should hold.
#[derive(Default)]
struct Model {
    /// Sequence numbers not acknowledged, in order.
    kept: VecDeque<u64>,
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

async fn run(ops: Vec<Op>, max_messages: u64) -> Result<(), TestCaseError> {
    let dir = scratch();
    let cfg = StoreConfig {
        file: dir.path().join("m.db"),
        max_messages,
        when_full: WhenFull::DropOldest,
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
                let appended = real.store.append(msgs).await.expect("append");
                prop_assert_eq!(appended.accepted, n);
                for _ in 0..n {
                    model.kept.push_back(model.next_seq);
                    model.next_seq += 1;
                    while model.kept.len() as u64 > max_messages {
                        let gone = model.kept.pop_front().expect("non-empty");
                        model.evicted += 1;
                        model.in_flight.retain(|s| *s != gone);
                        model.read.retain(|s| *s != gone);
                        real.ids.retain(|(s, _)| *s != gone);
                    }
                }
            }
            Op::Read(n) => {
                // The next unread messages, in order.
                let expected: Vec<u64> = model
                    .kept
                    .iter()
                    .filter(|s| !model.read.contains(s))
                    .take(n)
                    .copied()
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
                model.kept.retain(|s| *s != seq);
                model.read.retain(|s| *s != seq);
            }
            Op::AckAll => {
                let ids: Vec<u64> = real.ids.drain(..).map(|(_, id)| id).collect();
                real.queue.done(ids).await.expect("done");
                for seq in model.in_flight.drain(..) {
                    model.kept.retain(|s| *s != seq);
                    model.read.retain(|s| *s != seq);
                }
            }
            Op::CrashAndReopen => {
                real.store.close().await;
                drop(real);
                real = open(&cfg);
                // Whatever was read but not acknowledged comes again.
                model.read.clear();
                model.in_flight.clear();
                model.evicted = 0;
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
    prop_assert_eq!(all, model.kept.iter().copied().collect::<Vec<_>>());
    real.store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_keeps_what_the_model_keeps(
        ops in proptest::collection::vec(op(), 1..60),
        max_messages in 5u64..200,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run(ops, max_messages))?;
    }
}
