//! The finding "bad logins delay good ones", end to end: a real broker with a
//! password file at the default iteration count, guesses from sixteen loopback
//! addresses, and a legitimate rumqttc client logging in meanwhile.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_lite::auth::hash::{PasswordHash, DEFAULT_ITERATIONS};
use common::{start_with, ConnectBytes, Next, RawClient};
use mqtt_proto::codec::Packet;
use test_support::Scratch;

/// Attacker source addresses: 127.0.0.2 to 127.0.0.17.
const ATTACKER_IPS: u8 = 16;
/// Connections guessing at once from each address (under the default
/// `max_connections_per_ip` of 64).
const ATTACKERS_PER_IP: usize = 8;
/// Most CONNECTs one attacker sends; with the time limit this bounds the attack.
const ATTEMPTS_PER_ATTACKER: usize = 2000;
/// Logins of the legitimate client measured while the attack goes on.
const GOOD_LOGINS: usize = 10;
/// Longest any one of them is given: far past the bound asserted, so that a
/// slow login is measured rather than cut short.
const GOOD_LOGIN_CAP: Duration = Duration::from_secs(60);

/// What the attackers' CONNECTs got, by CONNACK code, or none.
#[derive(Debug, Default)]
struct Tally {
    codes: [u64; 6],
    no_connack: u64,
}

/// One attacker: CONNECTs with wrong passwords from `ip`, one after the other,
/// until `stop`, `ATTEMPTS_PER_ATTACKER` or `until`; sets `refused` when a
/// guess from `ip` is refused (CONNACK 4 or 5). Half the attackers guess
/// alice's password; the others spray a new user name with every guess.
async fn attacker(
    addr: SocketAddr,
    ip: IpAddr,
    n: usize,
    stop: Arc<AtomicBool>,
    until: Instant,
    refused: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    for attempt in 0..ATTEMPTS_PER_ATTACKER {
        if stop.load(Ordering::Relaxed) || Instant::now() > until {
            break;
        }
        let user = if n.is_multiple_of(2) {
            "alice".to_string()
        } else {
            format!("user-{ip}-{n}-{attempt}")
        };
        let Ok(mut c) = RawClient::tcp_from(ip, addr).await else {
            tally.no_connack += 1;
            continue;
        };
        let guess = format!("guess-{attempt}");
        let id = format!("bad-{ip}-{n}-{attempt}");
        if c.try_send(&ConnectBytes::new(&id).credentials(&user, &guess).encode())
            .await
            .is_err()
        {
            tally.no_connack += 1;
            continue;
        }
        match c.next(Duration::from_secs(30)).await {
            Next::Packet(Packet::ConnAck(ack)) => {
                tally.codes[ack.code as usize] += 1;
                if matches!(ack.code as u8, 4 | 5) {
                    refused.store(true, Ordering::Relaxed);
                }
            }
            _ => tally.no_connack += 1,
        }
    }
    tally
}

/// Log in as alice with rumqttc; how long until CONNACK 0.
async fn good_login(addr: SocketAddr, n: usize) -> Result<Duration, String> {
    let mut options = rumqttc::MqttOptions::new(format!("alice-{n}"), "127.0.0.1", addr.port());
    options.set_credentials("alice", "right");
    options.set_keep_alive(Duration::from_secs(30));
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 10);
    events
        .network_options
        .set_connection_timeout(GOOD_LOGIN_CAP.as_secs());
    let started = Instant::now();
    let connack = tokio::time::timeout(GOOD_LOGIN_CAP, async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let took = started.elapsed();
    match connack {
        Ok(Ok(())) => Ok(took),
        Ok(Err(e)) => Err(format!("login {n} failed after {took:?}: {e}")),
        Err(_) => Err(format!("login {n}: no CONNACK within {GOOD_LOGIN_CAP:?}")),
    }
}

/// The finding "bad logins delay good ones": password checks run one per core,
/// first come first served, so a legitimate login waited behind every guess
/// queued before it. Here 128 connections from 16 addresses guess passwords
/// (half at alice's, half spraying user names) while alice logs in ten times.
///
/// The bound: a client from an address with no recent failure goes before
/// every guess waiting, and guesses hold at most one of the two slots, so it
/// waits at most for one other clean login's check (an address's first guess
/// looks clean) and then for its own: two checks. Each may run at half speed,
/// sharing the cores with the guess being checked and with the attackers'
/// connections. One login's time is measured here first, unloaded (about
/// 20 ms in a release build, over ten times that in a debug one): the bound is
/// four of them, and never under 0.5 s. Before throttling, each login here
/// waited for half the guesses queued (about 30 s in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_do_not_delay_good_ones() {
    // What `broker-lite passwd` writes: the default iteration count.
    let dir = Scratch::new("broker-lite-login-throttle");
    let hash = PasswordHash::new(b"right", DEFAULT_ITERATIONS).expect("salt");
    let passwd = dir.write("passwd", format!("alice:{hash}\n"));
    let broker = start_with(|c| c.auth.password_file = Some(passwd)).await;
    let addr = broker.local_addr();

    let mut unloaded = Duration::ZERO;
    for n in 0..3 {
        let took = good_login(addr, n).await.expect("an unloaded login");
        unloaded = unloaded.max(took);
    }
    let bound = (unloaded * 4).max(Duration::from_millis(500));

    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(120);
    let mut attackers = Vec::new();
    let mut refused_ips = Vec::new();
    for i in 0..ATTACKER_IPS {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i));
        let refused = Arc::new(AtomicBool::new(false));
        for n in 0..ATTACKERS_PER_IP {
            let guesses = attacker(addr, ip, n, stop.clone(), until, refused.clone());
            attackers.push(tokio::spawn(guesses));
        }
        refused_ips.push(refused);
    }
    // Until an address has failed once, its guesses cannot be told from good
    // logins. Measured once every address has had a guess refused and
    // guesses are being refused before a check by the hundred (the checks
    // are slow on a loaded debug build): the attack in full swing.
    let metrics = broker.metrics();
    let swing = || {
        refused_ips.iter().all(|r| r.load(Ordering::Relaxed))
            && metrics.snapshot().logins_throttled >= 100
    };
    test_support::wait_until("the attack in full swing", GOOD_LOGIN_CAP, swing).await;

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for n in 0..GOOD_LOGINS {
        match good_login(addr, 100 + n).await {
            Ok(took) => latencies.push(took),
            Err(e) => failures.push(e),
        }
    }
    let attack_running = attackers.iter().any(|t| !t.is_finished());
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in attackers {
        let t = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("an attacker did not stop")
            .expect("attacker task");
        for (all, one) in tally.codes.iter_mut().zip(t.codes) {
            *all += one;
        }
        tally.no_connack += t.no_connack;
    }
    let m = broker.metrics().snapshot();
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "unloaded login {unloaded:?}; under attack: slowest {slowest:?} of {latencies:?} \
         (bound {bound:?}); attackers got {tally:?}; metrics: refused {}, throttled {}, \
         timed out {}",
        m.logins_refused, m.logins_throttled, m.logins_timed_out
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(attack_running, "the attack ended before the logins did");
    assert!(
        slowest < bound,
        "a login took {slowest:?} under attack, bound {bound:?}: {latencies:?}"
    );
    assert_eq!(tally.codes[0], 0, "a guess got in: {tally:?}");
    // Most guesses were turned away before a check, and the broker counted them.
    assert!(tally.codes[5] > tally.codes[4], "{tally:?}");
    assert_eq!(m.logins_throttled, tally.codes[5]);
    assert_eq!(m.logins_refused, tally.codes[4]);
    broker.shutdown().await;
}
