//! Encrypted tasks end to end on the LOCAL provider, through the bus, on real files, with
//! Debian's rclone as the oracle: what we push rclone checks and decrypts, what rclone encrypted
//! we pull back identical, and wrong passwords, damaged objects and over-long names fail the way
//! the contract says. Imports the test harness, the crate's `crypt` module (to find stored names)
//! and std.

mod common;

use cloudsyncd::crypt::{Cipher, NameOptions};
use common::*;
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, SystemTime},
};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const PW: &str = "correct horse battery staple";
const SALT: &str = "NaCl-pepper";

/// The four ways a task can encrypt: (file name encryption, salt).
const MODES: [(bool, &str); 4] = [(true, ""), (true, SALT), (false, ""), (false, SALT)];

#[allow(dead_code)] // bus and daemon stay alive for the test
struct Env {
    bus: Bus,
    daemon: Daemon,
    conn: zbus::Connection,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        assert_rclone();
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
        std::fs::write(dir.path().join("rclone.conf"), "").unwrap();
        Self { bus, daemon, conn, dir }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// An encrypted task between the local `path` and the LOCAL folder `remote/<folder>`.
    async fn task(
        &self,
        path: &Path,
        folder: &str,
        names: bool,
        pw: &str,
        salt: &str,
        extra: Vec<(&str, OwnedValue)>,
    ) -> OwnedObjectPath {
        let mut cfg = vec![
            ("path", v(path.to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", map(&[("folder", v(folder))])),
            ("encryption", v(true)),
            ("filename_encryption", v(names)),
            ("encryption_password", v(pw)),
            ("encryption_salt", v(salt)),
        ];
        cfg.retain(|(k, _)| !extra.iter().any(|(x, _)| x == k));
        cfg.extend(extra);
        manager(&self.conn).await.create_task(dict(cfg)).await.unwrap()
    }

    async fn run(&self, task: &OwnedObjectPath) -> (OwnedObjectPath, String, String) {
        let j = task_run(&self.conn, task).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&self.conn, &j, Duration::from_secs(120)).await;
        (j, s, e)
    }

    /// rclone with one crypt remote `C:` over `remote/<folder>`, configured only by environment.
    fn rclone(&self, folder: &str, names: bool, pw: &str, salt: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("rclone");
        cmd.env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG", self.p("rclone.conf"))
            .env("RCLONE_CONFIG_C_TYPE", "crypt")
            .env("RCLONE_CONFIG_C_REMOTE", self.p("remote").join(folder))
            .env("RCLONE_CONFIG_C_PASSWORD", obscure(pw))
            .env("RCLONE_CONFIG_C_FILENAME_ENCRYPTION", if names { "standard" } else { "off" })
            .args(args);
        if !salt.is_empty() {
            cmd.env("RCLONE_CONFIG_C_PASSWORD2", obscure(salt));
        }
        cmd.output().expect("rclone runs")
    }
}

fn assert_rclone() {
    let ok = Command::new("rclone").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "rclone is not installed: run scripts/test (it installs Debian's rclone), or apt-get install rclone");
}

/// `rclone obscure`, as a TrueNAS or rclone config stores passwords.
fn obscure(pw: &str) -> String {
    let out = Command::new("rclone").args(["obscure", pw]).output().expect("rclone obscure");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(path: &Path, data: &[u8], mtime_secs: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::new(mtime_secs, 123_456_789)).unwrap();
}

/// `n` bytes of a pattern that differs per file.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i % 251) as u8).wrapping_add(seed)).collect()
}

/// A name of exactly 143 bytes: the longest that file name encryption stores in 255.
fn name_143() -> String {
    format!("{}x", "é".repeat(71))
}

