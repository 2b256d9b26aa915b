//! The engine's [`Remote`] on an S3 bucket folder: listing by ListObjectsV2 in whole-key order, folder by folder (`walk.rs`) or in flat pages with `fast_list` (mtimes from `X-Amz-Meta-Mtime` by HEAD, or from what an earlier run saw), one folder at a time with delimiter `/` (`folder.rs`), archived objects reported and optionally restored (`archive.rs`), hard deletes of every version (`versions.rs`), reads by GetObject (large objects in parallel ranges, `download.rs`), writes through an [`Upload`] that sends one PutObject or a multipart upload, and sweeps of stale multipart uploads; may import `remote` (the trait), `engine::{entry, filter, names}`, tokio and the sibling S3 client modules.

mod archive;
mod folder;
mod versions;

pub use archive::RESTORE_DAYS;

use std::{
    collections::VecDeque,
    io,
    sync::{Arc, Mutex},
};

use bytes::{Bytes, BytesMut};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    engine::{
        entry::{Entry, Mtime},
        filter::Filter,
        names::{check_remote_path, escape_for_log},
    },
    remote::{
        Archived, ByteStream, ListOptions, Listed, Meta, OnStored, RangeSource, Remote, RemoteError, RootState, Upload,
        Version, WriteAt, Written, meta::KEY_MTIME,
    },
};

use super::{
    S3Client, S3Error, TransportKind, Walked, download,
    multipart::{MultipartWriter, is_upload_active, part_size},
    ops_list::ListRequest,
    ops_object::{GetOptions, PutOptions, PutOutput},
    source::RangeBody,
};

/// HEAD requests in flight while listing (for the mtimes).
const HEAD_CONCURRENCY: usize = 16;

/// Files up to this size are read into memory once and sent from there: cheaper than opening
/// and reading them twice (hash, then send) when they are small.
const INLINE_UPLOAD: u64 = 1 << 20;

/// Parts of one upload in flight.
const PART_CONCURRENCY: usize = 4;

/// S3 refuses more than 2 KiB of user metadata (names and values) per object.
const MAX_USER_METADATA: usize = 2048;

/// A folder of a bucket as the engine's tree. `Debug` prints no secret.
#[derive(Debug, Clone)]
pub struct S3Remote {
    client: S3Client,
    bucket: String,
    /// `""` or the folder with a trailing `/`.
    prefix: String,
    chunk_size: u64,
    storage_class: Option<String>,
    sse: Option<String>,
    job: u64,
    /// Browsing (`Credential.ListDirectory`): folder listings take mtimes from the listing's
    /// `LastModified`, without a HEAD per object.
    browsing: bool,
    /// Deletes remove every version of the key (task attribute `hard_delete`).
    hard_delete: bool,
    /// Archived objects met while listing get a RestoreObject (task attribute `glacier_restore`).
    glacier_restore: bool,
    /// Archived objects met so far, shared by the clones of this remote.
    archived: Arc<Mutex<Vec<Archived>>>,
    /// List the tree with flat ListObjectsV2 pages (task attribute `fast_list`) instead of
    /// folder by folder.
    fast_list: bool,
}

