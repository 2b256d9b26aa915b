//! Large object reads in parallel ranges: an object of at least [`RANGED_CUTOFF`] bytes is fetched as up to [`STREAMS`] ranged GETs at once (each resuming after a broken connection, `If-Match` its `ETag`), written at their offsets into the destination's temporary file, and checked end to end before the copy may complete; may import std, tokio, `md-5`, `tracing`, `remote` (the trait) and the sibling client modules.
//!
//! What is checked, in this order:
//! * a multipart `ETag` (`md5hex-N`): ranges are cut on part boundaries and each task hashes
//!   the parts it fetches (so hashing runs in parallel); `MD5(concat(part MD5s))-N` must be the
//!   `ETag`. The part size comes from `HEAD ?partNumber=1` where the server answers with
//!   `x-amz-mp-parts-count` (AWS, Garage, moto), else it is inferred from `N` and the size
//!   (whole MiB, the common sizes first: s3s-fs ignores `partNumber`). When the combined digest
//!   differs, the layout is confirmed part by part (HEAD `?partNumber=k`) before the file is
//!   refused; a layout that cannot be confirmed falls back to the next check, never to a false
//!   mismatch;
//! * a plain MD5 `ETag`, or rclone's `X-Amz-Meta-Md5chksum`: the whole-file MD5, hashed by a
//!   follower task that reads the temporary file in order as the ranges land (from the page
//!   cache), overlapping the download;
//! * otherwise (SSE-KMS, no MD5 known) the length, as a single-stream read does.
//!
//! A mismatch, a short body or a failed range fails the whole download; the caller discards the
//! temporary file.

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use md5::{Digest as _, Md5};
use tokio::{io::AsyncReadExt as _, sync::Notify, task::JoinSet};

use crate::remote::{OnStored, RemoteError, WriteAt};

use super::{
    S3Client,
    ops_object::{GetOptions, ObjectMeta, PartHead, Range},
    source::{hex, md5_from_hex, md5_of_md5s},
};

/// Objects from this size on are read in parallel ranges by default (`--ranged-pull-from`;
/// rclone's `--multi-thread-cutoff` is 250 MiB). Measured on loopback s3s-fs (4 × 256 MiB, 4
/// transfers), one stream per object was faster (3.89 s against 5.97 s): ranges pay where one
/// connection's throughput limits, over long distances, for big objects.
pub const DEFAULT_RANGED_CUTOFF: u64 = 1 << 30;

static RANGED_CUTOFF: AtomicU64 = AtomicU64::new(DEFAULT_RANGED_CUTOFF);

/// Sets the size from which objects are read in parallel ranges, for the whole process (the
/// daemon's `--ranged-pull-from`).
pub fn set_ranged_cutoff(bytes: u64) {
    RANGED_CUTOFF.store(bytes.max(RANGE_MIN), Ordering::Relaxed);
}

/// The size from which objects are read in parallel ranges.
pub(crate) fn ranged_cutoff() -> u64 {
    RANGED_CUTOFF.load(Ordering::Relaxed)
}

/// Ranges of one object fetched at once.
pub(crate) const STREAMS: usize = 4;

/// The length a range aims at: a quarter of the object (every stream busy for the whole
/// download with as few requests as rclone's), between these bounds, rounded up to whole parts.
const RANGE_MIN: u64 = 8 << 20;
const RANGE_MAX: u64 = 64 << 20;

/// Bytes read from the network before one positional write (two buffers per range: 16 ranges
/// of 4 transfers hold 8 MiB).
const BUF: usize = 256 << 10;

/// The part sizes tried first when the server does not tell them (rclone's 5 MiB default, our
/// 16 MiB default, and other common tool defaults), in MiB.
const COMMON_PART_MIB: [u64; 6] = [5, 16, 8, 10, 15, 64];

/// Where a multipart object's parts lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Length of every part but the last.
    part: u64,
    /// Number of parts.
    count: u64,
    /// Told by the server (`x-amz-mp-parts-count` and part 1's length), not inferred.
    told: bool,
}

