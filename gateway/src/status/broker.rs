//! The embedded broker's part of the status: broker-lite's own counters, read
//! through the `Metrics` handle the running broker shares, plus its listeners.
//! What a LAN operator must see are the refusals: a sensor with a wrong
//! password or a topic its ACL does not allow is otherwise silent.

use std::net::SocketAddr;
use std::sync::Arc;

use broker_lite::{Metrics, MetricsSnapshot};
use serde::{Deserialize, Serialize};

/// The embedded broker's counters and where it listens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    /// Every bound listener's address (port 0 in the file shows the real port),
    /// in the order of the configuration.
    pub listeners: Vec<String>,
    /// Network connections open now, with a CONNECT accepted or not yet.
    pub connections: u64,
    /// Network connections accepted since the start.
    pub connections_total: u64,
    /// Clients whose CONNECT was accepted and that are connected now.
    pub clients_connected: u64,
    /// Sessions kept, connected or not.
    pub sessions: u64,
    /// Subscriptions held (filter and session pairs).
    pub subscriptions: u64,
    pub retained_messages: u64,
    /// PUBLISH packets from clients and from the gateway itself.
    pub messages_received: u64,
    /// PUBLISH packets to clients and in-process subscribers.
    pub messages_sent: u64,
    /// Messages given up (queue overflow, QoS 0 to a client whose output is full).
    pub messages_dropped: u64,
    /// The QoS 0 part of `messages_dropped`.
    pub messages_dropped_qos0: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub wills_published: u64,
    pub refusals: BrokerRefusals,
}

/// What the broker refused, by reason. The field names are the `reason` label
/// of `mqgate_broker_refusals_total`, so the JSON and the metrics say the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerRefusals {
    /// CONNECTs refused for their credentials (CONNACK 4 or 5).
    pub login: u64,
    /// CONNECTs refused before a password check: their address or user name
    /// failed too often lately (CONNACK 5).
    pub login_throttled: u64,
    /// CONNECTs that found no password check free in time (CONNACK 3).
    pub login_timed_out: u64,
    /// CONNECTs refused (CONNACK 2): the client id belongs to another user's session.
    pub client_id: u64,
    /// CONNECTs refused (CONNACK 3) by `max_sessions` / `max_sessions_per_user`.
    pub session_limit: u64,
    /// Retained publishes and wills dropped by the `max_retained_*` limits.
    pub retained_limit: u64,
    /// Messages dropped because the queues held `max_queued_bytes_total`.
    pub queue_budget: u64,
    /// PUBLISH packets (and wills) dropped because the ACL refuses the topic.
    pub publish_acl: u64,
    /// Topic filters refused in SUBACK because the ACL refuses them.
    pub subscribe_acl: u64,
    /// Publishes, wills and filters refused for `max_topic_length` / `max_topic_levels`.
    pub topic_limit: u64,
    /// Filters refused because the session holds `max_subscriptions_per_client`.
    pub subscription_limit: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connection_limit: u64,
    /// Connections closed at once because their IP had `max_connections_per_ip` open.
    pub connection_limit_per_ip: u64,
    /// TLS or WebSocket handshakes that failed or timed out.
    pub handshake: u64,
    /// Packets that broke the protocol; each closed its connection.
    pub malformed: u64,
}

impl BrokerRefusals {
    /// Each reason with its count, as the metric's `reason` label.
    pub fn by_reason(&self) -> [(&'static str, u64); 15] {
        [
            ("login", self.login),
            ("login_throttled", self.login_throttled),
            ("login_timed_out", self.login_timed_out),
            ("client_id", self.client_id),
            ("session_limit", self.session_limit),
            ("retained_limit", self.retained_limit),
            ("queue_budget", self.queue_budget),
            ("publish_acl", self.publish_acl),
            ("subscribe_acl", self.subscribe_acl),
            ("topic_limit", self.topic_limit),
            ("subscription_limit", self.subscription_limit),
            ("connection_limit", self.connection_limit),
            ("connection_limit_per_ip", self.connection_limit_per_ip),
            ("handshake", self.handshake),
            ("malformed", self.malformed),
        ]
    }

    /// All refusals together.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }
}

/// The handles a broker snapshot is read from: cheap to clone and keep in the
/// HTTP server while the gateway owns the broker.
#[derive(Debug, Clone)]
pub struct WatchedBroker {
    pub metrics: Arc<Metrics>,
    pub listeners: Vec<SocketAddr>,
}

impl WatchedBroker {
    pub fn new(broker: &broker_lite::Broker) -> WatchedBroker {
        WatchedBroker {
            metrics: broker.metrics(),
            listeners: broker.local_addrs().to_vec(),
        }
    }

