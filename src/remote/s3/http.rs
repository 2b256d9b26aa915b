//! HTTP plumbing of the S3 client: the pooled hyper client over rustls (ring provider, system roots plus an optional CA file), request bodies (empty, bytes, a streamed source checked against its digest, or a source framed `aws-chunked` with chained chunk signatures as it is read), streamed response bodies with an idle timeout, and the progress watchdog; may import std, tokio, tokio-util (reads into spare capacity), bytes, hyper, hyper-util, hyper-rustls, rustls, `md-5`, `s3sig` (the chunk signer and framing) and the sibling `config`, `error` and `source` modules.

use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use md5::{Digest as _, Md5};
use rustls_pki_types::{CertificateDer, pem::PemObject as _};
use tokio::{
    io::{AsyncRead, ReadBuf},
    time::{Instant, Sleep},
};

use super::{config::S3Config, error::S3Error, source::Reader};
use crate::s3sig::{ChunkSigner, chunk_header, trailer_section};

/// The pooled HTTP(S) client.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// Bytes read from an upload source per body frame.
const FRAME: usize = 128 * 1024;

/// Builds the pooled client: TCP connect timeout, keep-alive, and rustls with
/// the ring provider trusting the system roots and `ca_file`.
pub(crate) fn build_client(cfg: &S3Config) -> Result<HttpClient, S3Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = &cfg.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| S3Error::config(format!("CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(S3Error::config(format!("CA file {} holds no PEM certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| S3Error::config(format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| S3Error::config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(cfg.max_idle_per_host)
        .build(https))
}

/// A counter bumped whenever a request moves data either way; the watchdog
/// times a request out when it stays still.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU64);

impl Progress {
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `fut` until it ends, or `None` once `progress` has not moved for
/// `timeout`.
pub(crate) async fn idle_timeout<F: Future>(fut: F, progress: &Progress, timeout: Duration) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let tick = (timeout / 4).max(Duration::from_millis(10));
    let mut seen = progress.get();
    let mut still_since = Instant::now();
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep(tick) => {
                let now = progress.get();
                if now == seen {
                    if still_since.elapsed() >= timeout {
                        return None;
                    }
                } else {
                    seen = now;
                    still_since = Instant::now();
                }
            }
        }
    }
}

/// Why an upload body stopped: reading the source failed, or what was read
/// differs from what was hashed before the request. Carried inside the
/// `io::Error` hyper reports, so the client can tell it from network errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct SourceFailure(pub(crate) String);

/// The body of a request.
pub(crate) struct RequestBody {
    inner: Inner,
    progress: Option<Arc<Progress>>,
}

enum Inner {
    Empty,
    Full(Option<Bytes>),
    Reader { reader: Reader, remaining: u64, len: u64, md5: Option<Md5>, expected_md5: Option<[u8; 16]> },
    Chunked(Box<Chunked>),
}

/// Length of `;chunk-signature=`, a hex signature and CRLF in a chunk header.
const CHUNK_HEADER_TAIL: usize = 17 + 64 + 2;

/// A source sent `aws-chunked` (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): each
/// chunk is read, signed with the chain and framed as it goes, so the source
/// is read once.
struct Chunked {
    reader: Reader,
    signer: ChunkSigner,
    /// Decoded length (`x-amz-decoded-content-length`).
    len: u64,
    /// Encoded length (`Content-Length`).
    encoded: u64,
    /// Data bytes of every chunk but the last.
    chunk: usize,
    /// Data bytes not yet framed.
    remaining: u64,
    /// The chunk being read: header room, then the data read so far (CRLF added when full).
    buf: BytesMut,
    /// Emptied handles on the buffers of chunks handed to hyper: one whose chunk has been sent
    /// is taken back for a later chunk, so a part is framed in a few buffers, neither allocated
    /// nor zeroed per chunk.
    sent: VecDeque<BytesMut>,
    /// Header room at the front of `buf`.
    head: usize,
    /// Data bytes of the chunk being read (0: none started).
    want: usize,
    /// The final chunk has been sent.
    done: bool,
}

/// How many buffers of sent chunks a body keeps to take back (hyper holds a few in its queue).
const CHUNK_BUFFERS: usize = 4;