impl Layout {
    /// Whether `count` parts of `part` bytes (the last one shorter) make `size` bytes.
    fn fits(part: u64, count: u64, size: u64) -> bool {
        part > 0
            && count > 0
            && (count - 1).checked_mul(part).is_some_and(|a| a < size)
            && part.saturating_mul(count) >= size
    }

    /// The part size inferred from the number of parts: whole MiB, common sizes first.
    fn infer(count: u64, size: u64) -> Option<Self> {
        const MIB: u64 = 1 << 20;
        if count == 1 {
            return Some(Self { part: size, count, told: false });
        }
        let part = COMMON_PART_MIB
            .iter()
            .map(|m| m * MIB)
            .find(|&p| Self::fits(p, count, size))
            .or_else(|| Some(size.div_ceil(count).div_ceil(MIB) * MIB).filter(|&p| Self::fits(p, count, size)))?;
        Some(Self { part, count, told: false })
    }

    /// The bytes of part `k` (from 0).
    fn span(&self, k: u64, size: u64) -> (u64, u64) {
        let start = k * self.part;
        (start, (start + self.part).min(size))
    }
}

/// How a download is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// The multipart layout and the `ETag`'s digest (hex, without `-N`).
    parts: Option<(Layout, String)>,
    /// The whole-file MD5 (hex) and where it comes from.
    whole: Option<(String, &'static str)>,
    /// Hash the whole file while the ranges land (else only if the part check is inconclusive).
    follow: bool,
}

/// The check of an object from its metadata and what `HEAD ?partNumber=1` said.
fn plan(meta: &ObjectMeta, size: u64, parts_count: Option<u64>, part1_len: u64) -> Plan {
    if meta.sse.as_deref().is_some_and(|s| s.starts_with("aws:kms")) {
        return Plan { parts: None, whole: None, follow: false }; // no ETag of SSE-KMS is an MD5
    }
    let etag = meta.etag.trim_matches('"').to_ascii_lowercase();
    let is_hex = |s: &str| md5_from_hex(s).is_some();
    if is_hex(&etag) {
        return Plan { parts: None, whole: Some((etag, "ETag")), follow: true };
    }
    let md5chksum = meta.md5_hex().map(|m| (m, "X-Amz-Meta-Md5chksum"));
    let parts = etag.split_once('-').and_then(|(digest, n)| {
        let count: u64 = n.parse().ok().filter(|&c| c > 0)?;
        if !is_hex(digest) {
            return None;
        }
        let layout = match parts_count {
            Some(c) if c == count && Layout::fits(part1_len, count, size) => {
                Layout { part: part1_len, count, told: true }
            }
            Some(_) => return None, // the server's count disagrees with the ETag: no part check
            None => Layout::infer(count, size)?,
        };
        Some((layout, digest.to_owned()))
    });
    let follow = parts.is_none() && md5chksum.is_some();
    Plan { parts, whole: md5chksum, follow }
}

/// The ranges to fetch: whole parts when they are known.
fn ranges(size: u64, layout: Option<Layout>) -> Vec<(u64, u64)> {
    let target = size.div_ceil(STREAMS as u64).clamp(RANGE_MIN, RANGE_MAX);
    let step = match layout {
        Some(l) => target.div_ceil(l.part) * l.part,
        None => target,
    };
    (0..size.div_ceil(step)).map(|i| (i * step, ((i + 1) * step).min(size))).collect()
}

/// Which bytes of the temporary file have landed, for the follower that hashes them in order.
#[derive(Default)]
struct Landed {
    spans: Mutex<BTreeMap<u64, u64>>,
    more: Notify,
}

