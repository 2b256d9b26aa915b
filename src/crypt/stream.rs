//! `std::io::Read` adapters over caller-supplied streams: [`EncryptReader`] turns plaintext
//! into an rclone crypt file, [`DecryptReader`] the reverse; both hold at most one block.
//! May import: std, `zeroize`, and `super::{content, error}`.

use std::{
    fmt,
    io::{self, ErrorKind, Read},
};

use zeroize::Zeroizing;

use super::{
    content::{BLOCK_DATA_SIZE, BLOCK_SIZE, ContentCipher, HEADER_SIZE, Nonce, header, parse_header},
    error::CryptError,
};

/// Reads until `buf[*filled..]` is full or the reader is at EOF; keeps progress in `filled`
/// so that an error can be retried. Returns whether EOF was seen.
fn fill<R: Read>(inner: &mut R, buf: &mut [u8], filled: &mut usize) -> io::Result<bool> {
    while *filled < buf.len() {
        match inner.read(&mut buf[*filled..]) {
            Ok(0) => return Ok(true),
            Ok(n) => *filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn copy_out(src: &[u8], pos: &mut usize, dst: &mut [u8]) -> usize {
    let n = (src.len() - *pos).min(dst.len());
    dst[..n].copy_from_slice(&src[*pos..*pos + n]);
    *pos += n;
    n
}

/// A `CryptError` as an `io::Error` of kind `InvalidData` (the `CryptError` is its source:
/// get it back with `err.get_ref()` and `downcast_ref::<CryptError>()`).
fn io_error(err: CryptError) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, err)
}

/// Encrypts what it reads from `inner`: yields the header, then one sealed block per
/// 64 KiB of plaintext.
pub struct EncryptReader<R> {
    inner: R,
    cipher: ContentCipher,
    nonce: Nonce,
    block: u64,
    plain: Zeroizing<Vec<u8>>,
    plain_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R> fmt::Debug for EncryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptReader")
            .field("nonce", &self.nonce)
            .field("block", &self.block)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<R: Read> EncryptReader<R> {
    /// Encrypts `inner` with `nonce`. Give every file a fresh nonce
    /// ([`EncryptReader::with_random_nonce`]); a fixed one is for tests and `cryptcheck`.
    #[must_use]
    pub fn new(inner: R, cipher: &ContentCipher, nonce: Nonce) -> Self {
        let mut out = Vec::with_capacity(BLOCK_SIZE);
        out.extend_from_slice(&header(&nonce));
        Self {
            inner,
            cipher: cipher.clone(),
            nonce,
            block: 0,
            plain: Zeroizing::new(vec![0u8; BLOCK_DATA_SIZE]),
            plain_len: 0,
            out,
            out_pos: 0,
            eof: false,
        }
    }

    /// Encrypts `inner` with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`CryptError::Random`] if the operating system has no random bytes.
    pub fn with_random_nonce(inner: R, cipher: &ContentCipher) -> Result<Self, CryptError> {
        Ok(Self::new(inner, cipher, Nonce::random()?))
    }

    /// The nonce of the file being produced.
    #[must_use]
    pub const fn nonce(&self) -> Nonce {
        self.nonce
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out.len() {
                return Ok(copy_out(&self.out, &mut self.out_pos, buf));
            }
            if self.eof {
                return Ok(0);
            }
            self.eof = fill(&mut self.inner, &mut self.plain, &mut self.plain_len)?;
            self.out.clear();
            self.out_pos = 0;
            if self.plain_len > 0 {
                self.cipher
                    .encrypt_block(&self.nonce, self.block, &self.plain[..self.plain_len], &mut self.out)
                    .map_err(io_error)?;
                self.block += 1;
                self.plain_len = 0;
            }
        }
    }
}

/// Decrypts the rclone crypt file it reads from `inner`.
///
/// Each block's plaintext is returned only after its tag verified. Errors are `io::Error`s of kind `InvalidData`
/// wrapping a [`CryptError`]; after one, every later read fails the same way.
///
/// rclone crypt has no file-level MAC: dropping whole trailing blocks cannot be detected
/// (compare the size with the expected one where you know it).
pub struct DecryptReader<R> {
    inner: R,
    cipher: ContentCipher,
    nonce: Option<Nonce>,
    header: [u8; HEADER_SIZE],
    block: u64,
    sealed: Vec<u8>,
    filled: usize,
    out: Zeroizing<Vec<u8>>,
    out_pos: usize,
    eof: bool,
    failed: Option<CryptError>,
}

impl<R> fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptReader")
            .field("nonce", &self.nonce)
            .field("block", &self.block)
            .field("eof", &self.eof)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptReader<R> {
    /// Decrypts a whole file read from `inner`, header first.
    #[must_use]
    pub fn new(inner: R, cipher: &ContentCipher) -> Self {
        Self {
            inner,
            cipher: cipher.clone(),
            nonce: None,
            header: [0u8; HEADER_SIZE],
            block: 0,
            sealed: vec![0u8; BLOCK_SIZE],
            filled: 0,
            out: Zeroizing::new(Vec::with_capacity(BLOCK_DATA_SIZE)),
            out_pos: 0,
            eof: false,
            failed: None,
        }
    }

    /// Decrypts from block `block` on, with `inner` positioned at that block's encrypted
    /// offset and `nonce` taken from the file's header (see
    /// [`super::content::block_position`]).
    #[must_use]
    pub fn starting_at_block(inner: R, cipher: &ContentCipher, nonce: Nonce, block: u64) -> Self {
        let mut reader = Self::new(inner, cipher);
        reader.nonce = Some(nonce);
        reader.block = block;
        reader
    }

    /// The file's nonce, once the header has been read.
    #[must_use]
    pub const fn nonce(&self) -> Option<Nonce> {
        self.nonce
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&mut self, err: CryptError) -> io::Error {
        self.failed = Some(err.clone());
        io_error(err)
    }

    /// Reads the next block into `out`; `Ok(false)` at the clean end of the file.
    fn next_block(&mut self) -> io::Result<bool> {
        let nonce = if let Some(nonce) = self.nonce {
            nonce
        } else {
            if fill(&mut self.inner, &mut self.header, &mut self.filled)? {
                return Err(self.fail(CryptError::TooShort));
            }
            self.filled = 0;
            let nonce = parse_header(&self.header).map_err(|e| self.fail(e))?;
            self.nonce = Some(nonce);
            nonce
        };
        let at_eof = fill(&mut self.inner, &mut self.sealed, &mut self.filled)?;
        if self.filled == 0 {
            return Ok(false);
        }
        self.out.clear();
        self.out_pos = 0;
        let opened = self.cipher.decrypt_block(&nonce, self.block, &self.sealed[..self.filled], &mut self.out);
        self.filled = 0;
        opened.map_err(|e| self.fail(e))?;
        self.block += 1;
        if at_eof {
            self.eof = true;
        }
        Ok(true)
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(io_error(err.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out.len() {
                return Ok(copy_out(&self.out, &mut self.out_pos, buf));
            }
            if self.eof || !self.next_block()? {
                self.eof = true;
                return Ok(0);
            }
        }
    }
}
