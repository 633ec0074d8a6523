//! The one-shot `mqgate` commands run as real processes: `check`, `map` and
//! `replay --dry-run` on good and bad input.

use mqgate_tests::mqgate::{
    dry_run, parse_json_message, replay_counts, run_mqgate, run_mqgate_in, workspace_file,
};
use test_support::scratch::Scratch;

#[test]
fn check_accepts_the_demo_configuration() {
    let demo = workspace_file("examples/demo.yaml");
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), demo.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(
        done.stdout.contains("demo.yaml: ok"),
        "stdout: {}",
        done.stdout
    );
}

#[test]
fn check_names_the_file_and_line_of_an_unknown_key() {
    let dir = Scratch::new("check-key");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: gps\n    type: serial\n    path: /dev/null\n    baud: 9600\n    colour: red\n",
    );
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    let at = format!("{}:8", config.display());
    let line = done
        .stderr
        .lines()
        .find(|l| l.starts_with(&at))
        .unwrap_or_else(|| panic!("no line starting with {at:?}:\n{}", done.stderr));
    assert!(line.contains("colour"), "the error names the key: {line}");
}

#[test]
fn an_empty_status_password_stops_check_and_run_with_exit_code_2_naming_the_field() {
    let dir = Scratch::new("check-empty-password");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\n  state_dir: state\nstatus:\n  listen: 127.0.0.1:0\n  username: admin\n  password: \"\"\n",
    );
    let expected = format!(
        "{}:7:3: status.password: the password is empty",
        config.display()
    );
    for command in ["check", "run"] {
        let done = run_mqgate(&[command.as_ref(), "--config".as_ref(), config.as_os_str()]);
        assert_eq!(done.code(), 2, "{command}, stderr:\n{}", done.stderr);
        assert!(
            done.stderr.contains(&expected),
            "{command}: no {expected:?} in\n{}",
            done.stderr
        );
    }
}

#[test]
fn check_names_the_rhai_file_and_line_of_a_script_that_does_not_compile() {
    let dir = Scratch::new("check-script");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: /dev/null\n",
    );
    dir.write(
        "mappings/probe.yaml",
        "source: probe\nscript: ../scripts/broken.rhai\n",
    );
    let script = dir.write(
        "scripts/broken.rhai",
        "fn map(frame) {\n    let x = 1;\n    let y = (x + ;\n    y\n}\n",
    );
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    // `FILE:3:COLUMN: message`, FILE being the script however the path is spelled.
    let named = done.stderr.lines().any(|l| {
        l.split_once(".rhai:3:").is_some_and(|(file, _)| {
            std::fs::canonicalize(format!("{file}.rhai")).ok()
                == Some(std::fs::canonicalize(&script).expect("script path"))
        })
    });
    assert!(
        named,
        "expected an error naming {}:3:\n{}",
        script.display(),
        done.stderr
    );
}

#[test]
fn check_and_run_name_the_file_and_line_of_a_library_module_that_does_not_compile() {
    let dir = Scratch::new("check-module");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: /dev/null\n",
    );
    dir.write(
        "mappings/probe.yaml",
        "source: probe\nscript: ../scripts/probe.rhai\n",
    );
    dir.write(
        "scripts/probe.rhai",
        "fn map(frame) {\n    import \"units\" as u;\n    #{ payload: u::volts(frame.bytes) }\n}\n",
    );
    let module = dir.write(
        "scripts/lib/units.rhai",
        "fn volts(b) {\n    let mv = u16be(b, 0);\n    mv / 1000.0 +\n}\n",
    );
    for command in ["check", "run"] {
        let done = run_mqgate(&[command.as_ref(), "--config".as_ref(), config.as_os_str()]);
        assert_eq!(done.code(), 2, "{command}, stderr:\n{}", done.stderr);
        let named = done.stderr.lines().any(|l| {
            l.split_once(".rhai:4:").is_some_and(|(file, _)| {
                let file = file.trim_start_matches("mqgate: ");
                std::fs::canonicalize(format!("{file}.rhai")).ok()
                    == Some(std::fs::canonicalize(&module).expect("module path"))
            })
        });
        assert!(
            named,
            "{command}: expected an error naming {}:4:\n{}",
            module.display(),
            done.stderr
        );
    }
}

