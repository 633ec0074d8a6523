//! TLS: PEM problems are named before any traffic; the handshake checks the
//! server against the CA given (certificates made with the openssl command).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mqtt_proto::codec::QoS;

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
    make_certificates(&dir.0);
    let read = |name: &str| std::fs::read(dir.0.join(name)).expect("read pem");
    let text = tls_error(TlsFiles {
        ca_pem: read("ca.pem"),
        client: Some((read("client.pem"), read("client.pem"))),
    })
    .await;
    assert!(
        text.contains("client key holds no PEM private key"),
        "{text}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=mqgate test CA"),
        ("other-ca", "/CN=someone else"),
    ] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &pem]);
        run(&args);
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("write ext");
    for name in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut args = vec![
            "req",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        args.extend(ec);
        run(&args);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }
    // Mosquitto reads its key after dropping root for its own user.
    for key in ["ca.key", "other-ca.key", "server.key", "client.key"] {
        std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o644))
            .expect("chmod key");
    }
}

#[tokio::test]
async fn tls_to_mosquitto_works_with_its_ca_and_a_client_certificate_and_fails_with_another_ca() {
    let certs = Scratch::new("tls-certs");
    make_certificates(&certs.0);
    let dir = certs.0.clone();
    // A second, plain listener for the subscriber.
    let plain_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let broker = Mosquitto::start(move |_| {
        format!(
            "allow_anonymous true\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             require_certificate true\nlistener {plain_port} 127.0.0.1\n",
            dir.display()
        )
    })
    .await;
    let read = |name: &str| std::fs::read(certs.0.join(name)).expect("read pem");
    let client = Some((read("client.pem"), read("client.key")));

    let mut opts = options(broker.addr, &unique("tls"));
    opts.tls = Some(TlsFiles {
        ca_pem: read("ca.pem"),
        client: client.clone(),
    });
    let plain = SocketAddr::from(([127, 0, 0, 1], plain_port));
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(plain).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut rx = rumqttc_subscriber(plain, "tls/ok").await;
    let (mut conn, _) = connect(&opts).await;
    conn.publish(5, "tls/ok", b"secret", QoS::AtLeastOnce, false, false);
    let ack = wait_for("PUBACK", conn.next()).await;
    assert_eq!(ack.expect("PUBACK over TLS"), Ack::PubAck(5));
    let acks = publish_window(&mut conn, "tls/ok", 10_000, 1024, QoS::AtLeastOnce).await;
    assert_eq!(acks, expected_pkids(10_000));
    let mut want = vec!["secret".to_string()];
    want.extend(numbers(10_000));
    assert_eq!(collect(&mut rx, want.len()).await, want);
    conn.disconnect(WAIT).await;

    opts.tls = Some(TlsFiles {
        ca_pem: read("ca.pem"),
        client: None,
    });
    match wait_for("connect", Connection::connect(&opts)).await {
        Err(ClientError::Tls(text)) => assert!(text.contains("client certificate"), "{text}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    opts.tls = Some(TlsFiles {
        ca_pem: read("other-ca.pem"),
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