impl S3Remote {
    /// The tree under `folder` (no leading or trailing slash; `""` for the
    /// bucket root) of `bucket`. Uploads use parts of `chunk_size` bytes
    /// (grown to fit `max_upload_parts`), and `storage_class` and `sse`
    /// (`AES256`) when not empty. `job` is the job this instance runs for.
    #[must_use]
    pub fn new(
        client: S3Client,
        bucket: &str,
        folder: &str,
        chunk_size: u64,
        storage_class: &str,
        sse: &str,
        job: u64,
    ) -> Self {
        let folder = folder.trim_matches('/');
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: if folder.is_empty() { String::new() } else { format!("{folder}/") },
            chunk_size,
            storage_class: (!storage_class.is_empty()).then(|| storage_class.to_owned()),
            sse: (!sse.is_empty()).then(|| sse.to_owned()),
            job,
            browsing: false,
            hard_delete: false,
            glacier_restore: false,
            archived: Arc::default(),
            fast_list: false,
        }
    }

    /// For browsing (`Credential.ListDirectory`): [`Remote::list_folder`] gives each object the
    /// listing's `LastModified` as its mtime instead of reading `X-Amz-Meta-Mtime` by HEAD.
    #[must_use]
    pub fn browsing(mut self) -> Self {
        self.browsing = true;
        self
    }

    /// With `on`, [`Remote::delete`] removes every version of the key and its delete markers
    /// (task attribute `hard_delete`) instead of leaving a hidden version or a delete marker.
    #[must_use]
    pub fn with_hard_delete(mut self, on: bool) -> Self {
        self.hard_delete = on;
        self
    }

    /// With `on`, archived objects met while listing get a RestoreObject (task attribute
    /// `glacier_restore`).
    #[must_use]
    pub fn with_glacier_restore(mut self, on: bool) -> Self {
        self.glacier_restore = on;
        self
    }

    /// With `on`, [`Remote::list`] reads the tree in flat pages of 1,000 keys (task attribute
    /// `fast_list`: fewest requests) instead of folder by folder (one request or more per
    /// folder; folders a filter excludes are never listed).
    #[must_use]
    pub fn with_fast_list(mut self, on: bool) -> Self {
        self.fast_list = on;
        self
    }

    /// The tree's objects in key order: flat pages with `fast_list`, else folder by folder,
    /// entering only the folders `filter` includes, and listing the folders `hints` names
    /// (paths under the tree) from the start.
    fn objects(&self, filter: &Arc<Filter>, hints: &[String]) -> mpsc::Receiver<Result<Walked, S3Error>> {
        if !self.fast_list {
            let (prefix, filter) = (self.prefix.clone(), Arc::clone(filter));
            let hints = hints.iter().map(|h| format!("{}{h}/", self.prefix)).collect();
            return self.client.walk_objects(&self.bucket, &self.prefix, hints, move |p| {
                let rel = p.strip_prefix(&prefix).unwrap_or(p).trim_end_matches('/');
                // A refused name is entered, so that each key under it is reported.
                check_remote_path(rel).is_err() || filter.includes_dir(rel)
            });
        }
        let mut pages = self
            .client
            .list_objects_v2(&self.bucket, ListRequest { prefix: self.prefix.clone(), ..ListRequest::default() })
            .prefetch();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(page) = pages.recv().await {
                if tx.send(page.map(|p| Walked::Objects(p.contents))).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn put_options(&self, mtime: Mtime) -> PutOptions {
        PutOptions {
            mtime: Some(mtime.0),
            storage_class: self.storage_class.clone(),
            sse: self.sse.clone(),
            ..PutOptions::default()
        }
    }

    /// Whether `rel` and every folder above it pass the filter.
    fn passes(opts: &ListOptions, rel: &str) -> bool {
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            if !opts.filter.includes_dir(&rel[..end + i]) {
                return false;
            }
            end += i + 1;
        }
        opts.filter.includes_file(rel)
    }

    /// The listed entry of one object, its mtime read by HEAD.
    async fn head_entry(&self, rel: String, size: u64, last_modified: i64) -> Option<Listed> {
        match self.client.head_object(&self.bucket, &self.key(&rel)).await {
            Ok(Some(meta)) => {
                let mtime = meta.mtime().unwrap_or(i128::from(last_modified) * 1_000_000_000);
                Some(Listed::Entry(Entry::file(rel, size, Mtime(mtime))))
            }
            Ok(None) => None, // deleted since it was listed
            Err(e) => Some(Listed::Error { path: rel, reason: e.to_string() }),
        }
    }
}

/// Why a key whose bytes are not UTF-8 is refused, the name escaped (and cut) as
/// [`check_remote_path`]'s errors show names.
fn refused_not_utf8(raw: &[u8]) -> String {
    const SHOWN_BYTES: usize = 200;
    let shown = escape_for_log(&raw[..raw.len().min(SHOWN_BYTES)]);
    format!("\"{shown}{}\": is not UTF-8", if raw.len() > SHOWN_BYTES { "…" } else { "" })
}

