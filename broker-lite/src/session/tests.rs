use super::*;
use mqtt_proto::codec::{read_packet, Publish};

fn limits(max_inflight: usize, max_queued: usize, overflow: QueueOverflow) -> SessionLimits {
    SessionLimits {
        max_inflight,
        max_queued,
        max_queued_bytes: usize::MAX,
        budget_full: false,
        overflow,
        outbox: OutboxLimits {
            soft: 1 << 16,
            hard: 1 << 20,
        },
    }
}

fn msg(n: u32, qos: QoS) -> Message {
    Message::new("t", bytes::Bytes::from(n.to_string()), qos, false)
}

fn connected(clean: bool) -> (Session, Arc<Outbox>) {
    let outbox = Arc::new(Outbox::default());
    let mut s = Session::new("c".into(), clean);
    s.link = Some(Link::Remote {
        conn: 1,
        outbox: outbox.clone(),
    });
    (s, outbox)
}

fn written(outbox: &Outbox) -> Vec<Packet> {
    let mut buf = outbox.take_now();
    let mut out = Vec::new();
    while let Some(p) = read_packet(&mut buf, 1 << 20).expect("session writes valid packets") {
        out.push(p);
    }
    out
}

fn publishes(packets: &[Packet]) -> Vec<(u16, bool, String)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(Publish {
                pkid, dup, payload, ..
            }) => Some((*pkid, *dup, String::from_utf8_lossy(payload).into_owned())),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_past_the_inflight_window_wait_and_go_out_in_order_as_acks_arrive() {
    let lim = limits(2, 10, QueueOverflow::DropOldest);
    let (mut s, outbox) = connected(false);
    for n in 1..=5 {
        s.deliver(msg(n, QoS::AtLeastOnce), &lim);
    }
    let first = publishes(&written(&outbox));
    assert_eq!(first, vec![(1, false, "1".into()), (2, false, "2".into())]);
    assert_eq!((s.inflight(), s.queued()), (2, 3));
    s.on_puback(1, &lim);
    s.on_puback(2, &lim);
    let next = publishes(&written(&outbox));
    assert_eq!(next, vec![(3, false, "3".into()), (4, false, "4".into())]);
    // A PUBACK for an id not in flight changes nothing.
    assert_eq!(s.on_puback(99, &lim), Outcome::default());
    assert_eq!(s.inflight(), 2);
}

#[test]
fn a_qos0_message_does_not_overtake_queued_messages() {
    let lim = limits(1, 10, QueueOverflow::DropOldest);
    let (mut s, outbox) = connected(false);
    s.deliver(msg(1, QoS::AtLeastOnce), &lim);
    s.deliver(msg(2, QoS::AtLeastOnce), &lim);
    s.deliver(msg(3, QoS::AtMostOnce), &lim);
    assert_eq!(publishes(&written(&outbox)).len(), 1);
    s.on_puback(1, &lim);
    let after: Vec<String> = publishes(&written(&outbox))
        .into_iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(after, vec!["2", "3"]);
}

#[test]
fn resume_resends_publishes_with_dup_and_pubrel_for_released_ones_in_order() {
    let lim = limits(10, 10, QueueOverflow::DropOldest);
    let (mut s, outbox) = connected(false);
    s.deliver(msg(1, QoS::ExactlyOnce), &lim);
    s.deliver(msg(2, QoS::AtLeastOnce), &lim);
    s.on_pubrec(1);
    written(&outbox);
    // The client goes away; one more message is queued while it is offline.
    s.link = None;
    s.deliver(msg(3, QoS::AtLeastOnce), &lim);
    s.deliver(msg(4, QoS::AtMostOnce), &lim);
    let (_, outbox2) = {
        let o = Arc::new(Outbox::default());
        s.link = Some(Link::Remote {
            conn: 2,
            outbox: o.clone(),
        });
        ((), o)
    };
    s.resume(&lim);
    let packets = written(&outbox2);
    assert_eq!(packets[0], Packet::PubRel(1));
    assert_eq!(
        publishes(&packets[1..]),
        vec![(2, true, "2".into()), (3, false, "3".into())],
        "the unacknowledged message comes back with DUP, then the queued one; QoS 0 was not kept"
    );
    s.on_pubcomp(1, &lim);
    s.on_puback(2, &lim);
    s.on_puback(3, &lim);
    assert_eq!(s.inflight(), 0);
}

#[test]
fn a_full_queue_drops_the_oldest_or_the_newest_as_configured() {
    for (overflow, kept) in [
        (QueueOverflow::DropOldest, vec!["3", "4"]),
        (QueueOverflow::DropNewest, vec!["1", "2"]),
    ] {
        let lim = limits(10, 2, overflow);
        let mut s = Session::new("c".into(), false);
        let mut dropped = 0;
        for n in 1..=4 {
            dropped += s.deliver(msg(n, QoS::AtLeastOnce), &lim).dropped;
        }
        assert_eq!(dropped, 2, "{overflow:?}");
        let outbox = Arc::new(Outbox::default());
        s.link = Some(Link::Remote {
            conn: 1,
            outbox: outbox.clone(),
        });
        s.resume(&lim);
        let got: Vec<String> = publishes(&written(&outbox))
            .into_iter()
            .map(|p| p.2)
            .collect();
        assert_eq!(got, kept, "{overflow:?}");
    }
}

