//! Secrets at rest: a key file made on first start, and AES-256-CTR with HMAC-SHA256
//! (encrypt-then-MAC) over each secret. Imports std, aes/ctr/hmac/sha2, getrandom and zeroize.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::{fmt, fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};
use zeroize::Zeroizing;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

const KEY_LEN: usize = 64;
const IV_LEN: usize = 16;
const TAG_LEN: usize = 32;
const DOMAIN: &[u8] = b"cloudsyncd secret v1\0";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or made.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file has the wrong size or is readable by others.
    #[error("key file {path}: {reason}")]
    BadKeyFile {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A sealed secret failed its check: the state file and key file do not belong together, or
    /// the state file was altered.
    #[error("a stored secret does not match the key file (wrong key file or altered state)")]
    Tampered,
    /// No randomness.
    #[error("no random numbers available: {0}")]
    Random(String),
}

/// The key that seals secrets at rest. `Debug` prints nothing of it.
pub struct SealKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// Reads the key file at `path`, or creates it (mode 0600) when absent and `create` is true.
    ///
    /// # Errors
    /// The key file cannot be read or written, has the wrong size, or is group/world readable.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self, SealError> {
        let ioerr = |source| SealError::KeyFile { path: path.display().to_string(), source };
        match fs::read(path) {
            Ok(bytes) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(path).map_err(ioerr)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(SealError::BadKeyFile {
                        path: path.display().to_string(),
                        reason: format!("mode {:o} lets others read it; expected 0600", mode & 0o777),
                    });
                }
                let bytes = Zeroizing::new(bytes);
                let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| SealError::BadKeyFile {
                    path: path.display().to_string(),
                    reason: format!("expected {KEY_LEN} bytes, found {}", bytes.len()),
                })?;
                Ok(Self(Zeroizing::new(key)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                getrandom::fill(key.as_mut()).map_err(|e| SealError::Random(e.to_string()))?;
                let mut f =
                    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(ioerr)?;
                f.write_all(key.as_ref()).map_err(ioerr)?;
                f.sync_all().map_err(ioerr)?;
                if let Some(dir) = path.parent() {
                    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ioerr)?;
                }
                Ok(Self(key))
            }
            Err(e) => Err(ioerr(e)),
        }
    }

    /// A key from fixed bytes, for tests.
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    fn mac(&self, iv: &[u8], ct: &[u8]) -> Hmac<Sha256> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[32..]).expect("HMAC takes any key length");
        m.update(DOMAIN);
        m.update(iv);
        m.update(ct);
        m
    }

    /// Seals `plain`: IV, ciphertext, tag.
    ///
    /// # Errors
    /// No randomness for the IV.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|e| SealError::Random(e.to_string()))?;
        let mut out = Vec::with_capacity(IV_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(plain);
        Aes256Ctr::new(self.0[..32].into(), &iv.into()).apply_keystream(&mut out[IV_LEN..]);
        let tag = self.mac(&iv, &out[IV_LEN..]).finalize().into_bytes();
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made.
    ///
    /// # Errors
    /// [`SealError::Tampered`] when the tag does not match.
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < IV_LEN + TAG_LEN {
            return Err(SealError::Tampered);
        }
        let (iv, rest) = sealed.split_at(IV_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        self.mac(iv, ct).verify_slice(tag).map_err(|_| SealError::Tampered)?;
        let mut plain = Zeroizing::new(ct.to_vec());
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| SealError::Tampered)?;
        Aes256Ctr::new(self.0[..32].into(), &iv.into()).apply_keystream(&mut plain);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let k = SealKey::from_bytes([7; KEY_LEN]);
        let s = k.seal(b"my secret").unwrap();
        assert!(!s.windows(9).any(|w| w == b"my secret"));
        assert_eq!(&k.open(&s).unwrap()[..], b"my secret");
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 1;
            assert!(matches!(k.open(&bad), Err(SealError::Tampered)), "flip at {i}");
        }
        let other = SealKey::from_bytes([8; KEY_LEN]);
        assert!(other.open(&s).is_err());
        assert_eq!(format!("{k:?}"), "SealKey(..)");
    }

    #[test]
    fn key_file_is_made_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret.key");
        let a = SealKey::load_or_create(&p, true).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let b = SealKey::load_or_create(&p, false).unwrap();
        assert_eq!(b.open(&a.seal(b"x").unwrap()).unwrap().as_slice(), b"x");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SealKey::load_or_create(&p, false), Err(SealError::BadKeyFile { .. })));
    }
}
