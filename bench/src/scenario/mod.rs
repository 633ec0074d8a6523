//! The five scenarios and what they share: where the broker is, the timeout that
//! bounds every run, and the CPU accounting around it.

mod fanin;
mod fanout;
mod idle;
mod latency;
mod retained;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use mqtt_proto::codec::QoS;

use crate::report::{process_cpu, self_cpu, Json};
use crate::subscriber::SubStats;

pub(crate) use fanin::fanin;
pub(crate) use fanout::fanout;
pub(crate) use idle::idle;
pub(crate) use latency::latency;
pub(crate) use retained::retained;

/// The broker under test and the settings every scenario uses.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub addr: SocketAddr,
    /// The broker's process id, for its CPU time and memory.
    pub pid: Option<u32>,
    /// Name of the broker in the result line.
    pub label: String,
    /// A run that takes longer fails.
    pub timeout: Duration,
    /// QoS 1/2 messages a publisher keeps in flight.
    pub window: usize,
    /// Prefix that keeps topics and client ids of this run apart from others.
    pub run_id: String,
}

impl Target {
    pub(crate) fn client_id(&self, role: &str) -> String {
        format!("{}-{role}", self.run_id)
    }

    pub(crate) fn topic(&self, rest: &str) -> String {
        format!("bench/{}/{rest}", self.run_id)
    }
}

/// Run one scenario under the timeout and build its result line: the scenario's
/// own fields, whether it succeeded, wall time, and the CPU time of the tool and
/// the broker over the run.
pub(crate) async fn measure(
    name: &str,
    target: &Target,
    params: Json,
    scenario: impl Future<Output = Result<Json>>,
) -> (Json, bool) {
    let tool0 = self_cpu();
    let broker0 = target.pid.map(process_cpu);
    let start = Instant::now();
    let outcome = tokio::time::timeout(target.timeout, scenario).await;
    let wall = start.elapsed();
    let tool = self_cpu().saturating_sub(tool0);
    let broker = match (target.pid.map(process_cpu), broker0) {
        (Some(Ok(after)), Some(Ok(before))) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let mut line = Json::new()
        .str("scenario", name)
        .str("broker", &target.label)
        .extend(params);
    let ok = matches!(outcome, Ok(Ok(_)));
    line = match outcome {
        Ok(Ok(fields)) => line.bool("ok", true).null("error").extend(fields),
        Ok(Err(e)) => line.bool("ok", false).str("error", &format!("{e:#}")),
        Err(_) => line.bool("ok", false).str(
            "error",
            &format!("timed out after {} s", target.timeout.as_secs()),
        ),
    };
    line = line
        .num("wall_s", wall.as_secs_f64())
        .num("tool_cpu_s", tool.as_secs_f64())
        .num("tool_cpu_pct", pct(tool, wall));
    line = match broker {
        Some(b) => line
            .num("broker_cpu_s", b.as_secs_f64())
            .num("broker_cpu_pct", pct(b, wall)),
        None => line.null("broker_cpu_s").null("broker_cpu_pct"),
    };
    (line, ok)
}

fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// How long a subscriber waits for stragglers once the publishers are done:
/// a QoS 0 message that has not come by then was dropped.
fn quiet_time(qos: QoS) -> Duration {
    match qos {
        QoS::AtMostOnce => Duration::from_secs(1),
        _ => Duration::from_secs(3),
    }
}

/// Delivery checks shared by the throughput scenarios.
fn delivery_fields(s: &SubStats, expected: u64) -> Json {
    Json::new()
        .int("expected", expected)
        .int("received", s.received)
        .int("distinct", s.distinct)
        .int("lost", expected.saturating_sub(s.distinct))
        .int("duplicates", s.duplicates)
        .int("out_of_order", s.out_of_order)
        .int("foreign", s.foreign)
}

/// Messages per second, or 0 when no time passed.
fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}
