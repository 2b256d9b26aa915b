//! File content: the 32-byte header (`RCLONE\0\0` + nonce), 64 KiB blocks sealed with
//! XSalsa20-Poly1305 (tag first), the per-block nonce counter, size arithmetic, and the
//! push-style [`Encryptor`] / [`Decryptor`] that work in constant memory.
//! May import: std, `crypto_secretbox`, `getrandom`, `zeroize`, and `super::{error, keys}`.

use std::fmt;

use crypto_secretbox::{
    XSalsa20Poly1305,
    aead::{AeadInPlace, KeyInit},
};
use zeroize::Zeroizing;

use super::{error::CryptError, keys::Keys};

/// The 8 bytes every rclone crypt file starts with.
pub const MAGIC: [u8; 8] = *b"RCLONE\0\0";
/// Size of the nonce in the header.
pub const NONCE_SIZE: usize = 24;
/// Size of the file header: magic + nonce.
pub const HEADER_SIZE: usize = MAGIC.len() + NONCE_SIZE;
/// Plaintext bytes per block (only the last block may hold fewer, and never zero).
pub const BLOCK_DATA_SIZE: usize = 64 * 1024;
/// Size of the Poly1305 tag that starts every block.
pub const BLOCK_TAG_SIZE: usize = 16;
/// Size of a full encrypted block.
pub const BLOCK_SIZE: usize = BLOCK_DATA_SIZE + BLOCK_TAG_SIZE;

const BLOCK_DATA_SIZE_U64: u64 = BLOCK_DATA_SIZE as u64;
const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;
const HEADER_SIZE_U64: u64 = HEADER_SIZE as u64;
const BLOCK_TAG_SIZE_U64: u64 = BLOCK_TAG_SIZE as u64;

/// The 24-byte nonce of a file, a little-endian counter: block `k` is sealed with
/// `nonce + k` (carry through all 24 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; NONCE_SIZE]);

