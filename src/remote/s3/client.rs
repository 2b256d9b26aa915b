//! The S3 client core: request building, SigV4 signing per attempt, region resolution (given, cached, or detected and corrected from `x-amz-bucket-region`), sending with an idle timeout, error mapping, and bounded retries with jittered backoff; may import std, tokio, hyper, `tracing`, `getrandom`, `s3sig` and the sibling modules.
//!
//! The operations themselves live in `ops_*.rs` beside this file, as further
//! `impl S3Client` blocks.

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU64,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Instant, SystemTime},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request as HttpRequest, Response};
use hyper::body::Incoming;

use crate::s3sig::{self, ChunkSigner, Credentials, Payload, RequestParts, Scope, Streaming};

use super::{
    config::{DEFAULT_REGION, Endpoint, PayloadSigning, S3Config},
    error::{S3Error, Target},
    http::{
        CollectError, HttpClient, ObjectBody, Progress, RequestBody, SourceFailure, build_client, collect, idle_timeout,
    },
    source::{BodySource, Digests, digest_bytes, digest_source, sha256_bytes, sha256_source},
};

/// Largest XML response read into memory (a 1000-key listing is ~0.3 MB).
const MAX_XML_BODY: usize = 64 << 20;

/// How many times one request may follow a region correction.
const MAX_REGION_FIXES: u32 = 2;

/// How many times one `aws-chunked` upload is sent again after a chunk was refused (not
/// otherwise retryable: `SignatureDoesNotMatch` is also the answer to a wrong secret).
const MAX_CHUNK_REFUSALS: u32 = 2;

/// Data bytes per `aws-chunked` chunk (S3 wants at least 8 KiB in all but the last).
const CHUNK: NonZeroU64 = NonZeroU64::new(64 * 1024).unwrap();

/// An S3 client: cheap to clone (the connection pool and region cache are
/// shared). `Debug` prints no secret.
#[derive(Clone)]
pub struct S3Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: S3Config,
    endpoint: Endpoint,
    http: HttpClient,
    /// Regions detected or corrected per bucket.
    regions: Mutex<HashMap<String, String>>,
    /// Requests sent (every attempt), per operation.
    counts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// The server refused an `aws-chunked` upload: streamed sources are hashed, then sent.
    chunked_refused: AtomicBool,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client").field("config", &self.inner.cfg).finish_non_exhaustive()
    }
}

/// The body of a request to send.
pub(crate) enum ReqBody<'a> {
    /// No body.
    Empty,
    /// In-memory data; `md5` adds `Content-MD5` (XML bodies S3 wants it on).
    Bytes { data: Bytes, md5: bool },
    /// Object data in memory. With a signed payload the server checks its SHA-256, so no
    /// `Content-MD5` is computed (one hashing pass per byte: SHA-256 runs on the CPU's SHA
    /// instructions where it has them, about three times cheaper than MD5 here); unsigned
    /// (`https://`), `Content-MD5` makes the server check what it stores.
    Data(Bytes),
    /// `len` bytes of a re-openable source: sent `aws-chunked` (read once, every chunk
    /// signed), or, where the server refuses that or [`PayloadSigning::Whole`] says so, hashed
    /// first (signed SHA-256, or `Content-MD5` when unsigned) and then sent.
    Source { source: &'a dyn BodySource, len: u64 },
}

/// One S3 request, reusable across attempts.
pub(crate) struct Req<'a> {
    pub(crate) op: &'static str,
    pub(crate) method: Method,
    pub(crate) bucket: &'a str,
    pub(crate) key: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: ReqBody<'a>,
    /// Sign for this region and never correct it (region detection itself).
    pub(crate) fixed_region: Option<&'a str>,
}

impl<'a> Req<'a> {
    pub(crate) fn new(op: &'static str, method: Method, bucket: &'a str, key: &'a str) -> Self {
        Self {
            op,
            method,
            bucket,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: ReqBody::Empty,
            fixed_region: None,
        }
    }

    pub(crate) fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: ReqBody<'a>) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn target(&self) -> Box<Target> {
        Target::new(self.op, self.bucket, self.key)
    }
}

/// A response handed to an operation's parser.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: ReplyBody,
}

pub(crate) enum ReplyBody {
    Bytes(Bytes),
    Stream(ObjectBody),
}

impl Reply {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }

    /// The collected body (empty for a streamed one).
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.body {
            ReplyBody::Bytes(b) => b,
            ReplyBody::Stream(_) => &[],
        }
    }
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the response of `op` is streamed to the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Collect,
    Stream,
}

fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::from(d.subsec_nanos()))
    })
}

