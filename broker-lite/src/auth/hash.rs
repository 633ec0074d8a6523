//! Password hashes: PBKDF2-HMAC-SHA512 with a per-user random salt, written as
//! `$pbkdf2-sha512$i=<iterations>$<salt>$<hash>` (salt and hash in unpadded
//! standard base64). The iteration count lives in the line, so raising the
//! default later leaves existing hashes valid.

use std::fmt;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::Sha512;
use subtle::ConstantTimeEq;

/// Iterations for new hashes: one check takes about 18 ms on an x86 server
/// core (AMD EPYC) and, by SHA-512 throughput, about four times that on a
/// Raspberry Pi 4. OWASP's 210,000 would cost a Pi over 300 ms per login and
/// make a flood of bad logins hurt the gateway itself.
pub const DEFAULT_ITERATIONS: u32 = 40_000;

/// Fewest iterations a stored hash may declare; less is not a slow hash.
pub const MIN_ITERATIONS: u32 = 1_000;
/// Most iterations a stored hash may declare, so that one line cannot stall logins.
pub const MAX_ITERATIONS: u32 = 10_000_000;

const SCHEME: &str = "pbkdf2-sha512";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 64;

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Why a stored hash could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("expected $pbkdf2-sha512$i=ITERATIONS$SALT$HASH")]
    Shape,
    #[error("unknown hash scheme {0:?} (only pbkdf2-sha512)")]
    Scheme(String),
    #[error("iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}, got {0:?}")]
    Iterations(String),
    #[error("{0} is not base64: {1}")]
    Base64(&'static str, String),
    #[error("{0} must be 8 to 64 bytes, got {1}")]
    Length(&'static str, usize),
}

impl PasswordHash {
    /// Hash `password` with a fresh random salt.
    pub fn new(password: &[u8], iterations: u32) -> Result<PasswordHash, getrandom::Error> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        Ok(PasswordHash::with_salt(password, salt, iterations))
    }

    pub(crate) fn with_salt(password: &[u8], salt: Vec<u8>, iterations: u32) -> PasswordHash {
        let mut hash = vec![0u8; HASH_LEN];
        derive(password, &salt, iterations, &mut hash);
        PasswordHash {
            iterations,
            salt,
            hash,
        }
    }

    /// Read the text form.
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        let mut parts = text.split('$');
        let (Some(""), Some(scheme), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(HashError::Shape);
        };
        if scheme != SCHEME {
            return Err(HashError::Scheme(scheme.to_string()));
        }
        let iterations = iterations
            .strip_prefix("i=")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
            .ok_or_else(|| HashError::Iterations(iterations.to_string()))?;
        let decode = |what: &'static str, b64: &str| {
            let bytes = STANDARD_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|e| HashError::Base64(what, e.to_string()))?;
            if !(8..=64).contains(&bytes.len()) {
                return Err(HashError::Length(what, bytes.len()));
            }
            Ok(bytes)
        };
        Ok(PasswordHash {
            iterations,
            salt: decode("salt", salt)?,
            hash: decode("hash", hash)?,
        })
    }

    /// True when `password` hashes to the stored value. Slow on purpose: run it
    /// off the async runtime. The comparison takes the same time wherever the
    /// bytes differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        let mut computed = vec![0u8; self.hash.len()];
        derive(password, &self.salt, self.iterations, &mut computed);
        computed.ct_eq(&self.hash).into()
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

/// PBKDF2-HMAC-SHA512 into `out`.
fn derive(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, out);
}

impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${SCHEME}$i={}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(&self.hash)
        )
    }
}

impl fmt::Debug for PasswordHash {
    /// The iteration count only: a hash in a log is an offline attack waiting to happen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash(pbkdf2-sha512, i={})", self.iterations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let h = PasswordHash::new(b"secret", MIN_ITERATIONS).unwrap();
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"Secret"));
        assert!(!h.verify(b"secret "));
        assert!(!h.verify(b""));
    }

    #[test]
    fn the_text_form_reads_back_to_the_same_hash() {
        let h = PasswordHash::new(b"pw", 1234).unwrap();
        let text = h.to_string();
        assert!(text.starts_with("$pbkdf2-sha512$i=1234$"), "{text}");
        assert!(!text.contains(':'), "{text}");
        let back = PasswordHash::parse(&text).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(b"pw"));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        let a = PasswordHash::new(b"same", MIN_ITERATIONS).unwrap();
        let b = PasswordHash::new(b"same", MIN_ITERATIONS).unwrap();
        assert_ne!(a.to_string(), b.to_string());
    }

    #[test]
    fn a_known_vector_matches() {
        // PBKDF2-HMAC-SHA512 of "password" with salt "salt" and 1 iteration, 64 bytes:
        // the widely published vector (RFC 6070's inputs with SHA-512).
        let h = PasswordHash::with_salt(b"password", b"salt".to_vec(), 1);
        let expected = "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
                        c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce";
        let hex: String = h.hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn malformed_hashes_are_refused_with_the_reason() {
        let good = PasswordHash::new(b"x", MIN_ITERATIONS).unwrap().to_string();
        let salt_and_hash = good.splitn(4, '$').nth(3).unwrap();
        let cases = [
            ("plain", HashError::Shape),
            ("$pbkdf2-sha512$i=1000$abc", HashError::Shape),
            (
                &format!("$argon2id$i=1000${salt_and_hash}"),
                HashError::Scheme("argon2id".into()),
            ),
            (
                &format!("$pbkdf2-sha512$i=10${salt_and_hash}"),
                HashError::Iterations("i=10".into()),
            ),
            (
                &format!("$pbkdf2-sha512$n=1000${salt_and_hash}"),
                HashError::Iterations("n=1000".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(PasswordHash::parse(text), Err(expected), "{text}");
        }
        assert!(matches!(
            PasswordHash::parse("$pbkdf2-sha512$i=1000$!!!$AAAAAAAAAAA"),
            Err(HashError::Base64("salt", _))
        ));
        assert!(matches!(
            PasswordHash::parse("$pbkdf2-sha512$i=1000$AAAAAAAAAAA$AAAA"),
            Err(HashError::Length("hash", 3))
        ));
    }

    /// The time one check takes at the default count; printed so that
    /// `cargo test --release -- --nocapture default_iteration_cost` gives the figure.
    #[test]
    fn default_iteration_cost() {
        let h = PasswordHash::new(b"pw", DEFAULT_ITERATIONS).unwrap();
        let started = std::time::Instant::now();
        assert!(h.verify(b"pw"));
        let took = started.elapsed();
        println!("{DEFAULT_ITERATIONS} iterations: one check {took:?}");
        assert!(took < std::time::Duration::from_secs(10));
    }

    #[test]
    fn debug_output_shows_no_salt_or_hash() {
        let h = PasswordHash::new(b"x", MIN_ITERATIONS).unwrap();
        let shown = format!("{h:?}");
        assert_eq!(shown, "PasswordHash(pbkdf2-sha512, i=1000)");
    }
}
