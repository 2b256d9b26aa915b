//! Errors of the crypt module: one enum, [`CryptError`], whose messages say what went wrong
//! and what the user can do about it. May import: std, `thiserror`.

use thiserror::Error;

/// Everything that can go wrong in [`crate::crypt`].
///
/// Content errors name the block (0-based) where they happened; name errors carry the
/// segment they were decrypting or encrypting.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptError {
    /// Fewer than 32 bytes: not even the rclone crypt header fits.
    #[error("not an rclone crypt file: shorter than the 32-byte header (file is too short to be encrypted)")]
    TooShort,

    /// The file does not start with `RCLONE\0\0`.
    #[error(
        "not an rclone crypt file: bad magic string (is this remote really encrypted, or was the file uploaded without crypt?)"
    )]
    BadMagic,

    /// The last block holds 16 bytes or fewer, so not even its tag and one data byte: the
    /// file was cut short.
    #[error(
        "truncated file: block {block} has only {len} bytes, less than a tag plus one byte (file has truncated block header)"
    )]
    TruncatedBlock {
        /// Index of the block (0-based).
        block: u64,
        /// How many bytes of the block were there.
        len: usize,
    },

    /// The Poly1305 tag of a block did not verify.
    #[error("block {block} failed authentication: wrong password or corrupted data")]
    CorruptBlock {
        /// Index of the block (0-based).
        block: u64,
    },

    /// A size that no rclone crypt file can have.
    #[error("{size} bytes is not a possible size of an rclone crypt file: {reason}")]
    ImpossibleSize {
        /// The encrypted size given.
        size: u64,
        /// Why it is impossible.
        reason: &'static str,
    },

    /// A block handed to the block-level API is empty or larger than a block.
    #[error("invalid block length {len}: a block holds 1 to {max} bytes")]
    InvalidBlockLength {
        /// Length given.
        len: usize,
        /// Largest allowed length.
        max: usize,
    },

    /// A name segment could not be decrypted (or, in `off` mode, is not one of ours).
    #[error("cannot decrypt file name segment {segment:?}: {reason}")]
    NameDecrypt {
        /// The encrypted segment (the whole name in `off` mode).
        segment: String,
        /// What was wrong with it.
        reason: NameError,
    },

    /// A plaintext segment too long for the name cipher (EME handles at most 128 blocks).
    #[error("file name segment {segment:?} is {len} bytes: rclone crypt can encrypt at most 2047 bytes per segment")]
    SegmentTooLong {
        /// The plaintext segment.
        segment: String,
        /// Its length in bytes.
        len: usize,
    },

    /// A segment whose encrypted form is longer than the storage allows.
    #[error(
        "file name segment {segment:?} encrypts to {encrypted_len} bytes, over the {limit}-byte limit: shorten it (with base32 names, at most 143 bytes per segment)"
    )]
    NameTooLong {
        /// The plaintext segment.
        segment: String,
        /// Length in bytes of its encrypted form.
        encrypted_len: usize,
        /// The limit it exceeds.
        limit: usize,
    },

    /// The password is missing from the configuration.
    #[error("password not set: an rclone crypt remote needs a password")]
    PasswordNotSet,

    /// `reveal` got something that is not URL-safe base64.
    #[error("base64 decode failed when revealing password - is it obscured? ({detail})")]
    RevealBase64 {
        /// Where the decoding failed.
        detail: String,
    },

    /// `reveal` got fewer than 16 bytes, so no IV.
    #[error("input too short when revealing password - is it obscured?")]
    RevealTooShort,

    /// The revealed password is not UTF-8.
    #[error("revealed password is not valid UTF-8 - is it obscured?")]
    RevealNotUtf8,

    /// A configuration value that rclone does not know.
    #[error("unknown value {value:?} for crypt option {option}")]
    UnknownOption {
        /// The option name, as in rclone's config.
        option: &'static str,
        /// The value given.
        value: String,
    },

    /// The operating system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// Why a name segment could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// A character that is not part of the encoding, or a bad length.
    #[error("illegal {encoding} data at input byte {offset}")]
    BadEncoding {
        /// `base32`, `base64` or `base32768`.
        encoding: &'static str,
        /// Byte offset of the problem (as Go reports it).
        offset: usize,
    },
    /// A base32 name ending in `=`.
    #[error("bad base32 filename encoding")]
    Base32Padding,
    /// Decoded length not a multiple of 16.
    #[error("not a multiple of blocksize")]
    NotMultipleOfBlockSize,
    /// Decoded to nothing.
    #[error("too short after decode")]
    TooShortAfterDecode,
    /// Decoded to more than 2048 bytes.
    #[error("too long after decode")]
    TooLongAfterDecode,
    /// PKCS#7 padding longer than a block.
    #[error("bad PKCS#7 padding - too long (wrong password or not an encrypted name)")]
    PaddingTooLong,
    /// PKCS#7 padding byte zero.
    #[error("bad PKCS#7 padding - too short (wrong password or not an encrypted name)")]
    PaddingTooShort,
    /// PKCS#7 padding bytes differ.
    #[error("bad PKCS#7 padding - not all the same (wrong password or not an encrypted name)")]
    PaddingNotAllTheSame,
    /// The decrypted bytes are not UTF-8.
    #[error("decrypted name is not valid UTF-8")]
    NotUtf8,
    /// `off` mode: the name lacks the suffix, or nothing but a version stands before it.
    #[error("not an encrypted file - no {suffix:?} suffix with a name before it")]
    MissingSuffix {
        /// The suffix expected.
        suffix: String,
    },
    /// `obfuscate` mode: no `<number>.` prefix.
    #[error("not an encrypted file: no \"<number>.\" prefix of an obfuscated name")]
    NotObfuscated,
}
