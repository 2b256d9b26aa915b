//! PUSH with `snapshot=true` on a real zfs-fuse pool (a file-backed vdev per test), through the
//! bus with the real daemon: the remote gets the snapshot-time content while the file changes, the
//! pre-script's output is included, and no snapshot or clone of ours survives success, failure,
//! abort, or kill -9 and a restart. Needs root and zfs-fuse (scripts/test installs and starts it).

mod common;

use common::*;
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

#[allow(dead_code)] // bus, daemon and folders stay alive for the test
struct Env {
    // Dropped in this order: the daemon dies, then the pool goes (unmounting any clone left in
    // the state folder), then the folders.
    bus: Bus,
    daemon: Daemon,
    conn: zbus::Connection,
    pool: Pool,
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Env {
    async fn start() -> Self {
        let pool = Pool::create();
        let data = pool.dataset("data");
        let bus = Bus::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("remote")).unwrap();
        let daemon = Daemon::start(&bus, &dir.path().join("state")).await;
        let conn = bus.connect().await;
        manager(&conn)
            .await
            .create_credential("usb", "LOCAL", dict(vec![("root", v(dir.path().join("remote").to_str().unwrap()))]))
            .await
            .unwrap();
        Self { bus, daemon, conn, pool, dir, data }
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remote/f")
    }

    fn clones_dir(&self) -> PathBuf {
        self.dir.path().join("state/clones")
    }

