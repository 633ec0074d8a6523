//! A flood of 10,000 connections to the `broker-lite` binary: each sends CONNECT
//! and must get CONNACK within a time bound, while a normal client's QoS 1 round
//! trips stay fast; the memory per connection is reported, and once every
//! connection is closed the broker counts none left.

mod common;
mod flood;
mod real;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use flood::{raise_nofile, BinaryBroker};
use futures_util::stream::{self, StreamExt};
use mqtt_proto::codec::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 10_000;
/// Connections being opened at once (the listen backlog is finite).
const AT_ONCE: usize = 200;
/// All of them must be accepted within this.
const ALL_WITHIN: Duration = Duration::from_secs(20);
/// A normal client's QoS 1 round trip must take less than this meanwhile.
const ROUND_TRIP_MAX: Duration = Duration::from_secs(2);
/// Files each process needs beyond the connections (listeners, pipes, probes).
const SPARE_FILES: u64 = 200;

async fn connect_one(addr: SocketAddr, n: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connection {n}: {e}"));
    let connect = ConnectBytes::new(&format!("c{n}")).encode();
    s.write_all(&connect).await.expect("send CONNECT");
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.expect("read CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0], "connection {n}: CONNACK accepted");
    s
}

/// QoS 1 round trips on one connection pair until `stop`; returns the slowest and the count.
async fn round_trips(addr: SocketAddr, stop: Arc<AtomicBool>) -> (Duration, u32) {
    let mut sub = RawClient::connect(addr, "flood-probe-sub").await;
    sub.subscribe(1, &[("probe/t", 1)]).await;
    let mut publisher = RawClient::connect(addr, "flood-probe-pub").await;
    let (mut slowest, mut count) = (Duration::ZERO, 0u32);
    // Bounded: at most one round trip per 20 ms for the length of the test.
    for pkid in 1..=3000u16 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        publisher.publish("probe/t", b"ping", 1, false, pkid).await;
        let got = sub.recv_publish_acked().await;
        assert_eq!(&got.payload[..], b"ping");
        slowest = slowest.max(t.elapsed());
        count += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (slowest, count)
}

/// Reads `$SYS/broker/clients/connected` updates (not the retained copy sent at
/// subscribe time) until `done` accepts one or `within` passes; the last value seen.
async fn connected_clients(
    watcher: &mut RawClient,
    within: Duration,
    done: impl Fn(u64) -> bool,
) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    while let Next::Packet(p) = watcher.next(deadline - tokio::time::Instant::now()).await {
        if let Packet::Publish(p) = p {
            if p.retain || p.topic != "$SYS/broker/clients/connected" {
                continue;
            }
            let n = String::from_utf8_lossy(&p.payload)
                .parse()
                .expect("a number");
            last = Some(n);
            if done(n) {
                break;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_get_connack_while_a_client_stays_responsive() {
    let need = CONNECTIONS as u64 + SPARE_FILES;
    let (_, hard) = flood::nofile_limits();
    let soft = raise_nofile(need);
    if soft < need {
        let why = format!(
            "SKIPPED: {CONNECTIONS} connections need {need} open files in this process and \
             in the broker; the limit is {soft} (hard {hard}). Raise it (ulimit -n) to run this test."
        );
        println!("{why}");
        eprintln!("{why}");
        return;
    }
    let config = format!(
        "limits:\n  max_connections: {}\n  max_connections_per_ip: 0\n  connect_timeout_secs: 30\n\
         sys_interval_secs: 1\n",
        CONNECTIONS + 100
    );
    let broker = BinaryBroker::start("flood-connections", &config, Some(need.min(hard)));
    let addr = broker.addr;
    let mut watcher = RawClient::connect(addr, "flood-sys").await;
    watcher
        .subscribe(1, &[("$SYS/broker/clients/connected", 0)])
        .await;
    let baseline = broker.rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(round_trips(addr, stop.clone()));
    let started = Instant::now();
    let open = stream::iter(0..CONNECTIONS)
        .map(|n| connect_one(addr, n))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<TcpStream>>();
    let conns = match tokio::time::timeout(ALL_WITHIN, open).await {
        Ok(c) => c,
        Err(_) => panic!("{CONNECTIONS} connections did not all get CONNACK within {ALL_WITHIN:?}"),
    };
    let took = started.elapsed();
    let rss = broker.rss_kib();
    // A little longer with every connection open, then the round trips stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (slowest, trips) = wait_for("the round trips to stop", prober)
        .await
        .expect("prober task");
    let per_conn = (rss.saturating_sub(baseline)) as f64 * 1024.0 / CONNECTIONS as f64;
    println!(
        "connections: {} got CONNACK in {:.2} s ({:.0}/s); broker RSS {baseline} KiB before, \
         {rss} KiB with them open: {per_conn:.0} bytes per connection; \
         {trips} QoS 1 round trips meanwhile, slowest {slowest:?}",
        conns.len(),
        took.as_secs_f64(),
        conns.len() as f64 / took.as_secs_f64(),
    );
    assert_eq!(conns.len(), CONNECTIONS);
    assert!(trips > 0, "no round trip completed during the flood");
    assert!(
        slowest < ROUND_TRIP_MAX,
        "a QoS 1 round trip took {slowest:?} during the flood"
    );
    let all = CONNECTIONS as u64;
    let seen = connected_clients(&mut watcher, Duration::from_secs(5), |n| n >= all).await;
    assert!(
        seen.is_some_and(|n| n >= all),
        "$SYS shows {seen:?} clients connected, expected at least {all}"
    );

    drop(conns);
    // The watcher and the two probes may still be counted.
    let left = connected_clients(&mut watcher, Duration::from_secs(10), |n| n <= 3).await;
    println!("connections: {left:?} clients connected after closing them all");
    assert!(
        left.is_some_and(|n| n <= 3),
        "{left:?} clients still connected after closing"
    );
}
