//! Throw-away certificates for TLS tests (broker-lite's and the gateway's), made
//! with the `openssl` command line tool in a scratch folder: a CA, a server
//! certificate for 127.0.0.1 and localhost, and client certificates with a chosen
//! subject.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The only configuration openssl reads, so the system's `openssl.cnf` plays no part.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A certificate and its key, PEM files.
#[derive(Debug, Clone)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA (P-256) whose files live in `dir`.
#[derive(Debug)]
pub struct Ca {
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
    cnf: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let cnf = dir.join("openssl.cnf");
        std::fs::write(&cnf, OPENSSL_CNF).expect("write openssl.cnf");
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let mut cmd = Command::new("openssl");
        cmd.args(["req", "-x509", "-config"])
            .arg(&cnf)
            .args(["-extensions", "ca", "-days", "2"])
            .args(new_key(&key))
            .args(["-subj", &format!("/CN=broker-lite test {name}"), "-out"])
            .arg(&cert);
        openssl(cmd);
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
            cnf,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, name: &str) -> CertKey {
        self.issue(name, "/CN=localhost", "server")
    }

    /// A client certificate with subject `subject` (e.g. `/O=Acme/CN=sensor-1`).
    pub fn client(&self, name: &str, subject: &str) -> CertKey {
        self.issue(name, subject, "client")
    }

    fn issue(&self, name: &str, subject: &str, extensions: &str) -> CertKey {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        let cert = self.dir.join(format!("{name}.crt"));
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let mut req = Command::new("openssl");
        req.args(["req", "-new", "-config"])
            .arg(&self.cnf)
            .args(new_key(&key))
            .args(["-subj", subject, "-out"])
            .arg(&csr);
        openssl(req);
        let mut sign = Command::new("openssl");
        sign.args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&self.cert)
            .arg("-CAkey")
            .arg(&self.key)
            .args([
                "-set_serial",
                &SERIAL.fetch_add(1, Ordering::Relaxed).to_string(),
            ])
            .args(["-days", "2", "-extfile"])
            .arg(&self.cnf)
            .args(["-extensions", extensions, "-out"])
            .arg(&cert);
        openssl(sign);
        CertKey { cert, key }
    }
}

/// `-newkey` arguments: a fresh unencrypted P-256 key (PKCS#8 PEM) in `key`.
fn new_key(key: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(key.into());
    args
}

/// Run openssl, failing the test with its output when it fails or takes over 30 s.
fn openssl(mut cmd: Command) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs (apt-get install openssl)");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            }
            assert!(status.success(), "openssl failed: {err}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl took over 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
