//! One run of a task: pre-script, listing both sides, plan, execute, post-script, summary.
//! Snapshot and ownership steps plug in here in their own issues.

use super::{
    entry::{Entry, Kind},
    exec::{ExecOptions, JobIo, Report, execute},
    filter::Filter,
    joblog::{JobLog, esc},
    limit::Limiter,
    plan::{Mode, Plan, PlanOptions},
    progress::{Progress, human_bytes},
};
use crate::{
    model::{Credential, CredentialAttrs, Direction, TaskConfig, TransferMode},
    remote::{
        ListOptions, Listed, Remote, RootState,
        local::LocalFs,
        s3::{S3Client, S3Config, S3Remote},
    },
    scripts::{self, Phase},
};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The job.
    pub job: u64,
    /// The task, `None` for `RunOnce`.
    pub task: Option<u64>,
    /// The task's configuration as it was when the job started.
    pub config: TaskConfig,
    /// Its credential.
    pub credential: Credential,
    /// Plan and log only; no change, no script.
    pub dry_run: bool,
    /// A private folder for script files.
    pub work_dir: PathBuf,
    /// The local time zone (bandwidth timetable).
    pub tz: jiff::tz::TimeZone,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything done.
    Success,
    /// Failed, with the reason for the user.
    Failed(String),
    /// Aborted.
    Aborted,
}

/// The remote side of a task as a tree.
///
/// # Errors
/// The provider is not part of this build yet.
pub fn remote_for(cred: &Credential, config: &TaskConfig, job: u64) -> Result<Arc<dyn Remote>, String> {
    match &cred.attrs {
        CredentialAttrs::Local(a) => {
            let root = if config.attributes.folder.is_empty() {
                PathBuf::from(&a.root)
            } else {
                PathBuf::from(&a.root).join(&config.attributes.folder)
            };
            Ok(Arc::new(LocalFs::new(root, job, false)))
        }
        CredentialAttrs::S3(a) => s3_remote(S3Config::from_s3_attrs(a), config, job),
        CredentialAttrs::B2(a) => s3_remote(S3Config::from_b2_attrs(a), config, job),
    }
}

/// An S3 (or B2) bucket folder; the task's region, when set, wins over the credential's.
fn s3_remote(mut cfg: S3Config, config: &TaskConfig, job: u64) -> Result<Arc<dyn Remote>, String> {
    let a = &config.attributes;
    if !a.region.is_empty() {
        cfg.region.clone_from(&a.region);
    }
    let client = S3Client::new(cfg).map_err(|e| e.to_string())?;
    let chunk = a.chunk_size.saturating_mul(1 << 20);
    Ok(Arc::new(S3Remote::new(client, &a.bucket, &a.folder, chunk, &a.storage_class, &a.encryption, job)))
}

/// The script environment: `CLOUD_SYNC_*` (booleans 0/1), never a secret.
#[must_use]
pub fn script_env(spec: &RunSpec) -> Vec<(String, String)> {
    let c = &spec.config;
    let b = |v: bool| if v { "1" } else { "0" }.to_owned();
    vec![
        ("CLOUD_SYNC_ID".into(), spec.task.map_or_else(|| "onetime".into(), |t| t.to_string())),
        ("CLOUD_SYNC_DESCRIPTION".into(), c.description.clone()),
        ("CLOUD_SYNC_DIRECTION".into(), c.direction.as_str().into()),
        ("CLOUD_SYNC_TRANSFER_MODE".into(), c.transfer_mode.as_str().into()),
        ("CLOUD_SYNC_ENCRYPTION".into(), b(c.encryption)),
        ("CLOUD_SYNC_FILENAME_ENCRYPTION".into(), b(c.filename_encryption)),
        ("CLOUD_SYNC_SNAPSHOT".into(), b(c.snapshot)),
        ("CLOUD_SYNC_PATH".into(), c.path.clone()),
        ("CLOUD_SYNC_BUCKET".into(), c.attributes.bucket.clone()),
        ("CLOUD_SYNC_FOLDER".into(), c.attributes.folder.clone()),
        ("CLOUD_SYNC_TYPE".into(), spec.credential.provider().as_str().into()),
    ]
}

/// Feeds a listing into the plan as entries; skipped items and errors go to `side`.
struct Feed {
    rx: mpsc::Receiver<Listed>,
    side: std::sync::mpsc::Sender<(bool, Listed)>,
    is_src: bool,
}

impl Iterator for Feed {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        loop {
            match self.rx.blocking_recv()? {
                Listed::Entry(e) => return Some(e),
                other => {
                    let _ = self.side.send((self.is_src, other));
                }
            }
        }
    }
}

