//! The one place that runs `zfs` (zrepl's `zfscmd`): `-H` on every subcommand that prints a
//! table, `-p` where the subcommand takes it and zfs-fuse accepts it (`get`; zfs-fuse's `list`
//! refuses `-p`, so lists only ask for names, mount points and strings), a timeout after which the
//! process is killed, argv and duration traced with `tracing`, and the tail of stderr in every
//! error. Imports std, tokio and tracing.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

/// How long one `zfs` command may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of stderr an error keeps (the end of it).
const STDERR_TAIL: usize = 800;

/// Why a `zfs` command failed.
#[derive(Debug, thiserror::Error)]
pub enum ZfsError {
    /// No `zfs` program on this machine.
    #[error("the zfs command is not installed (looked for {0})")]
    Missing(String),
    /// The command exited non-zero.
    #[error("`{argv}` failed (exit code {code}): {stderr}")]
    Failed {
        /// The command line.
        argv: String,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The command ran longer than the timeout and was killed.
    #[error("`{argv}` did not finish within {secs} seconds and was stopped")]
    Timeout {
        /// The command line.
        argv: String,
        /// The timeout.
        secs: u64,
    },
    /// The command could not be run or its output read.
    #[error("`{argv}`: {source}")]
    Io {
        /// The command line.
        argv: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not something we can snapshot, or an answer we do not understand; the message says why.
    #[error("{0}")]
    Refused(String),
}

impl ZfsError {
    /// Whether the command failed because the dataset it names does not exist.
    #[must_use]
    pub fn is_missing_dataset(&self) -> bool {
        matches!(self, Self::Failed { stderr, .. } if stderr.contains("does not exist"))
    }

    /// Whether the command failed because the dataset it would create already exists.
    #[must_use]
    pub fn is_existing_dataset(&self) -> bool {
        matches!(self, Self::Failed { stderr, .. } if stderr.contains("already exists"))
    }

    /// Whether the command failed because something still uses the dataset.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Failed { stderr, .. } if stderr.contains("busy"))
    }
}

/// A `zfs` subcommand; the flags every call of it gets are decided here, nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `zfs list -H` (zfs-fuse refuses `-p`).
    List,
    /// `zfs get -H -p`.
    Get,
    /// `zfs snapshot`.
    Snapshot,
    /// `zfs clone`.
    Clone,
    /// `zfs destroy`.
    Destroy,
    /// `zfs mount`.
    Mount,
}

impl Sub {
    /// The subcommand and the flags that always go with it.
    #[must_use]
    pub fn argv(self) -> &'static [&'static str] {
        match self {
            Self::List => &["list", "-H"],
            Self::Get => &["get", "-H", "-p"],
            Self::Snapshot => &["snapshot"],
            Self::Clone => &["clone"],
            Self::Destroy => &["destroy"],
            Self::Mount => &["mount"],
        }
    }
}

/// The `zfs` program and how long its commands may take.
#[derive(Debug, Clone)]
pub struct Zfs {
    bin: PathBuf,
    timeout: Duration,
}

/// Where `zfs` is looked for when it is not on `PATH` (systemd gives daemons a short one).
const FALLBACKS: [&str; 3] = ["/usr/sbin/zfs", "/sbin/zfs", "/usr/local/sbin/zfs"];