impl Nonce {
    /// A nonce from its bytes (as stored in the header).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; NONCE_SIZE]) -> Self {
        Self(bytes)
    }

    /// A fresh random nonce. Use one per file, never twice.
    ///
    /// # Errors
    ///
    /// [`CryptError::Random`] if the operating system has no random bytes to give.
    pub fn random() -> Result<Self, CryptError> {
        let mut bytes = [0u8; NONCE_SIZE];
        getrandom::fill(&mut bytes).map_err(|e| CryptError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The bytes, as stored in the header.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; NONCE_SIZE] {
        &self.0
    }

    /// The nonce of block `block`: `self + block`, little-endian over all 24 bytes, wrapping
    /// at 2^192 as rclone's does.
    #[must_use]
    pub fn for_block(&self, block: u64) -> Self {
        let mut out = self.0;
        let mut carry = block;
        for byte in &mut out {
            if carry == 0 {
                break;
            }
            // carry < 2^64, so carry + 255 fits in u128.
            let sum = u128::from(*byte) + u128::from(carry);
            *byte = (sum & 0xff) as u8;
            carry = u64::try_from(sum >> 8).unwrap_or(u64::MAX);
        }
        Self(out)
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret: it is stored in clear in the file header.
        f.write_str("Nonce(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The 32-byte header of a file sealed with `nonce`.
#[must_use]
pub fn header(nonce: &Nonce) -> [u8; HEADER_SIZE] {
    let mut out = [0u8; HEADER_SIZE];
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    out[MAGIC.len()..].copy_from_slice(nonce.as_bytes());
    out
}

/// Reads the nonce from the first 32 bytes of a file.
///
/// # Errors
///
/// [`CryptError::TooShort`] if `header` has fewer than 32 bytes, [`CryptError::BadMagic`] if
/// it does not start with `RCLONE\0\0`.
pub fn parse_header(header: &[u8]) -> Result<Nonce, CryptError> {
    let header = header.get(..HEADER_SIZE).ok_or(CryptError::TooShort)?;
    if header[..MAGIC.len()] != MAGIC {
        return Err(CryptError::BadMagic);
    }
    let mut nonce = [0u8; NONCE_SIZE];
    nonce.copy_from_slice(&header[MAGIC.len()..]);
    Ok(Nonce(nonce))
}

/// Size of the encrypted file for `plain` bytes of plaintext:
/// `32 + plain + 16 * ceil(plain / 65536)`. Saturates at `u64::MAX` for absurd sizes.
#[must_use]
pub const fn encrypted_size(plain: u64) -> u64 {
    let blocks = plain.div_ceil(BLOCK_DATA_SIZE_U64);
    HEADER_SIZE_U64.saturating_add(plain).saturating_add(blocks.saturating_mul(BLOCK_TAG_SIZE_U64))
}

/// Size of the plaintext of an encrypted file of `encrypted` bytes.
///
/// # Errors
///
/// [`CryptError::ImpossibleSize`] if no plaintext encrypts to that size: shorter than the
/// header, or a last block of 1 to 16 bytes.
pub const fn decrypted_size(encrypted: u64) -> Result<u64, CryptError> {
    if encrypted < HEADER_SIZE_U64 {
        return Err(CryptError::ImpossibleSize { size: encrypted, reason: "shorter than the 32-byte header" });
    }
    let body = encrypted - HEADER_SIZE_U64;
    let full = body / BLOCK_SIZE_U64;
    let rest = body % BLOCK_SIZE_U64;
    if rest != 0 && rest <= BLOCK_TAG_SIZE_U64 {
        return Err(CryptError::ImpossibleSize {
            size: encrypted,
            reason: "the last block is too short to hold a tag and data",
        });
    }
    let last = if rest == 0 { 0 } else { rest - BLOCK_TAG_SIZE_U64 };
    Ok(full * BLOCK_DATA_SIZE_U64 + last)
}

/// Where a plaintext offset lives in the encrypted file (for ranged reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPosition {
    /// Index of the block holding the offset.
    pub block: u64,
    /// Offset of that block in the encrypted file.
    pub encrypted_offset: u64,
    /// Plaintext bytes to drop from the start of the decrypted block.
    pub skip: usize,
}

/// Maps a plaintext offset to its block, the block's encrypted offset, and the bytes to
/// skip. Decrypt from there with [`Decryptor::starting_at_block`] (nonce from the header).
#[must_use]
pub const fn block_position(plain_offset: u64) -> BlockPosition {
    let block = plain_offset / BLOCK_DATA_SIZE_U64;
    #[allow(clippy::cast_possible_truncation)] // < 65536
    let skip = (plain_offset % BLOCK_DATA_SIZE_U64) as usize;
    BlockPosition { block, encrypted_offset: HEADER_SIZE_U64 + block * BLOCK_SIZE_U64, skip }
}

/// Seals and opens single blocks with the data key. Cheap to clone; the key copy is wiped on
/// drop.
#[derive(Clone)]
pub struct ContentCipher {
    aead: XSalsa20Poly1305,
}

impl fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentCipher { <redacted> }")
    }
}

impl ContentCipher {
    /// A content cipher using the data key of `keys`.
    #[must_use]
    pub fn new(keys: &Keys) -> Self {
        Self { aead: XSalsa20Poly1305::new(keys.data_key().into()) }
    }

    /// Seals block number `block` (0-based) of the file whose header nonce is `nonce`,
    /// appending `tag || ciphertext` (16 + `plaintext.len()` bytes) to `out`.
    ///
    /// # Errors
    ///
    /// [`CryptError::InvalidBlockLength`] if `plaintext` is empty or longer than
    /// [`BLOCK_DATA_SIZE`].
    ///
    /// # Panics
    ///
    /// Never: sealing without associated data cannot fail.
    pub fn encrypt_block(
        &self,
        nonce: &Nonce,
        block: u64,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        if plaintext.is_empty() || plaintext.len() > BLOCK_DATA_SIZE {
            return Err(CryptError::InvalidBlockLength { len: plaintext.len(), max: BLOCK_DATA_SIZE });
        }
        let start = out.len();
        out.resize(start + BLOCK_TAG_SIZE, 0);
        out.extend_from_slice(plaintext);
        let block_nonce = nonce.for_block(block);
        let tag = self
            .aead
            .encrypt_in_place_detached(block_nonce.as_bytes().into(), b"", &mut out[start + BLOCK_TAG_SIZE..])
            .expect("XSalsa20-Poly1305 fails only with associated data, and there is none");
        out[start..start + BLOCK_TAG_SIZE].copy_from_slice(&tag);
        Ok(())
    }

