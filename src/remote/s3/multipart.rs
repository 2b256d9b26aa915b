//! Multipart uploads: the S3 calls (Create, UploadPart with `Content-MD5`, Complete, Abort, ListMultipartUploads), the part-size plan (`chunk_size` grown to fit `max_upload_parts`), a [`MultipartWriter`] that uploads buffered parts in parallel and aborts on any failure, and [`S3Client::upload`], which picks one PutObject or multipart by size. A completion whose answer was lost (its retry finds the upload gone) counts as done when the object carries the `ETag` the parts make and the metadata the upload set. May import std, tokio, `s3sig` and the sibling modules.

use std::{
    collections::HashSet,
    sync::{LazyLock, Mutex},
};

use bytes::{Bytes, BytesMut};
use http::Method;
use tokio::{io::AsyncReadExt as _, task::JoinSet};

use crate::s3sig::{self, CompletedPart, MultipartUpload};

use super::{
    Req,
    client::{Mode, ReqBody, S3Client, bad_xml},
    error::{S3Error, Target},
    ops_object::{MAX_SINGLE_PUT, PutOptions, PutOutput},
    source::{BodySource, digest_source, md5_from_hex, md5_of_md5s},
};

/// The user metadata name rclone keeps a multipart object's MD5 in (base64).
pub const MD5_META: &str = "md5chksum";

/// Multipart uploads running in this process (`bucket` NUL `upload id`), so
/// that a sweep of stale uploads never aborts one a job is still writing.
static ACTIVE: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

fn active_key(bucket: &str, upload_id: &str) -> String {
    format!("{bucket}\0{upload_id}")
}

fn set_active(bucket: &str, upload_id: &str, on: bool) {
    let mut set = ACTIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if on {
        set.insert(active_key(bucket, upload_id));
    } else {
        set.remove(&active_key(bucket, upload_id));
    }
}

/// Whether a [`MultipartWriter`] of this process is still writing `upload_id`.
#[must_use]
pub fn is_upload_active(bucket: &str, upload_id: &str) -> bool {
    ACTIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&active_key(bucket, upload_id))
}

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// The part size for an object of `len` bytes: `chunk_size` (at least
/// 5 MiB), grown in whole MiB until `len` fits in `max_parts` parts.
///
/// # Errors
/// A sentence when even 5 GiB parts cannot hold `len` in `max_parts` parts.
pub fn part_size(len: u64, chunk_size: u64, max_parts: u32) -> Result<u64, String> {
    const MIB: u64 = 1 << 20;
    let max_parts = u64::from(max_parts.max(1));
    let needed = len.div_ceil(max_parts).div_ceil(MIB) * MIB;
    let size = chunk_size.max(MIN_PART_SIZE).max(needed);
    if size > MAX_SINGLE_PUT {
        return Err(format!("{len} bytes do not fit in {max_parts} parts of at most 5 GiB"));
    }
    Ok(size)
}

/// How to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// Object metadata and settings.
    pub put: PutOptions,
    /// Part size in bytes (the task's `chunk_size`); objects up to this size
    /// go in one `PutObject`.
    pub chunk_size: u64,
    /// Parts uploaded at once.
    pub concurrency: usize,
    /// For multipart uploads, read the source once more first to store its
    /// whole MD5 as rclone does (`X-Amz-Meta-Md5chksum`, base64), since a
    /// multipart `ETag` is no MD5: `rclone check` then verifies the object.
    pub whole_md5: bool,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self { put: PutOptions::default(), chunk_size: 16 << 20, concurrency: 4, whole_md5: true }
    }
}

impl S3Client {
    /// Starts a multipart upload and returns its upload id.
    ///
    /// # Errors
    /// Invalid options and any [`S3Error`].
    pub async fn create_multipart_upload(&self, bucket: &str, key: &str, opts: &PutOptions) -> Result<String, S3Error> {
        let target = Target::new("CreateMultipartUpload", bucket, key);
        let mut req = Req::new("CreateMultipartUpload", Method::POST, bucket, key).query("uploads", "");
        req.headers = opts.headers(&target)?;
        self.run(&req, Mode::Collect, |r| {
            s3sig::parse_initiate_multipart_upload(r.bytes())
                .map(|i| i.upload_id)
                .map_err(|e| bad_xml(target.clone(), r.status, e))
        })
        .await
    }

