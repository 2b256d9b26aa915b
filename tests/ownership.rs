//! Owners, modes and POSIX ACLs through a PUSH to LOCAL or to S3 (s3s-fs, object metadata) and a
//! restore (`Task.Restore`) under each `ownership` rule, on a file system with POSIX ACLs, through
//! the bus with the real daemon;
//! rclone reads the metadata of our copies; a symlink planted in the destination is not followed
//! while owners are fixed. Needs root (CI is root) and `acl` (getfacl/setfacl) and rclone, which
//! scripts/test installs.

mod common;
mod common_s3;

use common::*;
use std::{
    collections::BTreeMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};
use zbus::zvariant::OwnedObjectPath;

/// A folder on a file system with POSIX ACLs: the temp folder when it has them, else a small
/// loop-mounted ext4 image (unmounted on drop).
struct AclDir {
    dir: tempfile::TempDir,
    root: PathBuf,
    mounted: bool,
}

fn sh(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} cannot run ({e}): run scripts/test, which installs acl, attr and rclone"));
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

impl AclDir {
    fn new() -> Self {
        require_root();
        let dir = tempfile::Builder::new().prefix("cloudsyncd-acl").tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::create_dir(&probe).unwrap();
        let ok = Command::new("setfacl")
            .args(["-m", "u:4321:rwx", probe.to_str().unwrap()])
            .status()
            .unwrap_or_else(|e| panic!("setfacl cannot run ({e}): run scripts/test, which installs acl"))
            .success();
        if ok {
            let root = dir.path().join("fs");
            std::fs::create_dir(&root).unwrap();
            return Self { dir, root, mounted: false };
        }
        let img = dir.path().join("ext4.img");
        std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
        sh("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
        let root = dir.path().join("fs");
        std::fs::create_dir(&root).unwrap();
        sh("mount", &["-o", "loop,acl", img.to_str().unwrap(), root.to_str().unwrap()]);
        Self { dir, root, mounted: true }
    }
}

impl Drop for AclDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.root).status();
        }
    }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn file(p: &Path, data: &[u8], owner: (u32, u32), mode: u32, mtime: u64) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    chown(p, owner.0, owner.1);
    chmod(p, mode);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::new(mtime, 250_000_000))
        .unwrap();
}

fn set_mtime_dir(p: &Path, mtime: u64) {
    std::fs::File::open(p).unwrap().set_modified(SystemTime::UNIX_EPOCH + Duration::new(mtime, 0)).unwrap();
}

/// The ACL as getfacl prints it (numeric ids, no header), `""` for none beyond the mode.
fn acl(p: &Path) -> String {
    sh("getfacl", &["--numeric", "--omit-header", "--absolute-names", "--skip-base", p.to_str().unwrap()])
        .trim()
        .to_owned()
}

/// rel path → (uid, gid, mode, ACL text, mtime in whole seconds)
type Facts = BTreeMap<String, (u32, u32, u32, String, i64)>;

fn facts(root: &Path) -> Facts {
    fn walk(root: &Path, dir: &Path, out: &mut Facts) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            out.insert(rel, (m.uid(), m.gid(), m.mode(), acl(&p), m.mtime()));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Facts::new();
    walk(root, root, &mut out);
    out
}

/// The source tree: several owners and modes, a file with its own ACL, a set-gid folder with a
/// default ACL (and a file that inherited it), a set-uid program.
fn source_tree(data: &Path) {
    file(&data.join("a.txt"), b"alpha", (1000, 1000), 0o640, 1_600_000_000);
    file(&data.join("root.txt"), b"root", (0, 0), 0o600, 1_600_000_010);
    file(&data.join("dir/b.bin"), &[7u8; 5000], (2000, 3000), 0o604, 1_600_000_020);
    file(&data.join("dir/acl.txt"), b"acl", (1000, 100), 0o660, 1_600_000_030);
    sh("setfacl", &["-m", "u:555:r-x", data.join("dir/acl.txt").to_str().unwrap()]);
    file(&data.join("dir/deep/c.txt"), b"c", (2000, 3000), 0o644, 1_600_000_040);
    let shared = data.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    sh("setfacl", &["-d", "-m", "u:777:rwx", shared.to_str().unwrap()]);
    file(&shared.join("s.txt"), b"shared", (1000, 1000), 0o664, 1_600_000_050);
    sh("setfacl", &["-m", "u:777:rwx", shared.join("s.txt").to_str().unwrap()]);
    file(&data.join("prog"), b"#!/bin/sh\n", (0, 0), 0o4755, 1_600_000_060);
    for (d, owner, mode, t) in [
        ("dir/deep", (2000, 3000), 0o700, 1_500_000_100),
        ("dir", (2000, 3000), 0o750, 1_500_000_200),
        ("shared", (1000, 1000), 0o2775, 1_500_000_300),
    ] {
        let p = data.join(d);
        chown(&p, owner.0, owner.1);
        chmod(&p, mode);
        set_mtime_dir(&p, t);
    }
}