    /// Opens block number `block` (0-based) of the file whose header nonce is `nonce`:
    /// `ciphertext` is the whole block, tag first (17 to [`BLOCK_SIZE`] bytes). Appends the
    /// plaintext to `out`; on error `out` is left as it was.
    ///
    /// # Errors
    ///
    /// [`CryptError::TruncatedBlock`] if `ciphertext` has 16 bytes or fewer,
    /// [`CryptError::InvalidBlockLength`] if it is longer than a block, and
    /// [`CryptError::CorruptBlock`] if the tag does not verify (wrong password, or the data
    /// was changed, reordered or cut).
    pub fn decrypt_block(
        &self,
        nonce: &Nonce,
        block: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptError> {
        if ciphertext.len() <= BLOCK_TAG_SIZE {
            return Err(CryptError::TruncatedBlock { block, len: ciphertext.len() });
        }
        if ciphertext.len() > BLOCK_SIZE {
            return Err(CryptError::InvalidBlockLength {
                len: ciphertext.len() - BLOCK_TAG_SIZE,
                max: BLOCK_DATA_SIZE,
            });
        }
        let (tag, body) = ciphertext.split_at(BLOCK_TAG_SIZE);
        let start = out.len();
        out.extend_from_slice(body);
        let block_nonce = nonce.for_block(block);
        let opened =
            self.aead.decrypt_in_place_detached(block_nonce.as_bytes().into(), b"", &mut out[start..], tag.into());
        if opened.is_err() {
            out.truncate(start);
            return Err(CryptError::CorruptBlock { block });
        }
        Ok(())
    }
}

/// Push-style encryption of one file.
///
/// Feed plaintext with [`Encryptor::update`], end with [`Encryptor::finish`]; each call
/// appends the ciphertext that became ready (the header first). Buffers at most one block.
pub struct Encryptor {
    cipher: ContentCipher,
    nonce: Nonce,
    block: u64,
    header_written: bool,
    pending: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("nonce", &self.nonce)
            .field("block", &self.block)
            .field("pending_len", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a file sealed with `nonce`. Give each file a fresh nonce
    /// ([`Encryptor::with_random_nonce`]); a fixed one is for tests and `cryptcheck`.
    #[must_use]
    pub fn new(cipher: &ContentCipher, nonce: Nonce) -> Self {
        Self {
            cipher: cipher.clone(),
            nonce,
            block: 0,
            header_written: false,
            pending: Zeroizing::new(Vec::with_capacity(BLOCK_DATA_SIZE)),
        }
    }

    /// Starts a file with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`CryptError::Random`] if the operating system has no random bytes.
    pub fn with_random_nonce(cipher: &ContentCipher) -> Result<Self, CryptError> {
        Ok(Self::new(cipher, Nonce::random()?))
    }

    /// The nonce of this file.
    #[must_use]
    pub const fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// Feeds plaintext; appends the header (on the first call) and every block completed by
    /// `input` to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        self.write_header(out);
        while !input.is_empty() {
            let take = (BLOCK_DATA_SIZE - self.pending.len()).min(input.len());
            if self.pending.is_empty() && take == BLOCK_DATA_SIZE {
                // A whole block straight from the input, no copy.
                seal(&self.cipher, &self.nonce, &mut self.block, &input[..take], out);
            } else {
                self.pending.extend_from_slice(&input[..take]);
                if self.pending.len() == BLOCK_DATA_SIZE {
                    seal(&self.cipher, &self.nonce, &mut self.block, &self.pending, out);
                    self.pending.fill(0);
                    self.pending.clear();
                }
            }
            input = &input[take..];
        }
    }

    /// Ends the file: appends the header (if no `update` came before) and the last, partial
    /// block (if any).
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.write_header(out);
        if !self.pending.is_empty() {
            seal(&self.cipher, &self.nonce, &mut self.block, &self.pending, out);
        }
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&header(&self.nonce));
            self.header_written = true;
        }
    }
}

/// Seals block `*block` and advances the counter.
fn seal(cipher: &ContentCipher, nonce: &Nonce, block: &mut u64, plaintext: &[u8], out: &mut Vec<u8>) {
    cipher.encrypt_block(nonce, *block, plaintext, out).expect("callers pass 1..=BLOCK_DATA_SIZE bytes");
    *block += 1;
}

