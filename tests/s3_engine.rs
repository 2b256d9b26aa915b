//! The sync engine end to end on S3: the real daemon on a private bus, an S3 credential pointing at s3s-fs on loopback, PUSH and PULL in SYNC, COPY and MOVE of a tree with nested folders, unicode and spaces, empty files and a file of more than three parts; then Debian's rclone 1.60 checks the bucket and reads our mtimes, and a tree rclone pushed pulls back byte for byte with its mtimes. Imports the `common` (bus, daemon), `common_s3` (servers, rclone) and `common_s3env` (server, daemon and credential together) harnesses and the crate's S3 client.

mod common;
mod common_s3;
mod common_s3env;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudsyncd::remote::s3::{GetOptions, ListRequest, ObjectIdentifier, PutOptions};
use common::{credential, dict, err_name, get_bool, get_str, job, job_log, manager, map, task, task_run, v, wait_job};
use common_s3::{
    ACCESS_KEY, SECRET_KEY, Server, Tree, local_tree, random_bytes, rclone, rclone_with, read_all, requests, write_tree,
};
use common_s3env::S3Env;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// s3s-fs with bucket `bkt`, the daemon holding credential `s3s` for it.
async fn start() -> S3Env {
    S3Env::on(Server::s3s_fs()).credential("s3s").start().await
}

/// As [`start`], but the daemon reaches s3s-fs through the fault proxy.
async fn start_faulty() -> S3Env {
    S3Env::on(Server::s3s_fs()).credential("s3s").faults().start().await
}

