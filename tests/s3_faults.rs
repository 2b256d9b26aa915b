//! Transfers through a faulty network and a lying server: the real daemon pulls from (and pushes
//! to) s3s-fs through the fault proxy, which resets connections, answers 500 and 503 SlowDown,
//! cuts bodies (reset or clean close), stalls, shortens a body under a matching `Content-Length`
//! and cuts uploads on their way. A job either completes (byte for byte, mtimes right, rclone
//! check clean) or fails naming the file and what happened, with no partial file under a final
//! name, no temporary file left, and a number of requests bounded by the retry policy (counted at
//! the proxy). A stall longer than the read timeout is shown on the client (the daemon's timeout is
//! two minutes). Imports the `common` (bus, daemon), `common_s3` (s3s-fs, proxy, rclone) and
//! `common_s3env` (server, proxy, daemon and credential together) harnesses and the crate's S3
//! client.

mod common;
mod common_s3;
mod common_s3env;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use cloudsyncd::remote::s3::{GetOptions, MultipartWriter, PutOptions, PutOutput, RetryPolicy, S3Client, S3Error};
use common::{dict, job_log, manager, map, task_run, v, wait_job};
use common_s3::{
    Action, Policy, Proxy, SECRET_KEY, Server, Tree, client, error_response, local_tree, random_bytes, rclone,
    write_tree,
};
use common_s3env::S3Env;
use zbus::zvariant::OwnedObjectPath;

/// rel path → (content, mtime ns).
fn sample() -> Tree {
    let mut t = Tree::new();
    t.insert("a.txt".into(), (b"alpha".to_vec(), 1_600_000_000_123_456_789));
    t.insert("dir/b.bin".into(), (random_bytes(700_000), 1_600_000_100_000_000_001));
    t.insert("dir/sub/c.bin".into(), (random_bytes(300_000), 1_600_000_200_000_000_000));
    t.insert("empty".into(), (Vec::new(), 1_600_000_300_000_000_000));
    t.insert("big.bin".into(), (random_bytes(12 << 20), 1_700_000_000_999_999_999));
    t
}

/// The path of an object request (`get /bkt/f/a.txt http/1.1` → `/bkt/f/a.txt`), `None` for
/// bucket-level requests (listings, multipart listings).
fn object_path(line: &str) -> Option<String> {
    let target = line.split(' ').nth(1)?;
    let path = target.split('?').next()?;
    (path.matches('/').count() >= 2 && !target.contains("list-type")).then(|| path.to_owned())
}

/// Requests the proxy saw, by request line (method and object path).
#[derive(Default)]
struct Counts(Mutex<HashMap<String, u64>>);

