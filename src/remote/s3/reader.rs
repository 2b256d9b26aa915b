//! A streamed object read that survives broken connections: when the body stops early (reset, timeout, cut short) it asks again for the rest (`Range` from the next byte, `If-Match` the first response's `ETag`), a bounded number of times; may import std, tokio, `tracing` and the sibling client modules.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};

use super::{
    S3Client, S3Error,
    http::ObjectBody,
    ops_object::{GetObjectOutput, GetOptions, ObjectMeta, Range},
};

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
                            if n > 0 || this.remaining() == 0 {
                                this.pos += n;
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
    /// and only while the object keeps its `ETag`).
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
        };
        Ok((out.meta, reader))
    }
}
