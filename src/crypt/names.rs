//! File and directory names: `standard` (AES-256 EME + PKCS#7, then base32/base64/base32768
//! per path segment), `off` (a `.bin` suffix on file names), and `obfuscate` (rclone's
//! rotation), plus rclone's version suffixes and the encrypted-length check.
//! May import: std, `aes`, `zeroize`, and `super::{eme, encoding, error, keys, version}`.

use std::{fmt, str::FromStr};

use aes::{Aes256, cipher::KeyInit};
use zeroize::Zeroizing;

use super::{
    eme::{self, Direction},
    encoding,
    error::{CryptError, NameError},
    keys::Keys,
    version,
};

/// Longest name segment most file systems and backends accept, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest decoded ciphertext of a segment rclone decrypts (EME's 128 blocks).
const MAX_NAME_CIPHERTEXT: usize = eme::MAX_BLOCKS * eme::BLOCK;

/// rclone's `filename_encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NameEncryption {
    /// Encrypt each segment (the default).
    #[default]
    Standard,
    /// Keep names, add a suffix to file names.
    Off,
    /// rclone's weak rotation scheme (`<n>.<rotated>`).
    Obfuscate,
}

impl FromStr for NameEncryption {
    type Err = CryptError;

    /// Parses rclone's config value (`standard`, `off`, `obfuscate`), ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Self::Standard),
            "off" => Ok(Self::Off),
            "obfuscate" => Ok(Self::Obfuscate),
            _ => Err(CryptError::UnknownOption { option: "filename_encryption", value: s.to_string() }),
        }
    }
}

/// rclone's `filename_encoding` (for `standard` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NameEncoding {
    /// Lower-case base32hex without padding (the default).
    #[default]
    Base32,
    /// URL-safe base64 without padding; needs a case-sensitive backend.
    Base64,
    /// base32768; for backends that count UTF-16 characters.
    Base32768,
}

impl FromStr for NameEncoding {
    type Err = CryptError;

    /// Parses rclone's config value (`base32`, `base64`, `base32768`), ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "base32" => Ok(Self::Base32),
            "base64" => Ok(Self::Base64),
            "base32768" => Ok(Self::Base32768),
            _ => Err(CryptError::UnknownOption { option: "filename_encoding", value: s.to_string() }),
        }
    }
}

impl NameEncoding {
    fn encode(self, data: &[u8]) -> String {
        match self {
            Self::Base32 => encoding::base32_encode(data),
            Self::Base64 => encoding::base64_encode(data),
            Self::Base32768 => encoding::base32768_encode(data),
        }
    }

    fn decode(self, s: &str) -> Result<Vec<u8>, NameError> {
        match self {
            Self::Base32 => encoding::base32_decode(s),
            Self::Base64 => encoding::base64_decode(s),
            Self::Base32768 => encoding::base32768_decode(s),
        }
    }
}

/// How names are handled: the name options of an rclone crypt remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameOptions {
    /// `filename_encryption`.
    pub encryption: NameEncryption,
    /// `filename_encoding`.
    pub encoding: NameEncoding,
    /// `directory_name_encryption`: encrypt directory segments too (ignored in `off` mode).
    pub directory_name_encryption: bool,
    /// `suffix` for `off` mode (".bin"; empty for rclone's "none").
    pub suffix: String,
}

impl Default for NameOptions {
    fn default() -> Self {
        Self {
            encryption: NameEncryption::Standard,
            encoding: NameEncoding::Base32,
            directory_name_encryption: true,
            suffix: ".bin".to_string(),
        }
    }
}

/// Length in characters of a `standard`-mode encrypted segment of `plain_len` bytes.
///
/// Characters are bytes for base32 and base64; base32768 characters take 2 or 3 bytes of
/// UTF-8 each. With base32, 143 bytes is the most that fits in 255.
#[must_use]
pub const fn encrypted_segment_len(encoding: NameEncoding, plain_len: usize) -> usize {
    let padded = (plain_len / eme::BLOCK + 1) * eme::BLOCK;
    match encoding {
        NameEncoding::Base32 => (padded * 8).div_ceil(5),
        NameEncoding::Base64 => (padded * 4).div_ceil(3),
        NameEncoding::Base32768 => (padded * 8).div_ceil(15),
    }
}