#[test]
fn an_inbound_qos2_packet_id_is_routed_once_until_released() {
    let mut s = Session::new("c".into(), false);
    assert!(s.accept_incoming_qos2(7));
    assert!(
        !s.accept_incoming_qos2(7),
        "a resend before PUBREL is not routed again"
    );
    s.release_incoming_qos2(7);
    assert!(
        s.accept_incoming_qos2(7),
        "after PUBREL the id is free again"
    );
}

#[test]
fn packet_ids_skip_zero_when_they_wrap() {
    let lim = limits(1, 10, QueueOverflow::DropOldest);
    let (mut s, outbox) = connected(false);
    s.last_pkid = u16::MAX - 1;
    for n in 0..3 {
        s.deliver(msg(n, QoS::AtLeastOnce), &lim);
        let id = publishes(&written(&outbox))[0].0;
        s.on_puback(id, &lim);
        assert_ne!(id, 0);
    }
    assert_eq!(s.last_pkid, 2);
}

#[test]
fn qos0_to_a_client_whose_output_is_full_is_dropped_and_counted() {
    let mut lim = limits(10, 10, QueueOverflow::DropOldest);
    lim.outbox = OutboxLimits { soft: 5, hard: 10 };
    let (mut s, _outbox) = connected(false);
    let mut out = Outcome::default();
    for n in 0..5 {
        out.merge(s.deliver(msg(n, QoS::AtMostOnce), &lim));
    }
    assert!(out.sent >= 1 && out.dropped >= 1);
    assert_eq!(out.sent + out.dropped, 5);
    assert_eq!(out.dropped, out.dropped_qos0, "counted as QoS 0 drops");
}

#[test]
fn a_long_queue_asks_for_a_brake_and_a_short_one_releases_it() {
    let lim = limits(1, 8, QueueOverflow::DropOldest);
    let (mut s, outbox) = connected(false);
    let mut out = Outcome::default();
    for n in 0..6 {
        out.merge(s.deliver(msg(n, QoS::AtLeastOnce), &lim));
    }
    assert!(
        out.congested,
        "five queued of eight is past half: publishers are braked"
    );
    assert_eq!(out.dropped, 0);
    assert!(outbox.is_congested());
    let mut relieved = false;
    for id in 1..=4 {
        relieved |= s.on_puback(id, &lim).relieved;
    }
    assert!(relieved, "at two queued of eight the brake is released");
    assert!(!outbox.is_congested());
}

#[test]
fn a_full_queue_gives_up_qos0_messages_before_any_qos1_whatever_the_overflow_rule() {
    for (overflow, kept) in [
        (QueueOverflow::DropOldest, ["1", "5", "7", "8"]),
        (QueueOverflow::DropNewest, ["1", "2", "5", "7"]),
    ] {
        let lim = limits(1, 3, overflow);
        let (mut s, outbox) = connected(false);
        let mut out = Outcome::default();
        let plan = [
            (1, QoS::AtLeastOnce), // in flight
            (2, QoS::AtLeastOnce), // queued behind it
            (3, QoS::AtMostOnce),  // queued: nothing overtakes
            (4, QoS::AtMostOnce),  // the queue is full now
            (5, QoS::AtLeastOnce), // a QoS 0 message makes room
            (6, QoS::AtMostOnce),  // a QoS 0 one goes (old or new)
            (7, QoS::AtLeastOnce), // the last queued QoS 0 goes
            (8, QoS::AtLeastOnce), // only QoS 1 left: the overflow rule
            (9, QoS::AtMostOnce),  // nothing QoS 0 queued: the new one goes
        ];
        for (n, qos) in plan {
            out.merge(s.deliver(msg(n, qos), &lim));
        }
        assert_eq!((out.dropped, out.dropped_qos0), (5, 4), "{overflow:?}");
        assert_eq!((s.queued(), s.queued_qos0), (3, 0), "{overflow:?}");
        let mut got = Vec::new();
        for _ in 0..10 {
            let sent = publishes(&written(&outbox));
            let Some(&(pkid, _, ref payload)) = sent.first() else {
                break;
            };
            got.push(payload.clone());
            s.on_puback(pkid, &lim);
        }
        assert_eq!(got, kept, "{overflow:?}");
    }
}

#[test]
fn a_qos0_message_behind_a_full_window_is_dropped_when_the_queue_is_full_of_qos1() {
    let lim = limits(1, 2, QueueOverflow::DropOldest);
    let (mut s, _outbox) = connected(false);
    for n in 1..=3 {
        s.deliver(msg(n, QoS::AtLeastOnce), &lim);
    }
    let out = s.deliver(msg(4, QoS::AtMostOnce), &lim);
    assert_eq!((out.dropped, out.dropped_qos0), (1, 1));
    assert_eq!(s.queued(), 2, "the QoS 1 messages stay");
}

#[test]
fn subscriptions_cost_a_pointer_until_there_are_some_and_again_when_all_are_gone() {
    assert_eq!(std::mem::size_of::<Filters>(), std::mem::size_of::<usize>());
    let mut filters = Filters::default();
    assert_eq!((filters.len(), filters.contains_key("a/#")), (0, false));
    filters.insert("a/#".into(), QoS::AtLeastOnce);
    filters.insert("b".into(), QoS::AtMostOnce);
    filters.insert("a/#".into(), QoS::ExactlyOnce);
    assert_eq!(filters.len(), 2, "a filter subscribed again is replaced");
    assert!(filters.contains_key("a/#") && filters.contains_key("b"));
    assert!(!filters.remove("c"));
    assert!(filters.remove("a/#"));
    assert!(filters.remove("b"));
    assert!(filters.0.is_none(), "the last one removed frees the map");
    let none: Filters = std::iter::empty().collect();
    assert!(none.0.is_none());
}
