//! Secrets never leave the daemon: the real daemon at trace level (`CLOUDSYNCD_LOG=trace`) runs
//! an encrypted PUSH (password and salt, a pre-script that prints its environment) to s3s-fs with
//! a secret access key, a PULL back, and a credential check; then every output is searched for
//! each secret, raw, in hex and in base64 at every alignment: the daemon's stdout and stderr, every
//! file of its log folder and of its state folder (state.cbor seals secrets), the job logs read
//! through `Job.ReadLog`, and every property of every object (`GetManagedObjects`). Imports the
//! `common` (bus, daemon) and `common_s3` (s3s-fs) harnesses.

mod common;
mod common_s3;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use common::{Bus, Daemon, credential, dict, job_log, managed, manager, map, s3_attrs, task_run, v, wait_job};
use common_s3::{ACCESS_KEY, Server, client_with};

const SECRET_ACCESS_KEY: &str = "sEcReTaCcEsSkEy-9f3b2a71d0c4e8";
const PASSWORD: &str = "pAsSwOrD-of-the-crypt-6e1d0b9a";
const SALT: &str = "sAlT-of-the-crypt-c0ffee4242aa";

/// Every form of `secret` worth searching for: itself, hex (both cases), and standard and URL-safe
/// base64 of it at each of the three alignments (only the characters that depend on the secret
/// alone, so that an encoding of a longer buffer holding it is found too).
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned(), hex::encode(secret), hex::encode_upper(secret)];
    for pad in 0..3 {
        let mut buf = vec![0u8; pad];
        buf.extend_from_slice(secret.as_bytes());
        for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE_NO_PAD] {
            let enc = engine.encode(&buf);
            out.push(enc[4..enc.len() - 4].to_owned());
        }
    }
    out
}

/// Where a form of a secret occurs in `hay`, if anywhere.
fn find(hay: &[u8], what: &str) -> Option<String> {
    for (secret, name) in [(SECRET_ACCESS_KEY, "secret_access_key"), (PASSWORD, "password"), (SALT, "salt")] {
        for f in forms(secret) {
            if hay.windows(f.len()).any(|w| w == f.as_bytes()) {
                return Some(format!("{name} as {f:?} in {what}"));
            }
        }
    }
    None
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_encrypted_push_and_pull_leak_no_secret_anywhere() {
    let srv = Server::s3s_fs_keys(ACCESS_KEY, SECRET_ACCESS_KEY);
    client_with(&srv.endpoint(), SECRET_ACCESS_KEY).create_bucket("bkt").await.unwrap();
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let (state, logs, data, back) =
        (dir.path().join("state"), dir.path().join("logs"), dir.path().join("data"), dir.path().join("back"));
    for d in [&state, &data, &back] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(data.join("a.txt"), b"alpha").unwrap();
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/b.bin"), vec![7u8; 200_000]).unwrap();

    // The daemon with both its outputs captured, at trace level, with a log folder of its own.
    let (out_path, err_path) = (dir.path().join("daemon.stdout"), dir.path().join("daemon.stderr"));
    let child = Command::new(common::bin())
        .args(["--address", &bus.address, "--state-dir"])
        .arg(&state)
        .arg("--log-dir")
        .arg(&logs)
        .env("CLOUDSYNCD_LOG", "trace")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, state_dir: state.clone(), stderr_path: err_path.clone() };
    daemon.wait_owned(&bus).await;
    let conn = bus.connect().await;

    let attrs = s3_attrs(ACCESS_KEY, SECRET_ACCESS_KEY, &srv.endpoint());
    let cred = manager(&conn).await.create_credential("s3s", "S3", attrs).await.unwrap();
    assert_eq!(credential(&conn, &cred).await.verify().await.unwrap(), (true, String::new()));
    let task = |direction: &'static str, path: PathBuf| {
        let conn = conn.clone();
        async move {
            let mut cfg = vec![
                ("path", v(path.to_str().unwrap())),
                ("credentials", v(1u64)),
                ("direction", v(direction)),
                ("transfer_mode", v("SYNC")),
                ("attributes", map(&[("bucket", v("bkt")), ("folder", v("enc"))])),
                ("encryption", v(true)),
                ("filename_encryption", v(true)),
                ("encryption_password", v(PASSWORD)),
                ("encryption_salt", v(SALT)),
            ];
            if direction == "PUSH" {
                // The script's environment goes into the job log.
                cfg.push(("pre_script", v("env; echo pre-script done")));
            }
            manager(&conn).await.create_task(dict(cfg)).await.unwrap()
        }
    };
    let mut job_logs = String::new();
    for (direction, path) in [("PUSH", data.clone()), ("PULL", back.clone())] {
        let t = task(direction, path).await;
        let j = task_run(&conn, &t).await.run(dict(vec![])).await.unwrap();
        let (s, e) = wait_job(&conn, &j, Duration::from_secs(300)).await;
        let log = job_log(&conn, &j).await;
        assert_eq!(s, "SUCCESS", "{direction}: {e}\n{log}");
        job_logs.push_str(&log);
    }
    assert!(job_logs.contains("pre-script done"), "the script ran: {job_logs}");
    assert_eq!(std::fs::read(back.join("sub/b.bin")).unwrap(), vec![7u8; 200_000], "pulled back through the crypt");

    // Every property of every object, while the daemon runs.
    let props = managed(&conn).await;
    assert!(props.contains("********"), "secrets are shown masked: {props}");
    let term = daemon.term();
    assert!(term.success(), "{term:?}");

    let stderr = std::fs::read(&err_path).unwrap();
    assert!(
        String::from_utf8_lossy(&stderr).contains("TRACE"),
        "the daemon did not log at trace level: {}",
        String::from_utf8_lossy(&stderr)
    );
    let mut leaks = Vec::new();
    leaks.extend(find(&stderr, "the daemon's stderr"));
    leaks.extend(find(&std::fs::read(&out_path).unwrap(), "the daemon's stdout"));
    leaks.extend(find(job_logs.as_bytes(), "the job logs (ReadLog)"));
    leaks.extend(find(props.as_bytes(), "GetManagedObjects"));
    let mut files = Vec::new();
    files_under(&logs, &mut files);
    files_under(&state, &mut files);
    assert!(files.iter().any(|f| f.ends_with("state.cbor")), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with(&logs)), "no job log file in {}: {files:?}", logs.display());
    for f in &files {
        leaks.extend(find(&std::fs::read(f).unwrap(), &f.display().to_string()));
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    // The search finds what it looks for (the test can fail).
    assert!(find(format!("x{SALT}y").as_bytes(), "probe").is_some());
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("ab{PASSWORD}"));
    assert!(find(b64.as_bytes(), "probe").is_some());
}
