//! The broker's own figures, published as retained `$SYS/broker/...` messages.

use crate::message::Message;
use mqtt_proto::codec::QoS;

use super::Router;

impl Router {
    pub(super) fn publish_sys(&mut self) {
        let m = self.metrics.snapshot();
        let values: [(&str, String); 23] = [
            ("clients/connected", m.clients_connected.to_string()),
            ("clients/total", m.sessions.to_string()),
            ("messages/received", m.messages_received.to_string()),
            ("messages/sent", m.messages_sent.to_string()),
            ("messages/dropped", m.messages_dropped.to_string()),
            ("messages/dropped qos0", m.messages_dropped_qos0.to_string()),
            ("limits/topics refused", m.topics_refused.to_string()),
            ("limits/sessions refused", m.sessions_refused.to_string()),
            ("limits/retained refused", m.retained_refused.to_string()),
            (
                "limits/queue budget drops",
                m.queue_budget_drops.to_string(),
            ),
            ("messages/queued bytes", m.queued_bytes.to_string()),
            (
                "limits/subscriptions refused",
                m.subscriptions_refused.to_string(),
            ),
            ("bytes/received", m.bytes_received.to_string()),
            ("bytes/sent", m.bytes_sent.to_string()),
            ("retained messages/count", m.retained_messages.to_string()),
            ("uptime", format!("{} seconds", m.uptime_secs)),
            ("auth/logins refused", m.logins_refused.to_string()),
            ("auth/client ids refused", m.client_ids_refused.to_string()),
            ("auth/logins throttled", m.logins_throttled.to_string()),
            ("auth/logins timed out", m.logins_timed_out.to_string()),
            ("auth/publishes denied", m.publishes_denied.to_string()),
            (
                "auth/subscriptions denied",
                m.subscriptions_denied.to_string(),
            ),
            (
                "version",
                format!("broker-lite {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        for (name, value) in values {
            let topic = format!("$SYS/broker/{name}");
            let msg = Message::new(&topic, value.into(), QoS::AtMostOnce, true);
            self.route(msg, None, false, None);
        }
    }
}
