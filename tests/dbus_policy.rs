//! The shipped bus policy (`dbus/org.cloudsyncd.CloudSync1.conf`) on a private bus configured like
//! the system bus, with the daemon running as root: a member of the group `cloudsync` may read
//! properties, call GetManagedObjects and Job.ReadLog and is refused every mutating method; any
//! other user may only Introspect and Peer. Needs root (it creates two users); CI runs as root.

mod common;

use common::*;
use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

const GROUP: &str = "cloudsync";
const MEMBER: &str = "csd-test-member";
const OUTSIDER: &str = "csd-test-outsider";

/// Two users, one in `cloudsync` and one not, made for the test (reused when a killed earlier run
/// left them) and deleted on drop; the group is deleted too when the test created it.
struct Users {
    made_group: bool,
}

fn exists(db: &str, name: &str) -> bool {
    Command::new("getent").args([db, name]).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Users {
    fn create() -> Self {
        require_root();
        let made_group = !exists("group", GROUP);
        if made_group {
            run("groupadd", &["--system", GROUP]);
        }
        for (user, groups) in [(MEMBER, Some(GROUP)), (OUTSIDER, None)] {
            if !exists("passwd", user) {
                let mut args = vec!["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"];
                if let Some(g) = groups {
                    args.extend(["--groups", g]);
                }
                args.push(user);
                run("useradd", &args);
            }
        }
        // A user left by an earlier run is put right: the member in the group, the outsider not.
        run("usermod", &["--groups", GROUP, MEMBER]);
        run("usermod", &["--groups", "", OUTSIDER]);
        Self { made_group }
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for user in [MEMBER, OUTSIDER] {
            let _ = Command::new("userdel").arg(user).output();
        }
        if self.made_group {
            let _ = Command::new("groupdel").arg(GROUP).output();
        }
    }
}

/// The primary gid of `user` (a user group or not, whatever useradd made).
fn primary_gid(user: &str) -> String {
    let out = Command::new("getent").args(["passwd", user]).output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim().split(':').nth(3).unwrap_or_else(|| panic!("no passwd entry for {user}: {line:?}")).to_owned()
}

/// `gdbus call` as `user` with the user's groups (setpriv --init-groups), on `bus`.
fn call_as(user: &str, bus: &Bus, path: &str, method: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", &primary_gid(user), "--init-groups", "--"])
        .args(["gdbus", "call", "--address", &bus.address, "--dest", NAME, "--object-path", path])
        .args(["--method", method])
        .args(args)
        .output()
        .expect("setpriv (util-linux) and gdbus (libglib2.0-bin) must be installed: run scripts/test")
}

/// The call succeeded; its output.
fn allowed(user: &str, bus: &Bus, path: &str, method: &str, args: &[&str]) -> String {
    let out = call_as(user, bus, path, method, args);
    assert!(out.status.success(), "{user}: {method} on {path} was refused: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The call was refused, by the bus policy or by the daemon's own uid check; which one.
fn refused(user: &str, bus: &Bus, path: &str, method: &str, args: &[&str]) -> &'static str {
    let out = call_as(user, bus, path, method, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{user}: {method} on {path} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    if stderr.contains("org.freedesktop.DBus.Error.AccessDenied") {
        "bus"
    } else if stderr.contains("org.cloudsyncd.CloudSync1.Error.PermissionDenied") {
        "daemon"
    } else {
        panic!("{user}: {method} on {path} failed, but not with a refusal: {stderr}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudsync_group_reads_and_nobody_else_does() {
    let _users = Users::create();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbus/org.cloudsyncd.CloudSync1.conf");
    let bus = Bus::start_system_like(&policy);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), b"x").unwrap();
    let d = data.to_str().unwrap();
    // The daemon runs as root (this test does), and root may do everything.
    let _daemon = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("usb", "LOCAL", dict(vec![("root", v(d))])).await.unwrap();
    let t = m
        .create_task(dict(vec![
            ("path", v(d)),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("COPY")),
        ]))
        .await
        .unwrap();
    let j = task_run(&conn, &t).await.run(dict(vec![("dry_run", v(true))])).await.unwrap();
    assert_eq!(wait_job(&conn, &j, Duration::from_secs(60)).await.0, "SUCCESS");
    let before = managed(&conn).await;
    let (cred, task, job) = ("/org/cloudsyncd/CloudSync1/credential/1", t.as_str(), j.as_str());
    let cfg =
        format!("{{'path': <'{d}'>, 'credentials': <uint64 1>, 'direction': <'PUSH'>, 'transfer_mode': <'COPY'>}}");
    let mutating: Vec<(&str, &str, Vec<String>)> = vec![
        (ROOT, "Manager.CreateCredential", vec!["'x'".into(), "'LOCAL'".into(), format!("{{'root': <'{d}'>}}")]),
        (ROOT, "Manager.CreateTask", vec![cfg.clone()]),
        (ROOT, "Manager.RunOnce", vec![cfg, "@a{sv} {}".into()]),
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
        (job, "Job.Abort", vec![]),
    ];
    let set_args = ["org.cloudsyncd.CloudSync1.Task", "NextRun", "<uint64 1>"];

    // A member of cloudsync reads properties, the object tree and job logs.
    let version = allowed(
        MEMBER,
        &bus,
        ROOT,
        "org.freedesktop.DBus.Properties.Get",
        &["org.cloudsyncd.CloudSync1.Manager", "Version"],
    );
    assert!(version.contains('\''), "{version}");
    let all =
        allowed(MEMBER, &bus, task, "org.freedesktop.DBus.Properties.GetAll", &["org.cloudsyncd.CloudSync1.Task"]);
    assert!(all.contains("'State'") && all.contains("'Config'"), "{all}");
    let objects = allowed(MEMBER, &bus, ROOT, "org.freedesktop.DBus.ObjectManager.GetManagedObjects", &[]);
    assert!(objects.contains(task) && objects.contains(job) && objects.contains(cred), "{objects}");
    let log = allowed(MEMBER, &bus, job, "org.cloudsyncd.CloudSync1.Job.ReadLog", &["0", "100000"]);
    assert!(log.contains("dry run"), "{log}");
    allowed(MEMBER, &bus, ROOT, "org.freedesktop.DBus.Introspectable.Introspect", &[]);
    allowed(MEMBER, &bus, ROOT, "org.freedesktop.DBus.Peer.Ping", &[]);
    // … and is refused everything that changes or reaches out.
    let mut by = Vec::new();
    for (path, method, args) in &mutating {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        by.push((*method, refused(MEMBER, &bus, path, &format!("org.cloudsyncd.CloudSync1.{method}"), &args)));
    }
    refused(MEMBER, &bus, task, "org.freedesktop.DBus.Properties.Set", &set_args);
    eprintln!("member refused by: {by:?}");

    // Anyone else: Introspect and Peer only.
    allowed(OUTSIDER, &bus, ROOT, "org.freedesktop.DBus.Introspectable.Introspect", &[]);
    allowed(OUTSIDER, &bus, task, "org.freedesktop.DBus.Peer.Ping", &[]);
    for (path, method, args) in [
        (ROOT, "org.freedesktop.DBus.Properties.Get", &["org.cloudsyncd.CloudSync1.Manager", "Version"][..]),
        (task, "org.freedesktop.DBus.Properties.Get", &["org.cloudsyncd.CloudSync1.Task", "State"]),
        (cred, "org.freedesktop.DBus.Properties.GetAll", &["org.cloudsyncd.CloudSync1.Credential"]),
        (ROOT, "org.freedesktop.DBus.ObjectManager.GetManagedObjects", &[]),
        (job, "org.cloudsyncd.CloudSync1.Job.ReadLog", &["0", "1000"]),
        (task, "org.freedesktop.DBus.Properties.Set", &set_args),
    ] {
        assert_eq!(refused(OUTSIDER, &bus, path, method, args), "bus", "{method} on {path}");
    }
    for (path, method, args) in &mutating {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(OUTSIDER, &bus, path, &format!("org.cloudsyncd.CloudSync1.{method}"), &args);
    }

    // Root still may do everything on this bus, and nothing the others tried changed anything.
    assert_eq!(managed(&conn).await, before, "a refused call changed something");
    assert!(task_run(&conn, &t).await.update(dict(vec![("description", v("root may"))])).await.is_ok());
}
