//! The rclone "crypt" format, byte-compatible with rclone.
//!
//! Key derivation from the (obscured) passwords, file and directory names, file content in
//! 64 KiB XSalsa20-Poly1305 blocks, and `obscure`/`reveal` for config passwords.
//!
//! Pure: no async, no clock, no IO except `std::io::Read` adapters over streams the caller
//! supplies. The push-style [`Encryptor`]/[`Decryptor`] and the block-level
//! [`ContentCipher::encrypt_block`]/[`ContentCipher::decrypt_block`] are the core an async
//! wrapper builds on; everything works in constant memory (one block).
//!
//! May import: std and the crates `aes`, `ctr`, `crypto_secretbox`, `scrypt`, `getrandom`,
//! `zeroize`, `thiserror`. Nothing else of this crate: `crypt` is a leaf.
//!
//! ```
//! use cloudsyncd::crypt::{Cipher, NameOptions, Nonce};
//!
//! let cipher = Cipher::from_password("hunter2", "", NameOptions::default());
//! let name = cipher.names().encrypt_file_name("dir/hello.txt")?;
//! assert_eq!(cipher.names().decrypt_file_name(&name)?, "dir/hello.txt");
//!
//! let mut sealed = Vec::new();
//! let mut enc = cipher.encryptor(Nonce::from_bytes([7; 24]));
//! enc.update(b"hello", &mut sealed);
//! enc.finish(&mut sealed);
//! let mut plain = Vec::new();
//! let mut dec = cipher.decryptor();
//! dec.update(&sealed, &mut plain)?;
//! dec.finish(&mut plain)?;
//! assert_eq!(plain, b"hello");
//! # Ok::<(), cloudsyncd::crypt::CryptError>(())
//! ```

mod content;
mod eme;
mod encoding;
mod error;
mod keys;
mod names;
mod obscure;
mod stream;
mod version;

use std::{fmt, io::Read};

pub use content::{
    BLOCK_DATA_SIZE, BLOCK_SIZE, BLOCK_TAG_SIZE, BlockPosition, ContentCipher, Decryptor, Encryptor, HEADER_SIZE,
    MAGIC, NONCE_SIZE, Nonce, block_position, decrypted_size, encrypted_size, header, parse_header,
};
pub use error::{CryptError, NameError};
pub use keys::{DEFAULT_SALT, Keys};
pub use names::{MAX_SEGMENT_BYTES, NameCipher, NameEncoding, NameEncryption, NameOptions, encrypted_segment_len};
pub use obscure::{obscure, obscure_with_iv, reveal, reveal_bytes};
pub use stream::{DecryptReader, EncryptReader};

/// Everything needed for one rclone crypt remote: its keys, the content cipher and the name
/// cipher. `Debug` prints only the name options.
#[derive(Clone)]
pub struct Cipher {
    keys: Keys,
    content: ContentCipher,
    names: NameCipher,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher").field("names", self.names.options()).finish_non_exhaustive()
    }
}

impl Cipher {
    /// A cipher from already derived keys.
    #[must_use]
    pub fn new(keys: Keys, options: NameOptions) -> Self {
        let content = ContentCipher::new(&keys);
        let names = NameCipher::new(&keys, options);
        Self { keys, content, names }
    }

    /// Derives the keys from the plaintext `password` and `salt` (rclone's `password2`; empty
    /// for rclone's default salt). Runs scrypt: about 50 ms.
    #[must_use]
    pub fn from_password(password: &str, salt: &str, options: NameOptions) -> Self {
        Self::new(Keys::derive(password, salt), options)
    }

    /// Builds the cipher from an rclone config section's `password` and `password2`, both
    /// obscured as rclone stores them (`password2` may be empty). An obscured empty
    /// password is accepted and gives all-zero keys, as in rclone.
    ///
    /// # Errors
    ///
    /// [`CryptError::PasswordNotSet`] if `obscured_password` is empty; the `reveal` errors
    /// if either value is not obscured.
    pub fn from_obscured(
        obscured_password: &str,
        obscured_salt: &str,
        options: NameOptions,
    ) -> Result<Self, CryptError> {
        if obscured_password.is_empty() {
            return Err(CryptError::PasswordNotSet);
        }
        let password = reveal_bytes(obscured_password)?;
        let salt =
            if obscured_salt.is_empty() { zeroize::Zeroizing::new(Vec::new()) } else { reveal_bytes(obscured_salt)? };
        Ok(Self::new(Keys::derive_bytes(&password, &salt), options))
    }

    /// The keys (secret).
    #[must_use]
    pub const fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The content cipher, for block-level work.
    #[must_use]
    pub const fn content(&self) -> &ContentCipher {
        &self.content
    }

    /// The name cipher.
    #[must_use]
    pub const fn names(&self) -> &NameCipher {
        &self.names
    }

    /// A push-style encryptor for one file sealed with `nonce` (tests, `cryptcheck`).
    #[must_use]
    pub fn encryptor(&self, nonce: Nonce) -> Encryptor {
        Encryptor::new(&self.content, nonce)
    }

    /// A push-style encryptor for one file with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`CryptError::Random`] if the operating system has no random bytes.
    pub fn encryptor_random(&self) -> Result<Encryptor, CryptError> {
        Encryptor::with_random_nonce(&self.content)
    }

    /// A push-style decryptor for one file.
    #[must_use]
    pub fn decryptor(&self) -> Decryptor {
        Decryptor::new(&self.content)
    }

    /// Wraps `inner` so that reading yields its content encrypted with `nonce`.
    #[must_use]
    pub fn encrypt_reader<R: Read>(&self, inner: R, nonce: Nonce) -> EncryptReader<R> {
        EncryptReader::new(inner, &self.content, nonce)
    }

    /// Wraps `inner` so that reading yields its content encrypted with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`CryptError::Random`] if the operating system has no random bytes.
    pub fn encrypt_reader_random<R: Read>(&self, inner: R) -> Result<EncryptReader<R>, CryptError> {
        EncryptReader::with_random_nonce(inner, &self.content)
    }

    /// Wraps `inner` (an encrypted file) so that reading yields its plaintext.
    #[must_use]
    pub fn decrypt_reader<R: Read>(&self, inner: R) -> DecryptReader<R> {
        DecryptReader::new(inner, &self.content)
    }
}