/// How a request's body is signed, decided once per request.
struct Prepared {
    payload_hash: Option<String>,
    content_md5: Option<String>,
    digests: Option<Digests>,
}

impl S3Client {
    /// A client for `cfg`.
    ///
    /// # Errors
    /// [`S3Error::Config`] for a malformed endpoint, an unreadable CA file, or
    /// a TLS setup failure.
    pub fn new(cfg: S3Config) -> Result<Self, S3Error> {
        let endpoint = Endpoint::parse(&cfg.endpoint)?;
        if cfg.retry.max_attempts == 0 {
            return Err(S3Error::config("retry.max_attempts must be at least 1"));
        }
        if !(1..=10_000).contains(&cfg.max_upload_parts) {
            return Err(S3Error::config("max_upload_parts must be between 1 and 10000"));
        }
        let http = build_client(&cfg)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                endpoint,
                http,
                regions: Mutex::new(HashMap::new()),
                counts: Mutex::default(),
                chunked_refused: AtomicBool::new(false),
            }),
        })
    }

    /// Requests sent so far by this client and its clones (every attempt), per operation.
    #[must_use]
    pub fn request_counts(&self) -> Vec<(String, u64)> {
        let counts = self.inner.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &S3Config {
        &self.inner.cfg
    }

    fn credentials(&self) -> &Credentials {
        &self.inner.cfg.credentials
    }

    /// Whether listings ask for URL-encoded keys.
    pub(crate) fn url_encode_listings(&self) -> bool {
        self.inner.cfg.list_url_encode.unwrap_or_else(|| self.inner.endpoint.is_aws())
    }

    /// Whether payloads are signed with their SHA-256 on this endpoint.
    pub(crate) fn signs_payload(&self) -> bool {
        matches!(self.inner.cfg.payload_signing, PayloadSigning::Always | PayloadSigning::Whole)
            || !self.inner.endpoint.https
    }

    /// Whether `req` goes `aws-chunked`: a streamed source, to a server not known to refuse it.
    fn streams(&self, req: &Req<'_>) -> bool {
        matches!(req.body, ReqBody::Source { .. })
            && self.inner.cfg.payload_signing != PayloadSigning::Whole
            && !self.inner.chunked_refused.load(Ordering::Relaxed)
    }

    /// Whether streamed sources are sent `aws-chunked` by this client right now (false once
    /// the server refused it, or with [`PayloadSigning::Whole`]).
    #[must_use]
    pub fn sends_aws_chunked(&self) -> bool {
        self.inner.cfg.payload_signing != PayloadSigning::Whole && !self.inner.chunked_refused.load(Ordering::Relaxed)
    }

    fn cached_region(&self, bucket: &str) -> Option<String> {
        self.inner.regions.lock().ok()?.get(bucket).cloned()
    }

    pub(crate) fn remember_region(&self, bucket: &str, region: &str) {
        if let Ok(mut m) = self.inner.regions.lock() {
            m.insert(bucket.to_owned(), region.to_owned());
        }
    }

    /// The region requests for `bucket` are signed for right now.
    pub(crate) async fn region_for(&self, bucket: &str) -> Result<String, S3Error> {
        let cfg = &self.inner.cfg;
        if cfg.skip_region || bucket.is_empty() {
            return Ok(if cfg.region.is_empty() { DEFAULT_REGION.to_owned() } else { cfg.region.clone() });
        }
        if let Some(r) = self.cached_region(bucket) {
            return Ok(r);
        }
        if !cfg.region.is_empty() {
            return Ok(cfg.region.clone());
        }
        let region = Box::pin(self.detect_region(bucket)).await?;
        self.remember_region(bucket, &region);
        Ok(region)
    }

    async fn prepare(&self, req: &Req<'_>) -> Result<Prepared, S3Error> {
        let sign = self.signs_payload();
        Ok(match &req.body {
            ReqBody::Empty => Prepared { payload_hash: None, content_md5: None, digests: None },
            ReqBody::Bytes { data, md5 } => {
                let d = digest_bytes(data, sign).await;
                Prepared { payload_hash: d.sha256_hex(), content_md5: md5.then(|| d.content_md5()), digests: Some(d) }
            }
            ReqBody::Data(data) if sign => Prepared {
                payload_hash: Some(super::source::hex(&sha256_bytes(data).await)),
                content_md5: None,
                digests: None,
            },
            ReqBody::Data(data) => {
                let d = digest_bytes(data, false).await;
                Prepared { payload_hash: None, content_md5: Some(d.content_md5()), digests: Some(d) }
            }
            ReqBody::Source { source, len } if sign => {
                let h = sha256_source(*source, *len)
                    .await
                    .map_err(|source| S3Error::Source { target: req.target(), source })?;
                Prepared { payload_hash: Some(super::source::hex(&h)), content_md5: None, digests: None }
            }
            ReqBody::Source { source, len } => {
                let d = digest_source(*source, *len, sign)
                    .await
                    .map_err(|source| S3Error::Source { target: req.target(), source })?;
                Prepared { payload_hash: d.sha256_hex(), content_md5: Some(d.content_md5()), digests: Some(d) }
            }
        })
    }

    /// Sends `req` once and returns the response headers.
    #[allow(clippy::too_many_lines)] // one request from its parts to the wire reads best in one place
    async fn send_once(
        &self,
        req: &Req<'_>,
        prep: Option<&Prepared>,
        region: &str,
        progress: &Arc<Progress>,
    ) -> Result<Response<Incoming>, S3Error> {
        let target = req.target();
        let endpoint = &self.inner.endpoint;
        let authority = endpoint.authority_for(region);
        let path_style = self.inner.cfg.path_style(endpoint, req.bucket);
        let (host, path) = s3sig::host_and_path(&authority, req.bucket, req.key, path_style);
        let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 4);
        headers.push(("host".to_owned(), host.clone()));
        headers.extend(req.headers.iter().cloned());
        // `None`: a streamed source sent `aws-chunked`, its encoded length signed with it.
        let chunked = match (prep, &req.body) {
            (None, ReqBody::Source { len, .. }) => {
                let encoded = Streaming::Signed.encoded_length(*len, CHUNK, &[]);
                match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case("content-encoding")) {
                    Some((_, v)) => *v = format!("aws-chunked,{v}"),
                    None => headers.push(("content-encoding".to_owned(), "aws-chunked".to_owned())),
                }
                headers.push(("x-amz-decoded-content-length".to_owned(), len.to_string()));
                headers.push(("content-length".to_owned(), encoded.to_string()));
                Some(encoded)
            }
            _ => None,
        };
        if let Some(md5) = prep.and_then(|p| p.content_md5.as_ref()) {
            headers.push(("content-md5".to_owned(), md5.clone()));
        }
        let payload = match (&req.body, prep.map(|p| &p.payload_hash)) {
            (ReqBody::Empty, _) => Payload::Bytes(&[]),
            (_, None) => Payload::Streaming(Streaming::Signed),
            (_, Some(Some(h))) => Payload::Sha256Hex(h),
            (_, Some(None)) => Payload::Unsigned,
        };
        let parts = RequestParts::new(req.method.as_str(), &path, &req.query, &headers, payload);
        let (credentials, scope, now) = (self.credentials(), Scope::s3(region), SystemTime::now());
        let signed = s3sig::sign(&parts, credentials, &scope, now)
            .map_err(|e| S3Error::invalid(target.clone(), format!("cannot sign: {e}")))?;
        let query = s3sig::canonical_query(&req.query);
        let uri = if query.is_empty() {
            format!("{}://{host}{path}", endpoint.scheme())
        } else {
            format!("{}://{host}{path}?{query}", endpoint.scheme())
        };
        let body = match &req.body {
            ReqBody::Empty => RequestBody::empty(),
            ReqBody::Bytes { data, .. } | ReqBody::Data(data) => RequestBody::bytes(data.clone()),
            ReqBody::Source { source, len } => {
                let reader =
                    source.open().await.map_err(|source| S3Error::Source { target: target.clone(), source })?;
                match (chunked, prep.and_then(|p| p.digests)) {
                    (Some(encoded), _) => {
                        // A fresh chain per attempt, seeded by this attempt's signature.
                        let signer = ChunkSigner::new(credentials, &scope, now, &signed.signature)
                            .map_err(|e| S3Error::invalid(target.clone(), format!("cannot sign: {e}")))?;
                        RequestBody::chunked(reader, *len, signer, CHUNK.get() as usize, encoded)
                    }
                    (None, Some(d)) => RequestBody::reader(reader, *len, d.md5),
                    (None, None) => RequestBody::reader_signed(reader, *len),
                }
            }
        }
        .with_progress(progress.clone());
        let mut builder = HttpRequest::builder().method(req.method.clone()).uri(&uri);
        for (name, value) in headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(signed.headers.iter().map(|(n, v)| (*n, v.as_str())))
        {
            builder = builder.header(name, value);
        }
        let len = match &req.body {
            ReqBody::Empty => 0,
            ReqBody::Bytes { data, .. } | ReqBody::Data(data) => data.len() as u64,
            ReqBody::Source { len, .. } => *len,
        };
        if chunked.is_none() && (len > 0 || matches!(req.method, Method::PUT | Method::POST)) {
            builder = builder.header("content-length", len);
        }
        let request = builder
            .body(body)
            .map_err(|e| S3Error::invalid(target.clone(), format!("cannot build the request: {e}")))?;
        match idle_timeout(self.inner.http.request(request), progress, self.inner.cfg.read_timeout).await {
            None => Err(S3Error::Timeout { target, after: self.inner.cfg.read_timeout }),
            Some(Ok(resp)) => Ok(resp),
            Some(Err(e)) => Err(map_send_error(target, &e)),
        }
    }

    /// Reads an error response into an [`S3Error`].
    async fn error_from(&self, target: Box<Target>, resp: Response<Incoming>, progress: &Progress) -> S3Error {
        let status = resp.status().as_u16();
        let request_id = header_str(resp.headers(), "x-amz-request-id").map(str::to_owned);
        let region = header_str(resp.headers(), "x-amz-bucket-region").map(str::to_owned);
        let body = match collect(resp.into_body(), 1 << 20, self.inner.cfg.read_timeout, progress).await {
            Ok(b) => b,
            Err(CollectError::Hyper(e)) => return S3Error::transport(target, &e),
            Err(CollectError::Timeout) => return S3Error::Timeout { target, after: self.inner.cfg.read_timeout },
            Err(CollectError::TooLarge) => Bytes::new(),
        };
        error_from_body(target, status, &body, request_id, region)
    }

    /// Sends `req` with retries; `parse` turns a success response into the
    /// result, and its retryable errors (an `<Error>` in a 200 body) are
    /// retried too.
    pub(crate) async fn run<T>(
        &self,
        req: &Req<'_>,
        mode: Mode,
        parse: impl Fn(Reply) -> Result<T, S3Error>,
    ) -> Result<T, S3Error> {
        let mut streamed = self.streams(req);
        let mut prep = if streamed { None } else { Some(self.prepare(req).await?) };
        let policy = self.inner.cfg.retry;
        let mut attempt: u32 = 0;
        let mut region_fixes = 0;
        let mut chunk_refusals = 0;
        loop {
            attempt += 1;
            let region = match req.fixed_region {
                Some(r) => r.to_owned(),
                None => self.region_for(req.bucket).await?,
            };
            let started = Instant::now();
            *self.inner.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(req.op).or_default() +=
                1;
            let result = self.attempt(req, prep.as_ref(), &region, mode, &parse).await;
            tracing::debug!(
                op = req.op,
                bucket = req.bucket,
                key = req.key,
                attempt,
                ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                aws_chunked = streamed,
                "S3 request"
            );
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if let Some(better) = self.region_hint(req, &err, &region)
                && region_fixes < MAX_REGION_FIXES
            {
                region_fixes += 1;
                tracing::info!(op = req.op, bucket = req.bucket, from = %region, to = %better, "S3 bucket is in another region; following the hint");
                self.remember_region(req.bucket, &better);
                attempt -= 1;
                continue;
            }
            if streamed && refuses_aws_chunked(&err) {
                // Not understood, not a fault: send it the old way, and everything after it too.
                if !self.inner.chunked_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(op = req.op, bucket = req.bucket, key = req.key, error = %err, "S3 server refused an aws-chunked upload; streamed sources are hashed first, then sent, from now on");
                }
                streamed = false;
                prep = Some(self.prepare(req).await?);
                attempt -= 1;
                continue;
            }
            // A refused chunk is retried twice at most: a wrong secret looks the same to us.
            let retryable = err.is_retryable()
                || (streamed && refuses_chunk(&err) && {
                    chunk_refusals += 1;
                    chunk_refusals <= MAX_CHUNK_REFUSALS
                });
            if !retryable || attempt >= policy.max_attempts {
                if attempt > 1 {
                    tracing::warn!(op = req.op, bucket = req.bucket, key = req.key, attempts = attempt, error = %err, "S3 request failed for good");
                }
                return Err(err);
            }
            let delay = policy.delay(attempt, random_u64());
            tracing::warn!(
                op = req.op,
                bucket = req.bucket,
                key = req.key,
                attempt,
                max_attempts = policy.max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "S3 request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T>(
        &self,
        req: &Req<'_>,
        prep: Option<&Prepared>,
        region: &str,
        mode: Mode,
        parse: &impl Fn(Reply) -> Result<T, S3Error>,
    ) -> Result<T, S3Error> {
        let target = req.target();
        let progress = Arc::new(Progress::default());
        let resp = self.send_once(req, prep, region, &progress).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.error_from(target, resp, &progress).await);
        }
        let (parts, body) = resp.into_parts();
        let body = if mode == Mode::Stream || req.method == Method::HEAD {
            if req.method == Method::HEAD {
                ReplyBody::Bytes(Bytes::new())
            } else {
                ReplyBody::Stream(ObjectBody::new(body, self.inner.cfg.read_timeout))
            }
        } else {
            match collect(body, MAX_XML_BODY, self.inner.cfg.read_timeout, &progress).await {
                Ok(b) => ReplyBody::Bytes(b),
                Err(CollectError::Hyper(e)) => return Err(S3Error::transport(target, &e)),
                Err(CollectError::Timeout) => {
                    return Err(S3Error::Timeout { target, after: self.inner.cfg.read_timeout });
                }
                Err(CollectError::TooLarge) => {
                    return Err(S3Error::InvalidResponse {
                        target,
                        status: status.as_u16(),
                        detail: format!("body larger than {MAX_XML_BODY} bytes"),
                    });
                }
            }
        };
        parse(Reply { status: status.as_u16(), headers: parts.headers, body })
    }

    /// A better region for `req` named by `err`, if there is one to follow.
    fn region_hint(&self, req: &Req<'_>, err: &S3Error, used: &str) -> Option<String> {
        if req.fixed_region.is_some() || self.inner.cfg.skip_region || req.bucket.is_empty() {
            return None;
        }
        match err {
            S3Error::Service { status: 301 | 307 | 400 | 403, region: Some(r), .. } if r != used && valid_region(r) => {
                Some(r.clone())
            }
            _ => None,
        }
    }
}