impl Zfs {
    /// `zfs` from `PATH`, else from the usual sbin folders.
    ///
    /// # Errors
    /// [`ZfsError::Missing`] when there is none.
    pub fn system() -> Result<Self, ZfsError> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("zfs")).collect::<Vec<_>>())
            .unwrap_or_default();
        let found = on_path
            .into_iter()
            .chain(FALLBACKS.iter().map(PathBuf::from))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()));
        found.map(Self::at).ok_or_else(|| ZfsError::Missing(format!("PATH and {}", FALLBACKS.join(", "))))
    }

    /// A given program (tests use a fake one).
    #[must_use]
    pub fn at(bin: impl Into<PathBuf>) -> Self {
        Self { bin: bin.into(), timeout: DEFAULT_TIMEOUT }
    }

    /// The same program with another timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program.
    #[must_use]
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs `zfs <sub> <fixed flags> <args>`; returns stdout.
    ///
    /// # Errors
    /// The program cannot be started, exits non-zero (with the stderr tail), or runs longer
    /// than the timeout (it is then killed).
    pub async fn cmd(&self, sub: Sub, args: &[&str]) -> Result<String, ZfsError> {
        let mut argv: Vec<&str> = sub.argv().to_vec();
        argv.extend_from_slice(args);
        let shown = format!("zfs {}", argv.join(" "));
        let span = tracing::debug_span!("zfs", argv = %shown);
        tracing::Instrument::instrument(self.run(argv, shown.clone()), span).await
    }

    async fn run(&self, argv: Vec<&str>, shown: String) -> Result<String, ZfsError> {
        let t0 = Instant::now();
        let child = tokio::process::Command::new(&self.bin)
            .args(&argv)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    ZfsError::Missing(self.bin.display().to_string())
                } else {
                    ZfsError::Io { argv: shown.clone(), source }
                }
            })?;
        // Dropping the future on timeout drops the child, which kills it (kill_on_drop).
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(source)) => return Err(ZfsError::Io { argv: shown, source }),
            Err(_) => {
                tracing::warn!(argv = %shown, secs = self.timeout.as_secs(), "zfs command timed out and was killed");
                return Err(ZfsError::Timeout { argv: shown, secs: self.timeout.as_secs() });
            }
        };
        let elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let code = out.status.code().unwrap_or(-1);
        tracing::debug!(argv = %shown, elapsed_ms, code, "zfs command ended");
        if !out.status.success() {
            return Err(ZfsError::Failed { argv: shown, code, stderr: stderr_tail(&out.stderr) });
        }
        String::from_utf8(out.stdout)
            .map_err(|_| ZfsError::Refused(format!("`{shown}` printed something that is not UTF-8")))
    }
}

/// The last [`STDERR_TAIL`] bytes of `stderr` (cut on a character boundary), on one line.
#[must_use]
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let joined: Vec<&str> = tail.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    format!("{}{}", if start > 0 { "…" } else { "" }, joined.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake(dir: &Path, body: &str) -> Zfs {
        let p = dir.join("zfs");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        Zfs::at(p)
    }

    #[tokio::test]
    async fn fixed_flags_come_first_and_stdout_is_returned() {
        let d = tempfile::tempdir().unwrap();
        let z = fake(d.path(), r#"echo "$@""#);
        assert_eq!(z.cmd(Sub::Get, &["-o", "value", "guid", "p/d"]).await.unwrap(), "get -H -p -o value guid p/d\n");
        assert_eq!(z.cmd(Sub::List, &["-o", "name"]).await.unwrap(), "list -H -o name\n");
        assert_eq!(z.cmd(Sub::Destroy, &["p/d@s"]).await.unwrap(), "destroy p/d@s\n");
    }

    #[tokio::test]
    async fn failure_carries_the_stderr_tail_and_code() {
        let d = tempfile::tempdir().unwrap();
        let z = fake(
            d.path(),
            "i=0; while [ $i -lt 300 ]; do echo \"noise $i\" >&2; i=$((i+1)); done; echo \"cannot open 'p/x': dataset does not exist\" >&2; exit 1",
        );
        let e = z.cmd(Sub::List, &["p/x"]).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("`zfs list -H p/x` failed (exit code 1): …"), "{msg}");
        assert!(msg.ends_with("cannot open 'p/x': dataset does not exist"), "{msg}");
        assert!(msg.len() < 1000, "only the tail is kept: {}", msg.len());
        assert!(e.is_missing_dataset());
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("survived");
        let z =
            fake(d.path(), &format!("sleep 3; touch {}", marker.display())).with_timeout(Duration::from_millis(300));
        let t0 = Instant::now();
        let e = z.cmd(Sub::List, &[]).await.unwrap_err();
        assert!(matches!(e, ZfsError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!marker.exists(), "the timed-out command was not killed");
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let e = Zfs::at("/nonexistent/zfs").cmd(Sub::List, &[]).await.unwrap_err();
        assert!(matches!(e, ZfsError::Missing(_)), "{e}");
    }

    #[test]
    fn stderr_tail_is_short_and_on_one_line() {
        assert_eq!(stderr_tail(b"a\n\n b \n"), "a / b");
        let long = "é".repeat(1000);
        let t = stderr_tail(long.as_bytes());
        assert!(t.starts_with('…') && t.len() <= STDERR_TAIL + 4);
    }
}
