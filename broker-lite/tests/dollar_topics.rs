//! Topics that start with `$` are the broker's own [MQTT-4.7.2-1]: a client's
//! PUBLISH, a will, or an in-process publish (a gateway's mapping script) to one is
//! refused like an ACL refusal: acknowledged, not delivered, not retained, counted.

use std::net::SocketAddr;
use std::time::Duration;

use broker_lite::{Broker, Config};
use bytes::Bytes;
use mqtt_proto::codec::QoS;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

const WAIT: Duration = Duration::from_secs(5);

async fn start() -> Broker {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval_secs: 0,
        ..Config::default()
    };
    Broker::start(config).await.expect("broker starts")
}

/// Receives from `sub` until the fence arrives; returns the topics before it.
async fn until_fence(sub: &mut broker_lite::Subscription) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, sub.recv())
            .await
            .expect("the fence arrives in time")
            .expect("the broker runs");
        if m.topic.as_ref() == "fence" {
            return before;
        }
        before.push(m.topic.to_string());
    }
}

#[tokio::test]
async fn in_process_publishes_to_dollar_topics_are_refused_and_counted() {
    let broker = start().await;
    let handle = broker.handle();
    let mut sub = handle
        .subscribe("$SYS/broker/uptime", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut others = handle.subscribe("$own/#", QoS::AtLeastOnce).await.unwrap();
    let mut fence = handle.subscribe("fence", QoS::AtLeastOnce).await.unwrap();
    for topic in ["$SYS/broker/uptime", "$own/x"] {
        handle
            .publish(topic, Bytes::from_static(b"forged"), QoS::AtLeastOnce, true)
            .await
            .expect("taken, like a client's PUBLISH that is acknowledged");
    }
    handle
        .publish("fence", Bytes::new(), QoS::AtLeastOnce, false)
        .await
        .unwrap();
    // The fence was routed after both: neither reached its subscriber.
    until_fence(&mut fence).await;
    assert!(
        sub_is_empty(&mut sub).await,
        "a forged $SYS message was delivered"
    );
    assert!(sub_is_empty(&mut others).await, "a $ message was delivered");
    assert_eq!(broker.metrics().snapshot().publishes_denied, 2);
    assert_eq!(broker.metrics().snapshot().retained_messages, 0);
    broker.shutdown().await;
}

/// True when nothing is waiting on `sub`: the messages routed before a fence that
/// was already seen would be there.
async fn sub_is_empty(sub: &mut broker_lite::Subscription) -> bool {
    tokio::time::timeout(Duration::ZERO, sub.recv())
        .await
        .is_err()
}

#[tokio::test]
async fn a_clients_publish_to_a_dollar_topic_is_acknowledged_but_not_delivered() {
    let broker = start().await;
    let mut watch = broker
        .handle()
        .subscribe("$SYS/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut fence = broker
        .handle()
        .subscribe("fence", QoS::AtLeastOnce)
        .await
        .unwrap();
    let addr = broker.local_addr();
    let mut opts = MqttOptions::new("forger", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .publish(
            "$SYS/broker/clients/connected",
            rumqttc::QoS::AtLeastOnce,
            true,
            "999",
        )
        .await
        .unwrap();
    client
        .publish("fence", rumqttc::QoS::AtLeastOnce, false, "")
        .await
        .unwrap();
    let mut acks = 0;
    tokio::time::timeout(WAIT, async {
        while acks < 2 {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.expect("connected") {
                acks += 1;
            }
        }
    })
    .await
    .expect("both publishes acknowledged");
    // One connection's messages are routed in order: once the fence is here, the
    // $SYS publish before it has been handled.
    assert!(until_fence(&mut fence).await.is_empty());
    assert!(
        sub_is_empty(&mut watch).await,
        "the forged $SYS message was delivered"
    );
    assert_eq!(broker.metrics().snapshot().publishes_denied, 1);
    broker.shutdown().await;
}
