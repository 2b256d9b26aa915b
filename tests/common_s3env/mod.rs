//! Test harness for daemon jobs on S3: one server with a bucket (made with a direct client), an optional fault or inspection proxy in front of it, and the real daemon on a private bus holding one S3 credential (object 1) that points at the proxy or the server. Imports the `common` (bus, daemon) and `common_s3` (servers, proxy) harnesses and the crate's S3 client; test files add their own helpers (tasks, runs, seeding) in an `impl S3Env` block of their own.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use cloudsyncd::remote::s3::S3Client;

use crate::{
    common::{Bus, Daemon, manager, s3_attrs},
    common_s3::{Policy, Proxy, Server},
};

/// The server, what stands in front of it, the daemon and its bus, kept alive for the test.
pub struct S3Env {
    pub srv: Server,
    proxy: Option<Proxy>,
    pub bus: Bus,
    pub daemon: Daemon,
    pub conn: zbus::Connection,
    /// The daemon's `state` folder and the local folders asked for (see [`S3EnvBuilder::folders`]).
    pub dir: tempfile::TempDir,
    /// Our client straight to the server (not through the proxy), with the server's key pair.
    pub s3: S3Client,
}

/// What the daemon's credential points at.
enum Front {
    /// The server itself.
    Server,
    /// A [`Proxy`] applying this policy.
    Policy(Policy),
    /// [`Proxy::faults`].
    Faults,
}

/// How to start an [`S3Env`]; made by [`S3Env::on`].
pub struct S3EnvBuilder {
    srv: Server,
    bucket: String,
    front: Front,
    daemon_env: Vec<(&'static str, &'static str)>,
    folders: Vec<&'static str>,
    credential: &'static str,
}

impl S3Env {
    /// On `srv`: by default bucket `bkt`, the daemon reaching the server directly, no extra
    /// environment, a local folder `data` and a credential named `s3`.
    pub fn on(srv: Server) -> S3EnvBuilder {
        S3EnvBuilder {
            srv,
            bucket: "bkt".to_owned(),
            front: Front::Server,
            daemon_env: Vec::new(),
            folders: vec!["data"],
            credential: "s3",
        }
    }

    /// The proxy in front of the server.
    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("this S3Env has no proxy: start it with .policy(..) or .faults()")
    }

    /// The local folder `data`.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl S3EnvBuilder {
    /// The bucket to create instead of `bkt`.
    pub fn bucket(mut self, name: &str) -> Self {
        name.clone_into(&mut self.bucket);
        self
    }

    /// The daemon reaches the server through a [`Proxy`] applying `policy`.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.front = Front::Policy(policy);
        self
    }

    /// The daemon reaches the server through [`Proxy::faults`].
    pub fn faults(mut self) -> Self {
        self.front = Front::Faults;
        self
    }

    /// Environment variables for the daemon.
    pub fn daemon_env(mut self, env: &[(&'static str, &'static str)]) -> Self {
        self.daemon_env = env.to_vec();
        self
    }

    /// The local folders to create under [`S3Env::dir`] instead of `data`.
    pub fn folders(mut self, names: &[&'static str]) -> Self {
        self.folders = names.to_vec();
        self
    }

    /// The name of the daemon's credential instead of `s3`.
    pub fn credential(mut self, name: &'static str) -> Self {
        self.credential = name;
        self
    }

    /// Creates the bucket, starts the proxy, the bus and the daemon, and creates the credential.
    pub async fn start(self) -> S3Env {
        let Self { srv, bucket, front, daemon_env, folders, credential } = self;
        let s3 = srv.client();
        s3.create_bucket(&bucket).await.unwrap();
        let proxy = match front {
            Front::Server => None,
            Front::Policy(policy) => Some(Proxy::start(srv.addr(), policy).await),
            Front::Faults => Some(Proxy::faults(srv.addr()).await),
        };
        let endpoint = proxy.as_ref().map_or_else(|| srv.endpoint(), Proxy::endpoint);
        let bus = Bus::start();
        let dir = tempfile::tempdir().unwrap();
        for d in folders {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let daemon = Daemon::start_with(&bus, &dir.path().join("state"), &daemon_env).await;
        let conn = bus.connect().await;
        let attrs = s3_attrs(srv.access_key, srv.secret_key, &endpoint);
        manager(&conn).await.create_credential(credential, "S3", attrs).await.unwrap();
        S3Env { srv, proxy, bus, daemon, conn, dir, s3 }
    }
}