impl Chunked {
    /// An empty buffer for `total` bytes: a sent chunk's, taken back, else a new one.
    fn take_buffer(&mut self, total: usize) -> BytesMut {
        match self.sent.iter_mut().position(|b| b.try_reclaim(total)) {
            Some(i) => self.sent.remove(i).unwrap_or_default(),
            None => BytesMut::with_capacity(total),
        }
    }

    /// Polls for the next framed chunk.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, io::Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if self.remaining == 0 {
                // A source longer than stated would be stored cut short: look for one more byte.
                let mut probe = [0u8; 1];
                let mut rb = ReadBuf::new(&mut probe);
                match self.reader.as_mut().poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Some(Err(source_error(format!("reading the source failed: {e}")))));
                    }
                    Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                        return Poll::Ready(Some(Err(source_error(format!(
                            "source is longer than its stated size of {}",
                            self.len
                        )))));
                    }
                    Poll::Ready(Ok(())) => {}
                }
                self.done = true;
                let last = self.signer.sign_chunk(&[]);
                let mut frame = chunk_header(0, &last.signature);
                frame.push_str(&trailer_section(&[], None));
                return Poll::Ready(Some(Ok(Bytes::from(frame))));
            }
            if self.want == 0 {
                self.want = usize::try_from(self.remaining.min(self.chunk as u64)).unwrap_or(self.chunk);
                self.head = format!("{:x}", self.want).len() + CHUNK_HEADER_TAIL;
                self.buf = self.take_buffer(self.head + self.want + 2);
                self.buf.put_bytes(0, self.head);
            }
            let (head, want) = (self.head, self.want);
            let filled = self.buf.len() - head;
            if filled < want {
                let left = self.remaining - filled as u64;
                match poll_source(self.reader.as_mut(), cx, &mut self.buf, want - filled, left, self.len) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(_)) => continue,
                }
            }
            let sig = self.signer.sign_chunk(&self.buf[head..head + want]);
            let header = chunk_header(want, &sig.signature);
            debug_assert_eq!(header.len(), head);
            self.buf[..head].copy_from_slice(header.as_bytes());
            self.buf.put_slice(b"\r\n");
            let frame = self.buf.split().freeze();
            if self.sent.len() == CHUNK_BUFFERS {
                self.sent.pop_front();
            }
            self.sent.push_back(std::mem::take(&mut self.buf));
            self.remaining -= want as u64;
            self.want = 0;
            return Poll::Ready(Some(Ok(frame)));
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Empty => f.write_str("RequestBody::Empty"),
            Inner::Full(b) => write!(f, "RequestBody::Full({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Inner::Reader { len, .. } => write!(f, "RequestBody::Reader({len} bytes)"),
            Inner::Chunked(c) => write!(f, "RequestBody::Chunked({} bytes)", c.len),
        }
    }
}

impl RequestBody {
    pub(crate) fn empty() -> Self {
        Self { inner: Inner::Empty, progress: None }
    }

    pub(crate) fn bytes(data: Bytes) -> Self {
        Self { inner: Inner::Full(Some(data)), progress: None }
    }

    /// `len` bytes of `reader`, whose MD5 must be `expected_md5`: a source
    /// that changed since it was hashed fails the request instead of
    /// storing a mix.
    pub(crate) fn reader(reader: Reader, len: u64, expected_md5: [u8; 16]) -> Self {
        Self {
            inner: Inner::Reader {
                reader,
                remaining: len,
                len,
                md5: Some(Md5::new()),
                expected_md5: Some(expected_md5),
            },
            progress: None,
        }
    }

    /// `len` bytes of `reader`, not hashed again: the payload's signed SHA-256, which the
    /// server checks, catches a source that changed since it was hashed.
    pub(crate) fn reader_signed(reader: Reader, len: u64) -> Self {
        Self { inner: Inner::Reader { reader, remaining: len, len, md5: None, expected_md5: None }, progress: None }
    }

