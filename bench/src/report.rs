//! Result lines (one JSON object per scenario run), CPU accounting and percentiles.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};

/// A flat JSON object built field by field, in insertion order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Json {
    body: String,
}

impl Json {
    pub(crate) fn new() -> Json {
        Json::default()
    }

    fn key(&mut self, key: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        write_str(&mut self.body, key);
        self.body.push(':');
    }

    pub(crate) fn str(mut self, key: &str, value: &str) -> Json {
        self.key(key);
        write_str(&mut self.body, value);
        self
    }

    pub(crate) fn int(mut self, key: &str, value: u64) -> Json {
        self.key(key);
        let _ = write!(self.body, "{value}");
        self
    }

    /// A number; non-finite values become `null`.
    pub(crate) fn num(mut self, key: &str, value: f64) -> Json {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.body, "{value:.3}");
        } else {
            self.body.push_str("null");
        }
        self
    }

    pub(crate) fn bool(mut self, key: &str, value: bool) -> Json {
        self.key(key);
        self.body.push_str(if value { "true" } else { "false" });
        self
    }

    pub(crate) fn null(mut self, key: &str) -> Json {
        self.key(key);
        self.body.push_str("null");
        self
    }

    /// Append every field of `other`.
    pub(crate) fn extend(mut self, other: Json) -> Json {
        if !other.body.is_empty() {
            if !self.body.is_empty() {
                self.body.push(',');
            }
            self.body.push_str(&other.body);
        }
        self
    }

    pub(crate) fn line(&self) -> String {
        format!("{{{}}}", self.body)
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CPU time (user + system) this process has used.
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (utime + stime) process `pid` has used, from /proc/PID/stat.
pub(crate) fn process_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("parsing {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of {path}", i + 3))
    };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Resident set size of process `pid` in bytes, from VmRSS in /proc/PID/status.
pub(crate) fn process_rss(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("parsing {line:?}"))?;
    Ok(kb * 1024)
}

/// Raise this process's open-file limit to its hard limit; the new soft limit.
pub(crate) fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur as u64
    }
}

/// The value at quantile `q` (0..=1) of sorted samples, nearest-rank.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Some(500));
        assert_eq!(percentile(&v, 0.99), Some(990));
        assert_eq!(percentile(&v, 0.999), Some(999));
        assert_eq!(percentile(&v, 1.0), Some(1000));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn json_strings_are_escaped_and_fields_kept_in_order() {
        let j = Json::new()
            .str("a", "x\"y\n")
            .int("b", 7)
            .num("c", f64::NAN);
        assert_eq!(j.line(), r#"{"a":"x\"y\u000a","b":7,"c":null}"#);
    }

    #[test]
    fn cpu_time_and_memory_of_this_process_can_be_read() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(self_cpu() > Duration::ZERO);
        assert!(process_cpu(std::process::id()).is_ok());
        assert!(process_rss(std::process::id()).unwrap_or(0) > 0);
    }
}
