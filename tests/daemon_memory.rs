//! The real daemon gives back the memory of a burst: a `GetManagedObjects` reply for 10,000 kept
//! jobs takes tens of MiB while it is built, and RSS returns near its level before within the
//! daemon's release interval.

mod common;

use common::*;
use std::time::{Duration, Instant};

const JOBS: u64 = 10_000;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_a_big_reply_is_given_back() {
    use cloudsyncd::model::job::{JobRecord, JobState};
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The history of 500 tasks (20 jobs each), written as RunOnce jobs: the daemon serves every
    // stored job as an object (a debug build takes about 5 s to publish them).
    {
        let store = cloudsyncd::store::Store::open(&state).unwrap();
        let mut st = store.load().unwrap();
        for id in 1..=JOBS {
            let mut j = JobRecord::new(id, None, JobState::Success, false);
            j.started_at = 1_750_000_000 + id;
            j.finished_at = j.started_at + 60;
            st.jobs.insert(j);
        }
        st.next.job = JOBS + 1;
        store.save(&st).unwrap();
    }
    let daemon = Daemon::start(&bus, &state).await;
    let pid = daemon.child.id();
    let conn = bus.connect().await;
    let om = object_manager(&conn).await;
    // After start-up and the release that follows it.
    tokio::time::sleep(cloudsyncd::daemon::RELEASE_EVERY / 2).await;
    let before = rss_kib(pid, "VmRSS:");
    for _ in 0..2 {
        let objects = om.get_managed_objects().await.unwrap();
        assert_eq!(
            objects.keys().filter(|p| p.as_str().starts_with("/org/cloudsyncd/CloudSync1/job/")).count(),
            usize::try_from(JOBS).unwrap()
        );
    }
    let peak = rss_kib(pid, "VmHWM:");
    assert!(peak > before + 30 * 1024, "the replies took {} KiB over {before} KiB", peak.saturating_sub(before));
    let t0 = Instant::now();
    let limit = cloudsyncd::daemon::RELEASE_EVERY * 2 + Duration::from_secs(5);
    loop {
        let now = rss_kib(pid, "VmRSS:");
        if now < before + 10 * 1024 {
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "RSS still {now} KiB after {limit:?} (before the replies: {before} KiB, peak {peak} KiB)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
