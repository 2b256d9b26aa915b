//! Re-openable upload sources and the digests (MD5, SHA-256) uploads send; may import std, tokio, `md-5`, `sha2`, `base64`, `async-trait` and `remote::RangeSource`.
//!
//! A retried upload must send the same bytes again, so single-request
//! uploads take a [`BodySource`] that can be opened afresh, and multipart
//! parts are kept as [`Bytes`] until their part is stored.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
};

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// A reader of upload data.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// Data to upload that can be read again from the start (for retries, and
/// for hashing before sending).
#[async_trait::async_trait]
pub trait BodySource: Send + Sync {
    /// A fresh reader positioned at the first byte.
    ///
    /// # Errors
    /// The data cannot be opened.
    async fn open(&self) -> io::Result<Reader>;
}

/// A file on disk as a [`BodySource`].
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// The file at `path`.
    #[must_use]
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_owned() }
    }
}

#[async_trait::async_trait]
impl BodySource for FileSource {
    async fn open(&self) -> io::Result<Reader> {
        Ok(Box::pin(tokio::fs::File::open(&self.path).await?))
    }
}

/// A closure returning a fresh reader, as a [`BodySource`].
pub struct FnSource<F>(pub F);

impl<F> std::fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnSource")
    }
}

#[async_trait::async_trait]
impl<F, Fut> BodySource for FnSource<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = io::Result<Reader>> + Send,
{
    async fn open(&self) -> io::Result<Reader> {
        (self.0)().await
    }
}

/// In-memory bytes as a [`BodySource`].
#[derive(Debug, Clone)]
pub struct BytesSource(pub Bytes);

#[async_trait::async_trait]
impl BodySource for BytesSource {
    async fn open(&self) -> io::Result<Reader> {
        Ok(Box::pin(io::Cursor::new(self.0.clone())))
    }
}

/// Digests of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) md5: [u8; 16],
    pub(crate) sha256: Option<[u8; 32]>,
}

impl Digests {
    /// The `Content-MD5` header value.
    pub(crate) fn content_md5(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.md5)
    }

    /// The SHA-256 as lower-case hex, when computed.
    pub(crate) fn sha256_hex(&self) -> Option<String> {
        self.sha256.map(|h| hex(&h))
    }
}

/// The MD5 of the concatenated `digests`, in lower-case hex: with each digest a part's MD5, the
/// `ETag` of the object made of those parts, without its `-<count>`.
pub(crate) fn md5_of_md5s<'a>(digests: impl IntoIterator<Item = &'a [u8; 16]>) -> String {
    let mut md5 = Md5::new();
    for d in digests {
        md5.update(d);
    }
    hex(&md5.finalize())
}

/// An MD5 written as 32 hex digits (an `ETag` without its quotes); `None` for anything else.
pub(crate) fn md5_from_hex(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 32 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut raw = [0u8; 16];
    for (b, pair) in raw.iter_mut().zip(s.chunks(2)) {
        *b = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(raw)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Digests of in-memory data; bodies of a megabyte or more are hashed on a
/// blocking thread so the runtime keeps serving other transfers.
pub(crate) async fn digest_bytes(data: &Bytes, sha256: bool) -> Digests {
    let hash = move |data: &[u8]| Digests {
        md5: Md5::digest(data).into(),
        sha256: sha256.then(|| Sha256::digest(data).into()),
    };
    if data.len() < 1 << 20 {
        return hash(data);
    }
    let owned = data.clone();
    match tokio::task::spawn_blocking(move || hash(&owned)).await {
        Ok(d) => d,
        Err(_) => hash(data),
    }
}

/// The SHA-256 of in-memory data (off the async threads from a megabyte on).
pub(crate) async fn sha256_bytes(data: &Bytes) -> [u8; 32] {
    if data.len() < 1 << 20 {
        return Sha256::digest(data).into();
    }
    let owned = data.clone();
    match tokio::task::spawn_blocking(move || Sha256::digest(&owned).into()).await {
        Ok(d) => d,
        Err(_) => Sha256::digest(data).into(),
    }
}

/// The SHA-256 of exactly `len` bytes of `source`.
///
/// # Errors
/// The source cannot be opened or read, or holds fewer than `len` bytes.
pub(crate) async fn sha256_source(source: &dyn BodySource, len: u64) -> io::Result<[u8; 32]> {
    let mut sha = Sha256::new();
    read_source(source, len, |chunk| sha.update(chunk)).await?;
    Ok(sha.finalize().into())
}

/// Reads exactly `len` bytes of `source`, handing each chunk to `each`.
async fn read_source(source: &dyn BodySource, len: u64, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let mut reader = source.open().await?;
    let mut buf = vec![0u8; usize::try_from(len.min(256 * 1024)).unwrap_or(256 * 1024)];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = reader.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("source ended {left} bytes before its stated size of {len}"),
            ));
        }
        each(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// `len` bytes from `offset` of a [`RangeSource`] as a [`BodySource`].
pub(crate) struct RangeBody {
    /// The file.
    pub(crate) source: std::sync::Arc<dyn crate::remote::RangeSource>,
    /// Where the part starts.
    pub(crate) offset: u64,
    /// Its length.
    pub(crate) len: u64,
}

#[async_trait::async_trait]
impl BodySource for RangeBody {
    async fn open(&self) -> io::Result<Reader> {
        self.source.open_at(self.offset, self.len).await
    }
}

/// Reads exactly `len` bytes of `source` and hashes them.
///
/// # Errors
/// The source cannot be opened or read, or holds fewer than `len` bytes.
pub(crate) async fn digest_source(source: &dyn BodySource, len: u64, sha256: bool) -> io::Result<Digests> {
    let mut md5 = Md5::new();
    let mut sha = sha256.then(Sha256::new);
    read_source(source, len, |chunk| {
        md5.update(chunk);
        if let Some(s) = sha.as_mut() {
            s.update(chunk);
        }
    })
    .await?;
    Ok(Digests { md5: md5.finalize().into(), sha256: sha.map(|s| s.finalize().into()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_match_known_values() {
        let d = digest_bytes(&Bytes::from_static(b""), true).await;
        assert_eq!(hex(&d.md5), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(d.content_md5(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(d.sha256_hex().unwrap(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let big = Bytes::from(vec![7u8; 3 << 20]);
        let a = digest_bytes(&big, true).await;
        let b = digest_source(&BytesSource(big.clone()), big.len() as u64, true).await.unwrap();
        assert_eq!(a, b);
        assert!(digest_bytes(&big, false).await.sha256.is_none());
    }

    #[tokio::test]
    async fn short_source_is_refused() {
        let err = digest_source(&BytesSource(Bytes::from_static(b"abc")), 4, false).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // A longer source is cut at the stated size.
        let d = digest_source(&BytesSource(Bytes::from_static(b"abcdef")), 3, false).await.unwrap();
        assert_eq!(d, digest_bytes(&Bytes::from_static(b"abc"), false).await);
    }

    #[tokio::test]
    async fn closures_and_files_are_sources() {
        let src = FnSource(|| async { Ok(Box::pin(io::Cursor::new(b"xyz".to_vec())) as Reader) });
        let mut s = String::new();
        src.open().await.unwrap().read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "xyz");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"file body").unwrap();
        let mut s = String::new();
        FileSource::new(&p).open().await.unwrap().read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "file body");
    }
}