#[test]
fn map_finds_the_library_beside_the_script() {
    let dir = Scratch::new("map-module");
    dir.write(
        "lib/units.rhai",
        "fn volts(b) {\n    u16be(b, 0) / 1000.0\n}\n",
    );
    let script = dir.write(
        "probe.rhai",
        "fn map(frame) {\n    import \"units\" as u;\n    #{ payload: #{ port: fport(frame), volts: u::volts(frame.bytes) } }\n}\n",
    );
    let done = run_mqgate(&[
        "map".as_ref(),
        "--script".as_ref(),
        script.as_os_str(),
        "--hex".as_ref(),
        "0ce4".as_ref(),
        "--meta".as_ref(),
        "fport=5".as_ref(),
    ]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    let msg = parse_json_message(done.stdout.trim());
    let payload: serde_json::Value = serde_json::from_slice(&msg.payload).expect("JSON payload");
    assert_eq!(payload, serde_json::json!({"port": 5, "volts": 3.3}));
}

#[test]
fn map_prints_a_cayenne_lpp_reading_as_a_json_line() {
    let done = run_mqgate(&[
        "map",
        "--script",
        "scripts/cayenne-lpp.rhai",
        "--hex",
        "03670110",
        "--source",
        "node7",
        "--topic",
        "sensors/{source}/{channel}/{type_name}",
    ]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one reading, one line: {lines:?}");
    let msg = parse_json_message(lines[0]);
    assert_eq!(msg.topic, "sensors/node7/3/temperature");
    assert_eq!((msg.qos, msg.retain), (1, false));
    let payload: serde_json::Value = serde_json::from_slice(&msg.payload).expect("JSON payload");
    assert_eq!(
        payload,
        serde_json::json!({"channel": 3, "type": 103, "type_name": "temperature", "value": 27.2, "unit": "°C"})
    );
}

#[test]
fn map_of_a_script_that_throws_exits_non_zero_with_the_error_text() {
    let dir = Scratch::new("map-throw");
    let script = dir.write(
        "throws.rhai",
        "fn map(frame) {\n    throw `sensor ${frame.bytes.len()} says no`;\n}\n",
    );
    let done = run_mqgate(&[
        "map".as_ref(),
        "--script".as_ref(),
        script.as_os_str(),
        "--hex".as_ref(),
        "0102".as_ref(),
    ]);
    assert_ne!(done.code(), 0, "stdout:\n{}", done.stdout);
    assert!(
        done.stderr.contains("sensor 2 says no"),
        "stderr: {}",
        done.stderr
    );
    assert!(
        done.stderr.contains("throws.rhai"),
        "stderr: {}",
        done.stderr
    );
    assert!(done.stdout.is_empty(), "nothing printed as a message");

    // The real decoder on a byte that is no LPP type.
    let done = run_mqgate(&[
        "map",
        "--script",
        "scripts/cayenne-lpp.rhai",
        "--hex",
        "03fe01",
    ]);
    assert_ne!(done.code(), 0, "stdout:\n{}", done.stdout);
    assert!(
        done.stderr.contains("invalid channel type 0xFE at byte 1"),
        "stderr: {}",
        done.stderr
    );
}

/// `$` + body + `*` + the XOR of the body, and CRLF.
fn nmea(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |a, b| a ^ b);
    let mut line = b"$".to_vec();
    line.extend_from_slice(body);
    line.extend_from_slice(format!("*{sum:02X}\r\n").as_bytes());
    line
}

#[test]
fn replay_dry_run_survives_garbage_and_an_overlong_line_and_maps_the_good_sentences() {
    let dir = Scratch::new("replay-bad");
    let mappings = mqgate_tests::mqgate::gps_mappings(dir.path());
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: bad-input\nmappings: {}\nsources:\n  - id: gps\n    type: serial\n    path: /dev/ttyUSB-none\n    framing:\n      type: lines\n      max_length: 128\n      nmea_checksum: true\n      skip_comments: true\n",
            mappings.display()
        ),
    );
    // Bytes that are no text at all (no line end among them), from a fixed LCG.
    let mut seed = 0x2545_f491_u32;
    let mut garbage = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                match (seed >> 24) as u8 {
                    b'\n' | b'\r' => 0xFF,
                    b => b,
                }
            })
            .collect()
    };
    let good = [
        &b"GPGGA,214350,4023.8600,N,00339.1630,W,8,09,2.0,695.7,M,51.6,M,,"[..],
        b"GPRMC,214352,V,4023.8660,N,00339.1630,W,10.8,0.0,140605,2.5,W,S",
        b"PGRME,15.0,M,22.5,M,27.0,M",
    ];
    let mut input = b"# a comment line, skipped\n".to_vec();
    input.extend(nmea(good[0]));
    input.push(0x00); // a garbage line: 1 bad
    input.extend(garbage(99));
    input.push(b'\n');
    input.extend(garbage(5000)); // an overlong line: 1 bad
    input.push(b'\n');
    input.extend(nmea(good[1]));
    input.extend(b"$GPGLL,4023.8600,N,00339.1630,W,214350,V,S*00\r\n"); // bad checksum: 1 bad
                                                                        // A sentence with a good checksum that is not UTF-8: the script refuses it and
                                                                        // it goes to the dead-letter topic.
    input.extend(nmea(b"GPTXT,\xff\xfe"));
    input.extend(nmea(good[2]));
    input.extend(b"$GPGGA,2143"); // cut off at the end: 1 bad
    let capture = dir.write("garbage.log", &input);

    let done = run_mqgate(&[
        "replay".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--source".as_ref(),
        "gps".as_ref(),
        "--fast".as_ref(),
        "--dry-run".as_ref(),
        capture.as_os_str(),
    ]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert_eq!(
        replay_counts(&done.stderr, "gps"),
        (4, 4, 1),
        "4 frames (3 good, 1 not text), 4 bad, the one not text dead-lettered; stderr:\n{}",
        done.stderr
    );
    let msgs: Vec<_> = done.stdout.lines().map(parse_json_message).collect();
    let topics: Vec<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "gps/GPGGA",
            "gps/GPRMC",
            "mqgate/bad-input/deadletter/gps",
            "gps/PGRME"
        ]
    );
    let dead: serde_json::Value = serde_json::from_slice(&msgs[2].payload).expect("JSON");
    assert_eq!(
        dead["bytes_hex"].as_str(),
        Some(
            nmea(b"GPTXT,\xff\xfe")
                .strip_suffix(b"\r\n")
                .expect("CRLF")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .as_str()
        ),
        "the dead letter keeps the frame's bytes: {dead}"
    );
    let gga: serde_json::Value = serde_json::from_slice(&msgs[0].payload).expect("JSON");
    assert_eq!(gga["satellites"], 9, "{gga}");

    // The same good sentences alone give the same good messages.
    let clean: Vec<u8> = good.iter().flat_map(|b| nmea(b)).collect();
    let clean = dir.write("clean.log", clean);
    let expected = dry_run(&config, "gps", &clean);
    let good_msgs: Vec<_> = msgs
        .iter()
        .filter(|m| m.topic.starts_with("gps/"))
        .cloned()
        .collect();
    assert_eq!(good_msgs, expected);
}

