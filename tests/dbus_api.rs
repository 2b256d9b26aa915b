//! The configuration part of the contract, through a private dbus-daemon and the real binary.

mod common;

use common::*;
use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;

#[allow(dead_code)] // bus and daemon are kept alive for the test's duration
struct Env {
    bus: Bus,
    daemon: Daemon,
    conn: zbus::Connection,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let bus = Bus::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(dir.path().join("remote/sub")).unwrap();
        std::fs::write(dir.path().join("remote/file.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("a-file"), b"x").unwrap();
        let daemon = Daemon::start(&bus, &dir.path().join("state")).await;
        let conn = bus.connect().await;
        Self { bus, daemon, conn, dir }
    }

    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    async fn local_credential(&self, name: &str) -> OwnedObjectPath {
        manager(&self.conn)
            .await
            .create_credential(name, "LOCAL", dict(vec![("root", v(self.p("remote")))]))
            .await
            .unwrap()
    }

    async fn s3_credential(&self, name: &str) -> OwnedObjectPath {
        manager(&self.conn)
            .await
            .create_credential(
                name,
                "S3",
                dict(vec![
                    ("access_key_id", v("AKIDEXAMPLE")),
                    ("secret_access_key", v("s3-secret-value-0001")),
                    ("endpoint", v("http://127.0.0.1:9000")),
                ]),
            )
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_properties() {
    let env = Env::start().await;
    let m = manager(&env.conn).await;
    assert_eq!(m.providers().await.unwrap(), ["S3", "B2", "LOCAL"]);
    assert_eq!(m.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_life_cycle() {
    let env = Env::start().await;
    let om = object_manager(&env.conn).await;
    let mut added = om.receive_interfaces_added().await.unwrap();
    let mut removed = om.receive_interfaces_removed().await.unwrap();

    let path = env.s3_credential("aws").await;
    assert_eq!(path.as_str(), "/org/cloudsyncd/CloudSync1/credential/1");
    let sig = added.next().await.unwrap();
    assert_eq!(sig.args().unwrap().object_path.as_str(), path.as_str());

    let c = credential(&env.conn, &path).await;
    assert_eq!(c.id().await.unwrap(), 1);
    assert_eq!(c.name().await.unwrap(), "aws");
    assert_eq!(c.provider().await.unwrap(), "S3");
    let attrs = c.attributes().await.unwrap();
    assert_eq!(get_str(&attrs, "secret_access_key"), "********");
    assert_eq!(get_str(&attrs, "access_key_id"), "AKIDEXAMPLE");
    assert_eq!(get_str(&attrs, "endpoint"), "http://127.0.0.1:9000");

    // Update: the name and one attribute; the masked secret keeps its value.
    let mut changed = c.inner().receive_signal_with_args("PropertiesChanged", &[]).await.ok();
    let _ = changed.take();
    c.update(dict(vec![("name", v("aws-2")), ("region", v("eu-west-1")), ("secret_access_key", v("********"))]))
        .await
        .unwrap();
    assert_eq!(c.name().await.unwrap(), "aws-2");
    let attrs = c.attributes().await.unwrap();
    assert_eq!(get_str(&attrs, "region"), "eu-west-1");
    assert_eq!(get_str(&attrs, "secret_access_key"), "********");
    // "" clears a secret, which S3 requires: refused, nothing changed.
    let e = c.update(dict(vec![("secret_access_key", v(""))])).await.unwrap_err();
    assert_eq!(err_name(&e).0, "InvalidArgument");
    assert!(err_name(&e).1.contains("secret_access_key"), "{e}");

    // Names are unique.
    let e = manager(&env.conn)
        .await
        .create_credential("aws-2", "LOCAL", dict(vec![("root", v(env.p("remote")))]))
        .await
        .unwrap_err();
    assert_eq!(err_name(&e).0, "InvalidArgument");
    assert!(err_name(&e).1.starts_with("name:"), "{e}");

    // Verify and ListBuckets on S3 do not raise for remote failures… LOCAL lists for real.
    let lp = env.local_credential("usb").await;
    let l = credential(&env.conn, &lp).await;
    assert_eq!(l.verify().await.unwrap(), (true, String::new()));
    let entries = l.list_directory(dict(vec![])).await.unwrap();
    let names: Vec<String> = entries.iter().map(|e| get_str(e, "name")).collect();
    assert_eq!(names, ["file.txt", "sub"]);
    let e = l.list_directory(dict(vec![("folder", v("../etc"))])).await.unwrap_err();
    assert_eq!(err_name(&e).0, "InvalidArgument");
    let e = l.list_buckets().await.unwrap_err();
    assert_eq!(err_name(&e).0, "Failed");
    std::fs::rename(env.p("remote"), env.p("remote-gone")).unwrap();
    let (ok, why) = l.verify().await.unwrap();
    assert!(!ok && why.contains("remote"), "{why}");
    std::fs::rename(env.p("remote-gone"), env.p("remote")).unwrap();

    // Delete: InUse while a task uses it, naming the task.
    let t = manager(&env.conn)
        .await
        .create_task(dict(vec![
            ("description", v("nightly")),
            ("path", v(env.p("data"))),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", map(&[("bucket", v("b"))])),
        ]))
        .await
        .unwrap();
    let e = c.delete().await.unwrap_err();
    assert_eq!(err_name(&e).0, "InUse");
    assert!(err_name(&e).1.contains("nightly"), "{e}");
    task(&env.conn, &t).await.delete().await.unwrap();
    c.delete().await.unwrap();
    loop {
        let sig = removed.next().await.unwrap();
        if sig.args().unwrap().object_path.as_str() == path.as_str() {
            break;
        }
    }
    let e = credential(&env.conn, &path).await.name().await.unwrap_err();
    assert!(e.to_string().contains("Unknown") || e.to_string().contains("unknown"), "{e}");
    // Ids are never reused.
    let p3 = env.local_credential("again").await;
    assert_eq!(p3.as_str(), "/org/cloudsyncd/CloudSync1/credential/3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_life_cycle_and_restore() {
    let env = Env::start().await;
    env.s3_credential("aws").await;
    let m = manager(&env.conn).await;
    let path = m
        .create_task(dict(vec![
            ("description", v("nightly")),
            ("path", v(env.p("data"))),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("schedule", v("30 2 * * *")),
            ("include", v(vec!["/docs/**"])),
            ("bwlimit", v(vec!["08:00,10M", "18:00,off"])),
            ("encryption", v(true)),
            ("encryption_password", v("crypt-password-0002")),
            ("encryption_salt", v("crypt-salt-0003")),
            ("snapshot", v(true)),
            ("max_delete", v(20u32)),
            (
                "attributes",
                map(&[("bucket", v("backups")), ("folder", v("/nas1/")), ("storage_class", v("STANDARD_IA"))]),
            ),
        ]))
        .await
        .unwrap();
    let t = task(&env.conn, &path).await;
    assert_eq!(t.id().await.unwrap(), 1);
    assert_eq!(t.state().await.unwrap(), "PENDING");
    assert_eq!(t.last_job().await.unwrap().as_str(), "/");
    let next = t.next_run().await.unwrap();
    let now = jiff::Timestamp::now().as_second().cast_unsigned();
    assert!(next > now && next <= now + 86_400 + 3600, "NextRun {next} now {now}");
    let cfg = t.config().await.unwrap();
    assert_eq!(get_str(&cfg, "encryption_password"), "********");
    assert_eq!(get_str(&cfg, "encryption_salt"), "********");
    assert_eq!(get_strs(&cfg, "bwlimit"), ["08:00,10485760", "18:00,off"]);
    assert_eq!(get_strs(&cfg, "include"), ["/docs/**"]);
    assert_eq!(get_str(&cfg, "transfer_mode"), "SYNC");
    assert_eq!(u32::try_from(cfg["transfers"].try_clone().unwrap()).unwrap(), 4, "default transfers");
    assert_eq!(get_str(&cfg, "schedule"), "30 2 * * *");
    let attrs = get_map(&cfg, "attributes");
    assert_eq!(get_str(&attrs, "folder"), "nas1", "slashes dropped");
    assert_eq!(get_str(&attrs, "storage_class"), "STANDARD_IA");

    // Update: keys replace, attributes merge key by key, masked secrets keep their value.
    t.update(dict(vec![
        ("description", v("nightly-2")),
        ("attributes", map(&[("folder", v("nas2"))])),
        ("encryption_password", v("********")),
        ("enabled", v(false)),
    ]))
    .await
    .unwrap();
    let cfg = t.config().await.unwrap();
    assert_eq!(get_str(&cfg, "description"), "nightly-2");
    let attrs = get_map(&cfg, "attributes");
    assert_eq!(get_str(&attrs, "folder"), "nas2");
    assert_eq!(get_str(&attrs, "bucket"), "backups", "merged, not replaced");
    assert_eq!(get_str(&attrs, "storage_class"), "STANDARD_IA");
    assert_eq!(get_str(&cfg, "encryption_password"), "********");
    assert_eq!(t.next_run().await.unwrap(), 0, "disabled: no next run");

    // Restore: a new, disabled, reversed task; keys copied or reset as the contract says.
    std::fs::create_dir_all(env.p("restore-here")).unwrap();
    let rpath = t
        .restore(dict(vec![
            ("description", v("back")),
            ("transfer_mode", v("SYNC")),
            ("path", v(env.p("restore-here"))),
        ]))
        .await
        .unwrap();
    assert_eq!(rpath.as_str(), "/org/cloudsyncd/CloudSync1/task/2");
    let r = task(&env.conn, &rpath).await;
    let rc = r.config().await.unwrap();
    assert_eq!(get_str(&rc, "direction"), "PULL");
    assert_eq!(get_str(&rc, "description"), "back");
    assert_eq!(get_str(&rc, "path"), env.p("restore-here"));
    assert!(!get_bool(&rc, "enabled"));
    assert!(get_bool(&rc, "encryption"));
    assert_eq!(get_str(&rc, "encryption_password"), "********", "copied (masked)");
    assert_eq!(get_str(&rc, "encryption_salt"), "********", "copied (masked)");
    assert_eq!(get_str(&rc, "schedule"), "30 2 * * *");
    assert_eq!(u32::try_from(rc["max_delete"].try_clone().unwrap()).unwrap(), 20);
    assert!(get_strs(&rc, "include").is_empty(), "filters reset");
    assert!(get_strs(&rc, "bwlimit").is_empty(), "bwlimit reset");
    assert!(!get_bool(&rc, "snapshot"), "snapshot reset");
    assert_eq!(get_str(&rc, "ownership"), "inherit");
    assert_eq!(get_str(&get_map(&rc, "attributes"), "folder"), "nas2");
    assert_eq!(r.state().await.unwrap(), "PENDING");
    // MOVE is not a restore mode; the path is required.
    let e = t.restore(dict(vec![("transfer_mode", v("MOVE")), ("path", v(env.p("restore-here")))])).await.unwrap_err();
    assert_eq!(err_name(&e), ("InvalidArgument".into(), "transfer_mode: a restore is SYNC or COPY".into()));
    let e = t.restore(dict(vec![])).await.unwrap_err();
    assert_eq!(err_name(&e), ("InvalidArgument".into(), "path: is required".into()));

    // Delete removes the object.
    r.delete().await.unwrap();
    assert!(r.id().await.is_err());
    // Ids are never reused.
    let p3 = m
        .create_task(dict(vec![
            ("path", v(env.p("data"))),
            ("credentials", v(1u64)),
            ("direction", v("PULL")),
            ("transfer_mode", v("COPY")),
            ("attributes", map(&[("bucket", v("backups"))])),
        ]))
        .await
        .unwrap();
    assert_eq!(p3.as_str(), "/org/cloudsyncd/CloudSync1/task/3");
}

/// Each validation rule: refused with InvalidArgument naming the key, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_rules_refuse_and_change_nothing() {
    let env = Env::start().await;
    env.s3_credential("aws").await; // 1
    env.local_credential("usb").await; // 2
    let m = manager(&env.conn).await;
    let base = |extra: Vec<(&'static str, zbus::zvariant::OwnedValue)>, drop: &[&str]| {
        let mut e = vec![
            ("path", v(env.p("data"))),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("SYNC")),
            ("attributes", map(&[("bucket", v("b"))])),
        ];
        e.retain(|(k, _)| !drop.contains(k) && !extra.iter().any(|(x, _)| x == k));
        e.extend(extra);
        e
    };
    let ok = m.create_task(dict(base(vec![], &[]))).await.unwrap();
    let cases: Vec<(Vec<(&str, zbus::zvariant::OwnedValue)>, &str)> = vec![
        (base(vec![("path", v(env.p("missing")))], &[]), "path: "),
        (base(vec![("path", v(env.p("a-file")))], &[]), "path: "),
        (base(vec![("path", v("relative/dir"))], &[]), "path: must be an absolute path"),
        (base(vec![], &["path"]), "path: is required"),
        (base(vec![("direction", v("PULL")), ("snapshot", v(true))], &[]), "snapshot: "),
        (base(vec![("transfer_mode", v("MOVE")), ("snapshot", v(true))], &[]), "snapshot: "),
        (base(vec![("encryption", v(true))], &[]), "encryption_password: "),
        (base(vec![("bwlimit", v(vec!["08:00,1M", "08:00,2M"]))], &[]), "bwlimit.1: times must be strictly increasing"),
        (base(vec![("bwlimit", v(vec!["10:00,1M", "09:00,off"]))], &[]), "bwlimit.1: "),
        (base(vec![("bwlimit", v(vec!["25:00,1M"]))], &[]), "bwlimit.0: "),
        (base(vec![("bwlimit", v(vec!["08:00,fast"]))], &[]), "bwlimit.0: "),
        (base(vec![("transfers", v(0u32))], &[]), "transfers: "),
        (base(vec![("attributes", map(&[("folder", v("x"))]))], &[]), "attributes.bucket: is required"),
        (base(vec![("credentials", v(99u64))], &[]), "credentials: credential 99 does not exist"),
        (base(vec![("credentials", v(2u64))], &[]), "attributes.bucket: a LOCAL task has no bucket"),
        (base(vec![("colour", v("blue"))], &[]), "colour: unknown key"),
        (base(vec![("transfers", v("4"))], &[]), "transfers: expected type u, got s"),
        (base(vec![("credentials", v(1u32))], &[]), "credentials: expected type t, got u"),
        (base(vec![("enabled", v(1u32))], &[]), "enabled: expected type b, got u"),
        (base(vec![("schedule", v("0 0 * *"))], &[]), "schedule: expected 5 cron fields, got 4"),
        (base(vec![("schedule", v("61 0 * * *"))], &[]), "schedule: minute: 61 is out of range 0-59"),
        (base(vec![("direction", v("SIDEWAYS"))], &[]), "direction: "),
        (base(vec![], &["direction"]), "direction: is required"),
        (base(vec![("transfer_mode", v("MIRROR"))], &[]), "transfer_mode: "),
        (base(vec![("max_delete", v(101u32))], &[]), "max_delete: "),
        (base(vec![("ownership", v("preserve"))], &[]), "ownership: only applies to PULL"),
        (base(vec![("direction", v("PULL")), ("ownership", v("nobody"))], &[]), "ownership: "),
        (base(vec![("include", v(vec![""]))], &[]), "include.0: "),
        (base(vec![("attributes", map(&[("bucket", v("b")), ("folder", v("a/../b"))]))], &[]), "attributes.folder: "),
        (
            base(vec![("attributes", map(&[("bucket", v("b")), ("chunk_size", v(4u64))]))], &[]),
            "attributes.chunk_size: ",
        ),
        (
            base(vec![("attributes", map(&[("bucket", v("b")), ("storage_class", v("COLD"))]))], &[]),
            "attributes.storage_class: ",
        ),
        (
            base(vec![("attributes", map(&[("bucket", v("b")), ("nope", v(true))]))], &[]),
            "attributes.nope: unknown key",
        ),
        (base(vec![("script_timeout", v(0u32))], &[]), "script_timeout: "),
    ];
    let before = managed(&env.conn).await;
    for (config, want) in cases {
        let shown = format!("{:?}", config.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        let e = m.create_task(dict(config)).await.expect_err(&shown);
        let (name, msg) = err_name(&e);
        assert_eq!(name, "InvalidArgument", "{shown}: {msg}");
        assert!(msg.starts_with(want), "{shown}: expected {want:?}, got {msg:?}");
    }
    // A key given twice is refused too (a raw a{sv} with a duplicate).
    let mut dup = base(vec![], &[]);
    dup.push(("transfers", v(2u32)));
    dup.push(("transfers", v(3u32)));
    let e = m.create_task(dict(dup)).await.unwrap_err();
    assert_eq!(err_name(&e), ("InvalidArgument".into(), "transfers: key given more than once".into()));
    assert_eq!(managed(&env.conn).await, before, "a refused CreateTask changed something");

    // Update is validated as a whole; refused updates change nothing.
    let before = managed(&env.conn).await;
    let t = task(&env.conn, &ok).await;
    for (changes, want) in [
        (vec![("snapshot", v(true)), ("transfer_mode", v("MOVE"))], "snapshot: "),
        (vec![("attributes", map(&[("bucket", v(""))]))], "attributes.bucket: "),
        (vec![("credentials", v(2u64))], "attributes.bucket: "),
        (vec![("description", v(7u32))], "description: expected type s"),
        (vec![("bogus", v(true))], "bogus: unknown key"),
    ] {
        let e = t.update(dict(changes)).await.unwrap_err();
        let (name, msg) = err_name(&e);
        assert_eq!(name, "InvalidArgument");
        assert!(msg.starts_with(want), "expected {want:?}, got {msg:?}");
    }
    // RunOnce-only rule lives with jobs; credential rules here.
    for (provider, attrs, want) in [
        ("S3", vec![("access_key_id", v("a"))], "attributes.secret_access_key: is required"),
        (
            "S3",
            vec![("access_key_id", v("a")), ("secret_access_key", v("s")), ("endpoint", v("ftp://x"))],
            "attributes.endpoint: ",
        ),
        (
            "S3",
            vec![("access_key_id", v("a")), ("secret_access_key", v("s")), ("max_upload_parts", v(0u32))],
            "attributes.max_upload_parts: ",
        ),
        ("B2", vec![("account", v("a"))], "attributes.key: is required"),
        ("LOCAL", vec![("root", v(env.p("missing")))], "attributes.root: "),
        ("LOCAL", vec![("root", v("rel"))], "attributes.root: must be an absolute path"),
        ("LOCAL", vec![("root", v(env.p("remote"))), ("x", v(1u32))], "attributes.x: unknown key"),
        ("FTP", vec![], "provider: unknown provider"),
    ] {
        let e = m.create_credential("new", provider, dict(attrs)).await.unwrap_err();
        let (name, msg) = err_name(&e);
        assert_eq!(name, "InvalidArgument");
        assert!(msg.starts_with(want), "expected {want:?}, got {msg:?}");
    }
    let e = m.create_credential("", "LOCAL", dict(vec![("root", v(env.p("remote")))])).await.unwrap_err();
    assert!(err_name(&e).1.starts_with("name: "), "{e}");
    let c = credential(&env.conn, &OwnedObjectPath::try_from("/org/cloudsyncd/CloudSync1/credential/2").unwrap()).await;
    let e = c.update(dict(vec![("name", v("aws"))])).await.unwrap_err();
    assert!(err_name(&e).1.starts_with("name: "), "{e}");
    let e = c.update(dict(vec![("root", v(env.p("a-file")))])).await.unwrap_err();
    assert!(err_name(&e).1.starts_with("attributes.root: "), "{e}");
    let after = managed(&env.conn).await;
    assert!(after.contains("task/1"));
    assert_eq!(after, before, "a refused Update or CreateCredential changed something");
}
