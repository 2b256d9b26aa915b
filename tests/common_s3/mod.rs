//! Test harness for the S3 client: s3s-fs, moto and Garage servers on free loopback ports with fresh data dirs (killed on drop), rclone configured by env vars, a fault proxy (resets, 503 SlowDown, bodies cut, shortened, stalled or corrupted, replies rewritten) and a TLS-terminating proxy with a throwaway CA made by openssl. May import the crate's `remote::s3` API, std, tokio, rustls/tokio-rustls and tempfile.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cloudsyncd::remote::s3::{Credentials, RetryPolicy, S3Client, S3Config};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener as TokioListener,
};

pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "testsecret";
/// Garage wants `GK` + 24 hex digits and a 64-hex secret.
pub const GARAGE_KEY_ID: &str = "GK31c2f218a2e44f485b94239e";
pub const GARAGE_SECRET: &str = "b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d38d1f3bd4d6fda";

/// `cargo install` puts binaries here; scripts/test puts it first on PATH too.
fn cargo_bin(name: &str) -> Option<PathBuf> {
    let in_path =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()));
    in_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = Path::new(&home).join(".cargo/bin").join(name);
        p.is_file().then_some(p)
    })
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `port` answers an HTTP request with anything.
fn wait_http(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before answering:\n{log}");
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok() {
                let mut buf = [0u8; 16];
                if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "{what} did not answer on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A server process on loopback with its own temp dir; killed on drop.
pub struct Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The key pair it accepts.
    pub access_key: &'static str,
    pub secret_key: &'static str,
    child: Child,
}

impl Server {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// s3s-fs 0.14.1 verifying SigV4 with `testkey`/`testsecret`.
    pub fn s3s_fs() -> Self {
        Self::s3s_fs_keys(ACCESS_KEY, SECRET_KEY)
    }

    /// s3s-fs 0.14.1 verifying SigV4 with this key pair.
    pub fn s3s_fs_keys(access_key: &str, secret_key: &str) -> Self {
        let bin = cargo_bin("s3s-fs").unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed: run scripts/test, which installs it with \
                 `cargo install s3s-fs --version 0.14.1 --features binary --locked`"
            )
        });
        let dir = tempfile::Builder::new().prefix("s3s-fs").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let log = dir.path().join("server.log");
        let port = free_port();
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("server.err")).unwrap())
            .spawn()
            .expect("start s3s-fs");
        wait_http(port, &mut child, "s3s-fs", &log);
        Self { port, dir, access_key: ACCESS_KEY, secret_key: SECRET_KEY, child }
    }

    /// moto's S3 server (no auth checks).
    pub fn moto() -> Self {
        let dir = tempfile::Builder::new().prefix("moto").tempdir().unwrap();
        let log = dir.path().join("server.log");
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("server.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 -m moto.server ({e}): run scripts/test"));
        wait_http(port, &mut child, "moto (python3 -m moto.server; pip install 'moto[server]==5.2.1')", &log);
        Self { port, dir, access_key: ACCESS_KEY, secret_key: SECRET_KEY, child }
    }

    /// Garage 2.5.0, a one-node cluster (lmdb, replication factor 1) with the key
    /// [`GARAGE_KEY_ID`]/[`GARAGE_SECRET`] allowed to create buckets; region `us-east-1`.
    pub fn garage() -> Self {
        let bin = cargo_bin("garage").unwrap_or_else(|| {
            panic!(
                "garage is not installed: run scripts/test, which installs it with `cargo install garage \
                 --version 2.5.0 --locked --no-default-features --features lmdb,bundled-libs`"
            )
        });
        let dir = tempfile::Builder::new().prefix("garage").tempdir().unwrap();
        let d = dir.path();
        let (port, rpc, admin) = (free_port(), free_port(), free_port());
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let conf = d.join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
                 metadata_fsync = false\ndata_fsync = false\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n[s3_api]\n\
                 s3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{port}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{token}\"\n",
                meta = d.join("meta").display(),
                data = d.join("data").display(),
                secret = hex(&secret),
                token = hex(&secret[..16]),
            ),
        )
        .unwrap();
        let log = d.join("server.log");
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.join("server.err")).unwrap())
            .spawn()
            .expect("start garage");
        let garage = |args: &[&str]| Command::new(&bin).arg("-c").arg(&conf).args(args).output().expect("run garage");
        // `node id` answers before the RPC is up; `status` does not.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "garage exited with {status}: {}",
                    std::fs::read_to_string(d.join("server.err")).unwrap_or_default()
                );
            }
            if garage(&["status"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "garage did not answer `garage status` within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let ok = |args: &[&str]| {
            let out = garage(args);
            assert!(
                out.status.success(),
                "garage {args:?}: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let node = ok(&["node", "id", "-q"]);
        let node = node.split('@').next().unwrap().to_owned();
        ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        ok(&["layout", "apply", "--version", "1"]);
        ok(&["key", "import", "--yes", "-n", "ci", GARAGE_KEY_ID, GARAGE_SECRET]);
        ok(&["key", "allow", "--create-bucket", GARAGE_KEY_ID]);
        wait_http(port, &mut child, "garage", &log);
        Self { port, dir, access_key: GARAGE_KEY_ID, secret_key: GARAGE_SECRET, child }
    }

    /// Our client with this server's key pair.
    pub fn client(&self) -> S3Client {
        self.client_via(&self.endpoint())
    }

    /// Our client with this server's key pair, through `endpoint` (a proxy).
    pub fn client_via(&self, endpoint: &str) -> S3Client {
        let mut cfg = test_config(endpoint, self.secret_key);
        cfg.credentials = Credentials::new(self.access_key, self.secret_key);
        S3Client::new(cfg).unwrap()
    }

    /// Debian's rclone on this server with its key pair (see [`rclone_with`]).
    pub fn rclone(&self, args: &[&str]) -> Output {
        rclone_with(
            &self.endpoint(),
            &[
                ("RCLONE_CONFIG_S_ACCESS_KEY_ID", self.access_key),
                ("RCLONE_CONFIG_S_SECRET_ACCESS_KEY", self.secret_key),
            ],
            args,
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries fast enough for tests, but as many as a flaky network needs.
pub fn test_config(endpoint: &str, secret: &str) -> S3Config {
    let mut cfg = S3Config::new(endpoint, "us-east-1", Credentials::new(ACCESS_KEY, secret));
    cfg.retry =
        RetryPolicy { max_attempts: 10, base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(400) };
    cfg.connect_timeout = Duration::from_secs(5);
    cfg.read_timeout = Duration::from_secs(30);
    cfg
}

pub fn client(endpoint: &str) -> S3Client {
    client_with(endpoint, SECRET_KEY)
}

/// A client signing with `secret` (and [`ACCESS_KEY`]).
pub fn client_with(endpoint: &str, secret: &str) -> S3Client {
    S3Client::new(test_config(endpoint, secret)).unwrap()
}

/// Runs Debian's rclone against `endpoint` with remote `s:` set by env vars
/// (AWS_CA_BUNDLE unset: rclone 1.60 fails every call with it; times in UTC).
/// `--low-level-retries 1`: rclone HEADs the path it is given, and s3s-fs
/// answers 500 when that path is a "folder" of existing keys, which rclone
/// would otherwise retry for 85-105 s before carrying on.
pub fn rclone(endpoint: &str, args: &[&str]) -> Output {
    rclone_with(endpoint, &[], args)
}

/// [`rclone`] with more environment (another remote, such as a crypt one over `s:`).
pub fn rclone_with(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let bin = cargo_bin("rclone")
        .unwrap_or_else(|| panic!("rclone is not installed: run scripts/test (apt-get install rclone)"));
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .args(["--low-level-retries", "1"])
        .env_remove("AWS_CA_BUNDLE")
        .env("TZ", "UTC")
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_S_TYPE", "s3")
        .env("RCLONE_CONFIG_S_PROVIDER", "Other")
        .env("RCLONE_CONFIG_S_ENV_AUTH", "false")
        .env("RCLONE_CONFIG_S_ACCESS_KEY_ID", ACCESS_KEY)
        .env("RCLONE_CONFIG_S_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("RCLONE_CONFIG_S_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_S_REGION", "us-east-1")
        // Last, so that the caller's environment wins (another key pair).
        .envs(env.iter().copied())
        .output()
        .expect("run rclone");
    eprintln!("rclone {args:?}: {} in {:.1} s", out.status, started.elapsed().as_secs_f32());
    out
}

/// Random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).unwrap();
    v
}

/// Reads a whole stream.
pub async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    v
}

/// Counters of what a [`Proxy`] did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub resets: AtomicU64,
    pub answered: AtomicU64,
    pub forwarded: AtomicU64,
    pub truncated: AtomicU64,
    pub stalled: AtomicU64,
    pub rewritten: AtomicU64,
    /// Bodies with a flipped byte (requests or responses).
    pub corrupted: AtomicU64,
}

impl ProxyStats {
    /// (resets, requests answered by the proxy itself, requests forwarded).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.resets.load(Ordering::SeqCst),
            self.answered.load(Ordering::SeqCst),
            self.forwarded.load(Ordering::SeqCst),
        )
    }
}

