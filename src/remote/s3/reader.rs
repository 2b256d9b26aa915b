//! A streamed object read that survives broken connections: when the body stops early (reset, timeout, cut short) it asks again for the rest (`Range` from the next byte, `If-Match` the first response's `ETag`), a bounded number of times; a whole-object read is checked against the object's MD5 before its end is reported; may import std, tokio, `md-5`, `tracing` and the sibling client modules.
//!
//! What a read of a whole object verifies, before the reader reports the end:
//! * the length: `Content-Length` (and `Content-Range` on a resume) must add
//!   up to the object's size, or the read fails;
//! * the MD5 of every byte handed out, against the `ETag` of a single-part
//!   object (32 hex digits), else against `X-Amz-Meta-Md5chksum`, the
//!   whole-object MD5 rclone (and our [`S3Client::upload`]) stores on
//!   multipart objects. A mismatch fails the read with
//!   [`io::ErrorKind::InvalidData`] instead of the end, so a consumer that
//!   writes under a temporary name never renames a corrupt file.
//!
//! Not verified: a multipart object without that metadata (its `ETag` is the
//! MD5 of the parts' MD5s, which needs the part boundaries; only the length
//! is checked), objects under SSE-KMS (their `ETag` is no MD5), range reads,
//! and `x-amz-checksum-*` (not requested: `x-amz-checksum-mode` is not sent).

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use md5::{Digest as _, Md5};
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    S3Client, S3Error,
    http::ObjectBody,
    ops_object::{GetObjectOutput, GetOptions, ObjectMeta, Range},
    source::hex,
};

/// The MD5 a whole-object read must come to, and the hash so far.
struct Check {
    md5: Md5,
    /// Lower-case hex.
    want: String,
    /// Where `want` came from (for the error).
    from: &'static str,
}

impl Check {
    /// The check of a read of all of `meta`'s object, when S3 tells its MD5.
    fn of(meta: &ObjectMeta) -> Option<Self> {
        if meta.sse.as_deref().is_some_and(|s| s.starts_with("aws:kms")) {
            return None; // the ETag of an SSE-KMS object is not the MD5 of its content
        }
        let want = meta.md5_hex()?;
        let etag = meta.etag.trim_matches('"');
        let from = if etag.eq_ignore_ascii_case(&want) { "ETag" } else { "X-Amz-Meta-Md5chksum" };
        Some(Self { md5: Md5::new(), want, from })
    }
}

type Reopen = Pin<Box<dyn Future<Output = Result<GetObjectOutput, S3Error>> + Send>>;

enum State {
    Body(ObjectBody),
    Reopen(Reopen),
    Failed,
}

/// An object body (see [`S3Client::open_object`]) that resumes after a
/// broken connection instead of failing the whole read.
pub struct ResumingReader {
    client: S3Client,
    bucket: String,
    key: String,
    etag: Option<String>,
    version_id: Option<String>,
    /// Next byte to read, and the last byte wanted (inclusive).
    pos: u64,
    last: u64,
    resumes_left: u32,
    state: State,
    check: Option<Check>,
}

impl fmt::Debug for ResumingReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumingReader")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("pos", &self.pos)
            .field("last", &self.last)
            .field("resumes_left", &self.resumes_left)
            .finish_non_exhaustive()
    }
}

fn resumable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::TimedOut
            | io::ErrorKind::UnexpectedEof
    )
}

impl ResumingReader {
    /// The next byte this reader hands out (the first of its range, before any read).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The bytes still to come.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        (self.last + 1).saturating_sub(self.pos)
    }

    /// The error of a read that cannot go on: where it broke off, and why (with the causes
    /// hyper keeps out of its own message, such as "end of file before message length reached").
    fn gave_up(&self, err: io::Error) -> io::Error {
        let mut why = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            let s = c.to_string();
            if !why.contains(&s) {
                why = format!("{why}: {s}");
            }
            cause = c.source();
        }
        let resumed = if self.resumes_left == 0 { ", after every resume allowed" } else { "" };
        io::Error::new(err.kind(), format!("the body broke off at byte {}{resumed}: {why}", self.pos))
    }

    /// At the end of the object: the bytes handed out must have the MD5 S3 gave.
    fn verify(&mut self) -> io::Result<()> {
        let Some(c) = self.check.take() else { return Ok(()) };
        let got = hex(&c.md5.finalize());
        if got == c.want {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "s3://{}/{}: the downloaded bytes do not match the object ({} says MD5 {}, the bytes have {got}); \
                 refused",
                self.bucket, self.key, c.from, c.want
            ),
        ))
    }

    fn reopen(&mut self) {
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        let opts = GetOptions {
            range: Some(Range::Inclusive(self.pos, self.last)),
            version_id: self.version_id.clone(),
            if_match: self.etag.clone(),
        };
        self.state = State::Reopen(Box::pin(async move { client.get_object(&bucket, &key, &opts).await }));
    }
}