    /// `len` bytes of `reader` framed `aws-chunked` in chunks of `chunk` bytes (the last one
    /// shorter; at least 8 KiB each, as S3 wants), each signed by `signer`, whose chain starts
    /// at the seed signature of this very request. The body is
    /// [`Streaming::Signed`](crate::s3sig::Streaming)`.encoded_length(len, chunk)` bytes long.
    /// A source that ends early or holds more than `len` bytes fails the request.
    pub(crate) fn chunked(reader: Reader, len: u64, signer: ChunkSigner, chunk: usize, encoded: u64) -> Self {
        Self {
            inner: Inner::Chunked(Box::new(Chunked {
                reader,
                signer,
                len,
                encoded,
                chunk: chunk.max(1),
                remaining: len,
                buf: BytesMut::new(),
                sent: VecDeque::with_capacity(CHUNK_BUFFERS),
                head: 0,
                want: 0,
                done: false,
            })),
            progress: None,
        }
    }

    pub(crate) fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    fn len(&self) -> u64 {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => 0,
            Inner::Full(Some(b)) => b.len() as u64,
            Inner::Reader { len, .. } => *len,
            Inner::Chunked(c) => c.encoded,
        }
    }
}

/// Reads once from a body's source, at most `max` (> 0) bytes, onto the end of `buf` (into its
/// spare capacity, not zeroed first): the count, or the error that ends the body (a failing
/// read, or the source ending `left` bytes before its stated size `len`).
fn poll_source(
    reader: Pin<&mut (dyn AsyncRead + Send)>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    max: usize,
    left: u64,
    len: u64,
) -> Poll<Result<usize, io::Error>> {
    match tokio_util::io::poll_read_buf(reader, cx, &mut buf.limit(max)) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Err(e)) => Poll::Ready(Err(source_error(format!("reading the source failed: {e}")))),
        Poll::Ready(Ok(0)) => {
            Poll::Ready(Err(source_error(format!("source ended {left} bytes before its stated size of {len}"))))
        }
        Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
    }
}

fn source_error(msg: String) -> io::Error {
    io::Error::other(SourceFailure(msg))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let frame = match &mut this.inner {
            Inner::Empty => return Poll::Ready(None),
            Inner::Full(data) => match data.take() {
                Some(b) if !b.is_empty() => b,
                _ => return Poll::Ready(None),
            },
            Inner::Chunked(c) => match c.poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => b,
                other => return other.map(|o| o.map(|r| r.map(Frame::data))),
            },
            Inner::Reader { reader, remaining, len, md5, expected_md5 } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = usize::try_from((*remaining).min(FRAME as u64)).unwrap_or(FRAME);
                let mut buf = BytesMut::with_capacity(want);
                let n = match poll_source(reader.as_mut(), cx, &mut buf, want, *remaining, *len) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Ok(n)) => n,
                };
                *remaining -= n as u64;
                if let Some(h) = md5.as_mut() {
                    h.update(&buf);
                }
                if *remaining == 0
                    && let Some(expected) = expected_md5
                {
                    let got: [u8; 16] = md5.take().map(|h| h.finalize().into()).unwrap_or_default();
                    if got != *expected {
                        return Poll::Ready(Some(Err(source_error(
                            "the source changed while it was uploaded (its MD5 differs from the first read)".to_owned(),
                        ))));
                    }
                }
                buf.freeze()
            }
        };
        if let Some(p) = &this.progress {
            p.bump();
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty | Inner::Full(None) => true,
            Inner::Full(Some(b)) => b.is_empty(),
            Inner::Reader { remaining, .. } => *remaining == 0,
            Inner::Chunked(c) => c.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

/// A streamed response body (`GetObject`) as an [`AsyncRead`], failing with
/// `TimedOut` when no data arrives for the read timeout.
pub struct ObjectBody {
    body: Incoming,
    chunk: Bytes,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ObjectBody {
    pub(crate) fn new(body: Incoming, timeout: Duration) -> Self {
        Self { body, chunk: Bytes::new(), timeout, sleep: Box::pin(tokio::time::sleep(timeout)) }
    }
}

impl AsyncRead for ObjectBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = Instant::now() + this.timeout;
                    this.sleep.as_mut().reset(deadline);
                    if let Ok(data) = frame.into_data() {
                        this.chunk = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let kind = if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
                        io::ErrorKind::ConnectionReset
                    } else if e.is_timeout() {
                        io::ErrorKind::TimedOut
                    } else {
                        io_kind_in(&e).unwrap_or(io::ErrorKind::Other)
                    };
                    return Poll::Ready(Err(io::Error::new(kind, e)));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no data for {} s", this.timeout.as_secs_f32()),
                        )));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The kind of the first IO error in `e`'s cause chain.