/// Encrypts and decrypts names for one remote. Key material is wiped on drop; `Debug`
/// shows only the options.
#[derive(Clone)]
pub struct NameCipher {
    aes: Aes256,
    tweak: Zeroizing<[u8; 16]>,
    name_key_sum: u64,
    options: NameOptions,
}

impl fmt::Debug for NameCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameCipher").field("options", &self.options).finish_non_exhaustive()
    }
}

/// Which of rclone's path functions is running.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Encrypt,
    Decrypt,
}

impl NameCipher {
    /// A name cipher with the name key and tweak of `keys`.
    #[must_use]
    pub fn new(keys: &Keys, options: NameOptions) -> Self {
        Self {
            aes: Aes256::new(keys.name_key().into()),
            tweak: Zeroizing::new(*keys.name_tweak()),
            name_key_sum: keys.name_key().iter().map(|&b| u64::from(b)).sum(),
            options,
        }
    }

    /// The options this cipher follows.
    #[must_use]
    pub const fn options(&self) -> &NameOptions {
        &self.options
    }

    /// The stored name of the file at `path` ("/"-separated, relative to the remote's root):
    /// rclone's `EncryptFileName`.
    ///
    /// # Errors
    ///
    /// [`CryptError::SegmentTooLong`] for a segment of 2048 bytes or more (standard mode).
    pub fn encrypt_file_name(&self, path: &str) -> Result<String, CryptError> {
        if self.options.encryption == NameEncryption::Off {
            return Ok(format!("{path}{}", self.options.suffix));
        }
        self.map_path(path, Way::Encrypt)
    }

    /// The plaintext path of a stored file name: rclone's `DecryptFileName`.
    ///
    /// # Errors
    ///
    /// [`CryptError::NameDecrypt`] naming the segment that is not a valid encrypted name
    /// (in `off` mode: a name without the suffix, which is not one of ours). Listings should
    /// skip such names, as rclone does.
    pub fn decrypt_file_name(&self, path: &str) -> Result<String, CryptError> {
        if self.options.encryption == NameEncryption::Off {
            let suffix = &self.options.suffix;
            let not_ours = || CryptError::NameDecrypt {
                segment: path.to_string(),
                reason: NameError::MissingSuffix { suffix: suffix.clone() },
            };
            let plain = path.strip_suffix(suffix.as_str()).filter(|p| !p.is_empty()).ok_or_else(not_ours)?;
            if version::remove(plain).is_some_and(|(_, rest)| rest.is_empty()) {
                return Err(not_ours());
            }
            return Ok(plain.to_string());
        }
        self.map_path(path, Way::Decrypt)
    }

    /// The stored name of the directory at `path`: rclone's `EncryptDirName` (unchanged in
    /// `off` mode or without directory name encryption).
    ///
    /// # Errors
    ///
    /// [`CryptError::SegmentTooLong`] for a segment of 2048 bytes or more (standard mode).
    pub fn encrypt_dir_name(&self, path: &str) -> Result<String, CryptError> {
        if !self.encrypts_dirs() {
            return Ok(path.to_string());
        }
        self.map_path(path, Way::Encrypt)
    }

    /// The plaintext path of a stored directory name: rclone's `DecryptDirName`.
    ///
    /// # Errors
    ///
    /// [`CryptError::NameDecrypt`] naming the segment that is not a valid encrypted name.
    pub fn decrypt_dir_name(&self, path: &str) -> Result<String, CryptError> {
        if !self.encrypts_dirs() {
            return Ok(path.to_string());
        }
        self.map_path(path, Way::Decrypt)
    }

    /// Encrypts one segment (no "/", no version handling): EME + encoding in `standard`
    /// mode, rotation in `obfuscate` mode, unchanged in `off` mode. An empty segment stays
    /// empty.
    ///
    /// # Errors
    ///
    /// [`CryptError::SegmentTooLong`] for a segment of 2048 bytes or more (standard mode).
    pub fn encrypt_segment(&self, segment: &str) -> Result<String, CryptError> {
        match self.options.encryption {
            NameEncryption::Standard => self.encrypt_standard(segment),
            NameEncryption::Obfuscate => Ok(self.obfuscate(segment)),
            NameEncryption::Off => Ok(segment.to_string()),
        }
    }