impl S3Env {
    async fn task(&self, folder: &str, extra: Vec<(&str, OwnedValue)>) -> OwnedObjectPath {
        let attributes =
            map(&[("bucket", v("bkt")), ("folder", v(folder)), ("chunk_size", v(5u64)), ("storage_class", v(""))]);
        let mut cfg = vec![
            ("path", v(self.data().to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", attributes),
        ];
        cfg.retain(|(k, _)| !extra.iter().any(|(x, _)| x == k));
        cfg.extend(extra);
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    async fn run(&self, task: &OwnedObjectPath) -> (OwnedObjectPath, String, String) {
        let j = task_run(&self.conn, task).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(300)).await;
        (j, s, e)
    }

    /// rel path → (content, mtime ns) of every object under `folder/`.
    async fn bucket_tree(&self, folder: &str) -> Tree {
        let prefix = format!("{folder}/");
        let mut pages =
            self.s3.list_objects_v2("bkt", ListRequest { prefix: prefix.clone(), ..ListRequest::default() });
        let mut out = Tree::new();
        while let Some(page) = pages.next_page().await {
            for o in page.unwrap().contents {
                let rel = o.key.strip_prefix(&prefix).unwrap().to_owned();
                let got = self.s3.get_object("bkt", &o.key, &GetOptions::default()).await.unwrap();
                let mtime = got.meta.mtime().unwrap_or_else(|| panic!("{} has no mtime", o.key));
                out.insert(rel, (read_all(got.body).await, mtime));
            }
        }
        out
    }

    async fn clear_bucket(&self, folder: &str) {
        let keys: Vec<String> = self.bucket_tree(folder).await.into_keys().map(|k| format!("{folder}/{k}")).collect();
        if !keys.is_empty() {
            let ids: Vec<ObjectIdentifier<'_>> =
                keys.iter().map(|k| ObjectIdentifier { key: k, version_id: None }).collect();
            self.s3.delete_objects("bkt", &ids).await.unwrap();
        }
    }

    async fn put_tree(&self, folder: &str, tree: &Tree) {
        for (rel, (data, mtime)) in tree {
            let opts = PutOptions { mtime: Some(*mtime), ..PutOptions::default() };
            self.s3
                .put_object_bytes("bkt", &format!("{folder}/{rel}"), Bytes::from(data.clone()), &opts)
                .await
                .unwrap();
        }
    }
}

/// Nested folders, unicode and spaces, an empty file, and 16 MiB (four 5 MiB parts).
fn sample() -> Tree {
    let mut t = Tree::new();
    let mut add = |p: &str, data: Vec<u8>, mtime: i128| {
        t.insert(p.to_owned(), (data, mtime));
    };
    add("a.txt", b"alpha".to_vec(), 1_600_000_000_123_456_789);
    add("dir/b.bin", random_bytes(300_000), 1_600_000_100_000_000_001);
    add("dir/sub/deeper/empty", Vec::new(), 1_600_000_200_000_000_000);
    add("space name/file with spaces.txt", b"spaces".to_vec(), 1_600_000_300_500_000_000);
    add("ünïcødé/日本語 ñ+.txt", b"unicode".to_vec(), 1_600_000_400_000_000_100);
    add("dir-2/c", b"c".to_vec(), 1_600_000_500_000_000_000);
    add("dir.txt", b"d".to_vec(), 1_600_000_600_000_000_000);
    add("big.bin", random_bytes(16 << 20), 1_700_000_000_999_999_999);
    t
}

fn extraneous() -> Tree {
    let mut t = Tree::new();
    t.insert("extra.txt".into(), (b"old".to_vec(), 1_500_000_000_000_000_000));
    t.insert("old/x".into(), (b"x".to_vec(), 1_500_000_000_000_000_000));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_in_every_mode_then_rclone_agrees() {
    let env = start().await;
    let src_tree = sample();
    for (dir, mode) in
        [("PUSH", "SYNC"), ("PUSH", "COPY"), ("PUSH", "MOVE"), ("PULL", "SYNC"), ("PULL", "COPY"), ("PULL", "MOVE")]
    {
        let _ = std::fs::remove_dir_all(env.data());
        std::fs::create_dir_all(env.data()).unwrap();
        env.clear_bucket("f").await;
        if dir == "PUSH" {
            write_tree(&env.data(), &src_tree);
            env.put_tree("f", &extraneous()).await;
        } else {
            env.put_tree("f", &src_tree).await;
            write_tree(&env.data(), &extraneous());
        }
        let t = env.task("f", vec![("direction", v(dir)), ("transfer_mode", v(mode))]).await;
        let (j, state, err) = env.run(&t).await;
        assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{dir} {mode}: {}", job_log(&env.conn, &j).await);
        let (src_after, dst_after) = if dir == "PUSH" {
            (local_tree(&env.data()), env.bucket_tree("f").await)
        } else {
            (env.bucket_tree("f").await, local_tree(&env.data()))
        };
        for (k, v) in &src_tree {
            assert!(dst_after.get(k) == Some(v), "{dir} {mode}: {k} differs (content or mtime)");
        }
        match mode {
            "SYNC" => {
                let names: Vec<&String> = dst_after.keys().collect();
                assert_eq!(names, src_tree.keys().collect::<Vec<_>>(), "{dir} SYNC: destination is not identical");
            }
            "COPY" => {
                assert!(dst_after.contains_key("extra.txt") && dst_after.contains_key("old/x"), "{dir} COPY deleted");
                assert_eq!(src_after.len(), src_tree.len(), "{dir} COPY changed the source");
            }
            _ => {
                assert!(dst_after.contains_key("extra.txt"), "{dir} MOVE deleted at the destination");
                assert!(src_after.is_empty(), "{dir} MOVE left source files: {:?}", src_after.keys());
            }
        }
        let jp = job(&env.conn, &j).await;
        assert_eq!(jp.files_done().await.unwrap(), src_tree.len() as u64, "{dir} {mode}");
        if mode != "MOVE" {
            let (j2, s2, _) = env.run(&t).await;
            assert_eq!(s2, "SUCCESS");
            assert_eq!(job(&env.conn, &j2).await.files_done().await.unwrap(), 0, "{dir} {mode}: re-run copied again");
        }
        if (dir, mode) == ("PUSH", "SYNC") {
            // rclone sees what we pushed: same files and sizes, and our mtimes.
            let data = env.data();
            let out = rclone(&env.srv.endpoint(), &["check", data.to_str().unwrap(), "s:bkt/f"]);
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && log.contains("0 differences found"), "rclone check: {log}");
            let out = rclone(&env.srv.endpoint(), &["lsl", "--max-depth", "1", "s:bkt/f"]);
            let lsl = String::from_utf8_lossy(&out.stdout);
            for line in [
                format!("{:>9} 2020-09-13 12:26:40.123456789 a.txt", 5),
                format!("{:>9} 2023-11-14 22:13:20.999999999 big.bin", 16 << 20),
            ] {
                assert!(lsl.lines().any(|l| l == line), "{line:?} not in\n{lsl}");
            }
        }
        task(&env.conn, &t).await.delete().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_pushed_by_rclone_pulls_back_with_its_mtimes() {
    let env = start().await;
    let tree = sample();
    let staging = env.dir.path().join("staging");
    write_tree(&staging, &tree);
    let out = rclone(&env.srv.endpoint(), &["copy", staging.to_str().unwrap(), "s:bkt/by-rclone"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = env.task("by-rclone", vec![("direction", v("PULL")), ("transfer_mode", v("SYNC"))]).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    assert!(local_tree(&env.data()) == tree, "byte for byte, with nanosecond mtimes");
    let (j2, s2, _) = env.run(&t).await;
    assert_eq!(s2, "SUCCESS");
    assert_eq!(job(&env.conn, &j2).await.files_done().await.unwrap(), 0, "rclone's mtimes match ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_resets_and_slowdowns() {
    let env = start_faulty().await;
    let tree = sample();
    write_tree(&env.data(), &tree);
    let t = env.task("flaky", vec![("direction", v("PUSH")), ("transfer_mode", v("SYNC"))]).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    assert!(env.bucket_tree("flaky").await == tree, "the bucket holds the tree, mtimes included");
    let data = env.data();
    let out = rclone(&env.srv.endpoint(), &["check", data.to_str().unwrap(), "s:bkt/flaky"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && log.contains("0 differences found"), "rclone check: {log}");

    // And back, with object reads cut short and resumed.
    let _ = std::fs::remove_dir_all(env.data());
    std::fs::create_dir_all(env.data()).unwrap();
    let t = env.task("flaky", vec![("direction", v("PULL")), ("transfer_mode", v("SYNC"))]).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    assert!(local_tree(&env.data()) == tree, "pulled back byte for byte with mtimes");
    let stats = &env.proxy().stats;
    let (resets, slowdowns, _) = stats.get();
    let truncated = stats.truncated.load(std::sync::atomic::Ordering::SeqCst);
    assert!(resets >= 5 && slowdowns >= 2 && truncated >= 1, "faults injected: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_push_to_s3_passes_rclone_cryptcheck_and_pulls_back() {
    const PW: &str = "correct horse battery staple";
    let env = start().await;
    let tree = sample();
    let crypt = |names: bool| {
        vec![
            ("encryption", v(true)),
            ("filename_encryption", v(names)),
            ("encryption_password", v(PW)),
            ("encryption_salt", v("")),
        ]
    };
    let obscured = std::process::Command::new("rclone").args(["obscure", PW]).output().unwrap();
    let obscured = String::from_utf8(obscured.stdout).unwrap();
    for (names, folder, mode) in [(true, "enc", "standard"), (false, "encoff", "off")] {
        let _ = std::fs::remove_dir_all(env.data());
        std::fs::create_dir_all(env.data()).unwrap();
        write_tree(&env.data(), &tree);
        let mut extra = crypt(names);
        extra.push(("direction", v("PUSH")));
        let t = env.task(folder, extra).await;
        let (j, state, err) = env.run(&t).await;
        assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
        let stored = env.bucket_tree(folder).await;
        assert_eq!(stored.len(), tree.len());
        assert!(stored.keys().all(|k| !tree.contains_key(k)), "{mode}: names are changed: {:?}", stored.keys());

        let remote = format!("s:bkt/{folder}");
        let crypt_env = [
            ("RCLONE_CONFIG_C_TYPE", "crypt"),
            ("RCLONE_CONFIG_C_REMOTE", remote.as_str()),
            ("RCLONE_CONFIG_C_PASSWORD", obscured.trim()),
            ("RCLONE_CONFIG_C_FILENAME_ENCRYPTION", mode),
        ];
        let data = env.data();
        let out = rclone_with(&env.srv.endpoint(), &crypt_env, &["cryptcheck", data.to_str().unwrap(), "C:"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && log.contains(" 0 differences found"), "{mode}: rclone cryptcheck: {log}");
        // rclone cat through the crypt remote gives every file back byte for byte.
        for (name, (body, _)) in &tree {
            let out = rclone_with(&env.srv.endpoint(), &crypt_env, &["cat", &format!("C:{name}")]);
            assert!(out.status.success(), "{mode}: rclone cat {name}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(&out.stdout, body, "{mode}: rclone cat {name}");
        }

        let _ = std::fs::remove_dir_all(env.data());
        std::fs::create_dir_all(env.data()).unwrap();
        let mut extra = crypt(names);
        extra.push(("direction", v("PULL")));
        let t = env.task(folder, extra).await;
        let (j, state, err) = env.run(&t).await;
        assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
        assert!(local_tree(&env.data()) == tree, "{mode}: decrypted back byte for byte with mtimes");
    }

    // A tree that rclone encrypted into the bucket pulls back through us identical.
    let src = env.data().with_extension("rclone-src");
    let _ = std::fs::remove_dir_all(&src);
    write_tree(&src, &tree);
    let crypt_env = [
        ("RCLONE_CONFIG_C_TYPE", "crypt"),
        ("RCLONE_CONFIG_C_REMOTE", "s:bkt/byrclone"),
        ("RCLONE_CONFIG_C_PASSWORD", obscured.trim()),
        ("RCLONE_CONFIG_C_FILENAME_ENCRYPTION", "standard"),
    ];
    let out = rclone_with(&env.srv.endpoint(), &crypt_env, &["copy", src.to_str().unwrap(), "C:"]);
    assert!(out.status.success(), "rclone copy: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(env.data());
    std::fs::create_dir_all(env.data()).unwrap();
    let mut extra = crypt(true);
    extra.push(("direction", v("PULL")));
    let t = env.task("byrclone", extra).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    assert!(local_tree(&env.data()) == tree, "an rclone-encrypted tree pulls back identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_list_buckets_through_the_bus() {
    let env = start().await;
    let good =
        credential(&env.conn, &OwnedObjectPath::try_from("/org/cloudsyncd/CloudSync1/credential/1").unwrap()).await;
    assert_eq!(good.verify().await.unwrap(), (true, String::new()));
    let buckets = good.list_buckets().await.unwrap();
    let bkt = buckets.iter().find(|b| get_str(b, "name") == "bkt").expect("bkt is listed");
    assert!(u64::try_from(bkt["created"].try_clone().unwrap()).unwrap() > 1_600_000_000);

    const WRONG: &str = "wrong-secret-never-shown-0042";
    let bad = manager(&env.conn)
        .await
        .create_credential(
            "wrong",
            "S3",
            dict(vec![
                ("access_key_id", v(ACCESS_KEY)),
                ("secret_access_key", v(WRONG)),
                ("endpoint", v(env.srv.endpoint().as_str())),
                ("region", v("us-east-1")),
            ]),
        )
        .await
        .unwrap();
    let bad = credential(&env.conn, &bad).await;
    let (ok, why) = bad.verify().await.unwrap();
    assert!(!ok && !why.is_empty(), "a wrong secret verified: {why}");
    assert!(!why.contains(WRONG), "the reason shows the secret: {why}");
    let e = bad.list_buckets().await.unwrap_err();
    let (name, msg) = err_name(&e);
    assert_eq!(name, "Failed", "{msg}");
    assert!(!msg.contains(WRONG));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_change_resync_sends_no_head_and_a_changed_object_is_still_seen() {
    let env = start().await;
    let mut tree = Tree::new();
    for i in 0..60 {
        tree.insert(
            format!("d{}/f{i:03}", i % 3),
            (format!("content {i:03}").into_bytes(), 1_600_000_000_000_000_000 + i),
        );
    }
    write_tree(&env.data(), &tree);
    let t = env.task("cache", vec![]).await;
    let (j1, s1, e1) = env.run(&t).await;
    let log1 = job_log(&env.conn, &j1).await;
    assert_eq!((s1.as_str(), e1.as_str()), ("SUCCESS", ""), "{log1}");
    assert_eq!(requests(&log1, "PutObject"), 60, "{log1}");

    // Right after our own upload: nothing to send, no HEAD (the listing matches what we wrote).
    let (j2, s2, _) = env.run(&t).await;
    let log2 = job_log(&env.conn, &j2).await;
    assert_eq!(s2, "SUCCESS", "{log2}");
    assert_eq!(job(&env.conn, &j2).await.files_done().await.unwrap(), 0, "{log2}");
    assert_eq!(requests(&log2, "HeadObject"), 0, "{log2}");
    // One to see that the folder exists, then the walk: the task's folder and d0, d1, d2.
    assert_eq!(requests(&log2, "ListObjectsV2"), 5, "{log2}");

    // Someone else replaces an object with other bytes of the same size and another mtime:
    // the listing shows another version, so its mtime is read (one HEAD) and the file is sent
    // again; a local mtime-only change is sent too.
    let staging = env.dir.path().join("staging");
    let mut other = Tree::new();
    other.insert("d1/f001".to_owned(), (b"CONTENT 001".to_vec(), 1_500_000_000_000_000_000));
    write_tree(&staging, &other);
    std::thread::sleep(Duration::from_millis(1100)); // a later LastModified second than ours
    let out =
        rclone(&env.srv.endpoint(), &["copyto", staging.join("d1/f001").to_str().unwrap(), "s:bkt/cache/d1/f001"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut touched = tree.clone();
    touched.get_mut("d2/f002").unwrap().1 += 5_000_000_000;
    write_tree(&env.data(), &touched);
    let (j3, s3, _) = env.run(&t).await;
    let log3 = job_log(&env.conn, &j3).await;
    assert_eq!(s3, "SUCCESS", "{log3}");
    assert_eq!(requests(&log3, "HeadObject"), 1, "only the replaced object is asked for:\n{log3}");
    assert_eq!(job(&env.conn, &j3).await.files_done().await.unwrap(), 2, "{log3}");
    assert!(env.bucket_tree("cache").await == touched, "the bucket holds the source again");

    // And the run after that is quiet again.
    let (j4, _, _) = env.run(&t).await;
    let log4 = job_log(&env.conn, &j4).await;
    assert_eq!(
        (requests(&log4, "HeadObject"), job(&env.conn, &j4).await.files_done().await.unwrap()),
        (0, 0),
        "{log4}"
    );
}

/// An encrypted task (names encrypted or not) also takes mtimes from what its last run saw:
/// a no-change re-sync sends no HEAD, and an object replaced behind its back is still seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_no_change_resync_sends_no_head() {
    const PW: &str = "no head password";
    let env = start().await;
    let mut tree = Tree::new();
    for i in 0..30 {
        tree.insert(
            format!("d{}/f{i:03}", i % 3),
            (format!("secret {i:03}").into_bytes(), 1_600_000_000_000_000_000 + i),
        );
    }
    write_tree(&env.data(), &tree);
    for names in [true, false] {
        let folder = if names { "enc-names" } else { "enc-plain-names" };
        let t = env
            .task(
                folder,
                vec![
                    ("encryption", v(true)),
                    ("filename_encryption", v(names)),
                    ("encryption_password", v(PW)),
                    ("encryption_salt", v("")),
                ],
            )
            .await;
        let (j1, s1, e1) = env.run(&t).await;
        let log1 = job_log(&env.conn, &j1).await;
        assert_eq!((s1.as_str(), e1.as_str()), ("SUCCESS", ""), "{log1}");
        assert_eq!(requests(&log1, "PutObject"), 30, "{log1}");
        let (j2, s2, _) = env.run(&t).await;
        let log2 = job_log(&env.conn, &j2).await;
        assert_eq!(s2, "SUCCESS", "{log2}");
        assert_eq!(job(&env.conn, &j2).await.files_done().await.unwrap(), 0, "{log2}");
        assert_eq!(requests(&log2, "HeadObject"), 0, "names encrypted: {names}\n{log1}\n{log2}");
        // A local change of one file's mtime is still sent, and only it.
        let mut touched = tree.clone();
        touched.get_mut("d1/f004").unwrap().1 += 7_000_000_000;
        write_tree(&env.data(), &touched);
        let (j3, s3, _) = env.run(&t).await;
        let log3 = job_log(&env.conn, &j3).await;
        assert_eq!(s3, "SUCCESS", "{log3}");
        assert_eq!(job(&env.conn, &j3).await.files_done().await.unwrap(), 1, "{log3}");
        assert_eq!(requests(&log3, "HeadObject"), 0, "{log3}");
        write_tree(&env.data(), &tree);
    }
}

/// A SYNC lists the bucket folder by folder by default, each folder where its keys sort
/// (`a.txt` < `a/…` < `a0`), never listing a folder the filter excludes; with `fast_list` it
/// reads flat pages. Both leave the bucket equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_walks_folders_in_key_order_or_reads_flat_pages_with_fast_list() {
    let env = start().await;
    let mut tree = Tree::new();
    for (i, p) in ["a.txt", "a/x", "a/y/z", "a/y-1", "a0", "a b/c", "b", "skip/s", "skip-not/t", "z/z/z/z"]
        .into_iter()
        .enumerate()
    {
        tree.insert(p.to_owned(), (format!("content of {p}").into_bytes(), 1_600_000_000_000_000_000 + i as i128));
    }
    write_tree(&env.data(), &tree);
    let extra = |fast: bool| {
        let attributes =
            map(&[("bucket", v("bkt")), ("folder", v(if fast { "flat" } else { "walk" })), ("fast_list", v(fast))]);
        vec![("attributes", attributes), ("exclude", v(vec!["/skip/**"]))]
    };
    for fast in [false, true] {
        let folder = if fast { "flat" } else { "walk" };
        // Keys the SYNC must delete, between and below the source's own; one under the
        // excluded folder, which must stay.
        let mut stale = Tree::new();
        for p in ["a/w", "a/y/zz", "a.txu", "c/old", "skip/kept"] {
            stale.insert(p.to_owned(), (b"stale".to_vec(), 1_500_000_000_000_000_000));
        }
        env.put_tree(folder, &stale).await;
        let t = env.task(folder, extra(fast)).await;
        let (j, s, e) = env.run(&t).await;
        let log = job_log(&env.conn, &j).await;
        assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
        let mut want = tree.clone();
        want.remove("skip/s");
        want.insert("skip/kept".to_owned(), stale["skip/kept"].clone());
        assert!(env.bucket_tree(folder).await == want, "{folder}: the bucket holds the source\n{log}");
        // The folder check, then one flat page, or the folders the bucket has: the task's
        // folder, a, a/y and c (skip/ is excluded and never listed).
        assert_eq!(requests(&log, "ListObjectsV2"), if fast { 2 } else { 5 }, "{log}");
        // The next run finds nothing to do; the walk now lists the task's folder, a, a/y, a b,
        // skip-not, z, z/z and z/z/z, and c: the first run's listing met c/old (deleted since),
        // so c is among the folders hinted to be listed from the start. The run after that
        // lists only the folders there are.
        let (j2, s2, _) = env.run(&t).await;
        let log2 = job_log(&env.conn, &j2).await;
        assert_eq!(s2, "SUCCESS", "{log2}");
        assert_eq!(job(&env.conn, &j2).await.files_done().await.unwrap(), 0, "{log2}");
        assert_eq!(requests(&log2, "ListObjectsV2"), if fast { 2 } else { 10 }, "{log2}");
        assert_eq!(requests(&log2, "HeadObject"), 0, "{log2}");
        let (j3, s3, _) = env.run(&t).await;
        let log3 = job_log(&env.conn, &j3).await;
        assert_eq!(s3, "SUCCESS", "{log3}");
        assert_eq!(requests(&log3, "ListObjectsV2"), if fast { 2 } else { 9 }, "{log3}");
        assert_eq!(requests(&log2, "HeadObject"), 0, "{log2}");
    }
}

/// `(name, path, size, is_dir, decrypted)` of a `ListDirectory` entry.
type Row = (String, String, u64, bool, bool);

/// The rows of the entries, and their mtimes.
fn entries(list: &[std::collections::HashMap<String, OwnedValue>]) -> (Vec<Row>, Vec<u64>) {
    let u =
        |d: &std::collections::HashMap<String, OwnedValue>, k: &str| u64::try_from(d[k].try_clone().unwrap()).unwrap();
    let rows = list
        .iter()
        .map(|d| {
            (get_str(d, "name"), get_str(d, "path"), u(d, "size"), get_bool(d, "is_dir"), get_bool(d, "decrypted"))
        })
        .collect();
    (rows, list.iter().map(|d| u(d, "mtime")).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_directory_plain_encrypted_and_missing() {
    const PW: &str = "browse password";
    let env = start().await;
    let cred =
        credential(&env.conn, &OwnedObjectPath::try_from("/org/cloudsyncd/CloudSync1/credential/1").unwrap()).await;
    let before = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let mut tree = Tree::new();
    tree.insert("a.txt".into(), (b"alpha".to_vec(), 1_600_000_000_000_000_000));
    tree.insert("sub/b.txt".into(), (b"bravo!".to_vec(), 1_600_000_000_000_000_000));
    tree.insert("sub/deeper/c".into(), (Vec::new(), 1_600_000_000_000_000_000));
    tree.insert("space name/d e.txt".into(), (b"d".to_vec(), 1_600_000_000_000_000_000));
    env.put_tree("br", &tree).await;
    env.put_tree("brx", &tree).await; // a sibling folder whose name starts like it

    let loc = |folder: &str| dict(vec![("bucket", v("bkt")), ("folder", v(folder))]);
    let (rows, mtimes) = entries(&cred.list_directory(loc("br")).await.unwrap());
    let want = |rows: &[(&str, &str, u64, bool)]| -> Vec<Row> {
        rows.iter().map(|(n, p, s, d)| ((*n).to_owned(), (*p).to_owned(), *s, *d, false)).collect()
    };
    assert_eq!(
        rows,
        want(&[("a.txt", "br/a.txt", 5, false), ("space name", "br/space name", 0, true), ("sub", "br/sub", 0, true)])
    );
    // Files show the listing's LastModified (no HEAD per object); folders have none.
    assert!(mtimes[0] >= before.saturating_sub(2), "{mtimes:?} vs {before}");
    assert_eq!(&mtimes[1..], &[0, 0]);
    let (rows, _) = entries(&cred.list_directory(loc("/br/sub/")).await.unwrap());
    assert_eq!(rows, want(&[("b.txt", "br/sub/b.txt", 6, false), ("deeper", "br/sub/deeper", 0, true)]));
    let (rows, _) = entries(&cred.list_directory(loc("")).await.unwrap());
    assert_eq!(rows, want(&[("br", "br", 0, true), ("brx", "brx", 0, true)]));

    // A tree pushed encrypted shows decrypted names and plaintext sizes.
    write_tree(&env.data(), &tree);
    let crypt = vec![
        ("encryption", v(true)),
        ("filename_encryption", v(true)),
        ("encryption_password", v(PW)),
        ("encryption_salt", v("")),
    ];
    let t = env.task("enc-br", crypt.clone()).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    let mut enc_loc = vec![("bucket", v("bkt")), ("folder", v("enc-br"))];
    enc_loc.extend(crypt);
    let (rows, _) = entries(&cred.list_directory(dict(enc_loc)).await.unwrap());
    let decrypted: Vec<Row> = [
        ("a.txt", "enc-br/a.txt", 5, false),
        ("space name", "enc-br/space name", 0, true),
        ("sub", "enc-br/sub", 0, true),
    ]
    .iter()
    .map(|(n, p, s, d)| ((*n).to_owned(), (*p).to_owned(), *s, *d, true))
    .collect();
    assert_eq!(rows, decrypted);
    // Without the keys the same folder shows the stored (encrypted) names.
    let (rows, _) = entries(&cred.list_directory(loc("enc-br")).await.unwrap());
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| !r.4 && !["a.txt", "sub", "space name"].contains(&r.0.as_str())), "{rows:?}");
    // A PULL walks the encrypted bucket folder by folder and gets the tree back.
    let _ = std::fs::remove_dir_all(env.data());
    std::fs::create_dir_all(env.data()).unwrap();
    let pull = vec![
        ("encryption", v(true)),
        ("filename_encryption", v(true)),
        ("encryption_password", v(PW)),
        ("encryption_salt", v("")),
        ("direction", v("PULL")),
    ];
    let t = env.task("enc-br", pull).await;
    let (j, state, err) = env.run(&t).await;
    assert_eq!((state.as_str(), err.as_str()), ("SUCCESS", ""), "{}", job_log(&env.conn, &j).await);
    assert!(local_tree(&env.data()) == tree, "pulled back with mtimes");

    // B2 through its S3-compatible API lists the same way.
    let b2 = manager(&env.conn)
        .await
        .create_credential(
            "b2",
            "B2",
            dict(vec![
                ("account", v(ACCESS_KEY)),
                ("key", v(SECRET_KEY)),
                ("endpoint", v(env.srv.endpoint().as_str())),
                ("region", v("us-east-1")),
            ]),
        )
        .await
        .unwrap();
    let (rows, _) = entries(&credential(&env.conn, &b2).await.list_directory(loc("br/sub")).await.unwrap());
    assert_eq!(rows, want(&[("b.txt", "br/sub/b.txt", 6, false), ("deeper", "br/sub/deeper", 0, true)]));

    // A wrong bucket or folder is a clear error.
    let e = cred.list_directory(dict(vec![("bucket", v("no-such-bucket")), ("folder", v(""))])).await.unwrap_err();
    let (name, msg) = err_name(&e);
    assert_eq!(name, "Failed", "{msg}");
    assert!(msg.contains("bucket no-such-bucket") && msg.contains("does not exist"), "{msg}");
    let e = cred.list_directory(loc("br/nothing-here")).await.unwrap_err();
    let (name, msg) = err_name(&e);
    assert_eq!(name, "Failed", "{msg}");
    assert!(msg.contains("s3://bkt/br/nothing-here: no such folder"), "{msg}");
    let e = cred.list_directory(dict(vec![("folder", v("br"))])).await.unwrap_err();
    assert_eq!(err_name(&e).0, "InvalidArgument", "bucket is required");
}