impl Landed {
    fn add(&self, start: u64, end: u64) {
        {
            let mut m = self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (mut s, mut e) = (start, end);
            // Merge with a span ending where this one starts, and with one starting where it ends.
            if let Some((&ps, &pe)) = m.range(..=s).next_back()
                && pe >= s
            {
                s = ps;
                e = e.max(pe);
            }
            if let Some(ne) = m.remove(&e) {
                e = ne;
            }
            m.insert(s, e);
        }
        self.more.notify_one();
    }

    /// The end of the bytes landed from offset 0 on.
    fn frontier(&self) -> u64 {
        let m = self.spans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(&0).copied().unwrap_or(0)
    }
}

/// One object being read into a sink.
struct Job {
    client: S3Client,
    bucket: String,
    key: String,
    path: String,
    etag: String,
    size: u64,
    sink: Arc<dyn WriteAt>,
    stored: OnStored,
    layout: Option<Layout>,
    /// Each part's MD5, filled by the range tasks.
    digests: Mutex<Vec<[u8; 16]>>,
    landed: Option<Landed>,
}

/// The part being hashed: its index, its end, the hash so far.
type PartMd5 = (u64, u64, Md5);

/// A hash-and-write in progress: the buffer back, the part hash, the parts it completed.
type Hashing = tokio::task::JoinHandle<io::Result<(Vec<u8>, Option<PartMd5>, Vec<(u64, [u8; 16])>)>>;

fn io_err(path: &str, kind: io::ErrorKind, msg: String) -> RemoteError {
    RemoteError::Io { path: path.to_owned(), source: io::Error::new(kind, msg) }
}

fn join_err(path: &str, e: &tokio::task::JoinError) -> RemoteError {
    RemoteError::Refused { path: path.to_owned(), reason: format!("download task failed: {e}") }
}

