//! The authentication step of a connection, right after its CONNECT is decoded:
//! decide whether the client may connect, and with which CONNACK code if not.

use log_limit::LogLimit;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqtt_proto::codec::{Connect, ConnectReturnCode};
use tracing::warn;

use crate::connection::ConnShared;
use crate::metrics;

use super::throttle::{Admission, Blocked};
use super::Auth;

/// Why a login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// By its credentials: the CONNACK code and the reason for the log.
    Credentials(ConnectReturnCode, &'static str),
    /// Without a password check: its address or user name failed too often
    /// recently (CONNACK 5).
    Throttled(Blocked),
    /// No password-check slot within `max_login_wait_ms` (CONNACK 3).
    Busy,
}

impl Refusal {
    fn code(self) -> ConnectReturnCode {
        match self {
            Refusal::Credentials(code, _) => code,
            Refusal::Throttled(_) => ConnectReturnCode::NotAuthorized,
            Refusal::Busy => ConnectReturnCode::ServerUnavailable,
        }
    }
}

/// Check the CONNECT's credentials. `cert_user` says the user name comes from a
/// verified client certificate, which stands in for the password. The password
/// is taken out of `connect`: nothing keeps it past this step. A refusal is
/// counted and logged (client id, user name, peer; never the password), at most
/// a line a minute of each kind.
pub(crate) async fn login(
    shared: &ConnShared,
    connect: &mut Connect,
    peer: SocketAddr,
    cert_user: bool,
) -> Result<(), ConnectReturnCode> {
    let password = connect.password.take();
    let auth = shared.auth();
    let user = connect.username.as_deref();
    let Err(refusal) = check(&auth, user, password, cert_user, peer.ip()).await else {
        return Ok(());
    };
    // Someone guessing passwords would otherwise fill the log.
    static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
    static THROTTLED: LogLimit = LogLimit::new(log_limit::MINUTE);
    static BUSY: LogLimit = LogLimit::new(log_limit::MINUTE);
    let (counter, limit) = match refusal {
        Refusal::Credentials(..) => (&shared.metrics.logins_refused, &REFUSED),
        Refusal::Throttled(_) => (&shared.metrics.logins_throttled, &THROTTLED),
        Refusal::Busy => (&shared.metrics.logins_timed_out, &BUSY),
    };
    metrics::add(counter, 1);
    if let Some(skipped) = limit.check() {
        let why = match refusal {
            Refusal::Credentials(_, why) => why.to_string(),
            Refusal::Throttled(Blocked::Ip) => {
                "too many failed logins from this address lately; not checked".into()
            }
            Refusal::Throttled(Blocked::User) => {
                "too many failed logins for this user name lately, and from this address; not checked"
                    .into()
            }
            Refusal::Busy => format!(
                "no password check free within {:?} (server unavailable)",
                auth.max_login_wait
            ),
        };
        warn!(
            client_id = %log_limit::shorten(&connect.client_id),
            user = %log_limit::shorten(user.unwrap_or("")),
            %peer,
            "login refused: {why}{}",
            log_limit::suppressed(skipped)
        );
    }
    Err(refusal.code())
}

/// A login admitted to a password check, for the failure tables: ended
/// however the check goes, even when the connection is dropped mid-way.
struct Checking<'a> {
    auth: &'a Auth,
    ip: IpAddr,
}

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        self.auth.failures().end_check(self.ip, Instant::now());
    }
}