/// Runs one job to its end.
#[allow(clippy::too_many_lines)] // the steps of a run, in order
pub async fn run(spec: RunSpec, progress: Arc<Progress>, log: Arc<JobLog>, cancel: CancellationToken) -> Outcome {
    let c = &spec.config;
    let remote = match remote_for(&spec.credential, c, spec.job) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    let local: Arc<dyn Remote> = Arc::new(LocalFs::new(&c.path, spec.job, c.follow_symlinks));
    let (src, dst) = match c.direction {
        Direction::Push => (local, remote),
        Direction::Pull => (remote, local),
    };
    log.line(&format!(
        "{} {}{}: {} -> {} (credential {:?}, {} transfers)",
        c.direction,
        c.transfer_mode,
        if spec.dry_run { " (dry run)" } else { "" },
        esc(&src.describe()),
        esc(&dst.describe()),
        spec.credential.name,
        c.transfers
    ));

    let env = script_env(&spec);
    let timeout = Duration::from_secs(u64::from(c.script_timeout));
    if !c.pre_script.is_empty() {
        if spec.dry_run {
            log.line("[Pre-script] not run: dry run");
        } else if let Err(e) =
            scripts::run(Phase::Pre, &c.pre_script, &env, timeout, &cancel, &log, &spec.work_dir).await
        {
            return if cancel.is_cancelled() { Outcome::Aborted } else { Outcome::Failed(e.to_string()) };
        }
    }

    match src.root_state().await {
        Ok(RootState::Present) => {}
        Ok(RootState::Missing) => {
            let what = if c.direction == Direction::Push { "source folder" } else { "remote folder" };
            return Outcome::Failed(format!("the {what} {} does not exist; nothing was changed", esc(&src.describe())));
        }
        Err(e) => return Outcome::Failed(format!("cannot read the source: {e}")),
    }
    let dst_missing = match dst.root_state().await {
        Ok(s) => s == RootState::Missing,
        Err(e) => return Outcome::Failed(format!("cannot use the destination: {e}")),
    };
    if dst_missing && !spec.dry_run {
        if c.direction == Direction::Pull {
            return Outcome::Failed(format!("the destination folder {} does not exist", esc(&dst.describe())));
        }
        // PUSH creates the remote folder when missing.
        if let Err(e) = tokio::fs::create_dir_all(dst.describe()).await {
            return Outcome::Failed(format!("cannot create the remote folder {}: {e}", esc(&dst.describe())));
        }
    }

    let filter = match Filter::new(&c.include, &c.exclude) {
        Ok(f) => Arc::new(f),
        Err(e) => return Outcome::Failed(format!("filter: {e}")),
    };
    let (stx, srx) = mpsc::channel(1024);
    let (dtx, drx) = mpsc::channel(1024);
    let opts = ListOptions { filter, follow_symlinks: c.follow_symlinks };
    let src_list = {
        let (src, opts) = (src.clone(), opts.clone());
        tokio::spawn(async move { src.list(opts, stx).await })
    };
    let dst_list = {
        let (dst, opts) = (dst.clone(), ListOptions { follow_symlinks: false, ..opts });
        tokio::spawn(async move {
            if dst_missing {
                drop(dtx);
                return Ok(());
            }
            dst.list(opts, dtx).await
        })
    };
    let (side_tx, side_rx) = std::sync::mpsc::channel();
    let (op_tx, op_rx) = mpsc::channel(1024);
    let mode = match c.transfer_mode {
        TransferMode::Sync => Mode::Sync,
        TransferMode::Copy => Mode::Copy,
        TransferMode::Move => Mode::Move,
    };
    let plan_opts = PlanOptions {
        mode,
        modify_window_ns: src.mtime_precision_ns().max(dst.mtime_precision_ns()),
        create_empty_dirs: c.create_empty_src_dirs,
    };
    let planner = tokio::task::spawn_blocking(move || {
        let s = Feed { rx: srx, side: side_tx.clone(), is_src: true };
        let d = Feed { rx: drx, side: side_tx, is_src: false };
        for op in Plan::new(s, d, plan_opts) {
            let keep = match &op {
                super::plan::Op::DeleteDir { .. } | super::plan::Op::MakeDir { .. } => true,
                super::plan::Op::Transfer { src, .. } => src.kind == Kind::File,
                _ => true,
            };
            if keep && op_tx.blocking_send(op).is_err() {
                break;
            }
        }
    });
    let exec_opts = ExecOptions {
        mode,
        transfers: usize::try_from(c.transfers).unwrap_or(4),
        dry_run: spec.dry_run,
        max_delete: if mode == Mode::Sync { c.max_delete } else { 0 },
        empty_source_guard: mode == Mode::Sync,
        src_name: esc(&src.describe()),
        dst_name: esc(&dst.describe()),
    };
    // Listing problems must be known before deletions: they come through the side channel and
    // are folded into the report as errors by the executor's caller below, so the executor is
    // told about them through `listing_errors` before it reaches the deletions.
    let limiter = Arc::new(Limiter::new(c.bwlimit.clone(), spec.tz.clone()));
    let listing_errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let side_log = {
        let (log, errs) = (log.clone(), listing_errors.clone());
        tokio::task::spawn_blocking(move || {
            for (is_src, item) in side_rx {
                match item {
                    Listed::Skipped { path, reason } => log.line(&format!("Skipped {path}: {reason}")),
                    Listed::Error { path, reason } => {
                        let side = if is_src { "source" } else { "destination" };
                        let e = format!("{side} {path}: {reason}");
                        log.line(&format!("ERROR {e}"));
                        errs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e);
                    }
                    Listed::Entry(_) => {}
                }
            }
        })
    };
    let gate = GatedOps::new(op_rx, planner, side_log, listing_errors.clone());
    let io = JobIo { limiter, progress: progress.clone(), log: log.clone(), cancel: cancel.clone() };
    let mut report = execute(src.clone(), dst.clone(), gate.rx, exec_opts, io).await;
    let mut listing_failed = Vec::new();
    for (name, h) in [("source", src_list), ("destination", dst_list)] {
        if let Ok(Err(e)) = h.await {
            listing_failed.push(format!("cannot list the {name}: {e}"));
        }
    }
    report.errors.extend(listing_failed);
    finish(&spec, report, &progress, &log, &cancel, &env, timeout).await
}

