//! Persistence with the real `broker-lite` binary and a configuration file:
//! retained messages, persistent sessions, in-flight QoS 1/2 state and inbound
//! QoS 2 ids survive a graceful restart and a `kill -9`; a damaged file is refused.
//!
//! Waiting for a commit is never a blind sleep: either the client's own
//! acknowledgement proves it (PUBACK/PUBREC/PUBCOMP/SUBACK are written only after
//! the commit, `ack_after_commit`), or the test polls the file with SQLite.

mod common;
mod real;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{publish, pubrel, ConnectBytes, RawClient};
use mqtt_proto::codec::{Packet, QoS, SubscribeReturnCode};
use real::{run_py, TIMEOUT};
use test_support::mosquitto::{mosquitto_pub, Subscriber};
use test_support::process::{Proc, SIGTERM};
use test_support::{free_port, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// A folder with `broker.yaml` (persistence in `state.db`, given relative to it)
/// and the broker binary started on it, again and again.
struct Persistent {
    dir: PathBuf,
    proc: Option<Proc>,
    port: u16,
}

impl Persistent {
    fn new(name: &str) -> Persistent {
        Persistent::with(name, "")
    }

    /// With more configuration lines (top-level YAML) after the persistence section.
    fn with(name: &str, extra: &str) -> Persistent {
        let dir = std::env::temp_dir().join(format!(
            "broker-lite-persist-{}-{name}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        std::fs::write(
            dir.join("broker.yaml"),
            format!(
                "sys_interval_secs: 0\npersistence:\n  file: state.db\n  flush_ms: 100\n{extra}"
            ),
        )
        .expect("write config");
        Persistent {
            dir,
            proc: None,
            port: 0,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("state.db")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0", "--config"])
            .arg(self.dir.join("broker.yaml"));
        cmd
    }

    /// Start the binary and wait until it listens (after reading the file back).
    fn start(&mut self) -> u16 {
        assert!(self.proc.is_none(), "already running");
        let mut proc = Proc::spawn("broker-lite", &mut self.command());
        let line = proc.expect_line("listening on ADDR", TIMEOUT, |l| {
            l.contains("listening on ")
        });
        self.port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        assert!(wait_for_port(self.port, TIMEOUT), "not listening");
        self.proc = Some(proc);
        self.port
    }

    /// SIGTERM and a clean exit.
    fn stop(&mut self) {
        let mut proc = self.proc.take().expect("running");
        proc.signal(SIGTERM);
        let status = proc.wait_exit(TIMEOUT);
        assert!(status.success(), "{status}\n{}", proc.transcript());
    }

    fn kill_9(&mut self) {
        let mut proc = self.proc.take().expect("running");
        proc.kill();
    }

    fn restart(&mut self, graceful: bool) -> u16 {
        if graceful {
            self.stop();
        } else {
            self.kill_9();
        }
        self.start()
    }

    /// Poll `sql` (one integer) in the file until it gives `want`.
    fn wait_for_row_count(&self, what: &str, sql: &str, want: i64) {
        wait_until_count(&self.db(), what, sql, want);
    }
}

impl Drop for Persistent {
    fn drop(&mut self) {
        self.proc = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_until_count(db: &Path, what: &str, sql: &str, want: i64) {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(conn) = rusqlite::Connection::open(db) {
            last = Some(conn.query_row(sql, [], |r| r.get::<_, i64>(0)));
            if matches!(last, Some(Ok(n)) if n == want) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: {sql} did not give {want} within {TIMEOUT:?} (last: {last:?})");
}

/// The retained messages a new subscription to `ret/#` gets, sorted by topic;
/// a live marker publish ends the list.
fn retained_now(port: u16) -> Vec<(String, String, u8)> {
    let mut sub = Subscriber::subscribed(port, &["-q", "1", "-t", "ret/#", "-t", "marker"]);
    mosquitto_pub(port, &["-t", "marker", "-m", "end"]);
    let (before, _) = sub.msgs_until_topic("marker");
    let mut got: Vec<_> = before
        .into_iter()
        .map(|m| {
            assert!(m.retain, "{m:?} came without the retain flag");
            (m.topic.clone(), m.text(), m.qos)
        })
        .collect();
    got.sort();
    got
}

fn owned(list: &[(&str, &str, u8)]) -> Vec<(String, String, u8)> {
    list.iter()
        .map(|(t, p, q)| (t.to_string(), p.to_string(), *q))
        .collect()
}

#[test]
fn retained_messages_survive_a_graceful_restart_and_a_kill_9() {
    let mut b = Persistent::new("retained");
    let port = b.start();
    mosquitto_pub(port, &["-r", "-t", "ret/a", "-m", "a at qos 0"]);
    mosquitto_pub(port, &["-r", "-q", "1", "-t", "ret/b", "-m", "b at qos 1"]);
    mosquitto_pub(
        port,
        &["-r", "-q", "2", "-t", "ret/gone", "-m", "soon cleared"],
    );
    mosquitto_pub(port, &["-r", "-q", "1", "-n", "-t", "ret/gone"]);
    // No wait: a graceful stop commits what is left.
    let port = b.restart(true);
    let expected = owned(&[("ret/a", "a at qos 0", 0), ("ret/b", "b at qos 1", 1)]);
    assert_eq!(retained_now(port), expected);

    // QoS 0 has no acknowledgement to wait for: poll the file for the commit.
    mosquitto_pub(port, &["-r", "-t", "ret/c", "-m", "c before the kill"]);
    mosquitto_pub(port, &["-r", "-q", "1", "-t", "ret/a", "-m", "a replaced"]);
    b.wait_for_row_count(
        "retained ret/c committed",
        "SELECT count(*) FROM retained WHERE topic = 'ret/c'",
        1,
    );
    let port = b.restart(false);
    let expected = owned(&[
        ("ret/a", "a replaced", 1),
        ("ret/b", "b at qos 1", 1),
        ("ret/c", "c before the kill", 0),
    ]);
    assert_eq!(retained_now(port), expected);
}

#[test]
fn a_persistent_session_gets_what_was_queued_while_away_across_restarts() {
    let mut b = Persistent::new("session");
    let port = b.start();
    let cid = "persist-away";
    let run = run_py("persist_restart.py", port, &["subscribe", cid, "away"]);
    assert_eq!(run.one("connack").int("session_present"), 0);

    // mosquitto_pub exits after PUBACK/PUBCOMP, which come after the commit.
    for i in 0..3 {
        mosquitto_pub(port, &["-q", "1", "-t", "away/q1", "-m", &format!("m{i}")]);
    }
    mosquitto_pub(port, &["-q", "2", "-t", "away/q2", "-m", "m3"]);
    let port = b.restart(true);
    mosquitto_pub(port, &["-q", "1", "-t", "away/q1", "-m", "m4"]);
    mosquitto_pub(port, &["-q", "2", "-t", "away/q2", "-m", "m5"]);
    mosquitto_pub(
        port,
        &["-q", "0", "-t", "away/q1", "-m", "qos 0 is not kept"],
    );
    let port = b.restart(false);

    let run = run_py("persist_restart.py", port, &["receive", cid, "6"]);
    assert_eq!(
        run.one("connack").int("session_present"),
        1,
        "{}",
        run.transcript()
    );
    // paho hands a QoS 2 message over at PUBREL, so only the order per topic is kept.
    let on = |topic: &str| -> Vec<(String, i64)> {
        run.events_named("received")
            .iter()
            .filter(|e| e.str("topic") == topic)
            .map(|e| (e.str("payload"), e.int("qos")))
            .collect()
    };
    let want = |list: &[(&str, i64)]| -> Vec<(String, i64)> {
        list.iter().map(|(p, q)| (p.to_string(), *q)).collect()
    };
    let q1 = want(&[("m0", 1), ("m1", 1), ("m2", 1), ("m4", 1)]);
    assert_eq!(on("away/q1"), q1, "{}", run.transcript());
    assert_eq!(
        on("away/q2"),
        want(&[("m3", 2), ("m5", 2)]),
        "{}",
        run.transcript()
    );
    assert!(run.events_named("extra").is_empty(), "{}", run.transcript());

    // Every message was acknowledged: after a restart nothing comes again.
    let port = b.restart(true);
    let run = run_py("persist_restart.py", port, &["receive", cid, "0"]);
    assert_eq!(run.one("connack").int("session_present"), 1);
    assert!(run.events_named("extra").is_empty(), "{}", run.transcript());
    // The subscriptions themselves came back: a live message arrives.
    let mut watcher = Subscriber::subscribed(port, &["-t", "away/#"]);
    mosquitto_pub(port, &["-q", "1", "-t", "away/q1", "-m", "live"]);
    assert_eq!(watcher.expect_msg().text(), "live");
    let run = run_py("persist_restart.py", port, &["receive", cid, "1"]);
    assert_eq!(run.events_named("received")[0].str("payload"), "live");
}

fn persistent(id: &str) -> ConnectBytes {
    ConnectBytes::new(id).clean(false)
}

#[tokio::test]
async fn outgoing_messages_in_flight_are_resent_after_a_kill_9() {
    let mut b = Persistent::new("inflight");
    let port = b.start();
    let addr = ([127, 0, 0, 1], port).into();
    let (mut sub, present) = RawClient::connect_with(addr, &persistent("inflight-sub")).await;
    assert!(!present);
    let codes = sub.subscribe(1, &[("fly/#", 2)]).await;
    assert_eq!(codes, [SubscribeReturnCode::Success(QoS::ExactlyOnce)]);
    mosquitto_pub(port, &["-q", "1", "-t", "fly/one", "-m", "unacked qos 1"]);
    mosquitto_pub(port, &["-q", "2", "-t", "fly/two", "-m", "pubrec'd qos 2"]);
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    assert_eq!(
        (first.qos, second.qos),
        (QoS::AtLeastOnce, QoS::ExactlyOnce)
    );
    // No PUBACK for the first; PUBREC for the second, which the broker answers with PUBREL.
    sub.send(&common::pubrec(second.pkid)).await;
    sub.expect(Packet::PubRel(second.pkid)).await;
    b.wait_for_row_count(
        "PUBREC recorded",
        "SELECT count(*) FROM messages WHERE client_id = 'inflight-sub' AND released = 1",
        1,
    );
    drop(sub);
    let port = b.restart(false);
    let addr = ([127, 0, 0, 1], port).into();

    let (mut sub, present) = RawClient::connect_with(addr, &persistent("inflight-sub")).await;
    assert!(present, "CONNACK session present was 0 after the restart");
    let again = sub.recv_publish().await;
    assert!(again.dup, "a resent PUBLISH without DUP");
    assert_eq!(
        (again.pkid, &again.topic, &again.payload),
        (first.pkid, &first.topic, &first.payload)
    );
    sub.expect(Packet::PubRel(second.pkid)).await;
    sub.send(&common::puback(first.pkid)).await;
    sub.send(&common::pubcomp(second.pkid)).await;
    sub.ping().await;
    b.wait_for_row_count(
        "acknowledgements recorded",
        "SELECT count(*) FROM messages WHERE client_id = 'inflight-sub'",
        0,
    );
    drop(sub);

    let port = b.restart(false);
    let addr = ([127, 0, 0, 1], port).into();
    let (mut sub, present) = RawClient::connect_with(addr, &persistent("inflight-sub")).await;
    assert!(present);
    sub.expect_nothing_more(addr).await;
}

#[tokio::test]
async fn an_inbound_qos_2_id_awaiting_pubrel_survives_a_kill_9_without_a_duplicate() {
    let mut b = Persistent::new("qos2in");
    let port = b.start();
    let addr = ([127, 0, 0, 1], port).into();
    let (mut sub, _) = RawClient::connect_with(addr, &persistent("qos2-sub")).await;
    sub.subscribe(1, &[("once/t", 2)]).await;
    let (mut publisher, _) = RawClient::connect_with(addr, &persistent("qos2-pub")).await;
    publisher
        .send(&publish("once/t", b"exactly once", 2, false, false, 7))
        .await;
    // PUBREC comes after the commit of the held id and of the subscriber's copy.
    publisher.expect(Packet::PubRec(7)).await;
    let got = sub.recv_publish_acked().await;
    assert_eq!(&got.payload[..], b"exactly once");
    b.wait_for_row_count(
        "the subscriber's PUBCOMP recorded",
        "SELECT count(*) FROM messages WHERE client_id = 'qos2-sub'",
        0,
    );
    drop((sub, publisher));
    let port = b.restart(false);
    let addr = ([127, 0, 0, 1], port).into();

    let (mut sub, present) = RawClient::connect_with(addr, &persistent("qos2-sub")).await;
    assert!(present);
    let (mut publisher, present) = RawClient::connect_with(addr, &persistent("qos2-pub")).await;
    assert!(present, "the publisher's session was lost");
    // The publisher did not see PUBREC (as far as the broker knows) and sends again with DUP.
    publisher
        .send(&publish("once/t", b"exactly once", 2, false, true, 7))
        .await;
    publisher.expect(Packet::PubRec(7)).await;
    publisher.send(&pubrel(7)).await;
    publisher.expect(Packet::PubComp(7)).await;
    sub.expect_nothing_more(addr).await;

    // The id is free again: a new message with it is delivered.
    publisher.publish("once/t", b"a new one", 2, false, 7).await;
    let got = sub.recv_publish_acked().await;
    assert_eq!(&got.payload[..], b"a new one");
    assert!(!got.dup);
}

#[test]
fn the_file_holds_no_more_than_the_queue_limit_and_a_clean_connect_deletes_the_session() {
    let mut b = Persistent::with("bounded", "limits:\n  max_queued_messages: 5\n");
    let port = b.start();
    let cid = "persist-bounded";
    run_py("persist_restart.py", port, &["subscribe", cid, "full"]);
    for i in 0..12 {
        mosquitto_pub(port, &["-q", "1", "-t", "full/q1", "-m", &format!("n{i}")]);
    }
    let rows = "SELECT count(*) FROM messages WHERE client_id = 'persist-bounded'";
    b.wait_for_row_count("the queue at its limit", rows, 5);
    let port = b.restart(false);
    let run = run_py("persist_restart.py", port, &["receive", cid, "5"]);
    let got: Vec<String> = run
        .events_named("received")
        .iter()
        .map(|e| e.str("payload"))
        .collect();
    assert_eq!(
        got,
        ["n7", "n8", "n9", "n10", "n11"],
        "{}",
        run.transcript()
    );
    assert!(run.events_named("extra").is_empty(), "{}", run.transcript());

    // A clean-session connect ends the stored session and deletes its rows.
    let (_c, present) = connect_clean(port, cid);
    assert!(!present);
    b.wait_for_row_count(
        "the session deleted",
        "SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM subscriptions)
                + (SELECT count(*) FROM messages)",
        0,
    );
}

/// A clean-session CONNECT with `client_id` from a plain socket; returns it and
/// CONNACK's session present.
fn connect_clean(port: u16, client_id: &str) -> (std::net::TcpStream, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(&ConnectBytes::new(client_id).encode())
        .expect("send CONNECT");
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).expect("CONNACK");
    assert_eq!((connack[0], connack[3]), (0x20, 0), "CONNACK {connack:?}");
    (s, connack[2] & 1 == 1)
}

#[test]
fn a_damaged_file_is_refused_naming_it_and_left_as_it_was() {
    let b = Persistent::new("damaged");
    let garbage = b"not an SQLite file at all\n".repeat(300);
    std::fs::write(b.db(), &garbage).expect("write");
    let mut proc = Proc::spawn("broker-lite", &mut b.command());
    let status = proc.wait_exit(TIMEOUT);
    assert!(!status.success(), "started on a damaged file");
    let stderr = proc.stderr_text();
    assert!(
        stderr.contains(&b.db().display().to_string()) && stderr.contains("damaged"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(b.db()).expect("read"), garbage);
}
