//! Helpers for the flood tests: the `broker-lite` binary started with a config
//! file and a raised open-file limit, its resident memory read from `/proc`, and
//! the open-file limit of the test process itself.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::real::TIMEOUT;
use test_support::process::Proc;
use test_support::wait_for_port;

const BIN: &str = env!("CARGO_BIN_EXE_broker-lite");

/// The binary, running on a loopback port, with its config in a temporary folder.
pub(crate) struct BinaryBroker {
    pub proc: Proc,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl BinaryBroker {
    /// Start the binary with `config` (YAML, without `listen`) and at most
    /// `nofile` open files (through `prlimit` when it is there).
    pub(crate) fn start(name: &str, config: &str, nofile: Option<u64>) -> BinaryBroker {
        let dir = std::env::temp_dir().join(format!("broker-lite-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("broker.yaml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn(name, &mut cmd);
        let line = proc.expect_line("listening on ADDR", TIMEOUT, |l| {
            l.starts_with("listening on ")
        });
        let addr: SocketAddr = line
            .trim_start_matches("listening on ")
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("no address in {line:?}: {e}"));
        assert!(
            wait_for_port(addr.port(), TIMEOUT),
            "nothing listens on {addr}"
        );
        BinaryBroker { proc, addr, dir }
    }

    /// Resident memory of the broker process, in KiB (`VmRSS`).
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.proc.pid())
    }
}

impl Drop for BinaryBroker {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `VmRSS` of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Soft and hard open-file limits of this process, from `/proc/self/limits`.
pub(crate) fn nofile_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a 'Max open files' line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| match w {
            "unlimited" => Some(u64::MAX),
            _ => w.parse().ok(),
        })
        .collect();
    match nums[..] {
        [soft, hard, ..] => (soft, hard),
        _ => panic!("cannot read the limits in {line:?}"),
    }
}

/// Raise this process's soft open-file limit to `want` (at most the hard limit)
/// with `prlimit --pid`; returns the soft limit in force afterwards.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = nofile_limits();
    if soft >= want {
        return soft;
    }
    let target = want.min(hard);
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:{hard}"))
        .status();
    if let Err(e) = status {
        eprintln!("prlimit could not raise the open-file limit: {e}");
    }
    nofile_limits().0
}
