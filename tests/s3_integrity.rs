//! Integrity end to end against Garage 2.5.0, which refuses a body whose `Content-MD5`, signed
//! payload hash or `aws-chunked` chunk signature does not match: a proxy that flips one byte of an
//! upload (a single PutObject from memory and one multipart part streamed `aws-chunked` from the
//! file) makes Garage refuse it and our retry store the right bytes (read back by GET and by
//! Debian's rclone); a proxy that flips one byte of a download makes the PULL refuse the file
//! (checked against the ETag, or rclone's `X-Amz-Meta-Md5chksum` on a multipart object) and write
//! nothing under its name; an aborted multipart upload leaves none behind. Imports the `common`
//! (bus, daemon), `common_s3` (servers, proxy, rclone) and `common_s3env` (server, proxy, daemon
//! and credential together) harnesses and the crate's S3 client.

mod common;
mod common_s3;
mod common_s3env;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use cloudsyncd::remote::s3::{BytesSource, GetOptions, MultipartWriter, PutOptions, UploadOptions};
use common::{dict, job_log, manager, map, task_run, v, wait_job};
use common_s3::{Action, Policy, Server, error_response, random_bytes, read_all};
use common_s3env::S3Env;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const MIB: usize = 1 << 20;

/// Garage with bucket `bkt`, the daemon holding credential `garage` for it and reaching it
/// through a proxy with `policy`.
async fn start(policy: Policy) -> S3Env {
    S3Env::on(Server::garage()).policy(policy).credential("garage").start().await
}

