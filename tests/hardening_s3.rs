//! Worst days on S3 (Garage 2.5.0): kill -9 at random moments of pushes (some with
//! `snapshot=true` on a zfs-fuse pool) and pulls, files larger than the part size among them.
//! After each restart the state loads, the interrupted job reads FAILED, no partial file sits under
//! a final name (pulls), every object of the push folder is absent or equal to its source file, and
//! the daemon's start-up sweeps leave no multipart upload, snapshot, clone or temporary file of
//! ours; at the end the runs complete. Needs root and zfs-fuse (scripts/test installs both).

mod common;
mod common_s3;

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use bytes::Bytes;
use cloudsyncd::remote::s3::{BytesSource, GetOptions, ListRequest, ObjectIdentifier, S3Client, UploadOptions};
use common::{Bus, Daemon, Pool, dict, job, job_log, manager, map, s3_attrs, task, task_run, v, wait_job};
use common_s3::{Server, random_bytes, read_all};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

type Files = BTreeMap<String, Vec<u8>>;

const MIB: usize = 1 << 20;
const INTERRUPTED: &str = "interrupted by a daemon restart";

/// Files under `root` (folders left out).
fn files(root: &Path) -> Files {
    fn walk(root: &Path, dir: &Path, out: &mut Files) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            // A temporary file the restarted daemon sweeps may vanish while we walk.
            let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
            if meta.is_dir() {
                walk(root, &p, out);
            } else if let Ok(data) = std::fs::read(&p) {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, data);
            }
        }
    }
    let mut out = Files::new();
    walk(root, root, &mut out);
    out
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

/// Every key under `prefix`.
async fn keys(s3: &S3Client, prefix: &str) -> Vec<String> {
    let mut pages = s3.list_objects_v2("bkt", ListRequest { prefix: prefix.to_owned(), ..ListRequest::default() });
    let mut out = Vec::new();
    while let Some(page) = pages.next_page().await {
        out.extend(page.unwrap().contents.into_iter().map(|o| o.key));
    }
    out
}

/// rel → content of every object under `prefix`.
async fn objects(s3: &S3Client, prefix: &str) -> Files {
    let mut out = Files::new();
    for key in keys(s3, prefix).await {
        let body = read_all(s3.get_object("bkt", &key, &GetOptions::default()).await.unwrap().body).await;
        out.insert(key.strip_prefix(prefix).unwrap().to_owned(), body);
    }
    out
}

async fn delete_all(s3: &S3Client, prefix: &str) {
    let keys = keys(s3, prefix).await;
    if !keys.is_empty() {
        let ids: Vec<ObjectIdentifier<'_>> =
            keys.iter().map(|k| ObjectIdentifier { key: k, version_id: None }).collect();
        s3.delete_objects("bkt", &ids).await.unwrap();
    }
}

/// Temporary files of ours under `root`.
fn partials(root: &Path) -> Vec<String> {
    files(root).into_keys().filter(|k| k.contains(".cloudsyncd-")).collect()
}

