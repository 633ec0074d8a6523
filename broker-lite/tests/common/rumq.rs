//! A rumqttc client whose event loop runs in a background task, with waits.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{unique_id, wait_for, RawClient};

/// A rumqttc client whose event loop runs in a background task.
pub(crate) struct Rumq {
    pub client: rumqttc::AsyncClient,
    events: mpsc::Receiver<Result<rumqttc::Event, String>>,
    task: JoinHandle<()>,
}

/// rumqttc options for the broker at `addr`.
pub(crate) fn rumq_options(addr: SocketAddr, client_id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl Rumq {
    /// Start the event loop and wait for CONNACK.
    pub(crate) async fn connect(opts: rumqttc::MqttOptions) -> Rumq {
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
    pub(crate) async fn connect_to(addr: SocketAddr, client_id: &str) -> Rumq {
        Rumq::connect(rumq_options(addr, client_id)).await
    }

    /// The next event; fails the test if the connection fails or after `WAIT`.
    pub(crate) async fn next_event(&mut self) -> rumqttc::Event {
        match wait_for("a rumqttc event", self.events.recv()).await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => panic!("rumqttc connection failed: {e}"),
            None => panic!("rumqttc event loop ended"),
        }
    }

    /// Skip events until an incoming packet matches `pred`, and return it.
    pub(crate) async fn wait_incoming(
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
    pub(crate) async fn next_publish(&mut self) -> rumqttc::Publish {
        match self
            .wait_incoming("PUBLISH", |p| matches!(p, rumqttc::Packet::Publish(_)))
            .await
        {
            rumqttc::Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// Subscribe and wait for the SUBACK.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> rumqttc::SubAck {
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

    /// The first PUBLISH that comes before a fence, or `None`: subscribes to a topic
    /// of its own, a client of its own publishes a marker there at QoS 1 (routed,
    /// after all that was routed before, once acknowledged), and every PUBLISH up to
    /// the marker counts.
    pub(crate) async fn publish_before_fence(
        &mut self,
        addr: SocketAddr,
    ) -> Option<rumqttc::Publish> {
        let topic = unique_id("fence");
        self.client
            .subscribe(&topic, rumqttc::QoS::AtMostOnce)
            .await
            .expect("queue SUBSCRIBE");
        let mut first = None;
        loop {
            match self.next_event().await {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => break,
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    first.get_or_insert(p);
                }
                _ => {}
            }
        }
        let mut fence = RawClient::connect(addr, &unique_id("fence-pub")).await;
        fence.publish(&topic, b"fence", 1, false, 1).await;
        fence.disconnect().await;
        loop {
            let p = self.next_publish().await;
            if p.topic == topic {
                return first;
            }
            first.get_or_insert(p);
        }
    }
}

impl Drop for Rumq {
    fn drop(&mut self) {
        self.task.abort();
    }
}
