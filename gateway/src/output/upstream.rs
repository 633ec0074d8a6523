//! Publish what the store holds to an upstream MQTT broker: QoS 0/1/2, optional
//! TLS with a CA and a client certificate, user name and password, and a retained
//! birth message `online` / will `offline` on `mqgate/<id>/status`. Reconnects with
//! the shared back-off policy.
//!
//! The store owns resending: packet ids come from the store's row ids, a message is
//! done only on PUBACK (QoS 1) or PUBCOMP (QoS 2), a PUBREC is committed before the
//! PUBREL goes out, and after a reconnect or a restart what was in flight is sent
//! again in order with DUP (or its PUBREL), then the backlog drains through the window.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use mqtt_proto::codec::QoS;

use super::client::{ClientOptions, Will};

pub use super::event_loop::run;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Where and how to connect; the will is set from the status topic.
    pub client: ClientOptions,
    /// Put in front of every topic, e.g. `site-a/`.
    pub topic_prefix: String,
    /// For the status topic `mqgate/<gateway_id>/status`.
    pub gateway_id: String,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// Messages awaiting PUBACK or PUBCOMP at most (`upstream.max_inflight`); fewer
    /// after the broker has cut the connection on a full window (see `window`).
    pub max_inflight: usize,
    /// Set when commands are taken from this broker: what is published is noted.
    pub echoes: Option<std::sync::Arc<super::echoes::Echoes>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, PEM.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// State and counters of the upstream output.
#[derive(Debug, Default)]
pub struct UpstreamStatus {
    pub connected: AtomicBool,
    /// Messages acknowledged by the broker (PUBACK / PUBCOMP; QoS 0 once written).
    pub published: AtomicU64,
    /// Messages sent and not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Messages sent again after a reconnect or a restart.
    pub resent: AtomicU64,
    /// Resends that may arrive twice: every QoS 1 resend, and a QoS 2 resend whose
    /// PUBLISH goes again because the broker had lost our session.
    pub possible_duplicates: AtomicU64,
    pub connects: AtomicU64,
    /// Connects on which the broker had lost the session it was to keep
    /// (`clean_session: false`, the session present flag unset).
    pub sessions_lost: AtomicU64,
    /// `upstream.max_inflight` as configured.
    pub max_inflight: AtomicU64,
    /// Messages allowed in flight now: `max_inflight`, halved after cut-offs.
    pub window: AtomicU64,
    /// Connections the broker closed right after a burst (with at least half the
    /// window in flight) and accepted again at once.
    pub cutoffs: AtomicU64,
    /// Most QoS 2 messages at once whose PUBREC had come and whose PUBREL was not
    /// yet sent (it waits for the PUBREC's commit).
    pub awaiting_release_max: AtomicU64,
    /// Why the connection failed last, and when; cleared once connected again.
    pub last_error: Mutex<Option<(String, SystemTime)>>,
}

impl UpstreamSettings {
    pub fn status_topic(&self) -> String {
        format!("{}mqgate/{}/status", self.topic_prefix, self.gateway_id)
    }

    /// The client options with the will `offline` on the status topic.
    pub(super) fn options(&self) -> ClientOptions {
        ClientOptions {
            will: Some(Will {
                topic: self.status_topic(),
                payload: Bytes::from_static(b"offline"),
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            ..self.client.clone()
        }
    }
}
