//! Key derivation as rclone does it: scrypt(N=16384, r=8, p=1) to 80 bytes, split into the
//! data key, the name key and the name tweak. May import: std, `scrypt`, `zeroize`.

use std::fmt;

use zeroize::Zeroizing;

/// rclone's built-in salt, used when `password2` is empty (`defaultSalt` in `cipher.go`).
pub const DEFAULT_SALT: [u8; 16] =
    [0xa8, 0x0d, 0xf4, 0x3a, 0x8f, 0xbd, 0x03, 0x08, 0xa7, 0xca, 0xb8, 0x3e, 0x58, 0x1f, 0x86, 0xb1];

/// log2 of scrypt's N (N = 16384).
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const KEY_MATERIAL_LEN: usize = 32 + 32 + 16;

/// The three secrets of an rclone crypt remote. Every copy is wiped on drop, and `Debug`
/// prints none of them.
#[derive(Clone)]
pub struct Keys {
    data_key: Zeroizing<[u8; 32]>,
    name_key: Zeroizing<[u8; 32]>,
    name_tweak: Zeroizing<[u8; 16]>,
}

impl Keys {
    /// Derives the keys from the (revealed) `password` and `salt` (rclone's `password2`), as
    /// rclone does: an empty salt means [`DEFAULT_SALT`], and an empty password gives all-zero
    /// keys without running scrypt.
    ///
    /// This takes about 50 ms and 16 MiB: derive once per remote, not per file.
    #[must_use]
    pub fn derive(password: &str, salt: &str) -> Self {
        Self::derive_bytes(password.as_bytes(), salt.as_bytes())
    }

    /// [`Keys::derive`] on raw bytes.
    ///
    /// # Panics
    ///
    /// Never: the scrypt parameters are constants that scrypt accepts (the tests derive keys).
    #[must_use]
    pub fn derive_bytes(password: &[u8], salt: &[u8]) -> Self {
        let mut material = Zeroizing::new([0u8; KEY_MATERIAL_LEN]);
        if !password.is_empty() {
            let salt = if salt.is_empty() { &DEFAULT_SALT[..] } else { salt };
            // `len` only matters for scrypt's PHC strings; the raw function fills `material`.
            let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, scrypt::Params::RECOMMENDED_LEN)
                .expect("constant scrypt parameters are valid");
            scrypt::scrypt(password, salt, &params, &mut material[..])
                .expect("80 bytes is a valid scrypt output length");
        }
        let mut data_key = Zeroizing::new([0u8; 32]);
        let mut name_key = Zeroizing::new([0u8; 32]);
        let mut name_tweak = Zeroizing::new([0u8; 16]);
        data_key.copy_from_slice(&material[..32]);
        name_key.copy_from_slice(&material[32..64]);
        name_tweak.copy_from_slice(&material[64..]);
        Self { data_key, name_key, name_tweak }
    }

    /// Builds keys from known parts (tests, or keys stored elsewhere).
    #[must_use]
    pub fn from_parts(data_key: [u8; 32], name_key: [u8; 32], name_tweak: [u8; 16]) -> Self {
        Self {
            data_key: Zeroizing::new(data_key),
            name_key: Zeroizing::new(name_key),
            name_tweak: Zeroizing::new(name_tweak),
        }
    }

    /// The XSalsa20-Poly1305 key for file content. Secret.
    #[must_use]
    pub fn data_key(&self) -> &[u8; 32] {
        &self.data_key
    }

    /// The AES-256 key for names (EME, and the obfuscate rotation). Secret.
    #[must_use]
    pub fn name_key(&self) -> &[u8; 32] {
        &self.name_key
    }

    /// The EME tweak for names. Secret.
    #[must_use]
    pub fn name_tweak(&self) -> &[u8; 16] {
        &self.name_tweak
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys { <redacted> }")
    }
}
