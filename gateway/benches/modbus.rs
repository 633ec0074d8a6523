//! Modbus polling, timed: `mqgate run` (the release binary) with one Modbus source
//! polling pymodbus (`tests/peers/modbus/slave.py`) over TCP loopback and over a
//! pseudo-terminal at 115,200 baud, and, in the same run, `mbpoll` (libmodbus)
//! doing the same reads.
//!
//! 1. **Rate and CPU per transaction.** One device polled every 10 ms, 200
//!    one-register reads a poll (`one_per_field: true`): more than fit in 10 ms, so
//!    the poller runs one transaction after the other as fast as the bus goes; each
//!    poll goes out as one JSON message, without a script, to the embedded broker. Transactions: mqgate's status API (`transactions`)
//!    before and after a window, checked against the device's request log; CPU: the
//!    gateway's utime+stime from `/proc/PID/stat` over the same window. mbpoll reads
//!    ten of those registers in one request every 10 ms (its shortest period);
//!    its transactions are counted from the device's log. pymodbus's CPU over
//!    each window is shown too: it is one Python thread, and it bounds the rate.
//! 2. **Schedule jitter.** 100 units polled every second (one read each); for each
//!    unit, how far each request arrived (the device's log time) from that unit's
//!    grid: times on a fixed 1 s period from the unit's median phase, and the
//!    residuals of a straight line through them (the unit's own period). mbpoll
//!    with `-a 1:100 -l 10` polls the units in turn with a 10 ms sleep after each:
//!    about one request per unit a second too, but on no grid, so only the second
//!    figure compares.
//!
//! `cargo bench -p mqgate --bench modbus` (`MQGATE_BENCH_SECONDS=N` sets the rate
//! windows, default 10; `MQGATE_BENCH_JITTER_SECONDS=N` the jitter windows, default
//! 20). Loopback and pseudo-terminals only; every run is bounded, and every process
//! started here is killed when its run ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use test_support::cpu::cpu_of;
use test_support::http;
use test_support::process::{Proc, Stream};
use test_support::scratch::Scratch;

const MQGATE: &str = env!("CARGO_BIN_EXE_mqgate");
const SLAVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/peers/modbus/slave.py"
);
const READY: Duration = Duration::from_secs(30);
/// Time to get going before a window opens.
const WARM_UP: Duration = Duration::from_secs(2);
/// Fields of the rate runs' device, one register and one read each (holding 0..199).
const FIELDS: u16 = 200;
/// Registers mbpoll reads in each request (holding 0..9).
const MBPOLL_REGISTERS: u16 = 10;
const UNITS: u8 = 100;

/// A running pymodbus device and its request log.
struct Slave {
    proc: Proc,
    /// What its ready line gave: a TCP port, or the terminal to open.
    at: String,
    log: PathBuf,
}

impl Slave {
    fn start(dir: &Scratch, transport: Transport, units: u8) -> Slave {
        let log = dir.join("requests.log");
        let list: Vec<String> = (1..=units).map(|u| u.to_string()).collect();
        let mut cmd = Command::new("python3");
        cmd.arg(SLAVE);
        match transport {
            Transport::Tcp => cmd.args(["--tcp", "127.0.0.1:0"]),
            Transport::Rtu => cmd.args(["--rtu", "pty", "--baud", "115200"]),
        };
        cmd.arg("--units")
            .arg(list.join(","))
            .arg("--log")
            .arg(&log);
        let mut proc = Proc::spawn("modbus slave", cmd);
        let line = proc.expect_line("ready", READY, |l| l.starts_with("ready "));
        let at = line["ready ".len()..].trim().to_string();
        Slave { proc, at, log }
    }

    /// The request times in the log between `from` and `to` (Unix seconds), by unit.
    fn requests(&self, from: f64, to: f64) -> BTreeMap<u8, Vec<f64>> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut by_unit: BTreeMap<u8, Vec<f64>> = BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let t: Option<f64> = parts.next().and_then(|t| t.parse().ok());
            let unit: Option<u8> = parts
                .next()
                .and_then(|u| u.strip_prefix("unit="))
                .and_then(|u| u.parse().ok());
            if let (Some(t), Some(unit)) = (t, unit) {
                if t >= from && t < to {
                    by_unit.entry(unit).or_default().push(t);
                }
            }
        }
        by_unit
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Rtu,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Rtu => "RTU pty 115200",
        }
    }

    /// The source's bus keys (after `- id: bus`).
    fn bus_yaml(self, slave: &Slave) -> String {
        match self {
            Transport::Tcp => format!("    type: modbus_tcp\n    host: 127.0.0.1:{}\n", slave.at),
            Transport::Rtu => format!(
                "    type: modbus_rtu\n    path: {}\n    baud: 115200\n",
                slave.at
            ),
        }
    }

    /// mbpoll's options to reach the device.
    fn mbpoll_args(self, slave: &Slave) -> Vec<String> {
        let args: &[&str] = match self {
            Transport::Tcp => &["-m", "tcp", "-p", &slave.at],
            Transport::Rtu => &["-m", "rtu", "-b", "115200", "-P", "none"],
        };
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push("-o".into());
        args.push("1".into());
        args
    }

    fn mbpoll_target(self, slave: &Slave) -> String {
        match self {
            Transport::Tcp => "127.0.0.1".into(),
            Transport::Rtu => slave.at.clone(),
        }
    }
}

