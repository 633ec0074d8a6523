//! Latency: publishers paced at a fixed rate in all (the loads a Pi sees, not
//! saturation), one subscriber measuring the time from the send stamp in each
//! payload to its receipt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mqtt_proto::codec::QoS;

use super::{delivery_fields, quiet_time, rate, Target};
use crate::client::Client;
use crate::payload;
use crate::publisher::{stamp, Message, PubStats, Publisher};
use crate::report::{percentile, Json};
use crate::subscriber::{Expect, Subscriber};

/// `publishers` publishers together publish `rate_per_s` messages per second
/// (each its share, paced against the clock) for `seconds`, on topics under one
/// prefix; one subscriber takes them all. Messages sent during the first `warmup`
/// seconds are delivered but left out of the percentiles. With the broker's pid,
/// `measure` adds its CPU time: `broker_cpu_s` / `delivered` is its CPU per message.
pub(crate) async fn latency(
    t: &Target,
    publishers: u32,
    rate_per_s: u64,
    qos: QoS,
    seconds: f64,
    warmup: f64,
) -> Result<Json> {
    let publishers = publishers.max(1);
    let duration = Duration::from_secs_f64(seconds.max(0.001));
    let per_rate = (rate_per_s / publishers as u64).max(1);
    let per_publisher = (per_rate as u128 * duration.as_nanos() / 1_000_000_000) as u64;
    let count = per_publisher * publishers as u64;

    let mut sub = Client::connect(t.addr, &t.client_id("sub"), 0).await?;
    sub.subscribe(&t.topic("latency/#"), qos).await?;
    let mut clients = Vec::new();
    for i in 0..publishers {
        let c = Client::connect(t.addr, &t.client_id(&format!("pub{i}")), 0).await?;
        clients.push(Publisher::new(c, qos, t.window));
    }

    let from = payload::now_ns() + Duration::from_secs_f64(warmup.max(0.0)).as_nanos() as u64;
    let expect = Expect {
        publishers,
        per_publisher,
        quiet: quiet_time(qos),
        latency_from_ns: Some(from),
    };
    let done = Arc::new(AtomicBool::new(false));
    let receiver = tokio::spawn(Subscriber::new(sub, expect).run(done.clone()));

    let mut tasks = Vec::new();
    for (i, mut p) in clients.into_iter().enumerate() {
        let mut msg = Message::new(t.topic(&format!("latency/p{i}")), false);
        tasks.push(tokio::spawn(async move {
            let stats = p
                .run_paced(per_rate, duration, &mut msg, |seq, m| {
                    stamp(m, i as u32, seq)
                })
                .await;
            p.client.disconnect().await;
            stats
        }));
    }
    let mut sent: Vec<PubStats> = Vec::new();
    for task in tasks {
        sent.push(task.await.context("publisher task")??);
    }
    done.store(true, Ordering::Release);
    let mut got = receiver.await.context("subscriber task")??;

    got.latencies_ns.sort_unstable();
    let us = |q: f64| percentile(&got.latencies_ns, q).map_or(f64::NAN, |ns| ns as f64 / 1e3);
    let first = sent.iter().filter_map(|p| p.first_send).min();
    let achieved = match (first, got.last_at) {
        (Some(f), Some(l)) => rate(got.distinct, l - f),
        _ => 0.0,
    };
    let send_rate = match (first, sent.iter().map(|p| p.done_at).max()) {
        (Some(f), Some(e)) => rate(sent.iter().map(|p| p.sent).sum(), e - f),
        _ => 0.0,
    };
    Ok(delivery_fields(&got, count)
        .int("publishers", publishers as u64)
        .int("samples", got.latencies_ns.len() as u64)
        .num("p50_us", us(0.5))
        .num("p99_us", us(0.99))
        .num("p999_us", us(0.999))
        .num("max_us", us(1.0))
        .num("achieved_rate", achieved)
        .num("send_rate", send_rate)
        .int(
            "max_send_backlog",
            sent.iter().map(|p| p.max_backlog).max().unwrap_or(0),
        ))
}