/// Whether `err`, the answer to an `aws-chunked` upload, shows a server that does not take that
/// encoding: 501 / `NotImplemented`, or a 400 about the request's form (`InvalidArgument`,
/// `InvalidRequest`, `XAmzContentSHA256Mismatch`: the `STREAMING-…` payload hash taken for a
/// digest) that does not speak of a signature (a chunk refused, see [`refuses_chunk`]).
fn refuses_aws_chunked(err: &S3Error) -> bool {
    if err.is_not_implemented() {
        return true;
    }
    match err {
        S3Error::Service { status: 400, code, message, .. } => {
            matches!(code.as_str(), "InvalidArgument" | "InvalidRequest" | "XAmzContentSHA256Mismatch")
                && !message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("signature"))
        }
        _ => false,
    }
}

/// Whether `err`, the answer to an `aws-chunked` upload, refuses a chunk whose signature does
/// not match its data (altered on the way): sent again with a fresh chain. AWS answers
/// `SignatureDoesNotMatch` (or `IncompleteBody` for a body cut short), Garage a 400 "Invalid
/// payload signature"; s3s answers 500, retried anyway.
fn refuses_chunk(err: &S3Error) -> bool {
    match err {
        S3Error::Service { status: 400 | 403, code, message, .. } => {
            matches!(code.as_str(), "SignatureDoesNotMatch" | "IncompleteBody")
                || message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("signature"))
        }
        _ => false,
    }
}

