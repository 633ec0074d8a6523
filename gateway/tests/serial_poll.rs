//! A serial source asking an instrument (`poll:`) on a pseudo-terminal pair: a
//! fake instrument answers `T=21.5` to `R`, and the tests look at what it saw
//! and when, at the frames and their meta, and at the source's counters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{next_frame, wait_until, WAIT};
use mqgate::frame::{Frame, FramingConfig};
use mqgate::message::Part;
use mqgate::source::poll::Query;
use mqgate::source::serial::{self, SerialSettings};
use mqgate::source::{link, CommandLink, Feed, SourceStatus, TxOutcome, TxRequest};
use test_support::instrument::{Instrument, Seen};
use tokio::sync::{mpsc, watch};

const MS: Duration = Duration::from_millis(1);

fn query(name: &str, send: &[u8], every: Duration, timeout: Duration) -> Query {
    Query {
        name: Arc::from(name),
        bytes: Bytes::copy_from_slice(send),
        every,
        timeout,
    }
}

/// A serial source with `queries` (lines, CRLF written) on one side of a
/// pseudo-terminal, and `script` playing the instrument on the other.
struct Polled {
    status: Arc<SourceStatus>,
    frames: mpsc::Receiver<Frame>,
    commands: CommandLink,
    instrument: Instrument,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Polled {
    fn start(
        queries: Vec<Query>,
        script: impl FnMut(&str) -> Option<(Duration, Vec<u8>)> + Send + 'static,
    ) -> Polled {
        let (master, slave) = serialport::TTYPort::pair().expect("a pseudo-terminal pair");
        let path = serialport::SerialPort::name(&slave).expect("a path");
        drop(slave);
        let instrument = Instrument::start(master, script);
        let framing: FramingConfig =
            serde_yaml_ng::from_str("type: lines\nline_ending: crlf").expect("a framing");
        let status = Arc::new(SourceStatus::new("weather"));
        let (tx, frames) = mpsc::channel(64);
        let feed = Feed::new("weather", framing.build(), status.clone(), tx, None);
        let (commands, device) = link();
        let writer = serial::Writer::new(framing, device).polling(queries);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serial::run(
            SerialSettings::new(&path, 115_200),
            feed,
            writer,
            status.clone(),
            shutdown,
        ));
        Polled {
            status,
            frames,
            commands,
            instrument,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the source stops")
            .expect("task");
    }
}

/// `f`'s meta value `key`.
fn meta<'a>(f: &'a Frame, key: &str) -> Option<&'a str> {
    f.meta.extra.get(key).map(String::as_str)
}

