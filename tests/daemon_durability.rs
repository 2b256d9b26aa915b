//! Durability, secrets and privileges of the real daemon on a private bus.

mod common;

use common::*;
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

async fn local_task(conn: &zbus::Connection, root: &str, data: &str) -> zbus::zvariant::OwnedObjectPath {
    let m = manager(conn).await;
    m.create_credential("usb", "LOCAL", dict(vec![("root", v(root))])).await.unwrap();
    push_task(&m, data, "SYNC", Some("u0")).await
}

/// Creates a task pushing `data` with credential 1 in `mode`, described as `description` if given.
async fn push_task(
    m: &ManagerProxy<'_>,
    data: &str,
    mode: &str,
    description: Option<&str>,
) -> zbus::zvariant::OwnedObjectPath {
    let mut cfg =
        vec![("path", v(data)), ("credentials", v(1u64)), ("direction", v("PUSH")), ("transfer_mode", v(mode))];
    if let Some(d) = description {
        cfg.insert(0, ("description", v(d)));
    }
    m.create_task(dict(cfg)).await.unwrap()
}

/// A private bus, a temporary folder holding `remote`, `data` and the daemon's `state`, the
/// daemon, a connection and one LOCAL task pushing `data` to `remote`.
struct Setup {
    bus: Bus,
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    state: std::path::PathBuf,
    daemon: Daemon,
    conn: zbus::Connection,
    task: zbus::zvariant::OwnedObjectPath,
}