/// Whether a region name from a response may be used in a host name.
fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The error of a non-2xx response from its status, headers and body.
pub(crate) fn error_from_body(
    target: Box<Target>,
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    region: Option<String>,
) -> S3Error {
    match s3sig::parse_error(body) {
        Ok(doc) => {
            let mut err = S3Error::from_response(target, status, doc, request_id);
            if let S3Error::Service { region: r @ None, .. } = &mut err {
                *r = region;
            }
            err
        }
        Err(_) => S3Error::from_status(target, status, request_id, region),
    }
}

/// Maps a failed send, telling a failing upload source from the network.
fn map_send_error(target: Box<Target>, err: &hyper_util::client::legacy::Error) -> S3Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // An `io::Error` hides the error it carries from `source()`: look inside.
        let failure = e.downcast_ref::<SourceFailure>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<SourceFailure>())
        });
        if let Some(f) = failure {
            return S3Error::Source { target, source: std::io::Error::other(f.0.clone()) };
        }
        cur = e.source();
    }
    S3Error::transport(target, err)
}

/// An XML parse failure of a success response.
pub(crate) fn bad_xml(target: Box<Target>, status: u16, err: s3sig::S3XmlError) -> S3Error {
    match err {
        s3sig::S3XmlError::ErrorDocument(doc) => S3Error::from_response(target, status, *doc, None),
        other => S3Error::InvalidResponse { target, status, detail: other.to_string() },
    }
}
