//! Large pulls in parallel ranges, on s3s-fs 0.14.1 and Garage 2.5.0: objects of at least 64 MiB
//! (multipart ones pushed by Debian's rclone with 5 MiB chunks and by our own PUSH, and a single
//! PutObject) come back byte for byte with their mtimes, fetched as ranged GETs (counted in the job
//! log); a byte flipped in one range fails the file naming it and leaves neither a temporary nor a
//! destination file (a multipart object without rclone's MD5 metadata is checked part by part
//! against its ETag where the server tells the parts); a connection cut mid-range is resumed.
//! Imports the `common` (bus, daemon), `common_s3` (servers, proxy, rclone) and `common_s3env`
//! (server, proxy, daemon and credential together) harnesses and the crate's S3 client.

mod common;
mod common_s3;
mod common_s3env;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use cloudsyncd::remote::s3::PutOptions;
use common::{dict, job_log, manager, map, task_run, v, wait_job};
use common_s3::{Action, Policy, Server, Tree, local_tree, random_bytes, requests};
use common_s3env::S3Env;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const MIB: usize = 1 << 20;

/// `srv` with bucket `bkt` and local folders `src` and `dst`, the daemon holding credential `s3`
/// for it and reaching it through a proxy with `policy`.
async fn start(srv: Server, policy: Policy) -> S3Env {
    S3Env::on(srv)
        .policy(policy)
        .folders(&["src", "dst"])
        // Ranged pulls start at 1 GiB by default; these objects are 65-70 MiB.
        .daemon_env(&[("CLOUDSYNCD_RANGED_PULL_FROM", "64")])
        .credential("s3")
        .start()
        .await
}

impl S3Env {
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn dst(&self) -> PathBuf {
        self.dir.path().join("dst")
    }

    /// A task between `local` and `bkt/pull` with 5 MiB parts.
    async fn task(&self, local: &Path, direction: &str) -> OwnedObjectPath {
        let attributes =
            map(&[("bucket", v("bkt")), ("folder", v("pull")), ("chunk_size", v(5u64)), ("storage_class", v(""))]);
        let cfg: Vec<(&str, OwnedValue)> = vec![
            ("path", v(local.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v(direction)),
            ("transfer_mode", v("COPY")),
            ("attributes", attributes),
        ];
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    /// Runs the task to its end: (state, error, log).
    async fn run(&self, task: &OwnedObjectPath) -> (String, String, String) {
        let j = task_run(&self.conn, task).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(600)).await;
        let log = job_log(&self.conn, &j).await;
        (s, e, log)
    }

    /// Fills `bkt/pull` with (straight to the server, not through the proxy):
    /// * `rclone.bin`, 66 MiB + 3 pushed by rclone in 5 MiB parts (with `X-Amz-Meta-Md5chksum`);
    /// * `ours.bin`, 70 MiB + 1 pushed by our PUSH in 5 MiB parts (no whole MD5 stored);
    /// * `plain.bin`, 65 MiB in one PutObject (its ETag is its MD5);
    /// * `small.txt`, read in one GET.
    async fn seed(&self) -> Tree {
        let mut tree = Tree::new();
        let rclone_bin = random_bytes(66 * MIB + 3);
        let rclone_mtime = 1_650_000_000_000_000_000;
        let seed = self.dir.path().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        write_file(&seed.join("rclone.bin"), &rclone_bin, rclone_mtime);
        let out = self.srv.rclone(&[
            "copyto",
            seed.join("rclone.bin").to_str().unwrap(),
            "s:bkt/pull/rclone.bin",
            "--s3-chunk-size",
            "5M",
            "--s3-upload-cutoff",
            "5M",
        ]);
        assert!(out.status.success(), "rclone copyto: {}", String::from_utf8_lossy(&out.stderr));
        tree.insert("rclone.bin".into(), (rclone_bin, rclone_mtime));

        let ours = random_bytes(70 * MIB + 1);
        let ours_mtime = 1_660_000_000_123_456_789;
        write_file(&self.src().join("ours.bin"), &ours, ours_mtime);
        let push = self.task(&self.src(), "PUSH").await;
        let (s, e, log) = self.run(&push).await;
        assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
        tree.insert("ours.bin".into(), (ours, ours_mtime));

        for (name, data, mtime) in [
            ("plain.bin", random_bytes(65 * MIB), 1_670_000_000_000_000_001_i128),
            ("small.txt", b"small".to_vec(), 1_680_000_000_000_000_000),
        ] {
            let opts = PutOptions { mtime: Some(mtime), ..PutOptions::default() };
            self.s3.put_object_bytes("bkt", &format!("pull/{name}"), Bytes::from(data.clone()), &opts).await.unwrap();
            tree.insert(name.into(), (data, mtime));
        }
        for (name, parts) in [("rclone.bin", "-14\""), ("ours.bin", "-15\""), ("plain.bin", "")] {
            let head = self.s3.head_object("bkt", &format!("pull/{name}")).await.unwrap().unwrap();
            assert!(head.etag.ends_with(parts) && head.etag.contains('-') != parts.is_empty(), "{name}: {}", head.etag);
        }
        tree
    }
}

fn write_file(p: &Path, data: &[u8], mtime: i128) {
    std::fs::write(p, data).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(mtime).unwrap());
    std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

fn assert_same(got: &Tree, want: &Tree) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (name, (data, mtime)) in want {
        let (g, m) = &got[name];
        assert!(g == data, "{name}: the pulled bytes differ ({} bytes, {} expected)", g.len(), data.len());
        assert_eq!(m, mtime, "{name}: mtime");
    }
}