/// What a [`Proxy`] does with one request.
pub enum Action {
    /// Reset the connection (the request head arrived, the body may not have).
    Reset,
    /// Answer with this complete HTTP response instead of the server.
    Respond(String),
    /// Pass it to the server.
    Forward,
    /// Pass it to the server, then reset the connection after this many
    /// bytes of the response (a body cut short).
    Truncate(usize),
    /// Pass it to the server, then close the connection cleanly (FIN, no
    /// reset) after this many bytes of the response: a body shorter than its
    /// `Content-Length`.
    CutClean(usize),
    /// Pass it to the server, then send its response with the body cut to
    /// this many bytes and `Content-Length` saying so: a server that lies
    /// about the object, which no transport error reveals.
    ShortBody(usize),
    /// Pass it to the server and send this many bytes of its response, then
    /// nothing for this long (longer than a client's read timeout: the
    /// connection is then dropped without the rest), then the rest.
    Stall(usize, Duration),
    /// Pass it to the server and send its response with the body replaced
    /// by what this makes of it (`Content-Length` fixed).
    Rewrite(Box<dyn FnOnce(Vec<u8>) -> Vec<u8> + Send>),
    /// Pass the head and only this many bytes of the request body to the
    /// server, then reset both connections: an upload cut short on its way.
    CutRequest(usize),
    /// Pass it to the server with one byte of its body flipped (the middle
    /// one); headers, and so `Content-MD5` and the signed payload hash, stay.
    CorruptRequest,
    /// Pass it to the server and flip one byte (the middle one) of the
    /// response body on its way back.
    CorruptResponse,
}