#[test]
fn under_systemd_the_log_lines_carry_their_syslog_priority_and_no_time() {
    use std::os::unix::fs::MetadataExt;
    let dir = Scratch::new("journal");
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).expect("create the log file");
    let meta = file.metadata().expect("metadata");
    let demo = workspace_file("examples/demo.yaml");
    let capture = workspace_file("tests/captures/json-sensor.log");
    let status = mqgate_tests::mqgate::mqgate()
        .args(["replay", "--config"])
        .arg(&demo)
        .args(["--source", "json-sensor", "--fast", "--dry-run"])
        .arg(&capture)
        // As systemd sets it when stderr is the journal's stream.
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .status()
        .expect("run mqgate");
    assert!(status.success());
    let text = std::fs::read_to_string(&log).expect("read the log");
    let logged: Vec<&str> = text.lines().filter(|l| l.starts_with('<')).collect();
    assert!(
        logged.iter().any(|l| l.starts_with("<6>mqgate::")),
        "info lines start with <6>:\n{text}"
    );
    assert!(
        !text.contains("INFO"),
        "no level words or time stamps, the journal has its own:\n{text}"
    );
}

/// Every kind of script that does not compile is a configuration error: exit 2 from
/// every command that loads it (systemd restarts mqgate on a failure, but not on 2).
#[test]
fn every_command_exits_2_for_each_kind_of_script_that_does_not_compile() {
    let kinds = [
        (
            "a syntax error",
            "fn map(frame) {\n    let out = #{;\n    out\n}\n",
        ),
        ("no fn map", "fn decode(frame) {\n    #{ payload: 1 }\n}\n"),
        (
            "a top-level const",
            "const LIMIT = 10;\nfn map(frame) {\n    #{ payload: LIMIT }\n}\n",
        ),
        (
            "a call to a function nothing defines",
            "fn map(frame) {\n    #{ payload: flaot_or_null(frame.text) }\n}\n",
        ),
    ];
    for (kind, text) in kinds {
        let dir = Scratch::new("script-exit-2");
        let config = dir.write(
            "mqgate.yaml",
            "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: /dev/null\n",
        );
        dir.write(
            "mappings/probe.yaml",
            "source: probe\nscript: ../scripts/probe.rhai\n",
        );
        let script = dir.write("scripts/probe.rhai", text);
        let capture = dir.write("capture.bin", "1\n2\n");
        let c = config.as_os_str();
        let commands: [(&str, Vec<&std::ffi::OsStr>); 4] = [
            ("check", vec!["check".as_ref(), "--config".as_ref(), c]),
            ("run", vec!["run".as_ref(), "--config".as_ref(), c]),
            (
                "replay --dry-run",
                vec![
                    "replay".as_ref(),
                    "--dry-run".as_ref(),
                    "--fast".as_ref(),
                    "--source".as_ref(),
                    "probe".as_ref(),
                    "--config".as_ref(),
                    c,
                    capture.as_os_str(),
                ],
            ),
            (
                "map",
                vec![
                    "map".as_ref(),
                    "--script".as_ref(),
                    script.as_os_str(),
                    "--hex".as_ref(),
                    "01".as_ref(),
                ],
            ),
        ];
        for (name, args) in commands {
            let done = run_mqgate(&args);
            assert_eq!(
                done.code(),
                2,
                "{name} with {kind}: stderr:\n{}",
                done.stderr
            );
            assert!(
                done.stderr.contains("probe.rhai"),
                "{name} with {kind} names the script:\n{}",
                done.stderr
            );
        }
    }
}

