//! Retained delivery: store many retained messages, then time how long a new
//! subscriber takes to receive all of them.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mqtt_proto::codec::QoS;

use super::{delivery_fields, rate, Target};
use crate::client::Client;
use crate::publisher::{stamp, Message, Publisher};
use crate::report::Json;
use crate::subscriber::{Expect, Subscriber};

/// Publish `count` retained QoS 1 messages on distinct topics and wait for every
/// PUBACK; then a new client subscribes to the prefix with `#` at QoS 1, and the
/// time from SUBSCRIBE to the last retained message is measured.
pub(crate) async fn retained(t: &Target, count: u64) -> Result<Json> {
    let prefix = t.topic("retained");
    let c = Client::connect(t.addr, &t.client_id("pub"), 0).await?;
    let mut p = Publisher::new(c, QoS::AtLeastOnce, t.window);
    let mut msg = Message::new(String::new(), true);
    let stored = p
        .run(count, &mut msg, |i, m| {
            m.topic.clear();
            let _ = write!(m.topic, "{prefix}/{i}");
            stamp(m, 0, i);
        })
        .await?;
    p.client.disconnect().await;
    let publish_time = stored
        .first_send
        .map_or(Duration::ZERO, |f| stored.done_at - f);

    let expect = Expect {
        publishers: 1,
        per_publisher: count,
        quiet: Duration::from_secs(5),
        latency_from_ns: None,
    };
    let c = Client::connect(t.addr, &t.client_id("sub"), 0).await?;
    let mut sub = Subscriber::new(c, expect);
    sub.client()
        .queue_subscribe(&format!("{prefix}/#"), QoS::AtLeastOnce);
    let start = Instant::now();
    let got = sub
        .run(Arc::new(AtomicBool::new(true)))
        .await
        .context("receiving retained messages")?;
    let delivery = got.last_at.map_or(Duration::ZERO, |l| l - start);
    Ok(delivery_fields(&got, count)
        .int("retain_flag_set", got.retained)
        .num("publish_s", publish_time.as_secs_f64())
        .num("publish_rate", rate(count, publish_time))
        .num("delivery_s", delivery.as_secs_f64())
        .num("delivery_rate", rate(got.distinct, delivery)))
}