    /// Decrypts one segment, the reverse of [`NameCipher::encrypt_segment`].
    ///
    /// # Errors
    ///
    /// [`CryptError::NameDecrypt`] if `segment` is not a valid encrypted segment: bad
    /// encoding, wrong length, bad padding (often: wrong password), not UTF-8.
    pub fn decrypt_segment(&self, segment: &str) -> Result<String, CryptError> {
        let result = match self.options.encryption {
            NameEncryption::Standard => self.decrypt_standard(segment),
            NameEncryption::Obfuscate => self.deobfuscate(segment),
            NameEncryption::Off => Ok(segment.to_string()),
        };
        result.map_err(|reason| CryptError::NameDecrypt { segment: segment.to_string(), reason })
    }

    /// Checks, before a transfer, that no segment of the file path `path` gets longer than
    /// [`MAX_SEGMENT_BYTES`] once encrypted.
    ///
    /// # Errors
    ///
    /// [`CryptError::NameTooLong`] naming the first offending plaintext segment, or
    /// [`CryptError::SegmentTooLong`] for a segment that cannot be encrypted at all.
    pub fn check_name_lengths(&self, path: &str) -> Result<(), CryptError> {
        self.check_name_lengths_with_limit(path, MAX_SEGMENT_BYTES)
    }

    /// [`NameCipher::check_name_lengths`] with another limit (in UTF-8 bytes per segment).
    ///
    /// # Errors
    ///
    /// As [`NameCipher::check_name_lengths`].
    pub fn check_name_lengths_with_limit(&self, path: &str, limit: usize) -> Result<(), CryptError> {
        let encrypted = self.encrypt_file_name(path)?;
        for (plain, enc) in path.split('/').zip(encrypted.split('/')) {
            if enc.len() > limit {
                return Err(CryptError::NameTooLong { segment: plain.to_string(), encrypted_len: enc.len(), limit });
            }
        }
        Ok(())
    }

    const fn encrypts_dirs(&self) -> bool {
        !matches!(self.options.encryption, NameEncryption::Off) && self.options.directory_name_encryption
    }

