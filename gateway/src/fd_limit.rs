//! The process's file descriptor limit, raised to what the configured connection
//! limits need: each broker or status connection is one descriptor, and a shell
//! or a unit without `LimitNOFILE=` gives 1024, which the embedded broker alone
//! may use up. The soft limit is raised as far as the hard one allows; what is
//! still short is said once at start.

use crate::config::GatewayConfig;

/// Descriptors besides the connections: listeners, the store's files, serial
/// ports, the upstream connection, the journal, the status server's 503s.
const OTHERS: u64 = 80;

/// What `config`'s connection limits need.
pub fn needed(config: &GatewayConfig) -> u64 {
    let broker = config
        .broker
        .as_ref()
        .map_or(0, |b| b.limits.max_connections);
    (broker + config.status.max_connections) as u64 + OTHERS
}

/// Raise the soft limit to `needed` (at most to the hard limit). Returns the
/// limit in force and whether it is short of `needed`.
pub fn raise_to(needed: u64) -> std::io::Result<(u64, bool)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: needed.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads `raised`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((limit.rlim_cur, limit.rlim_cur < needed))
}
