//! The embedded broker's families in `/metrics`, all named `mqgate_broker_*`.
//! Gauges for what the broker holds now, counters for what it has done since the
//! start, and every refusal in one family with a `reason` label so that one alert
//! rule (`increase(mqgate_broker_refusals_total[5m]) > 0`) covers them all.

use super::broker::BrokerSnapshot;
use super::metrics::Family;

/// What the broker holds now.
type Value = fn(&BrokerSnapshot) -> u64;
const GAUGES: [(&str, &str, Value); 5] = [
    (
        "mqgate_broker_connections",
        "Network connections open to the embedded broker, with a CONNECT accepted or not yet.",
        |b| b.connections,
    ),
    (
        "mqgate_broker_clients_connected",
        "Clients connected to the embedded broker with an accepted CONNECT.",
        |b| b.clients_connected,
    ),
    (
        "mqgate_broker_sessions",
        "Sessions the embedded broker keeps, connected or not.",
        |b| b.sessions,
    ),
    (
        "mqgate_broker_subscriptions",
        "Subscriptions the embedded broker holds (filter and session pairs).",
        |b| b.subscriptions,
    ),
    (
        "mqgate_broker_retained_messages",
        "Retained messages the embedded broker holds.",
        |b| b.retained_messages,
    ),
];

/// What the broker has done since the start.
const COUNTERS: [(&str, &str, Value); 8] = [
    (
        "mqgate_broker_connections_total",
        "Network connections the embedded broker accepted.",
        |b| b.connections_total,
    ),
    (
        "mqgate_broker_messages_received_total",
        "PUBLISH packets the embedded broker received, from clients and from the gateway.",
        |b| b.messages_received,
    ),
    (
        "mqgate_broker_messages_sent_total",
        "PUBLISH packets the embedded broker sent to subscribers.",
        |b| b.messages_sent,
    ),
    (
        "mqgate_broker_messages_dropped_total",
        "Messages the embedded broker gave up (queue overflow, QoS 0 to a client whose output is full).",
        |b| b.messages_dropped,
    ),
    (
        "mqgate_broker_messages_dropped_qos0_total",
        "The QoS 0 part of mqgate_broker_messages_dropped_total.",
        |b| b.messages_dropped_qos0,
    ),
    (
        "mqgate_broker_bytes_received_total",
        "Bytes the embedded broker read from client sockets.",
        |b| b.bytes_received,
    ),
    (
        "mqgate_broker_bytes_sent_total",
        "Bytes the embedded broker wrote to client sockets.",
        |b| b.bytes_sent,
    ),
    (
        "mqgate_broker_wills_published_total",
        "Will messages the embedded broker published.",
        |b| b.wills_published,
    ),
];

/// Appends the broker's families to `out`.
pub(super) fn render(out: &mut String, b: &BrokerSnapshot) {
    let mut f = Family::new(
        out,
        "mqgate_broker_listener_info",
        "gauge",
        "An address the embedded broker listens on; always 1.",
    );
    for addr in &b.listeners {
        f.sample(&[("address", addr)], 1.0);
    }
    for (name, help, get) in GAUGES {
        Family::new(out, name, "gauge", help).sample(&[], get(b) as f64);
    }
    for (name, help, get) in COUNTERS {
        Family::new(out, name, "counter", help).sample(&[], get(b) as f64);
    }
    let mut f = Family::new(
        out,
        "mqgate_broker_refusals_total",
        "counter",
        "What the embedded broker refused, by reason: login (bad credentials), \
         login_throttled (refused unchecked after repeated failures), login_timed_out \
         (no password check free in time), publish_acl and subscribe_acl (the ACL), topic_limit, subscription_limit, \
         connection_limit, connection_limit_per_ip, handshake (TLS or WebSocket), \
         malformed (a protocol violation).",
    );
    for (reason, n) in b.refusals.by_reason() {
        f.sample(&[("reason", reason)], n as f64);
    }
}