    /// Uploads part `part_number` (1..=10000) with `Content-MD5`; retries
    /// resend the same bytes.
    ///
    /// # Errors
    /// Any [`S3Error`].
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> Result<CompletedPart, S3Error> {
        self.send_part(bucket, key, upload_id, part_number, ReqBody::Data(data)).await
    }

    /// [`S3Client::upload_part`] with the part streamed from `source` (`len` bytes).
    ///
    /// # Errors
    /// Any [`S3Error`].
    pub async fn upload_part_from(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source: &dyn BodySource,
        len: u64,
    ) -> Result<CompletedPart, S3Error> {
        self.send_part(bucket, key, upload_id, part_number, ReqBody::Source { source, len }).await
    }

    async fn send_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ReqBody<'_>,
    ) -> Result<CompletedPart, S3Error> {
        let target = Target::new("UploadPart", bucket, key);
        if !(1..=10_000).contains(&part_number) {
            return Err(S3Error::invalid(target, format!("part number {part_number} is outside 1..=10000")));
        }
        let req = Req::new("UploadPart", Method::PUT, bucket, key)
            .query("partNumber", part_number.to_string())
            .query("uploadId", upload_id)
            .body(body);
        self.run(&req, Mode::Collect, |r| match r.header("etag") {
            Some(etag) if !etag.is_empty() => Ok(CompletedPart { part_number, etag: etag.to_owned() }),
            _ => {
                Err(S3Error::InvalidResponse { target: target.clone(), status: r.status, detail: "no ETag".to_owned() })
            }
        })
        .await
    }

    /// Completes an upload from its parts (in ascending order).
    ///
    /// # Errors
    /// Any [`S3Error`], including one sent in a 200 body.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<PutOutput, S3Error> {
        let target = Target::new("CompleteMultipartUpload", bucket, key);
        let body = s3sig::complete_multipart_upload_body(parts)
            .map_err(|e| S3Error::invalid(target.clone(), e.to_string()))?;
        let req = Req::new("CompleteMultipartUpload", Method::POST, bucket, key)
            .query("uploadId", upload_id)
            .body(ReqBody::Bytes { data: body.into(), md5: false });
        self.run(&req, Mode::Collect, |r| {
            let done =
                s3sig::parse_complete_multipart_upload(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))?;
            Ok(PutOutput {
                etag: done.etag,
                version_id: r.header("x-amz-version-id").map(str::to_owned),
                date: r.header("date").and_then(super::parse_http_date),
            })
        })
        .await
    }

    /// Aborts an upload and frees its parts; an upload already gone is fine.
    ///
    /// # Errors
    /// Any [`S3Error`] but `NoSuchUpload`.
    pub async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let req = Req::new("AbortMultipartUpload", Method::DELETE, bucket, key).query("uploadId", upload_id);
        match self.run(&req, Mode::Collect, |_| Ok(())).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Unfinished uploads under `prefix` (every page); `None` when the server
    /// does not implement the call (s3s-fs answers 501).
    ///
    /// # Errors
    /// Any other [`S3Error`].
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Option<Vec<MultipartUpload>>, S3Error> {
        let mut out = Vec::new();
        let mut markers: Option<(String, Option<String>)> = None;
        loop {
            let mut req = Req::new("ListMultipartUploads", Method::GET, bucket, "").query("uploads", "");
            if self.url_encode_listings() {
                req = req.query("encoding-type", "url");
            }
            if !prefix.is_empty() {
                req = req.query("prefix", prefix);
            }
            if let Some((k, u)) = &markers {
                req = req.query("key-marker", k.clone());
                if let Some(u) = u {
                    req = req.query("upload-id-marker", u.clone());
                }
            }
            let target = req.target();
            let page = match self
                .run(&req, Mode::Collect, |r| {
                    s3sig::parse_list_multipart_uploads(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
                })
                .await
            {
                Ok(p) => p,
                Err(e) if e.is_not_implemented() => return Ok(None),
                Err(e) => return Err(e),
            };
            out.extend(page.uploads);
            match (page.is_truncated, page.next_key_marker) {
                (true, Some(k)) => {
                    let next = (k, page.next_upload_id_marker);
                    if markers.as_ref() == Some(&next) {
                        return Err(S3Error::InvalidResponse {
                            target,
                            status: 200,
                            detail: "the server repeated its upload markers".to_owned(),
                        });
                    }
                    markers = Some(next);
                }
                _ => return Ok(Some(out)),
            }
        }
    }

    /// Uploads `len` bytes of `source` as `key`: one streamed `PutObject` up
    /// to the part size, else a multipart upload whose parts are read one
    /// after the other into memory and sent `concurrency` at a time (at most
    /// `concurrency + 1` parts are held). The part size is `chunk_size`,
    /// grown so that the parts fit in `max_upload_parts`. A failed multipart
    /// upload is aborted.
    ///
    /// # Errors
    /// Objects too large for the part limit, a failing or changing source,
    /// and any [`S3Error`].
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        source: &dyn BodySource,
        opts: &UploadOptions,
    ) -> Result<PutOutput, S3Error> {
        let target = Target::new("Upload", bucket, key);
        let part = part_size(len, opts.chunk_size, self.config().max_upload_parts)
            .map_err(|reason| S3Error::invalid(target.clone(), reason))?;
        if len <= part {
            return self.put_object(bucket, key, len, source, &opts.put).await;
        }
        let mut put = opts.put.clone();
        if opts.whole_md5 {
            let d = digest_source(source, len, false)
                .await
                .map_err(|source| S3Error::Source { target: target.clone(), source })?;
            put.metadata.retain(|(k, _)| !k.eq_ignore_ascii_case(MD5_META));
            put.metadata.push((MD5_META.to_owned(), d.content_md5()));
        }
        let mut writer = MultipartWriter::start(self, bucket, key, &put, opts.concurrency).await?;
        let res: Result<(), S3Error> = async {
            let mut reader =
                source.open().await.map_err(|source| S3Error::Source { target: target.clone(), source })?;
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left.min(part)).unwrap_or(usize::MAX);
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = (&mut reader)
                        .take((want - buf.len()) as u64)
                        .read_buf(&mut buf)
                        .await
                        .map_err(|source| S3Error::Source { target: target.clone(), source })?;
                    if n == 0 {
                        return Err(S3Error::Source {
                            target: target.clone(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!(
                                    "source ended {} bytes before its stated size of {len}",
                                    left - buf.len() as u64
                                ),
                            ),
                        });
                    }
                }
                left -= want as u64;
                writer.push_part(buf.freeze()).await?;
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => writer.finish().await,
            Err(e) => {
                writer.abort().await;
                Err(e)
            }
        }
    }
}

