//! Fan-out: one publisher, several subscribers on the same topic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use mqtt_proto::codec::QoS;

use super::{delivery_fields, quiet_time, rate, Target};
use crate::client::Client;
use crate::publisher::{stamp, Message, Publisher};
use crate::report::Json;
use crate::subscriber::{Expect, SubStats, Subscriber};

/// One publisher sends `messages`; each of `subs` subscribers should get all of
/// them. Throughput is total deliveries divided by the time from the first publish
/// to the last receipt at any subscriber.
pub(crate) async fn fanout(t: &Target, subs: u32, qos: QoS, messages: u64) -> Result<Json> {
    let subs = subs.max(1);
    let topic = t.topic("fanout");
    let expect = Expect {
        publishers: 1,
        per_publisher: messages,
        quiet: quiet_time(qos),
        latency_from_ns: None,
    };
    let done = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    for i in 0..subs {
        let mut c = Client::connect(t.addr, &t.client_id(&format!("sub{i}")), 0).await?;
        c.subscribe(&topic, qos).await?;
        receivers.push(tokio::spawn(Subscriber::new(c, expect).run(done.clone())));
    }
    let c = Client::connect(t.addr, &t.client_id("pub"), 0).await?;
    let mut p = Publisher::new(c, qos, t.window);
    let mut msg = Message::new(topic, false);
    let sent = p.run(messages, &mut msg, |seq, m| stamp(m, 0, seq)).await?;
    p.client.disconnect().await;
    done.store(true, Ordering::Release);

    let mut all: Vec<SubStats> = Vec::new();
    for r in receivers {
        all.push(r.await.context("subscriber task")??);
    }
    let mut total = SubStats::default();
    for s in &all {
        total.received += s.received;
        total.distinct += s.distinct;
        total.duplicates += s.duplicates;
        total.out_of_order += s.out_of_order;
        total.foreign += s.foreign;
        total.last_at = total.last_at.max(s.last_at);
    }
    let expected = messages * subs as u64;
    let (throughput, elapsed) = match (sent.first_send, total.last_at) {
        (Some(f), Some(l)) => (rate(total.distinct, l - f), (l - f).as_secs_f64()),
        _ => (0.0, 0.0),
    };
    let publish_rate = sent
        .first_send
        .map_or(0.0, |f| rate(messages, sent.done_at - f));
    let least = all.iter().map(|s| s.distinct).min().unwrap_or(0);
    Ok(delivery_fields(&total, expected)
        .int("least_per_subscriber", least)
        .num("elapsed_s", elapsed)
        .num("throughput", throughput)
        .num("publish_rate", publish_rate))
}