fn is_dir(f: &(u32, u32, u32, String, i64)) -> bool {
    f.2 & 0o170_000 == 0o040_000
}

/// `inherit` into a folder owned 1234:1234 with the default ACL u:4321:rwx: every file and folder
/// is owned like that folder and inherited its ACL.
fn assert_inherited(got: &Facts, src: &Facts) {
    assert_eq!(got.keys().collect::<Vec<_>>(), src.keys().collect::<Vec<_>>());
    for (k, g) in got {
        assert_eq!((g.0, g.1), (1234, 1234), "{k} is not owned like its folder");
        assert!(g.3.contains("user:4321:rwx"), "{k} did not inherit the folder's default ACL: {}", g.3);
        if is_dir(g) {
            assert!(g.3.contains("default:user:4321:rwx"), "folder {k} has no inherited default ACL: {}", g.3);
            assert_eq!(g.2 & 0o777, 0o775, "{k}: created 0777, the default ACL's mask decides");
        } else {
            assert_eq!(g.2 & 0o777, 0o664, "{k}: created 0666, the default ACL decides");
        }
    }
}

/// `preserve`: the original owners, modes, ACLs and mtimes (set-uid of files dropped), and the
/// inherited ACL gone. With `folders` false (a bucket store keeps no folders, so nothing about
/// them) the folders are as `inherit` makes them, which the contract says for objects without
/// metadata.
fn assert_preserved(got: &Facts, src: &Facts, folders: bool) {
    assert_eq!(got.keys().collect::<Vec<_>>(), src.keys().collect::<Vec<_>>());
    for (k, s) in src {
        if is_dir(s) && !folders {
            let g = &got[k];
            assert_eq!((g.0, g.1, g.2 & 0o7777), (1234, 1234, 0o775), "folder {k}: as inherit");
            assert!(g.3.contains("default:user:4321:rwx"), "folder {k}: as inherit: {}", g.3);
            continue;
        }
        let want_mode = if k == "prog" { s.2 & !0o4000 } else { s.2 };
        assert_eq!(got[k], (s.0, s.1, want_mode, s.3.clone(), s.4), "{k} restored with preserve");
    }
}

/// `root`: everything owned by root.
fn assert_rooted(got: &Facts, src: &Facts) {
    assert_eq!(got.keys().collect::<Vec<_>>(), src.keys().collect::<Vec<_>>());
    for (k, g) in got {
        assert_eq!((g.0, g.1), (0, 0), "{k} is not owned by root");
    }
}

#[allow(dead_code)] // bus and daemon stay alive for the test
struct Env {
    bus: Bus,
    daemon: Daemon,
    conn: zbus::Connection,
    fs: AclDir,
}

impl Env {
    async fn start() -> Self {
        let fs = AclDir::new();
        for d in ["data", "remote", "outside"] {
            std::fs::create_dir_all(fs.root.join(d)).unwrap();
        }
        let bus = Bus::start();
        // The unit's umask: it must not leak into restored files.
        let daemon = Daemon::start_umask(&bus, &fs.dir.path().join("state"), "0077").await;
        let conn = bus.connect().await;
        manager(&conn)
            .await
            .create_credential("usb", "LOCAL", dict(vec![("root", v(fs.root.join("remote").to_str().unwrap()))]))
            .await
            .unwrap();
        Self { bus, daemon, conn, fs }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.fs.root.join(rel)
    }

    async fn push_task(&self) -> OwnedObjectPath {
        self.push_task_to(1, map(&[("folder", v("f"))])).await
    }

