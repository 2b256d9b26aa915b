//! What a task's last run saw of its bucket remote: for each file its size, mtime and the
//! version of the object that held them (ETag, upload time), kept per task in the state folder,
//! so that a run takes mtimes from it and asks the store (one HEAD each) only where the listing
//! shows another version. Imports `engine::entry`, `remote` (the listing types), std, tokio,
//! serde and ciborium.
//!
//! The file is a CBOR header followed by records in [`key_cmp`] order, read and written as a
//! stream next to the listing (memory stays flat however many files there are). Uploads of the
//! run arrive in any order: they are sorted in memory up to [`RUN_RECORDS`] at a time and spilled
//! into sorted runs, which the commit merges with the listing's records into the next file
//! (temporary name, fsync, rename). A damaged or foreign file is ignored: the cost is one HEAD
//! per object, once.

use std::{
    cmp::Ordering,
    collections::VecDeque,
    fs::File,
    io::{self, BufRead, BufReader, BufWriter},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle};

use super::entry::{Entry, Mtime, key_cmp};
use crate::remote::{Listed, Remote, Version, Written};

/// Upload records sorted in memory before they are spilled to a sorted run.
pub const RUN_RECORDS: usize = 16_384;

/// Files merged at once: more sorted runs than this are first merged in groups, so that the
/// open files and their read buffers stay bounded however many files a run uploads.
const MERGE_FAN: usize = 64;

/// Records read at most to find the folders a listing may start early ([`Seen::first_folders`]).
const HINT_SCAN: usize = 4096;

/// Stats (HEAD requests) in flight while resolving.
const STAT_CONCURRENCY: usize = 16;

const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    remote: String,
}

/// One file as a run left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Path relative to the remote root.
    pub p: String,
    /// Size.
    pub s: u64,
    /// Mtime: seconds and nanoseconds.
    pub m: (i64, u32),
    /// ETag (empty when unknown).
    pub e: String,
    /// The object's upload time, when a listing showed it.
    pub t: Option<i64>,
    /// For an upload of ours not listed since: the server's clock at its start and end.
    pub w: Option<(i64, i64)>,
}

impl Record {
    fn mtime(&self) -> Mtime {
        Mtime::from_parts(self.m.0, self.m.1)
    }