/// Whether a (lower-case) request head is a ranged GET of `pull/name`.
fn ranged_get_of(head: &str, name: &str) -> bool {
    head.lines().next().unwrap_or_default().starts_with(&format!("get /bkt/pull/{name} "))
        && head.lines().any(|l| l.starts_with("range: bytes="))
}

async fn pulls_in_ranges(srv: Server) {
    let env = start(srv, Arc::new(|_, _| Action::Forward)).await;
    let want = env.seed().await;
    let pull = env.task(&env.dst(), "PULL").await;
    let (s, e, log) = env.run(&pull).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert_same(&local_tree(&env.dst()), &want);
    // The three large objects came in 4 ranges each, each asked for once; the small one in one
    // plain GET.
    assert_eq!(requests(&log, "GetObjectRange"), 12, "{log}");
    assert_eq!(requests(&log, "HeadObjectPart"), 3, "{log}");
    assert_eq!(requests(&log, "GetObject"), 1, "{log}");
    // Debian's rclone agrees with what was pulled.
    let out = env.srv.rclone(&["check", env.dst().to_str().unwrap(), "s:bkt/pull", "--download"]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.contains("0 differences found"), "rclone check --download: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_pull_in_ranges_byte_for_byte_on_s3s_fs() {
    pulls_in_ranges(Server::s3s_fs()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_pull_in_ranges_byte_for_byte_on_garage() {
    pulls_in_ranges(Server::garage()).await;
}

/// Flips one byte of the first ranged GET of each of `names`; the pull fails naming each with
/// the check that caught it, and leaves nothing of them; the next run brings them right.
async fn a_flipped_byte_fails_the_file(srv: Server, caught: &[(&'static str, &'static str)]) {
    let names: Vec<&'static str> = caught.iter().map(|(n, _)| *n).collect();
    let flipped: Arc<Vec<AtomicU32>> = Arc::new(names.iter().map(|_| AtomicU32::new(0)).collect());
    let f = flipped.clone();
    let policy: Policy = Arc::new(move |_, head| {
        for (name, n) in names.iter().zip(f.iter()) {
            if ranged_get_of(head, name) && n.fetch_add(1, Ordering::SeqCst) == 0 {
                return Action::CorruptResponse;
            }
        }
        Action::Forward
    });
    let env = start(srv, policy).await;
    let want = env.seed().await;
    let pull = env.task(&env.dst(), "PULL").await;
    let (s, e, log) = env.run(&pull).await;
    assert_eq!(env.proxy().stats.corrupted.load(Ordering::SeqCst), caught.len() as u64, "{log}");
    assert_eq!(s, "FAILED", "a corrupted download was accepted:\n{log}");
    assert!(!e.is_empty(), "no reason given");
    for (name, from) in caught {
        let line = log
            .lines()
            .find(|l| l.contains(" ERROR ") && l.contains(name))
            .unwrap_or_else(|| panic!("{name}: no error in the job log:\n{log}"));
        assert!(line.contains("do not match") && line.contains(from), "{name}: {line}");
    }
    // The others are in place; of the refused ones neither a temporary nor a final file is left.
    let got = local_tree(&env.dst());
    let mut rest = want.clone();
    rest.retain(|k, _| !caught.iter().any(|(n, _)| n == k));
    assert_same(&got, &rest);

    let (s, e, log) = env.run(&pull).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert_same(&local_tree(&env.dst()), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_in_one_range_fails_the_file_on_s3s_fs() {
    // s3s-fs ignores partNumber: the parts are inferred, and a digest that does not match them
    // is settled by the whole MD5 (rclone's metadata, the plain ETag).
    a_flipped_byte_fails_the_file(Server::s3s_fs(), &[("rclone.bin", "X-Amz-Meta-Md5chksum"), ("plain.bin", "ETag")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_in_one_range_fails_the_file_on_garage() {
    // Garage tells the parts: our own multipart object, which carries no whole MD5 (a
    // single-stream read checks only its length), is refused by its multipart ETag.
    a_flipped_byte_fails_the_file(
        Server::garage(),
        &[("ours.bin", "multipart ETag"), ("rclone.bin", "multipart ETag"), ("plain.bin", "ETag")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_range_is_resumed() {
    // The first two ranged GETs of rclone.bin are cut after 3 MiB of their response.
    let cut = Arc::new(AtomicU32::new(0));
    let c = cut.clone();
    let policy: Policy = Arc::new(move |_, head| {
        if ranged_get_of(head, "rclone.bin") && c.fetch_add(1, Ordering::SeqCst) < 2 {
            return Action::Truncate(3 * MIB);
        }
        Action::Forward
    });
    let env = start(Server::s3s_fs(), policy).await;
    let want = env.seed().await;
    let pull = env.task(&env.dst(), "PULL").await;
    let (s, e, log) = env.run(&pull).await;
    assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "{log}");
    assert!(env.proxy().stats.truncated.load(Ordering::SeqCst) >= 2, "no range was cut");
    assert_same(&local_tree(&env.dst()), &want);
    // Each cut range was asked for again from where it broke (one more ranged GET per cut).
    assert_eq!(requests(&log, "GetObjectRange"), 14, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_tell_parts_or_ignore_part_numbers() {
    // What the part check relies on, per server: Garage answers HEAD ?partNumber with the
    // parts count and the part's length; s3s-fs ignores partNumber (the whole object).
    for (srv, told) in [(Server::garage(), true), (Server::s3s_fs(), false)] {
        let s3 = srv.client();
        s3.create_bucket("bkt").await.unwrap();
        let data = random_bytes(12 * MIB);
        let opts = cloudsyncd::remote::s3::UploadOptions {
            put: PutOptions::default(),
            chunk_size: 5 * MIB as u64,
            concurrency: 2,
            whole_md5: false,
        };
        let src = cloudsyncd::remote::s3::BytesSource(Bytes::from(data));
        s3.upload("bkt", "m.bin", 12 * MIB as u64, &src, &opts).await.unwrap();
        let h = s3.head_object_part("bkt", "m.bin", 1).await.unwrap().unwrap();
        if told {
            assert_eq!((h.parts_count, h.len), (Some(3), 5 * MIB as u64), "{h:?}");
        } else {
            assert_eq!((h.parts_count, h.len), (None, 12 * MIB as u64), "{h:?}");
        }
    }
}