/// The sample tree: empty files, exactly one block, several blocks and a few bytes, spaces,
/// Unicode, nested folders, siblings that sort between a folder and its contents, and a name of
/// the greatest length file name encryption allows. Returns the files' relative paths.
fn sample(root: &Path) -> Vec<String> {
    let files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("exact-64k.bin".into(), bytes(65_536, 1)),
        ("blocks-and-a-few".into(), bytes(3 * 65_536 + 3, 2)),
        ("space name.txt".into(), b"spaces".to_vec()),
        ("ünïcødé dir/naïve fïle.txt".into(), b"unicode".to_vec()),
        ("a/b/c/deep.txt".into(), bytes(1000, 3)),
        ("a/b/empty too".into(), vec![]),
        ("dir/y".into(), b"y".to_vec()),
        ("dir-2/x".into(), b"x".to_vec()),
        ("dir.txt".into(), b"d".to_vec()),
        (name_143(), b"long".to_vec()),
    ];
    for (i, (p, data)) in files.iter().enumerate() {
        write(&root.join(p), data, 1_600_000_000 + i as u64 * 100);
    }
    files.into_iter().map(|(p, _)| p).collect()
}

/// path → (content or "<dir>", mtime ns for files)
fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, i128)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, i128)>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, (b"<dir>".to_vec(), 0));
                walk(root, &p, out);
            } else {
                let ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                out.insert(rel, (std::fs::read(&p).unwrap(), ns));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn files_only(t: &BTreeMap<String, (Vec<u8>, i128)>) -> BTreeMap<String, (Vec<u8>, i128)> {
    t.iter().filter(|(_, (c, _))| c != b"<dir>").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether any temporary file of ours is under `root`.
fn partials(root: &Path) -> Vec<String> {
    tree(root).into_keys().filter(|k| k.rsplit('/').next().unwrap().starts_with(".cloudsyncd-")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_encrypted_then_rclone_checks_and_decrypts_every_file() {
    let env = Env::start().await;
    let data = env.p("data");
    let files = sample(&data);
    std::fs::create_dir_all(data.join("empty folder/inner")).unwrap();
    for (i, (names, salt)) in MODES.into_iter().enumerate() {
        let folder = format!("f{i}");
        let stored = env.p("remote").join(&folder);
        // Something that is not ours in the encrypted folder: skipped and left alone.
        write(&stored.join("README"), b"not encrypted", 1_500_000_000);
        write(&data.join("gone.txt"), b"deleted after the first run", 1_600_000_000);
        write(&data.join("gone-dir/x"), b"x", 1_600_000_000);
        let t = env.task(&data, &folder, names, PW, salt, vec![("create_empty_src_dirs", v(true))]).await;
        let (j, s, e) = env.run(&t).await;
        let log = job_log(&env.conn, &j).await;
        assert_eq!((s.as_str(), e.as_str()), ("SUCCESS", ""), "names {names} salt {salt:?}: {log}");
        assert!(log.contains("Skipped README: not an encrypted name"), "{log}");
        assert!(log.contains("Created folder empty folder/inner"), "{log}");
        assert!(!log.contains(PW) && !log.contains(SALT), "a secret in the job log");
        // A SYNC deletes through the encrypted names, files and folders.
        std::fs::remove_file(data.join("gone.txt")).unwrap();
        std::fs::remove_dir_all(data.join("gone-dir")).unwrap();
        let (j, s, e) = env.run(&t).await;
        let log = job_log(&env.conn, &j).await;
        assert_eq!(s, "SUCCESS", "{e}: {log}");
        for line in ["Deleted gone.txt", "Deleted gone-dir/x", "Removed folder gone-dir"] {
            assert!(log.contains(line), "{line}: {log}");
        }
        assert!(stored.join("README").exists(), "a foreign object was touched");

        // On disk: names encrypted (or `.bin` only), contents never plaintext, mtimes kept.
        let on_disk = tree(&stored);
        for (k, (content, _)) in &on_disk {
            if k == "README" || content == b"<dir>" {
                continue;
            }
            assert!(content.starts_with(b"RCLONE\0\0"), "{k} is not an rclone crypt file");
            if names {
                assert!(
                    !files.iter().any(|f| f.split('/').any(|seg| k.split('/').any(|d| d == seg))),
                    "{k}: a plaintext name"
                );
            } else {
                assert!(k.ends_with(".bin"), "{k}: no .bin suffix");
            }
        }
        let src = tree(&data);
        let mut src_mtimes: Vec<i128> = files_only(&src).values().map(|(_, t)| *t).collect();
        let mut stored_mtimes: Vec<i128> =
            files_only(&on_disk).iter().filter(|(k, _)| *k != "README").map(|(_, (_, t))| *t).collect();
        src_mtimes.sort_unstable();
        stored_mtimes.sort_unstable();
        assert_eq!(stored_mtimes, src_mtimes, "mtimes are stored on the encrypted files");

        // rclone's own verdict: cryptcheck re-encrypts every source file with the stored nonce.
        let o = env.rclone(&folder, names, PW, salt, &["cryptcheck", data.to_str().unwrap(), "C:"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains(" 0 differences found"), "cryptcheck: {}", show(&o));
        assert!(err.contains(&format!("{} matching files", files.len())), "cryptcheck: {}", show(&o));
        // And rclone decrypts every file to the same bytes.
        for f in &files {
            let o = env.rclone(&folder, names, PW, salt, &["cat", &format!("C:{f}")]);
            assert!(o.status.success(), "rclone cat {f}: {}", show(&o));
            assert!(o.stdout == std::fs::read(data.join(f)).unwrap(), "rclone cat {f}: content differs");
        }
        // rclone sees the same folders (empty ones too) and the same mtimes.
        let o = env.rclone(&folder, names, PW, salt, &["lsf", "-R", "--dirs-only", "C:"]);
        let mut dirs: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
        dirs.sort_unstable();
        let want = ["a/", "a/b/", "a/b/c/", "dir-2/", "dir/", "empty folder/", "empty folder/inner/", "ünïcødé dir/"];
        assert_eq!(dirs, want, "{}", show(&o));
        let o = env.rclone(&folder, names, PW, salt, &["lsjson", "-R", "--files-only", "C:"]);
        assert!(o.status.success(), "{}", show(&o));
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(listed.len(), files.len(), "{listed:?}");
        for item in listed {
            let path = item["Path"].as_str().unwrap();
            let t: jiff::Timestamp = item["ModTime"].as_str().unwrap().parse().unwrap();
            assert_eq!(t.as_nanosecond(), src[path].1, "{path}: mtime seen by rclone");
            assert_eq!(item["Size"].as_u64().unwrap(), src[path].0.len() as u64, "{path}: size seen by rclone");
        }

        // Our listing maps names, sizes and order back: a second run has nothing to do.
        let (j2, s2, e2) = env.run(&t).await;
        assert_eq!(s2, "SUCCESS", "{e2}");
        assert_eq!(
            job(&env.conn, &j2).await.files_done().await.unwrap(),
            0,
            "re-run copied again: {}",
            job_log(&env.conn, &j2).await
        );
        task(&env.conn, &t).await.delete().await.unwrap();
    }
    assert!(!env.daemon.stderr().contains(PW) && !env.daemon.stderr().contains(SALT), "a secret in the daemon's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_encrypted_by_rclone_pulls_back_identical() {
    let env = Env::start().await;
    let src = env.p("by-rclone");
    sample(&src);
    for (i, (names, salt)) in MODES.into_iter().enumerate() {
        let folder = format!("r{i}");
        let o = env.rclone(&folder, names, PW, salt, &["copy", src.to_str().unwrap(), "C:"]);
        assert!(o.status.success(), "rclone copy: {}", show(&o));
        let dest = env.p(&format!("pulled{i}"));
        std::fs::create_dir_all(&dest).unwrap();
        let t = env.task(&dest, &folder, names, PW, salt, vec![("direction", v("PULL"))]).await;
        let (j, s, e) = env.run(&t).await;
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("SUCCESS", ""),
            "names {names} salt {salt:?}: {}",
            job_log(&env.conn, &j).await
        );
        let want = tree(&src);
        let got = tree(&dest);
        // Names, contents and mtimes (to the nanosecond); folders that hold files too.
        assert_eq!(got, want, "names {names} salt {salt:?}: the pulled tree differs");
        assert!(partials(&dest).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_the_pull_and_leaves_nothing() {
    let env = Env::start().await;
    let src = env.p("by-rclone");
    let files = ["one.txt", "two blocks", "nested/deeper/three.txt"];
    for (i, f) in files.iter().enumerate() {
        write(&src.join(f), &bytes(70_000 * i + 10, 9), 1_600_000_000);
    }
    for (i, names) in [false, true].into_iter().enumerate() {
        let folder = format!("w{i}");
        let o = env.rclone(&folder, names, PW, SALT, &["copy", src.to_str().unwrap(), "C:"]);
        assert!(o.status.success(), "{}", show(&o));
        let dest = env.p(&format!("dest{i}"));
        write(&dest.join("keep.txt"), b"mine", 1_500_000_000);
        let before = tree(&dest);
        let t = env.task(&dest, &folder, names, "not the password", SALT, vec![("direction", v("PULL"))]).await;
        let (j, s, e) = env.run(&t).await;
        let log = job_log(&env.conn, &j).await;
        assert_eq!(s, "FAILED", "names {names}: {log}");
        assert!(e.contains("wrong password or corrupted data"), "names {names}: {e}");
        if names {
            // Names do not decrypt: each top-level stored name is reported; nothing is read.
            let stored: Vec<String> = std::fs::read_dir(env.p("remote").join(&folder))
                .unwrap()
                .map(|d| d.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(stored.len(), 3);
            for n in &stored {
                assert!(
                    log.contains(&format!(
                        "ERROR source {n}: cannot decrypt this name: wrong password or corrupted data"
                    )),
                    "{n}: {log}"
                );
            }
        } else {
            // Contents do not authenticate: every file fails, named, with the reason.
            for f in files {
                assert!(
                    log.lines().any(|l| l.contains(" ERROR ")
                        && l.contains(f)
                        && l.contains("wrong password or corrupted data")),
                    "{f} not named: {log}"
                );
            }
        }
        // Nothing of them: no file, no partial, no folder made for them; and the SYNC deleted nothing.
        assert_eq!(tree(&dest), before, "names {names}: the destination changed");
        assert!(log.contains("Not deleted: keep.txt"), "names {names}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_objects_fail_only_themselves() {
    let env = Env::start().await;
    let data = env.p("data");
    write(&data.join("fine.txt"), b"fine", 1_600_000_000);
    write(&data.join("sub/fine too"), &bytes(100_000, 4), 1_600_000_100);
    write(&data.join("empty"), b"", 1_600_000_200);
    write(&data.join("flipped"), &bytes(3 * 65_536 + 5, 5), 1_600_000_300);
    write(&data.join("sub/cut"), &bytes(2 * 65_536 + 100, 6), 1_600_000_400);
    write(&data.join("cut short"), &bytes(70_000, 7), 1_600_000_500);
    let t = env.task(&data, "f", true, PW, SALT, vec![]).await;
    let (_, s, e) = env.run(&t).await;
    assert_eq!(s, "SUCCESS", "{e}");

    // Damage three stored objects, found by their encrypted names.
    let cipher = Cipher::from_password(PW, SALT, NameOptions::default());
    let stored = |p: &str| env.p("remote/f").join(cipher.names().encrypt_file_name(p).unwrap());
    let mut flipped = std::fs::read(stored("flipped")).unwrap();
    flipped[32 + 65_552 + 1000] ^= 0x40; // in block 1
    std::fs::write(stored("flipped"), flipped).unwrap();
    let cut = std::fs::read(stored("sub/cut")).unwrap();
    std::fs::write(stored("sub/cut"), &cut[..cut.len() - 7]).unwrap(); // the last block loses its end
    let short = std::fs::read(stored("cut short")).unwrap();
    std::fs::write(stored("cut short"), &short[..32 + 65_552 + 10]).unwrap(); // no possible size any more

    let dest = env.p("restore");
    write(&dest.join("keep.txt"), b"mine", 1_500_000_000);
    let pull = env.task(&dest, "f", true, PW, SALT, vec![("direction", v("PULL"))]).await;
    let (j, s, e) = env.run(&pull).await;
    let log = job_log(&env.conn, &j).await;
    assert_eq!(s, "FAILED", "{log}");
    let error_line =
        |f: &str, why: &str| log.lines().any(|l| l.contains(" ERROR ") && l.contains(f) && l.contains(why));
    assert!(error_line("flipped", "block 1 failed authentication: wrong password or corrupted data"), "{log}");
    assert!(error_line("sub/cut", "wrong password or corrupted data"), "{log}");
    assert!(error_line("cut short", "is not a possible size"), "{log}");
    assert!(e.contains("flipped") && e.contains("sub/cut") && e.contains("cut short"), "{e}");
    // The other files arrived whole; the damaged ones left nothing; the SYNC deleted nothing.
    let got = files_only(&tree(&dest));
    let src = tree(&data);
    let want: BTreeMap<_, _> = ["fine.txt", "sub/fine too", "empty"]
        .into_iter()
        .map(|k| (k.to_owned(), src[k].clone()))
        .chain([("keep.txt".to_owned(), tree(&dest)["keep.txt"].clone())])
        .collect();
    assert_eq!(got, want);
    assert!(partials(&dest).is_empty());
    assert!(log.contains("Not deleted: keep.txt"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_over_143_bytes_fail_the_job_before_any_transfer() {
    let env = Env::start().await;
    let data = env.p("data");
    let long_file = "x".repeat(144);
    let long_dir = format!("{}-dir", "d".repeat(146));
    write(&data.join("ok.txt"), b"ok", 1_600_000_000);
    write(&data.join(name_143()), b"fits", 1_600_000_000);
    write(&data.join("sub").join(&long_file), b"too long", 1_600_000_000);
    write(&data.join(&long_dir).join("inside.txt"), b"under a long folder", 1_600_000_000);
    let remote = env.p("remote/f");
    write(&remote.join("old"), b"stays", 1_500_000_000);
    let before = tree(&remote);
    let t = env.task(&data, "f", true, PW, "", vec![]).await;
    let (j, s, e) = env.run(&t).await;
    let log = job_log(&env.conn, &j).await;
    assert_eq!(s, "FAILED", "{log}");
    assert!(e.starts_with("2 name(s) too long for file name encryption"), "{e}");
    assert!(
        e.contains(&format!("sub/{long_file} (144 bytes)")) && e.contains(&format!("{long_dir} (150 bytes)")),
        "{e}"
    );
    assert!(!e.contains("inside.txt") && !e.contains("ok.txt") && !e.contains(&name_143()), "{e}");
    assert!(log.contains(&format!("ERROR name too long for file name encryption: sub/{long_file}")), "{log}");
    assert!(!log.contains("Copied"), "{log}");
    assert_eq!(tree(&remote), before, "the destination changed");

    // Without file name encryption the same tree goes through (names only get ".bin").
    let t = env.task(&data, "g", false, PW, "", vec![]).await;
    let (j, s, e) = env.run(&t).await;
    assert_eq!(s, "SUCCESS", "{e}: {}", job_log(&env.conn, &j).await);
    let o = env.rclone("g", false, PW, "", &["cat", &format!("C:sub/{long_file}")]);
    assert_eq!(o.stdout, b"too long", "{}", show(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_directory_shows_decrypted_names() {
    let env = Env::start().await;
    let data = env.p("data");
    sample(&data);
    let t = env.task(&data, "f", true, PW, SALT, vec![]).await;
    let (_, s, e) = env.run(&t).await;
    assert_eq!(s, "SUCCESS", "{e}");
    // A tree rclone encrypted with names off.
    let o = env.rclone("off", false, PW, "", &["copy", data.to_str().unwrap(), "C:"]);
    assert!(o.status.success(), "{}", show(&o));

    let cred =
        credential(&env.conn, &OwnedObjectPath::try_from("/org/cloudsyncd/CloudSync1/credential/1").unwrap()).await;
    let list = |folder: &'static str, enc: Option<(bool, &'static str, &'static str)>| {
        let cred = &cred;
        async move {
            let mut loc = vec![("folder", v(folder))];
            if let Some((names, pw, salt)) = enc {
                loc.extend([
                    ("encryption", v(true)),
                    ("filename_encryption", v(names)),
                    ("encryption_password", v(pw)),
                    ("encryption_salt", v(salt)),
                ]);
            }
            cred.list_directory(dict(loc)).await
        }
    };
    let top: Vec<(String, bool, u64)> = {
        let mut top: BTreeMap<String, (bool, u64)> = BTreeMap::new();
        for e in std::fs::read_dir(&data).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            top.insert(e.file_name().into_string().unwrap(), (m.is_dir(), if m.is_dir() { 0 } else { m.len() }));
        }
        top.into_iter().map(|(n, (d, s))| (n, d, s)).collect()
    };
    for (folder, enc) in [("f", (true, PW, SALT)), ("off", (false, PW, ""))] {
        let entries = list(folder, Some(enc)).await.unwrap();
        let got: Vec<(String, bool, u64)> = entries
            .iter()
            .map(|e| {
                (get_str(e, "name"), get_bool(e, "is_dir"), u64::try_from(e["size"].try_clone().unwrap()).unwrap())
            })
            .collect();
        assert_eq!(got, top, "{folder}");
        for e in &entries {
            assert!(get_bool(e, "decrypted"), "{folder}: {e:?}");
            assert_eq!(get_str(e, "path"), format!("{folder}/{}", get_str(e, "name")));
        }
        let blocks = entries.iter().find(|e| get_str(e, "name") == "blocks-and-a-few").unwrap();
        let mtime = u64::try_from(blocks["mtime"].try_clone().unwrap()).unwrap();
        assert_eq!(mtime, std::fs::metadata(data.join("blocks-and-a-few")).unwrap().mtime() as u64);
    }
    // A wrong password: the stored names, none decrypted.
    let wrong = list("f", Some((true, "wrong", SALT))).await.unwrap();
    let stored: Vec<String> = {
        let mut s: Vec<String> = std::fs::read_dir(env.p("remote/f"))
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        s.sort();
        s
    };
    assert_eq!(wrong.iter().map(|e| get_str(e, "name")).collect::<Vec<_>>(), stored);
    assert!(wrong.iter().all(|e| !get_bool(e, "decrypted")));
    // Without encryption: the stored names as they are.
    let plain = list("f", None).await.unwrap();
    assert_eq!(plain.iter().map(|e| get_str(e, "name")).collect::<Vec<_>>(), stored);
    // Encryption without a password is refused, naming the key.
    let e = list("f", Some((true, "", ""))).await.unwrap_err();
    assert_eq!(err_name(&e).0, "InvalidArgument");
    assert!(err_name(&e).1.starts_with("encryption_password"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_another_password_changes_nothing() {
    let env = Env::start().await;
    let data = env.p("data");
    write(&data.join("a.txt"), b"first backup", 1_600_000_000);
    write(&data.join("sub/b.txt"), b"first backup too", 1_600_000_000);
    for (i, names) in [false, true].into_iter().enumerate() {
        let folder = format!("k{i}");
        let t = env.task(&data, &folder, names, PW, SALT, vec![]).await;
        let (_, s, e) = env.run(&t).await;
        assert_eq!(s, "SUCCESS", "{e}");
        let before = tree(&env.p("remote").join(&folder));
        // A new file, and the same backup with a mistyped password (or a forgotten salt): with
        // names off nothing else would notice, and the backup would mix two keys.
        write(&data.join(format!("new{i}.txt")), b"new", 1_600_000_100);
        for (pw, salt) in [("correct horse battery stapler", SALT), (PW, "")] {
            let wrong = env.task(&data, &folder, names, pw, salt, vec![]).await;
            let (j, s, e) = env.run(&wrong).await;
            assert_eq!(s, "FAILED", "names {names}: {}", job_log(&env.conn, &j).await);
            assert!(e.starts_with("the remote folder holds files encrypted with another password or salt"), "{e}");
            assert!(e.contains("wrong password or corrupted data"), "{e}");
            assert_eq!(tree(&env.p("remote").join(&folder)), before, "names {names}: the backup changed");
        }
        let (_, s, e) = env.run(&t).await;
        assert_eq!(s, "SUCCESS", "{e}");
        let o = env.rclone(&folder, names, PW, SALT, &["cat", &format!("C:new{i}.txt")]);
        assert_eq!(o.stdout, b"new", "{}", show(&o));
    }
}