async fn setup() -> Setup {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (root, data) = (dir.path().join("remote"), dir.path().join("data"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let state = dir.path().join("state");
    let daemon = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    let task = local_task(&conn, root.to_str().unwrap(), data.to_str().unwrap()).await;
    Setup { bus, dir, data, state, daemon, conn, task }
}

/// kill -9 during 200 rapid Updates: after a restart the state loads, the last acknowledged Update
/// is there, and new ids continue after the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_rapid_updates_keeps_every_acknowledged_update() {
    let Setup { bus, dir, data, state, mut daemon, conn, task: path } = setup().await;
    let root = dir.path().join("remote");

    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (conn, path, acked) = (conn.clone(), path.clone(), acked.clone());
        tokio::spawn(async move {
            let t = task(&conn, &path).await;
            for i in 1..=200u64 {
                if t.update(dict(vec![("description", v(format!("u{i}")))])).await.is_err() {
                    break;
                }
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    // Kill somewhere in the middle of the stream of updates.
    while acked.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    daemon.kill9();
    writer.await.unwrap();
    let last = acked.load(Ordering::SeqCst);
    assert!(last < 200, "the daemon was killed after all updates; nothing was tested");

    let _daemon = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    let t = task(&conn, &path).await;
    let desc = get_str(&t.config().await.unwrap(), "description");
    let n: u64 = desc.trim_start_matches('u').parse().unwrap();
    // The update in flight when the daemon died may or may not have landed; every acked one did.
    assert!(n == last || n == last + 1, "acknowledged u{last}, found {desc}");
    // New ids continue after the old ones.
    let m = manager(&conn).await;
    let p = push_task(&m, data.to_str().unwrap(), "COPY", None).await;
    assert_eq!(p.as_str(), "/org/cloudsyncd/CloudSync1/task/2");
    let c = m.create_credential("usb2", "LOCAL", dict(vec![("root", v(root.to_str().unwrap()))])).await.unwrap();
    assert_eq!(c.as_str(), "/org/cloudsyncd/CloudSync1/credential/2");
    // No temporary file is left beside the state.
    let names: Vec<String> =
        std::fs::read_dir(&state).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.contains(&"state.cbor".to_owned()), "{names:?}");
}

/// Secrets never reach the state folder in plain text, nor anything the daemon printed (at trace
/// level), nor properties; they survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_masked_and_never_printed() {
    let secrets = ["S3-SECRET-4d1f9a", "B2-KEY-77c0e2", "CRYPT-PASSWORD-a81b", "CRYPT-SALT-93ce"];
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    let s3 = m
        .create_credential("s3", "S3", dict(vec![("access_key_id", v("AKID")), ("secret_access_key", v(secrets[0]))]))
        .await
        .unwrap();
    m.create_credential("b2", "B2", dict(vec![("account", v("acc")), ("key", v(secrets[1]))])).await.unwrap();
    let t = m
        .create_task(dict(vec![
            ("path", v(data.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("encryption", v(true)),
            ("encryption_password", v(secrets[2])),
            ("encryption_salt", v(secrets[3])),
            ("attributes", map(&[("bucket", v("b"))])),
        ]))
        .await
        .unwrap();
    // Errors must not echo secrets either.
    let e = task(&conn, &t).await.update(dict(vec![("encryption_password", v(7u32))])).await.unwrap_err();
    assert!(!e.to_string().contains("CRYPT"), "{e}");
    credential(&conn, &s3).await.verify().await.unwrap();
    let all = managed(&conn).await;
    assert!(all.contains("********"));
    for s in secrets {
        assert!(!all.contains(s), "{s} in GetManagedObjects");
    }
    daemon.term();
    // Restart: the secrets are read back (masked as set, and usable: Restore copies them).
    let daemon2 = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    let cfg = task(&conn, &t).await.config().await.unwrap();
    assert_eq!(get_str(&cfg, "encryption_password"), "********");
    assert_eq!(get_str(&cfg, "encryption_salt"), "********");

    let mut haystacks = vec![(daemon.stderr_path.display().to_string(), std::fs::read(&daemon.stderr_path).unwrap())];
    haystacks.push((daemon2.stderr_path.display().to_string(), std::fs::read(&daemon2.stderr_path).unwrap()));
    for e in walk(&state) {
        haystacks.push((e.display().to_string(), std::fs::read(&e).unwrap()));
    }
    assert!(haystacks.len() >= 4, "{:?}", haystacks.iter().map(|h| &h.0).collect::<Vec<_>>());
    assert!(!haystacks[0].1.is_empty(), "the daemon printed nothing at trace level");
    for (name, bytes) in &haystacks {
        for s in secrets {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "{s} found in {name}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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

/// A caller with uid 65534 on a bus that allows everything is refused every mutating method, and
/// nothing changes. Needs root (to call as another user); CI runs as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_caller_is_refused_every_mutating_method() {
    assert!(rustix::process::geteuid().is_root(), "this test calls as uid 65534 and must run as root (CI does)");
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = data.to_str().unwrap();
    let _daemon = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let t = local_task(&conn, d, d).await;
    let j = task_run(&conn, &t).await.run(dict(vec![("dry_run", v(true))])).await.unwrap();
    wait_job(&conn, &j, std::time::Duration::from_secs(30)).await;
    let before = managed(&conn).await;
    let cred = "/org/cloudsyncd/CloudSync1/credential/1";
    let task = "/org/cloudsyncd/CloudSync1/task/1";
    let calls: Vec<(&str, &str, Vec<String>)> = vec![
        (ROOT, "Manager.CreateCredential", vec!["'x'".into(), "'LOCAL'".into(), format!("{{'root': <'{d}'>}}")]),
        (
            ROOT,
            "Manager.CreateTask",
            vec![format!(
                "{{'path': <'{d}'>, 'credentials': <uint64 1>, 'direction': <'PUSH'>, 'transfer_mode': <'COPY'>}}"
            )],
        ),
        (cred, "Credential.Update", vec!["{'name': <'y'>}".into()]),
        (cred, "Credential.Delete", vec![]),
        (cred, "Credential.Verify", vec![]),
        (cred, "Credential.ListBuckets", vec![]),
        (cred, "Credential.ListDirectory", vec!["@a{sv} {}".into()]),
        (task, "Task.Update", vec!["{'description': <'z'>}".into()]),
        (task, "Task.Delete", vec![]),
        (task, "Task.Restore", vec![format!("{{'path': <'{d}'>}}")]),
        (task, "Task.Run", vec!["@a{sv} {}".into()]),
        (task, "Task.Abort", vec![]),
        (j.as_str(), "Job.Abort", vec![]),
        (
            ROOT,
            "Manager.RunOnce",
            vec![
                format!(
                    "{{'path': <'{d}'>, 'credentials': <uint64 1>, 'direction': <'PUSH'>, 'transfer_mode': <'COPY'>}}"
                ),
                "@a{sv} {}".into(),
            ],
        ),
    ];
    for (path, method, args) in calls {
        let out = std::process::Command::new("gdbus")
            .args(["call", "--address", &bus.address, "--dest", NAME, "--object-path", path, "--method"])
            .arg(format!("org.cloudsyncd.CloudSync1.{method}"))
            .args(&args)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("gdbus (libglib2.0-bin) must be installed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{method} succeeded for uid 65534");
        assert!(
            stderr.contains("org.cloudsyncd.CloudSync1.Error.PermissionDenied"),
            "{method}: expected PermissionDenied, got {stderr}"
        );
    }
    // Reading is not refused by the daemon (the bus policy decides who may read).
    let out = std::process::Command::new("gdbus")
        .args(["call", "--address", &bus.address, "--dest", NAME, "--object-path", task, "--method"])
        .args(["org.freedesktop.DBus.Properties.Get", "org.cloudsyncd.CloudSync1.Task", "State"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // ReadLog is for the cloudsync group too: the bus policy decides, the daemon does not refuse.
    let out = std::process::Command::new("gdbus")
        .args(["call", "--address", &bus.address, "--dest", NAME, "--object-path", j.as_str(), "--method"])
        .args(["org.cloudsyncd.CloudSync1.Job.ReadLog", "0", "1000"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dry run"));
    assert_eq!(managed(&conn).await, before, "a refused call changed something");
}

use std::os::unix::process::CommandExt;

/// A restart with the history a NAS keeps (20 ended jobs per task, interleaved with other
/// tasks' and `RunOnce` jobs): each task shows its own newest job and that job's state, and
/// every kept job is an object listed by `GetManagedObjects`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_each_task_shows_its_own_newest_job_among_many() {
    use cloudsyncd::model::job::{JobRecord, JobState, KEEP_JOBS};
    let Setup { bus, dir: _dir, data, state, mut daemon, conn, task: first } = setup().await;
    let m = manager(&conn).await;
    let mut tasks = vec![first];
    for i in 1..4 {
        tasks.push(push_task(&m, data.to_str().unwrap(), "SYNC", Some(&format!("u{i}"))).await);
    }
    drop(conn);
    assert!(daemon.term().success());

    let ids: Vec<u64> = tasks.iter().map(|p| p.as_str().rsplit('/').next().unwrap().parse().unwrap()).collect();
    let store = cloudsyncd::store::Store::open(&state).unwrap();
    let mut st = store.load().unwrap();
    let mut newest = std::collections::HashMap::new();
    for round in 0..KEEP_JOBS {
        // The last task has no job at all; a RunOnce job comes after every round.
        for (i, &t) in ids[..3].iter().enumerate() {
            let id = st.next.job;
            st.next.job += 1;
            let outcome = if round == KEEP_JOBS - 1 && i == 1 { JobState::Failed } else { JobState::Success };
            st.jobs.insert(JobRecord::new(id, Some(t), outcome, false));
            newest.insert(t, (id, outcome));
        }
        let id = st.next.job;
        st.next.job += 1;
        st.jobs.insert(JobRecord::new(id, None, JobState::Success, false));
    }
    store.save(&st).unwrap();
    drop(store);

    let _daemon = Daemon::start(&bus, &state).await;
    let conn = bus.connect().await;
    for (path, id) in tasks.iter().zip(&ids) {
        let t = task(&conn, path).await;
        match newest.get(id) {
            Some((job, outcome)) => {
                assert_eq!(t.last_job().await.unwrap().as_str(), format!("/org/cloudsyncd/CloudSync1/job/{job}"));
                assert_eq!(t.state().await.unwrap(), outcome.as_str());
            }
            None => {
                assert_eq!(t.last_job().await.unwrap().as_str(), "/");
                assert_eq!(t.state().await.unwrap(), "PENDING");
            }
        }
    }
    let listed = managed(&conn).await;
    let jobs = listed.lines().filter(|l| l.starts_with("/org/cloudsyncd/CloudSync1/job/")).count();
    assert_eq!(jobs, 4 * KEEP_JOBS, "3 tasks' and the RunOnce jobs, 20 each");
}