/// `check` finds a misspelt helper before any frame reaches it, names the line and
/// the helper meant; a filter calling one is named by its mapping file.
#[test]
fn check_reports_a_call_to_a_function_nothing_defines() {
    let dir = Scratch::new("check-unknown-fn");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: env\n    type: serial\n    path: /dev/null\n",
    );
    dir.write(
        "mappings/env.yaml",
        "source: env\nscript: ../scripts/env.rhai\n",
    );
    // Only a frame without `T=` reaches the misspelt call: a test with good frames
    // would never see it.
    dir.write(
        "scripts/env.rhai",
        "fn map(frame) {\n    if frame.text.starts_with(\"T=\") {\n        return #{ payload: frame.text };\n    }\n    #{ payload: flaot_or_null(frame.text) }\n}\n",
    );
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    let script = dir.path().join("scripts/env.rhai");
    let expected = format!(
        "{}:5:17: calls `flaot_or_null`, a function that neither the script, its library, \
         mqgate's helpers nor Rhai defines; did you mean `float_or_null`?",
        script.display()
    );
    assert!(done.stderr.contains(&expected), "{}", done.stderr);

    dir.write(
        "scripts/env.rhai",
        "fn map(frame) {\n    #{ payload: frame.text }\n}\n",
    );
    dir.write(
        "mappings/env.yaml",
        "source: env\nscript: ../scripts/env.rhai\nfilter: is_emtpy(frame.text)\n",
    );
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    let mapping = dir.path().join("mappings/env.yaml");
    assert!(
        done.stderr.contains(&format!(
            "{}: filter \"is_emtpy(frame.text)\":1:1: calls `is_emtpy`",
            mapping.display()
        )),
        "{}",
        done.stderr
    );
}

