//! Fan-in: several publishers, one subscriber on a wildcard that covers them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use mqtt_proto::codec::QoS;

use super::{delivery_fields, quiet_time, rate, Target};
use crate::client::Client;
use crate::publisher::{stamp, Message, PubStats, Publisher};
use crate::report::Json;
use crate::subscriber::{Expect, Subscriber};

/// `pubs` publishers send `messages` in total, each on its own topic under one
/// prefix; one subscriber takes `prefix/#`. Throughput is what the subscriber got
/// divided by the time from the first publish to the last receipt.
pub(crate) async fn fanin(t: &Target, pubs: u32, qos: QoS, messages: u64) -> Result<Json> {
    let pubs = pubs.max(1);
    let per_publisher = messages.div_ceil(pubs as u64);
    let expected = per_publisher * pubs as u64;

    let mut sub = Client::connect(t.addr, &t.client_id("sub"), 0).await?;
    sub.subscribe(&t.topic("fanin/#"), qos).await?;
    let expect = Expect {
        publishers: pubs,
        per_publisher,
        quiet: quiet_time(qos),
        latency_from_ns: None,
    };
    let done = Arc::new(AtomicBool::new(false));
    let receiver = tokio::spawn(Subscriber::new(sub, expect).run(done.clone()));

    let mut publishers = Vec::new();
    for i in 0..pubs {
        let c = Client::connect(t.addr, &t.client_id(&format!("pub{i}")), 0).await?;
        publishers.push(Publisher::new(c, qos, t.window));
    }
    let mut tasks = Vec::new();
    for (i, mut p) in publishers.into_iter().enumerate() {
        let mut msg = Message::new(t.topic(&format!("fanin/p{i}")), false);
        tasks.push(tokio::spawn(async move {
            let stats = p
                .run(per_publisher, &mut msg, |seq, m| stamp(m, i as u32, seq))
                .await;
            p.client.disconnect().await;
            stats
        }));
    }
    let mut pub_stats: Vec<PubStats> = Vec::new();
    for task in tasks {
        pub_stats.push(task.await.context("publisher task")??);
    }
    done.store(true, Ordering::Release);
    let got = receiver.await.context("subscriber task")??;

    let first = pub_stats.iter().filter_map(|p| p.first_send).min();
    let pub_end = pub_stats.iter().map(|p| p.done_at).max();
    let (throughput, elapsed) = match (first, got.last_at) {
        (Some(f), Some(l)) => (rate(got.distinct, l - f), (l - f).as_secs_f64()),
        _ => (0.0, 0.0),
    };
    let publish_rate = match (first, pub_end) {
        (Some(f), Some(e)) => rate(expected, e - f),
        _ => 0.0,
    };
    Ok(delivery_fields(&got, expected)
        .num("elapsed_s", elapsed)
        .num("throughput", throughput)
        .int("acked", pub_stats.iter().map(|p| p.completed).sum())
        .num("publish_rate", publish_rate))
}