/// A multipart upload fed with whole parts, which it uploads in parallel
/// (up to `concurrency` at once, each retried from its buffered bytes). Any
/// failure aborts the upload on S3. Dropping it unfinished aborts it too
/// (in a background task).
#[derive(Debug)]
pub struct MultipartWriter {
    client: S3Client,
    bucket: String,
    key: String,
    upload_id: String,
    concurrency: usize,
    tasks: JoinSet<Result<CompletedPart, S3Error>>,
    done: Vec<CompletedPart>,
    next_part: u32,
    /// The user metadata the upload sets (see [`PutOptions::user_metadata`]).
    meta: Vec<(String, String)>,
    /// Set once completed or aborted.
    closed: bool,
}

/// The `ETag` S3 gives an object completed from `parts` whose own `ETag`s are the MD5s of their
/// bytes: the MD5 of those MD5s, a dash and their count. `None` when a part's `ETag` is not an
/// MD5 (SSE-KMS, SSE-C).
fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let digests: Vec<_> = parts.iter().map(|p| md5_from_hex(p.etag.trim_matches('"'))).collect::<Option<_>>()?;
    Some(format!("{}-{}", md5_of_md5s(&digests), parts.len()))
}

impl MultipartWriter {
    /// Starts an upload of `key` with `opts`.
    ///
    /// # Errors
    /// Any [`S3Error`] of `CreateMultipartUpload`.
    pub async fn start(
        client: &S3Client,
        bucket: &str,
        key: &str,
        opts: &PutOptions,
        concurrency: usize,
    ) -> Result<Self, S3Error> {
        let upload_id = client.create_multipart_upload(bucket, key, opts).await?;
        set_active(bucket, &upload_id, true);
        tracing::debug!(bucket, key, "multipart upload started");
        Ok(Self {
            client: client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            concurrency: concurrency.max(1),
            tasks: JoinSet::new(),
            done: Vec::new(),
            next_part: 1,
            meta: opts.user_metadata(),
            closed: false,
        })
    }