/// `check` says each problem once, names the mapping file of a filter that does not
/// compile, and prints paths tidied (no `./` or `mappings/../`).
#[test]
fn check_says_each_problem_once_with_tidy_paths() {
    let dir = Scratch::new("check-tidy");
    dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nmappings: ./mappings\nsources:\n  - id: env\n    type: serial\n    path: /dev/null\n",
    );
    dir.write(
        "mappings/env.yaml",
        "source: env\ntopic: \"sensors/{source/x\"\nscript: ../scripts/env.rhai\n",
    );
    dir.write(
        "scripts/env.rhai",
        "fn map(frame) {\n    #{ payload: ;\n}\n",
    );
    // From the folder of the gateway file, as a user types it.
    let done = run_mqgate_in(dir.path(), &["check", "--config", "./mqgate.yaml"]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    let lines: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains("unclosed")).count(),
        1,
        "the bad template once:\n{}",
        done.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("mappings/env.yaml:2:1: topic: unclosed `{`")),
        "{}",
        done.stderr
    );
    assert!(
        lines.iter().any(|l| l.starts_with("scripts/env.rhai:2:")),
        "the script by its tidy path:\n{}",
        done.stderr
    );
    assert!(!done.stderr.contains("./"), "{}", done.stderr);

    dir.write(
        "mappings/env.yaml",
        "source: env\nscript: ../scripts/env.rhai\nfilter: \"frame.text.len( > 0\"\n",
    );
    dir.write(
        "scripts/env.rhai",
        "fn map(frame) {\n    #{ payload: 1 }\n}\n",
    );
    let done = run_mqgate_in(dir.path(), &["check", "--config", "./mqgate.yaml"]);
    assert_eq!(done.code(), 2, "stderr:\n{}", done.stderr);
    assert!(
        done.stderr
            .contains("mappings/env.yaml: filter \"frame.text.len( > 0\":1:"),
        "the filter's error names its mapping file:\n{}",
        done.stderr
    );
}

/// Every option of every command says what it is in `--help`.
#[test]
fn every_option_in_help_has_a_description() {
    for command in ["run", "check", "replay", "map", "capture"] {
        let done = run_mqgate(&[command, "--help"]);
        assert_eq!(done.code(), 0, "{command} --help: {}", done.stderr);
        let options = done
            .stdout
            .split("Options:")
            .nth(1)
            .unwrap_or_else(|| panic!("{command} --help has options:\n{}", done.stdout));
        for line in options.lines().filter(|l| l.trim_start().starts_with("--")) {
            let described = line
                .trim()
                .split_once("  ")
                .is_some_and(|(_, text)| !text.trim().is_empty());
            assert!(described, "{command}: `{}` has no description", line.trim());
        }
    }
}