impl S3Env {
    /// A task on `bkt/folder` with 5 MiB parts.
    async fn task(&self, folder: &str, direction: &str, mode: &str) -> OwnedObjectPath {
        let attributes =
            map(&[("bucket", v("bkt")), ("folder", v(folder)), ("chunk_size", v(5u64)), ("storage_class", v(""))]);
        let cfg: Vec<(&str, OwnedValue)> = vec![
            ("path", v(self.data().to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v(direction)),
            ("transfer_mode", v(mode)),
            ("attributes", attributes),
        ];
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    /// Runs the task to its end: (job, state, error, log).
    async fn run(&self, task: &OwnedObjectPath) -> (OwnedObjectPath, String, String, String) {
        let j = task_run(&self.conn, task).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(300)).await;
        let log = job_log(&self.conn, &j).await;
        (j, s, e, log)
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        read_all(self.s3.get_object("bkt", key, &GetOptions::default()).await.unwrap().body).await
    }
}

/// Files under `root`, temporary ones included (folders left out).
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_str().unwrap().to_owned(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A policy that applies `action` once to the first request whose (lower-case) head starts with
/// each of `lines` and contains every one of its `and` strings; everything else is forwarded.
fn once_each(targets: Vec<(String, Vec<&'static str>)>, action: fn() -> Action) -> Policy {
    let done: Vec<AtomicBool> = targets.iter().map(|_| AtomicBool::new(false)).collect();
    Arc::new(move |_, head| {
        let line = head.lines().next().unwrap_or_default();
        for ((start, and), done) in targets.iter().zip(&done) {
            if line.starts_with(start.as_str())
                && and.iter().all(|a| line.contains(a))
                && !done.swap(true, Ordering::SeqCst)
            {
                return action();
            }
        }
        Action::Forward
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_in_an_upload_is_refused_by_garage_and_sent_again() {
    // The single PutObject of small.bin (sent from memory with Content-MD5) and part 3 of big.bin
    // (5 MiB parts; the last, 2 MiB + 12,345 bytes, streamed aws-chunked: the flipped middle byte
    // lands in the data of its 17th chunk) are corrupted once.
    let policy = once_each(
        vec![
            ("put /bkt/push/small.bin ".to_owned(), vec![]),
            ("put /bkt/push/big.bin?".to_owned(), vec!["partnumber=3"]),
        ],
        || Action::CorruptRequest,
    );
    let parts: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = parts.clone();
    let policy: Policy = Arc::new(move |n, head| {
        if head.starts_with("put /bkt/push/big.bin?") {
            seen.lock().unwrap().push(head.to_owned());
        }
        policy(n, head)
    });
    let env = start(policy).await;
    let (small, big) = (random_bytes(300_000), random_bytes(12 * MIB + 12_345));
    std::fs::write(env.data().join("small.bin"), &small).unwrap();
    std::fs::write(env.data().join("big.bin"), &big).unwrap();
    std::fs::write(env.data().join("plain.txt"), b"left alone").unwrap();
    let t = env.task("push", "PUSH", "SYNC").await;
    let (_, s, e, log) = env.run(&t).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert_eq!(env.proxy().stats.corrupted.load(Ordering::SeqCst), 2, "the proxy corrupted fewer bodies than planned");
    // Garage refused both corrupted bodies (400 BadDigest for a Content-MD5, InvalidDigest when
    // the signed payload hash of data sent from memory disagrees; 400 InvalidRequest "Invalid
    // payload signature" for a chunk whose signature does not match), and our client sent them
    // again (the part with a fresh signature chain).
    let stderr = env.daemon.stderr();
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("S3 request failed; retrying"))
        .filter(|l| {
            l.contains("HTTP 400 BadDigest")
                || l.contains("HTTP 400 InvalidDigest")
                || (l.contains("HTTP 400 InvalidRequest") && l.contains("Invalid payload signature"))
        })
        .collect();
    let retries: Vec<&str> = stderr.lines().filter(|l| l.contains("S3 request failed")).collect();
    assert_eq!(refusals.len(), 2, "expected two digest refusals, each retried: {retries:#?}");
    for (op, key) in [("PutObject", "push/small.bin"), ("UploadPart", "push/big.bin")] {
        let op = format!("op=\"{op}\"");
        assert!(refusals.iter().any(|l| l.contains(&op) && l.contains(key)), "{op} {key} not refused: {refusals:#?}");
    }
    // Every part, the one sent again included, went aws-chunked.
    let parts = parts.lock().unwrap().clone();
    assert_eq!(parts.len(), 4, "three parts, one sent twice: {parts:#?}");
    assert!(parts.iter().all(|h| h.contains("content-encoding: aws-chunked")), "{parts:#?}");
    // What is stored is the source, byte for byte: by our GET, and by rclone.
    assert_eq!(env.get("push/small.bin").await, small);
    assert_eq!(env.get("push/big.bin").await, big);
    assert_eq!(env.get("push/plain.txt").await, b"left alone");
    let out = env.srv.rclone(&["check", "--download", env.data().to_str().unwrap(), "s:bkt/push"]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.contains("0 differences found"), "rclone check --download: {report}");
    let out = env.srv.rclone(&["cat", "s:bkt/push/big.bin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == big, "rclone cat: big.bin differs from the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_in_a_download_is_refused_and_never_written() {
    // The first GET of each checked object comes back with one byte flipped.
    let policy = once_each(
        vec![("get /bkt/pull/single.bin ".to_owned(), vec![]), ("get /bkt/pull/multi.bin ".to_owned(), vec![])],
        || Action::CorruptResponse,
    );
    let env = start(policy).await;
    let (single, multi) = (random_bytes(300_000), random_bytes(11 * MIB + 7));
    let put = PutOptions { mtime: Some(1_700_000_000_000_000_000), ..PutOptions::default() };
    // single.bin: one PutObject, its ETag is its MD5.
    env.s3.put_object_bytes("bkt", "pull/single.bin", Bytes::from(single.clone()), &put).await.unwrap();
    // multi.bin: three parts, with the whole MD5 in X-Amz-Meta-Md5chksum as rclone stores it.
    let opts = UploadOptions { put: put.clone(), chunk_size: 5 * MIB as u64, concurrency: 2, whole_md5: true };
    let src = BytesSource(Bytes::from(multi.clone()));
    let out = env.s3.upload("bkt", "pull/multi.bin", multi.len() as u64, &src, &opts).await.unwrap();
    assert!(out.etag.ends_with("-3\""), "not a multipart object: {}", out.etag);
    env.s3.put_object_bytes("bkt", "pull/ok.txt", Bytes::from_static(b"fine"), &put).await.unwrap();

    let t = env.task("pull", "PULL", "COPY").await;
    let (_, s, e, log) = env.run(&t).await;
    assert_eq!(env.proxy().stats.corrupted.load(Ordering::SeqCst), 2, "the proxy corrupted fewer bodies than planned");
    assert_eq!(s, "FAILED", "a corrupted download was accepted:\n{log}");
    assert!(!e.is_empty(), "no reason given");
    for (name, from) in [("single.bin", "ETag"), ("multi.bin", "X-Amz-Meta-Md5chksum")] {
        let line = log
            .lines()
            .find(|l| l.contains(" ERROR ") && l.contains(name))
            .unwrap_or_else(|| panic!("{name}: no error in the job log:\n{log}"));
        assert!(line.contains("do not match") && line.contains(from), "{name}: {line}");
    }
    // Nothing wrong under a final name, and no temporary file left.
    let got = files(&env.data());
    assert_eq!(got.keys().collect::<Vec<_>>(), ["ok.txt"], "{:?}", got.keys());
    assert_eq!(got["ok.txt"], b"fine");

    // The next run (the proxy flips only once) brings the right bytes.
    let (_, s, e, log) = env.run(&t).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    let got = files(&env.data());
    assert_eq!(got.keys().collect::<Vec<_>>(), ["multi.bin", "ok.txt", "single.bin"]);
    assert!(got["single.bin"] == single && got["multi.bin"] == multi, "the second run wrote wrong bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_multipart_uploads_leave_nothing_on_garage() {
    // Every upload of part 2 of abort/big.bin is refused for good (not a retryable error).
    let policy: Policy = Arc::new(|_, head| {
        let line = head.lines().next().unwrap_or_default();
        if line.starts_with("put /bkt/abort/big.bin?") && line.contains("partnumber=2") {
            Action::Respond(error_response("403 Forbidden", "AccessDenied", "", ""))
        } else {
            Action::Forward
        }
    });
    let env = start(policy).await;
    let c = &env.s3;

    // Our client: an upload aborted by hand is gone from ListMultipartUploads.
    let mut w = MultipartWriter::start(c, "bkt", "hand/aborted.bin", &PutOptions::default(), 2).await.unwrap();
    w.push_part(Bytes::from(random_bytes(5 * MIB))).await.unwrap();
    assert_eq!(c.list_multipart_uploads("bkt", "").await.unwrap().map(|u| u.len()), Some(1));
    w.abort().await;
    assert_eq!(c.list_multipart_uploads("bkt", "").await.unwrap(), Some(vec![]));

    // A PUSH whose multipart upload fails aborts it: no upload and no object are left.
    let big = random_bytes(16 * MIB);
    std::fs::write(env.data().join("big.bin"), &big).unwrap();
    let t = env.task("abort", "PUSH", "COPY").await;
    let (_, s, _, log) = env.run(&t).await;
    assert_eq!(s, "FAILED", "{log}");
    assert!(log.lines().any(|l| l.contains(" ERROR ") && l.contains("big.bin")), "{log}");
    assert!(env.proxy().stats.answered.load(Ordering::SeqCst) >= 1, "part 2 was never refused");
    let left = c.list_multipart_uploads("bkt", "").await.unwrap();
    assert_eq!(left, Some(vec![]), "multipart uploads left behind");
    assert_eq!(c.head_object("bkt", "abort/big.bin").await.unwrap(), None);
}