/// The engine's error for an S3 failure on `path`, keeping the S3 error as
/// the source and its retry class as the IO kind.
pub(super) fn remote_error(path: &str, err: S3Error) -> RemoteError {
    if err.is_not_found() {
        return RemoteError::NotFound { path: path.to_owned() };
    }
    let kind = match &err {
        S3Error::Transport { kind: TransportKind::Reset, .. } => io::ErrorKind::ConnectionReset,
        S3Error::Transport { kind: TransportKind::Connect, .. } => io::ErrorKind::ConnectionRefused,
        S3Error::Timeout { .. } => io::ErrorKind::TimedOut,
        e if e.is_auth() => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    RemoteError::Io { path: path.to_owned(), source: io::Error::new(kind, err) }
}

#[async_trait::async_trait]
impl Remote for S3Remote {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }

    fn mtime_precision_ns(&self) -> u64 {
        1
    }

    fn has_dirs(&self) -> bool {
        false
    }

    async fn root_state(&self) -> Result<RootState, RemoteError> {
        // A bucket folder exists as soon as a key is written under it.
        self.folder_state().await
    }

    async fn list_folder(&self, path: &str) -> Result<Option<Vec<Listed>>, RemoteError> {
        self.folder_children(path, false).await.map(Some)
    }

    async fn list_folder_versions(&self, path: &str) -> Result<Option<Vec<Listed>>, RemoteError> {
        self.folder_children(path, !self.browsing).await.map(Some)
    }

    fn archived(&self) -> Vec<Archived> {
        self.archived_so_far()
    }

    async fn list(&self, opts: ListOptions, tx: mpsc::Sender<Listed>) -> Result<(), RemoteError> {
        let mut pages = self.objects(&opts.filter, &opts.hints);
        let mut window: VecDeque<JoinHandle<Option<Listed>>> = VecDeque::new();
        let mut first = true;
        let mut last: Option<String> = None;
        let send_next = async |window: &mut VecDeque<JoinHandle<Option<Listed>>>| -> bool {
            let Some(h) = window.pop_front() else { return true };
            match h.await {
                Ok(Some(l)) => tx.send(l).await.is_ok(),
                Ok(None) => true,
                Err(e) => tx.send(Listed::Error { path: String::new(), reason: e.to_string() }).await.is_ok(),
            }
        };
        while let Some(page) = pages.recv().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if first => return Err(remote_error(&self.describe(), e)),
                Err(e) => {
                    while !window.is_empty() {
                        if !send_next(&mut window).await {
                            return Ok(());
                        }
                    }
                    let _ = tx.send(Listed::Error { path: String::new(), reason: e.to_string() }).await;
                    return Ok(());
                }
            };
            first = false;
            let objects = match page {
                Walked::Objects(objects) => objects,
                Walked::NotUtf8Folder(raw) => {
                    let why = refused_not_utf8(raw.get(self.prefix.len()..).unwrap_or(&raw));
                    let reason = format!("remote folder refused, not listed: {why}");
                    if tx.send(Listed::Error { path: String::new(), reason }).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            for obj in objects {
                let Some(rel) = obj.key.strip_prefix(&self.prefix) else { continue };
                // The folder's own marker and "dir/" markers are not files.
                if rel.is_empty() || rel.ends_with('/') {
                    continue;
                }
                let rel = rel.to_owned();
                // A name no local tree can hold (or that would escape it) cannot be synced: the
                // job fails naming it, and a SYNC deletes nothing.
                let refused = match &obj.key_bytes {
                    Some(raw) => Some(refused_not_utf8(raw.get(self.prefix.len()..).unwrap_or(raw))),
                    None => check_remote_path(&rel).err().map(|e| e.to_string()),
                };
                if let Some(why) = refused {
                    let reason = format!("remote name refused, not transferred: {why}");
                    if tx.send(Listed::Error { path: String::new(), reason }).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if last.as_ref().is_some_and(|l| l.as_bytes() >= rel.as_bytes()) {
                    // The planner relies on key order; a server that breaks it cannot be synced.
                    let reason =
                        format!("the server listed {rel:?} after {:?}: keys out of order", last.unwrap_or_default());
                    let _ = tx.send(Listed::Error { path: String::new(), reason }).await;
                    return Ok(());
                }
                last = Some(rel.clone());
                if !Self::passes(&opts, &rel) {
                    continue;
                }
                if let Some(class) = archive::archive_class(obj.storage_class.as_deref()).map(str::to_owned) {
                    // GLACIER, DEEP_ARCHIVE: neither read nor deleted unless restored (archive.rs).
                    if window.len() >= HEAD_CONCURRENCY && !send_next(&mut window).await {
                        return Ok(());
                    }
                    let me = self.clone();
                    window.push_back(tokio::spawn(async move { me.archived_item(rel, obj.size, class).await }));
                    continue;
                }
                if opts.versions {
                    // The caller resolves mtimes (from what an earlier run saw, else by stat).
                    while !window.is_empty() {
                        if !send_next(&mut window).await {
                            return Ok(());
                        }
                    }
                    let entry = Entry::file(rel, obj.size, Mtime(i128::from(obj.last_modified) * 1_000_000_000));
                    let version = Version { etag: obj.etag, modified: obj.last_modified };
                    if tx.send(Listed::Unresolved { entry, version }).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if window.len() >= HEAD_CONCURRENCY && !send_next(&mut window).await {
                    return Ok(());
                }
                let me = self.clone();
                window.push_back(tokio::spawn(async move { me.head_entry(rel, obj.size, obj.last_modified).await }));
            }
        }
        while !window.is_empty() {
            if !send_next(&mut window).await {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn open(&self, path: &str) -> Result<ByteStream, RemoteError> {
        let (_, reader) = self
            .client
            .open_object(&self.bucket, &self.key(path), &GetOptions::default())
            .await
            .map_err(|e| remote_error(path, e))?;
        Ok(Box::pin(reader))
    }

    async fn create(&self, path: &str, size: u64, mtime: Mtime) -> Result<Box<dyn Upload>, RemoteError> {
        self.refuse_archived(path)?;
        let part = part_size(size, self.chunk_size, self.client.config().max_upload_parts)
            .map_err(|reason| RemoteError::Refused { path: path.to_owned(), reason })?;
        Ok(Box::new(S3Upload {
            remote: self.clone(),
            path: path.to_owned(),
            key: self.key(path),
            size,
            part,
            opts: self.put_options(mtime),
            buf: BytesMut::new(),
            written: 0,
            writer: None,
            started: std::time::Instant::now(),
        }))
    }

    fn streams_uploads(&self) -> bool {
        true
    }

    fn ranged_download(&self, size: u64) -> bool {
        size >= download::ranged_cutoff()
    }

    async fn download_to(&self, entry: &Entry, sink: Arc<dyn WriteAt>, stored: OnStored) -> Result<(), RemoteError> {
        let key = self.key(&entry.path);
        download::download(&self.client, &self.bucket, &key, &entry.path, entry.size, sink, stored).await
    }

    async fn upload_from(
        &self,
        entry: &Entry,
        meta: Option<&Meta>,
        source: Arc<dyn RangeSource>,
        stored: OnStored,
    ) -> Result<Option<Written>, RemoteError> {
        let path = entry.path.as_str();
        self.refuse_archived(path)?;
        let part = part_size(entry.size, self.chunk_size, self.client.config().max_upload_parts)
            .map_err(|reason| RemoteError::Refused { path: path.to_owned(), reason })?;
        let key = self.key(path);
        let mut opts = self.put_options(entry.mtime);
        if let Some(m) = meta {
            add_meta(&mut opts, m, &key);
        }
        let started = std::time::Instant::now();
        let body = |offset: u64, len: u64| RangeBody { source: source.clone(), offset, len };
        let out = if entry.size <= INLINE_UPLOAD.min(part) {
            // Small: one read, checked against the listing, then sent (and resent) from memory.
            let data = source.read_range(0, entry.size).await.map_err(|e| RemoteError::io(path, e))?;
            let changed = source.changed().await;
            if let Some(why) = changed.or_else(|| {
                (data.len() as u64 != entry.size).then(|| format!("{path}: shorter than listed; not copied"))
            }) {
                return Err(RemoteError::Refused { path: path.to_owned(), reason: why });
            }
            let out = self
                .client
                .put_object_bytes(&self.bucket, &key, data, &opts)
                .await
                .map_err(|e| remote_error(path, e))?;
            stored(entry.size);
            out
        } else if entry.size <= part {
            let out = self
                .client
                .put_object(&self.bucket, &key, entry.size, &body(0, entry.size), &opts)
                .await
                .map_err(|e| remote_error(path, e))?;
            stored(entry.size);
            if let Some(why) = source.changed().await {
                // What was stored is one consistent read of it; the next run sends it again.
                return Err(RemoteError::Refused { path: path.to_owned(), reason: why });
            }
            out
        } else {
            let mut w = MultipartWriter::start(&self.client, &self.bucket, &key, &opts, PART_CONCURRENCY)
                .await
                .map_err(|e| remote_error(path, e))?;
            tracing::debug!(job = self.job, bucket = %self.bucket, key = %key, parts_of = part, "multipart upload from the file");
            let (mut offset, mut counted) = (0, 0);
            while offset < entry.size {
                let len = part.min(entry.size - offset);
                w.push_source(Arc::new(body(offset, len)), len).await.map_err(|e| remote_error(path, e))?;
                offset += len;
                let done = (w.parts_done() as u64).saturating_mul(part).min(entry.size);
                if done > counted {
                    stored(done - counted);
                    counted = done;
                }
            }
            if let Some(why) = source.changed().await {
                w.abort().await;
                return Err(RemoteError::Refused { path: path.to_owned(), reason: why });
            }
            let out = w.finish().await.map_err(|e| remote_error(path, e))?;
            stored(entry.size - counted);
            out
        };
        Ok(Some(written(out, started)))
    }

    async fn stat(&self, path: &str) -> Result<Option<Entry>, RemoteError> {
        let meta = self.client.head_object(&self.bucket, &self.key(path)).await.map_err(|e| remote_error(path, e))?;
        Ok(meta.map(|m| {
            let mtime = m.mtime_or_last_modified().unwrap_or_default();
            Entry::file(path, m.size, Mtime(mtime))
        }))
    }

    async fn delete(&self, path: &str) -> Result<(), RemoteError> {
        if self.hard_delete {
            return self.delete_every_version(path).await;
        }
        self.client.delete_object(&self.bucket, &self.key(path), None).await.map_err(|e| remote_error(path, e))?;
        Ok(())
    }

    async fn make_dir(&self, _path: &str) -> Result<(), RemoteError> {
        Ok(())
    }

    async fn remove_dir(&self, _path: &str) -> Result<bool, RemoteError> {
        Ok(true)
    }

    fn requests(&self) -> Vec<(String, u64)> {
        self.client.request_counts()
    }

    async fn read_meta(&self, path: &str) -> Result<Option<Meta>, RemoteError> {
        let Some(head) =
            self.client.head_object(&self.bucket, &self.key(path)).await.map_err(|e| remote_error(path, e))?
        else {
            return Ok(None);
        };
        // Owner, mode and ACLs under rclone's keys; the mtime in rclone's S3 form, not RFC 3339.
        let pairs =
            head.metadata.iter().filter(|(k, _)| k.as_str() != KEY_MTIME).map(|(k, v)| (k.as_str(), v.as_str()));
        let mut meta = Meta::from_pairs(pairs).map_err(|e| RemoteError::Io {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        meta.mtime = head.mtime().map(Mtime);
        Ok((!meta.is_empty()).then_some(meta))
    }

    async fn sweep_partials(&self, keep_job: Option<u64>) -> Result<u64, RemoteError> {
        let uploads = self
            .client
            .list_multipart_uploads(&self.bucket, &self.prefix)
            .await
            .map_err(|e| remote_error(&self.describe(), e))?;
        let Some(uploads) = uploads else {
            return Ok(0); // the server has no ListMultipartUploads (s3s-fs: 501)
        };
        // Uploads a job of this daemon is still writing (keep_job's among them) stay; every
        // other upload under the folder is a leftover of an interrupted run. Upload listings
        // carry no metadata, and servers' `Initiated` times cannot be trusted (moto sends a
        // fixed date), so "still writing" is what this process knows.
        let mut n = 0;
        for u in uploads {
            if is_upload_active(&self.bucket, &u.upload_id) {
                tracing::debug!(job = self.job, ?keep_job, key = %u.key, "multipart upload still running; kept");
                continue;
            }
            match self.client.abort_multipart_upload(&self.bucket, &u.key, &u.upload_id).await {
                Ok(()) => {
                    tracing::debug!(job = self.job, bucket = %self.bucket, key = %u.key, "aborted a stale multipart upload");
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(bucket = %self.bucket, key = %u.key, error = %e, "cannot abort a stale upload")
                }
            }
        }
        Ok(n)
    }
}

/// Adds `meta` to the user metadata of an upload (rclone's keys; at most 2 KiB in all).
fn add_meta(opts: &mut PutOptions, meta: &Meta, key: &str) {
    let mut used: usize = opts.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + 32;
    for (k, v) in meta.to_pairs() {
        if k == KEY_MTIME {
            continue;
        }
        if used + k.len() + v.len() > MAX_USER_METADATA {
            tracing::warn!(key = %key, metadata = %k, "left out: S3 keeps at most 2 KiB of metadata per object");
            continue;
        }
        used += k.len() + v.len();
        opts.metadata.retain(|(n, _)| *n != k);
        opts.metadata.push((k, v));
    }
}

/// What the next run's listing will show of an upload that started at `started` and was
/// answered with `out`.
fn written(out: PutOutput, started: std::time::Instant) -> Written {
    // The store's LastModified lies between the start of the upload (a multipart object's
    // is its initiation) and the reply, both on the server's clock.
    let took = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
    let window = out.date.map(|d| (d.saturating_sub(took).saturating_sub(1), d.saturating_add(1)));
    Written { etag: out.etag, window }
}

/// A write to S3: buffered whole when it fits one part (one PutObject with
/// `Content-MD5`), else sent as a multipart upload part by part (at most
/// the part being filled plus [`PART_CONCURRENCY`] parts in memory).
struct S3Upload {
    remote: S3Remote,
    path: String,
    key: String,
    size: u64,
    part: u64,
    opts: PutOptions,
    buf: BytesMut,
    written: u64,
    writer: Option<MultipartWriter>,
    started: std::time::Instant,
}

impl S3Upload {
    fn part_len(&self) -> usize {
        usize::try_from(self.part).unwrap_or(usize::MAX)
    }

    async fn push(&mut self, data: Bytes) -> Result<(), RemoteError> {
        if self.writer.is_none() {
            let w = MultipartWriter::start(
                &self.remote.client,
                &self.remote.bucket,
                &self.key,
                &self.opts,
                PART_CONCURRENCY,
            )
            .await
            .map_err(|e| remote_error(&self.path, e))?;
            tracing::debug!(job = self.remote.job, bucket = %self.remote.bucket, key = %self.key, parts_of = self.part, "multipart upload");
            self.writer = Some(w);
        }
        if let Some(w) = self.writer.as_mut() {
            w.push_part(data).await.map_err(|e| remote_error(&self.path, e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), RemoteError> {
        self.written += buf.len() as u64;
        if self.written > self.size {
            return Err(RemoteError::Refused {
                path: self.path.clone(),
                reason: format!("more than the {} bytes announced", self.size),
            });
        }
        self.buf.extend_from_slice(buf);
        // Only objects larger than one part go multipart.
        while self.size > self.part && self.buf.len() >= self.part_len() {
            let data = self.buf.split_to(self.part_len()).freeze();
            self.push(data).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Option<Written>, RemoteError> {
        if self.written != self.size {
            let reason = format!("{} bytes written, {} announced", self.written, self.size);
            if let Some(w) = self.writer.take() {
                w.abort().await;
            }
            return Err(RemoteError::Refused { path: self.path.clone(), reason });
        }
        let rest = std::mem::take(&mut self.buf).freeze();
        let out = if self.size <= self.part {
            let r = &self.remote;
            r.client
                .put_object_bytes(&r.bucket, &self.key, rest, &self.opts)
                .await
                .map_err(|e| remote_error(&self.path, e))?
        } else {
            if !rest.is_empty() {
                self.push(rest).await?;
            }
            let Some(w) = self.writer.take() else {
                return Err(RemoteError::Refused { path: self.path.clone(), reason: "no part was written".to_owned() });
            };
            w.finish().await.map_err(|e| remote_error(&self.path, e))?
        };
        Ok(Some(written(out, self.started)))
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(w) = self.writer.take() {
            w.abort().await;
        }
    }

    fn set_meta(&mut self, meta: &Meta) {
        // Stored as user metadata under rclone's keys; the mtime is already in
        // `X-Amz-Meta-Mtime` in rclone's S3 form. A multipart upload already
        // started keeps what it was created with.
        if self.writer.is_some() {
            tracing::warn!(key = %self.key, "metadata came after the upload started; not stored");
            return;
        }
        add_meta(&mut self.opts, meta, &self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{engine::filter::Filter, remote::s3::S3Config, s3sig::Credentials};
    use std::sync::Arc;

    fn remote(folder: &str) -> S3Remote {
        let client =
            S3Client::new(S3Config::new("http://127.0.0.1:1", "us-east-1", Credentials::new("k", "s"))).unwrap();
        S3Remote::new(client, "bkt", folder, 16 << 20, "", "AES256", 7)
    }

    #[test]
    fn keys_and_description() {
        let r = remote("/backups/nas1/");
        assert_eq!(r.key("a/b.txt"), "backups/nas1/a/b.txt");
        assert_eq!(r.describe(), "s3://bkt/backups/nas1");
        let root = remote("");
        assert_eq!(root.key("a"), "a");
        assert_eq!(root.describe(), "s3://bkt/");
        let o = r.put_options(Mtime(5));
        assert_eq!((o.mtime, o.storage_class, o.sse.as_deref()), (Some(5), None, Some("AES256")));
    }

    #[test]
    fn filters_apply_to_every_folder_above() {
        let filter = Filter::new(&[], &["skip/**".to_owned(), "*.tmp".to_owned()]).unwrap();
        let opts = ListOptions { filter: Arc::new(filter), follow_symlinks: false, versions: false, hints: Vec::new() };
        assert!(S3Remote::passes(&opts, "keep/a.txt"));
        assert!(!S3Remote::passes(&opts, "skip/a.txt"));
        assert!(!S3Remote::passes(&opts, "x.tmp"));
        assert!(!S3Remote::passes(&opts, ".zfs/snapshot/a"), "the built-in .zfs rule");
    }

    #[test]
    fn errors_keep_their_class() {
        let t = super::super::Target::new("GetObject", "b", "k");
        let nf = S3Error::Service {
            target: t.clone(),
            status: 404,
            code: "NoSuchKey".into(),
            message: None,
            request_id: None,
            region: None,
        };
        assert!(matches!(remote_error("p", nf), RemoteError::NotFound { .. }));
        let reset = S3Error::Transport { target: t.clone(), kind: TransportKind::Reset, detail: "x".into() };
        let e = remote_error("p", reset);
        assert!(e.is_retryable(), "{e}");
        let archived = S3Error::Archived { target: t, storage_class: None, request_id: None };
        let e = remote_error("p", archived);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("archived"), "{e}");
    }
}