fn io_kind_in(e: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cur = c.source();
    }
    None
}

/// Why collecting a response body failed.
pub(crate) enum CollectError {
    /// The connection failed.
    Hyper(hyper::Error),
    /// No data for the read timeout.
    Timeout,
    /// Larger than the limit.
    TooLarge,
}

/// Reads a whole (small) response body, bumping `progress` per frame.
pub(crate) async fn collect(
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
    progress: &Progress,
) -> Result<Bytes, CollectError> {
    use http_body_util::BodyExt as _;
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(CollectError::Timeout),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(e))) => return Err(CollectError::Hyper(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        progress.bump();
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(CollectError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn drain(body: RequestBody) -> Result<Vec<u8>, io::Error> {
        let collected = body.collect().await?;
        Ok(collected.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn reader_body_checks_length_and_md5() {
        let data = vec![5u8; 300_000];
        let md5: [u8; 16] = Md5::digest(&data).into();
        let body = RequestBody::reader(Box::pin(io::Cursor::new(data.clone())), data.len() as u64, md5);
        assert_eq!(body.size_hint().exact(), Some(300_000));
        assert_eq!(drain(body).await.unwrap(), data);

        // Changed since hashing.
        let mut changed = data.clone();
        changed[1000] = 6;
        let body = RequestBody::reader(Box::pin(io::Cursor::new(changed)), data.len() as u64, md5);
        let err = drain(body).await.unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<SourceFailure>()), "{err}");
        assert!(err.to_string().contains("changed"), "{err}");

        // Shorter than stated.
        let body = RequestBody::reader(Box::pin(io::Cursor::new(vec![5u8; 10])), 20, md5);
        let err = drain(body).await.unwrap_err();
        assert!(err.to_string().contains("10 bytes before"), "{err}");
    }

    /// Hands out at most 1000 bytes per read, so chunks are put together across reads.
    struct Trickle(Vec<u8>, usize);

    impl AsyncRead for Trickle {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let at = self.1;
            let n = buf.remaining().min(1000).min(self.0.len() - at);
            buf.put_slice(&self.0[at..at + n]);
            self.1 += n;
            Poll::Ready(Ok(()))
        }
    }

    /// The AWS documented chunked upload (sigv4-streaming.html, as kept in
    /// `tests/fixtures/sigv4/s3-examples.json`): 66,560 bytes of `a` in 64 KiB chunks.
    fn aws_chunked_example() -> (serde_json::Value, ChunkSigner) {
        use crate::s3sig::{Credentials, Scope};
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/sigv4/s3-examples.json")).unwrap();
        let case =
            cases.as_array().unwrap().iter().find(|c| c["name"] == "s3-doc/chunked-upload-put-object").unwrap().clone();
        let creds = Credentials::new(
            case["credentials"]["access_key_id"].as_str().unwrap(),
            case["credentials"]["secret_access_key"].as_str().unwrap(),
        );
        assert_eq!(case["timestamp"], "2013-05-24T00:00:00Z");
        let time = std::time::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let seed = case["expected"]["signature"].as_str().unwrap();
        let signer = ChunkSigner::new(&creds, &Scope::s3("us-east-1"), time, seed).unwrap();
        (case, signer)
    }

    #[tokio::test]
    async fn chunked_body_is_the_aws_example_byte_for_byte() {
        let (case, signer) = aws_chunked_example();
        let exp = &case["expected"];
        let len = case["request"]["decoded_body"]["count"].as_u64().unwrap();
        let chunk = usize::try_from(case["chunk_size"].as_u64().unwrap()).unwrap();
        let encoded = exp["encoded_body_length"].as_u64().unwrap();
        assert_eq!(
            crate::s3sig::Streaming::Signed.encoded_length(len, std::num::NonZeroU64::new(65536).unwrap(), &[]),
            encoded
        );
        let mut expected = Vec::new();
        for c in exp["chunks"].as_array().unwrap() {
            expected.extend_from_slice(c["wire_header"].as_str().unwrap().as_bytes());
            expected.extend(std::iter::repeat_n(b'a', usize::try_from(c["size"].as_u64().unwrap()).unwrap()));
            expected.extend_from_slice(b"\r\n");
        }
        let data = vec![b'a'; usize::try_from(len).unwrap()];
        let body = RequestBody::chunked(Box::pin(Trickle(data.clone(), 0)), len, signer.clone(), chunk, encoded);
        assert_eq!(body.size_hint().exact(), Some(encoded));
        let wire = drain(body).await.unwrap();
        assert_eq!(wire.len() as u64, encoded);
        assert!(wire == expected, "the framed body differs from the AWS example");

        // A source longer than stated, or shorter, fails instead of storing a cut or a gap.
        let mut longer = data.clone();
        longer.push(b'a');
        let body = RequestBody::chunked(Box::pin(io::Cursor::new(longer)), len, signer.clone(), chunk, encoded);
        let err = drain(body).await.unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<SourceFailure>()), "{err}");
        assert!(err.to_string().contains("longer than its stated size of 66560"), "{err}");
        let short = data[..66_000].to_vec();
        let body = RequestBody::chunked(Box::pin(io::Cursor::new(short)), len, signer, chunk, encoded);
        let err = drain(body).await.unwrap_err();
        assert!(err.to_string().contains("source ended 560 bytes before its stated size of 66560"), "{err}");
    }

    /// A body of 40 chunks: once hyper has sent a chunk (dropped its frame), the next chunk is
    /// framed in the same buffer; frames still held get buffers of their own, and only
    /// [`CHUNK_BUFFERS`] of them are kept to take back. The wire bytes are the same either way.
    #[tokio::test]
    async fn sent_chunk_buffers_are_taken_back() {
        use http_body_util::BodyExt as _;
        let (_, signer) = aws_chunked_example();
        let chunk = 8192;
        let len = 40 * chunk as u64;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let encoded =
            crate::s3sig::Streaming::Signed.encoded_length(len, std::num::NonZeroU64::new(8192).unwrap(), &[]);
        let body = |signer: &ChunkSigner| {
            RequestBody::chunked(Box::pin(io::Cursor::new(data.clone())), len, signer.clone(), chunk, encoded)
        };

        // Each frame dropped before the next is asked for.
        let mut body1 = body(&signer);
        let (mut wire1, mut starts) = (Vec::new(), std::collections::HashSet::new());
        while let Some(frame) = body1.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            if data.len() > 100 {
                starts.insert(data.as_ptr() as usize);
            }
            wire1.extend_from_slice(&data);
        }
        assert_eq!(starts.len(), 1, "every data chunk framed in one buffer");
        let Inner::Chunked(c) = &body1.inner else { unreachable!() };
        assert_eq!(c.sent.len(), 1, "one buffer, taken back for every chunk");

        // Every frame held until the end.
        let mut body2 = body(&signer);
        let mut held = Vec::new();
        while let Some(frame) = body2.frame().await {
            held.push(frame.unwrap().into_data().unwrap());
        }
        let distinct: std::collections::HashSet<usize> =
            held.iter().filter(|d| d.len() > 100).map(|d| d.as_ptr() as usize).collect();
        assert_eq!(distinct.len(), 40);
        let Inner::Chunked(c) = &body2.inner else { unreachable!() };
        assert_eq!(c.sent.len(), CHUNK_BUFFERS);
        let wire2: Vec<u8> = held.concat();
        assert_eq!(wire1.len() as u64, encoded);
        assert!(wire1 == wire2, "the framing depends on when frames are dropped");
        assert!(wire1 == drain(body(&signer)).await.unwrap());
    }

    #[tokio::test]
    async fn full_and_empty_bodies() {
        assert_eq!(drain(RequestBody::empty()).await.unwrap(), b"");
        assert_eq!(drain(RequestBody::bytes(Bytes::from_static(b"abc"))).await.unwrap(), b"abc");
        assert!(RequestBody::bytes(Bytes::new()).is_end_stream());
    }

    #[tokio::test]
    async fn watchdog_fires_only_when_still() {
        let p = Arc::new(Progress::default());
        let p2 = p.clone();
        // 1 s of work that moves every 50 ms outlives a 200 ms idle timeout.
        let busy = async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                p2.bump();
            }
            "done"
        };
        assert_eq!(idle_timeout(busy, &p, Duration::from_millis(200)).await, Some("done"));
        let started = Instant::now();
        let still = tokio::time::sleep(Duration::from_secs(10));
        assert_eq!(idle_timeout(still, &p, Duration::from_millis(200)).await, None);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