impl Counts {
    fn bump(&self, key: &str) -> u64 {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn get(&self, key: &str) -> u64 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

/// s3s-fs with bucket `bkt`, the daemon holding credential `s3s` for it and reaching it through a
/// proxy with `policy`.
async fn start(policy: Policy) -> S3Env {
    S3Env::on(Server::s3s_fs()).policy(policy).credential("s3s").start().await
}

impl S3Env {
    async fn task(&self, direction: &str) -> OwnedObjectPath {
        let cfg = vec![
            ("path", v(self.data().to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v(direction)),
            ("transfer_mode", v("SYNC")),
            ("attributes", map(&[("bucket", v("bkt")), ("folder", v("f")), ("chunk_size", v(5u64))])),
        ];
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    async fn run(&self, t: &OwnedObjectPath) -> (String, String, String) {
        let j = task_run(&self.conn, t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(600)).await;
        (s, e, job_log(&self.conn, &j).await)
    }

    async fn put_tree(&self, tree: &Tree) {
        for (rel, (data, mtime)) in tree {
            let opts = PutOptions { mtime: Some(*mtime), ..PutOptions::default() };
            self.s3.put_object_bytes("bkt", &format!("f/{rel}"), Bytes::from(data.clone()), &opts).await.unwrap();
        }
    }
}

/// No temporary file of ours anywhere under `root`.
fn assert_no_temp(root: &Path) {
    let left: Vec<String> = local_tree(root).into_keys().filter(|k| k.contains(".cloudsyncd-")).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn slowdown() -> Action {
    Action::Respond(error_response("503 Service Unavailable", "SlowDown", "", ""))
}

fn internal() -> Action {
    Action::Respond(error_response("500 Internal Server Error", "InternalError", "", ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_through_every_fault_completes_byte_for_byte() {
    // The reads of each file of 64 KiB or more get, one request after the other: a body cut by a
    // reset at a quarter of the file, a reset of the resuming request, a 503 SlowDown, a body cut
    // by a clean close, a 500, and a stall of 2 s (under the read timeout) before the rest. Smaller
    // files get a 503 first. So every read needs exactly 6 (or 2) requests.
    let tree = sample();
    let sizes: HashMap<String, usize> = tree.iter().map(|(k, (d, _))| (format!("/bkt/f/{k}"), d.len())).collect();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let policy: Policy = Arc::new(move |_, head| {
        let line = head.lines().next().unwrap_or_default().to_owned();
        let Some(path) = object_path(&line) else { return Action::Forward };
        let method = line.split(' ').next().unwrap_or_default().to_owned();
        let attempt = c.bump(&format!("{method} {path}"));
        if method != "get" {
            return Action::Forward;
        }
        match (attempt, sizes.get(&path).copied().unwrap_or(0)) {
            (1, size) if size < 64 << 10 => slowdown(),
            (_, size) if size < 64 << 10 => Action::Forward,
            (1, size) => Action::Truncate(size / 4),
            (2, _) => Action::Reset,
            (3, _) => slowdown(),
            (4, size) => Action::CutClean(size / 2),
            (5, _) => internal(),
            (6, _) => Action::Stall(64 << 10, Duration::from_secs(2)),
            _ => Action::Forward,
        }
    });
    let env = start(policy).await;
    env.put_tree(&tree).await;
    // An old local copy that the pull replaces, and an extra file a SYNC deletes.
    write_tree(&env.data(), &BTreeMap::from([("a.txt".into(), (b"old".to_vec(), 1_500_000_000_000_000_000))]));
    std::fs::write(env.data().join("extra.txt"), b"x").unwrap();
    let t = env.task("PULL").await;
    let (s, e, log) = env.run(&t).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert!(local_tree(&env.data()) == tree, "pulled byte for byte with mtimes, extra deleted");
    assert_no_temp(&env.data());

    // Bounded and exact: each read took the requests its faults call for, no more.
    for (rel, (body, _)) in &tree {
        let want = if body.len() < 64 << 10 { 2 } else { 6 };
        assert_eq!(counts.get(&format!("get /bkt/f/{rel}")), want, "{rel}: GET requests");
    }
    let st = &env.proxy().stats;
    let big = tree.values().filter(|(d, _)| d.len() >= 64 << 10).count() as u64;
    assert_eq!(st.truncated.load(Ordering::SeqCst), 2 * big, "{st:?}");
    assert_eq!(st.stalled.load(Ordering::SeqCst), big, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_from_a_server_that_keeps_failing_ends_failed_within_bounded_requests() {
    // Three objects always fail, each in its own way; the others are served. A local older copy
    // of one of them must stay as it was.
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let policy: Policy = Arc::new(move |_, head| {
        let line = head.lines().next().unwrap_or_default().to_owned();
        let Some(path) = object_path(&line) else { return Action::Forward };
        let method = line.split(' ').next().unwrap_or_default().to_owned();
        c.bump(&format!("{method} {path}"));
        if method != "get" {
            return Action::Forward;
        }
        match path.as_str() {
            "/bkt/f/slow.bin" => slowdown(),
            "/bkt/f/reset.bin" => Action::Reset,
            // Every read cut 1,000 bytes into the body, cleanly: resumes make progress, but too
            // little before they run out.
            "/bkt/f/cut.bin" => Action::CutClean(1000),
            // The server lies: a shorter body under a matching Content-Length.
            "/bkt/f/short.bin" => Action::ShortBody(1000),
            _ => Action::Forward,
        }
    });
    let env = start(policy).await;
    let mut tree = sample();
    tree.remove("big.bin");
    let bad = ["slow.bin", "reset.bin", "cut.bin", "short.bin"];
    let mut remote = tree.clone();
    for (i, name) in bad.iter().enumerate() {
        remote.insert((*name).to_owned(), (random_bytes(300_000), 1_650_000_000_000_000_000 + i as i128));
    }
    env.put_tree(&remote).await;
    let old = (b"the old copy".to_vec(), 1_500_000_000_000_000_000);
    write_tree(&env.data(), &BTreeMap::from([("slow.bin".into(), old.clone()), ("cut.bin".into(), old.clone())]));
    std::fs::write(env.data().join("extra.txt"), b"kept: the SYNC failed").unwrap();

    let t = env.task("PULL").await;
    let (s, e, log) = env.run(&t).await;
    eprintln!("{log}");
    assert_eq!(s, "FAILED", "{e}\n{log}");
    for name in bad {
        assert!(e.contains(name) || log.lines().any(|l| l.contains(" ERROR ") && l.contains(name)), "{name}:\n{log}");
    }
    assert!(log.contains("SlowDown"), "the 503 is named: {log}");
    // A short body under a matching Content-Length: the MD5 check of the download refuses it
    // (its ETag is the MD5 of the whole object), else the engine's size check.
    assert!(
        e.contains("short.bin") && (log.contains("do not match the object") || log.contains("300000 listed")),
        "the short body is named: {log}"
    );
    assert!(log.contains("cut.bin: read failed: the body broke off at byte"), "the cut body is told: {log}");

    // No partial file under a final name, old copies untouched, the rest arrived, nothing deleted.
    let got = local_tree(&env.data());
    assert_eq!(got.get("slow.bin"), Some(&old), "the old copy was replaced");
    assert_eq!(got.get("cut.bin"), Some(&old), "the old copy was replaced");
    assert!(!got.contains_key("reset.bin") && !got.contains_key("short.bin"), "{:?}", got.keys());
    for (k, v) in &tree {
        assert!(got.get(k) == Some(v), "{k} did not arrive intact");
    }
    assert!(got.contains_key("extra.txt"), "a failed SYNC deleted");
    assert_no_temp(&env.data());

    // Bounded: the retry policy's attempts per request, and as many resumes per read.
    let max = u64::from(RetryPolicy::default().max_attempts);
    for (name, limit) in [("slow.bin", max), ("reset.bin", max), ("cut.bin", 1 + max), ("short.bin", 1)] {
        let gets = counts.get(&format!("get /bkt/f/{name}"));
        assert!((1..=limit).contains(&gets), "{name}: {gets} GETs, at most {limit} expected");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_through_cut_uploads_stalls_and_cut_replies_then_rclone_check_is_clean() {
    let counts = Arc::new(Counts::default());
    let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let turn = Arc::new(AtomicU64::new(0));
    let c = counts.clone();
    let policy: Policy = Arc::new(move |_, head| {
        let line = head.lines().next().unwrap_or_default().to_owned();
        let Some(path) = object_path(&line) else { return Action::Forward };
        let method = line.split(' ').next().unwrap_or_default().to_owned();
        c.bump(&format!("{method} {path}"));
        if method != "put" && method != "post" {
            return Action::Forward;
        }
        let mut failures = failures.lock().unwrap();
        let n = failures.entry(line).or_default();
        if *n >= 2 {
            *n = 0;
            return Action::Forward;
        }
        *n += 1;
        match turn.fetch_add(1, Ordering::SeqCst) % 5 {
            // The upload reaches the server only in part.
            0 => Action::CutRequest(50 << 10),
            // The server stored it, but its answer is cut, or late.
            1 => Action::CutClean(20),
            2 => Action::Stall(0, Duration::from_secs(2)),
            3 => slowdown(),
            _ => Action::Forward,
        }
    });
    let env = start(policy).await;
    let tree = sample();
    write_tree(&env.data(), &tree);
    let t = env.task("PUSH").await;
    let (s, e, log) = env.run(&t).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    let st = &env.proxy().stats;
    assert!(st.resets.load(Ordering::SeqCst) >= 1 && st.truncated.load(Ordering::SeqCst) >= 1, "{st:?}");
    assert!(st.stalled.load(Ordering::SeqCst) >= 1, "{st:?}");
    let data = env.data();
    let out = rclone(&env.srv.endpoint(), &["check", data.to_str().unwrap(), "s:bkt/f"]);
    let rlog = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && rlog.contains("0 differences found"), "rclone check: {rlog}");
    for (rel, (body, mtime)) in &tree {
        let got = env.s3.get_object("bkt", &format!("f/{rel}"), &GetOptions::default()).await.unwrap();
        assert_eq!(got.meta.mtime(), Some(*mtime), "{rel}");
        assert_eq!(&common_s3::read_all(got.body).await, body, "{rel}");
    }
    assert!(counts.total() <= 20 * tree.len() as u64 + 40, "{} object requests", counts.total());
}

/// A client whose read timeout is short, so that a stall outlives it.
fn impatient(endpoint: &str) -> S3Client {
    let mut cfg = common_s3::test_config(endpoint, SECRET_KEY);
    cfg.read_timeout = Duration::from_secs(1);
    cfg.retry =
        RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(100) };
    S3Client::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_longer_than_the_read_timeout_resumes_and_one_that_never_ends_fails_bounded() {
    let srv = Server::s3s_fs();
    let s3 = client(&srv.endpoint());
    s3.create_bucket("bkt").await.unwrap();
    let body = random_bytes(1 << 20);
    for k in ["once.bin", "always.bin"] {
        s3.put_object_bytes("bkt", k, Bytes::from(body.clone()), &PutOptions::default()).await.unwrap();
    }
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            let line = head.lines().next().unwrap_or_default().to_owned();
            let n = c.bump(&line);
            // Stalls of 30 s: far past the client's 1 s read timeout.
            match (line.contains("/bkt/once.bin"), line.contains("/bkt/always.bin"), n) {
                (true, _, 1) => Action::Stall(200 << 10, Duration::from_secs(30)),
                (_, true, _) => Action::Stall(64 << 10, Duration::from_secs(30)),
                _ => Action::Forward,
            }
        }),
    )
    .await;
    let s3 = impatient(&proxy.endpoint());
    let (_, rd) = s3.open_object("bkt", "once.bin", &GetOptions::default()).await.unwrap();
    assert_eq!(common_s3::read_all(rd).await, body, "resumed after the stall, byte for byte");
    assert_eq!(counts.get("get /bkt/once.bin http/1.1"), 2, "one stall, one resume");

    let (_, mut rd) = s3.open_object("bkt", "always.bin", &GetOptions::default()).await.unwrap();
    let mut got = Vec::new();
    let err = tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut got).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{msg}");
    assert!(msg.contains("no data for 1 s"), "the error says what happened: {msg}");
    assert!(got.len() < body.len() && got[..] == body[..got.len()], "what came is a true prefix");
    let gets = counts.get("get /bkt/always.bin http/1.1");
    assert!((2..=5).contains(&gets), "{gets} GETs: one and at most max_attempts resumes");
}

/// A multipart upload of `parts` to `bkt/key` with `mtime`.
async fn multipart(s3: &S3Client, key: &str, parts: &[Vec<u8>], mtime: i128) -> Result<PutOutput, S3Error> {
    let opts = PutOptions { mtime: Some(mtime), ..PutOptions::default() };
    let mut w = MultipartWriter::start(s3, "bkt", key, &opts, 2).await?;
    for p in parts {
        w.push_part(Bytes::from(p.clone())).await?;
    }
    w.finish().await
}

/// A completion whose answer is lost on its way back is retried, and the retry finds the upload
/// gone (s3s-fs answers 403 AccessDenied, AWS NoSuchUpload): the object is looked at, and the
/// upload counts as done. A completion refused before it reached the server is not taken for
/// one, not even when an older object has the same bytes in the same parts (its mtime differs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_answer_was_lost_is_found_done_and_a_refused_one_is_not() {
    let srv = Server::s3s_fs();
    let direct = client(&srv.endpoint());
    direct.create_bucket("bkt").await.unwrap();
    let completions = Arc::new(Counts::default());
    let c = completions.clone();
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            let line = head.lines().next().unwrap_or_default().to_owned();
            let path = object_path(&line).unwrap_or_default();
            if line.starts_with("delete ") && line.contains("uploadid=") {
                c.bump(&format!("abort {path}"));
            }
            if !(line.starts_with("post ") && line.contains("uploadid=")) {
                return Action::Forward;
            }
            let n = c.bump(&path);
            match (path.as_str(), n) {
                // The server completes the upload; the client gets 20 bytes of the answer.
                ("/bkt/lost.bin", 1) => Action::CutClean(20),
                // Refused on the way: the server never sees these.
                ("/bkt/same.bin", 2..) | ("/bkt/refused.bin", _) => {
                    Action::Respond(error_response("403 Forbidden", "AccessDenied", "", ""))
                }
                _ => Action::Forward,
            }
        }),
    )
    .await;
    let s3 = client(&proxy.endpoint());
    let parts = [random_bytes(5 << 20), random_bytes(1000)];
    let whole = parts.concat();

    let out = multipart(&s3, "lost.bin", &parts, 1_700_000_000_000_000_000).await.expect("the upload counts as done");
    assert_eq!(completions.get("/bkt/lost.bin"), 2, "the completion was retried");
    let got = direct.get_object("bkt", "lost.bin", &GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.etag, out.etag);
    assert_eq!(got.meta.mtime(), Some(1_700_000_000_000_000_000));
    assert_eq!(common_s3::read_all(got.body).await, whole);

    multipart(&s3, "same.bin", &parts, 1_600_000_000_000_000_000).await.unwrap();
    let err = multipart(&s3, "same.bin", &parts, 1_700_000_000_000_000_000).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
    let head = direct.head_object("bkt", "same.bin").await.unwrap().unwrap();
    assert_eq!(head.mtime(), Some(1_600_000_000_000_000_000), "the older object stays as it was");

    let err = multipart(&s3, "refused.bin", &parts, 1_700_000_000_000_000_000).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
    assert!(direct.head_object("bkt", "refused.bin").await.unwrap().is_none());
    // The refused uploads were aborted (their parts are not left to be billed), the done one not.
    for (key, aborts) in [("lost.bin", 0), ("same.bin", 1), ("refused.bin", 1)] {
        assert_eq!(completions.get(&format!("abort /bkt/{key}")), aborts, "{key}");
    }
}