impl Job {
    /// Fetches `[start, end)` with one ranged GET (resumed where it breaks), writes it at its
    /// offset and hashes the parts it covers.
    async fn fetch(&self, start: u64, end: u64) -> Result<(), RemoteError> {
        let opts = GetOptions {
            range: Some(Range::Inclusive(start, end - 1)),
            version_id: None,
            if_match: Some(self.etag.clone()),
        };
        let (meta, mut rd) = self
            .client
            .open_object(&self.bucket, &self.key, &opts)
            .await
            .map_err(|e| super::remote::remote_error(&self.path, e))?;
        if rd.position() != start || rd.remaining() != end - start || meta.size != self.size {
            return Err(io_err(
                &self.path,
                io::ErrorKind::InvalidData,
                format!(
                    "asked for bytes {start}-{} of {}, the server answered bytes {}-{} of {}",
                    end - 1,
                    self.size,
                    rd.position(),
                    rd.position() + rd.remaining(),
                    meta.size
                ),
            ));
        }
        let mut part = self.layout.map(|l| (start / l.part, l.span(start / l.part, self.size).1, Md5::new()));
        // Two buffers: the next one fills from the network while the last is hashed and written.
        let mut spare = vec![0u8; BUF];
        let mut pending: Option<(u64, usize, Hashing)> = None;
        let mut pos = start;
        while pos < end {
            let mut buf = std::mem::take(&mut spare);
            let want = usize::try_from((end - pos).min(BUF as u64)).unwrap_or(BUF);
            let mut got = 0;
            while got < want {
                let n = rd.read(&mut buf[got..want]).await.map_err(|e| RemoteError::io(&self.path, e))?;
                if n == 0 {
                    return Err(io_err(
                        &self.path,
                        io::ErrorKind::UnexpectedEof,
                        format!("the body of bytes {start}-{} ended at byte {}", end - 1, pos + got as u64),
                    ));
                }
                got += n;
            }
            if let Some((at, len, h)) = pending.take() {
                (spare, part) = self.landed_at(at, len, h).await?;
            }
            // Hash and write on a blocking thread: MD5 of 1 MiB takes a few milliseconds.
            let (sink, layout, size) = (self.sink.clone(), self.layout, self.size);
            let h = tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                if let (Some(l), Some((k, part_end, md5))) = (layout, part.as_mut()) {
                    let mut at = 0;
                    while at < got {
                        let take = usize::try_from((*part_end - (pos + at as u64)).min((got - at) as u64)).unwrap_or(0);
                        md5.update(&buf[at..at + take]);
                        at += take;
                        if pos + at as u64 == *part_end {
                            done.push((*k, std::mem::take(md5).finalize().into()));
                            *k += 1;
                            *part_end = l.span(*k, size).1;
                        }
                    }
                }
                sink.write_at(pos, &buf[..got]).map(|()| (buf, part, done))
            });
            part = None; // it travels with the write and comes back with it
            pending = Some((pos, got, h));
            if spare.is_empty() {
                spare = vec![0u8; BUF];
            }
            pos += got as u64;
        }
        if let Some((at, len, h)) = pending.take() {
            self.landed_at(at, len, h).await?;
        }
        Ok(())
    }

    /// Waits for the write of `len` bytes at `at`, then notes its part digests, what landed and
    /// the progress; gives back the buffer and the hash of the part in progress.
    async fn landed_at(&self, at: u64, len: usize, h: Hashing) -> Result<(Vec<u8>, Option<PartMd5>), RemoteError> {
        let (buf, part, done) =
            h.await.map_err(|e| join_err(&self.path, &e))?.map_err(|e| RemoteError::io(&self.path, e))?;
        if !done.is_empty() {
            let mut d = self.digests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, digest) in done {
                if let Some(slot) = usize::try_from(k).ok().and_then(|k| d.get_mut(k)) {
                    *slot = digest;
                }
            }
        }
        if let Some(l) = &self.landed {
            l.add(at, at + len as u64);
        }
        (self.stored)(len as u64);
        Ok((buf, part))
    }

    /// The MD5 of the temporary file, read in order as far as it has landed (all of it when
    /// `landed` is `None`).
    async fn hash_file(&self, landed: Option<&Landed>) -> Result<String, RemoteError> {
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; BUF];
        let mut hashed = 0;
        while hashed < self.size {
            let front = landed.map_or(self.size, Landed::frontier);
            if front <= hashed {
                if let Some(l) = landed {
                    l.more.notified().await;
                }
                continue;
            }
            let len = usize::try_from((front - hashed).min(BUF as u64)).unwrap_or(BUF);
            let sink = self.sink.clone();
            let (b, m) = tokio::task::spawn_blocking(move || {
                let mut at = 0;
                while at < len {
                    match sink.read_at(hashed + at as u64, &mut buf[at..len])? {
                        0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early")),
                        n => at += n,
                    }
                }
                md5.update(&buf[..len]);
                Ok((buf, md5))
            })
            .await
            .map_err(|e| join_err(&self.path, &e))?
            .map_err(|e| RemoteError::io(&self.path, e))?;
            (buf, md5) = (b, m);
            hashed += len as u64;
        }
        Ok(hex(&md5.finalize()))
    }

    /// Whether every part has the length the layout gives it (one HEAD per part).
    async fn layout_confirmed(&self, l: Layout) -> Result<bool, RemoteError> {
        for k in 0..l.count {
            let (a, b) = l.span(k, self.size);
            let n = u32::try_from(k + 1).unwrap_or(u32::MAX);
            let head = self
                .client
                .head_object_part(&self.bucket, &self.key, n)
                .await
                .map_err(|e| super::remote::remote_error(&self.path, e))?;
            if head.is_none_or(|h| h.len != b - a || h.parts_count != Some(l.count)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn mismatch(path: &str, bucket: &str, key: &str, from: &str, want: &str, got: &str) -> RemoteError {
    io_err(
        path,
        io::ErrorKind::InvalidData,
        format!(
            "s3://{bucket}/{key}: the downloaded bytes do not match the object ({from} says MD5 {want}, the bytes \
             have {got}); refused"
        ),
    )
}

/// Reads all `size` bytes of `bucket/key` (at `path` in the tree) into `sink` in parallel
/// ranges, checked as the module documentation says.
pub(crate) async fn download(
    client: &S3Client,
    bucket: &str,
    key: &str,
    path: &str,
    size: u64,
    sink: Arc<dyn WriteAt>,
    stored: OnStored,
) -> Result<(), RemoteError> {
    let head = match client.head_object_part(bucket, key, 1).await {
        // A server that refuses partNumber outright (not a network failure): a plain HEAD.
        Err(e) if matches!(e.status(), Some(400 | 416 | 501)) => {
            tracing::debug!(bucket, key, error = %e, "HEAD ?partNumber refused; a plain HEAD instead");
            let meta = client.head_object(bucket, key).await.map_err(|e| super::remote::remote_error(path, e))?;
            meta.map(|meta| PartHead { len: meta.size, meta, parts_count: None })
        }
        other => other.map_err(|e| super::remote::remote_error(path, e))?,
    };
    let Some(head) = head else { return Err(RemoteError::NotFound { path: path.to_owned() }) };
    if head.parts_count.is_none() && head.meta.size != size {
        return Err(io_err(
            path,
            io::ErrorKind::InvalidData,
            format!("changed since it was listed ({} bytes now, {size} listed); not copied", head.meta.size),
        ));
    }
    let plan = plan(&head.meta, size, head.parts_count, head.len);
    let layout = plan.parts.as_ref().map(|(l, _)| *l);
    tracing::debug!(bucket, key, size, ?layout, whole = plan.whole.is_some(), follow = plan.follow, "ranged download");
    let job = Arc::new(Job {
        client: client.clone(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        path: path.to_owned(),
        etag: head.meta.etag.clone(),
        size,
        sink,
        stored,
        layout,
        digests: Mutex::new(vec![[0; 16]; layout.map_or(0, |l| usize::try_from(l.count).unwrap_or(0))]),
        landed: plan.follow.then(Landed::default),
    });
    let spans = Arc::new(ranges(size, layout));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks: JoinSet<Result<Option<String>, RemoteError>> = JoinSet::new();
    for _ in 0..STREAMS.min(spans.len()) {
        let (job, spans, next) = (job.clone(), spans.clone(), next.clone());
        tasks.spawn(async move {
            while let Some(&(a, b)) = spans.get(next.fetch_add(1, Ordering::Relaxed)) {
                job.fetch(a, b).await?;
            }
            Ok(None)
        });
    }
    if plan.follow {
        let job = job.clone();
        tasks.spawn(async move { job.hash_file(job.landed.as_ref()).await.map(Some) });
    }
    let mut followed = None;
    // The first failure ends the download: dropping the set aborts the other ranges.
    while let Some(r) = tasks.join_next().await {
        if let Some(md5) = r.map_err(|e| join_err(path, &e))?? {
            followed = Some(md5);
        }
    }
    if let Some((l, want)) = &plan.parts {
        let combined = md5_of_md5s(job.digests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter());
        if combined == *want {
            return Ok(());
        }
        // Another layout than assumed, or other bytes: tell them apart before refusing.
        if l.told && job.layout_confirmed(*l).await? {
            let (w, g) = (format!("{want}-{}", l.count), format!("{combined}-{}", l.count));
            return Err(mismatch(path, bucket, key, "the multipart ETag", &w, &g));
        }
        tracing::debug!(bucket, key, ?l, "parts laid out otherwise than assumed; checking the whole MD5 instead");
    }
    let Some((want, from)) = plan.whole else { return Ok(()) };
    let got = match followed {
        Some(m) => m,
        None => job.hash_file(None).await?,
    };
    if got == want { Ok(()) } else { Err(mismatch(path, bucket, key, from, &want, &got)) }
}

#[cfg(test)]
mod tests {
    use super::super::multipart::MD5_META;
    use super::*;

    const MIB: u64 = 1 << 20;

    fn meta(etag: &str, md5chksum: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            size: 0,
            etag: format!("\"{etag}\""),
            last_modified: None,
            storage_class: "STANDARD".into(),
            content_type: None,
            metadata: md5chksum.map(|v| (MD5_META.to_owned(), v.to_owned())).into_iter().collect(),
            version_id: None,
            restore: None,
            sse: None,
        }
    }

    #[test]
    fn layouts_are_told_or_inferred() {
        // rclone's 5 MiB parts of 256 MiB: 52 parts.
        assert_eq!(Layout::infer(52, 256 * MIB), Some(Layout { part: 5 * MIB, count: 52, told: false }));
        // 12 MiB in 3 parts could be 4 or 5 MiB parts: the common 5 MiB wins.
        assert_eq!(Layout::infer(3, 12 * MIB).map(|l| l.part), Some(5 * MIB));
        // 100 MiB in 4 parts: 25 MiB (the smallest whole MiB that fits).
        assert_eq!(Layout::infer(4, 100 * MIB).map(|l| l.part), Some(25 * MIB));
        assert_eq!(Layout::infer(1, 7).map(|l| l.part), Some(7));
        assert_eq!(Layout::infer(10, 3), None, "more parts than bytes");
        let a = "0123456789abcdef0123456789abcdef";
        let p = plan(&meta(&format!("{a}-52"), None), 256 * MIB, Some(52), 5 * MIB);
        assert_eq!(p.parts, Some((Layout { part: 5 * MIB, count: 52, told: true }, a.to_owned())));
        assert!(!p.follow && p.whole.is_none());
        // The server's count disagrees: no part check, the length only.
        let p = plan(&meta(&format!("{a}-52"), None), 256 * MIB, Some(51), 5 * MIB);
        assert_eq!(p, Plan { parts: None, whole: None, follow: false });
        // A plain ETag is the whole MD5, hashed while the ranges land.
        let p = plan(&meta(a, None), 256 * MIB, None, 256 * MIB);
        assert_eq!(p, Plan { parts: None, whole: Some((a.to_owned(), "ETag")), follow: true });
        // md5chksum: checked after the parts only when they do not settle it.
        let b64 = "ASNFZ4mrze8BI0VniavN7w==";
        let p = plan(&meta(&format!("{a}-3"), Some(b64)), 12 * MIB, None, 12 * MIB);
        assert!(p.parts.is_some() && p.whole.is_some() && !p.follow, "{p:?}");
        let p = plan(&meta("not-an-md5", Some(b64)), 12 * MIB, None, 12 * MIB);
        assert!(p.parts.is_none() && p.follow, "{p:?}");
    }

    #[test]
    fn ranges_cover_whole_parts() {
        let r = ranges(256 * MIB, Some(Layout { part: 5 * MIB, count: 52, told: false }));
        assert!(r.iter().all(|(a, b)| a % (5 * MIB) == 0 && (b % (5 * MIB) == 0 || *b == 256 * MIB)));
        assert_eq!(r.first(), Some(&(0, 65 * MIB)), "a quarter, rounded up to whole parts");
        assert_eq!((r.len(), r.last().map(|x| x.1)), (4, Some(256 * MIB)));
        let r = ranges(1 << 30, Some(Layout { part: 16 * MIB, count: 64, told: true }));
        assert_eq!((r.len(), r[0]), (16, (0, 64 * MIB)), "at most 64 MiB a range");
        let r = ranges(70 * MIB + 1, None);
        assert_eq!(r.len(), 4);
        assert!(r.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(ranges(64 * MIB, None).len(), 4);
    }

    #[test]
    fn landed_spans_merge() {
        let l = Landed::default();
        l.add(10, 20);
        assert_eq!(l.frontier(), 0);
        l.add(0, 10);
        assert_eq!(l.frontier(), 20);
        l.add(30, 40);
        l.add(20, 30);
        assert_eq!(l.frontier(), 40);
    }
}
