//! Fault tests of the gateway's own side, with real processes: `mqgate run` killed
//! with SIGKILL mid-stream and started again, its store filling up while the
//! upstream broker is down, and a damaged or unreadable store file at start.

mod faults_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use faults_common::{count_lines, stop_gateway, Rig, RATE, WAIT};
use mqgate_tests::feeder::{fence, wait_upstream_connects, SeqGateway};
use mqgate_tests::mqgate::mqgate;
use test_support::process::{run_to_end, Stream};
use test_support::pty::plug;
use test_support::scratch::Scratch;

/// The sequence numbers of the messages in a store file, in store order (opened
/// read-only; SQLite reads what the write-ahead log holds too).
fn stored_seqs(path: &Path) -> Vec<u64> {
    if !path.exists() {
        return Vec::new();
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut stmt = conn
        .prepare("SELECT payload FROM messages ORDER BY id")
        .expect("the store's messages table");
    let payloads: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .expect("read the messages")
        .collect::<Result<_, _>>()
        .expect("read the messages");
    payloads
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(p)
                .ok()
                .and_then(|v| v["seq"].as_u64())
                .unwrap_or_else(|| panic!("a stored payload without seq: {p:?}"))
        })
        .collect()
}

/// The `store:` section of a fault test in this durability mode; write-behind
/// keeps its journal in `shm/` beside the gateway file.
fn store_section(durability: &str) -> String {
    format!("store:\n  durability: {durability}\n  write_behind_dir: shm\n")
}

