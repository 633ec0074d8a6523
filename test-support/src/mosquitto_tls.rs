//! Mosquitto with a TLS listener that wants a client certificate and a password,
//! and mosquitto_sub as a subscriber over TLS. The throw-away certificates come
//! from [`crate::pki`].

use std::ffi::OsString;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::mosquitto::{retained_with, Mosquitto, Msg, Subscriber};
use crate::pki::CertKey;
use crate::process::run_to_end;

/// Mosquitto's tool that writes hashed password files (package `mosquitto`).
pub const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// Writes a Mosquitto password file holding `users` (name, password) with
/// `mosquitto_passwd -b`; returns its path.
pub fn mosquitto_password_file(path: &Path, users: &[(&str, &str)]) -> PathBuf {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, "").expect("create the password file");
    for (user, password) in users {
        let mut cmd = Command::new(MOSQUITTO_PASSWD);
        cmd.arg("-b").arg(path).args([user, password]);
        let done = run_to_end("mosquitto_passwd", cmd, Duration::from_secs(10));
        assert!(
            done.status.success(),
            "mosquitto_passwd failed:\n{}",
            done.stderr
        );
    }
    path.to_path_buf()
}

/// What the TLS listener of [`Mosquitto::start_tls`] uses.
#[derive(Debug, Clone)]
pub struct BrokerTls {
    /// Verifies the clients' certificates.
    pub client_ca: PathBuf,
    /// The broker's own certificate and key.
    pub server: CertKey,
    /// Made with [`mosquitto_password_file`].
    pub password_file: PathBuf,
}

impl Mosquitto {
    /// Mosquitto with one TLS listener on a free loopback port that requires a
    /// client certificate and a user name with a password (no anonymous clients);
    /// one log line per packet.
    pub fn start_tls(tls: &BrokerTls) -> Mosquitto {
        // Mosquitto started as root drops to its own user, which must read these.
        for file in [&tls.server.key, &tls.password_file] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644))
                .expect("make a broker file readable");
        }
        let conf = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
             password_file {}\nallow_anonymous false\n",
            tls.client_ca.display(),
            tls.server.cert.display(),
            tls.server.key.display(),
            tls.password_file.display(),
        );
        Mosquitto::start_with("mosquitto (tls)", true, |_| conf.clone())
    }
}

/// What a client of [`Mosquitto::start_tls`] presents: the CA it trusts, its certificate,
/// its user name and password.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub client: CertKey,
    pub username: String,
    pub password: String,
}

impl ClientTls {
    /// mosquitto_pub / mosquitto_sub arguments for 127.0.0.1:`port` with these credentials.
    pub fn mosquitto_args(&self, port: u16) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &dyn AsRef<std::ffi::OsStr>| args.push(a.as_ref().to_os_string());
        push(&"-h");
        push(&"127.0.0.1");
        push(&"-p");
        push(&port.to_string());
        push(&"--cafile");
        push(&self.ca);
        push(&"--cert");
        push(&self.client.cert);
        push(&"--key");
        push(&self.client.key);
        push(&"-u");
        push(&self.username);
        push(&"-P");
        push(&self.password);
        args
    }
}

/// mosquitto_sub over TLS subscribed to one filter at QoS 2; reads like a [`Subscriber`].
#[derive(Debug)]
pub struct TlsSubscriber(Subscriber);

impl TlsSubscriber {
    /// Connects to 127.0.0.1:`port` with `tls`, subscribes to `filter` and returns
    /// once the broker has acknowledged the subscription.
    pub fn start(name: &str, port: u16, tls: &ClientTls, filter: &str) -> TlsSubscriber {
        let mut args = tls.mosquitto_args(port);
        args.extend(["-t".into(), filter.into()]);
        TlsSubscriber(Subscriber::start_with(name, args))
    }
}

impl Deref for TlsSubscriber {
    type Target = Subscriber;

    fn deref(&self) -> &Subscriber {
        &self.0
    }
}

/// The message retained on `topic` of the TLS broker on `port`, if any.
pub fn retained_tls(port: u16, tls: &ClientTls, topic: &str) -> Option<Msg> {
    let mut args = tls.mosquitto_args(port);
    args.extend(["-t".into(), topic.into()]);
    retained_with("mosquitto_sub --retained-only (tls)", args)
}
