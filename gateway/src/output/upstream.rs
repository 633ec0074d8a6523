//! Publish to an upstream MQTT broker with rumqttc: QoS 0/1/2, optional TLS
//! (rustls) with a CA and a client certificate, user name and password, and a
//! retained birth message `online` / will `offline` on `mqgate/<id>/status`.
//! Reconnects with the shared back-off policy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_lite::codec::QoS;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::message::Message;

/// Requests rumqttc buffers between this output and its event loop.
const CLIENT_CAPACITY: usize = 1024;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub host: String,
    pub port: u16,
    /// PEM files' contents when the url is `mqtts://` (an empty CA: the system's roots).
    pub tls: Option<TlsFiles>,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub clean_session: bool,
    /// Put in front of every topic, e.g. `site-a/`.
    pub topic_prefix: String,
    /// For the status topic `mqgate/<gateway_id>/status`.
    pub gateway_id: String,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
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
    pub published: AtomicU64,
    pub connects: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl UpstreamSettings {
    pub fn status_topic(&self) -> String {
        format!("{}mqgate/{}/status", self.topic_prefix, self.gateway_id)
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_keep_alive(self.keep_alive.max(Duration::from_secs(1)));
        o.set_clean_session(self.clean_session);
        if let Some(user) = &self.username {
            o.set_credentials(user, self.password.clone().unwrap_or_default());
        }
        o.set_last_will(LastWill::new(
            self.status_topic(),
            "offline",
            rumqttc::QoS::AtLeastOnce,
            true,
        ));
        match &self.tls {
            // No CA file: trust the system's roots.
            Some(tls) if tls.ca_pem.is_empty() && tls.client.is_none() => {
                o.set_transport(Transport::tls_with_default_config());
            }
            Some(tls) => {
                o.set_transport(Transport::Tls(TlsConfiguration::Simple {
                    ca: tls.ca_pem.clone(),
                    alpn: None,
                    client_auth: tls.client.clone(),
                }));
            }
            None => {}
        }
        o
    }
}

fn qos(q: QoS) -> rumqttc::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

/// Publish every message from `rx` upstream until it closes; then say `offline` and disconnect.
pub async fn run(
    settings: UpstreamSettings,
    mut rx: mpsc::Receiver<Message>,
    status: Arc<UpstreamStatus>,
    shutdown: watch::Receiver<bool>,
) {
    let (client, eventloop) = AsyncClient::new(settings.options(), CLIENT_CAPACITY);
    let driver = tokio::spawn(drive(
        eventloop,
        client.clone(),
        settings.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    // The channel closes once the sources have stopped and everything before
    // them has been mapped: what was sent is handed to the client first.
    while let Some(msg) = rx.recv().await {
        let topic = format!("{}{}", settings.topic_prefix, msg.topic);
        if client
            .publish_bytes(topic, qos(msg.qos), msg.retain, msg.payload)
            .await
            .is_err()
        {
            break;
        }
    }
    // Say goodbye: the retained status becomes `offline` without waiting for the will.
    let _ = client
        .publish(
            settings.status_topic(),
            rumqttc::QoS::AtLeastOnce,
            true,
            "offline",
        )
        .await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
}

/// Run the event loop: reconnect with back-off, publish the birth message on every connect.
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    settings: UpstreamSettings,
    status: Arc<UpstreamStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(host = %settings.host, port = settings.port, "connected upstream");
                status.connected.store(true, Ordering::Relaxed);
                status.connects.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                let _ = client.try_publish(
                    settings.status_topic(),
                    rumqttc::QoS::AtLeastOnce,
                    true,
                    "online",
                );
            }
            Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                status.published.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                // Flush the DISCONNECT, then stop.
                let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                status.connected.store(false, Ordering::Relaxed);
                let text = e.to_string();
                warn!(host = %settings.host, port = settings.port, "upstream: {text}");
                *status.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    status.connected.store(false, Ordering::Relaxed);
}
