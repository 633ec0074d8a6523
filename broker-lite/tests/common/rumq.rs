//! A rumqttc client whose event loop runs in a background task, with waits.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{wait_for, QUIET};

/// A rumqttc client whose event loop runs in a background task.
pub struct Rumq {
    pub client: rumqttc::AsyncClient,
    events: mpsc::Receiver<Result<rumqttc::Event, String>>,
    task: JoinHandle<()>,
}

/// rumqttc options for the broker at `addr`.
pub fn rumq_options(addr: SocketAddr, client_id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl Rumq {
    /// Start the event loop and wait for CONNACK.
    pub async fn connect(opts: rumqttc::MqttOptions) -> Rumq {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
        // Bounded: an event loop that runs ahead of the test waits for it.
        let (tx, events) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        return;
                    }
                }
            }
        });
        let mut c = Rumq {
            client,
            events,
            task,
        };
        c.wait_incoming("CONNACK", |p| matches!(p, rumqttc::Packet::ConnAck(_)))
            .await;
        c
    }

    /// A clean-session rumqttc client.
    pub async fn connect_to(addr: SocketAddr, client_id: &str) -> Rumq {
        Rumq::connect(rumq_options(addr, client_id)).await
    }

    /// The next event; fails the test if the connection fails or after `WAIT`.
    pub async fn next_event(&mut self) -> rumqttc::Event {
        match wait_for("a rumqttc event", self.events.recv()).await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => panic!("rumqttc connection failed: {e}"),
            None => panic!("rumqttc event loop ended"),
        }
    }

    /// Skip events until an incoming packet matches `pred`, and return it.
    pub async fn wait_incoming(
        &mut self,
        what: &str,
        pred: impl Fn(&rumqttc::Packet) -> bool,
    ) -> rumqttc::Packet {
        wait_for(what, async {
            loop {
                if let rumqttc::Event::Incoming(p) = self.next_event().await {
                    if pred(&p) {
                        return p;
                    }
                }
            }
        })
        .await
    }

    /// The next incoming PUBLISH.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .wait_incoming("PUBLISH", |p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// Subscribe and wait for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
        if let Err(e) = self.client.subscribe(filter, qos).await {
            panic!("subscribe request failed: {e}");
        }
        match self
            .wait_incoming("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_)))
            .await
        {
            rumqttc::Packet::SubAck(a) => a,
            _ => unreachable!(),
        }
    }

    /// Whether an incoming PUBLISH arrives within `QUIET` (no other event is a failure).
    pub async fn publish_within_quiet(&mut self) -> Option<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => return None,
                Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))))) => {
                    return Some(p)
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("rumqttc connection failed: {e}"),
                Ok(None) => panic!("rumqttc event loop ended"),
            }
        }
    }
}

impl Drop for Rumq {
    fn drop(&mut self) {
        self.task.abort();
    }
}
