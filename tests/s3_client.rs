//! The S3 client against real servers on loopback: s3s-fs 0.14.1 (verifies every signature), moto 5.2.1 (versioning, Glacier), Garage 2.5.0 (`aws-chunked` uploads), Debian's rclone 1.60 (mtime interop, reading back), a fault proxy (resets, 503 SlowDown, a server refusing `aws-chunked`) and a TLS proxy with a throwaway CA. Each test starts its own server on a free port with a fresh data dir. Imports the crate's `remote::s3` API and the `common_s3` harness.

mod common_s3;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use cloudsyncd::remote::s3::{
    BytesSource, FileSource, GetOptions, ListRequest, MultipartWriter, ObjectIdentifier, PayloadSigning, PutOptions,
    Range, RestoreStatus, S3Client, S3Error, TransportKind, UploadOptions, VersionEntry,
};
use common_s3::{
    Action, Proxy, SECRET_KEY, Server, TestPki, TlsProxy, client, error_response, random_bytes, rclone, read_all,
    test_config,
};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::{sync::Semaphore, task::JoinSet};

const MIB: u64 = 1 << 20;

fn md5_etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

fn sha(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Reads a whole object (resuming after broken connections).
async fn get_bytes(c: &S3Client, bucket: &str, key: &str) -> Vec<u8> {
    let (meta, reader) = c.open_object(bucket, key, &GetOptions::default()).await.unwrap();
    let data = read_all(reader).await;
    assert_eq!(data.len() as u64, meta.size);
    data
}

/// Every key under `prefix`, page by page, with the page count.
async fn list_keys(c: &S3Client, bucket: &str, req: ListRequest) -> (Vec<String>, usize) {
    let mut pages = c.list_objects_v2(bucket, req);
    let (mut keys, mut n) = (Vec::new(), 0);
    while let Some(page) = pages.next_page().await {
        let page = page.unwrap();
        n += 1;
        keys.extend(page.contents.into_iter().map(|o| o.key));
    }
    (keys, n)
}

/// Stores a small object under each key, 16 at a time.
async fn put_many(c: &S3Client, bucket: &str, keys: &[String]) {
    let sem = Arc::new(Semaphore::new(16));
    let mut set = JoinSet::new();
    for k in keys {
        let (c, b, k, sem) = (c.clone(), bucket.to_owned(), k.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            c.put_object_bytes(&b, &k, Bytes::from(k.clone().into_bytes()), &PutOptions::default()).await.unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn mtime_ns(path: &Path) -> i128 {
    let t = std::fs::metadata(path).unwrap().modified().unwrap();
    i128::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

fn set_mtime(path: &Path, ns: i128) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap());
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// `2023-11-14 22:13:20.123456789`, as `rclone lsl` prints in UTC.
fn lsl_time(ns: i128) -> String {
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).unwrap();
    let nanos = ns.rem_euclid(1_000_000_000);
    let t = jiff::Timestamp::from_second(secs).unwrap();
    format!("{}.{nanos:09}", t.strftime("%Y-%m-%d %H:%M:%S"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_create_list_head_and_detect_region() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    assert!(c.list_buckets().await.unwrap().is_empty());
    c.create_bucket("alpha").await.unwrap();
    c.create_bucket("beta-2").await.unwrap();
    let mut names: Vec<String> = c.list_buckets().await.unwrap().into_iter().map(|b| b.name).collect();
    names.sort(); // s3s-fs lists buckets unsorted (AWS sorts them)
    assert_eq!(names, ["alpha", "beta-2"]);
    c.head_bucket("alpha").await.unwrap();
    let err = c.head_bucket("missing").await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(err.is_not_found() && !err.is_retryable(), "{err}");

    // No region configured: detected with GetBucketLocation, then used to sign.
    let mut cfg = test_config(&srv.endpoint(), SECRET_KEY);
    cfg.region = String::new();
    let auto = S3Client::new(cfg).unwrap();
    assert_eq!(auto.get_bucket_location("alpha").await.unwrap(), "us-east-1");
    let auto = S3Client::new({
        let mut cfg = test_config(&srv.endpoint(), SECRET_KEY);
        cfg.region = String::new();
        cfg
    })
    .unwrap();
    auto.put_object_bytes("beta-2", "k", Bytes::from_static(b"v"), &PutOptions::default()).await.unwrap();
    assert_eq!(get_bytes(&auto, "beta-2", "k").await, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_with_unicode_spaces_and_plus_in_keys() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let keys = [
        "dir/ü ñ.txt",
        "a+b=c&d;e,f.txt",
        "spaces in name/file (1).txt",
        "日本語/emoji😀.bin",
        "100%.txt",
        "tilde~x/$dollar@at!'.txt",
        "q?uestion#hash[1].txt",
        "plus+/and space+.txt",
    ];
    for (i, key) in keys.iter().enumerate() {
        let data = format!("content of {key} #{i}").into_bytes();
        let mtime = 1_700_000_000_123_456_789 + i128::try_from(i).unwrap();
        let opts = PutOptions { mtime: Some(mtime), ..PutOptions::default() };
        let put = c.put_object_bytes("bkt", key, Bytes::from(data.clone()), &opts).await.unwrap();
        assert_eq!(put.etag, md5_etag(&data), "{key}");
        let meta = c.head_object("bkt", key).await.unwrap().unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(meta.etag, md5_etag(&data));
        assert_eq!(meta.mtime(), Some(mtime), "{key}");
        assert!(meta.last_modified.is_some());
        assert_eq!(get_bytes(&c, "bkt", key).await, data, "{key}");
        let range = GetOptions { range: Some(Range::Inclusive(2, 5)), ..GetOptions::default() };
        let ranged = c.get_object("bkt", key, &range).await.unwrap();
        assert_eq!((ranged.content_length, ranged.range, ranged.meta.size), (4, Some((2, 5)), data.len() as u64));
        assert_eq!(read_all(ranged.body).await, &data[2..=5]);
    }
    let (listed, _) = list_keys(&c, "bkt", ListRequest::default()).await;
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    assert_eq!(listed, want, "listing decodes keys exactly, in byte order");
    let mut pages = c.list_objects_v2("bkt", ListRequest { delimiter: "/".into(), ..ListRequest::default() });
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.common_prefixes, ["dir/", "plus+/", "spaces in name/", "tilde~x/", "日本語/"]);
    for key in keys {
        c.delete_object("bkt", key, None).await.unwrap();
        assert_eq!(c.head_object("bkt", key).await.unwrap(), None, "{key}");
        let err = c.get_object("bkt", key, &GetOptions::default()).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.code(), Some("NoSuchKey"));
    }
    // Deleting what is gone succeeds, as on AWS.
    c.delete_object("bkt", keys[0], None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_objects() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let empty_md5 = "\"d41d8cd98f00b204e9800998ecf8427e\"";
    c.put_object_bytes("bkt", "bytes", Bytes::new(), &PutOptions::default()).await.unwrap();
    let src = BytesSource(Bytes::new());
    c.put_object("bkt", "streamed", 0, &src, &PutOptions::default()).await.unwrap();
    let opts =
        UploadOptions { put: PutOptions { mtime: Some(0), ..PutOptions::default() }, ..UploadOptions::default() };
    c.upload("bkt", "upload", 0, &src, &opts).await.unwrap();
    for key in ["bytes", "streamed", "upload"] {
        let meta = c.head_object("bkt", key).await.unwrap().unwrap();
        assert_eq!((meta.size, meta.etag.as_str()), (0, empty_md5), "{key}");
        assert!(get_bytes(&c, "bkt", key).await.is_empty(), "{key}");
    }
    assert_eq!(c.head_object("bkt", "upload").await.unwrap().unwrap().mtime(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_four_parts_reads_back_identical() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = random_bytes(usize::try_from(16 * MIB).unwrap());
    std::fs::write(&path, &data).unwrap();
    let mtime = 1_690_000_000_987_654_321;
    let opts = UploadOptions {
        put: PutOptions { mtime: Some(mtime), ..PutOptions::default() },
        chunk_size: 5 * MIB,
        concurrency: 3,
        whole_md5: true,
    };
    let out = c.upload("bkt", "dir/big.bin", 16 * MIB, &FileSource::new(&path), &opts).await.unwrap();
    assert!(out.etag.ends_with("-4\""), "16 MiB in 5 MiB parts is 4 parts: {}", out.etag);
    let meta = c.head_object("bkt", "dir/big.bin").await.unwrap().unwrap();
    assert_eq!(meta.size, 16 * MIB);
    assert_eq!(meta.mtime(), Some(mtime));
    assert_eq!(meta.md5_hex().unwrap(), hex::encode(Md5::digest(&data)), "rclone's md5chksum");
    assert_eq!(sha(&get_bytes(&c, "bkt", "dir/big.bin").await), sha(&data));

    // The same file in one streamed PutObject (the part size exceeds it).
    let single = UploadOptions { chunk_size: 32 * MIB, ..opts.clone() };
    let out = c.upload("bkt", "single.bin", 16 * MIB, &FileSource::new(&path), &single).await.unwrap();
    assert_eq!(out.etag, md5_etag(&data));
    assert_eq!(sha(&get_bytes(&c, "bkt", "single.bin").await), sha(&data));

    // A source shorter than announced fails cleanly.
    let err = c.upload("bkt", "short.bin", 17 * MIB, &FileSource::new(&path), &opts).await.unwrap_err();
    assert!(matches!(err, S3Error::Source { .. }) && !err.is_retryable(), "{err}");
    assert_eq!(c.head_object("bkt", "short.bin").await.unwrap(), None);

    // s3s-fs has no ListMultipartUploads (501): tolerated as "unknown".
    assert_eq!(c.list_multipart_uploads("bkt", "").await.unwrap(), None);
}

/// Requests of operation `op` this client sent (every attempt).
fn sent(c: &S3Client, op: &str) -> u64 {
    c.request_counts().into_iter().find(|(o, _)| o == op).map_or(0, |(_, n)| n)
}

/// Streamed single PUTs (sizes around the 64 KiB chunk) and multipart parts from sources go
/// `aws-chunked` through a proxy that records their heads, land byte for byte on `srv`, and read
/// back the same with rclone. `strips_encoding`: the server drops `aws-chunked` from the
/// `Content-Encoding` it keeps with the object, as S3 does (s3s-fs 0.14.1 keeps it: harmless to
/// rclone and to us, who read the bytes as they are, but shown as the object's metadata).
async fn streamed_uploads_land_on(srv: &Server, strips_encoding: bool) {
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let h = heads.clone();
    let proxy = Proxy::start(
        srv.addr(),
        Arc::new(move |_, head| {
            h.lock().unwrap().push(head.to_owned());
            Action::Forward
        }),
    )
    .await;
    let c = srv.client_via(&proxy.endpoint());
    c.create_bucket("stream").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    std::fs::create_dir(&single).unwrap();
    // Empty, one short chunk, exactly two chunks, many chunks and a tail.
    for (name, size) in [("empty", 0), ("short", 1000), ("two-chunks", 128 << 10), ("tail", 3 * MIB as usize + 12_345)]
    {
        let data = random_bytes(size);
        let path = single.join(name);
        std::fs::write(&path, &data).unwrap();
        let key = format!("single/{name}");
        let out =
            c.put_object("stream", &key, size as u64, &FileSource::new(&path), &PutOptions::default()).await.unwrap();
        assert_eq!(out.etag, md5_etag(&data), "{key}");
        assert_eq!(get_bytes(&c, "stream", &key).await, data, "{key}");
    }
    let big = random_bytes(11 * MIB as usize + 777);
    let mut w = MultipartWriter::start(&c, "stream", "multi/big.bin", &PutOptions::default(), 2).await.unwrap();
    for part in big.chunks(5 * MIB as usize) {
        w.push_source(Arc::new(BytesSource(Bytes::copy_from_slice(part))), part.len() as u64).await.unwrap();
    }
    let out = w.finish().await.unwrap();
    assert!(out.etag.ends_with("-3\""), "three parts: {}", out.etag);
    assert_eq!(sha(&get_bytes(&c, "stream", "multi/big.bin").await), sha(&big));

    // Every upload went aws-chunked, once each, and none carried Content-MD5.
    let heads = heads.lock().unwrap().clone();
    let uploads: Vec<&String> = heads.iter().filter(|h| h.starts_with("put /stream/")).collect();
    assert_eq!(uploads.len(), 4 + 3, "four PUTs and three parts, none sent twice: {uploads:#?}");
    for head in uploads {
        for line in [
            "content-encoding: aws-chunked\r\n",
            "x-amz-content-sha256: streaming-aws4-hmac-sha256-payload\r\n",
            "x-amz-decoded-content-length: ",
        ] {
            assert!(head.contains(line), "{line:?} missing: {head}");
        }
        assert!(!head.contains("content-md5:"), "{head}");
    }
    assert!(c.sends_aws_chunked());

    // rclone reads back the same bytes, and sees no aws-chunked encoding stored with them.
    let out = srv.rclone(&["check", "--download", single.to_str().unwrap(), "s:stream/single"]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.contains("0 differences found"), "rclone check --download: {report}");
    let out = srv.rclone(&["cat", "s:stream/multi/big.bin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == big, "rclone cat: big.bin differs");
    let out = srv.rclone(&["lsjson", "-M", "s:stream/single"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listing.contains("two-chunks"), "{listing}");
    if strips_encoding {
        assert!(!listing.contains("aws-chunked"), "the encoding was stored with the objects: {listing}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_are_sent_aws_chunked_once_and_land_on_s3s_fs() {
    streamed_uploads_land_on(&Server::s3s_fs(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_are_sent_aws_chunked_once_and_land_on_garage() {
    streamed_uploads_land_on(&Server::garage(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_longer_or_shorter_than_stated_fails_the_streamed_upload() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("len").await.unwrap();
    let src = BytesSource(Bytes::from(random_bytes(200_000)));
    let err = c.put_object("len", "long", 150_000, &src, &PutOptions::default()).await.unwrap_err();
    assert!(matches!(err, S3Error::Source { .. }) && err.to_string().contains("longer than its stated size"), "{err}");
    let err = c.put_object("len", "short", 250_000, &src, &PutOptions::default()).await.unwrap_err();
    assert!(matches!(err, S3Error::Source { .. }) && err.to_string().contains("50000 bytes before"), "{err}");
    for key in ["long", "short"] {
        assert_eq!(c.head_object("len", key).await.unwrap(), None, "{key} was stored");
    }
    assert_eq!(sent(&c, "PutObject"), 2, "a failing source is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_aws_chunked_gets_hashed_uploads_from_then_on() {
    let srv = Server::s3s_fs();
    client(&srv.endpoint()).create_bucket("old").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2 * MIB as usize + 5);
    let path = dir.path().join("f");
    std::fs::write(&path, &data).unwrap();
    let src = FileSource::new(&path);
    let len = data.len() as u64;
    // A proxy answering every aws-chunked request as a server that does not take it would.
    let refusing = |status: &'static str, code: &'static str| {
        let refused = Arc::new(AtomicU64::new(0));
        let r = refused.clone();
        let policy: common_s3::Policy = Arc::new(move |_, head| {
            if head.contains("content-encoding: aws-chunked") {
                r.fetch_add(1, Ordering::SeqCst);
                Action::Respond(error_response(status, code, "", ""))
            } else {
                Action::Forward
            }
        });
        (policy, refused)
    };
    for (status, code) in [("501 Not Implemented", "NotImplemented"), ("400 Bad Request", "InvalidArgument")] {
        let (policy, refused) = refusing(status, code);
        let proxy = Proxy::start(srv.addr(), policy).await;
        let c = client(&proxy.endpoint());
        assert!(c.sends_aws_chunked());
        let key = format!("{code}/first");
        let out = c.put_object("old", &key, len, &src, &PutOptions::default()).await.unwrap();
        assert_eq!(out.etag, md5_etag(&data));
        assert_eq!((refused.load(Ordering::SeqCst), sent(&c, "PutObject")), (1, 2), "{code}: refused, then redone");
        assert!(!c.sends_aws_chunked(), "{code}: the refusal is remembered");
        // The next upload, and a clone's multipart part, go straight to the old mode.
        let key2 = format!("{code}/second");
        c.put_object("old", &key2, len, &src, &PutOptions::default()).await.unwrap();
        let clone = c.clone();
        let mut w =
            MultipartWriter::start(&clone, "old", &format!("{code}/multi"), &PutOptions::default(), 1).await.unwrap();
        w.push_source(Arc::new(FileSource::new(&path)), len).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(refused.load(Ordering::SeqCst), 1, "{code}: asked only once");
        assert_eq!((sent(&c, "PutObject"), sent(&c, "UploadPart")), (3, 1));
        for k in [key, key2, format!("{code}/multi")] {
            assert_eq!(sha(&get_bytes(&c, "old", &k).await), sha(&data), "{k}");
        }
    }

    // PayloadSigning::Whole never sends aws-chunked.
    let (policy, refused) = refusing("501 Not Implemented", "NotImplemented");
    let proxy = Proxy::start(srv.addr(), policy).await;
    let mut cfg = test_config(&proxy.endpoint(), SECRET_KEY);
    cfg.payload_signing = PayloadSigning::Whole;
    let c = S3Client::new(cfg).unwrap();
    assert!(!c.sends_aws_chunked());
    c.put_object("old", "whole", len, &src, &PutOptions::default()).await.unwrap();
    assert_eq!((refused.load(Ordering::SeqCst), sent(&c, "PutObject")), (0, 1));
    assert_eq!(sha(&get_bytes(&c, "old", "whole").await), sha(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_2500_keys_in_order() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let mut keys: Vec<String> = (0..2500).map(|i| format!("k/{}/{i:05}", i % 5)).collect();
    put_many(&c, "bkt", &keys).await;
    keys.sort();
    let (listed, pages) = list_keys(&c, "bkt", ListRequest { max_keys: Some(300), ..ListRequest::default() }).await;
    assert_eq!(pages, 9, "2500 keys in pages of 300");
    assert_eq!(listed, keys);

    // The prefetching channel gives the same.
    let mut rx = c.list_objects_v2("bkt", ListRequest { max_keys: Some(700), ..ListRequest::default() }).prefetch();
    let mut again = Vec::new();
    while let Some(page) = rx.recv().await {
        let page = page.unwrap();
        assert!(page.contents.len() <= 700);
        again.extend(page.contents.into_iter().map(|o| o.key));
    }
    assert_eq!(again, keys);

    let after = ListRequest { start_after: keys[999].clone(), max_keys: Some(400), ..ListRequest::default() };
    let (listed, _) = list_keys(&c, "bkt", after).await;
    assert_eq!(listed, keys[1000..]);

    let mut pages =
        c.list_objects_v2("bkt", ListRequest { prefix: "k/".into(), delimiter: "/".into(), ..ListRequest::default() });
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.common_prefixes, ["k/0/", "k/1/", "k/2/", "k/3/", "k/4/"]);
    assert!(page.contents.is_empty());
    let (listed, _) = list_keys(&c, "bkt", ListRequest { prefix: "k/3/".into(), ..ListRequest::default() }).await;
    assert_eq!(listed.len(), 500);
    assert!(listed.iter().all(|k| k.starts_with("k/3/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_removes_1500_keys_in_two_requests() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let keys: Vec<String> = (0..1500).map(|i| format!("del/{i:04} é+.txt")).collect();
    put_many(&c, "bkt", &keys).await;
    c.put_object_bytes("bkt", "keep.txt", Bytes::from_static(b"k"), &PutOptions::default()).await.unwrap();
    assert_eq!(list_keys(&c, "bkt", ListRequest::default()).await.0.len(), 1501);
    let ids: Vec<ObjectIdentifier<'_>> = keys.iter().map(|k| ObjectIdentifier { key: k, version_id: None }).collect();
    let out = c.delete_objects("bkt", &ids).await.unwrap();
    assert_eq!((out.requests, out.deleted), (2, 1500));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(list_keys(&c, "bkt", ListRequest::default()).await.0, ["keep.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_fails_clearly_without_retries() {
    let srv = Server::s3s_fs();
    client(&srv.endpoint()).create_bucket("bkt").await.unwrap();
    let bad = S3Client::new(test_config(&srv.endpoint(), "not-the-secret")).unwrap();
    let started = Instant::now();
    let err = bad.list_buckets().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(err.is_auth() && !err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("ListBuckets: HTTP 403 SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    let err = bad.put_object_bytes("bkt", "x", Bytes::from_static(b"x"), &PutOptions::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "auth failures are not retried");
    assert_eq!(client(&srv.endpoint()).head_object("bkt", "x").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_replace_changes_mtime_only() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        mtime: Some(1_600_000_000_000_000_001),
        metadata: vec![("owner".into(), "alice".into())],
        ..PutOptions::default()
    };
    let data = b"unchanged body".to_vec();
    c.put_object_bytes("bkt", "f.txt", Bytes::from(data.clone()), &opts).await.unwrap();
    c.set_mtime("bkt", "f.txt", 1_650_000_000_500_000_000).await.unwrap();
    let meta = c.head_object("bkt", "f.txt").await.unwrap().unwrap();
    assert_eq!(meta.mtime(), Some(1_650_000_000_500_000_000));
    assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(meta.etag, md5_etag(&data));
    assert_eq!(get_bytes(&c, "bkt", "f.txt").await, data);

    // A copy to another key with REPLACE carries only the new metadata.
    let new = PutOptions { mtime: Some(42), ..PutOptions::default() };
    let copied = c.copy_object("bkt", "f.txt", "copy of f+.txt", &new).await.unwrap();
    assert_eq!(copied.etag, md5_etag(&data));
    let meta = c.head_object("bkt", "copy of f+.txt").await.unwrap().unwrap();
    assert_eq!(meta.mtime(), Some(42));
    assert!(!meta.metadata.contains_key("owner"));
    let err = c.set_mtime("bkt", "missing", 1).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_reads_our_mtimes_and_we_read_rclones() {
    let srv = Server::s3s_fs();
    let c = client(&srv.endpoint());
    c.create_bucket("bkt").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let files: [(&str, usize, i128); 5] = [
        ("top.txt", 100, 1_700_000_000_123_456_789),
        ("sub dir/ü ñ+.txt", 2000, 1_700_000_000_500_000_000),
        ("sub dir/deeper/empty.txt", 0, 1_600_000_000_000_000_000),
        ("sub dir/deeper/one ns.bin", 3, 1_500_000_000_000_000_001),
        ("big.bin", usize::try_from(11 * MIB).unwrap(), 1_710_000_000_000_000_100),
    ];
    let mut contents = BTreeMap::new();
    for (name, len, mtime) in files {
        let p = tree.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let data = random_bytes(len);
        std::fs::write(&p, &data).unwrap();
        set_mtime(&p, mtime);
        assert_eq!(mtime_ns(&p), mtime, "the file system keeps nanoseconds");
        contents.insert(name, data);
    }

    // rclone → us.
    let out = rclone(&srv.endpoint(), &["copy", tree.to_str().unwrap(), "s:bkt/from-rclone"]);
    assert!(out.status.success(), "rclone copy: {}", String::from_utf8_lossy(&out.stderr));
    for (name, _, mtime) in files {
        let key = format!("from-rclone/{name}");
        let meta = c.head_object("bkt", &key).await.unwrap().unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(meta.mtime(), Some(mtime), "{key}: {:?}", meta.metadata);
        assert_eq!(get_bytes(&c, "bkt", &key).await, contents[name], "{key}");
    }

    // us → rclone: lsl shows our mtimes, check finds no difference.
    let opts = UploadOptions { chunk_size: 5 * MIB, ..UploadOptions::default() };
    for (name, len, mtime) in files {
        let opts = UploadOptions { put: PutOptions { mtime: Some(mtime), ..PutOptions::default() }, ..opts.clone() };
        let src = FileSource::new(tree.join(name));
        c.upload("bkt", &format!("from-us/{name}"), len as u64, &src, &opts).await.unwrap();
    }
    // One folder at a time: a recursive lsl sends an empty `delimiter=`, which s3s-fs mislists.
    for (name, len, mtime) in files {
        let (folder, base) = name.rsplit_once('/').unwrap_or(("", name));
        let remote = format!("s:bkt/from-us/{folder}");
        let out = rclone(&srv.endpoint(), &["lsl", "--max-depth", "1", &remote]);
        assert!(out.status.success(), "rclone lsl: {}", String::from_utf8_lossy(&out.stderr));
        let lsl = String::from_utf8(out.stdout).unwrap();
        let line = format!("{len:>9} {} {base}", lsl_time(mtime));
        assert!(lsl.lines().any(|l| l == line), "missing {line:?} in\n{lsl}");
    }
    let out = rclone(&srv.endpoint(), &["check", tree.to_str().unwrap(), "s:bkt/from-us"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rclone check: {err}");
    assert!(err.contains("0 differences found") && !err.contains("hashes could not be checked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_bucket_on_moto() {
    let srv = Server::moto();
    let c = client(&srv.endpoint());
    c.create_bucket("ver").await.unwrap();
    c.put_bucket_versioning("ver", true).await.unwrap();
    let v1 = c.put_object_bytes("ver", "doc.txt", Bytes::from_static(b"one"), &PutOptions::default()).await.unwrap();
    let v2 = c.put_object_bytes("ver", "doc.txt", Bytes::from_static(b"two!"), &PutOptions::default()).await.unwrap();
    c.put_object_bytes("ver", "other.txt", Bytes::from_static(b"x"), &PutOptions::default()).await.unwrap();
    let (v1, v2) = (v1.version_id.unwrap(), v2.version_id.unwrap());
    assert_ne!(v1, v2);
    let del = c.delete_object("ver", "doc.txt", None).await.unwrap();
    assert!(del.delete_marker, "{del:?}");
    assert_eq!(c.head_object("ver", "doc.txt").await.unwrap(), None, "hidden behind a delete marker");

    let versions = |c: S3Client| async move {
        let mut pages = c.list_object_versions("ver", ListRequest { max_keys: Some(2), ..ListRequest::default() });
        let mut all = Vec::new();
        while let Some(p) = pages.next_page().await {
            all.extend(p.unwrap().entries);
        }
        all
    };
    let all = versions(c.clone()).await;
    let doc: Vec<&VersionEntry> = all.iter().filter(|e| e.key() == "doc.txt").collect();
    let markers = doc.iter().filter(|e| matches!(e, VersionEntry::DeleteMarker(m) if m.is_latest)).count();
    let kept: Vec<&str> = doc
        .iter()
        .filter_map(|e| match e {
            VersionEntry::Version(v) => Some(v.version_id.as_str()),
            VersionEntry::DeleteMarker(_) => None,
        })
        .collect();
    assert_eq!(markers, 1, "{all:?}");
    assert_eq!(kept.len(), 2, "{all:?}");
    assert!(kept.contains(&v1.as_str()) && kept.contains(&v2.as_str()));
    let old = GetOptions { version_id: Some(v1.clone()), ..GetOptions::default() };
    let old = c.get_object("ver", "doc.txt", &old).await.unwrap();
    assert_eq!(read_all(old.body).await, b"one");
    assert_eq!(c.head_object_version("ver", "doc.txt", Some(&v2)).await.unwrap().unwrap().size, 4);

    // Hard delete: every version and marker, one by one for doc.txt, in bulk for other.txt.
    for e in &doc {
        let id = match e {
            VersionEntry::Version(v) => &v.version_id,
            VersionEntry::DeleteMarker(m) => &m.version_id,
        };
        c.delete_object("ver", "doc.txt", Some(id)).await.unwrap();
    }
    let rest: Vec<(String, String)> = versions(c.clone())
        .await
        .into_iter()
        .map(|e| match e {
            VersionEntry::Version(v) => (v.key, v.version_id),
            VersionEntry::DeleteMarker(m) => (m.key, m.version_id),
        })
        .collect();
    assert_eq!(rest.len(), 1, "{rest:?}");
    let ids: Vec<ObjectIdentifier<'_>> =
        rest.iter().map(|(k, v)| ObjectIdentifier { key: k, version_id: Some(v) }).collect();
    let out = c.delete_objects("ver", &ids).await.unwrap();
    assert_eq!((out.deleted, out.errors.len()), (1, 0));
    assert!(versions(c.clone()).await.is_empty(), "no version left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glacier_object_is_reported_and_restored_on_moto() {
    let srv = Server::moto();
    let c = client(&srv.endpoint());
    c.create_bucket("cold").await.unwrap();
    let opts = PutOptions { storage_class: Some("GLACIER".into()), mtime: Some(5), ..PutOptions::default() };
    c.put_object_bytes("cold", "frozen.bin", Bytes::from_static(b"ice"), &opts).await.unwrap();
    let meta = c.head_object("cold", "frozen.bin").await.unwrap().unwrap();
    assert_eq!(meta.storage_class, "GLACIER");
    assert!(meta.is_archived());
    let mut pages = c.list_objects_v2("cold", ListRequest::default());
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.contents[0].storage_class.as_deref(), Some("GLACIER"));

    let err = c.get_object("cold", "frozen.bin", &GetOptions::default()).await.unwrap_err();
    assert!(matches!(err, S3Error::Archived { .. }), "{err:?}");
    assert_eq!((err.code(), err.status()), (Some("InvalidObjectState"), Some(403)));
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("GetObject s3://cold/frozen.bin") && text.contains("archived"), "{text}");
    assert!(text.contains("RestoreObject"), "says what to do: {text}");

    assert_eq!(c.restore_object("cold", "frozen.bin", 1, "Standard").await.unwrap(), RestoreStatus::Started);

    // Storage class and server-side encryption are sent on upload (single and multipart).
    let opts =
        PutOptions { storage_class: Some("STANDARD_IA".into()), sse: Some("AES256".into()), ..PutOptions::default() };
    c.put_object_bytes("cold", "ia.bin", Bytes::from_static(b"warm"), &opts).await.unwrap();
    let data = random_bytes(usize::try_from(6 * MIB).unwrap());
    let up = UploadOptions { put: opts, chunk_size: 5 * MIB, ..UploadOptions::default() };
    c.upload("cold", "ia-multi.bin", data.len() as u64, &BytesSource(Bytes::from(data)), &up).await.unwrap();
    for key in ["ia.bin", "ia-multi.bin"] {
        let meta = c.head_object("cold", key).await.unwrap().unwrap();
        assert_eq!((meta.storage_class.as_str(), meta.sse.as_deref()), ("STANDARD_IA", Some("AES256")), "{key}");
    }
    let meta = c.head_object("cold", "frozen.bin").await.unwrap().unwrap();
    assert!(meta.restore.as_deref().is_some_and(|r| r.contains("ongoing-request=\"false\"")), "{meta:?}");
    assert!(!meta.is_archived());
    assert_eq!(get_bytes(&c, "cold", "frozen.bin").await, b"ice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_and_stale_multipart_uploads_leave_nothing_on_moto() {
    let srv = Server::moto();
    let c = client(&srv.endpoint());
    c.create_bucket("mpu").await.unwrap();
    let part = Bytes::from(random_bytes(usize::try_from(5 * MIB).unwrap()));

    let mut w = MultipartWriter::start(&c, "mpu", "aborted.bin", &PutOptions::default(), 2).await.unwrap();
    w.push_part(part.clone()).await.unwrap();
    assert_eq!(c.list_multipart_uploads("mpu", "").await.unwrap().unwrap().len(), 1);
    w.abort().await;
    assert_eq!(c.list_multipart_uploads("mpu", "").await.unwrap(), Some(vec![]));

    // A failing source aborts the upload it started.
    let src = BytesSource(Bytes::from(random_bytes(usize::try_from(7 * MIB).unwrap())));
    let opts = UploadOptions { chunk_size: 5 * MIB, whole_md5: false, ..UploadOptions::default() };
    let err = c.upload("mpu", "short.bin", 12 * MIB, &src, &opts).await.unwrap_err();
    assert!(matches!(err, S3Error::Source { .. }), "{err}");
    assert_eq!(c.list_multipart_uploads("mpu", "").await.unwrap(), Some(vec![]));
    assert_eq!(c.head_object("mpu", "short.bin").await.unwrap(), None);

    // Stale uploads of an interrupted run are found and cleaned.
    let a = c.create_multipart_upload("mpu", "stale/a", &PutOptions::default()).await.unwrap();
    let b = c.create_multipart_upload("mpu", "stale/b", &PutOptions::default()).await.unwrap();
    c.upload_part("mpu", "stale/a", &a, 1, part).await.unwrap();
    let stale = c.list_multipart_uploads("mpu", "stale/").await.unwrap().unwrap();
    let mut ids: Vec<&str> = stale.iter().map(|u| u.upload_id.as_str()).collect();
    ids.sort_unstable();
    let mut want = [a.as_str(), b.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    for u in &stale {
        c.abort_multipart_upload("mpu", &u.key, &u.upload_id).await.unwrap();
    }
    assert_eq!(c.list_multipart_uploads("mpu", "").await.unwrap(), Some(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_listings_survive_resets_and_slowdowns() {
    let srv = Server::s3s_fs();
    let proxy = Proxy::faults(srv.addr()).await;
    let c = client(&proxy.endpoint());
    c.create_bucket("flaky").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = random_bytes(usize::try_from(16 * MIB).unwrap());
    std::fs::write(&path, &data).unwrap();
    let opts = UploadOptions { chunk_size: 5 * MIB, ..UploadOptions::default() };
    let out = c.upload("flaky", "big.bin", 16 * MIB, &FileSource::new(&path), &opts).await.unwrap();
    assert!(out.etag.ends_with("-4\""), "{}", out.etag);
    // A streamed single PutObject re-reads its file on each retry.
    let small = &data[..usize::try_from(3 * MIB).unwrap()];
    let small_path = dir.path().join("small.bin");
    std::fs::write(&small_path, small).unwrap();
    let src = FileSource::new(&small_path);
    let put = c.put_object("flaky", "small.bin", 3 * MIB, &src, &PutOptions::default()).await.unwrap();
    assert_eq!(put.etag, md5_etag(small));

    let keys: Vec<String> = (0..120).map(|i| format!("many/{i:03}")).collect();
    put_many(&c, "flaky", &keys).await;
    let (listed, pages) =
        list_keys(&c, "flaky", ListRequest { prefix: "many/".into(), max_keys: Some(25), ..ListRequest::default() })
            .await;
    assert_eq!((listed, pages), (keys, 5));

    assert_eq!(sha(&get_bytes(&c, "flaky", "big.bin").await), sha(&data), "intact after the faults");
    assert_eq!(get_bytes(&c, "flaky", "small.bin").await, small);
    let (resets, slowdowns, forwarded) = proxy.stats.get();
    let truncated = proxy.stats.truncated.load(std::sync::atomic::Ordering::SeqCst);
    assert!(resets >= 10 && slowdowns >= 5 && forwarded > 100, "faults injected: {:?}", proxy.stats);
    assert!(truncated >= 1, "a GET body was cut short and resumed: {:?}", proxy.stats);

    // A plain (non-resuming) read of a cut body fails with a reset, not with bad data.
    let mut cut = 0;
    for _ in 0..6 {
        let out = c.get_object("flaky", "big.bin", &GetOptions::default()).await.unwrap();
        let mut body = out.body;
        let mut sink = Vec::new();
        match tokio::io::AsyncReadExt::read_to_end(&mut body, &mut sink).await {
            Ok(_) => assert_eq!(sha(&sink), sha(&data)),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                cut += 1;
            }
        }
    }
    assert!(cut >= 1, "some reads were cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_region_is_corrected_from_the_redirect_hint() {
    let srv = Server::s3s_fs();
    client(&srv.endpoint()).create_bucket("far").await.unwrap();
    let proxy = Proxy::region(srv.addr(), "eu-central-1").await;

    // Configured for the wrong region: the first request gets 301 + x-amz-bucket-region,
    // is re-signed for eu-central-1, and later requests go there at once.
    let c = client(&proxy.endpoint());
    c.put_object_bytes("far", "a.txt", Bytes::from_static(b"a"), &PutOptions::default()).await.unwrap();
    assert_eq!(proxy.stats.get().1, 1, "one redirect");
    assert_eq!(get_bytes(&c, "far", "a.txt").await, b"a");
    assert_eq!(c.head_object("far", "a.txt").await.unwrap().unwrap().size, 1);
    assert_eq!(proxy.stats.get().1, 1, "the corrected region is remembered");

    // No region configured: detection follows the hint GetBucketLocation gets.
    let mut cfg = test_config(&proxy.endpoint(), SECRET_KEY);
    cfg.region = String::new();
    let auto = S3Client::new(cfg).unwrap();
    assert_eq!(auto.get_bucket_location("far").await.unwrap(), "eu-central-1");
    let (keys, _) = list_keys(&auto, "far", ListRequest::default()).await;
    assert_eq!(keys, ["a.txt"]);

    // skip_region never follows hints: the redirect is the answer.
    let mut cfg = test_config(&proxy.endpoint(), SECRET_KEY);
    cfg.skip_region = true;
    let fixed = S3Client::new(cfg).unwrap();
    let err = fixed.head_bucket("far").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(301), Some("PermanentRedirect")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_file() {
    let srv = Server::s3s_fs();
    let pki = TestPki::make();
    let tls = TlsProxy::start(&pki, srv.addr()).await;

    // Not trusted without the CA: a TLS error, not retried.
    let untrusted = S3Client::new(test_config(&tls.endpoint(), SECRET_KEY)).unwrap();
    let started = Instant::now();
    let err = untrusted.list_buckets().await.unwrap_err();
    assert!(matches!(err, S3Error::Transport { kind: TransportKind::Tls, .. }), "{err:?}");
    assert!(!err.is_retryable() && started.elapsed() < Duration::from_secs(3), "{err}");

    let mut cfg = test_config(&tls.endpoint(), SECRET_KEY);
    cfg.ca_file = Some(pki.ca_pem());
    let c = S3Client::new(cfg).unwrap();
    c.create_bucket("tls").await.unwrap();
    let data = random_bytes(usize::try_from(6 * MIB).unwrap());
    let src = BytesSource(Bytes::from(data.clone()));
    let opts = UploadOptions { chunk_size: 5 * MIB, ..UploadOptions::default() };
    c.upload("tls", "over tls.bin", data.len() as u64, &src, &opts).await.unwrap();
    assert_eq!(sha(&get_bytes(&c, "tls", "over tls.bin").await), sha(&data));
    // A streamed source goes aws-chunked over https too (its chunks signed, no Content-MD5).
    let out = c.put_object("tls", "streamed.bin", data.len() as u64, &src, &PutOptions::default()).await.unwrap();
    assert_eq!(out.etag, md5_etag(&data));
    assert!(c.sends_aws_chunked());
    assert_eq!(sha(&get_bytes(&c, "tls", "streamed.bin").await), sha(&data));
    c.put_object_bytes("tls", "small", Bytes::from_static(b"s"), &PutOptions::default()).await.unwrap();
    assert_eq!(get_bytes(&c, "tls", "small").await, b"s");

    let mut bad = test_config(&tls.endpoint(), SECRET_KEY);
    bad.ca_file = Some(pki.dir.path().join("missing.pem"));
    assert!(matches!(S3Client::new(bad), Err(S3Error::Config { .. })));
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logs_hold_no_secret_or_signature() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    // One thread, so every task logs through this subscriber.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let srv = Server::s3s_fs();
            let proxy = Proxy::faults(srv.addr()).await;
            let c = client(&proxy.endpoint());
            c.create_bucket("logs").await.unwrap();
            let data = Bytes::from(random_bytes(usize::try_from(11 * MIB).unwrap()));
            let opts = UploadOptions { chunk_size: 5 * MIB, ..UploadOptions::default() };
            c.upload("logs", "f.bin", data.len() as u64, &BytesSource(data.clone()), &opts).await.unwrap();
            assert_eq!(get_bytes(&c, "logs", "f.bin").await, data);
            let _ = list_keys(&c, "logs", ListRequest::default()).await;
            let bad = S3Client::new(test_config(&srv.endpoint(), "wrong-secret-xyz")).unwrap();
            assert!(bad.list_buckets().await.is_err());
            assert!(proxy.stats.get().0 > 0, "some requests were retried");
        });
    });
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "retries are logged:\n{logs}");
    assert!(logs.contains("S3 request"), "requests are traced:\n{logs}");
    for secret in [SECRET_KEY, "wrong-secret-xyz", "Signature=", "AWS4-HMAC-SHA256", "Credential=", "authorization"] {
        assert!(!logs.contains(secret), "{secret:?} leaked into the logs:\n{logs}");
    }
}