impl AsyncRead for ResumingReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Body(body) => {
                    let before = buf.filled().len();
                    let err = match Pin::new(body).poll_read(cx, buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {
                            let n = (buf.filled().len() - before) as u64;
                            if n > 0 {
                                if let Some(c) = this.check.as_mut() {
                                    c.md5.update(&buf.filled()[before..]);
                                }
                                this.pos += n;
                                return Poll::Ready(Ok(()));
                            }
                            if this.remaining() == 0 {
                                if let Err(e) = this.verify() {
                                    this.state = State::Failed;
                                    return Poll::Ready(Err(e));
                                }
                                return Poll::Ready(Ok(()));
                            }
                            io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended early")
                        }
                        Poll::Ready(Err(e)) => e,
                    };
                    if !resumable(&err) || this.resumes_left == 0 {
                        this.state = State::Failed;
                        return Poll::Ready(Err(this.gave_up(err)));
                    }
                    this.resumes_left -= 1;
                    tracing::warn!(
                        bucket = %this.bucket,
                        key = %this.key,
                        at = this.pos,
                        resumes_left = this.resumes_left,
                        error = %err,
                        "S3 object read broke off; resuming"
                    );
                    this.reopen();
                }
                State::Reopen(fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(out)) => {
                        if out.range.map(|(first, _)| first) != Some(this.pos) {
                            this.state = State::Failed;
                            return Poll::Ready(Err(io::Error::other(format!(
                                "s3://{}/{}: the server did not resume at byte {}",
                                this.bucket, this.key, this.pos
                            ))));
                        }
                        this.state = State::Body(out.body);
                    }
                    Poll::Ready(Err(e)) => {
                        this.state = State::Failed;
                        // The object changed under us (If-Match) or cannot be read any more.
                        return Poll::Ready(Err(io::Error::other(e)));
                    }
                },
                State::Failed => return Poll::Ready(Err(io::Error::other("the object read already failed"))),
            }
        }
    }
}

impl S3Client {
    /// Starts reading `key` like [`S3Client::get_object`], with a body that
    /// resumes after a broken connection (up to `retry.max_attempts` times,
    /// and only while the object keeps its `ETag`). A read of the whole
    /// object ends in an [`io::ErrorKind::InvalidData`] error instead of its
    /// end when the bytes do not have the MD5 S3 gives for it (see the module
    /// documentation).
    ///
    /// # Errors
    /// Those of [`S3Client::get_object`].
    pub async fn open_object(
        &self,
        bucket: &str,
        key: &str,
        opts: &GetOptions,
    ) -> Result<(ObjectMeta, ResumingReader), S3Error> {
        let out = self.get_object(bucket, key, opts).await?;
        let (pos, last) = match out.range {
            Some(r) => r,
            None => (0, out.content_length.saturating_sub(1)),
        };
        // An empty object: nothing is ever wanted (pos past last).
        let (pos, last) = if out.content_length == 0 { (1, 0) } else { (pos, last) };
        // Only a read of the whole object can be checked against its MD5.
        let whole = opts.range.is_none() && out.range.is_none() && out.content_length == out.meta.size;
        let check = if whole { Check::of(&out.meta) } else { None };
        let reader = ResumingReader {
            client: self.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            etag: Some(out.meta.etag.clone()).filter(|e| !e.is_empty()),
            version_id: opts.version_id.clone().or_else(|| out.meta.version_id.clone().filter(|v| v != "null")),
            pos,
            last,
            resumes_left: self.config().retry.max_attempts,
            state: State::Body(out.body),
            check,
        };
        Ok((out.meta, reader))
    }
}