/// The messages in the store's file and in its write-behind journal, in order.
fn kept_seqs(rig: &Rig) -> Vec<u64> {
    let mut seqs = stored_seqs(&rig.store_file());
    let journals = std::fs::read_dir(rig.dir.path().join("shm"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for journal in journals {
        if journal.extension().is_some_and(|e| e == "journal") {
            seqs.extend(stored_seqs(&journal));
        }
    }
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

/// Streams `n` lines through a gateway and kills it with SIGKILL after 500 arrived;
/// with `stall_first` the network to Mosquitto stalls for a while before, so that
/// hundreds of messages wait in the store and in flight, in every stage of QoS 2.
/// In `write_behind` mode those kept are in the journal (in memory), and the
/// restarted gateway takes them over: a killed process loses nothing either way.
fn gateway_killed_mid_stream(label: &str, stall_first: bool, durability: &str) {
    let n = 2500;
    let mut rig = Rig::new(label, 2, stall_first, &store_section(durability));
    let mut gw = rig.start_gateway();
    wait_upstream_connects(&gw, 1, WAIT);
    let feeder = rig.feed(n, RATE);
    rig.sub
        .wait_until("500 messages before the kill", WAIT, |s| s.unique >= 500);
    if let Some(relay) = &rig.relay {
        relay.stall();
        feeder.wait_written(feeder.written() + 400, WAIT);
    }
    gw.signal(libc::SIGKILL);
    let exit = gw.wait_exit(WAIT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit),
        Some(libc::SIGKILL)
    );
    // Lines written from now on wait for the next reader.
    let written_at_kill = feeder.written();
    let stored = kept_seqs(&rig);
    // What the subscriber has now came through the first gateway: it was committed.
    let delivered = rig.sub.stats();
    let committed = stored.iter().copied().chain(delivered.max()).max();
    let committed = committed.expect("something was committed");
    if durability == "on_receipt" {
        let in_file = stored_seqs(&rig.store_file());
        assert!(
            in_file.windows(2).all(|w| w[0] < w[1]),
            "the store keeps the feed's order: {in_file:?}"
        );
    }
    if let Some(relay) = &rig.relay {
        assert!(stored.len() >= 300, "a backlog: {}", stored.len());
        // What waited in the relay is lost with the old connection.
        relay.cut();
        relay.resume();
    }

    let gw = rig.start_gateway();
    if !stored.is_empty() {
        gw.wait_for_line(
            Stream::Stderr,
            &[
                &format!("{} message(s) (", stored.len()),
                "waiting in the store from before",
            ],
            WAIT,
        );
    }
    wait_upstream_connects(&gw, 1, WAIT);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    rig.sub
        .wait_until("what was committed and the last line", WAIT, |s| {
            s.has_all(0..committed + 1) && s.count_of(n - 1) > 0
        });
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    let gaps = stats.missing_runs(0..n);
    eprintln!(
        "{label}: {} delivered and {} in the store at the kill (highest committed {committed}, \
         {written_at_kill} lines written); missing after the restart: {gaps:?}; {} duplicates",
        delivered.unique,
        stored.len(),
        stats.duplicates
    );
    // The only lines that may be missing are those the killed gateway had read but
    // not committed to its store: in its serial reader, framer, frame queue, mapping,
    // message queue or the batch being committed, or still in the terminal's buffer
    // when its last reader died. They were never taken (nothing acknowledged them),
    // and are all newer than the newest committed message and older than what was
    // written after the kill. Everything committed, and everything the restarted
    // gateway read, arrives.
    assert!(gaps.len() <= 1, "{gaps:?} {}", stats.summary());
    if let Some(gap) = gaps.first() {
        assert!(
            gap.start > committed && gap.end <= written_at_kill,
            "a committed message, or one written after the kill, is missing: {gap:?} \
             (highest committed {committed}, written at the kill {written_at_kill})"
        );
        assert!(
            gap.end - gap.start <= PIPELINE_LINES,
            "more lines missing than the pipeline holds: {gap:?}"
        );
    }
    assert_eq!(stats.fresh_duplicates(), 0, "{}", stats.summary());
    // Mosquitto kept running: it had no reason to send anything twice either.
    assert_eq!(
        stats.duplicates,
        0,
        "{:?} {}",
        stats.duplicated(),
        stats.summary()
    );
    stop_gateway(gw);
}

#[test]
fn every_qos_2_message_committed_before_mqgate_is_killed_arrives_once_after_it_restarts() {
    gateway_killed_mid_stream("kill-gw-q2", false, "on_receipt");
}

#[test]
fn a_backlog_in_flight_when_mqgate_is_killed_arrives_once_after_it_restarts() {
    gateway_killed_mid_stream("kill-gw-backlog-q2", true, "on_receipt");
}

#[test]
fn every_qos_2_message_taken_write_behind_before_mqgate_is_killed_arrives_once_after_it_restarts() {
    gateway_killed_mid_stream("kill-gw-wb-q2", false, "write_behind");
}

#[test]
fn a_write_behind_backlog_in_flight_when_mqgate_is_killed_arrives_once_after_it_restarts() {
    gateway_killed_mid_stream("kill-gw-wb-backlog-q2", true, "write_behind");
}

/// Lines a gateway holds in memory at most between the serial port and the store:
/// its frame queue (1024), message queue (4096) and one append batch (1024), plus
/// a terminal buffer (4 KiB) of the feed's shortest lines.
const PIPELINE_LINES: u64 = 1024 + 4096 + 1024 + 4096 / 20;

/// Fills a store of `max` messages with `n` > `max` while the upstream broker is
/// down, then starts it: exactly the configured eviction happens, and is counted.
fn store_fills_while_offline(label: &str, when_full: &str) {
    let (max, n) = (200u64, 500u64);
    let store_yaml = format!("store:\n  max_messages: {max}\n  when_full: {when_full}\n");
    let mut rig = Rig::new(label, 2, false, &store_yaml);
    // The subscriber's session waits in the stopped broker.
    assert!(rig.up.stop().success());
    let gw = rig.start_gateway();
    let feeder = rig.feed(n, 1000.0);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    let (dropped, kept, counted) = match when_full {
        "drop_oldest" => (0..n - max, n - max..n, format!("{} evicted", n - max)),
        "drop_newest" => (
            max..n,
            0..max,
            format!("0 evicted (store full), {} refused", n - max),
        ),
        other => panic!("no test for when_full: {other}"),
    };
    let line = gw.wait_for_line(
        Stream::Stderr,
        &[&format!(
            "{max} message(s) in the store; dropped so far: {counted} (store full)"
        )],
        WAIT,
    );
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(
        count_lines(&gw, "connected upstream"),
        0,
        "the broker was down"
    );

    rig.up.restart();
    wait_upstream_connects(&gw, 1, WAIT);
    rig.sub
        .wait_until("the messages kept", WAIT, |s| s.has_all(kept.clone()));
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    assert_eq!(stats.missing_runs(0..n), [dropped], "{}", stats.summary());
    assert_eq!(stats.unique, max, "{}", stats.summary());
    assert_eq!(stats.duplicates, 0, "{}", stats.summary());
    assert_eq!(stats.out_of_order, 0, "{}", stats.summary());
    // At close the count is said once more, at level INFO.
    let mut gw = gw;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
    let closed = gw.wait_for_line(Stream::Stderr, &["closed: "], WAIT);
    assert!(
        closed.contains("INFO")
            && closed.contains(&format!(
                "0 message(s) in the store; dropped so far: {counted}"
            )),
        "{closed}"
    );
}

#[test]
fn a_store_full_while_offline_evicts_exactly_the_oldest_messages_and_counts_them() {
    store_fills_while_offline("full-oldest", "drop_oldest");
}

#[test]
fn a_store_full_while_offline_refuses_exactly_the_newest_messages_and_counts_them() {
    store_fills_while_offline("full-newest", "drop_newest");
}

/// A gateway file in `dir` whose upstream port nobody listens on, and the path of
/// its store file (the state folder exists, the file does not).
fn gateway_without_broker(dir: &Scratch) -> (PathBuf, PathBuf) {
    let link = dir.path().join("ttyFEED");
    drop(plug(&link));
    let spec = SeqGateway::new(mqgate_tests::upstream::fixed_port(), &link);
    let config = spec.write(dir);
    let state = SeqGateway::state_dir(dir);
    std::fs::create_dir_all(&state).expect("create the state folder");
    (config, state.join("messages.db"))
}

/// Runs `mqgate run --config CONFIG`, which must stop by itself with an error before
/// it connects anywhere; returns what it printed on stderr.
fn run_expecting_failure(config: &Path) -> String {
    let mut cmd = mqgate();
    cmd.arg("run").arg("--config").arg(config);
    let done = run_to_end("mqgate run", cmd, WAIT);
    assert!(
        !done.status.success(),
        "mqgate run went on with a bad store: {:?}\n{}",
        done.status,
        done.stderr
    );
    assert!(
        !done.stderr.contains("connected upstream"),
        "{}",
        done.stderr
    );
    done.stderr
}

/// Bytes that are not an SQLite database (no header), the same on every run.
fn garbage(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// An SQLite database of several pages (in WAL mode as mqgate's own, or with a
/// rollback journal) with its later pages overwritten: the header is fine, the
/// b-tree pages are not.
fn damaged_database(path: &Path, wal: bool) {
    {
        let conn = rusqlite::Connection::open(path).expect("create a database");
        if wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .expect("WAL mode");
            assert_eq!(mode, "wal");
        }
        conn.execute_batch(
            "CREATE TABLE t (x BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO t SELECT randomblob(100) FROM n;",
        )
        .expect("fill the database");
    }
    // Closing the last connection checkpoints the WAL into the file and removes it.
    let mut bytes = std::fs::read(path).expect("read the database");
    assert!(bytes.len() >= 4 * 4096, "several pages: {}", bytes.len());
    let noise = garbage(bytes.len() - 4096);
    bytes[4096..].copy_from_slice(&noise);
    std::fs::write(path, bytes).expect("damage the database");
}

/// The error names the file, says nothing was changed and how to move it aside.
fn assert_damaged_message(stderr: &str, file: &Path) {
    let name = file.display().to_string();
    assert!(stderr.contains(&name), "names {name}: {stderr}");
    assert!(stderr.contains("damaged"), "{stderr}");
    assert!(
        stderr.contains(&format!("mv {name} {name}.damaged")),
        "{stderr}"
    );
    // Nothing beside it either: no write-ahead log or shared-memory file was left.
    // The state folder's lock file is mqgate's own (taken before the store is opened).
    let dir = file.parent().expect("the state folder");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the state folder")
        .map(|e| {
            e.expect("a folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "mqgate.lock")
        .collect();
    names.sort();
    assert_eq!(names, ["messages.db"], "in {}", dir.display());
}

#[test]
fn a_store_file_that_is_not_a_database_stops_mqgate_naming_it_and_is_left_as_it_was() {
    let dir = Scratch::new("store-garbage");
    let (config, file) = gateway_without_broker(&dir);
    let bytes = garbage(16 * 1024);
    std::fs::write(&file, &bytes).expect("write garbage");
    let stderr = run_expecting_failure(&config);
    assert_damaged_message(&stderr, &file);
    assert!(
        std::fs::read(&file).expect("the file is still there") == bytes,
        "unchanged"
    );
}

/// `wal`: the damaged file is in WAL mode, as the files mqgate writes are.
fn damaged_pages_stop_mqgate(label: &str, wal: bool) {
    let dir = Scratch::new(label);
    let (config, file) = gateway_without_broker(&dir);
    damaged_database(&file, wal);
    let bytes = std::fs::read(&file).expect("read the damaged file");
    let stderr = run_expecting_failure(&config);
    assert_damaged_message(&stderr, &file);
    let after = std::fs::read(&file).expect("the file is still there");
    let changed: Vec<usize> = (0..bytes.len().max(after.len()))
        .filter(|&i| bytes.get(i) != after.get(i))
        .collect();
    assert_eq!(
        changed,
        [] as [usize; 0],
        "offsets changed in {}",
        file.display()
    );
}

#[test]
fn a_store_file_with_damaged_pages_stops_mqgate_naming_it_and_is_left_as_it_was() {
    damaged_pages_stop_mqgate("store-damaged", true);
}

#[test]
fn a_damaged_store_file_with_a_rollback_journal_is_left_as_it_was() {
    damaged_pages_stop_mqgate("store-damaged-journal", false);
}

#[test]
fn a_folder_in_place_of_the_store_file_stops_mqgate_naming_it_and_is_left_as_it_was() {
    let dir = Scratch::new("store-folder");
    let (config, file) = gateway_without_broker(&dir);
    std::fs::create_dir(&file).expect("a folder where the file goes");
    std::fs::write(file.join("keep"), "x").expect("a file in the folder");
    let stderr = run_expecting_failure(&config);
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(file.is_dir() && std::fs::read(file.join("keep")).is_ok_and(|b| b == b"x"));
}

/// A small file system in memory mounted (as root) over a folder, unmounted when
/// dropped; `Err` with the reason where it cannot be mounted.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The number before `marker` in the gateway's closing line, e.g. "12 evicted".
fn closing_count(line: &str, marker: &str) -> u64 {
    let before = line
        .split(marker)
        .next()
        .unwrap_or_else(|| panic!("{marker:?} in {line}"));
    before
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count before {marker:?} in {line}"))
}

/// The store on a 3 MB file system while the upstream is down and a burst comes
/// in: below `min_free_bytes` the store counts as full and evicts the oldest
/// (counted) before the file system refuses anything; with the upstream back,
/// everything kept is delivered, acknowledgements free the store, new lines
/// still go through, and the file gives its room back to the disk.
#[test]
fn a_store_on_a_full_small_disk_evicts_the_oldest_and_recovers_when_the_upstream_returns() {
    let n = 60_000u64;
    let store_yaml = "store:\n  min_free_bytes: 1048576\n  when_full: drop_oldest\n";
    let mut rig = Rig::new("small-disk", 1, false, store_yaml);
    let _disk = match SmallDisk::mount(&SeqGateway::state_dir(&rig.dir), "3m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: a tmpfs cannot be mounted here (it needs root): {why}");
            return;
        }
    };
    assert!(rig.up.stop().success());
    let gw = rig.start_gateway();
    let feeder = rig.feed(n, 5000.0);
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(Duration::from_secs(60));
    let low = gw.wait_for_line(Stream::Stderr, &["less than store.min_free_bytes"], WAIT);
    assert!(
        low.contains("WARN") && low.contains("when_full: drop_oldest"),
        "{low}"
    );
    assert_eq!(
        count_lines(&gw, "the disk is full"),
        0,
        "the reserve keeps the file system from refusing writes"
    );

    rig.up.restart();
    wait_upstream_connects(&gw, 1, WAIT);
    // New lines go through behind what was kept.
    let stats = fence(&mut master, &plan, &rig.sub, 1, Duration::from_secs(60));
    // Delivered, the file gives its room back, and the store stops counting as full.
    gw.wait_for_line(Stream::Stderr, &["gave", "bytes of free pages back"], WAIT);
    let room = gw.wait_for_line(
        Stream::Stderr,
        &["the disk of the store has room again"],
        WAIT,
    );
    assert!(room.contains("INFO"), "{room}");
    let mut gw = gw;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
    let closed = gw.wait_for_line(Stream::Stderr, &["closed: "], WAIT);
    let evicted = closing_count(&closed, " evicted (store full)");
    eprintln!("small disk: {evicted} evicted; {}", stats.summary());
    assert!(evicted > 0, "the disk filled up: {closed}");
    assert!(
        closed.contains("0 message(s) in the store;"),
        "every acknowledged message left the store: {closed}"
    );
    // The oldest were evicted, and every other line arrived, in order. Lines the
    // upstream output had taken to send (at most its window, `max_inflight`) when
    // the fence's appends evicted their rows still arrive: evicted from the
    // store, they are not lost.
    let runs = stats.missing_runs(0..n);
    assert_eq!(runs.len(), 1, "one run of the oldest: {}", stats.summary());
    assert_eq!(runs[0].start, 0, "{}", stats.summary());
    let missing = runs[0].end;
    assert!(
        missing <= evicted && evicted - missing <= 100,
        "{missing} missing, {evicted} evicted: {}",
        stats.summary()
    );
    assert_eq!(stats.unique, n - missing, "{}", stats.summary());
    assert_eq!(stats.out_of_order, 0, "{}", stats.summary());
}
