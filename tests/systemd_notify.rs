//! The sd_notify protocol as a systemd would see it: a NOTIFY_SOCKET listener gets READY=1 only
//! once the name is owned, WATCHDOG=1 at least every WATCHDOG_USEC/2, and STOPPING=1 on SIGTERM.

mod common;

use common::*;
use std::{
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_stopping() {
    let bus = Bus::start();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let usec: u64 = 600_000;
    let state = dir.path().join("state");
    // WATCHDOG_PID must be the daemon's own pid: `exec` keeps the shell's pid.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" --address "$1" --state-dir "$2""#)
        .arg(bin())
        .arg(&bus.address)
        .arg(&state)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", usec.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let recv = |buf: &mut Vec<u8>| -> String {
        let n = sock.recv(buf).expect("no notification from the daemon");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    // The first message is READY=1, and by then the name is owned.
    let first = recv(&mut buf);
    assert!(first.lines().any(|l| l == "READY=1"), "first notification: {first:?}");
    assert!(first.lines().any(|l| l.starts_with("STATUS=")), "{first:?}");
    assert!(dbus.name_has_owner(NAME.try_into().unwrap()).await.unwrap(), "READY=1 before the name was owned");

    // WATCHDOG=1 at least every WATCHDOG_USEC/2 (with a scheduling allowance well under the
    // timeout itself).
    let half = Duration::from_micros(usec / 2);
    let mut last = Instant::now();
    let mut pets = 0;
    while pets < 6 {
        let m = recv(&mut buf);
        if m.lines().any(|l| l == "WATCHDOG=1") {
            let gap = last.elapsed();
            assert!(gap < half + Duration::from_millis(150), "watchdog gap {gap:?} > {half:?}");
            last = Instant::now();
            pets += 1;
        }
    }

    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut stopping = false;
    for _ in 0..20 {
        if recv(&mut buf).lines().any(|l| l == "STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