/// Push-style decryption of one file.
///
/// Feed ciphertext with [`Decryptor::update`], end with [`Decryptor::finish`]. Each block's
/// plaintext is appended to `out` as soon as it is authenticated. Buffers at most one block.
/// After an error every later call returns it again.
///
/// rclone crypt has no file-level MAC: dropping whole trailing blocks cannot be detected
/// (compare the size with the expected one where you know it).
pub struct Decryptor {
    cipher: ContentCipher,
    nonce: Option<Nonce>,
    block: u64,
    pending: Vec<u8>,
    failed: Option<CryptError>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("nonce", &self.nonce)
            .field("block", &self.block)
            .field("pending_len", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Starts decrypting a whole file, header first.
    #[must_use]
    pub fn new(cipher: &ContentCipher) -> Self {
        Self { cipher: cipher.clone(), nonce: None, block: 0, pending: Vec::with_capacity(BLOCK_SIZE), failed: None }
    }

    /// Starts decrypting at block `block` of a file whose header (already read, see
    /// [`parse_header`]) holds `nonce`: feed the file from offset
    /// [`BlockPosition::encrypted_offset`].
    #[must_use]
    pub fn starting_at_block(cipher: &ContentCipher, nonce: Nonce, block: u64) -> Self {
        Self {
            cipher: cipher.clone(),
            nonce: Some(nonce),
            block,
            pending: Vec::with_capacity(BLOCK_SIZE),
            failed: None,
        }
    }

    /// The file's nonce, once the header has been read.
    #[must_use]
    pub const fn nonce(&self) -> Option<Nonce> {
        self.nonce
    }

    /// Index of the next block to be decrypted.
    #[must_use]
    pub const fn next_block(&self) -> u64 {
        self.block
    }

    /// Feeds ciphertext; appends the plaintext of every block it completes to `out`.
    ///
    /// # Errors
    ///
    /// [`CryptError::BadMagic`] once the 32-byte header is in and wrong;
    /// [`CryptError::CorruptBlock`] when a full block does not authenticate. Blocks
    /// before the bad one have already been appended.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !input.is_empty() {
            let result = match self.nonce {
                None => {
                    let take = (HEADER_SIZE - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.pending.len() < HEADER_SIZE {
                        continue;
                    }
                    let parsed = parse_header(&self.pending);
                    self.pending.clear();
                    parsed.map(|nonce| self.nonce = Some(nonce))
                }
                Some(nonce) => {
                    let take = (BLOCK_SIZE - self.pending.len()).min(input.len());
                    if self.pending.is_empty() && take == BLOCK_SIZE {
                        // A whole block straight from the input, no copy.
                        let block = &input[..take];
                        input = &input[take..];
                        open(&self.cipher, &nonce, &mut self.block, block, out)
                    } else {
                        self.pending.extend_from_slice(&input[..take]);
                        input = &input[take..];
                        if self.pending.len() < BLOCK_SIZE {
                            continue;
                        }
                        let opened = open(&self.cipher, &nonce, &mut self.block, &self.pending, out);
                        self.pending.clear();
                        opened
                    }
                }
            };
            if let Err(err) = result {
                self.failed = Some(err.clone());
                return Err(err);
            }
        }
        Ok(())
    }

    /// Ends the file: decrypts the last, partial block.
    ///
    /// # Errors
    ///
    /// [`CryptError::TooShort`] if the header never arrived whole,
    /// [`CryptError::TruncatedBlock`] if the last block has 16 bytes or fewer,
    /// [`CryptError::CorruptBlock`] if it does not authenticate, or the error an earlier
    /// `update` returned.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let Some(nonce) = self.nonce else {
            return Err(CryptError::TooShort);
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        open(&self.cipher, &nonce, &mut self.block, &self.pending, out)
    }
}

/// Opens block `*block` and advances the counter on success.
fn open(
    cipher: &ContentCipher,
    nonce: &Nonce,
    block: &mut u64,
    ciphertext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptError> {
    cipher.decrypt_block(nonce, *block, ciphertext, out)?;
    *block += 1;
    Ok(())
}
