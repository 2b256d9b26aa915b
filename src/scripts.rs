//! Pre- and post-scripts: the one place that runs them. Runs as root through `/bin/sh` (or the
//! script's own `#!` interpreter), in a clean environment (`PATH` plus `CLOUD_SYNC_*`, never a
//! secret), in its own process group, with a timeout; output lines go to the job log prefixed
//! `[Pre-script]`/`[Post-script]`. Imports std, tokio, rustix and `engine::joblog`.

use crate::engine::joblog::{JobLog, esc};
use std::{os::unix::fs::OpenOptionsExt, path::Path, process::Stdio, sync::Arc, time::Duration};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the transfer.
    Pre,
    /// After a successful transfer.
    Post,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Pre => "Pre-script",
            Self::Post => "Post-script",
        }
    }
}

/// Why a script did not succeed; the message is the job's error.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Non-zero exit.
    #[error("{0} failed with exit code {1}")]
    Exit(&'static str, i32),
    /// Killed by a signal.
    #[error("{0} was killed by signal {1}")]
    Signal(&'static str, i32),
    /// Ran longer than the timeout.
    #[error("{0} did not finish within {1} seconds and was stopped")]
    Timeout(&'static str, u64),
    /// The job was aborted while it ran.
    #[error("{0} was stopped because the job was aborted")]
    Aborted(&'static str),
    /// It could not be started.
    #[error("{0} could not be started: {1}")]
    Spawn(&'static str, std::io::Error),
}

/// The `PATH` scripts get.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `text` as the `phase` script of a job in `work_dir` (a private folder), with `env`.
///
/// # Errors
/// Non-zero exit, signal, timeout, abort, or a failure to start; the process group is killed
/// whenever the script does not end by itself.
pub async fn run(
    phase: Phase,
    text: &str,
    env: &[(String, String)],
    timeout: Duration,
    cancel: &CancellationToken,
    log: &Arc<JobLog>,
    work_dir: &Path,
) -> Result<(), ScriptError> {
    let label = phase.label();
    let spawn_err = |e| ScriptError::Spawn(label, e);
    std::fs::create_dir_all(work_dir).map_err(spawn_err)?;
    let file = work_dir.join(format!("{}-{}.sh", label.to_lowercase(), std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o700)
            .open(&file)
            .map_err(spawn_err)?;
        f.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let mut cmd = if text.starts_with("#!") {
        tokio::process::Command::new(&file)
    } else {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg(&file);
        c
    };
    cmd.env_clear()
        .env("PATH", SCRIPT_PATH)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    log.line(&format!("[{label}] started"));
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let pid = child.id();
    let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let log = log.clone();
        tokio::spawn(async move {
            if let Some(r) = r {
                let mut lines = BufReader::new(r).split(b'\n');
                while let Ok(Some(l)) = lines.next_segment().await {
                    log.line(&format!("[{label}] {}", esc(&String::from_utf8_lossy(&l))));
                }
            }
        })
    };
    let out = pump(child.stdout.take().map(|r| Box::new(r) as _));
    let err = pump(child.stderr.take().map(|r| Box::new(r) as _));
    let kill_group = || {
        if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(i32::try_from(p).ok()?)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    };
    let result = tokio::select! {
        s = child.wait() => match s {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => Err(ScriptError::Exit(label, c)),
                    (None, Some(sig)) => Err(ScriptError::Signal(label, sig)),
                    _ => Err(ScriptError::Exit(label, -1)),
                }
            }
            Err(e) => Err(spawn_err(e)),
        },
        () = tokio::time::sleep(timeout) => { kill_group(); Err(ScriptError::Timeout(label, timeout.as_secs())) }
        () = cancel.cancelled() => { kill_group(); Err(ScriptError::Aborted(label)) }
    };
    // Children of the script that still hold its output open are stopped with it.
    kill_group();
    let _ = child.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    let _ = std::fs::remove_file(&file);
    match &result {
        Ok(()) => log.line(&format!("[{label}] finished")),
        Err(e) => log.line(&format!("[{label}] {e}")),
    }
    result
}
