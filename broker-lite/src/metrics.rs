//! Broker counters: atomics written by the router and the connections, read as snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters. Cheap to update from any task.
        #[derive(Debug)]
        pub struct Metrics {
            started: Instant,
            $($(#[$doc])* pub(crate) $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            /// Seconds since the broker started.
            pub uptime_secs: u64,
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            pub fn new() -> Metrics {
                Metrics { started: Instant::now(), $($name: AtomicU64::new(0),)* }
            }

            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    uptime_secs: self.started.elapsed().as_secs(),
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Network connections open now (CONNECT received or not).
    connections_current,
    /// Network connections accepted since start.
    connections_total,
    /// Connections closed at once because `max_connections` were open.
    connections_refused,
    /// Connections closed at once because their IP address had `max_connections_per_ip` open.
    connections_refused_per_ip,
    /// TLS or WebSocket handshakes that failed or did not finish within the CONNECT timeout.
    handshakes_failed,
    /// Clients with an accepted CONNECT right now.
    clients_connected,
    /// Sessions kept by the broker (connected or not).
    sessions,
    /// Packets that broke a rule of the protocol; each closed its connection.
    malformed_packets,
    /// PUBLISH packets received from clients and the in-process handle.
    messages_received,
    /// PUBLISH packets sent to clients and in-process subscribers.
    messages_sent,
    /// Bytes read from client sockets.
    bytes_received,
    /// Bytes written to client sockets.
    bytes_sent,
    /// Messages given up: queue overflow, QoS 0 to a client whose output is full.
    messages_dropped,
    /// The QoS 0 part of `messages_dropped`: a full queue or output gives these up
    /// before any QoS 1/2 message.
    messages_dropped_qos0,
    /// Retained messages held.
    retained_messages,
    /// Subscriptions held (filter and session pairs).
    subscriptions,
    /// Wills published.
    wills_published,
    /// CONNECTs refused for their credentials (CONNACK 4 or 5).
    logins_refused,
    /// CONNECTs refused (CONNACK 2) because their client id belongs to a session
    /// another user made.
    client_ids_refused,
    /// CONNECTs refused (CONNACK 3) because a new persistent session would pass
    /// `max_sessions` or `max_sessions_per_user`.
    sessions_refused,
    /// Retained PUBLISH packets and wills dropped because they would pass a
    /// retained limit (`max_retained_*`).
    retained_refused,
    /// Messages dropped because the queues together held `max_queued_bytes_total`.
    queue_budget_drops,
    /// Bytes (topic and payload) queued in all sessions.
    queued_bytes,
    /// CONNECTs refused without a password check because their IP address, or
    /// their user name from an address with failures, failed too often lately
    /// (CONNACK 5; `auth.max_failures_per_ip`, `auth.max_failures_per_user`).
    logins_throttled,
    /// CONNECTs refused because no password check was free within
    /// `auth.max_login_wait_ms` (CONNACK 3).
    logins_timed_out,
    /// PUBLISH packets (and wills) dropped because the ACL refuses the topic, or
    /// because it starts with `$` (the broker's own); in-process publishes too.
    publishes_denied,
    /// Topic filters refused in SUBACK (0x80) because the ACL refuses them.
    subscriptions_denied,
    /// PUBLISH packets and wills dropped, and topic filters refused in SUBACK,
    /// because the topic is over `max_topic_length` or `max_topic_levels`.
    topics_refused,
    /// Topic filters refused in SUBACK because the session already holds
    /// `max_subscriptions_per_client` subscriptions.
    subscriptions_refused,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

pub(crate) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}