/// A serial device that is not there is a warning from `check`, not an error: it
/// may be plugged in later.
#[test]
fn check_warns_about_a_serial_device_that_does_not_exist() {
    let dir = Scratch::new("check-missing-device");
    let missing = dir
        .path()
        .join("serial/by-id/usb-FTDI_no_such_device-if00-port0");
    let config = dir.write(
        "mqgate.yaml",
        format!(
            "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: {}\n",
            missing.display()
        ),
    );
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(done.stdout.contains(": ok ("), "{}", done.stdout);
    let expected = format!(
        "warning: source probe: serial device {} does not exist (yet)",
        missing.display()
    );
    assert!(done.stderr.contains(&expected), "{}", done.stderr);
    // Once it is there, no warning.
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    std::fs::write(&missing, "").unwrap();
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(!done.stderr.contains("warning"), "{}", done.stderr);
}

/// A command that may wait longer than its `send_timeout_ms` behind the
/// device's own traffic is warned about; raising the limit silences it.
#[test]
fn check_warns_when_a_modbus_write_may_take_longer_than_the_commands_send_timeout() {
    let dir = Scratch::new("check-slow-commands");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nbroker:\n  listen: 127.0.0.1:0\nsources:\n  - id: plc\n    type: modbus_tcp\n    host: 127.0.0.1:1502\n\
         \x20   timeout_ms: 2000\n    retries: 2\n    devices:\n\
         \x20     - { name: pump, unit: 1, fields: [{ name: speed, register: holding, address: 0 }] }\n",
    );
    let mapping = |timeout: u64| {
        format!(
            "source: plc\ntopic: \"plc/{{device}}\"\ncommands:\n  topic: \"cmd/plc\"\n  send_timeout_ms: {timeout}\n"
        )
    };
    dir.write("mappings/plc.yaml", mapping(5000));
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(
        done.stderr.contains("plc.yaml: commands.send_timeout_ms (5000) is not above timeout_ms × (retries + 1), what one write may take (6000 ms) of source plc"),
        "{}",
        done.stderr
    );
    dir.write("mappings/plc.yaml", mapping(7000));
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(!done.stderr.contains("warning"), "{}", done.stderr);
}

/// 200 frames a broken script fails on: 200 dead letters, but one log line (with
/// the others counted once a minute), not 200.
#[test]
fn repeated_dead_letters_are_logged_once_and_then_counted() {
    let dir = Scratch::new("dead-letter-log");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: /dev/null\n",
    );
    dir.write(
        "mappings/probe.yaml",
        "source: probe\nscript: ../scripts/probe.rhai\n",
    );
    dir.write(
        "scripts/probe.rhai",
        "fn map(frame) {\n    throw `no reading in ${frame.bytes.len()} bytes`;\n}\n",
    );
    let lines: String = (0..200).map(|i| format!("T={i};H=40\n")).collect();
    let capture = dir.write("bad.bin", lines);
    let done = run_mqgate(&[
        "replay".as_ref(),
        "--dry-run".as_ref(),
        "--fast".as_ref(),
        "--source".as_ref(),
        "probe".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        capture.as_os_str(),
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let dead = done
        .stdout
        .lines()
        .filter(|l| l.contains("/deadletter/probe"))
        .count();
    assert_eq!(dead, 200, "{}", done.stdout);
    let logged: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("frame to the dead-letter topic"))
        .collect();
    assert_eq!(logged.len(), 1, "{}", done.stderr);
    assert!(logged[0].contains("no reading in"), "{}", logged[0]);
    assert_eq!(replay_counts(&done.stderr, "probe"), (200, 0, 200));
    // A replay is not a gateway running.
    assert!(
        done.stderr
            .contains("replaying a capture through source probe"),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("gateway test running"),
        "{}",
        done.stderr
    );
}

