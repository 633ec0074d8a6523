//! Who may read the status page when it is bound beyond loopback: a bearer token
//! (`Authorization: Bearer <token>`, or `?token=<token>` in the address, which is
//! how a browser's EventSource can carry it) and/or HTTP basic authentication.
//! Without either, every request is let through.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::config::StatusAuth;

/// Let the request through when it carries valid credentials (or none are set).
pub(super) async fn require(
    State(auth): State<Arc<StatusAuth>>,
    req: Request,
    next: Next,
) -> Response {
    if auth.is_open() || allowed(&auth, &req) {
        return next.run(req).await;
    }
    tracing::debug!(
        "status: refused {} without valid credentials",
        req.uri().path()
    );
    let challenge = if auth.basic.is_some() {
        r#"Basic realm="mqgate", charset="UTF-8""#
    } else {
        r#"Bearer realm="mqgate""#
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Body::from("credentials needed: see status.token / status.username in the configuration\n"),
    )
        .into_response()
}

fn allowed(auth: &StatusAuth, req: &Request) -> bool {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(token) = &auth.token {
        let from_header = header
            .strip_prefix("Bearer ")
            .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()));
        let from_query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
            .is_some_and(|t| same(&percent_decode(t), token.as_bytes()));
        if from_header || from_query {
            return true;
        }
    }
    if let Some((user, password)) = &auth.basic {
        let Some(encoded) = header.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let mut expected = Vec::with_capacity(user.len() + 1 + password.len());
        expected.extend_from_slice(user.as_bytes());
        expected.push(b':');
        expected.extend_from_slice(password.as_bytes());
        return same(&decoded, &expected);
    }
    false
}

/// Equal, in a time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX` escapes of a query value (a token may hold characters a URL escapes).
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: Option<&str>, uri: &str) -> Request {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).unwrap()
    }

    fn both() -> StatusAuth {
        StatusAuth {
            token: Some("s3cr/t".into()),
            basic: Some(("admin".into(), "pa:ss".into())),
        }
    }

    #[test]
    fn a_token_is_taken_from_the_header_or_the_query() {
        let a = both();
        assert!(allowed(&a, &request(Some("Bearer s3cr/t"), "/api/status")));
        assert!(allowed(&a, &request(None, "/events?token=s3cr%2Ft")));
        assert!(allowed(&a, &request(None, "/events?x=1&token=s3cr/t")));
        assert!(!allowed(&a, &request(Some("Bearer s3cr/T"), "/")));
        assert!(!allowed(&a, &request(None, "/?token=s3cr")));
        assert!(!allowed(&a, &request(None, "/")));
    }

    #[test]
    fn basic_authentication_checks_user_and_password() {
        let a = both();
        let good = base64::engine::general_purpose::STANDARD.encode("admin:pa:ss");
        let bad = base64::engine::general_purpose::STANDARD.encode("admin:pa:sS");
        assert!(allowed(&a, &request(Some(&format!("Basic {good}")), "/")));
        assert!(!allowed(&a, &request(Some(&format!("Basic {bad}")), "/")));
        assert!(!allowed(&a, &request(Some("Basic !!!"), "/")));
    }

    #[test]
    fn comparison_and_decoding() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert_eq!(percent_decode("a%2Fb%zz%4"), b"a/b%zz%4");
    }
}
