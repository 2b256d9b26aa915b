//! Jobs on moto's S3 (it versions buckets and knows storage classes): `hard_delete` removes every version of a file a SYNC deletes (and nothing else), and GLACIER objects are reported — not read, not deleted, the job FAILED saying what to do — with `glacier_restore` sending RestoreObject. The real daemon on a private bus; imports the `common` (bus, daemon), `common_s3` (servers) and `common_s3env` (server, daemon and credential together) harnesses and the crate's S3 client.

mod common;
mod common_s3;
mod common_s3env;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use cloudsyncd::remote::s3::{ListRequest, PutOptions, VersionEntry};
use common::{dict, job_log, manager, map, task_run, v, wait_job};
use common_s3::Server;
use common_s3env::S3Env;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// moto with `bucket`, the daemon holding credential `moto` for it.
async fn start(bucket: &str) -> S3Env {
    S3Env::on(Server::moto()).bucket(bucket).credential("moto").start().await
}

impl S3Env {
    async fn task(&self, attrs: Vec<(&str, OwnedValue)>, extra: Vec<(&str, OwnedValue)>) -> OwnedObjectPath {
        let mut cfg = vec![
            ("path", v(self.data().to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", map(&attrs)),
        ];
        cfg.retain(|(k, _)| !extra.iter().any(|(x, _)| x == k));
        cfg.extend(extra);
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    /// Runs the task; its state, error and log.
    async fn run(&self, task: &OwnedObjectPath) -> (String, String, String) {
        let j = task_run(&self.conn, task).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(300)).await;
        (s, e, job_log(&self.conn, &j).await)
    }

    /// key → number of (versions, delete markers) in `bucket`.
    async fn versions(&self, bucket: &str) -> BTreeMap<String, (usize, usize)> {
        let mut pages = self.s3.list_object_versions(bucket, ListRequest::default());
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        while let Some(page) = pages.next_page().await {
            for e in page.unwrap().entries {
                let n = out.entry(e.key().to_owned()).or_default();
                match e {
                    VersionEntry::Version(_) => n.0 += 1,
                    VersionEntry::DeleteMarker(_) => n.1 += 1,
                }
            }
        }
        out
    }

    async fn put(&self, bucket: &str, key: &str, body: &'static [u8], class: Option<&str>) {
        let opts = PutOptions {
            mtime: Some(1_600_000_000_000_000_000),
            storage_class: class.map(str::to_owned),
            ..PutOptions::default()
        };
        self.s3.put_object_bytes(bucket, key, Bytes::from_static(body), &opts).await.unwrap();
    }
}

fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn files(root: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        walk(root).into_iter().map(|p| p.strip_prefix(root).unwrap().to_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_delete_removes_every_version_and_only_that_file() {
    let env = start("ver").await;
    env.s3.put_bucket_versioning("ver", true).await.unwrap();
    let data = env.data();
    for f in ["soft.txt", "hard.txt", "hard.txt.bak", "keep/other.txt"] {
        write(&data, f, b"one");
    }
    let attrs = |hard: bool| vec![("bucket", v("ver")), ("folder", v("f")), ("hard_delete", v(hard))];
    let soft = env.task(attrs(false), vec![]).await;
    let hard = env.task(attrs(true), vec![]).await;
    let (s, e, log) = env.run(&soft).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    // Second versions of the two files that go next.
    write(&data, "soft.txt", b"two!");
    write(&data, "hard.txt", b"two!");
    let (s, e, log) = env.run(&soft).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    let before = env.versions("ver").await;
    assert_eq!(before["f/soft.txt"], (2, 0), "{before:?}");
    assert_eq!(before["f/hard.txt"], (2, 0), "{before:?}");

    // hard_delete=false: the removed file's versions stay, hidden behind a delete marker.
    std::fs::remove_file(data.join("soft.txt")).unwrap();
    let (s, e, log) = env.run(&soft).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    let after_soft = env.versions("ver").await;
    assert_eq!(after_soft["f/soft.txt"], (2, 1), "{after_soft:?}");
    assert_eq!(env.s3.head_object("ver", "f/soft.txt").await.unwrap(), None, "deleted as far as a listing goes");

    // hard_delete=true: nothing of the removed file remains; every other key is as it was.
    std::fs::remove_file(data.join("hard.txt")).unwrap();
    let (s, e, log) = env.run(&hard).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    let after_hard = env.versions("ver").await;
    assert!(!after_hard.contains_key("f/hard.txt"), "versions left: {after_hard:?}");
    let mut expected = after_soft.clone();
    expected.remove("f/hard.txt");
    assert_eq!(after_hard, expected, "other keys untouched (hard.txt.bak, soft.txt's hidden versions, keep/)");
    assert_eq!(after_hard["f/hard.txt.bak"], (1, 0));

    // A key hidden by a delete marker before (soft.txt) loses its marker and versions too when a
    // hard-deleting SYNC removes it again: put it back, then remove it with hard_delete.
    write(&data, "soft.txt", b"three");
    let (s, _, log) = env.run(&hard).await;
    assert_eq!(s, "SUCCESS", "{log}");
    std::fs::remove_file(data.join("soft.txt")).unwrap();
    let (s, _, log) = env.run(&hard).await;
    assert_eq!(s, "SUCCESS", "{log}");
    let last = env.versions("ver").await;
    assert!(!last.contains_key("f/soft.txt"), "versions and marker left: {last:?}");
    assert_eq!(last.keys().collect::<Vec<_>>(), ["f/hard.txt.bak", "f/keep/other.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glacier_objects_are_reported_not_read_nor_deleted_and_restored_when_asked() {
    let env = start("cold").await;
    env.put("cold", "g/a.txt", b"alpha", None).await;
    env.put("cold", "g/sub/b.txt", b"bravo", None).await;
    env.put("cold", "g/frozen.bin", b"ice", Some("GLACIER")).await;
    env.put("cold", "g/deep/abyss.bin", b"deep", Some("DEEP_ARCHIVE")).await;
    let attrs = |restore: bool| vec![("bucket", v("cold")), ("folder", v("g")), ("glacier_restore", v(restore))];
    let data = env.data();

    // PULL SYNC: the readable files arrive; the archived ones are named in the log, the job
    // fails saying what to do, and nothing local is deleted.
    write(&data, "local-only.txt", b"mine");
    let pull = env.task(attrs(false), vec![("direction", v("PULL"))]).await;
    let (s, e, log) = env.run(&pull).await;
    assert_eq!(s, "FAILED", "{log}");
    assert_eq!(files(&data), ["a.txt", "local-only.txt", "sub/b.txt"], "{log}");
    assert_eq!(std::fs::read(data.join("a.txt")).unwrap(), b"alpha");
    for (key, class) in [("frozen.bin", "GLACIER"), ("deep/abyss.bin", "DEEP_ARCHIVE")] {
        assert!(
            log.lines().any(|l| l.contains("ERROR") && l.contains(key) && l.contains(&format!("stored in {class}"))),
            "{key} not reported: {log}"
        );
    }
    assert!(e.starts_with("2 archived object(s) neither read nor deleted"), "{e}");
    assert!(e.contains("frozen.bin (GLACIER)") && e.contains("deep/abyss.bin (DEEP_ARCHIVE)"), "{e}");
    assert!(e.contains("set the task attribute glacier_restore"), "says what to do: {e}");
    assert!(e.contains("deleted nothing"), "{e}");
    assert!(!e.contains("file(s) failed"), "no opaque read errors: {e}");
    assert!(!log.contains("InvalidObjectState"), "the archived objects were not read: {log}");
    let head = env.s3.head_object("cold", "g/frozen.bin").await.unwrap().unwrap();
    assert_eq!(head.restore, None, "no restore without glacier_restore");

    // PUSH SYNC: the archived objects (absent locally) are not deleted, nor is anything else.
    // A local file of the same name does not overwrite an archived object either.
    env.put("cold", "g/extra.txt", b"x", None).await;
    write(&data, "frozen.bin", b"a local file of that name");
    let push = env.task(attrs(false), vec![]).await;
    let (s, e, log) = env.run(&push).await;
    assert_eq!(s, "FAILED", "{log}");
    assert!(e.contains("2 archived object(s)") && e.contains("deleted nothing"), "{e}");
    assert!(!e.contains("file(s) failed"), "{e}");
    assert!(log.contains("not overwritten while archived"), "{log}");
    for key in ["g/frozen.bin", "g/deep/abyss.bin", "g/extra.txt"] {
        assert!(env.s3.head_object("cold", key).await.unwrap().is_some(), "{key} was deleted: {log}");
    }
    let head = env.s3.head_object("cold", "g/frozen.bin").await.unwrap().unwrap();
    assert_eq!((head.storage_class.as_str(), head.size), ("GLACIER", 3), "not overwritten");
    std::fs::remove_file(data.join("frozen.bin")).unwrap();

    // glacier_restore=true: RestoreObject is sent for each, the job says when to run again, and
    // (moto restores at once) the next run reads them.
    let pull = env.task(attrs(true), vec![("direction", v("PULL"))]).await;
    let (s, e, log) = env.run(&pull).await;
    assert_eq!(s, "FAILED", "{log}");
    assert!(e.contains("restores are under way for 2") && e.contains("run the task again"), "{e}");
    assert!(log.contains("frozen.bin") && log.contains("restore requested"), "{log}");
    for key in ["g/frozen.bin", "g/deep/abyss.bin"] {
        let head = env.s3.head_object("cold", key).await.unwrap().unwrap();
        assert!(head.restore.as_deref().is_some_and(|r| r.contains("ongoing-request")), "{key}: {head:?}");
    }
    let (s, e, log) = env.run(&pull).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert_eq!(std::fs::read(data.join("frozen.bin")).unwrap(), b"ice");
    assert_eq!(std::fs::read(data.join("deep/abyss.bin")).unwrap(), b"deep");
    assert_eq!(files(&data), ["a.txt", "deep/abyss.bin", "extra.txt", "frozen.bin", "local-only.txt", "sub/b.txt"]);
}