    /// The upload id.
    #[must_use]
    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    fn target(&self, op: &'static str) -> Box<Target> {
        Target::new(op, &self.bucket, &self.key)
    }

    /// Collects one finished part; on failure aborts everything.
    async fn join_one(&mut self) -> Result<(), S3Error> {
        let Some(joined) = self.tasks.join_next().await else {
            return Ok(());
        };
        let res = match joined {
            Ok(r) => r,
            Err(e) => Err(S3Error::invalid(self.target("UploadPart"), format!("part task failed: {e}"))),
        };
        match res {
            Ok(part) => {
                self.done.push(part);
                Ok(())
            }
            Err(e) => {
                self.abort_inner().await;
                Err(e)
            }
        }
    }

    /// Queues the next part (every part but the last must be at least
    /// 5 MiB), waiting while `concurrency` parts are in flight.
    ///
    /// # Errors
    /// A part that failed for good, or more than 10,000 parts (or
    /// `max_upload_parts`); the upload is then aborted.
    pub async fn push_part(&mut self, data: Bytes) -> Result<(), S3Error> {
        let (client, bucket, key, id, n) = self.next_slot().await?;
        self.tasks.spawn(async move { client.upload_part(&bucket, &key, &id, n, data).await });
        Ok(())
    }

    /// Like [`MultipartWriter::push_part`], with the part read from `source` (twice: to hash
    /// and to send, and again on a retry) instead of held in memory.
    ///
    /// # Errors
    /// As [`MultipartWriter::push_part`].
    pub async fn push_source(&mut self, source: std::sync::Arc<dyn BodySource>, len: u64) -> Result<(), S3Error> {
        let (client, bucket, key, id, n) = self.next_slot().await?;
        self.tasks.spawn(async move { client.upload_part_from(&bucket, &key, &id, n, &*source, len).await });
        Ok(())
    }

    /// Waits for room for one more part and numbers it: what its task needs.
    async fn next_slot(&mut self) -> Result<(S3Client, String, String, String, u32), S3Error> {
        if self.closed {
            return Err(S3Error::invalid(self.target("UploadPart"), "the upload was already completed or aborted"));
        }
        if self.next_part > self.client.config().max_upload_parts {
            self.abort_inner().await;
            return Err(S3Error::invalid(
                self.target("UploadPart"),
                format!("more than max_upload_parts = {} parts", self.client.config().max_upload_parts),
            ));
        }
        while self.tasks.len() >= self.concurrency {
            self.join_one().await?;
        }
        let n = self.next_part;
        self.next_part += 1;
        Ok((self.client.clone(), self.bucket.clone(), self.key.clone(), self.upload_id.clone(), n))
    }

    /// Parts stored so far (bytes are the caller's to count).
    #[must_use]
    pub fn parts_done(&self) -> usize {
        self.done.len()
    }

    /// Waits for every part and completes the upload.
    ///
    /// # Errors
    /// Any part or completion failure (the upload is then aborted), or no
    /// part at all.
    pub async fn finish(mut self) -> Result<PutOutput, S3Error> {
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        if self.done.is_empty() {
            self.abort_inner().await;
            return Err(S3Error::invalid(self.target("CompleteMultipartUpload"), "no part was uploaded"));
        }
        self.done.sort_by_key(|p| p.part_number);
        let res = self.client.complete_multipart_upload(&self.bucket, &self.key, &self.upload_id, &self.done).await;
        let res = match res {
            Err(e) => match self.completed_anyway().await {
                Some(out) => {
                    tracing::info!(
                        bucket = %self.bucket,
                        key = %self.key,
                        error = %e,
                        "the multipart upload was completed, but the answer was lost"
                    );
                    Ok(out)
                }
                None => Err(e),
            },
            ok => ok,
        };
        if res.is_ok() {
            self.closed = true;
            set_active(&self.bucket, &self.upload_id, false);
        } else {
            self.abort_inner().await;
        }
        res
    }

