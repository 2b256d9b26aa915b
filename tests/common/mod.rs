//! Test harness: a private dbus-daemon, the real `cloudsyncd` binary, and typed zbus proxies.
#![allow(dead_code, unreachable_pub)]

use cloudsyncd::dbus::convert::ArgDict;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

pub const NAME: &str = "org.cloudsyncd.CloudSync1";
pub const ROOT: &str = "/org/cloudsyncd/CloudSync1";
pub const ERR: &str = "org.cloudsyncd.CloudSync1.Error.";

/// A value for a dictionary argument.
pub fn v<'a, T: Into<Value<'a>>>(t: T) -> OwnedValue {
    OwnedValue::try_from(t.into()).unwrap()
}

/// A nested `a{sv}` value.
pub fn map(entries: &[(&str, OwnedValue)]) -> OwnedValue {
    let m: HashMap<String, OwnedValue> =
        entries.iter().map(|(k, v)| ((*k).to_owned(), v.try_clone().unwrap())).collect();
    v(m)
}

/// Builds an `a{sv}` argument (duplicates kept as given).
pub fn dict(entries: Vec<(&str, OwnedValue)>) -> ArgDict {
    ArgDict(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The attributes of an S3 credential for `endpoint`, region us-east-1.
pub fn s3_attrs(access_key: &str, secret_key: &str, endpoint: &str) -> ArgDict {
    dict(vec![
        ("access_key_id", v(access_key)),
        ("secret_access_key", v(secret_key)),
        ("endpoint", v(endpoint)),
        ("region", v("us-east-1")),
    ])
}

/// A private bus that allows everything: the daemon's own uid check is what is tested.
pub struct Bus {
    pub dir: tempfile::TempDir,
    pub address: String,
    child: Child,
}

impl Bus {
    pub fn start() -> Self {
        Self::start_config(|sock| {
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>"#,
                sock.display()
            )
        })
    }

    /// A private bus configured like Debian's system bus (`/usr/share/dbus-1/system.conf`: deny
    /// every method call and name by default, replies and signals allowed, the bus driver open to
    /// all) that includes the service policy file `policy`, as `system.d/` would.
    pub fn start_system_like(policy: &Path) -> Self {
        let policy = policy.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", policy.display()));
        Self::start_config(|sock| {
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <include>{}</include>
</busconfig>"#,
                sock.display(),
                policy.display()
            )
        })
    }

    /// Starts dbus-daemon on `<tempdir>/bus` with the configuration `conf(socket path)`.
    fn start_config(conf: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::Builder::new().prefix("cloudsyncd-bus").tempdir().unwrap();
        // Other users (uid 65534 in the permission test) must reach the socket.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let sock = dir.path().join("bus");
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf(&sock)).unwrap();
        let conf = conf_path;
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (apt-get install dbus-daemon)");
        // The address is printed once the bus listens.
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon did not start: {line:?}");
        Self { address: format!("unix:path={}", sock.display()), dir, child }
    }

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str()).unwrap().build().await.unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real daemon binary on a bus, with its own state folder and captured stderr.
pub struct Daemon {
    pub child: Child,
    pub state_dir: PathBuf,
    pub stderr_path: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cloudsyncd")
}

impl Daemon {
    /// Starts the daemon and waits until it owns the bus name.
    pub async fn start(bus: &Bus, state_dir: &Path) -> Self {
        Self::start_with(bus, state_dir, &[]).await
    }

    pub async fn start_with(bus: &Bus, state_dir: &Path, env: &[(&str, &str)]) -> Self {
        let d = Self::spawn(bus, state_dir, env);
        d.wait_owned(bus).await;
        d
    }

    /// Starts the daemon without waiting.
    pub fn spawn(bus: &Bus, state_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn_umask(bus, state_dir, env, None)
    }

    /// Starts the daemon with umask `umask` (e.g. the unit's "0077"), and waits for its name.
    pub async fn start_umask(bus: &Bus, state_dir: &Path, umask: &str) -> Self {
        let d = Self::spawn_umask(bus, state_dir, &[], Some(umask));
        d.wait_owned(bus).await;
        d
    }