/// SIGINT during a replay at the recorded pace: the log says it stopped before the
/// end of the capture, not that it finished.
#[test]
fn a_replay_stopped_before_the_end_says_so() {
    let dir = Scratch::new("replay-stopped");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: probe\n    type: serial\n    path: /dev/null\n",
    );
    // Two lines a minute apart.
    let capture = dir.write(
        "slow.log",
        "# mqgate capture v1\n0 543d310a\n60000000 543d320a\n",
    );
    let mut cmd = mqgate_tests::mqgate::mqgate();
    cmd.args(["replay", "--dry-run", "--source", "probe", "--config"])
        .arg(&config)
        .arg(&capture);
    let mut replay = test_support::process::Proc::spawn("mqgate replay", cmd);
    replay.wait_for_line(
        test_support::process::Stream::Stdout,
        &["\"topic\""],
        std::time::Duration::from_secs(20),
    );
    replay.signal(libc::SIGINT);
    let status = replay.wait_exit(std::time::Duration::from_secs(20));
    let log = replay
        .stream(test_support::process::Stream::Stderr)
        .join("\n");
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("source probe: 1 frames"), "{log}");
    assert!(
        log.contains("replay stopped before the end of the capture"),
        "{log}"
    );
    assert!(!log.contains("replay finished"), "{log}");
}

