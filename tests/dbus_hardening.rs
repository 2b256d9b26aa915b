//! Hostile or heavy use of the bus API: oversized and malformed `a{sv}` values are refused with
//! InvalidArgument and change nothing; 1,000 concurrent property reads during a running job are
//! all answered while the watchdog keeps being petted.

mod common;

use common::*;
use std::{
    collections::HashMap,
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};
use zbus::zvariant::OwnedValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_dictionaries_are_refused() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let _d = Daemon::start(&bus, &dir.path().join("state")).await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("c", "LOCAL", dict(vec![("root", v(data.as_str()))])).await.unwrap();
    let base = || {
        vec![
            ("path", v(data.as_str())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("COPY")),
        ]
    };
    let before = managed(&conn).await;
    let many: Vec<String> = (0..100_000).map(|i| format!("key{i:06}")).collect();
    let mut huge = base();
    huge.extend(many.iter().map(|k| (k.as_str(), v(true))));
    let long = "x".repeat(10 << 20);
    let wrong_nested: HashMap<String, String> = [("folder".to_owned(), "f".to_owned())].into();
    let list: Vec<String> = (0..5000).map(|i| format!("*.{i}")).collect();
    let cases: Vec<(Vec<(&str, OwnedValue)>, &str)> = vec![
        (huge, "key000000: unknown key"),
        ([base(), vec![("description", v(long.as_str()))]].concat(), "description: is too long"),
        ([vec![("path", v(format!("/{long}")))], base()[1..].to_vec()].concat(), "path: is too long"),
        ([base(), vec![("attributes", v(wrong_nested))]].concat(), "attributes: expected type a{sv}, got a{ss}"),
        ([base(), vec![("include", v(list))]].concat(), "include: has 5000 items"),
        ([base(), vec![("transfers", v(-1i32))]].concat(), "transfers: expected type u, got i"),
        ([base(), vec![("pre_script", v("x".repeat(2 << 20)))]].concat(), "pre_script: is too long"),
    ];
    for (cfg, want) in cases {
        let e = m.create_task(dict(cfg)).await.expect_err(want);
        let (name, msg) = err_name(&e);
        assert_eq!(name, "InvalidArgument", "{msg}");
        assert!(msg.starts_with(want), "expected {want:?}, got {:?}", msg.chars().take(200).collect::<String>());
        assert!(msg.len() < 4096, "the error echoes the oversized value ({} bytes)", msg.len());
    }
    assert_eq!(managed(&conn).await, before, "a refused call changed something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_reads_during_a_job_keep_the_daemon_responsive() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("remote")).unwrap();
    std::fs::write(dir.path().join("data/big"), vec![1u8; 8 << 20]).unwrap();
    let _d = Daemon::start_with(
        &bus,
        &dir.path().join("state"),
        &[("NOTIFY_SOCKET", notify.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")],
    )
    .await;
    let conn = bus.connect().await;
    let m = manager(&conn).await;
    m.create_credential("c", "LOCAL", dict(vec![("root", v(dir.path().join("remote").to_str().unwrap()))]))
        .await
        .unwrap();
    let t = m
        .create_task(dict(vec![
            ("path", v(dir.path().join("data").to_str().unwrap())),
            ("credentials", v(1u64)),
            ("direction", v("PUSH")),
            ("transfer_mode", v("COPY")),
            ("bwlimit", v(vec!["00:00,1M"])),
        ]))
        .await
        .unwrap();
    let j = task_run(&conn, &t).await.run(dict(vec![])).await.unwrap();
    // Watch the watchdog in the background while the reads run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut last = Instant::now();
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf)
                    && String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "WATCHDOG=1")
                {
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                }
            }
            worst.max(last.elapsed())
        })
    };
    let t0 = Instant::now();
    // Ten clients with 100 calls in flight each (the bus caps pending replies per connection).
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(bus.connect().await);
    }
    let mut reads = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let (conn, j) = (clients[i % 10].clone(), j.clone());
        reads.spawn(async move {
            let p = job(&conn, &j).await;
            if i % 2 == 0 { p.state().await.map(|_| ()) } else { p.description().await.map(|_| ()) }
        });
    }
    let results: Vec<zbus::Result<()>> = reads.join_all().await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let worst = watcher.join().unwrap();
    assert!(results.iter().all(Result::is_ok), "{:?}", results.iter().find(|r| r.is_err()));
    assert!(took < Duration::from_secs(30), "1,000 reads took {took:?}");
    assert!(worst < Duration::from_millis(1000), "the watchdog went {worst:?} without a pet (WATCHDOG_USEC = 1 s)");
    assert_eq!(job(&conn, &j).await.state().await.unwrap(), "RUNNING", "the job kept running");
    assert!(task_run(&conn, &t).await.abort().await.unwrap());
}