    pub fn snapshot(&self) -> BrokerSnapshot {
        BrokerSnapshot::from_metrics(&self.metrics.snapshot(), &self.listeners)
    }
}

impl BrokerSnapshot {
    /// Broker-lite's counters under the names the status API uses.
    pub fn from_metrics(m: &MetricsSnapshot, listeners: &[SocketAddr]) -> BrokerSnapshot {
        BrokerSnapshot {
            listeners: listeners.iter().map(ToString::to_string).collect(),
            connections: m.connections_current,
            connections_total: m.connections_total,
            clients_connected: m.clients_connected,
            sessions: m.sessions,
            subscriptions: m.subscriptions,
            retained_messages: m.retained_messages,
            messages_received: m.messages_received,
            messages_sent: m.messages_sent,
            messages_dropped: m.messages_dropped,
            messages_dropped_qos0: m.messages_dropped_qos0,
            bytes_received: m.bytes_received,
            bytes_sent: m.bytes_sent,
            wills_published: m.wills_published,
            refusals: BrokerRefusals {
                login: m.logins_refused,
                login_throttled: m.logins_throttled,
                login_timed_out: m.logins_timed_out,
                client_id: m.client_ids_refused,
                session_limit: m.sessions_refused,
                retained_limit: m.retained_refused,
                queue_budget: m.queue_budget_drops,
                publish_acl: m.publishes_denied,
                subscribe_acl: m.subscriptions_denied,
                topic_limit: m.topics_refused,
                subscription_limit: m.subscriptions_refused,
                connection_limit: m.connections_refused,
                connection_limit_per_ip: m.connections_refused_per_ip,
                handshake: m.handshakes_failed,
                malformed: m.malformed_packets,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker-lite snapshot whose every counter holds a different number, so
    /// that a field read from the wrong counter shows.
    // Field by field, so that a counter broker-lite adds later does not stop
    // this from compiling.
    #[allow(clippy::field_reassign_with_default)]
    fn distinct() -> MetricsSnapshot {
        let mut m = MetricsSnapshot::default();
        m.uptime_secs = 1;
        m.connections_current = 2;
        m.connections_total = 3;
        m.connections_refused = 4;
        m.connections_refused_per_ip = 5;
        m.handshakes_failed = 6;
        m.clients_connected = 7;
        m.sessions = 8;
        m.malformed_packets = 9;
        m.messages_received = 10;
        m.messages_sent = 11;
        m.bytes_received = 12;
        m.bytes_sent = 13;
        m.messages_dropped = 14;
        m.messages_dropped_qos0 = 15;
        m.retained_messages = 16;
        m.subscriptions = 17;
        m.wills_published = 18;
        m.logins_refused = 19;
        m.publishes_denied = 20;
        m.subscriptions_denied = 21;
        m.topics_refused = 22;
        m.subscriptions_refused = 23;
        m.client_ids_refused = 24;
        m.sessions_refused = 25;
        m.retained_refused = 26;
        m.queue_budget_drops = 27;
        m.logins_throttled = 28;
        m.logins_timed_out = 29;
        m
    }

    #[test]
    fn every_broker_counter_lands_in_its_own_field() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:1883".parse().unwrap(),
            "[::1]:8883".parse().unwrap(),
        ];
        let s = BrokerSnapshot::from_metrics(&distinct(), &addrs);
        assert_eq!(s.listeners, ["127.0.0.1:1883", "[::1]:8883"]);
        assert_eq!(
            [
                s.connections,
                s.connections_total,
                s.clients_connected,
                s.sessions,
                s.subscriptions,
                s.retained_messages,
                s.messages_received,
                s.messages_sent,
                s.messages_dropped,
                s.messages_dropped_qos0,
                s.bytes_received,
                s.bytes_sent,
                s.wills_published,
            ],
            [2, 3, 7, 8, 17, 16, 10, 11, 14, 15, 12, 13, 18]
        );
        assert_eq!(
            s.refusals.by_reason(),
            [
                ("login", 19),
                ("login_throttled", 28),
                ("login_timed_out", 29),
                ("client_id", 24),
                ("session_limit", 25),
                ("retained_limit", 26),
                ("queue_budget", 27),
                ("publish_acl", 20),
                ("subscribe_acl", 21),
                ("topic_limit", 22),
                ("subscription_limit", 23),
                ("connection_limit", 4),
                ("connection_limit_per_ip", 5),
                ("handshake", 6),
                ("malformed", 9),
            ]
        );
        assert_eq!(
            s.refusals.total(),
            19 + 28 + 29 + 24 + 25 + 26 + 27 + 20 + 21 + 22 + 23 + 4 + 5 + 6 + 9
        );
    }

    #[test]
    fn the_json_names_each_refusal_by_its_metric_reason() {
        let s = BrokerSnapshot::from_metrics(&distinct(), &[]);
        let json = serde_json::to_value(&s).unwrap();
        for (reason, n) in s.refusals.by_reason() {
            assert_eq!(json["refusals"][reason], n, "{reason} in {json}");
        }
        assert_eq!(json["clients_connected"], 7);
        assert_eq!(json["messages_dropped_qos0"], 15);
    }
}