    /// A PUSH SYNC of `data` with credential `cred` and these attributes.
    async fn push_task_to(&self, cred: u64, attributes: zbus::zvariant::OwnedValue) -> OwnedObjectPath {
        let cfg = vec![
            ("path", v(self.p("data").to_str().unwrap())),
            ("credentials", v(cred)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", attributes),
        ];
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    async fn run(&self, t: &OwnedObjectPath) -> (String, String, String) {
        let j = task_run(&self.conn, t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(120)).await;
        (s, e, job_log(&self.conn, &j).await)
    }

    /// A restore destination owned 1234:1234 with the default ACL u:4321:rwx.
    fn restore_dir(&self, name: &str) -> PathBuf {
        let d = self.p(name);
        std::fs::create_dir_all(&d).unwrap();
        chown(&d, 1234, 1234);
        chmod(&d, 0o775);
        sh("setfacl", &["-d", "-m", "u:4321:rwx", d.to_str().unwrap()]);
        d
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_keeps_metadata_on_the_local_copy_and_restores_follow_each_ownership_rule() {
    let env = Env::start().await;
    source_tree(&env.p("data"));
    let src = facts(&env.p("data"));
    let push = env.push_task().await;
    let (s, e, log) = env.run(&push).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");

    // The LOCAL copy carries owner, group, mode, mtime and ACLs itself; no side files. Set-id
    // bits of files are never recreated.
    let copy = facts(&env.p("remote/f"));
    assert_eq!(copy.keys().collect::<Vec<_>>(), src.keys().collect::<Vec<_>>(), "only the user's files");
    for (k, s) in &src {
        let want_mode = if k == "prog" { s.2 & !0o4000 } else { s.2 };
        assert_eq!(copy[k], (s.0, s.1, want_mode, s.3.clone(), s.4), "{k} on the LOCAL remote");
    }
    assert!(copy["dir/acl.txt"].3.contains("user:555:r-x"), "{:?}", copy["dir/acl.txt"]);
    assert!(copy["shared"].3.contains("default:user:777:rwx"), "{:?}", copy["shared"]);

    // rclone reads our metadata (its local backend's keys): mtime, uid, gid and mode.
    let listing = Command::new("rclone")
        .args(["lsjson", "-M", "-R", "--files-only", env.p("remote/f").to_str().unwrap()])
        .env("RCLONE_CONFIG", "/dev/null")
        .output()
        .expect("rclone is needed: run scripts/test, which installs it");
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let items: Vec<serde_json::Value> = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(items.len(), src.values().filter(|f| f.2 & 0o170_000 == 0o100_000).count());
    for it in &items {
        let path = it["Path"].as_str().unwrap();
        let m = &it["Metadata"];
        let s = &src[path];
        assert_eq!(m["uid"].as_str().unwrap(), s.0.to_string(), "{path}");
        assert_eq!(m["gid"].as_str().unwrap(), s.1.to_string(), "{path}");
        assert_eq!(u32::from_str_radix(m["mode"].as_str().unwrap(), 8).unwrap(), copy[path].2, "{path}");
        let mtime: jiff::Timestamp = m["mtime"].as_str().unwrap().parse().unwrap();
        assert_eq!((mtime.as_second(), mtime.subsec_nanosecond()), (s.4, 250_000_000), "{path}");
    }

    // Restore with the default rule (inherit): the folder's owner and its default ACL.
    let restore = task(&env.conn, &push)
        .await
        .restore(dict(vec![("path", v(env.restore_dir("r-inherit").to_str().unwrap())), ("transfer_mode", v("COPY"))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: inherit"), "{log}");
    assert_inherited(&facts(&env.p("r-inherit")), &src);

    // preserve: the original owners, modes and ACLs, and the inherited ACL is gone.
    let rt = task(&env.conn, &restore).await;
    rt.update(dict(vec![("ownership", v("preserve")), ("path", v(env.restore_dir("r-preserve").to_str().unwrap()))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: preserve"), "{log}");
    assert_preserved(&facts(&env.p("r-preserve")), &src, true);

    // inherit into a folder without a default ACL: 0644 and 0755, not the daemon's umask 0077.
    let plain = env.p("r-plain");
    std::fs::create_dir_all(&plain).unwrap();
    chown(&plain, 1234, 1234);
    rt.update(dict(vec![("ownership", v("inherit")), ("path", v(plain.to_str().unwrap()))])).await.unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    let got = facts(&plain);
    assert_eq!(got.len(), src.len());
    for (k, g) in &got {
        let want = if g.2 & 0o170_000 == 0o040_000 { 0o040_755 } else { 0o100_644 };
        assert_eq!((g.0, g.1, g.2, g.3.as_str()), (1234, 1234, want, ""), "{k}");
    }

    // root: TrueNAS's behaviour, everything owned by root.
    rt.update(dict(vec![("ownership", v("root")), ("path", v(env.restore_dir("r-root").to_str().unwrap()))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: root"), "{log}");
    assert_rooted(&facts(&env.p("r-root")), &src);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_s3s_fs_objects_carry_the_metadata_and_restores_follow_each_ownership_rule() {
    use common_s3::{ACCESS_KEY, SECRET_KEY, Server, client};
    let env = Env::start().await;
    let srv = Server::s3s_fs();
    let s3 = client(&srv.endpoint());
    s3.create_bucket("bkt").await.unwrap();
    let attrs = s3_attrs(ACCESS_KEY, SECRET_KEY, &srv.endpoint());
    let cred = manager(&env.conn).await.create_credential("s3s", "S3", attrs).await.unwrap();
    let cred_id = credential(&env.conn, &cred).await.id().await.unwrap();
    source_tree(&env.p("data"));
    let src = facts(&env.p("data"));
    let push =
        env.push_task_to(cred_id, map(&[("bucket", v("bkt")), ("folder", v("f")), ("storage_class", v(""))])).await;
    let (s, e, log) = env.run(&push).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");

    // Each object carries owner, group, mode and ACLs as user metadata under rclone's keys.
    for (k, f) in src.iter().filter(|(_, f)| !is_dir(f)) {
        let head = s3.head_object("bkt", &format!("f/{k}")).await.unwrap().unwrap_or_else(|| panic!("no object {k}"));
        let m = &head.metadata;
        assert_eq!(m.get("uid").map(String::as_str), Some(f.0.to_string().as_str()), "{k}: {m:?}");
        assert_eq!(m.get("gid").map(String::as_str), Some(f.1.to_string().as_str()), "{k}: {m:?}");
        assert_eq!(m.get("mode").map(|x| u32::from_str_radix(x, 8).unwrap()), Some(f.2), "{k}: {m:?}");
        assert_eq!(m.contains_key("posix-acl-access"), !f.3.is_empty(), "{k}: {m:?}");
    }

    let restore = task(&env.conn, &push)
        .await
        .restore(dict(vec![("path", v(env.restore_dir("r-inherit").to_str().unwrap())), ("transfer_mode", v("COPY"))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: inherit"), "{log}");
    assert_inherited(&facts(&env.p("r-inherit")), &src);

    let rt = task(&env.conn, &restore).await;
    rt.update(dict(vec![("ownership", v("preserve")), ("path", v(env.restore_dir("r-preserve").to_str().unwrap()))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: preserve"), "{log}");
    assert_preserved(&facts(&env.p("r-preserve")), &src, false);

    rt.update(dict(vec![("ownership", v("root")), ("path", v(env.restore_dir("r-root").to_str().unwrap()))]))
        .await
        .unwrap();
    let (s, e, log) = env.run(&restore).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");
    assert!(log.contains("Ownership: root"), "{log}");
    assert_rooted(&facts(&env.p("r-root")), &src);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_in_the_destination_is_not_followed_while_owners_are_fixed() {
    let env = Env::start().await;
    file(&env.p("data/a.txt"), b"alpha", (2000, 3000), 0o640, 1_600_000_000);
    file(&env.p("data/dir/b.bin"), b"bravo", (2000, 3000), 0o600, 1_600_000_000);
    let push = env.push_task().await;
    let (s, e, log) = env.run(&push).await;
    assert_eq!(s, "SUCCESS", "{e}\n{log}");

    // Outside the destination: a folder and a file owned by 4444 that must keep their owner.
    let outside_dir = env.p("outside/victim-dir");
    std::fs::create_dir_all(&outside_dir).unwrap();
    chown(&outside_dir, 4444, 4444);
    chmod(&outside_dir, 0o700);
    let outside_file = env.p("outside/victim.txt");
    file(&outside_file, b"precious", (4444, 4444), 0o600, 1_500_000_000);

    let restore = task(&env.conn, &push)
        .await
        .restore(dict(vec![("path", v(env.restore_dir("r").to_str().unwrap())), ("transfer_mode", v("COPY"))]))
        .await
        .unwrap();
    for rule in ["inherit", "preserve"] {
        let r = env.p("r");
        let _ = std::fs::remove_file(r.join("a.txt"));
        std::os::unix::fs::symlink(&outside_dir, r.join("dir")).ok();
        std::os::unix::fs::symlink(&outside_file, r.join("a.txt")).unwrap();
        task(&env.conn, &restore).await.update(dict(vec![("ownership", v(rule))])).await.unwrap();
        let (s, e, log) = env.run(&restore).await;
        assert_eq!(s, "FAILED", "{rule}: the planted folder symlink must be refused\n{log}");
        assert!(e.contains("symlink"), "{rule}: {e}");

        for (p, mode) in [(&outside_dir, 0o700), (&outside_file, 0o600)] {
            let m = std::fs::symlink_metadata(p).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (4444, 4444, mode),
                "{rule}: {} was changed",
                p.display()
            );
        }
        assert_eq!(std::fs::read(&outside_file).unwrap(), b"precious", "{rule}");
        assert_eq!(std::fs::read_dir(&outside_dir).unwrap().count(), 0, "{rule}: written through the symlink");
        // The file symlink itself was replaced by the restored file, never written through.
        let a = std::fs::symlink_metadata(r.join("a.txt")).unwrap();
        assert!(a.is_file(), "{rule}: a.txt is still a symlink");
        let want = if rule == "preserve" { (2000, 3000) } else { (1234, 1234) };
        assert_eq!((a.uid(), a.gid()), want, "{rule}");
        assert!(std::fs::symlink_metadata(r.join("dir")).unwrap().file_type().is_symlink());
    }
}