    /// Whether the listing's `version` of a file of `size` bytes is the one this record saw.
    /// The ETag must agree when both are known (servers that leave it out of listings are then
    /// matched on upload time alone); the upload time must be the one listed before, or for our
    /// own upload lie within its window.
    #[must_use]
    pub fn matches(&self, size: u64, version: &Version) -> bool {
        if self.s != size || (!self.e.is_empty() && !version.etag.is_empty() && self.e != version.etag) {
            return false;
        }
        match (self.t, self.w) {
            (Some(t), _) => t == version.modified,
            (None, Some((from, to))) => (from..=to).contains(&version.modified),
            (None, None) => false,
        }
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Records in order from a file written by [`RecordWriter`].
struct RecordReader {
    rd: BufReader<File>,
    head: Option<Record>,
}

impl RecordReader {
    fn open(path: &Path, remote: Option<&str>) -> io::Result<Self> {
        let mut rd = BufReader::with_capacity(16 << 10, File::open(path)?);
        let h: Header = ciborium::from_reader(&mut rd).map_err(io_err)?;
        if h.format != FORMAT || remote.is_some_and(|r| r != h.remote) {
            return Err(io_err("written for another remote or format"));
        }
        let mut me = Self { rd, head: None };
        me.advance()?;
        Ok(me)
    }

    fn advance(&mut self) -> io::Result<()> {
        self.head = if self.rd.fill_buf()?.is_empty() {
            None
        } else {
            Some(ciborium::from_reader(&mut self.rd).map_err(io_err)?)
        };
        Ok(())
    }

    /// The record of `path`, skipping those before it; `None` when there is none.
    fn seek(&mut self, path: &str) -> io::Result<Option<&Record>> {
        while let Some(h) = &self.head {
            match key_cmp(&h.p, path) {
                Ordering::Less => self.advance()?,
                Ordering::Equal => return Ok(self.head.as_ref()),
                Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }
}

struct RecordWriter {
    path: PathBuf,
    wr: BufWriter<File>,
}

impl RecordWriter {
    fn create(path: PathBuf, remote: &str) -> io::Result<Self> {
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
        let mut wr = BufWriter::with_capacity(64 << 10, f);
        ciborium::into_writer(&Header { format: FORMAT, remote: remote.to_owned() }, &mut wr).map_err(io_err)?;
        Ok(Self { path, wr })
    }

    fn put(&mut self, r: &Record) -> io::Result<()> {
        ciborium::into_writer(r, &mut self.wr).map_err(io_err)
    }

    fn close(self, sync: bool) -> io::Result<PathBuf> {
        let f = self.wr.into_inner().map_err(io::IntoInnerError::into_error)?;
        if sync {
            f.sync_all()?;
        }
        Ok(self.path)
    }
}

struct State {
    old: Option<RecordReader>,
    listed: Option<RecordWriter>,
    uploads: Vec<Record>,
    runs: Vec<PathBuf>,
    failed: bool,
}

/// The cache of one task's bucket remote during a run. Cheap to share.
#[derive(Clone)]
pub struct Seen {
    file: PathBuf,
    remote: String,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen").field("file", &self.file).finish_non_exhaustive()
    }
}

impl Seen {
    /// The cache in `file` for the remote described as `remote` (a file written for another
    /// remote is ignored). Problems reading it are logged and cost only HEAD requests.
    #[must_use]
    pub fn open(file: PathBuf, remote: String) -> Self {
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let old = match RecordReader::open(&file, Some(&remote)) {
            Ok(r) => Some(r),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::info!(file = %file.display(), error = %e, "listing cache not used");
                None
            }
        };
        let listed = match RecordWriter::create(file.with_extension("listed"), &remote) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "listing cache not written");
                None
            }
        };
        let failed = listed.is_none();
        Self {
            file,
            remote,
            state: Arc::new(Mutex::new(State { old, listed, uploads: Vec::new(), runs: Vec::new(), failed })),
        }
    }

    /// Up to `n` folders of the files the last run saw, in the order a walk enters them (each
    /// folder before those inside it, all in key order), from the first [`HINT_SCAN`] records;
    /// none when there is no usable cache. Reads the file: call it on a blocking thread.
    #[must_use]
    pub fn first_folders(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Ok(mut rd) = RecordReader::open(&self.file, Some(&self.remote)) else { return out };
        for _ in 0..HINT_SCAN {
            let Some(r) = rd.head.take() else { break };
            for (i, _) in r.p.match_indices('/') {
                let folder = &r.p[..i];
                if !out.iter().any(|f| f == folder) {
                    if out.len() == n {
                        return out;
                    }
                    out.push(folder.to_owned());
                }
            }
            if rd.advance().is_err() {
                break;
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The mtime the last run saw for this version of `entry`, if it is the same version.
    fn known(&self, entry: &Entry, version: &Version) -> Option<Mtime> {
        let mut st = self.lock();
        match st.old.as_mut().map(|r| r.seek(&entry.path)) {
            Some(Ok(Some(r))) if r.matches(entry.size, version) => Some(r.mtime()),
            Some(Err(e)) => {
                tracing::info!(error = %e, "listing cache unreadable; the rest is asked for");
                st.old = None;
                None
            }
            _ => None,
        }
    }

    /// Notes a listed file with its resolved mtime (in listing order).
    fn listed(&self, entry: &Entry, version: &Version) {
        let rec = Record {
            p: entry.path.clone(),
            s: entry.size,
            m: (entry.mtime.secs(), entry.mtime.subsec_nanos()),
            e: version.etag.clone(),
            t: Some(version.modified),
            w: None,
        };
        let mut st = self.lock();
        if let Some(w) = st.listed.as_mut()
            && let Err(e) = w.put(&rec)
        {
            tracing::warn!(error = %e, "listing cache not written");
            st.listed = None;
            st.failed = true;
        }
    }

    /// Notes a file this run uploaded (any order).
    pub fn uploaded(&self, entry: &Entry, written: &Written) {
        let rec = Record {
            p: entry.path.clone(),
            s: entry.size,
            m: (entry.mtime.secs(), entry.mtime.subsec_nanos()),
            e: written.etag.clone(),
            t: None,
            w: written.window,
        };
        let mut st = self.lock();
        st.uploads.push(rec);
        if st.uploads.len() >= RUN_RECORDS {
            let n = st.runs.len();
            let path = self.file.with_extension(format!("run{n}"));
            let batch = std::mem::replace(&mut st.uploads, Vec::with_capacity(RUN_RECORDS));
            match write_run(path, &self.remote, batch) {
                Ok(p) => st.runs.push(p),
                Err(e) => {
                    tracing::warn!(error = %e, "listing cache not written");
                    st.failed = true;
                }
            }
        }
    }

    /// Writes the next cache file from what this run listed and uploaded (blocking IO: call
    /// from a blocking thread). When anything went wrong on the way, the old file is removed
    /// instead: a later run then asks the store again.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn commit(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.old = None;
        let listed = st.listed.take().map(|w| w.close(false)).transpose();
        let runs = std::mem::take(&mut st.runs);
        let uploads = std::mem::take(&mut st.uploads);
        let failed = st.failed;
        drop(st);
        let mut merged: Vec<PathBuf> = Vec::new();
        let res = (|| {
            let listed = listed.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
            if failed {
                return Err(io_err("a part of the cache could not be written"));
            }
            let last = write_run(self.file.with_extension(format!("run{}", runs.len())), &self.remote, uploads)?;
            let runs =
                self.merge_down(runs.iter().cloned().chain(std::iter::once(last)).collect(), MERGE_FAN, &mut merged)?;
            // Uploads win over what was listed before them; `sources[0]` is the listing.
            let mut sources = Vec::new();
            for p in listed.iter().chain(runs.iter()) {
                sources.push(RecordReader::open(p, None)?);
            }
            let tmp = self.file.with_extension("tmp");
            let mut out = RecordWriter::create(tmp.clone(), &self.remote)?;
            merge(&mut sources, &mut out)?;
            out.close(true)?;
            std::fs::rename(&tmp, &self.file)?;
            Ok(())
        })();
        for p in listed.ok().flatten().iter().chain(runs.iter()) {
            let _ = std::fs::remove_file(p);
        }
        for i in 0..=runs.len() {
            let _ = std::fs::remove_file(self.file.with_extension(format!("run{i}")));
        }
        for p in &merged {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(self.file.with_extension("tmp"));
        if res.is_err() {
            let _ = std::fs::remove_file(&self.file);
        }
        res
    }
}

impl Seen {
    /// Merges sorted runs group by group (`fan` at a time, in order, so a later upload of a path
    /// still wins) until fewer than `fan` are left; the files written are added to `merged`.
    fn merge_down(&self, mut runs: Vec<PathBuf>, fan: usize, merged: &mut Vec<PathBuf>) -> io::Result<Vec<PathBuf>> {
        while runs.len() >= fan {
            let mut next = Vec::new();
            for group in runs.chunks(fan) {
                let path = self.file.with_extension(format!("merge{}", merged.len()));
                merged.push(path.clone());
                let mut sources = group.iter().map(|p| RecordReader::open(p, None)).collect::<io::Result<Vec<_>>>()?;
                let mut out = RecordWriter::create(path, &self.remote)?;
                merge(&mut sources, &mut out)?;
                next.push(out.close(false)?);
            }
            runs = next;
        }
        Ok(runs)
    }
}

fn write_run(path: PathBuf, remote: &str, mut batch: Vec<Record>) -> io::Result<PathBuf> {
    batch.sort_by(|a, b| key_cmp(&a.p, &b.p));
    let mut w = RecordWriter::create(path, remote)?;
    for r in &batch {
        w.put(r)?;
    }
    w.close(false)
}

/// Merges sorted sources into `out`; for a path in several, the last source wins.
fn merge(sources: &mut [RecordReader], out: &mut RecordWriter) -> io::Result<()> {
    loop {
        let mut best: Option<usize> = None;
        for (i, s) in sources.iter().enumerate() {
            if let Some(h) = &s.head {
                best = match best {
                    Some(b) if key_cmp(&h.p, sources[b].head.as_ref().map_or("", |r| r.p.as_str())).is_gt() => Some(b),
                    _ => Some(i),
                };
            }
        }
        let Some(b) = best else { return Ok(()) };
        let path = sources[b].head.as_ref().map(|r| r.p.clone()).unwrap_or_default();
        // `best` is the last source holding the smallest path: it wins; the others skip it.
        let rec = sources[b].head.take();
        for s in sources.iter_mut() {
            if s.head.as_ref().is_some_and(|h| h.p == path) {
                s.advance()?;
            }
        }
        sources[b].advance()?;
        if let Some(r) = rec {
            out.put(&r)?;
        }
    }
}

/// The cache file of `task` under `state_dir`.
#[must_use]
pub fn file_for(state_dir: &Path, task: u64) -> PathBuf {
    state_dir.join("seen").join(format!("task-{task}.cbor"))
}

/// Removes the cache of `task` (when the task is deleted).
pub fn forget(state_dir: &Path, task: u64) {
    let _ = std::fs::remove_file(file_for(state_dir, task));
}

enum Pending {
    Ready(Listed),
    Stat(Entry, Version, JoinHandle<Result<Option<Entry>, crate::remote::RemoteError>>),
}

/// Passes a listing on with every [`Listed::Unresolved`] file resolved: its mtime from `seen`
/// when the version matches, else from `remote.stat` (up to [`STAT_CONCURRENCY`] at once, order
/// kept). Counts the stats in `stats`.
pub async fn resolve(
    remote: Arc<dyn Remote>,
    seen: Option<Seen>,
    mut rx: mpsc::Receiver<Listed>,
    tx: mpsc::Sender<Listed>,
    stats: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut window: VecDeque<Pending> = VecDeque::new();
    loop {
        let item = if window.len() >= STAT_CONCURRENCY { None } else { rx.recv().await };
        let Some(item) = item else {
            // Input ended or the window is full: send the oldest.
            let Some(front) = window.pop_front() else { return };
            let out = match front {
                Pending::Ready(l) => Some(l),
                Pending::Stat(entry, version, h) => match h.await {
                    Ok(Ok(Some(e))) => {
                        let resolved = Entry { mtime: e.mtime, ..entry };
                        if let Some(s) = &seen {
                            s.listed(&resolved, &version);
                        }
                        Some(Listed::Entry(resolved))
                    }
                    Ok(Ok(None)) => None, // deleted since it was listed
                    Ok(Err(e)) => Some(Listed::Error { path: entry.path, reason: e.to_string() }),
                    Err(e) => Some(Listed::Error { path: entry.path, reason: e.to_string() }),
                },
            };
            if let Some(l) = out
                && tx.send(l).await.is_err()
            {
                return;
            }
            continue;
        };
        match item {
            Listed::Unresolved { entry, version } => {
                if let Some(mtime) = seen.as_ref().and_then(|s| s.known(&entry, &version)) {
                    let resolved = Entry { mtime, ..entry };
                    if let Some(s) = &seen {
                        s.listed(&resolved, &version);
                    }
                    push_ready(&mut window, &tx, Listed::Entry(resolved)).await;
                } else {
                    stats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let (r, p) = (remote.clone(), entry.path.clone());
                    window.push_back(Pending::Stat(entry, version, tokio::spawn(async move { r.stat(&p).await })));
                }
            }
            other => push_ready(&mut window, &tx, other).await,
        }
    }
}

/// Queues `l` behind pending stats, or sends it at once when none is pending.
async fn push_ready(window: &mut VecDeque<Pending>, tx: &mpsc::Sender<Listed>, l: Listed) {
    if window.is_empty() {
        let _ = tx.send(l).await;
    } else {
        window.push_back(Pending::Ready(l));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(p: &str, t: Option<i64>, w: Option<(i64, i64)>) -> Record {
        Record { p: p.into(), s: 4, m: (10, 5), e: "\"e1\"".into(), t, w }
    }

    #[test]
    fn versions_match_on_etag_and_time() {
        let v = |etag: &str, modified| Version { etag: etag.into(), modified };
        let listed = rec("a", Some(100), None);
        assert!(listed.matches(4, &v("\"e1\"", 100)));
        assert!(listed.matches(4, &v("", 100)), "listings without ETags match on time");
        assert!(!listed.matches(5, &v("\"e1\"", 100)), "size");
        assert!(!listed.matches(4, &v("\"e2\"", 100)), "etag");
        assert!(!listed.matches(4, &v("\"e1\"", 101)), "time");
        let ours = rec("a", None, Some((98, 103)));
        assert!(ours.matches(4, &v("\"e1\"", 98)) && ours.matches(4, &v("", 103)));
        assert!(!ours.matches(4, &v("\"e1\"", 104)) && !ours.matches(4, &v("\"e1\"", 97)));
        assert!(!rec("a", None, None).matches(4, &v("\"e1\"", 1)));
    }

    fn read_all(path: &Path) -> Vec<Record> {
        let mut r = RecordReader::open(path, Some("r")).unwrap();
        let mut out = Vec::new();
        while let Some(h) = r.head.take() {
            out.push(h);
            r.advance().unwrap();
        }
        out
    }

    #[test]
    fn many_runs_merge_in_groups_and_the_last_upload_of_a_path_wins() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Seen::open(dir.path().join("task-1.cbor"), "r".into());
        let mut runs = Vec::new();
        for i in 0..10u64 {
            // Each run holds its own paths and "same", uploaded again by every run.
            let batch = vec![rec(&format!("p{i}"), None, Some((i as i64, 0))), rec("same", None, Some((i as i64, 0)))];
            runs.push(write_run(dir.path().join(format!("task-1.run{i}")), "r", batch).unwrap());
        }
        let mut merged = Vec::new();
        let left = seen.merge_down(runs, 3, &mut merged).unwrap();
        assert!(left.len() < 3, "{left:?}");
        assert_eq!(merged.len(), 4 + 2, "10 runs → 4 → 2");
        let mut sources: Vec<_> = left.iter().map(|p| RecordReader::open(p, None).unwrap()).collect();
        let out_path = dir.path().join("out");
        let mut out = RecordWriter::create(out_path.clone(), "r").unwrap();
        merge(&mut sources, &mut out).unwrap();
        out.close(false).unwrap();
        let all = read_all(&out_path);
        let names: Vec<&str> = all.iter().map(|r| r.p.as_str()).collect();
        assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "same"]);
        assert_eq!(all[10].w, Some((9, 0)), "the last run's record of a path wins");
    }

    #[test]
    fn first_folders_come_in_walk_order_from_the_last_run() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task-1.cbor");
        assert!(Seen::open(file.clone(), "r".into()).first_folders(8).is_empty(), "no cache yet");
        let seen = Seen::open(file.clone(), "r".into());
        let ver = Version { etag: "\"x\"".into(), modified: 50 };
        for p in ["a.txt", "a/x/1", "a/x/2", "a/y", "b/z/deep/f", "c/1", "d/1"] {
            seen.listed(&Entry::file(p, 1, Mtime::from_parts(1, 0)), &ver);
        }
        seen.commit().unwrap();
        let seen = Seen::open(file.clone(), "r".into());
        assert_eq!(seen.first_folders(8), ["a", "a/x", "b", "b/z", "b/z/deep", "c", "d"]);
        assert_eq!(seen.first_folders(3), ["a", "a/x", "b"]);
        // Written for another remote: not used.
        assert!(Seen::open(file, "other".into()).first_folders(8).is_empty());
    }

    #[test]
    fn commit_merges_listing_and_spilled_uploads_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task-1.cbor");
        let seen = Seen::open(file.clone(), "r".into());
        let ver = Version { etag: "\"x\"".into(), modified: 50 };
        for p in ["a", "b/c", "d"] {
            seen.listed(&Entry::file(p, 1, Mtime::from_parts(1, 0)), &ver);
        }
        // More uploads than one in-memory run holds, out of order, one replacing a listed file.
        let n = RUN_RECORDS + 10;
        let w = Written { etag: "\"u\"".into(), window: Some((1, 2)) };
        for i in (0..n).rev() {
            seen.uploaded(&Entry::file(format!("u/{i:07}"), 2, Mtime::from_parts(2, 0)), &w);
        }
        seen.uploaded(&Entry::file("b/c", 3, Mtime::from_parts(3, 0)), &w);
        seen.commit().unwrap();
        let all = read_all(&file);
        assert_eq!(all.len(), 3 + n);
        assert!(all.windows(2).all(|p| key_cmp(&p[0].p, &p[1].p).is_lt()), "strictly in key order");
        let bc = all.iter().find(|r| r.p == "b/c").unwrap();
        assert_eq!((bc.s, bc.t, bc.w), (3, None, Some((1, 2))), "the upload wins");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("task-1.cbor")], "no work file left");

        // The next run finds them; a foreign remote's file is ignored.
        let next = Seen::open(file.clone(), "r".into());
        assert_eq!(
            next.known(&Entry::file("b/c", 3, Mtime(0)), &Version { etag: "\"u\"".into(), modified: 2 }),
            Some(Mtime::from_parts(3, 0))
        );
        assert_eq!(next.known(&Entry::file("d", 1, Mtime(0)), &ver), Some(Mtime::from_parts(1, 0)));
        assert_eq!(next.known(&Entry::file("e", 1, Mtime(0)), &ver), None);
        let other = Seen::open(file, "another".into());
        assert_eq!(other.known(&Entry::file("d", 1, Mtime(0)), &ver), None);
    }

    #[test]
    fn a_damaged_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task-2.cbor");
        std::fs::write(&file, b"\xff\x00garbage").unwrap();
        let seen = Seen::open(file.clone(), "r".into());
        let ver = Version { etag: String::new(), modified: 7 };
        assert_eq!(seen.known(&Entry::file("a", 1, Mtime(0)), &ver), None);
        seen.listed(&Entry::file("a", 1, Mtime::from_parts(9, 0)), &ver);
        seen.commit().unwrap();
        assert_eq!(read_all(&file).len(), 1);
    }
}
