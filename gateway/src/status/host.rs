//! Which `Host:` the status page answers, against DNS rebinding: a web page on
//! `evil.example` whose name is made to point at 127.0.0.1 reaches the page with
//! `Host: evil.example`, which is refused here. Answered are the address the
//! server listens on (any IP address when it listens on all of them: an address
//! cannot be rebound), `localhost`, and the names in `status.allowed_hosts`; the
//! port is not compared (a tunnel may change it). A request without `Host`
//! (HTTP/1.0 tools; browsers always send it) is answered.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The hosts the page answers for.
#[derive(Debug, Clone)]
pub(super) struct Hosts {
    /// The address the server is bound to.
    pub(super) bound: IpAddr,
    /// Lower-case names besides `localhost`.
    pub(super) names: Vec<String>,
}

/// Let the request through when its `Host` is one of `hosts`; 421 otherwise.
pub(super) async fn require(State(hosts): State<Arc<Hosts>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).map(|v| v.as_bytes());
    match host {
        None => next.run(req).await,
        Some(h) if std::str::from_utf8(h).is_ok_and(|h| hosts.allows(h)) => next.run(req).await,
        Some(h) => {
            let shown: String = String::from_utf8_lossy(h).chars().take(64).collect();
            tracing::debug!("status: refused a request for host {shown:?}");
            (
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this status page does not answer for host {shown:?}: \
                     add the name to status.allowed_hosts\n"
                ),
            )
                .into_response()
        }
    }
}

impl Hosts {
    fn allows(&self, host: &str) -> bool {
        let Some(name) = without_port(host) else {
            return false;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip == self.bound || self.bound.is_unspecified();
        }
        if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| IpAddr::V6(ip) == self.bound || self.bound.is_unspecified());
        }
        name.eq_ignore_ascii_case("localhost")
            || self.names.iter().any(|n| name.eq_ignore_ascii_case(n))
    }
}

/// `host` without `:port`; `None` when the port is not digits.
fn without_port(host: &str) -> Option<&str> {
    let (name, port) = match host.rfind(':') {
        // An IPv6 address without brackets has colons but no port.
        Some(i) if !host.starts_with('[') && host[..i].contains(':') => (host, ""),
        Some(i) if host.starts_with('[') && !host[..i].ends_with(']') => (host, ""),
        Some(i) => (&host[..i], &host[i + 1..]),
        None => (host, ""),
    };
    let port_ok = port.is_empty() || port.bytes().all(|b| b.is_ascii_digit());
    (port_ok && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bound: &str, names: &[&str]) -> Hosts {
        Hosts {
            bound: bound.parse().unwrap(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn loopback_answers_its_address_and_localhost_with_or_without_port() {
        let h = hosts("127.0.0.1", &[]);
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost", "LocalHost:9000"] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2:8080",
            "localhost.evil.example",
            "localhost:80x",
            "[::1]:8080",
            "",
            ":8080",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
    }

    #[test]
    fn configured_names_and_ipv6_and_wildcard_binds() {
        let h = hosts("::1", &["gateway.lan"]);
        assert!(h.allows("[::1]:8080"));
        assert!(h.allows("[::1]"));
        assert!(h.allows("Gateway.LAN:8080"));
        assert!(!h.allows("127.0.0.1:8080"));
        assert!(!h.allows("gateway.lan.evil.example"));

        let any = hosts("0.0.0.0", &[]);
        assert!(any.allows("192.168.1.20:8080"));
        assert!(any.allows("[fe80::1]:8080"));
        assert!(!any.allows("raspberrypi.local:8080"));
    }
}
