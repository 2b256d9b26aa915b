//! Hostile remote listings on PULL: moto holds case twins and a key that is both a file and a
//! folder prefix for real, and a small hostile S3 front (the fault proxy rewriting moto's
//! ListObjectsV2 reply to `EncodingType=url`) adds keys no real server stores: `..` segments, a
//! leading `/`, `//`, NUL, bytes that are not UTF-8, a 4 KiB name and a path of more than 4 KiB.
//! Nothing is written outside the destination, each refused key is named (escaped) in the job log
//! and the job's error, no refused key is ever read, the rest arrives, and the job ends FAILED
//! with a SYNC deleting nothing, as the contract says for objects that cannot be synced. Imports
//! the `common` (bus, daemon) and `common_s3` (moto, proxy) harnesses.

mod common;
mod common_s3;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use cloudsyncd::{engine::names::escape_for_log, remote::s3::PutOptions};
use common::{Bus, Daemon, dict, job_log, manager, map, s3_attrs, task_run, v, wait_job};
use common_s3::{ACCESS_KEY, Action, Proxy, SECRET_KEY, Server, client};

/// Percent-encodes every byte but unreserved ones and `/`, as S3 does with `encoding-type=url`.
fn url_encode(key: &[u8]) -> String {
    key.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// moto's ListObjectsV2 reply with `extra` keys added, every key URL-encoded, in byte order.
fn inject(body: Vec<u8>, extra: &[Vec<u8>]) -> Vec<u8> {
    let xml = String::from_utf8(body).expect("moto answers UTF-8");
    let (Some(first), Some(last)) = (xml.find("<Contents>"), xml.rfind("</Contents>")) else {
        panic!("no <Contents> in the listing to inject into:\n{xml}")
    };
    let end = last + "</Contents>".len();
    let mut blocks: Vec<(Vec<u8>, String)> = Vec::new();
    let mut rest = &xml[first..end];
    while let Some(i) = rest.find("<Contents>") {
        let j = rest[i..].find("</Contents>").unwrap() + i + "</Contents>".len();
        let block = &rest[i..j];
        let (k0, k1) = (block.find("<Key>").unwrap() + 5, block.find("</Key>").unwrap());
        let key = xml_unescape(&block[k0..k1]).into_bytes();
        blocks.push((key, block.to_owned()));
        rest = &rest[j..];
    }
    let template = blocks[0].1.clone();
    for k in extra {
        blocks.push((k.clone(), template.clone()));
    }
    blocks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = xml[..first].replacen("<IsTruncated>", "<EncodingType>url</EncodingType><IsTruncated>", 1);
    for (key, block) in blocks {
        let (k0, k1) = (block.find("<Key>").unwrap() + 5, block.find("</Key>").unwrap());
        out.push_str(&block[..k0]);
        out.push_str(&url_encode(&key));
        out.push_str(&block[k1..]);
    }
    out.push_str(&xml[end..]);
    out.into_bytes()
}

/// Files under `root` (rel path → content), folders left out.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_listing_writes_nothing_outside_names_each_bad_key_and_brings_the_rest() {
    let srv = Server::moto();
    let s3 = client(&srv.endpoint());
    s3.create_bucket("bkt").await.unwrap();
    let real: [(&str, &[u8]); 6] = [
        ("f/good.txt", b"good"),
        ("f/dir/ok.txt", b"ok"),
        ("f/Case.txt", b"upper"),
        ("f/case.txt", b"lower"),
        ("f/both", b"a file named like a folder"),
        ("f/both/inner.txt", b"inside the folder"),
    ];
    for (k, body) in real {
        s3.put_object_bytes("bkt", k, Bytes::from_static(body), &PutOptions::default()).await.unwrap();
    }
    // Keys that would escape the destination or that no local tree can hold.
    let long_name = format!("f/{}", "n".repeat(4096));
    let long_path = format!("f/{}end.txt", ("p".repeat(200) + "/").repeat(21));
    let bad: Vec<Vec<u8>> = vec![
        b"f/../escape.txt".to_vec(),
        b"f/../../pwned.txt".to_vec(),
        b"f/dir/../../dotdot.txt".to_vec(),
        b"f//abs.txt".to_vec(),
        b"f/a//b.txt".to_vec(),
        b"f/./dot.txt".to_vec(),
        b"f/nul\0.txt".to_vec(),
        b"f/bad-\xff\xfe.txt".to_vec(),
        long_name.into_bytes(),
        long_path.into_bytes(),
    ];

    // The hostile front: rewrites listings and records every other request line.
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen, extra) = (requests.clone(), bad.clone());
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            let line = head.lines().next().unwrap_or_default().to_owned();
            if line.contains("list-type=2") {
                let extra = extra.clone();
                return Action::Rewrite(Box::new(move |body| inject(body, &extra)));
            }
            seen.lock().unwrap().push(line);
            Action::Forward
        }),
    )
    .await;

    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    // parent/dest is the destination; parent/sentinel and a file already in dest must survive.
    let parent = dir.path().join("parent");
    let dest = parent.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(parent.join("sentinel"), b"untouched").unwrap();
    std::fs::write(dest.join("local-only.txt"), b"mine").unwrap();
    let daemon = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let attrs = s3_attrs(ACCESS_KEY, SECRET_KEY, &proxy.endpoint());
    manager(&conn).await.create_credential("hostile", "S3", attrs).await.unwrap();
    let cfg = vec![
        ("path", v(dest.to_str().unwrap())),
        ("credentials", v(1u64)),
        ("direction", v("PULL")),
        ("transfer_mode", v("SYNC")),
        ("attributes", map(&[("bucket", v("bkt")), ("folder", v("f"))])),
    ];
    let t = manager(&conn).await.create_task(dict(cfg)).await.unwrap();
    let j = task_run(&conn, &t).await.run(dict(vec![])).await.unwrap();
    let (state, err) = wait_job(&conn, &j, Duration::from_secs(300)).await;
    let log = job_log(&conn, &j).await;
    eprintln!("{log}");
    assert!(proxy.stats.rewritten.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the listing was not rewritten");

    // The end state: FAILED, naming refused keys; a SYNC deleted nothing.
    assert_eq!(state, "FAILED", "{err}\n{log}");
    assert!(err.contains("remote name refused"), "{err}");
    assert!(log.contains("Not deleting 1 file(s)") || log.contains("Not deleted: local-only.txt"), "{log}");
    assert_eq!(std::fs::read(dest.join("local-only.txt")).unwrap(), b"mine");

    // Each bad key is reported by name, escaped (long ones cut), in the job log.
    for k in &bad {
        let rel = &k[2..];
        let shown = escape_for_log(&rel[..rel.len().min(200)]);
        assert!(log.contains(&shown), "{shown:?} is not named in the job log");
        assert!(!log.contains('\0'), "the log holds a raw NUL");
    }
    assert!(log.contains("nul\\x00.txt") && log.contains("bad-\\xff\\xfe.txt"), "{log}");

    // No refused key was ever read (HEAD or GET): they were refused at the listing.
    let reqs = requests.lock().unwrap().clone();
    for r in &reqs {
        for needle in
            ["escape.txt", "pwned.txt", "dotdot.txt", "abs.txt", "a//b.txt", "dot.txt", "nul", "bad-", "nnnn", "pppp"]
        {
            assert!(!r.contains(needle), "a refused key was requested: {r}");
        }
    }

    // Nothing outside the destination: the parent holds what it held, the sentinel is intact.
    let mut around: Vec<String> =
        std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    around.sort();
    assert_eq!(around, ["dest", "sentinel"]);
    assert_eq!(std::fs::read(parent.join("sentinel")).unwrap(), b"untouched");
    assert!(!dir.path().join("pwned.txt").exists() && !dir.path().join("escape.txt").exists());
    assert!(!Path::new("/abs.txt").exists() && !Path::new("/pwned.txt").exists());

    // The rest arrives: case twins both, and no temporary file is left.
    let got = tree(&dest);
    assert_eq!(got.get("good.txt").map(Vec::as_slice), Some(&b"good"[..]), "{got:?}");
    assert_eq!(got.get("dir/ok.txt").map(Vec::as_slice), Some(&b"ok"[..]));
    assert_eq!(got.get("Case.txt").map(Vec::as_slice), Some(&b"upper"[..]));
    assert_eq!(got.get("case.txt").map(Vec::as_slice), Some(&b"lower"[..]));
    assert!(got.keys().all(|k| !k.contains(".cloudsyncd-")), "a temporary file was left: {got:?}");
    // "both" is a file and a folder: only one of them can exist; the other is an error that names it.
    let file = got.get("both").map(Vec::as_slice) == Some(&b"a file named like a folder"[..]);
    let folder = got.get("both/inner.txt").map(Vec::as_slice) == Some(&b"inside the folder"[..]);
    assert!(file ^ folder, "exactly one of both and both/inner.txt: {got:?}");
    assert!(log.lines().any(|l| l.contains(" ERROR ") && l.contains("both")), "the loser is not named:\n{log}");
    let allowed = ["good.txt", "dir/ok.txt", "Case.txt", "case.txt", "both", "both/inner.txt", "local-only.txt"];
    assert!(got.keys().all(|k| allowed.contains(&k.as_str())), "unexpected files: {:?}", got.keys());
    drop(daemon);
}
