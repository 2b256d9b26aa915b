//! rclone's `obscure` / `reveal` for passwords in config files (`TrueNAS` and rclone configs):
//! URL-safe base64 (no padding) of a 16-byte IV followed by AES-256-CTR under a key fixed
//! in rclone's source. Obfuscation, not security. May import: std, `aes`, `ctr`,
//! `getrandom`, `zeroize`, and `super::{encoding, error}`.

use aes::{
    Aes256,
    cipher::{KeyIvInit, StreamCipher},
};
use zeroize::Zeroizing;

use super::{encoding, error::CryptError};

/// rclone's fixed obscure key (`fs/config/obscure/obscure.go`).
const OBSCURE_KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b, 0xd3, 0x90, 0x19,
    0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];
const IV_LEN: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

fn apply_ctr(iv: &[u8; IV_LEN], buf: &mut [u8]) {
    let mut ctr = Aes256Ctr::new(&OBSCURE_KEY.into(), iv.into());
    ctr.apply_keystream(buf);
}

/// Obscures `plaintext` as `rclone obscure` does, with a random IV (so the output differs
/// every time).
///
/// # Errors
///
/// [`CryptError::Random`] if the operating system has no random bytes.
pub fn obscure(plaintext: &str) -> Result<String, CryptError> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|e| CryptError::Random(e.to_string()))?;
    Ok(obscure_with_iv(plaintext, &iv))
}

/// Obscures `plaintext` with a given IV (deterministic; for tests).
#[must_use]
pub fn obscure_with_iv(plaintext: &str, iv: &[u8; IV_LEN]) -> String {
    let mut buf = Zeroizing::new(Vec::with_capacity(IV_LEN + plaintext.len()));
    buf.extend_from_slice(iv);
    buf.extend_from_slice(plaintext.as_bytes());
    apply_ctr(iv, &mut buf[IV_LEN..]);
    encoding::base64_encode(&buf)
}

/// Reveals an obscured password as raw bytes (rclone does not require UTF-8).
///
/// # Errors
///
/// [`CryptError::RevealBase64`] if `obscured` is not URL-safe base64,
/// [`CryptError::RevealTooShort`] if it holds fewer than 16 bytes.
pub fn reveal_bytes(obscured: &str) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let mut buf = Zeroizing::new(
        encoding::base64_decode(obscured).map_err(|e| CryptError::RevealBase64 { detail: e.to_string() })?,
    );
    if buf.len() < IV_LEN {
        return Err(CryptError::RevealTooShort);
    }
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&buf[..IV_LEN]);
    apply_ctr(&iv, &mut buf[IV_LEN..]);
    Ok(Zeroizing::new(buf[IV_LEN..].to_vec()))
}

/// Reveals an obscured password, as `rclone reveal` does.
///
/// # Errors
///
/// As [`reveal_bytes`], plus [`CryptError::RevealNotUtf8`] if the result is not UTF-8.
pub fn reveal(obscured: &str) -> Result<Zeroizing<String>, CryptError> {
    let bytes = reveal_bytes(obscured)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| CryptError::RevealNotUtf8)?;
    Ok(Zeroizing::new(text.to_string()))
}
