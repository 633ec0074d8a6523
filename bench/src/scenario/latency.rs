//! Latency: one publisher paced at a fixed rate, one subscriber measuring the time
//! from the send stamp in each payload to its receipt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mqtt_proto::codec::QoS;

use super::{delivery_fields, quiet_time, rate, Target};
use crate::client::Client;
use crate::payload;
use crate::publisher::{stamp, Message, Publisher};
use crate::report::{percentile, Json};
use crate::subscriber::{Expect, Subscriber};

/// Publish `rate_per_s` messages per second for `seconds`; messages sent during
/// the first `warmup` seconds are delivered but left out of the percentiles.
pub(crate) async fn latency(
    t: &Target,
    rate_per_s: u64,
    qos: QoS,
    seconds: f64,
    warmup: f64,
) -> Result<Json> {
    let duration = Duration::from_secs_f64(seconds.max(0.001));
    let count = (rate_per_s as u128 * duration.as_nanos() / 1_000_000_000) as u64;
    let topic = t.topic("latency");

    let mut sub = Client::connect(t.addr, &t.client_id("sub"), 0).await?;
    sub.subscribe(&topic, qos).await?;
    let c = Client::connect(t.addr, &t.client_id("pub"), 0).await?;
    let mut p = Publisher::new(c, qos, t.window);

    let from = payload::now_ns() + Duration::from_secs_f64(warmup.max(0.0)).as_nanos() as u64;
    let expect = Expect {
        publishers: 1,
        per_publisher: count,
        quiet: quiet_time(qos),
        latency_from_ns: Some(from),
    };
    let done = Arc::new(AtomicBool::new(false));
    let receiver = tokio::spawn(Subscriber::new(sub, expect).run(done.clone()));

    let mut msg = Message::new(topic, false);
    let sent = p
        .run_paced(rate_per_s, duration, &mut msg, |seq, m| stamp(m, 0, seq))
        .await?;
    p.client.disconnect().await;
    done.store(true, Ordering::Release);
    let mut got = receiver.await.context("subscriber task")??;

    got.latencies_ns.sort_unstable();
    let us = |q: f64| percentile(&got.latencies_ns, q).map_or(f64::NAN, |ns| ns as f64 / 1e3);
    let achieved = match (sent.first_send, got.last_at) {
        (Some(f), Some(l)) => rate(got.distinct, l - f),
        _ => 0.0,
    };
    let send_rate = sent
        .first_send
        .map_or(0.0, |f| rate(sent.sent, sent.done_at - f));
    Ok(delivery_fields(&got, count)
        .int("samples", got.latencies_ns.len() as u64)
        .num("p50_us", us(0.5))
        .num("p99_us", us(0.99))
        .num("p999_us", us(0.999))
        .num("max_us", us(1.0))
        .num("achieved_rate", achieved)
        .num("send_rate", send_rate)
        .int("max_send_backlog", sent.max_backlog))
}
