//! SIGHUP (`systemctl reload`) reloads mappings and scripts while numbered lines
//! stream through `mqgate run` to Mosquitto at QoS 2: a new script takes over at
//! one point in the stream with nothing lost or doubled around it, and a broken
//! script or mapping file is refused with its file and line while the running
//! mapping goes on.

mod faults_common;

use std::path::Path;

use faults_common::{assert_complete, stop_gateway, Rig, RATE, WAIT};
use mqgate_tests::feeder::{fence, wait_upstream_connects, FEED_SOURCE};
use mqgate_tests::http::{api_status, status_addr};
use test_support::mosquitto::Subscriber;
use test_support::process::Stream;

/// The feed's lines published as they are, plus `"v": 2`.
const V2: &str = "fn map(frame) {\n    let v = json_parse(frame.text);\n    v.v = 2;\n    #{ name: v.id, payload: v }\n}\n";
/// Does not compile: line 2 has no value after `=`.
const BROKEN: &str = "fn map(frame) {\n    let v = ;\n    v\n}\n";

/// Points the feed's mapping file at `script`, with `qos` (a bad value is a
/// configuration error).
fn write_mapping(rig: &Rig, script: &Path, qos: &str) {
    rig.dir.write(
        "seq-mappings/feed.yaml",
        format!(
            "source: {FEED_SOURCE}\nscript: {}\ntopic: \"seq/{{name}}\"\nqos: {qos}\nretain: false\n",
            script.display()
        ),
    );
}

#[test]
fn sighup_swaps_the_script_mid_stream_and_refuses_broken_files_without_losing_a_line() {
    let n: u64 = 3000;
    let mut rig = Rig::new("reload", 2, false, "");
    let shapes = Subscriber::start("reload-shapes", rig.up.port(), &rig.spec.filter());
    let mut gw = rig.start_gateway();
    wait_upstream_connects(&gw, 1, WAIT);
    let status = status_addr(&gw, WAIT);
    let feeder = rig.feed(n, RATE);
    rig.sub
        .wait_until("300 lines before the reload", WAIT, |s| s.unique >= 300);

    // 1. A new script.
    let v2 = rig.dir.write("v2.rhai", V2);
    write_mapping(&rig, &v2, "2");
    gw.signal(libc::SIGHUP);
    gw.wait_for_line(
        Stream::Stderr,
        &["reloaded the mappings of 1 source(s)"],
        WAIT,
    );
    let at_reload = rig.sub.stats().unique;
    rig.sub.wait_until("300 lines after the reload", WAIT, |s| {
        s.unique >= at_reload + 300
    });

    // 2. A script that does not compile: refused, naming the file and line.
    rig.dir.write("v2.rhai", BROKEN);
    gw.signal(libc::SIGHUP);
    let line = gw.wait_for_line(Stream::Stderr, &["reload: ", "v2.rhai:2:"], WAIT);
    assert!(line.contains("ERROR"), "{line}");
    gw.wait_for_line(
        Stream::Stderr,
        &["reload refused (1 error(s)); the running mappings stay"],
        WAIT,
    );

    // 3. A bad field in the mapping file: refused, naming the file, line and field.
    rig.dir.write("v2.rhai", V2);
    write_mapping(&rig, &v2, "7");
    gw.signal(libc::SIGHUP);
    gw.wait_for_line(Stream::Stderr, &["reload: ", "feed.yaml:4:", "qos"], WAIT);
    let refused = gw.wait_until("two refused reloads", WAIT, |lines| {
        let c = lines
            .iter()
            .filter(|l| l.stream == Stream::Stderr && l.text.contains("reload refused"))
            .count();
        (c >= 2).then_some(c)
    });
    assert_eq!(refused, 2);
    // The gateway logs a reload's outcome, then keeps it for the status page.
    let deadline = std::time::Instant::now() + WAIT;
    let s = loop {
        let s = api_status(status, WAIT);
        if s["gateway"]["reloads"]["failed"] == 2 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let reloads = &s["gateway"]["reloads"];
    assert_eq!(reloads["succeeded"], 1, "{reloads}");
    assert_eq!(reloads["failed"], 2, "{reloads}");
    assert_eq!(reloads["last"]["ok"], false, "{reloads}");
    let message = reloads["last"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("feed.yaml:4:"), "{message}");
    assert!(gw.try_exited().is_none(), "the gateway runs on");

    // Every line arrives once, whatever happened to the mappings meanwhile.
    let plan = feeder.plan().clone();
    let mut master = feeder.finish(WAIT);
    rig.sub.wait_for_all(n, WAIT);
    let stats = fence(&mut master, &plan, &rig.sub, 1, WAIT);
    assert_complete(&stats, n, 2);

    // The old script up to one line, the new one from the next line on: the
    // running (new) script stayed through both refused reloads.
    let messages = shapes.wait_until("every line", WAIT, |m| m.len() as u64 >= n);
    // The fence is not one of the feed's lines.
    let messages: Vec<_> = messages
        .iter()
        .filter(|m| !m.text().contains("\"fence\""))
        .collect();
    let mut first_v2 = None;
    for (i, m) in messages.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{e}: {}", m.text()));
        assert_eq!(v["seq"], i as u64, "in order: {}", m.text());
        match (first_v2, v.get("v")) {
            (None, Some(_)) => first_v2 = Some(i),
            (Some(_), None) => panic!("the old script after the new one at {i}: {}", m.text()),
            _ => {}
        }
    }
    let first_v2 = first_v2.expect("the new script took over");
    assert!(
        first_v2 >= 300 && (first_v2 as u64) < at_reload + 300,
        "switched at {first_v2}"
    );
    eprintln!("the new script took over at line {first_v2} of {n}");
    stop_gateway(gw);
}

/// A reload that leaves part of the change for a restart says so as a warning.
#[test]
fn a_reload_with_changes_that_need_a_restart_warns() {
    let dir = test_support::scratch::Scratch::new("reload-warn");
    let text = |baud: u32| {
        format!(
            "gateway:\n  id: warn\n  state_dir: {}\nstatus:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: probe\n    type: serial\n    path: {}\n    baud: {baud}\n",
            dir.path().join("state").display(),
            dir.path().join("no-such-tty").display()
        )
    };
    let config = dir.write("mqgate.yaml", text(9600));
    let mut gw = mqgate_tests::mqgate::start_mqgate_run(&config);
    gw.wait_for_line(Stream::Stderr, &["gateway warn running"], WAIT);
    dir.write("mqgate.yaml", text(19200));
    gw.signal(libc::SIGHUP);
    let line = gw.wait_for_line(
        Stream::Stderr,
        &["changed but not applied until a restart: sources"],
        WAIT,
    );
    assert!(line.contains("WARN"), "{line}");
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait_exit(WAIT).code(), Some(0), "{}", gw.transcript());
}