/// `mqgate run` with the source `bus`, publishing each poll as it is on `modbus/{device}`.
struct Gateway {
    proc: Proc,
    status: SocketAddr,
    _dir: Scratch,
}

impl Gateway {
    fn start(bus: &str, devices: &str) -> Gateway {
        let dir = Scratch::new("bench-modbus-gw");
        std::fs::create_dir_all(dir.join("mappings")).expect("mappings/");
        dir.write(
            "mappings/bus.yaml",
            "source: bus\ntopic: \"modbus/{device}\"\n",
        );
        let config = dir.write(
            "mqgate.yaml",
            format!(
                "gateway:\n  id: bench\n  state_dir: state\nbroker:\n  listen: 127.0.0.1:0\n  sys_interval_secs: 0\n\
                 status:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\nmappings: mappings\n\
                 sources:\n  - id: bus\n{bus}    devices:\n{devices}"
            ),
        );
        let mut cmd = Command::new(MQGATE);
        cmd.args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn");
        let proc = Proc::spawn("mqgate", cmd);
        let line = proc.wait_for_line(Stream::Stdout, &["status page on http://"], READY);
        let status: SocketAddr = line
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().trim_end_matches('/').parse().ok())
            .expect("the status address");
        let gw = Gateway {
            proc,
            status,
            _dir: dir,
        };
        let deadline = Instant::now() + READY;
        while gw.bus()["transactions"].as_u64().unwrap_or(0) == 0 {
            assert!(
                Instant::now() < deadline,
                "no transaction yet:\n{}",
                gw.proc.transcript()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        gw
    }

    /// The status API's `modbus` object of the source.
    fn bus(&self) -> Value {
        let r = http::get(self.status, "/api/status", Duration::from_secs(5));
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        v["sources"][0]["modbus"].clone()
    }

    /// A counter summed over the devices.
    fn sum(bus: &Value, key: &str) -> u64 {
        bus["devices"]
            .as_array()
            .map(|d| d.iter().map(|d| d[key].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// CPU seconds of the poller and of the device, and requests the device logged, over
/// one window of `secs`.
struct Window {
    seconds: f64,
    poller_cpu: f64,
    slave_cpu: f64,
    /// Requests in the device's log, all units.
    logged: usize,
    requests: BTreeMap<u8, Vec<f64>>,
}

fn window(poller: u32, slave: &Slave, secs: f64, between: impl FnOnce()) -> Window {
    let (p0, s0, w0, t0) = (
        cpu_of(poller),
        cpu_of(slave.proc.pid()),
        unix_now(),
        Instant::now(),
    );
    between();
    std::thread::sleep(Duration::from_secs_f64(secs).saturating_sub(t0.elapsed()));
    let (p1, s1, w1, seconds) = (
        cpu_of(poller),
        cpu_of(slave.proc.pid()),
        unix_now(),
        t0.elapsed().as_secs_f64(),
    );
    // The log is line-buffered: the window's last lines are on disk by now.
    std::thread::sleep(Duration::from_millis(50));
    let requests = slave.requests(w0, w1);
    Window {
        seconds,
        poller_cpu: p1 - p0,
        slave_cpu: s1 - s0,
        logged: requests.values().map(Vec::len).sum(),
        requests,
    }
}

fn print_rate(who: &str, transport: Transport, transactions: u64, w: &Window, extra: &str) {
    let n = transactions.max(1) as f64;
    println!(
        "{who:<8} {:<15} {:>8.0} txn/s  CPU {:>7.1} µs/txn ({:>5.1} %)  pymodbus {:>6.0} µs/txn ({:>5.1} %)  {extra}",
        transport.name(),
        transactions as f64 / w.seconds,
        w.poller_cpu / n * 1e6,
        w.poller_cpu / w.seconds * 100.0,
        w.slave_cpu / n * 1e6,
        w.slave_cpu / w.seconds * 100.0,
    );
}

/// mqgate polling one device as fast as the bus goes.
fn mqgate_rate(transport: Transport, secs: f64) {
    let dir = Scratch::new("bench-modbus-rate");
    let slave = Slave::start(&dir, transport, 1);
    let fields: String = (0..FIELDS)
        .map(|r| {
            format!("          - {{ name: r{r}, register: holding, address: {r}, type: u16 }}\n")
        })
        .collect();
    let devices =
        format!("      - name: meter\n        unit: 1\n        every: 10ms\n        one_per_field: true\n        fields:\n{fields}");
    let gw = Gateway::start(&transport.bus_yaml(&slave), &devices);
    std::thread::sleep(WARM_UP);
    let mut before = Value::Null;
    let w = window(gw.proc.pid(), &slave, secs, || before = gw.bus());
    let after = gw.bus();
    let transactions =
        after["transactions"].as_u64().unwrap_or(0) - before["transactions"].as_u64().unwrap_or(0);
    let failed = Gateway::sum(&after, "polls_failed") + Gateway::sum(&after, "retries");
    print_rate(
        "mqgate",
        transport,
        transactions,
        &w,
        &format!(
            "(device logged {}; polls {}; failed+retries {failed}; utilisation {})",
            w.logged,
            Gateway::sum(&after, "polls_ok") - Gateway::sum(&before, "polls_ok"),
            after["utilisation"]
        ),
    );
    drop(gw);
    drop(slave);
}

/// mbpoll reading the same registers in one request every 10 ms.
fn mbpoll_rate(transport: Transport, secs: f64) {
    let dir = Scratch::new("bench-modbus-mbpoll");
    let slave = Slave::start(&dir, transport, 1);
    let mut cmd = Command::new("mbpoll");
    cmd.args(transport.mbpoll_args(&slave))
        .args(["-a", "1", "-t", "4", "-0", "-r", "0", "-c"])
        .arg(MBPOLL_REGISTERS.to_string())
        .args(["-l", "10"])
        .arg(transport.mbpoll_target(&slave));
    let mbpoll = Proc::spawn("mbpoll", cmd);
    wait_logged(&slave, &mbpoll);
    std::thread::sleep(WARM_UP);
    let w = window(mbpoll.pid(), &slave, secs, || {});
    print_rate(
        "mbpoll",
        transport,
        w.logged as u64,
        &w,
        "(counted in the device's log)",
    );
    drop(mbpoll);
    drop(slave);
}

/// Until the device has logged a request from `master`.
fn wait_logged(slave: &Slave, master: &Proc) {
    let deadline = Instant::now() + READY;
    while slave.requests(0.0, f64::MAX).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no request reached the device:\n{}",
            master.transcript()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// Deviations (s) of each unit's requests from its grid: on the fixed `period` from
/// the unit's median phase (`None` without one), and from a straight line through
/// them (the unit's own period). Also the units' median step.
struct Jitter {
    fixed: Vec<f64>,
    line: Vec<f64>,
    step: f64,
    units: usize,
    requests: usize,
}

fn jitter(requests: &BTreeMap<u8, Vec<f64>>, period: Option<f64>) -> Jitter {
    let mut j = Jitter {
        fixed: Vec::new(),
        line: Vec::new(),
        step: f64::NAN,
        units: 0,
        requests: 0,
    };
    let mut steps = Vec::new();
    for times in requests.values().filter(|t| t.len() >= 3) {
        j.units += 1;
        j.requests += times.len();
        let step = median(times.windows(2).map(|w| w[1] - w[0]).collect());
        steps.push(step);
        // Which grid slot each request is in, counted from the first.
        let n: Vec<f64> = times
            .iter()
            .map(|t| ((t - times[0]) / step).round())
            .collect();
        if let Some(p) = period {
            let origin = median(times.iter().zip(&n).map(|(t, n)| t - n * p).collect());
            j.fixed.extend(
                times
                    .iter()
                    .zip(&n)
                    .map(|(t, n)| (t - origin - n * p).abs()),
            );
        }
        // Least squares t = a + b n.
        let k = n.len() as f64;
        let (mn, mt) = (n.iter().sum::<f64>() / k, times.iter().sum::<f64>() / k);
        let sxy: f64 = n.iter().zip(times).map(|(n, t)| (n - mn) * (t - mt)).sum();
        let sxx: f64 = n.iter().map(|n| (n - mn) * (n - mn)).sum();
        let b = if sxx > 0.0 { sxy / sxx } else { step };
        j.line.extend(
            n.iter()
                .zip(times)
                .map(|(n, t)| (t - mt - b * (n - mn)).abs()),
        );
    }
    j.fixed.sort_by(f64::total_cmp);
    j.line.sort_by(f64::total_cmp);
    j.step = median(steps);
    j
}

fn print_jitter(who: &str, transport: Transport, j: &Jitter, extra: &str) {
    let ms = |v: &[f64], p: f64| quantile(v, p) * 1000.0;
    let fixed = if j.fixed.is_empty() {
        format!("{:>29}", "on no grid")
    } else {
        format!(
            "{:>6.2} {:>6.2} {:>7.2} ms",
            ms(&j.fixed, 0.5),
            ms(&j.fixed, 0.99),
            ms(&j.fixed, 1.0)
        )
    };
    println!(
        "{who:<8} {:<15} {:>3} units {:>5} requests  step {:>7.2} ms  |dev| vs 1 s grid p50/p99/max {fixed}  vs own line {:>6.2} {:>6.2} {:>7.2} ms  {extra}",
        transport.name(),
        j.units,
        j.requests,
        j.step * 1000.0,
        ms(&j.line, 0.5),
        ms(&j.line, 0.99),
        ms(&j.line, 1.0),
    );
}

/// mqgate polling 100 units every second, one read each.
fn mqgate_jitter(transport: Transport, secs: f64) {
    let dir = Scratch::new("bench-modbus-jitter");
    let slave = Slave::start(&dir, transport, UNITS);
    let devices: String = (1..=UNITS)
        .map(|u| {
            format!(
                "      - name: d{u}\n        unit: {u}\n        every: 1s\n        fields:\n          - {{ name: v, register: holding, address: 0, type: u16 }}\n"
            )
        })
        .collect();
    let gw = Gateway::start(&transport.bus_yaml(&slave), &devices);
    std::thread::sleep(WARM_UP);
    let mut before = Value::Null;
    let w = window(gw.proc.pid(), &slave, secs, || before = gw.bus());
    let after = gw.bus();
    let count = |k: &str| Gateway::sum(&after, k) - Gateway::sum(&before, k);
    print_jitter(
        "mqgate",
        transport,
        &jitter(&w.requests, Some(1.0)),
        &format!(
            "(late {} skipped {} failed {}; CPU {:.2} %, pymodbus {:.1} %)",
            count("late"),
            count("skipped"),
            count("polls_failed"),
            w.poller_cpu / w.seconds * 100.0,
            w.slave_cpu / w.seconds * 100.0
        ),
    );
    drop(gw);
    drop(slave);
}

/// mbpoll with `-a 1:100 -l 10`: each unit in turn, a 10 ms sleep after each.
fn mbpoll_jitter(transport: Transport, secs: f64) {
    let dir = Scratch::new("bench-modbus-mbpoll-jitter");
    let slave = Slave::start(&dir, transport, UNITS);
    let mut cmd = Command::new("mbpoll");
    cmd.args(transport.mbpoll_args(&slave))
        .arg("-a")
        .arg(format!("1:{UNITS}"))
        .args(["-t", "4", "-0", "-r", "0", "-c", "1", "-l", "10"])
        .arg(transport.mbpoll_target(&slave));
    let mbpoll = Proc::spawn("mbpoll", cmd);
    wait_logged(&slave, &mbpoll);
    std::thread::sleep(WARM_UP);
    let w = window(mbpoll.pid(), &slave, secs, || {});
    print_jitter(
        "mbpoll",
        transport,
        &jitter(&w.requests, None),
        &format!(
            "(CPU {:.2} %, pymodbus {:.1} %)",
            w.poller_cpu / w.seconds * 100.0,
            w.slave_cpu / w.seconds * 100.0
        ),
    );
    drop(mbpoll);
    drop(slave);
}

fn seconds(var: &str, default: f64) -> f64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    assert!(Path::new(SLAVE).exists(), "{SLAVE} is missing");
    let rate = seconds("MQGATE_BENCH_SECONDS", 10.0);
    let jitter_secs = seconds("MQGATE_BENCH_JITTER_SECONDS", 20.0);
    println!("load average before: {}", loadavg());
    println!(
        "rate: one device; mqgate {FIELDS} one-register reads a poll every 10 ms, mbpoll one read of {MBPOLL_REGISTERS} every 10 ms; {rate} s windows after {WARM_UP:?}"
    );
    for transport in [Transport::Tcp, Transport::Rtu] {
        mqgate_rate(transport, rate);
        mbpoll_rate(transport, rate);
    }
    println!(
        "jitter: {UNITS} units, one read each a second, {jitter_secs} s windows after {WARM_UP:?}"
    );
    mqgate_jitter(Transport::Tcp, jitter_secs);
    mqgate_jitter(Transport::Rtu, jitter_secs);
    mbpoll_jitter(Transport::Tcp, jitter_secs);
    println!("load average after: {}", loadavg());
}