    /// After a completion that failed: whether it took effect all the same. A retry of a
    /// completion whose answer was lost finds the upload gone (AWS answers `NoSuchUpload`,
    /// s3s-fs `AccessDenied`); the object then has the `ETag` these parts make and the metadata
    /// this upload set (an older object with the same bytes but another mtime does not count).
    async fn completed_anyway(&self) -> Option<PutOutput> {
        let want = multipart_etag(&self.done)?;
        let head = self.client.head_object(&self.bucket, &self.key).await.ok()??;
        let same = head.etag.trim_matches('"').eq_ignore_ascii_case(&want)
            && self.meta.iter().all(|(k, v)| head.metadata.get(k) == Some(v));
        same.then_some(PutOutput { etag: head.etag, version_id: head.version_id, date: head.last_modified })
    }

    /// Stops the parts in flight and aborts the upload on S3 (a failure to
    /// abort is logged; a sweep of stale uploads catches it later).
    pub async fn abort(mut self) {
        self.abort_inner().await;
    }

    async fn abort_inner(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        set_active(&self.bucket, &self.upload_id, false);
        if let Err(e) = self.client.abort_multipart_upload(&self.bucket, &self.key, &self.upload_id).await {
            tracing::warn!(bucket = %self.bucket, key = %self.key, error = %e, "cannot abort the multipart upload");
        } else {
            tracing::debug!(bucket = %self.bucket, key = %self.key, "multipart upload aborted");
        }
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.tasks.abort_all();
        set_active(&self.bucket, &self.upload_id, false);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key, id) =
                (self.client.clone(), self.bucket.clone(), self.key.clone(), self.upload_id.clone());
            handle.spawn(async move {
                if let Err(e) = client.abort_multipart_upload(&bucket, &key, &id).await {
                    tracing::warn!(%bucket, %key, error = %e, "cannot abort the dropped multipart upload");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_part_md5s_and_their_count() {
        let part = |n, etag: &str| CompletedPart { part_number: n, etag: etag.to_owned() };
        // MD5("a") and MD5("b"); the result computed apart (Python's hashlib).
        let parts = [part(1, "\"0cc175b9c0f1b6a831c399e269772661\""), part(2, "\"92EB5FFEE6AE2FEC3AD71C777531578F\"")];
        assert_eq!(multipart_etag(&parts).as_deref(), Some("96e024ba2074fe77e8e965ba43a704be-2"));
        // An ETag that is not an MD5 (SSE-KMS) says nothing about the bytes.
        assert_eq!(multipart_etag(&[part(1, "\"0cc175b9c0f1b6a831c399e26977266\"")]), None);
        assert_eq!(multipart_etag(&[part(1, "\"0cc175b9c0f1b6a831c399e26977266z\"")]), None);
    }

    #[test]
    fn part_size_grows_to_fit() {
        assert_eq!(part_size(16 * MIB, 5 * MIB, 10_000), Ok(5 * MIB));
        assert_eq!(part_size(1, 1, 10_000), Ok(5 * MIB), "at least 5 MiB");
        assert_eq!(part_size(100 * MIB, 16 * MIB, 4), Ok(25 * MIB));
        assert_eq!(part_size(100 * MIB + 1, 16 * MIB, 4), Ok(26 * MIB));
        // 1 TiB in 10,000 parts needs 105 MiB parts (rounded up to whole MiB).
        assert_eq!(part_size(1 << 40, 16 * MIB, 10_000), Ok(105 * MIB));
        assert!(part_size(6 << 30, 16 * MIB, 1).is_err());
        for (len, chunk, parts) in
            [(123_456_789_u64, 5 * MIB, 7_u32), (1 << 40, 5 * MIB, 10_000), (77 * MIB, 8 * MIB, 3)]
        {
            let size = part_size(len, chunk, parts).unwrap();
            assert!(len.div_ceil(size) <= u64::from(parts), "{len} {chunk} {parts}");
            assert!(size >= chunk && size.is_multiple_of(MIB));
        }
    }
}