/// How far each of `seen` is from where a grid of `every` from the first puts it.
fn off_grid(seen: &[Seen], every: Duration) -> Vec<i128> {
    let every = every.as_millis() as i128;
    seen.iter()
        .enumerate()
        .map(|(n, s)| (s.at - seen[0].at).as_millis() as i128 - n as i128 * every)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_up_marked_with_their_query_on_a_schedule_that_does_not_drift() {
    // The instrument takes 150 ms to answer `R` and never answers `X`. Both are
    // due every 400 ms; `X` goes out once `R` is answered, and times out 100 ms
    // later. A schedule that waited `every` after each exchange would send `R`
    // every 650 ms.
    let every = 400 * MS;
    let mut polled = Polled::start(
        vec![
            query("reading", b"R\r", every, 300 * MS),
            query("silent", b"X\r", every, 100 * MS),
        ],
        |q| (q == "R").then(|| (150 * MS, b"T=21.5\r\n".to_vec())),
    );
    for n in 0..4 {
        let frame = next_frame(&mut polled.frames).await;
        assert_eq!(&frame.bytes[..], b"T=21.5", "frame {n}");
        assert_eq!(meta(&frame, "query"), Some("reading"), "frame {n}");
        let latency: u64 = meta(&frame, "latency_ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("frame {n} has a latency: {:?}", frame.meta));
        assert!((150..300).contains(&latency), "frame {n}: {latency} ms");
    }
    let readings = polled.instrument.wait_for("R", 4, WAIT);
    let off = off_grid(&readings[..4], every);
    assert!(
        off.iter().all(|ms| ms.abs() < 100),
        "`R` came {off:?} ms off its 400 ms grid"
    );
    let silent = polled.instrument.wait_for("X", 2, WAIT);
    assert!(
        (silent[0].at - readings[0].at) >= 150 * MS,
        "`X` waited for the answer to `R`"
    );

    let status = polled.status.clone();
    wait_until("two timeouts of `X` in the counters", || {
        status.polls().get(1).is_some_and(|c| c.timeouts >= 2)
    })
    .await;
    let counts = status.polls();
    assert_eq!(counts[0].query, "reading");
    assert!(counts[0].ok >= 4, "{counts:?}");
    assert_eq!(counts[0].timeouts, 0, "{counts:?}");
    assert!(counts[0].last_latency_ms.is_some_and(|ms| ms >= 150));
    assert_eq!((counts[1].query.as_str(), counts[1].ok), ("silent", 0));
    assert!(
        counts[1].late >= 2,
        "`X` starts after `R`'s answer: {counts:?}"
    );
    assert!(SourceStatus::get(&status.poll_timeouts) >= 2);
    polled.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_timeout_is_an_ordinary_frame_and_the_query_a_timeout() {
    let mut polled = Polled::start(vec![query("slow", b"S\r", 600 * MS, 100 * MS)], |_| {
        Some((300 * MS, b"S=late\r\n".to_vec()))
    });
    for n in 0..2 {
        let frame = next_frame(&mut polled.frames).await;
        assert_eq!(&frame.bytes[..], b"S=late", "frame {n}");
        assert_eq!(meta(&frame, "query"), None, "frame {n}: {:?}", frame.meta);
        assert_eq!(meta(&frame, "latency_ms"), None, "frame {n}");
    }
    let status = polled.status.clone();
    wait_until("two timeouts", || {
        SourceStatus::get(&status.poll_timeouts) >= 2
    })
    .await;
    let counts = &status.polls()[0];
    assert_eq!((counts.ok, counts.last_latency_ms), (0, None), "{counts:?}");
    assert!(counts.timeouts >= 2, "{counts:?}");
    polled.stop().await;
}

/// Sends `text` as a command and waits until it is written.
async fn command(link: &CommandLink, text: &str) -> TxOutcome {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let parts = vec![Part::bytes(Bytes::from(text.to_string()))];
    link.tx
        .send(TxRequest { parts, reply })
        .await
        .expect("the writer takes it");
    tokio::time::timeout(WAIT, answer)
        .await
        .expect("an answer")
        .expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waits_for_the_answer_or_the_timeout_of_the_query_before_it() {
    // The first `R` is answered after 200 ms, the second never (400 ms timeout).
    let mut asked = 0;
    let polled = Polled::start(
        vec![query("reading", b"R\r", 1000 * MS, 400 * MS)],
        move |q| {
            asked += usize::from(q == "R");
            (q == "R" && asked == 1).then(|| (200 * MS, b"T=21.5\r\n".to_vec()))
        },
    );
    let mut ready = polled.commands.ready.clone();
    tokio::time::timeout(WAIT, ready.wait_for(|r| *r))
        .await
        .expect("the port opens")
        .expect("the source runs");
    for (n, text, waits) in [(1, "SET 1", 200 * MS), (2, "SET 2", 400 * MS)] {
        let asked = polled.instrument.wait_for("R", n, WAIT)[n - 1].clone();
        assert_eq!(command(&polled.commands, text).await, TxOutcome::Sent);
        let written = polled.instrument.wait_for(text, 1, WAIT)[0].clone();
        assert!(
            written.at - asked.at >= waits - 5 * MS,
            "{text} came {:?} after `R`, before its {waits:?}",
            written.at - asked.at
        );
    }
    let counts = &polled.status.polls()[0];
    assert!(counts.ok == 1 && counts.timeouts >= 1, "{counts:?}");
    polled.stop().await;
}