/// Waits (the start-up sweeps run in the background) until no multipart upload, snapshot, clone or
/// temporary file of ours is left.
async fn wait_clean(s3: &S3Client, pool: &Pool, restore: &Path, when: &str) {
    let t0 = Instant::now();
    loop {
        let uploads = s3.list_multipart_uploads("bkt", "").await.unwrap().expect("Garage lists multipart uploads");
        let (snaps, temps) = (pool.ours(), partials(restore));
        if uploads.is_empty() && snaps.is_empty() && temps.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{when}: left behind: uploads {:?}, snapshots/clones {snaps:?}, temporary files {temps:?}",
            uploads.iter().map(|u| &u.key).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_of_s3_pushes_and_pulls_loses_nothing() {
    // Dropped in reverse order of need: the daemon first, then the pool, then the server.
    let srv = Server::garage();
    let s3 = srv.client();
    s3.create_bucket("bkt").await.unwrap();
    let pool = Pool::create();
    let data = pool.dataset("data");
    let dir = tempfile::tempdir().unwrap();
    let (restore, state) = (dir.path().join("restore"), dir.path().join("state"));
    std::fs::create_dir_all(&restore).unwrap();

    // 24 small files in 4 folders and 3 files of three parts (5 MiB parts).
    for i in 0..27usize {
        let size = if i % 9 == 0 { 11 * MIB + i } else { 1000 + i * 397 };
        let p = data.join(format!("d{}/f{i}", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, random_bytes(size)).unwrap();
    }
    let source = files(&data);
    // What the pulls read: the same tree, stored as rclone would (whole MD5 on multipart objects).
    for (rel, body) in &source {
        let opts = UploadOptions { chunk_size: 5 * MIB as u64, ..UploadOptions::default() };
        let src = BytesSource(Bytes::from(body.clone()));
        s3.upload("bkt", &format!("pull/{rel}"), body.len() as u64, &src, &opts).await.unwrap();
    }

    let bus = Bus::start();
    let mut daemon = Daemon::start(&bus, &state).await;
    let mut conn = bus.connect().await;
    let m = manager(&conn).await;
    let attrs = s3_attrs(srv.access_key, srv.secret_key, &srv.endpoint());
    m.create_credential("garage", "S3", attrs).await.unwrap();
    let mk = |direction: &str, path: &Path, folder: &str, extra: Vec<(&'static str, OwnedValue)>| {
        let mut cfg: Vec<(&str, OwnedValue)> = vec![
            ("path", v(path.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v(direction)),
            ("transfer_mode", v("SYNC")),
            ("bwlimit", v(vec!["00:00,8M"])),
            (
                "attributes",
                map(&[("bucket", v("bkt")), ("folder", v(folder)), ("chunk_size", v(5u64)), ("storage_class", v(""))]),
            ),
        ];
        cfg.extend(extra);
        dict(cfg)
    };
    let push = m.create_task(mk("PUSH", &data, "push", vec![])).await.unwrap();
    let push_snap = m.create_task(mk("PUSH", &data, "push", vec![("snapshot", v(true))])).await.unwrap();
    let pull = m.create_task(mk("PULL", &restore, "pull", vec![])).await.unwrap();
    drop(m);

    let total: u64 = source.values().map(|b| b.len() as u64).sum();
    let (mut failed, mut succeeded) = (0, 0);
    let (mut seen_uploads, mut seen_snapshots, mut seen_partials) = (0, 0, 0);
    for round in 0..24 {
        let is_push = round % 2 == 0;
        // Each round starts from an empty destination, so that there is work to interrupt.
        if is_push {
            delete_all(&s3, "push/").await;
        } else {
            std::fs::remove_dir_all(&restore).unwrap();
            std::fs::create_dir_all(&restore).unwrap();
        }
        let t: &OwnedObjectPath = match round % 4 {
            0 => &push,
            2 => &push_snap,
            _ => &pull,
        };
        let j = task_run(&conn, t).await.run(dict(vec![])).await.unwrap();
        if round % 3 == 0 {
            // A moment in time: the snapshot, the listings, the first transfers.
            tokio::time::sleep(Duration::from_millis(rand_u64() % 1500)).await;
        } else {
            // A moment in the data, whatever the machine's speed: after a random number of bytes.
            let at = rand_u64() % (total * 9 / 10);
            let jp = job(&conn, &j).await;
            let t0 = Instant::now();
            while jp.bytes_done().await.unwrap() < at && jp.state().await.unwrap() == "RUNNING" {
                assert!(t0.elapsed() < Duration::from_secs(120), "round {round}: no progress");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        daemon.kill9();
        // What the kill left for the start-up sweeps (the test must see them at work).
        seen_uploads += s3.list_multipart_uploads("bkt", "").await.unwrap().map_or(0, |u| u.len());
        seen_snapshots += pool.ours().len();
        seen_partials += partials(&restore).len();

        // Whatever is under a final name is complete and right.
        if is_push {
            for (k, body) in objects(&s3, "push/").await {
                assert!(source.get(&k) == Some(&body), "round {round}: object push/{k} is partial or wrong");
            }
        } else {
            for (k, body) in files(&restore) {
                if k.contains(".cloudsyncd-") {
                    continue;
                }
                assert!(source.get(&k) == Some(&body), "round {round}: {k} is partial or wrong under its final name");
            }
        }

        daemon = Daemon::start(&bus, &state).await;
        conn = bus.connect().await;
        let (s, e) = wait_job(&conn, &j, Duration::from_secs(60)).await;
        match s.as_str() {
            "FAILED" if e == INTERRUPTED => failed += 1,
            "SUCCESS" => succeeded += 1,
            _ => panic!("round {round}: {s} {e}\n{}", job_log(&conn, &j).await),
        }
        wait_clean(&s3, &pool, &restore, &format!("round {round}, after the restart")).await;
    }
    eprintln!(
        "{failed} rounds interrupted, {succeeded} finished first; left by the kills: {seen_uploads} multipart \
         uploads, {seen_snapshots} snapshots/clones, {seen_partials} temporary files"
    );
    assert!(failed >= 12, "only {failed} of 24 rounds were interrupted ({succeeded} finished first)");
    assert!(
        seen_uploads > 0 && seen_snapshots > 0 && seen_partials > 0,
        "the kills never left a multipart upload ({seen_uploads}), snapshot ({seen_snapshots}) or temporary file \
         ({seen_partials}) for the sweeps to clean"
    );

    // The next runs complete, and nothing of ours is left.
    for t in [&push_snap, &pull] {
        task(&conn, t).await.update(dict(vec![("bwlimit", v(Vec::<String>::new()))])).await.unwrap();
        let j = task_run(&conn, t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&conn, &j, Duration::from_secs(300)).await;
        assert_eq!(s, "SUCCESS", "{e}\n{}", job_log(&conn, &j).await);
    }
    assert!(objects(&s3, "push/").await == source, "the push folder differs from the source");
    assert!(files(&restore) == source, "the restored folder differs from the source");
    wait_clean(&s3, &pool, &restore, "at the end").await;
    daemon.term();
}