/// Decides per connection number and request head (lower-cased).
pub type Policy = Arc<dyn Fn(u64, &str) -> Action + Send + Sync>;

/// A loopback HTTP proxy in front of a server that carries one request per
/// connection (it forwards with `Connection: close`) and lets a [`Policy`]
/// reset or answer requests.
pub struct Proxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

/// An S3 error response.
pub fn error_response(status: &str, code: &str, extra_headers: &str, extra_xml: &str) -> String {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test \
         proxy</Message>{extra_xml}<RequestId>PROXY</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n{extra_headers}\
         Connection: close\r\n\r\n{xml}",
        xml.len()
    )
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, policy: Policy) -> Self {
        let listener = TokioListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(ProxyStats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                let n = s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, policy) = (s.clone(), policy.clone());
                tokio::spawn(async move {
                    let _ = handle_conn(conn, n, upstream, &s, &*policy).await;
                });
            }
        });
        Self { port, stats, task }
    }

    /// Every third connection fails: a GET's response is cut after 100 KiB,
    /// any other request is reset once its head arrived; one in five of the
    /// other connections is answered `503 SlowDown`; the rest are forwarded.
    /// No request (method and target) fails more than twice in a row, so a
    /// client retrying three times always gets through: the faults are
    /// frequent but the test cannot be flaky.
    pub async fn faults(upstream: SocketAddr) -> Self {
        let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        Self::start(
            upstream,
            Arc::new(move |n, head| {
                let line = head.lines().next().unwrap_or_default().to_owned();
                let mut failures = failures.lock().unwrap();
                let count = failures.entry(line.clone()).or_default();
                let action = match n {
                    _ if *count >= 2 => Action::Forward,
                    n if n % 3 == 2 && line.starts_with("get ") => Action::Truncate(100 << 10),
                    n if n % 3 == 2 => Action::Reset,
                    n if n % 5 == 1 => Action::Respond(error_response("503 Service Unavailable", "SlowDown", "", "")),
                    _ => Action::Forward,
                };
                *count = if matches!(action, Action::Forward) { 0 } else { *count + 1 };
                action
            }),
        )
        .await
    }

    /// A bucket living in `region`: requests signed for another region get
    /// AWS's `301 PermanentRedirect` with `x-amz-bucket-region`.
    pub async fn region(upstream: SocketAddr, region: &'static str) -> Self {
        Self::start(
            upstream,
            Arc::new(move |_, head| {
                if head.contains(&format!("/{region}/s3/aws4_request")) {
                    Action::Forward
                } else {
                    Action::Respond(error_response(
                        "301 Moved Permanently",
                        "PermanentRedirect",
                        &format!("x-amz-bucket-region: {region}\r\n"),
                        "",
                    ))
                }
            }),
        )
        .await
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request head (up to the blank line) and whatever body bytes came with it.
async fn read_head(conn: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the rest of a `Content-Length` body.
async fn read_body(conn: &mut (impl AsyncRead + Unpin), head: &str, mut body: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut chunk = [0u8; 65536];
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

async fn handle_conn(
    mut conn: tokio::net::TcpStream,
    n: u64,
    upstream: SocketAddr,
    stats: &ProxyStats,
    policy: &(dyn Fn(u64, &str) -> Action + Send + Sync),
) -> std::io::Result<()> {
    let (head, early) = read_head(&mut conn).await?;
    let lower = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let action = policy(n, &lower);
    match action {
        Action::Reset => {
            conn.set_zero_linger()?;
            stats.resets.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
        Action::Respond(resp) => {
            let _ = read_body(&mut conn, &lower, early).await?;
            stats.answered.fetch_add(1, Ordering::SeqCst);
            conn.write_all(resp.as_bytes()).await?;
            conn.shutdown().await?;
        }
        Action::CutRequest(n) => {
            let body = read_body(&mut conn, &lower, early).await?;
            let mut up = tokio::net::TcpStream::connect(upstream).await?;
            up.write_all(&head).await?;
            up.write_all(&body[..n.min(body.len())]).await?;
            up.set_zero_linger()?;
            drop(up);
            conn.set_zero_linger()?;
            stats.resets.fetch_add(1, Ordering::SeqCst);
        }
        Action::CutClean(_) | Action::ShortBody(_) | Action::Stall(..) | Action::Rewrite(_) => {
            let body = read_body(&mut conn, &lower, early).await?;
            let raw = forward_whole(&head, &body, upstream).await?;
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
            let (resp_head, resp_body) = raw.split_at(split);
            match action {
                Action::CutClean(n) => {
                    conn.write_all(&raw[..n.min(raw.len())]).await?;
                    conn.shutdown().await?;
                    stats.truncated.fetch_add(1, Ordering::SeqCst);
                }
                Action::ShortBody(n) => {
                    let body = dechunk(resp_head, resp_body);
                    let cut = &body[..n.min(body.len())];
                    conn.write_all(&with_length(resp_head, cut.len())).await?;
                    conn.write_all(cut).await?;
                    conn.shutdown().await?;
                    stats.truncated.fetch_add(1, Ordering::SeqCst);
                }
                Action::Stall(n, pause) => {
                    let n = n.min(raw.len());
                    conn.write_all(&raw[..n]).await?;
                    conn.flush().await?;
                    stats.stalled.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                    conn.write_all(&raw[n..]).await?;
                    conn.shutdown().await?;
                }
                Action::Rewrite(f) => {
                    let body = f(dechunk(resp_head, resp_body));
                    conn.write_all(&with_length(resp_head, body.len())).await?;
                    conn.write_all(&body).await?;
                    conn.shutdown().await?;
                    stats.rewritten.fetch_add(1, Ordering::SeqCst);
                }
                _ => unreachable!(),
            }
        }
        Action::Forward | Action::Truncate(_) | Action::CorruptRequest | Action::CorruptResponse => {
            let cut = match action {
                Action::Truncate(n) => Some(n),
                _ => None,
            };
            let mut body = read_body(&mut conn, &lower, early).await?;
            if matches!(action, Action::CorruptRequest) && !body.is_empty() {
                let i = body.len() / 2;
                body[i] ^= 0x01;
                stats.corrupted.fetch_add(1, Ordering::SeqCst);
            }
            let text = String::from_utf8_lossy(&head);
            let mut rewritten = String::new();
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                if !line.to_ascii_lowercase().starts_with("connection:") {
                    rewritten.push_str(line);
                    rewritten.push_str("\r\n");
                }
            }
            rewritten.push_str("Connection: close\r\n\r\n");
            let mut up = tokio::net::TcpStream::connect(upstream).await?;
            up.write_all(rewritten.as_bytes()).await?;
            up.write_all(&body).await?;
            if let Some(cut) = cut {
                let mut sent = vec![0u8; cut];
                let n = up.read_exact(&mut sent).await.map_or(0, |_| cut);
                conn.write_all(&sent[..n]).await?;
                conn.set_zero_linger()?;
                stats.truncated.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            if matches!(action, Action::CorruptResponse) {
                let mut resp = Vec::new();
                up.read_to_end(&mut resp).await?;
                if let Some(h) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
                    let body_len = resp.len() - (h + 4);
                    if body_len > 0 {
                        resp[h + 4 + body_len / 2] ^= 0x01;
                        stats.corrupted.fetch_add(1, Ordering::SeqCst);
                    }
                }
                conn.write_all(&resp).await?;
                conn.shutdown().await?;
                stats.forwarded.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            tokio::io::copy(&mut up, &mut conn).await?;
            conn.shutdown().await?;
            stats.forwarded.fetch_add(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// Sends a request to `upstream` with `Connection: close` and returns its whole response.
async fn forward_whole(head: &[u8], body: &[u8], upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let text = String::from_utf8_lossy(head);
    let mut rewritten = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut up = tokio::net::TcpStream::connect(upstream).await?;
    up.write_all(rewritten.as_bytes()).await?;
    up.write_all(body).await?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).await?;
    Ok(raw)
}

/// The body of a response, its chunked transfer coding undone.
fn dechunk(head: &[u8], body: &[u8]) -> Vec<u8> {
    let chunked = String::from_utf8_lossy(head).to_ascii_lowercase().contains("transfer-encoding: chunked");
    if !chunked {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&rest[..i]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// A response head with `Content-Length: len` instead of its length or transfer coding.
fn with_length(head: &[u8], len: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("content-length:") && !lower.starts_with("transfer-encoding:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    out.into_bytes()
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it, made with
/// the openssl command.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn make() -> Self {
        let dir = tempfile::Builder::new().prefix("pki").tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .unwrap_or_else(|e| panic!("openssl is needed for the TLS test ({e}): run scripts/test"));
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=cloudsyncd test CA"],
        ]
        .concat());
        run(&[&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]].concat());
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Self { dir }
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("leaf.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("leaf.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
    }
}

/// A TLS terminator in front of a plain-http server.
pub struct TlsProxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(pki: &TestPki, upstream: SocketAddr) -> Self {
        let acceptor = pki.acceptor();
        let listener = TokioListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(conn).await else { return };
                    let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Self { port, task }
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// rel path → (content, mtime ns) of the files of a tree.
pub type Tree = std::collections::BTreeMap<String, (Vec<u8>, i128)>;

/// Writes `tree` under `root` with its mtimes.
pub fn write_tree(root: &Path, tree: &Tree) {
    for (rel, (data, mtime)) in tree {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(*mtime).unwrap());
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
    }
}

/// Files under `root` (folders left out).
pub fn local_tree(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            use std::os::unix::fs::MetadataExt as _;
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                let ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                out.insert(rel, (std::fs::read(&p).unwrap(), ns));
            }
        }
    }
    let mut out = Tree::new();
    walk(root, root, &mut out);
    out
}

/// The count of `op` in a job log's `Requests:` line (0 when not named).
pub fn requests(log: &str, op: &str) -> u64 {
    let line = log.lines().find(|l| l.contains("Requests: ")).unwrap_or_else(|| panic!("no Requests line:\n{log}"));
    line.split("Requests: ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .into_iter()
        .flat_map(|list| list.split(", "))
        .find_map(|kv| kv.strip_prefix(op).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}
