//! The engine's `Remote` trait on S3 (`S3Remote`) against s3s-fs and moto on loopback: writes through `Upload` (one PutObject or multipart), key-ordered listings with mtimes and filters, reads, stats, deletes and the sweep of stale multipart uploads. Imports the crate's `remote` and `engine` types and the `common_s3` harness.

mod common_s3;

use std::sync::Arc;

use bytes::Bytes;
use cloudsyncd::{
    engine::{
        entry::{Entry, Mtime},
        filter::Filter,
    },
    remote::{
        ListOptions, Listed, Remote, RemoteError, RootState,
        s3::{PutOptions, S3Client, S3Remote},
    },
};
use common_s3::{Server, client, random_bytes, read_all};
use tokio::sync::mpsc;

const MIB: u64 = 1 << 20;

fn remote(c: &S3Client, folder: &str) -> Arc<S3Remote> {
    Arc::new(S3Remote::new(c.clone(), "bkt", folder, 5 * MIB, "", "", 1))
}

/// Writes `data` through the trait in 256 KiB writes, as the engine does.
async fn write(r: &S3Remote, path: &str, data: &[u8], mtime: i128) -> Result<(), RemoteError> {
    let mut up = r.create(path, data.len() as u64, Mtime(mtime)).await?;
    for chunk in data.chunks(256 << 10) {
        up.write(chunk).await?;
    }
    up.finish().await.map(|_| ())
}

async fn list(r: &Arc<S3Remote>, exclude: &[&str]) -> Vec<Listed> {
    list_hinted(r, exclude, &[]).await
}

