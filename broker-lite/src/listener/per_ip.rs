//! Connections per client IP address, counted across every listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// How many connections each address has open, up to a maximum.
#[derive(Debug)]
pub(crate) struct PerIp {
    /// 0: no limit (nothing is counted).
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub(crate) fn new(max: usize) -> PerIp {
        PerIp {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Count one more connection from `ip`; false when it already has `max`
    /// open. Each `true` must be matched by one `leave(ip)`.
    pub(crate) fn enter(&self, ip: IpAddr) -> bool {
        if self.max == 0 {
            return true;
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(canonical(ip)).or_insert(0);
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    /// A connection from `ip` that `enter` let in has ended.
    pub(crate) fn leave(&self, ip: IpAddr) {
        if self.max == 0 {
            return;
        }
        let ip = canonical(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                // Addresses with nothing open take no memory.
                open.remove(&ip);
            }
        }
    }

    /// Connections open from `ip` (0 when the limit is off).
    #[cfg(test)]
    pub(crate) fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// An IPv4 client on a dual-stack socket (`::ffff:a.b.c.d`) counts as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