/// The decision itself. `ip` is the client's address.
async fn check(
    auth: &Arc<Auth>,
    user: Option<&str>,
    password: Option<Bytes>,
    cert_user: bool,
    ip: IpAddr,
) -> Result<(), Refusal> {
    use ConnectReturnCode::{BadUserNameOrPassword, NotAuthorized, ServerUnavailable};
    if cert_user {
        return Ok(());
    }
    let Some(user) = user else {
        return if auth.allow_anonymous {
            Ok(())
        } else {
            Err(Refusal::Credentials(
                NotAuthorized,
                "no user name and allow_anonymous is false",
            ))
        };
    };
    if auth.passwords.is_none() {
        return if auth.allow_anonymous {
            // Nothing to check the name against: it is taken as given.
            Ok(())
        } else {
            Err(Refusal::Credentials(
                NotAuthorized,
                "no password file to check user names",
            ))
        };
    }
    let lane = match auth.failures().admit(ip, user, Instant::now()) {
        Admission::Refuse(why) => return Err(Refusal::Throttled(why)),
        Admission::Check(lane) => lane,
    };
    let _checking = Checking { auth, ip };
    let wrong = |why| {
        auth.failures().failed(ip, user, Instant::now());
        Err(Refusal::Credentials(BadUserNameOrPassword, why))
    };
    let Some(password) = password else {
        return wrong("no password");
    };
    let waited = tokio::time::timeout(auth.max_login_wait, auth.verify_slots.acquire(lane));
    let Ok(slot) = waited.await else {
        return Err(Refusal::Busy);
    };
    // Other guesses from the same address may have failed while this one waited.
    if let Some(why) = auth.failures().blocked(ip, user, Instant::now()) {
        return Err(Refusal::Throttled(why));
    }
    let (verifier, name) = (auth.clone(), user.to_string());
    // The slot goes with the check: a dropped connection does not free it
    // while the hash still runs.
    let verified = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        verifier.verify(&name, &password)
    })
    .await;
    match verified {
        Ok(true) => {
            auth.failures().succeeded(user);
            Ok(())
        }
        Ok(false) => wrong("unknown user or wrong password"),
        Err(_) => Err(Refusal::Credentials(
            ServerUnavailable,
            "password check failed",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::{PasswordHash, MIN_ITERATIONS};
    use super::super::throttle::Lane;
    use super::super::verify_queue::VerifyQueue;
    use super::super::{AuthConfig, PasswordFile};
    use super::*;
    use std::path::Path;
    use ConnectReturnCode::*;

    fn auth(with_passwords: bool, allow_anonymous: Option<bool>) -> Arc<Auth> {
        let mut a = Auth::load(&AuthConfig {
            allow_anonymous,
            ..AuthConfig::default()
        })
        .unwrap();
        if with_passwords {
            let hash = PasswordHash::new(b"right", MIN_ITERATIONS).unwrap();
            let text = format!("alice:{hash}\n");
            a.passwords = Some(PasswordFile::parse(&text, Path::new("pw")).unwrap());
            a.allow_anonymous = allow_anonymous.unwrap_or(false);
        }
        Arc::new(a)
    }

    fn pw(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn code(a: &Arc<Auth>, user: Option<&str>, password: Option<Bytes>) -> Option<u8> {
        check(a, user, password, false, HOME)
            .await
            .err()
            .map(|r| r.code() as u8)
    }

    #[tokio::test]
    async fn with_a_password_file_only_the_right_password_gets_in() {
        let a = auth(true, None);
        assert_eq!(code(&a, Some("alice"), pw("right")).await, None);
        assert_eq!(code(&a, Some("alice"), pw("wrong")).await, Some(4));
        assert_eq!(code(&a, Some("alice"), None).await, Some(4));
        assert_eq!(code(&a, Some("bob"), pw("right")).await, Some(4));
        assert_eq!(code(&a, None, None).await, Some(5));
    }

    #[tokio::test]
    async fn anonymous_clients_may_be_allowed_next_to_a_password_file() {
        let a = auth(true, Some(true));
        assert_eq!(code(&a, None, None).await, None);
        // A user name is still checked.
        assert_eq!(code(&a, Some("alice"), pw("wrong")).await, Some(4));
    }

    #[tokio::test]
    async fn without_a_password_file_any_user_name_is_taken_as_given() {
        let a = auth(false, None);
        assert_eq!(code(&a, None, None).await, None);
        assert_eq!(code(&a, Some("anyone"), pw("anything")).await, None);
    }

    #[tokio::test]
    async fn a_certificate_user_needs_no_password() {
        let a = auth(true, None);
        assert!(check(&a, Some("device-7"), None, true, HOME).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_that_failed_too_often_is_refused_even_with_the_right_password() {
        let a = auth(true, None);
        for _ in 0..AuthConfig::default().max_failures_per_ip {
            assert_eq!(code(&a, Some("alice"), pw("wrong")).await, Some(4));
        }
        let r = check(&a, Some("alice"), pw("right"), false, HOME).await;
        assert_eq!(r, Err(Refusal::Throttled(Blocked::Ip)));
        assert_eq!(r.unwrap_err().code(), NotAuthorized);
        // Alice from another address is checked, and gets in.
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));
        assert_eq!(
            check(&a, Some("alice"), pw("right"), false, elsewhere).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_login_that_finds_no_free_check_in_time_gets_server_unavailable() {
        let mut a = auth(true, None);
        let queue = VerifyQueue::new(1);
        Arc::get_mut(&mut a).unwrap().verify_slots = queue.clone();
        Arc::get_mut(&mut a).unwrap().max_login_wait = std::time::Duration::from_millis(20);
        let held = queue.acquire(Lane::Clean).await;
        let r = check(&a, Some("alice"), pw("right"), false, HOME).await;
        assert_eq!(r, Err(Refusal::Busy));
        assert_eq!(r.unwrap_err().code(), ServerUnavailable);
        drop(held);
        // A timeout is not a failure of the address: the next login is checked.
        assert_eq!(code(&a, Some("alice"), pw("right")).await, None);
        assert_eq!(a.failures().tracked(), (0, 0));
    }

    #[tokio::test]
    async fn a_reload_keeps_the_failures_seen_and_applies_the_new_limits() {
        let a = auth(true, None);
        for _ in 0..3 {
            assert_eq!(code(&a, Some("alice"), pw("wrong")).await, Some(4));
        }
        let stricter = AuthConfig {
            max_failures_per_ip: 3,
            ..AuthConfig::default()
        };
        let mut reloaded = Auth::reload(&stricter, &a).unwrap();
        // The same users as before (`auth` does not write a file).
        reloaded.passwords = a.passwords.clone();
        reloaded.allow_anonymous = false;
        let reloaded = Arc::new(reloaded);
        let r = check(&reloaded, Some("alice"), pw("wrong"), false, HOME).await;
        assert_eq!(r, Err(Refusal::Throttled(Blocked::Ip)));
        assert!(Arc::ptr_eq(&reloaded.verify_slots, &a.verify_slots));
    }

    #[test]
    fn refusal_codes_are_the_mqtt_ones() {
        assert_eq!(BadUserNameOrPassword as u8, 4);
        assert_eq!(NotAuthorized as u8, 5);
    }
}