/// The op stream the executor sees: the plan's ops, and — before the plan's end is passed on —
/// the listing errors, turned into a `Conflict` each, so that the executor counts them as errors
/// before it decides on deletions.
struct GatedOps {
    rx: mpsc::Receiver<super::plan::Op>,
}

impl GatedOps {
    fn new(
        mut plan_rx: mpsc::Receiver<super::plan::Op>,
        planner: tokio::task::JoinHandle<()>,
        side: tokio::task::JoinHandle<()>,
        errors: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(op) = plan_rx.recv().await {
                if tx.send(op).await.is_err() {
                    return;
                }
            }
            let _ = planner.await;
            let _ = side.await;
            let errs = std::mem::take(&mut *errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for e in errs {
                let _ =
                    tx.send(super::plan::Op::Conflict { path: String::new(), reason: format!("listing: {e}") }).await;
            }
        });
        Self { rx }
    }
}

async fn finish(
    spec: &RunSpec,
    report: Report,
    progress: &Progress,
    log: &Arc<JobLog>,
    cancel: &CancellationToken,
    env: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let snap = progress.snapshot();
    log.line(&format!(
        "Summary: {} copied ({}), {} unchanged, {} deleted{}, {} error(s)",
        report.transferred,
        human_bytes(snap.bytes_done),
        report.same,
        report.deleted,
        if spec.config.transfer_mode == TransferMode::Move {
            format!(", {} source file(s) moved", report.moved)
        } else {
            String::new()
        },
        report.errors.len()
    ));
    if report.aborted || cancel.is_cancelled() {
        log.line("Aborted");
        return Outcome::Aborted;
    }
    let mut problems = Vec::new();
    if !report.errors.is_empty() {
        let shown: Vec<&str> = report.errors.iter().take(5).map(String::as_str).collect();
        problems.push(format!(
            "{} file(s) failed: {}{}",
            report.errors.len(),
            shown.join("; "),
            if report.errors.len() > 5 { "; …" } else { "" }
        ));
    }
    if let Some(why) = &report.delete_refusal {
        let shown: Vec<String> = report.skipped_deletes.iter().take(5).map(|p| esc(p)).collect();
        problems.push(format!(
            "deleted nothing because {why}; {} deletion(s) skipped: {}{}",
            report.skipped_deletes.len(),
            shown.join(", "),
            if report.skipped_deletes.len() > 5 { ", …" } else { "" }
        ));
    }
    if !problems.is_empty() {
        let e = problems.join(". ");
        log.line(&format!("FAILED: {e}"));
        return Outcome::Failed(e);
    }
    let c = &spec.config;
    if !c.post_script.is_empty() {
        if spec.dry_run {
            log.line("[Post-script] not run: dry run");
        } else if let Err(e) =
            scripts::run(Phase::Post, &c.post_script, env, timeout, cancel, log, &spec.work_dir).await
        {
            return if cancel.is_cancelled() { Outcome::Aborted } else { Outcome::Failed(e.to_string()) };
        }
    }
    log.line("Finished successfully");
    Outcome::Success
}