/// [`list`] with folders to list from the start.
async fn list_hinted(r: &Arc<S3Remote>, exclude: &[&str], hints: &[&str]) -> Vec<Listed> {
    let filter = Filter::new(&[], &exclude.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    let hints = hints.iter().map(|h| (*h).to_owned()).collect();
    let opts = ListOptions { filter: Arc::new(filter), follow_symlinks: false, versions: false, hints };
    let (tx, mut rx) = mpsc::channel(4);
    let r2 = r.clone();
    let task = tokio::spawn(async move { r2.list(opts, tx).await });
    let mut out = Vec::new();
    while let Some(l) = rx.recv().await {
        out.push(l);
    }
    task.await.unwrap().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_writes_lists_reads_and_deletes_on_s3s_fs() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let r = remote(&c, "backups/nas");
    assert_eq!(r.root_state().await.unwrap(), RootState::Missing, "nothing is stored under the folder yet");
    assert!(!r.has_dirs());
    let big = random_bytes(usize::try_from(16 * MIB + 5).unwrap());
    let files: Vec<(&str, Vec<u8>, i128)> = vec![
        ("a.txt", b"alpha".to_vec(), 1_600_000_000_123_456_789),
        ("dir/b c+ü.bin", random_bytes(300_000), 1_600_000_100_000_000_001),
        ("dir/sub/empty", Vec::new(), 1_600_000_200_000_000_000),
        ("dir-2/c", b"c".to_vec(), 1_600_000_500_500_000_000),
        ("dir.txt", b"d".to_vec(), 1_600_000_600_000_000_000),
        ("big.bin", big.clone(), 1_700_000_000_000_000_007),
    ];
    for (path, data, mtime) in &files {
        write(&r, path, data, *mtime).await.unwrap();
        let st = r.stat(path).await.unwrap().unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(st, Entry::file(*path, data.len() as u64, Mtime(*mtime)));
    }
    let etag = c.head_object("bkt", "backups/nas/big.bin").await.unwrap().unwrap().etag;
    assert!(etag.ends_with("-4\""), "16 MiB + 5 in 5 MiB parts: {etag}");

    // Neighbours that are not files of the folder.
    for key in ["backups/nas/marker-dir/", "backups/nasty.txt", "backups/other/x"] {
        c.put_object_bytes("bkt", key, Bytes::new(), &PutOptions::default()).await.unwrap();
    }
    let listed = list(&r, &[]).await;
    let mut want: Vec<Listed> =
        files.iter().map(|(p, d, m)| Listed::Entry(Entry::file(*p, d.len() as u64, Mtime(*m)))).collect();
    want.sort_by(|a, b| match (a, b) {
        (Listed::Entry(a), Listed::Entry(b)) => a.path.as_bytes().cmp(b.path.as_bytes()),
        _ => std::cmp::Ordering::Equal,
    });
    assert_eq!(listed, want, "key order, sizes and mtimes");
    let filtered = list(&r, &["dir/**", "*.bin"]).await;
    let paths: Vec<&str> = filtered
        .iter()
        .map(|l| match l {
            Listed::Entry(e) => e.path.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["a.txt", "dir-2/c", "dir.txt"]);
    assert_eq!(r.root_state().await.unwrap(), RootState::Present);
    let missing = S3Remote::new(c.clone(), "no-such-bucket", "", 5 * MIB, "", "", 1);
    let e = missing.root_state().await.unwrap_err();
    assert!(e.to_string().contains("bucket no-such-bucket: does not exist"), "{e}");

    // Folder by folder (delimiter "/"): files with their mtimes (by HEAD, for jobs), folders
    // from the common prefixes, the folder marker left out.
    let folder = |items: Vec<Listed>| {
        let mut v: Vec<Entry> = items
            .into_iter()
            .map(|l| match l {
                Listed::Entry(e) => e,
                other => panic!("{other:?}"),
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    };
    let mut root = folder(r.list_folder("").await.unwrap().unwrap());
    // S3 shows a folder marker's folder as a common prefix; s3s-fs (which stores the marker as
    // a directory) does not.
    root.retain(|e| e != &Entry::dir("marker-dir", Mtime::default()));
    let want_root = vec![
        Entry::file("a.txt", 5, Mtime(1_600_000_000_123_456_789)),
        Entry::file("big.bin", 16 * MIB + 5, Mtime(1_700_000_000_000_000_007)),
        Entry::dir("dir", Mtime::default()),
        Entry::dir("dir-2", Mtime::default()),
        Entry::file("dir.txt", 1, Mtime(1_600_000_600_000_000_000)),
    ];
    assert_eq!(root, want_root);
    let dir = folder(r.list_folder("dir").await.unwrap().unwrap());
    let want_dir = vec![
        Entry::file("dir/b c+ü.bin", 300_000, Mtime(1_600_000_100_000_000_001)),
        Entry::dir("dir/sub", Mtime::default()),
    ];
    assert_eq!(dir, want_dir);
    assert_eq!(folder(r.list_folder("marker-dir").await.unwrap().unwrap()), vec![], "only its marker");
    // Browsing takes the listing's LastModified instead (no HEAD per object).
    let browse = S3Remote::new(c.clone(), "bkt", "backups/nas", 5 * MIB, "", "", 0).browsing();
    let dir = folder(browse.list_folder("dir").await.unwrap().unwrap());
    assert_eq!(dir.len(), 2);
    assert!(dir[0].mtime.secs() > 1_700_000_000, "LastModified (now), not the stored mtime: {dir:?}");

    let back = read_all(r.open("big.bin").await.unwrap()).await;
    assert!(back == big, "big.bin reads back identical");
    assert_eq!(read_all(r.open("dir/sub/empty").await.unwrap()).await, b"");
    assert!(matches!(r.open("missing").await, Err(RemoteError::NotFound { .. })));

    r.delete("a.txt").await.unwrap();
    assert_eq!(r.stat("a.txt").await.unwrap(), None);
    r.make_dir("any/dir").await.unwrap();
    assert!(r.remove_dir("dir").await.unwrap());
    assert_eq!(r.sweep_partials(Some(1)).await.unwrap(), 0, "s3s-fs: no ListMultipartUploads, nothing to do");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_or_aborted_uploads_leave_no_object() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let r = remote(&c, "f");
    let data = random_bytes(usize::try_from(12 * MIB).unwrap());

    // Fewer bytes than announced: single part, then multipart.
    for (announced, len) in [(10, 5), (13 * MIB, 12 * MIB)] {
        let mut up = r.create("short", announced, Mtime(1)).await.unwrap();
        up.write(&data[..usize::try_from(len).unwrap()]).await.unwrap();
        let err = up.finish().await.unwrap_err();
        assert!(err.to_string().contains("announced"), "{err}");
        assert_eq!(r.stat("short").await.unwrap(), None);
    }
    // More bytes than announced.
    let mut up = r.create("long", 3, Mtime(1)).await.unwrap();
    assert!(up.write(b"four").await.is_err());
    up.abort().await;
    assert_eq!(r.stat("long").await.unwrap(), None);
    // Aborted after two parts went out.
    let mut up = r.create("aborted", 12 * MIB, Mtime(1)).await.unwrap();
    up.write(&data[..usize::try_from(11 * MIB).unwrap()]).await.unwrap();
    up.abort().await;
    assert_eq!(r.stat("aborted").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_aborts_stale_uploads_under_the_folder_on_moto() {
    let srv = Server::moto();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let r = remote(&c, "f");
    // Left by an interrupted run (no writer of this process holds them).
    let stale = c.create_multipart_upload("bkt", "f/interrupted.bin", &PutOptions::default()).await.unwrap();
    let outside = c.create_multipart_upload("bkt", "elsewhere/y", &PutOptions::default()).await.unwrap();
    // A job still writing through the remote.
    let mut running = r.create("running.bin", 12 * MIB, Mtime(1)).await.unwrap();
    running.write(&random_bytes(usize::try_from(6 * MIB).unwrap())).await.unwrap();
    let ids = |v: Vec<cloudsyncd::remote::s3::MultipartUpload>| {
        let mut ids: Vec<String> = v.into_iter().map(|u| u.key).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(c.list_multipart_uploads("bkt", "").await.unwrap().unwrap()),
        ["elsewhere/y", "f/interrupted.bin", "f/running.bin"]
    );
    assert_eq!(r.sweep_partials(Some(1)).await.unwrap(), 1, "only the stale upload under the folder");
    assert_eq!(ids(c.list_multipart_uploads("bkt", "").await.unwrap().unwrap()), ["elsewhere/y", "f/running.bin"]);
    running.abort().await;
    assert_eq!(r.sweep_partials(None).await.unwrap(), 0, "the abort left nothing");
    assert_eq!(ids(c.list_multipart_uploads("bkt", "").await.unwrap().unwrap()), ["elsewhere/y"]);
    assert_ne!(stale, outside);

    // An archived object is reported with what to do, not opaquely.
    let opts = PutOptions { storage_class: Some("DEEP_ARCHIVE".into()), ..PutOptions::default() };
    c.put_object_bytes("bkt", "f/cold.bin", Bytes::from_static(b"ice"), &opts).await.unwrap();
    let Err(err) = r.open("cold.bin").await else { panic!("an archived object was read") };
    let text = err.to_string();
    assert!(text.contains("cold.bin") && text.contains("archived") && text.contains("RestoreObject"), "{text}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_and_one_objects_list_completely() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let keys: Vec<String> = (0..10_001).map(|i| format!("many/d{}/f{i:05}", i % 7)).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for (i, k) in keys.iter().enumerate() {
        let (c, k, sem) = (c.clone(), k.clone(), sem.clone());
        let opts =
            PutOptions { mtime: Some(1_000_000_000_000_000_000 + i128::try_from(i).unwrap()), ..PutOptions::default() };
        set.spawn(async move {
            let _p = sem.acquire().await.unwrap();
            c.put_object_bytes("bkt", &k, Bytes::from_static(b"x"), &opts).await.unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let r = remote(&c, "many");
    let listed = list(&r, &[]).await;
    assert_eq!(listed.len(), 10_001);
    let mut want: Vec<(String, i128)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (k.strip_prefix("many/").unwrap().to_owned(), 1_000_000_000_000_000_000 + i128::try_from(i).unwrap())
        })
        .collect();
    want.sort();
    for (l, (path, mtime)) in listed.iter().zip(&want) {
        assert_eq!(l, &Listed::Entry(Entry::file(path.as_str(), 1, Mtime(*mtime))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_mode_and_acl_travel_as_rclone_metadata() {
    use cloudsyncd::remote::{Meta, meta::PosixAcl};
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let r = remote(&c, "m");
    let meta = Meta {
        uid: Some(1000),
        gid: Some(100),
        mode: Some(0o100_640),
        acl_access: Some(PosixAcl::from_text("u::rw-,u:4321:rwx,g::r--,m::rwx,o::---").unwrap()),
        nfs4_acl: Some(vec![0xab; 1500]), // 3000 hex digits: over S3's 2 KiB, left out
        ..Meta::default()
    };
    let mut up = r.create("f.txt", 3, Mtime(1_700_000_000_000_000_001)).await.unwrap();
    up.set_meta(&meta);
    up.write(b"abc").await.unwrap();
    up.finish().await.unwrap();
    let head = c.head_object("bkt", "m/f.txt").await.unwrap().unwrap();
    assert_eq!(head.metadata.get("mtime").map(String::as_str), Some("1700000000.000000001"), "rclone's S3 form");
    assert_eq!(head.metadata.get("uid").map(String::as_str), Some("1000"));
    assert_eq!(head.metadata.get("mode").map(String::as_str), Some("100640"));
    let back = r.read_meta("f.txt").await.unwrap().unwrap();
    let want = Meta { nfs4_acl: None, mtime: Some(Mtime(1_700_000_000_000_000_001)), ..meta };
    assert_eq!(back, want);
    assert_eq!(r.read_meta("missing").await.unwrap(), None);
}

/// The paths of the files listed, in order.
fn file_paths(listed: Vec<Listed>) -> Vec<String> {
    listed
        .into_iter()
        .filter_map(|l| match l {
            Listed::Entry(e) if e.is_file() => Some(e.path),
            _ => None,
        })
        .collect()
}

/// Bucket `bkt` with folders `d00` to `d19` of two objects each; their keys in order.
async fn twenty_folders(srv: &Server) -> Vec<String> {
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let mut keys = Vec::new();
    for d in 0..20 {
        for f in 0..2 {
            let key = format!("d{d:02}/f{f}");
            c.put_object_bytes("bkt", &key, Bytes::from_static(b"x"), &PutOptions::default()).await.unwrap();
            keys.push(key);
        }
    }
    keys
}

/// A tree listed folder by folder keeps several folder listings in flight all the way through,
/// not only for the first few: each folder the walk enters starts the next one waiting. Every
/// folder listing is held 600 ms by a proxy; a folder whose listing started alone, with no other
/// within 300 ms of it, was listed in series with the walk (before the fix, 12 of these 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_walk_keeps_listings_ahead_of_it() {
    use common_s3::{Action, Proxy};
    use std::time::{Duration, Instant};
    let srv = Server::s3s_fs();
    let keys = twenty_folders(&srv).await;
    let starts: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let seen = starts.clone();
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            if head.starts_with("get /bkt?") && head.contains("list-type=2") && head.contains("prefix=d") {
                seen.lock().unwrap().push(Instant::now());
                Action::Stall(0, Duration::from_millis(600))
            } else {
                Action::Forward
            }
        }),
    )
    .await;
    let listed = file_paths(list(&remote(&client(&proxy.endpoint()), ""), &[]).await);
    assert_eq!(listed, keys, "every object, in key order");
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 20, "one listing per folder");
    let near = |a: Instant, b: Instant| a.max(b).duration_since(a.min(b)) < Duration::from_millis(300);
    let alone = (0..starts.len()).filter(|&i| !(0..starts.len()).any(|j| j != i && near(starts[i], starts[j]))).count();
    assert!(alone <= 4, "{alone} of 20 folder listings started alone, in series with the walk");
}

/// Folders hinted by the last run are listed alongside the root listing instead of after it, and
/// only once each; a hinted folder that is gone costs its one listing (and the hints under it
/// theirs) and changes nothing; a hinted folder the filter excludes is never listed. The proxy
/// holds the root listing 1 s and notes when each folder listing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hinted_folders_are_listed_with_the_root_and_once() {
    use common_s3::{Action, Proxy};
    use std::time::{Duration, Instant};
    let srv = Server::s3s_fs();
    let keys = twenty_folders(&srv).await;
    type Starts = Vec<(Instant, Option<String>)>;
    let log: Arc<std::sync::Mutex<Starts>> = Arc::default();
    let seen = log.clone();
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            let line = head.lines().next().unwrap_or_default();
            if !(line.starts_with("get /bkt?") && line.contains("list-type=2")) {
                return Action::Forward;
            }
            let folder = line
                .split(['?', '&', ' '])
                .find_map(|kv| kv.strip_prefix("prefix="))
                .filter(|p| !p.is_empty())
                .map(|p| p.replace("%2f", "/"));
            let root = folder.is_none();
            seen.lock().unwrap().push((Instant::now(), folder));
            if root { Action::Stall(0, Duration::from_secs(1)) } else { Action::Forward }
        }),
    )
    .await;
    let r = remote(&client(&proxy.endpoint()), "");
    let hints = ["d00", "d01", "d02", "gone", "gone/deeper", "d03"];
    let listed = file_paths(list_hinted(&r, &["d01/**"], &hints).await);
    let want: Vec<String> = keys.into_iter().filter(|k| !k.starts_with("d01/")).collect();
    assert_eq!(listed, want, "every object once, in key order, d01 excluded");
    let log = log.lock().unwrap().clone();
    let root_at = log.iter().find(|(_, f)| f.is_none()).expect("a root listing").0;
    let folders: Vec<(Instant, String)> = log.iter().filter_map(|(t, f)| f.clone().map(|f| (*t, f))).collect();
    let mut names: Vec<&str> = folders.iter().map(|(_, f)| f.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<String> = (0..20).filter(|d| *d != 1).map(|d| format!("d{d:02}/")).collect();
    expected.extend(["gone/".to_owned(), "gone/deeper/".to_owned()]);
    expected.sort_unstable();
    assert_eq!(names, expected, "each folder listed once; the excluded d01 never");
    let early: Vec<&str> = folders
        .iter()
        .filter(|(t, _)| t.saturating_duration_since(root_at) < Duration::from_millis(800))
        .map(|(_, f)| f.as_str())
        .collect();
    for h in ["d00/", "d02/", "d03/", "gone/", "gone/deeper/"] {
        assert!(early.contains(&h), "{h} was not listed while the root listing was held: {early:?}");
    }
}