    /// rclone's `encryptFileName` / `decryptFileName`.
    fn map_path(&self, path: &str, way: Way) -> Result<String, CryptError> {
        let segments: Vec<&str> = path.split('/').collect();
        let last = segments.len() - 1;
        let mut out = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            if i != last && !self.options.directory_name_encryption {
                out.push((*segment).to_string());
                continue;
            }
            let versioned = if i == last { version::remove(segment) } else { None };
            let core = versioned.as_ref().map_or(*segment, |(_, rest)| rest.as_str());
            let mut mapped = match way {
                Way::Encrypt => self.encrypt_segment(core)?,
                Way::Decrypt => self.decrypt_segment(core)?,
            };
            if let Some((v, _)) = versioned {
                mapped = version::add(&mapped, v);
            }
            out.push(mapped);
        }
        Ok(out.join("/"))
    }

    fn encrypt_standard(&self, segment: &str) -> Result<String, CryptError> {
        if segment.is_empty() {
            return Ok(String::new());
        }
        let bytes = segment.as_bytes();
        let pad = eme::BLOCK - bytes.len() % eme::BLOCK;
        #[allow(clippy::cast_possible_truncation)] // 1..=16
        let pad_byte = pad as u8;
        let mut padded = Zeroizing::new(Vec::with_capacity(bytes.len() + pad));
        padded.extend_from_slice(bytes);
        padded.extend(std::iter::repeat_n(pad_byte, pad));
        let sealed = eme::transform(&self.aes, &self.tweak, &padded, Direction::Encrypt)
            .ok_or_else(|| CryptError::SegmentTooLong { segment: segment.to_string(), len: bytes.len() })?;
        Ok(self.options.encoding.encode(&sealed))
    }

    fn decrypt_standard(&self, segment: &str) -> Result<String, NameError> {
        if segment.is_empty() {
            return Ok(String::new());
        }
        let raw = self.options.encoding.decode(segment)?;
        if raw.len() % eme::BLOCK != 0 {
            return Err(NameError::NotMultipleOfBlockSize);
        }
        if raw.is_empty() {
            return Err(NameError::TooShortAfterDecode);
        }
        if raw.len() > MAX_NAME_CIPHERTEXT {
            return Err(NameError::TooLongAfterDecode);
        }
        let padded = Zeroizing::new(
            eme::transform(&self.aes, &self.tweak, &raw, Direction::Decrypt).ok_or(NameError::TooLongAfterDecode)?,
        );
        let plain = pkcs7_unpad(&padded)?;
        String::from_utf8(plain.to_vec()).map_err(|_| NameError::NotUtf8)
    }

    /// rclone's `obfuscateSegment`.
    fn obfuscate(&self, plain: &str) -> String {
        if plain.is_empty() {
            return String::new();
        }
        let seed = plain.chars().map(|c| u64::from(u32::from(c))).sum::<u64>() % 256;
        let mut out = format!("{seed}.");
        let dir = seed + self.name_key_sum;
        for c in plain.chars() {
            let r = u32::from(c);
            match c {
                '!' => out.push_str("!!"),
                '0'..='9' => {
                    let shift = u32::try_from(dir % 9 + 1).unwrap_or(1);
                    out.push(rune(u32::from('0') + (r - u32::from('0') + shift) % 10));
                }
                'A'..='Z' | 'a'..='z' => {
                    let shift = u32::try_from(dir % 25 + 1).unwrap_or(1);
                    let mut pos = r - u32::from('A');
                    if pos >= 26 {
                        pos -= 6;
                    }
                    pos = (pos + shift) % 52;
                    if pos >= 26 {
                        pos += 6;
                    }
                    out.push(rune(u32::from('A') + pos));
                }
                '\u{A0}'..='\u{FF}' => {
                    let shift = u32::try_from(dir % 95 + 1).unwrap_or(1);
                    out.push(rune(0xA0 + (r - 0xA0 + shift) % 96));
                }
                _ if r >= 0x100 => {
                    let shift = u32::try_from(dir % 127 + 1).unwrap_or(1);
                    let base = r - r % 256;
                    if let Some(rotated) = char::from_u32(base + (r - base + shift) % 256) {
                        out.push(rotated);
                    } else {
                        out.push('!');
                        out.push(c);
                    }
                }
                _ => out.push(c),
            }
        }
        out
    }

    /// rclone's `deobfuscateSegment`.
    fn deobfuscate(&self, cipher: &str) -> Result<String, NameError> {
        if cipher.is_empty() {
            return Ok(String::new());
        }
        let (num, body) = cipher.split_once('.').ok_or(NameError::NotObfuscated)?;
        if num == "!" {
            return Ok(body.to_string());
        }
        let seed = go_atoi(num).ok_or(NameError::NotObfuscated)?;
        let dir = seed.wrapping_add(i64::try_from(self.name_key_sum).unwrap_or(0));
        let mut out = String::with_capacity(body.len());
        let mut quoted = false;
        for c in body.chars() {
            let r = i64::from(u32::from(c));
            if quoted {
                out.push(c);
                quoted = false;
                continue;
            }
            // Go's `%` truncates like Rust's, so negative numbers behave as in rclone.
            let plain = match c {
                '!' => {
                    quoted = true;
                    continue;
                }
                '0'..='9' => {
                    let mut v = r - dir % 9 - 1;
                    if v < i64::from(u32::from('0')) {
                        v += 10;
                    }
                    v
                }
                'A'..='Z' | 'a'..='z' => {
                    let mut pos = r - i64::from(u32::from('A'));
                    if pos >= 26 {
                        pos -= 6;
                    }
                    pos -= dir % 25 + 1;
                    if pos < 0 {
                        pos += 52;
                    }
                    if pos >= 26 {
                        pos += 6;
                    }
                    i64::from(u32::from('A')) + pos
                }
                '\u{A0}'..='\u{FF}' => {
                    let mut v = r - dir % 95 - 1;
                    if v < 0xA0 {
                        v += 96;
                    }
                    v
                }
                _ if r >= 0x100 => {
                    let base = r - r % 256;
                    let mut v = r - (dir % 127 + 1);
                    if v < base {
                        v += 256;
                    }
                    v
                }
                _ => r,
            };
            // Go's WriteRune writes U+FFFD for an invalid rune.
            out.push(u32::try_from(plain).ok().and_then(char::from_u32).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        Ok(out)
    }
}

/// A code point computed by the obfuscation, which stays inside its valid range.
fn rune(cp: u32) -> char {
    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, no overflow.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// rclone's `pkcs7.Unpad` with a block size of 16 (input already a non-empty multiple).
fn pkcs7_unpad(buf: &[u8]) -> Result<&[u8], NameError> {
    let pad = usize::from(*buf.last().ok_or(NameError::TooShortAfterDecode)?);
    if pad > eme::BLOCK {
        return Err(NameError::PaddingTooLong);
    }
    if pad == 0 {
        return Err(NameError::PaddingTooShort);
    }
    let (plain, padding) = buf.split_at(buf.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(NameError::PaddingNotAllTheSame);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(encryption: NameEncryption) -> NameCipher {
        NameCipher::new(
            &Keys::from_parts([1; 32], [2; 32], [3; 16]),
            NameOptions { encryption, ..NameOptions::default() },
        )
    }

    #[test]
    fn lengths_follow_the_table() {
        assert_eq!(encrypted_segment_len(NameEncoding::Base32, 0), 26);
        assert_eq!(encrypted_segment_len(NameEncoding::Base32, 143), 231);
        assert_eq!(encrypted_segment_len(NameEncoding::Base32, 144), 256);
        assert_eq!(encrypted_segment_len(NameEncoding::Base64, 175), 235);
        assert_eq!(encrypted_segment_len(NameEncoding::Base64, 176), 256);
        assert_eq!(encrypted_segment_len(NameEncoding::Base32768, 143), 77);
        let c = cipher(NameEncryption::Standard);
        for len in [0, 1, 15, 16, 17, 143, 144, 500] {
            let s = "x".repeat(len);
            assert_eq!(
                c.encrypt_segment(&s).unwrap().len(),
                if len == 0 { 0 } else { encrypted_segment_len(NameEncoding::Base32, len) }
            );
        }
    }

    #[test]
    fn refuses_segments_eme_cannot_take() {
        let c = cipher(NameEncryption::Standard);
        assert!(c.encrypt_segment(&"x".repeat(2047)).is_ok());
        assert!(matches!(c.encrypt_segment(&"x".repeat(2048)), Err(CryptError::SegmentTooLong { len: 2048, .. })));
    }

    #[test]
    fn obfuscate_round_trips_odd_characters() {
        let c = cipher(NameEncryption::Obfuscate);
        for s in ["!", "a!b", "Zz09", "\u{A0}\u{FF}é", "日本語", "\u{10FFFF}x", "-._~ "] {
            let enc = c.encrypt_segment(s).unwrap();
            assert_eq!(c.decrypt_segment(&enc).unwrap(), s, "{enc}");
        }
        assert!(c.decrypt_segment("nodot").is_err());
        assert!(c.decrypt_segment("x1.abc").is_err());
        assert_eq!(c.decrypt_segment("!.raw").unwrap(), "raw");
    }

    #[test]
    fn unpad_reports_like_rclone() {
        let mut b = [5u8; 16];
        assert_eq!(pkcs7_unpad(&b).unwrap().len(), 11);
        b[15] = 17;
        assert_eq!(pkcs7_unpad(&b), Err(NameError::PaddingTooLong));
        b[15] = 0;
        assert_eq!(pkcs7_unpad(&b), Err(NameError::PaddingTooShort));
        b[15] = 3;
        b[14] = 4;
        assert_eq!(pkcs7_unpad(&b), Err(NameError::PaddingNotAllTheSame));
    }
}