/// `map --mapping` uses the mapping file's topic template, qos and retain (and its
/// script, relative to the mapping file), so it prints what `run` would publish.
#[test]
fn map_with_a_mapping_file_prints_what_run_would_publish() {
    let dir = Scratch::new("map-mapping");
    dir.write(
        "scripts/thp.rhai",
        "fn map(frame) {\n    let out = #{};\n    for part in frame.text.split(\";\") {\n        \
         let kv = part.split(\"=\");\n        out[kv[0]] = parse_float(kv[1]);\n    }\n    \
         #{ payload: out }\n}\n",
    );
    let mapping = dir.write(
        "mappings/weather.yaml",
        "source: weather\nscript: ../scripts/thp.rhai\ntopic: \"site-7/{source}/thp\"\nqos: 2\nretain: true\n",
    );
    let hex: String = b"T=21.5;H=40;P=1013.2"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let done = run_mqgate(&[
        "map".as_ref(),
        "--mapping".as_ref(),
        mapping.as_os_str(),
        "--hex".as_ref(),
        hex.as_str().as_ref(),
    ]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let m = parse_json_message(done.stdout.trim());
    assert_eq!(m.topic, "site-7/weather/thp");
    assert_eq!((m.qos, m.retain), (2, true));
    let payload: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
    assert_eq!(payload["P"], 1013.2, "{payload}");
    // A mistake in the mapping file is a configuration error, with its line.
    dir.write(
        "mappings/weather.yaml",
        "source: weather\nscript: ../scripts/thp.rhai\nqos: 7\n",
    );
    let done = run_mqgate(&[
        "map".as_ref(),
        "--mapping".as_ref(),
        mapping.as_os_str(),
        "--hex".as_ref(),
        hex.as_str().as_ref(),
    ]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert!(done.stderr.contains("weather.yaml:3:"), "{}", done.stderr);
}

#[test]
fn map_runs_a_javascript_codec_with_its_port_from_the_meta() {
    let done = run_mqgate(&[
        "map",
        "--script",
        "scripts/dragino-lht65.js",
        "--hex",
        "cbf60b0d0376010add7fff",
        "--meta",
        "fport=2",
        "--source",
        "garden",
    ]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one uplink, one line: {lines:?}");
    let msg = parse_json_message(lines[0]);
    assert_eq!(msg.topic, "sensors/garden");
    let payload: serde_json::Value = serde_json::from_slice(&msg.payload).expect("JSON payload");
    assert_eq!(
        payload,
        serde_json::json!({"BatV": 3.062, "Bat_status": 3, "Ext_sensor": "Temperature Sensor",
            "Hum_SHT": 88.6, "TempC_DS": 27.81, "TempC_SHT": 28.29})
    );
}

#[test]
fn map_runs_a_mapping_whose_codec_loads_a_library() {
    let dir = Scratch::new("map-js-mapping");
    let mapping = dir.write(
        "sht35.yaml",
        format!(
            "source: lorawan\nscript: {}\nlibraries: [{}]\ntopic: \"lorawan/{{device}}\"\n",
            workspace_file("scripts/decentlab-dl-sht35.js").display(),
            workspace_file("scripts/lib/decentlab.js").display()
        ),
    );
    let done = run_mqgate(&[
        "map".as_ref(),
        "--mapping".as_ref(),
        mapping.as_os_str(),
        "--hex".as_ref(),
        "02030e000364a079b10c60".as_ref(),
        "--meta".as_ref(),
        "fport=1".as_ref(),
        "--meta".as_ref(),
        "device=sht35-garden".as_ref(),
    ]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    let msg = parse_json_message(done.stdout.trim());
    assert_eq!(msg.topic, "lorawan/sht35-garden");
    assert_eq!((msg.qos, msg.retain), (1, false));
    let payload: serde_json::Value = serde_json::from_slice(&msg.payload).expect("JSON payload");
    assert_eq!(payload["device_id"], 782);
    assert_eq!(
        payload["battery_voltage"],
        serde_json::json!({"displayName": "Battery voltage", "unit": "V", "value": 3.168})
    );
}

#[test]
fn map_of_a_javascript_codec_that_fails_exits_non_zero_naming_the_codec() {
    // The codec's own error (another port), then a frame without the port it needs.
    for (meta, says) in [
        ("fport=3", "LHT65: unknown FPort 3"),
        ("rssi=-70", "no `fport` in its meta"),
    ] {
        let done = run_mqgate(&[
            "map",
            "--script",
            "scripts/dragino-lht65.js",
            "--hex",
            "cbf60b0d0376010add7fff",
            "--meta",
            meta,
        ]);
        assert_eq!(done.code(), 1, "stdout:\n{}", done.stdout);
        assert!(done.stdout.is_empty(), "nothing printed as a message");
        let line = done.stderr.trim();
        assert!(line.contains("scripts/dragino-lht65.js"), "{line}");
        assert!(line.contains(says), "{line}");
    }
    // A codec that does not parse: its file and line.
    let dir = Scratch::new("map-js-syntax");
    let codec = dir.write(
        "broken.js",
        "function decodeUplink(input) {\n  return { data: [1, };\n}\n",
    );
    let done = run_mqgate(&[
        "map".as_ref(),
        "--script".as_ref(),
        codec.as_os_str(),
        "--hex".as_ref(),
        "01".as_ref(),
        "--meta".as_ref(),
        "fport=1".as_ref(),
    ]);
    assert_eq!(done.code(), 2, "stdout:\n{}", done.stdout);
    let at = format!("{}:2", codec.display());
    assert!(done.stderr.starts_with(&at), "{at}: {}", done.stderr);
    assert!(done.stderr.contains("SyntaxError"), "{}", done.stderr);
}

#[test]
fn check_loads_a_javascript_codec_with_its_library_and_names_a_missing_one() {
    let dir = Scratch::new("check-js");
    let config = dir.write(
        "mqgate.yaml",
        "gateway:\n  id: test\nsources:\n  - id: lora\n    type: serial\n    path: /dev/null\n    baud: 9600\n",
    );
    let codec = workspace_file("scripts/decentlab-dl-sht35.js");
    let library = workspace_file("scripts/lib/decentlab.js");
    let mapping = |libraries: &str| {
        dir.write(
            "mappings/lora.yaml",
            format!(
                "source: lora\nscript: {}\nlibraries: [{libraries}]\ntopic: \"lorawan/{{source}}\"\n",
                codec.display()
            ),
        )
    };
    mapping(&library.display().to_string());
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 0, "stderr:\n{}", done.stderr);
    assert!(
        done.stdout.contains("1 scripts compiled"),
        "stdout: {}",
        done.stdout
    );

    let file = mapping("nowhere/decentlab.js");
    let done = run_mqgate(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert_eq!(done.code(), 2, "stdout:\n{}", done.stdout);
    let at = format!("{}:3", file.display());
    let line = done
        .stderr
        .lines()
        .find(|l| l.starts_with(&at))
        .unwrap_or_else(|| panic!("no line starting with {at:?}:\n{}", done.stderr));
    assert!(line.contains("libraries[0]"), "{line}");
    assert!(line.contains("does not exist"), "{line}");
}
