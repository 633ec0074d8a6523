//! Modbus peers for the tests: pymodbus devices (`tests/peers/modbus/slave.py`),
//! the relay that spoils replies (`crc_relay.py`), the register layout both read
//! (`layout.json`), and `mbpoll` (libmodbus) as an independent reader.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use test_support::process::{run_to_end, Proc};

use crate::mqgate::workspace_file;

const READY: Duration = Duration::from_secs(30);

/// One field of the layout: where it is, how it is written, what it reads as.
#[derive(Debug, Clone)]
pub struct LayoutField {
    pub name: String,
    pub register: String,
    pub address: u16,
    pub ty: String,
    pub order: String,
    pub scale: f64,
    pub offset: f64,
    pub expected: Value,
}

/// Every field of `tests/peers/modbus/layout.json` (and its `bits` fields).
pub fn layout() -> Vec<LayoutField> {
    let path = workspace_file("tests/peers/modbus/layout.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("layout.json is JSON");
    let read = |v: &Value| LayoutField {
        name: v["name"].as_str().expect("name").to_string(),
        register: v["register"].as_str().expect("register").to_string(),
        address: v["address"].as_u64().expect("address") as u16,
        ty: v["type"].as_str().expect("type").to_string(),
        order: v["order"].as_str().unwrap_or("ABCD").to_string(),
        scale: v["scale"].as_f64().unwrap_or(1.0),
        offset: v["offset"].as_f64().unwrap_or(0.0),
        expected: v["expected"].clone(),
    };
    let mut fields: Vec<LayoutField> = doc["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(read)
        .collect();
    // A `bits` field shares its register with the whole-register field `of`.
    if let Some(bits) = doc["bits"].as_array() {
        fields.extend(bits.iter().map(read));
    }
    fields
}

impl LayoutField {
    /// The field as an item of a device's `fields:` list (YAML flow mapping).
    pub fn yaml(&self) -> String {
        format!(
            "{{ name: {}, register: {}, address: {}, type: \"{}\", byte_order: {}, scale: {}, offset: {} }}",
            self.name, self.register, self.address, self.ty, self.order, self.scale, self.offset
        )
    }

    /// Whether `got` is what the layout says, numbers within a part in 10^12
    /// (scaled values are computed in floating point on both sides).
    pub fn matches(&self, got: &Value) -> bool {
        match (&self.expected, got) {
            (Value::Number(want), Value::Number(got)) => {
                if let (Some(a), Some(b)) = (want.as_i64(), got.as_i64()) {
                    return a == b;
                }
                if let (Some(a), Some(b)) = (want.as_u64(), got.as_u64()) {
                    return a == b;
                }
                let (a, b) = (
                    want.as_f64().unwrap_or(f64::NAN),
                    got.as_f64().unwrap_or(0.0),
                );
                (a - b).abs() <= a.abs().max(1.0) * 1e-12
            }
            (want, got) => want == got,
        }
    }
}

/// A running pymodbus device.
#[derive(Debug)]
pub struct Slave {
    proc: Proc,
    /// What its ready line gave: a TCP port, or the serial device to open.
    pub at: String,
}

impl Slave {
    /// `slave.py` with `args`, once it printed `ready ...`.
    pub fn start(args: &[&str]) -> Slave {
        let mut cmd = Command::new("python3");
        cmd.arg(workspace_file("tests/peers/modbus/slave.py"))
            .args(args);
        let mut proc = Proc::spawn("modbus slave", cmd);
        let line = proc.expect_line("ready", READY, |l| l.starts_with("ready "));
        let at = line["ready ".len()..].trim().to_string();
        Slave { proc, at }
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.at
            .parse()
            .unwrap_or_else(|_| panic!("{:?} is not a port", self.at))
    }

    /// Its serial device.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.at)
    }

    pub fn transcript(&self) -> String {
        self.proc.transcript()
    }
}

/// A relay between mqgate and a device on a serial line that spoils replies.
#[derive(Debug)]
pub struct CrcRelay {
    proc: Proc,
    /// The device path mqgate opens.
    pub path: PathBuf,
}

impl CrcRelay {
    /// `crc_relay.py` with `args`, once it printed `ready ...`.
    pub fn start(args: &[&str]) -> CrcRelay {
        let mut cmd = Command::new("python3");
        cmd.arg(workspace_file("tests/peers/modbus/crc_relay.py"))
            .args(args);
        let mut proc = Proc::spawn("crc relay", cmd);
        let line = proc.expect_line("ready", READY, |l| l.starts_with("ready"));
        let path = line
            .split_whitespace()
            .nth(1)
            .map(PathBuf::from)
            .unwrap_or_default();
        CrcRelay { proc, path }
    }

    pub fn transcript(&self) -> String {
        self.proc.transcript()
    }
}

/// `mbpoll` reading `count` values of `kind` (`mbpoll -t`: 0 coils, 1 discrete
/// inputs, 3 input registers, 4 holding registers, `4:float`, `4:int`...) at the
/// 0-based `address` of `unit` on a TCP device, once; its output.
pub fn mbpoll_tcp(
    port: u16,
    unit: u8,
    kind: &str,
    address: u16,
    count: u16,
    extra: &[&str],
) -> String {
    let mut cmd = Command::new("mbpoll");
    cmd.args(["-m", "tcp", "-p"])
        .arg(port.to_string())
        .args(["-a"])
        .arg(unit.to_string())
        .args(["-t", kind, "-0", "-r"])
        .arg(address.to_string())
        .args(["-c"])
        .arg(count.to_string())
        .args(["-1", "-o", "2"])
        .args(extra)
        .arg("127.0.0.1");
    let done = run_to_end("mbpoll", cmd, Duration::from_secs(20));
    assert_eq!(
        done.code(),
        0,
        "mbpoll failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    done.stdout
}

/// The values of mbpoll's `[address]: \tvalue` lines, in order.
pub fn mbpoll_values(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('[')?;
            let (_, value) = rest.split_once("]:")?;
            Some(value.trim().to_string())
        })
        .collect()
}