    fn spawn_umask(bus: &Bus, state_dir: &Path, env: &[(&str, &str)], umask: Option<&str>) -> Self {
        std::fs::create_dir_all(state_dir).unwrap();
        let stderr_path = state_dir.with_extension(format!("stderr.{}", rand_suffix()));
        let err = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match umask {
            None => Command::new(bin()),
            Some(m) => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", &format!("umask {m} && exec \"$0\" \"$@\""), bin()]);
                c
            }
        };
        cmd.args(["--address", &bus.address, "--state-dir"]).arg(state_dir).stderr(err).stdout(Stdio::null());
        cmd.env("CLOUDSYNCD_LOG", "trace").env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self { child: cmd.spawn().unwrap(), state_dir: state_dir.to_owned(), stderr_path }
    }

    pub async fn wait_owned(&self, bus: &Bus) {
        let conn = bus.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let t0 = Instant::now();
        loop {
            if dbus.name_has_owner(NAME.try_into().unwrap()).await.unwrap() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon did not take the bus name; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn term(&mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    format!("{:08x}", u32::from_le_bytes(b))
}

#[zbus::proxy(
    interface = "org.cloudsyncd.CloudSync1.Manager",
    default_service = "org.cloudsyncd.CloudSync1",
    default_path = "/org/cloudsyncd/CloudSync1"
)]
pub trait Manager {
    fn create_credential(&self, name: &str, provider: &str, attributes: ArgDict) -> zbus::Result<OwnedObjectPath>;
    fn create_task(&self, config: ArgDict) -> zbus::Result<OwnedObjectPath>;
    fn run_once(&self, config: ArgDict, options: ArgDict) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn providers(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

#[zbus::proxy(interface = "org.cloudsyncd.CloudSync1.Credential", default_service = "org.cloudsyncd.CloudSync1")]
pub trait Credential {
    fn update(&self, changes: ArgDict) -> zbus::Result<()>;
    fn delete(&self) -> zbus::Result<()>;
    fn verify(&self) -> zbus::Result<(bool, String)>;
    fn list_buckets(&self) -> zbus::Result<Vec<HashMap<String, OwnedValue>>>;
    fn list_directory(&self, location: ArgDict) -> zbus::Result<Vec<HashMap<String, OwnedValue>>>;
    #[zbus(property)]
    fn id(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn provider(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn attributes(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
}

#[zbus::proxy(interface = "org.cloudsyncd.CloudSync1.Task", default_service = "org.cloudsyncd.CloudSync1")]
pub trait Task {
    fn update(&self, changes: ArgDict) -> zbus::Result<()>;
    fn delete(&self) -> zbus::Result<()>;
    fn restore(&self, options: ArgDict) -> zbus::Result<OwnedObjectPath>;
    fn run(&self, options: ArgDict) -> zbus::Result<OwnedObjectPath>;
    fn abort(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn id(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn config(&self) -> zbus::Result<HashMap<String, OwnedValue>>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn last_job(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn next_run(&self) -> zbus::Result<u64>;
}

/// A proxy that reads properties from the daemon every time (no cache to go stale).
macro_rules! uncached {
    ($proxy:ident, $conn:expr, $path:expr) => {
        $proxy::builder($conn)
            .path($path.clone())
            .unwrap()
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap()
    };
}

pub async fn manager(conn: &zbus::Connection) -> ManagerProxy<'static> {
    uncached!(ManagerProxy, conn, OwnedObjectPath::try_from(ROOT).unwrap())
}

pub async fn credential(conn: &zbus::Connection, path: &OwnedObjectPath) -> CredentialProxy<'static> {
    uncached!(CredentialProxy, conn, path)
}

pub async fn task(conn: &zbus::Connection, path: &OwnedObjectPath) -> TaskProxy<'static> {
    uncached!(TaskProxy, conn, path)
}

/// The D-Bus error name of a failed call (`InvalidArgument`, …) and its message.
pub fn err_name(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            (name.as_str().strip_prefix(ERR).unwrap_or(name.as_str()).to_owned(), msg.clone().unwrap_or_default())
        }
        other => (format!("not a method error: {other}"), String::new()),
    }
}

/// The daemon's ObjectManager.
pub async fn object_manager(conn: &zbus::Connection) -> zbus::fdo::ObjectManagerProxy<'static> {
    zbus::fdo::ObjectManagerProxy::builder(conn).destination(NAME).unwrap().path(ROOT).unwrap().build().await.unwrap()
}

/// Everything `GetManagedObjects` returns, for before/after comparisons.
pub async fn managed(conn: &zbus::Connection) -> String {
    let om = object_manager(conn).await;
    let objs = om.get_managed_objects().await.unwrap();
    let mut sorted: Vec<_> = objs
        .into_iter()
        .map(|(p, ifs)| {
            let mut ifs: Vec<_> = ifs
                .into_iter()
                .map(|(i, props)| {
                    let mut props: Vec<_> = props.into_iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    props.sort();
                    format!("{i}:{props:?}")
                })
                .collect();
            ifs.sort();
            format!("{p}:{ifs:?}")
        })
        .collect();
    sorted.sort();
    sorted.join("\n")
}

/// A string property of a dictionary.
pub fn get_str(d: &HashMap<String, OwnedValue>, k: &str) -> String {
    String::try_from(d.get(k).unwrap_or_else(|| panic!("no key {k}")).try_clone().unwrap()).unwrap()
}

pub fn get_bool(d: &HashMap<String, OwnedValue>, k: &str) -> bool {
    bool::try_from(d.get(k).unwrap_or_else(|| panic!("no key {k}")).try_clone().unwrap()).unwrap()
}

pub fn get_strs(d: &HashMap<String, OwnedValue>, k: &str) -> Vec<String> {
    Vec::<String>::try_from(d.get(k).unwrap_or_else(|| panic!("no key {k}")).try_clone().unwrap()).unwrap()
}

pub fn get_map(d: &HashMap<String, OwnedValue>, k: &str) -> HashMap<String, OwnedValue> {
    HashMap::<String, OwnedValue>::try_from(d.get(k).unwrap_or_else(|| panic!("no key {k}")).try_clone().unwrap())
        .unwrap()
}

#[zbus::proxy(interface = "org.cloudsyncd.CloudSync1.Job", default_service = "org.cloudsyncd.CloudSync1")]
pub trait Job {
    fn read_log(&self, offset: u64, max: u32) -> zbus::Result<(String, u64)>;
    fn abort(&self) -> zbus::Result<bool>;
    #[zbus(signal)]
    fn finished(&self, state: String, error: String) -> zbus::Result<()>;
    #[zbus(property)]
    fn task(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn dry_run(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn percent(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn description(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn bytes_done(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn bytes_total(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn files_done(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn files_total(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn started_at(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn finished_at(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn error(&self) -> zbus::Result<String>;
}

#[zbus::proxy(interface = "org.cloudsyncd.CloudSync1.Task", default_service = "org.cloudsyncd.CloudSync1")]
pub trait TaskRun {
    fn run(&self, options: ArgDict) -> zbus::Result<OwnedObjectPath>;
    fn abort(&self) -> zbus::Result<bool>;
}

#[zbus::proxy(
    interface = "org.cloudsyncd.CloudSync1.Manager",
    default_service = "org.cloudsyncd.CloudSync1",
    default_path = "/org/cloudsyncd/CloudSync1"
)]
pub trait ManagerRun {
    fn run_once(&self, config: ArgDict, options: ArgDict) -> zbus::Result<OwnedObjectPath>;
}

pub async fn job(conn: &zbus::Connection, path: &OwnedObjectPath) -> JobProxy<'static> {
    uncached!(JobProxy, conn, path)
}

/// The task proxy, named for the tests that run jobs.
pub async fn task_run(conn: &zbus::Connection, path: &OwnedObjectPath) -> TaskProxy<'static> {
    task(conn, path).await
}

/// Waits until the job has ended; returns its state and error.
pub async fn wait_job(conn: &zbus::Connection, path: &OwnedObjectPath, limit: Duration) -> (String, String) {
    let j = job(conn, path).await;
    let t0 = Instant::now();
    loop {
        let s = j.state().await.unwrap();
        if matches!(s.as_str(), "SUCCESS" | "FAILED" | "ABORTED") {
            return (s, j.error().await.unwrap());
        }
        assert!(t0.elapsed() < limit, "job {path} still {s} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole log of a job, read in small pieces through ReadLog.
pub async fn job_log(conn: &zbus::Connection, path: &OwnedObjectPath) -> String {
    let j = job(conn, path).await;
    let mut out = String::new();
    let mut off = 0;
    loop {
        let (text, next) = j.read_log(off, 4096).await.unwrap();
        if text.is_empty() {
            return out;
        }
        out.push_str(&text);
        off = next;
    }
}

/// Fails the test, saying what to do, unless this runs as root (CI does).
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (CI runs as root): run it with scripts/test as root"
    );
}

/// A file-backed zfs-fuse pool of its own (a unique name), destroyed with everything in it on drop.
/// The tests of one binary hold their pools one at a time: zfs-fuse wedges under concurrent pool
/// and dataset creation.
pub struct Pool {
    pub name: String,
    pub mnt: PathBuf,
    _dir: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static ZFS_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_ok(prog: &str, args: &[&str]) -> String {
    // A wedged zfs-fuse must fail the test, not hang the suite.
    let out = Command::new("timeout")
        .arg("120")
        .arg(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} cannot run ({e}): run scripts/test, which installs zfs-fuse"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Pool {
    pub fn create() -> Self {
        require_root();
        let turn = ZFS_TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let alive =
            Command::new("timeout").args(["20", "zpool", "list"]).output().map(|o| o.status.success()).unwrap_or(false);
        assert!(
            alive,
            "zfs-fuse is not installed or its daemon is not running: run scripts/test (it installs zfs-fuse \
             and starts the daemon)"
        );
        let dir = tempfile::Builder::new().prefix("cloudsyncd-pool").tempdir().unwrap();
        let img = dir.path().join("vdev.img");
        std::fs::File::create(&img).unwrap().set_len(256 << 20).unwrap();
        let mnt = dir.path().join("mnt");
        let name = format!("csdtest{}", rand_suffix());
        // cachefile=none: a test pool never outlives the daemon in zfs-fuse's pool cache, even when
        // its image is gone before the pool could be destroyed.
        run_ok("zpool", &["create", "-o", "cachefile=none", "-m", mnt.to_str().unwrap(), &name, img.to_str().unwrap()]);
        Self { name, mnt, _dir: dir, _turn: turn }
    }

    /// `zfs ARGS`, which must succeed; its stdout.
    pub fn zfs(&self, args: &[&str]) -> String {
        run_ok("zfs", args)
    }

    /// Creates `<pool>/<child>` and returns its mount point.
    pub fn dataset(&self, child: &str) -> PathBuf {
        self.zfs(&["create", &format!("{}/{child}", self.name)]);
        self.mnt.join(child)
    }

    /// Every dataset, clone and snapshot in the pool.
    pub fn all(&self) -> Vec<String> {
        self.zfs(&["list", "-H", "-o", "name", "-t", "all", "-r", &self.name]).lines().map(str::to_owned).collect()
    }

    /// Snapshots and clones made by cloudsyncd (our name prefix).
    pub fn ours(&self) -> Vec<String> {
        self.all().into_iter().filter(|n| n.contains("cloud_sync-")).collect()
    }

    /// The pool's command history (`zpool history`): every zfs command ever run on it.
    pub fn history(&self) -> String {
        run_ok("zpool", &["history", &self.name])
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // zfs-fuse refuses while a file system of the pool is briefly busy; try a few times.
        for _ in 0..20 {
            match Command::new("timeout").args(["60", "zpool", "destroy", "-f", &self.name]).output() {
                Ok(o) if o.status.success() => return,
                Ok(o) => eprintln!("zpool destroy {}: {}", self.name, String::from_utf8_lossy(&o.stderr).trim()),
                Err(e) => eprintln!("zpool destroy {}: {e}", self.name),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