    async fn task(&self, extra: Vec<(&str, OwnedValue)>) -> OwnedObjectPath {
        let mut cfg = vec![
            ("path", v(self.data.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("snapshot", v(true)),
            ("attributes", map(&[("folder", v("f"))])),
        ];
        cfg.retain(|(k, _)| !extra.iter().any(|(x, _)| x == k));
        cfg.extend(extra);
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    /// Nothing of ours in the pool and no clone folder left in the state folder.
    fn assert_clean(&self, when: &str) {
        assert!(self.pool.ours().is_empty(), "{when}: left behind: {:?}", self.pool.ours());
        let left: Vec<_> = std::fs::read_dir(self.clones_dir()).map(|rd| rd.flatten().collect()).unwrap_or_default();
        assert!(left.is_empty(), "{when}: clone folders left: {left:?}");
    }
}

fn fill(path: &Path, byte: u8, len: usize) {
    std::fs::write(path, vec![byte; len]).unwrap();
}

async fn wait_bytes(conn: &zbus::Connection, j: &OwnedObjectPath, at_least: u64) {
    let jp = job(conn, j).await;
    let t0 = Instant::now();
    while jp.bytes_done().await.unwrap() < at_least {
        let s = jp.state().await.unwrap();
        assert_eq!(s, "RUNNING", "job ended early: {}", job_log(conn, j).await);
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress: {}", job_log(conn, j).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const BIG: usize = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_reads_the_snapshot_while_the_file_changes_and_includes_the_pre_script_output() {
    let env = Env::start().await;
    fill(&env.data.join("big.bin"), b'A', BIG);
    std::fs::write(env.data.join("small.txt"), b"small").unwrap();
    // The pre-script "dumps a database" into the dataset; it sees the task path, not the snapshot.
    let pre = r#"printf '%s' "$CLOUD_SYNC_PATH" > "$CLOUD_SYNC_PATH/db.dump""#;
    let t = env.task(vec![("transfers", v(1u32)), ("bwlimit", v(vec!["00:00,2M"])), ("pre_script", v(pre))]).await;
    let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
    wait_bytes(&env.conn, &j, 1 << 20).await;
    // Mid-transfer: the snapshot and its clone exist.
    let during = env.pool.ours();
    assert!(during.iter().any(|n| n.starts_with(&format!("{}/data@cloud_sync-1-", env.pool.name))), "{during:?}");
    assert!(during.iter().any(|n| n.contains("-clone")), "zfs-fuse has no .zfs, so a clone is read: {during:?}");
    // The live file changes completely, and a new file appears.
    fill(&env.data.join("big.bin"), b'B', BIG);
    std::fs::write(env.data.join("late.txt"), b"late").unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(120)).await;
    let log = job_log(&env.conn, &j).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");

    let got = std::fs::read(env.remote().join("big.bin")).unwrap();
    assert_eq!(got.len(), BIG);
    assert!(got.iter().all(|&b| b == b'A'), "the remote holds bytes written after the snapshot");
    assert_eq!(std::fs::read(env.remote().join("small.txt")).unwrap(), b"small");
    assert_eq!(
        std::fs::read_to_string(env.remote().join("db.dump")).unwrap(),
        env.data.to_str().unwrap(),
        "the pre-script's file is in the snapshot and CLOUD_SYNC_PATH was the task path"
    );
    assert!(!env.remote().join("late.txt").exists(), "a file created after the snapshot was pushed");
    env.assert_clean("after SUCCESS");

    // The log says what was created and destroyed, in the order of a run.
    let pos = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} not in log:\n{log}"));
    let pre_done = pos("[Pre-script] finished");
    let created = pos(&format!("Snapshot {}/data@cloud_sync-1-", env.pool.name));
    let clone = pos("Reading the snapshot through the read-only clone");
    let clone_gone = pos("Clone ");
    let snap_gone = log.rfind(" destroyed").unwrap();
    let finished = pos("Finished successfully");
    assert!(pre_done < created && created < clone && clone < clone_gone, "{log}");
    assert!(clone_gone < snap_gone && snap_gone < finished, "{log}");
    assert!(log.contains("@cloud_sync-1-") && log.contains(" destroyed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_leave_nothing_and_a_failing_pre_script_takes_no_snapshot() {
    let env = Env::start().await;
    std::fs::write(env.data.join("a.txt"), b"a").unwrap();

    // A pre-script exiting 3: the job fails and no snapshot is even created.
    let t = env.task(vec![("pre_script", v("echo dumping; exit 3"))]).await;
    let (j, s, e) = {
        let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
        (j, s, e)
    };
    assert_eq!((s.as_str(), e.as_str()), ("FAILED", "Pre-script failed with exit code 3"));
    assert!(!env.pool.history().contains("zfs snapshot"), "a snapshot was created:\n{}", env.pool.history());
    assert!(!job_log(&env.conn, &j).await.contains("Snapshot "), "{}", job_log(&env.conn, &j).await);
    env.assert_clean("after a failing pre-script");

    // A dry run takes no snapshot either.
    task(&env.conn, &t).await.update(dict(vec![("pre_script", v(""))])).await.unwrap();
    let j = task_run(&env.conn, &t).await.run(dict(vec![("dry_run", v(true))])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    assert_eq!(s, "SUCCESS", "{e}");
    assert!(job_log(&env.conn, &j).await.contains("Snapshot not taken: dry run"));
    assert!(!env.pool.history().contains("zfs snapshot"));

    // A failure after the snapshot was taken (the remote folder is a file): destroyed all the same.
    std::fs::write(env.remote(), b"not a folder").unwrap();
    let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    let log = job_log(&env.conn, &j).await;
    assert_eq!(s, "FAILED", "{log}");
    assert!(e.contains("destination"), "{e}");
    assert!(env.pool.history().contains("zfs snapshot"), "the snapshot was taken before the failure");
    assert!(log.contains("Snapshot ") && log.contains(" destroyed"), "{log}");
    env.assert_clean("after a failed transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_transfer_destroys_clone_and_snapshot() {
    let env = Env::start().await;
    fill(&env.data.join("big.bin"), b'A', BIG);
    let t = env.task(vec![("bwlimit", v(vec!["00:00,1M"]))]).await;
    let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
    wait_bytes(&env.conn, &j, 512 << 10).await;
    assert_eq!(env.pool.ours().len(), 2, "snapshot and clone while running: {:?}", env.pool.ours());
    assert!(task_run(&env.conn, &t).await.abort().await.unwrap());
    let (s, _) = wait_job(&env.conn, &j, Duration::from_secs(30)).await;
    assert_eq!(s, "ABORTED");
    env.assert_clean("after ABORTED");
    let log = job_log(&env.conn, &j).await;
    assert!(log.contains("Aborted") && log.contains(" destroyed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_transfer_then_restart_sweeps_only_our_leftovers() {
    let mut env = Env::start().await;
    fill(&env.data.join("big.bin"), b'A', BIG);
    let t = env.task(vec![("bwlimit", v(vec!["00:00,1M"]))]).await;
    let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
    wait_bytes(&env.conn, &j, 512 << 10).await;
    env.daemon.kill9();
    let leaked = env.pool.ours();
    assert_eq!(leaked.len(), 2, "kill -9 leaves the snapshot and its mounted clone: {leaked:?}");
    // Not ours: a TrueNAS-style name without our property, our property of another daemon's state
    // folder, and a user's own snapshot. The sweep must leave all three alone.
    let ds = format!("{}/data", env.pool.name);
    let foreign = [
        format!("{ds}@cloud_sync-77-20200101000000"),
        format!("{ds}@cloud_sync-1-20200101000000"),
        format!("{ds}@manual"),
    ];
    env.pool.zfs(&["snapshot", &foreign[0]]);
    env.pool.zfs(&["snapshot", "-o", "org.cloudsyncd:job=1", "-o", "org.cloudsyncd:state=/elsewhere", &foreign[1]]);
    env.pool.zfs(&["snapshot", "-o", "org.cloudsyncd:job=1", &foreign[2]]);

    env.daemon = Daemon::start(&env.bus, &env.dir.path().join("state")).await;
    let conn = env.bus.connect().await;
    let t0 = Instant::now();
    while env.pool.all().iter().any(|n| leaked.contains(n)) {
        assert!(t0.elapsed() < Duration::from_secs(30), "leftovers not swept: {:?}", env.pool.all());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = env.pool.all();
    for f in &foreign {
        assert!(all.contains(f), "{f} was destroyed by the sweep: {all:?}");
    }
    let (s, e) = wait_job(&conn, &j, Duration::from_secs(5)).await;
    assert_eq!((s.as_str(), e.as_str()), ("FAILED", "interrupted by a daemon restart"));
    let t0 = Instant::now();
    while std::fs::read_dir(env.clones_dir()).map(|rd| rd.count()).unwrap_or(0) > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "clone folder not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in &foreign {
        env.pool.zfs(&["destroy", f]);
    }

    // The next run works and leaves nothing.
    task(&conn, &t).await.update(dict(vec![("bwlimit", v(Vec::<String>::new()))])).await.unwrap();
    let j2 = task_run(&conn, &t).await.run(dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&conn, &j2, Duration::from_secs(60)).await;
    assert_eq!(s, "SUCCESS", "{e}");
    assert_eq!(std::fs::read(env.remote().join("big.bin")).unwrap().len(), BIG);
    env.assert_clean("after the run following the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_datasets_and_paths_off_zfs_are_refused_with_a_reason() {
    let env = Env::start().await;
    let child = env.pool.dataset("data/child");
    std::fs::write(child.join("inner.txt"), b"in the child").unwrap();
    std::fs::write(env.data.join("a.txt"), b"a").unwrap();
    let t = env.task(vec![]).await;
    let j = task_run(&env.conn, &t).await.run(dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    assert_eq!(s, "FAILED");
    assert!(
        e.contains(&format!(
            "dataset {}/data has other datasets mounted below the task path ({}/data/child at",
            env.pool.name, env.pool.name
        )) && e.contains("turn snapshot off"),
        "{e}"
    );
    assert!(!env.pool.history().contains("zfs snapshot"), "refused before any snapshot");
    assert!(!env.remote().join("a.txt").exists(), "nothing transferred");
    env.assert_clean("after the refusal");

    // A folder inside the dataset without children below it is fine.
    std::fs::create_dir_all(env.data.join("docs")).unwrap();
    std::fs::write(env.data.join("docs/d.txt"), b"d").unwrap();
    let t2 = env.task(vec![("path", v(env.data.join("docs").to_str().unwrap()))]).await;
    let j = task_run(&env.conn, &t2).await.run(dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    assert_eq!(s, "SUCCESS", "{e}\n{}", job_log(&env.conn, &j).await);
    assert_eq!(std::fs::read(env.remote().join("d.txt")).unwrap(), b"d");
    env.assert_clean("after a push of a sub-folder");

    // RunOnce names its snapshot "onetime", as TrueNAS does.
    let once = ManagerRunProxy::new(&env.conn).await.unwrap();
    let cfg = vec![
        ("path", v(env.data.join("docs").to_str().unwrap())),
        ("credentials", v(1u64)),
        ("direction", v("PUSH")),
        ("transfer_mode", v("COPY")),
        ("snapshot", v(true)),
        ("attributes", map(&[("folder", v("once"))])),
    ];
    let j = once.run_once(dict(cfg), dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    let log = job_log(&env.conn, &j).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains(&format!("Snapshot {}/data@cloud_sync-onetime-", env.pool.name)), "{log}");
    assert_eq!(std::fs::read(env.dir.path().join("remote/once/d.txt")).unwrap(), b"d");
    env.assert_clean("after a RunOnce");

    // A path that is not on ZFS at all.
    let plain = env.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let t3 = env.task(vec![("path", v(plain.to_str().unwrap()))]).await;
    let j = task_run(&env.conn, &t3).await.run(dict(vec![])).await.unwrap();
    let (s, e) = wait_job(&env.conn, &j, Duration::from_secs(60)).await;
    assert_eq!(s, "FAILED");
    assert!(e.starts_with("snapshot: ") && e.contains("is not on a mounted ZFS dataset"), "{e}");
}
