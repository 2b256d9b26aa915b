//! Worst days on the LOCAL provider: kill -9 at random moments of pushes and pulls, and a
//! destination folder swapped for a symlink in the middle of a PULL.

mod common;

use common::*;
use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};
use zbus::zvariant::OwnedObjectPath;

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_str().unwrap().to_owned(),
                    std::fs::read(&p).unwrap_or_default(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_loses_nothing() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (data, remote, state) = (dir.path().join("data"), dir.path().join("remote"), dir.path().join("state"));
    std::fs::create_dir_all(&remote).unwrap();
    for i in 0..40 {
        let size = if i % 10 == 0 { 2 << 20 } else { 1000 + i * 37 };
        let body: Vec<u8> = (0..size).map(|b| u8::try_from((b * 7 + i) % 251).unwrap()).collect();
        let p = data.join(format!("d{}/f{i}", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let source = files(&data);
    let mut daemon = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("usb", "LOCAL", dict(vec![("root", v(remote.to_str().unwrap()))])).await.unwrap();
    let mk = |dir: &'static str, path: &Path| {
        dict(vec![
            ("path", v(path.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v(dir)),
            ("transfer_mode", v("SYNC")),
            ("bwlimit", v(vec!["00:00,8M"])),
            ("attributes", map(&[("folder", v("f"))])),
        ])
    };
    let push = m.create_task(mk("PUSH", &data)).await.unwrap();
    let restore = dir.path().join("restore");
    std::fs::create_dir_all(&restore).unwrap();
    let pull = m.create_task(mk("PULL", &restore)).await.unwrap();
    drop(m);
    let mut conn = conn;
    for round in 0..20 {
        let (task_path, dst): (&OwnedObjectPath, std::path::PathBuf) =
            if round % 2 == 0 { (&push, remote.join("f")) } else { (&pull, restore.clone()) };
        let j = task_run(&conn, task_path).await.run(dict(vec![])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(rand_u64() % 400)).await;
        daemon.kill9();
        // Whatever is under a final name is complete and right.
        let want = if round % 2 == 0 { source.clone() } else { files(&remote.join("f")) };
        for (k, body) in files(&dst) {
            if k.contains(".cloudsyncd-") {
                continue;
            }
            assert_eq!(want.get(&k), Some(&body), "round {round}: {k} is partial or wrong under its final name");
        }
        daemon = Daemon::start(&bus, &state).await;
        conn = bus.connect().await;
        let (s, e) = wait_job(&conn, &j, Duration::from_secs(60)).await;
        assert!(s == "SUCCESS" || (s == "FAILED" && e == "interrupted by a daemon restart"), "round {round}: {s} {e}");
    }
    // The next runs complete, and nothing of ours is left.
    for (t, dst, want) in [(&push, remote.join("f"), source.clone()), (&pull, restore.clone(), source.clone())] {
        task(&conn, t).await.update(dict(vec![("bwlimit", v(Vec::<String>::new()))])).await.unwrap();
        let j = task_run(&conn, t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&conn, &j, Duration::from_secs(60)).await;
        assert_eq!(s, "SUCCESS", "{e}");
        assert_eq!(files(&dst), want);
    }
    let t0 = Instant::now();
    loop {
        let left: Vec<String> = [files(&remote), files(&restore)]
            .into_iter()
            .flat_map(BTreeMap::into_keys)
            .filter(|k| k.contains(".cloudsyncd-"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "temporary files left: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_swapped_for_a_symlink_mid_pull_cannot_redirect_writes() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (restore, remote, target) = (dir.path().join("restore"), dir.path().join("remote"), dir.path().join("etc"));
    std::fs::create_dir_all(restore.join("sub")).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("passwd"), b"root:x:0:0").unwrap();
    for i in 0..6 {
        std::fs::create_dir_all(remote.join("sub")).unwrap();
        std::fs::write(remote.join(format!("sub/f{i}")), vec![b'a' + i; 512 << 10]).unwrap();
    }
    std::fs::write(remote.join("sub/passwd"), b"evil").unwrap();
    let _d = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("usb", "LOCAL", dict(vec![("root", v(remote.to_str().unwrap()))])).await.unwrap();
    let t = m
        .create_task(dict(vec![
            ("path", v(restore.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PULL")),
            ("transfer_mode", v("COPY")),
            ("transfers", v(1u32)),
            ("bwlimit", v(vec!["00:00,1M"])),
        ]))
        .await
        .unwrap();
    let j = task_run(&conn, &t).await.run(dict(vec![])).await.unwrap();
    let jp = job(&conn, &j).await;
    while jp.bytes_done().await.unwrap() < (256 << 10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Swap the folder being written into for a symlink to "/etc".
    std::fs::rename(restore.join("sub"), dir.path().join("moved-away")).unwrap();
    std::os::unix::fs::symlink(&target, restore.join("sub")).unwrap();
    let (s, e) = wait_job(&conn, &j, Duration::from_secs(60)).await;
    assert_eq!(s, "FAILED", "{e}");
    assert!(e.contains("symlink"), "{e}");
    let names: Vec<String> =
        std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["passwd"], "something was written through the symlink");
    assert_eq!(std::fs::read(target.join("passwd")).unwrap(), b"root:x:0:0");
}
