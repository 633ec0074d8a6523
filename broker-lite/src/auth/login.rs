//! The authentication step of a connection, right after its CONNECT is decoded:
//! decide whether the client may connect, and with which CONNACK code if not.

use log_limit::LogLimit;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use mqtt_proto::codec::{Connect, ConnectReturnCode};
use tracing::warn;

use crate::connection::ConnShared;
use crate::metrics;

use super::Auth;

/// Why a login is refused: the CONNACK code and the reason for the log.
type Refusal = (ConnectReturnCode, &'static str);

/// Check the CONNECT's credentials. `cert_user` says the user name comes from a
/// verified client certificate, which stands in for the password. The password
/// is taken out of `connect`: nothing keeps it past this step. A refusal is
/// counted and logged (client id, user name, peer; never the password).
pub(crate) async fn login(
    shared: &ConnShared,
    connect: &mut Connect,
    peer: SocketAddr,
    cert_user: bool,
) -> Result<(), ConnectReturnCode> {
    let password = connect.password.take();
    let auth = shared.auth();
    let user = connect.username.as_deref();
    match check(&auth, user, password, cert_user).await {
        Ok(()) => Ok(()),
        Err((code, why)) => {
            metrics::add(&shared.metrics.logins_refused, 1);
            // Someone guessing passwords would otherwise fill the log.
            static REFUSED: LogLimit = LogLimit::new(log_limit::MINUTE);
            if let Some(skipped) = REFUSED.check() {
                warn!(
                    client_id = connect.client_id,
                    user = user.unwrap_or(""),
                    %peer,
                    "login refused: {why}{}",
                    log_limit::suppressed(skipped)
                );
            }
            Err(code)
        }
    }
}

/// The decision itself.
async fn check(
    auth: &Arc<Auth>,
    user: Option<&str>,
    password: Option<Bytes>,
    cert_user: bool,
) -> Result<(), Refusal> {
    use ConnectReturnCode::{BadUserNameOrPassword, NotAuthorized, ServerUnavailable};
    if cert_user {
        return Ok(());
    }
    let Some(user) = user else {
        return if auth.allow_anonymous {
            Ok(())
        } else {
            Err((NotAuthorized, "no user name and allow_anonymous is false"))
        };
    };
    if auth.passwords.is_none() {
        return if auth.allow_anonymous {
            // Nothing to check the name against: it is taken as given.
            Ok(())
        } else {
            Err((NotAuthorized, "no password file to check user names"))
        };
    }
    let Some(password) = password else {
        return Err((BadUserNameOrPassword, "no password"));
    };
    let Ok(_slot) = auth.verify_slots.clone().acquire_owned().await else {
        return Err((ServerUnavailable, "broker stopping"));
    };
    let (auth, user) = (auth.clone(), user.to_string());
    let verified = tokio::task::spawn_blocking(move || auth.verify(&user, &password)).await;
    match verified {
        Ok(true) => Ok(()),
        Ok(false) => Err((BadUserNameOrPassword, "unknown user or wrong password")),
        Err(_) => Err((ServerUnavailable, "password check failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::{PasswordHash, MIN_ITERATIONS};
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

    async fn code(a: &Arc<Auth>, user: Option<&str>, password: Option<Bytes>) -> Option<u8> {
        check(a, user, password, false)
            .await
            .err()
            .map(|(c, _)| c as u8)
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
        assert!(check(&a, Some("device-7"), None, true).await.is_ok());
    }

    #[test]
    fn refusal_codes_are_the_mqtt_ones() {
        assert_eq!(BadUserNameOrPassword as u8, 4);
        assert_eq!(NotAuthorized as u8, 5);
    }
}
