//! TLS: PEM problems are named before any traffic; the handshake checks the
//! server against the CA given (certificates made with the openssl command).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mqtt_proto::codec::QoS;
use test_support::mosquitto::Mosquitto;
use test_support::pki::{Ca, CertKey};
use test_support::{free_port, wait_for_port, Scratch};

use super::support::*;
use crate::output::client::{Ack, ClientError, Connection};
use crate::output::upstream::TlsFiles;

async fn tls_error(tls: TlsFiles) -> String {
    // Nothing listens on port 9 of loopback: a PEM problem must show before the connect.
    let mut opts = options("127.0.0.1:9".parse().expect("addr"), "tls");
    opts.tls = Some(tls);
    match wait_for("connect", Connection::connect(&opts)).await {
        Err(ClientError::Tls(text)) => text,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ca_file_without_a_certificate_is_a_tls_error_that_says_so() {
    let text = tls_error(TlsFiles {
        ca_pem: b"this is not a certificate\n".to_vec(),
        client: None,
    })
    .await;
    assert!(text.contains("CA certificate"), "{text}");
    assert!(text.contains("no PEM certificate"), "{text}");
}

#[tokio::test]
async fn a_ca_file_with_broken_base64_is_a_tls_error_naming_the_ca() {
    let text = tls_error(TlsFiles {
        ca_pem: b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
        client: None,
    })
    .await;
    assert!(text.contains("CA certificate is not valid PEM"), "{text}");
}

#[tokio::test]
async fn a_client_key_file_without_a_key_is_a_tls_error_that_says_so() {
    let dir = Scratch::new("tls-key");
    let certs = make_certificates(dir.path());
    let read = |path: &Path| std::fs::read(path).expect("read pem");
    let text = tls_error(TlsFiles {
        ca_pem: read(&certs.ca.cert),
        client: Some((read(&certs.client.cert), read(&certs.client.cert))),
    })
    .await;
    assert!(
        text.contains("client key holds no PEM private key"),
        "{text}"
    );
}

/// Throw-away certificates: a CA that signed a server certificate for 127.0.0.1
/// and a client certificate, and another CA that signed neither.
struct Certs {
    ca: Ca,
    other_ca: Ca,
    server: CertKey,
    client: CertKey,
}

fn make_certificates(dir: &Path) -> Certs {
    let ca = Ca::new(dir, "ca");
    let other_ca = Ca::new(dir, "other-ca");
    let server = ca.server("server");
    let client = ca.client("client", "/CN=mqgate test client");
    // Mosquitto reads its key after dropping root for its own user.
    std::fs::set_permissions(&server.key, std::fs::Permissions::from_mode(0o644))
        .expect("chmod key");
    Certs {
        ca,
        other_ca,
        server,
        client,
    }
}

#[tokio::test]
async fn tls_to_mosquitto_works_with_its_ca_and_a_client_certificate_and_fails_with_another_ca() {
    let dir = Scratch::new("tls-certs");
    let certs = make_certificates(dir.path());
    // A second, plain listener for the subscriber.
    let plain_port = free_port();
    let broker = Mosquitto::start_with("mosquitto", true, |_| {
        format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nlistener {plain_port} 127.0.0.1\n",
            certs.ca.cert.display(),
            certs.server.cert.display(),
            certs.server.key.display(),
        )
    });
    let read = |path: &Path| std::fs::read(path).expect("read pem");
    let client = Some((read(&certs.client.cert), read(&certs.client.key)));

    let mut opts = options(broker.addr(), &unique("tls"));
    opts.tls = Some(TlsFiles {
        ca_pem: read(&certs.ca.cert),
        client: client.clone(),
    });
    assert!(wait_for_port(plain_port, WAIT), "the plain listener is up");
    let plain = SocketAddr::from(([127, 0, 0, 1], plain_port));
    let mut rx = rumqttc_subscriber(plain, "tls/ok").await;
    let (mut conn, _) = connect(&opts).await;
    conn.publish(5, "tls/ok", b"secret", QoS::AtLeastOnce, false, false);
    let ack = wait_for("PUBACK", conn.next()).await;
    assert_eq!(ack.expect("PUBACK over TLS"), Ack::PubAck(5));
    let acks = publish_window(&mut conn, "tls/ok", 10_000, 1024, QoS::AtLeastOnce).await;
    assert_eq!(acks, expected_pkids(10_000));
    let mut want = vec!["secret".to_string()];
    want.extend(numbers(10_000));
    assert_eq!(collect(&mut rx, want.len(), plain, "tls/ok").await, want);
    conn.disconnect(WAIT).await;

    opts.tls = Some(TlsFiles {
        ca_pem: read(&certs.ca.cert),
        client: None,
    });
    match wait_for("connect", Connection::connect(&opts)).await {
        Err(ClientError::Tls(text)) => assert!(text.contains("client certificate"), "{text}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    opts.tls = Some(TlsFiles {
        ca_pem: read(&certs.other_ca.cert),
        client,
    });
    match wait_for("connect", Connection::connect(&opts)).await {
        Err(ClientError::Tls(text)) => {
            assert!(text.contains("invalid peer certificate"), "{text}");
            assert!(text.contains("127.0.0.1"), "{text}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}
