//! Executes a plan: transfers in parallel (`transfers` at a time) through the bandwidth limiter,
//! deletions of a SYNC only after every transfer succeeded (and within `max_delete`), MOVE's
//! source deletions only after each copy is verified, and a report of what happened. Without a
//! bandwidth limit, files read from a local tree stream into a bucket part by part
//! ([`Remote::upload_from`]) and large objects of a bucket come in parallel ranges written in place
//! ([`Remote::download_to`] into [`crate::remote::Upload::positional`]).

use super::{
    entry::{Entry, Kind},
    joblog::{JobLog, esc},
    limit::Limiter,
    plan::{Mode, Op},
    progress::{Progress, human_bytes},
    seen::Seen,
};
use crate::remote::{OnStored, Remote, RemoteError, Written};
use std::sync::{Arc, Mutex};
use tokio::{io::AsyncReadExt, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// How to execute.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// SYNC, COPY or MOVE.
    pub mode: Mode,
    /// Parallel transfers.
    pub transfers: usize,
    /// Plan and log only.
    pub dry_run: bool,
    /// SYNC: most deletions as a percent of the destination's files; 0 = no limit.
    pub max_delete: u32,
    /// Refuse to delete when the source turned out empty.
    pub empty_source_guard: bool,
    /// How the source and destination are named in messages.
    pub src_name: String,
    /// The destination's name.
    pub dst_name: String,
    /// Read each source file's metadata and hand it to the destination (a PUSH always keeps
    /// owner, mode and ACLs; a PULL only for `ownership=preserve`).
    pub want_meta: bool,
    /// Where uploads to a bucket store are noted for the next run's listing.
    pub seen: Option<Seen>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Files copied.
    pub transferred: u64,
    /// Files already identical.
    pub same: u64,
    /// Destination files deleted.
    pub deleted: u64,
    /// Source files deleted by MOVE.
    pub moved: u64,
    /// Files in the source listing.
    pub src_files: u64,
    /// Files in the destination listing.
    pub dst_files: u64,
    /// Errors, each naming its path.
    pub errors: Vec<String>,
    /// Deletions not done because of errors or a guard.
    pub skipped_deletes: Vec<String>,
    /// Why the deletions were skipped, when they were.
    pub delete_refusal: Option<String>,
    /// The run was aborted.
    pub aborted: bool,
}

/// What a running job shares with its transfers.
#[derive(Debug, Clone)]
pub struct JobIo {
    /// The bandwidth limiter.
    pub limiter: Arc<Limiter>,
    /// Progress counters.
    pub progress: Arc<Progress>,
    /// The job log.
    pub log: Arc<JobLog>,
    /// Set by Abort.
    pub cancel: CancellationToken,
}

#[derive(Debug)]
enum TransferError {
    Aborted,
    Failed(String),
}

fn fail(e: &RemoteError) -> TransferError {
    TransferError::Failed(e.to_string())
}

/// Copies one file, counting bytes into `progress`, through `limiter`, until done or `cancel`.
async fn copy_one(
    src: &dyn Remote,
    dst: &dyn Remote,
    entry: &Entry,
    want_meta: bool,
    io: (&Limiter, &Arc<Progress>, &CancellationToken),
) -> Result<Option<Written>, TransferError> {
    let (limiter, progress, cancel) = io;
    if dst.streams_uploads() && limiter.unlimited() {
        // Bucket stores read each part from the file itself (memory stays flat).
        if let Some(source) = src.reopenable(entry).await.map_err(|e| fail(&e))? {
            let meta = if want_meta { src.read_meta(&entry.path).await.map_err(|e| fail(&e))? } else { None };
            let p = progress.clone();
            let stored: OnStored = Arc::new(move |n| Progress::add(&p.bytes_done, n));
            return tokio::select! {
                () = cancel.cancelled() => Err(TransferError::Aborted),
                r = dst.upload_from(entry, meta.as_ref(), source, stored) => r.map_err(|e| fail(&e)),
            };
        }
    }
    if src.ranged_download(entry.size) && limiter.unlimited() {
        // Large objects come in several ranges at once, written where they belong.
        let meta = if want_meta { src.read_meta(&entry.path).await.map_err(|e| fail(&e))? } else { None };
        let mut up = dst.create(&entry.path, entry.size, entry.mtime).await.map_err(|e| fail(&e))?;
        match up.positional().await {
            Ok(Some(sink)) => {
                if let Some(m) = &meta {
                    up.set_meta(m);
                }
                let p = progress.clone();
                let stored: OnStored = Arc::new(move |n| Progress::add(&p.bytes_done, n));
                let res = tokio::select! {
                    () = cancel.cancelled() => Err(TransferError::Aborted),
                    r = src.download_to(entry, sink, stored) => r.map_err(|e| fail(&e)),
                };
                if let Err(e) = res {
                    up.abort().await;
                    return Err(e);
                }
                if cancel.is_cancelled() {
                    up.abort().await;
                    return Err(TransferError::Aborted);
                }
                return up.finish().await.map_err(|e| fail(&e));
            }
            Ok(None) => up.abort().await,
            Err(e) => {
                up.abort().await;
                return Err(fail(&e));
            }
        }
    }
    let mut rd = src.open(&entry.path).await.map_err(|e| fail(&e))?;
    let meta = if want_meta { src.read_meta(&entry.path).await.map_err(|e| fail(&e))? } else { None };
    let mut up = dst.create(&entry.path, entry.size, entry.mtime).await.map_err(|e| fail(&e))?;
    if let Some(m) = &meta {
        up.set_meta(m);
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut done: u64 = 0;
    loop {
        let n = tokio::select! {
            () = cancel.cancelled() => { up.abort().await; return Err(TransferError::Aborted) }
            r = rd.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => { up.abort().await; return Err(TransferError::Failed(format!("{}: read failed: {e}", esc(&entry.path)))) }
            },
        };
        if n == 0 {
            break;
        }
        tokio::select! {
            () = cancel.cancelled() => { up.abort().await; return Err(TransferError::Aborted) }
            () = limiter.take(n) => {}
        }
        if let Err(e) = up.write(&buf[..n]).await {
            up.abort().await;
            return Err(fail(&e));
        }
        done += n as u64;
        Progress::add(&progress.bytes_done, n as u64);
    }
    if done != entry.size {
        up.abort().await;
        return Err(TransferError::Failed(format!(
            "{}: changed while it was copied ({done} bytes read, {} listed); not copied",
            esc(&entry.path),
            entry.size
        )));
    }
    if cancel.is_cancelled() {
        up.abort().await;
        return Err(TransferError::Aborted);
    }
    up.finish().await.map_err(|e| fail(&e))
}

/// Runs `ops` to the end (or until `cancel`), then the deferred deletions.
#[allow(clippy::too_many_lines)] // the whole life of one execution reads best in one place
pub async fn execute(
    src: Arc<dyn Remote>,
    dst: Arc<dyn Remote>,
    mut ops: mpsc::Receiver<Op>,
    opts: ExecOptions,
    job: JobIo,
) -> Report {
    let JobIo { limiter, progress, log, cancel } = job;
    let report = Arc::new(Mutex::new(Report::default()));
    let rep = |f: &dyn Fn(&mut Report)| f(&mut report.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.transfers.max(1)));
    let mut tasks = JoinSet::new();
    let mut delete_files: Vec<Entry> = Vec::new();
    let mut delete_dirs: Vec<String> = Vec::new();
    let verb = if opts.dry_run { "Would copy" } else { "Copied" };

    while let Some(op) = tokio::select! { () = cancel.cancelled() => None, op = ops.recv() => op } {
        match op {
            Op::Transfer { src: entry, replaces } => {
                rep(&|r| {
                    r.src_files += 1;
                    r.dst_files += u64::from(replaces.is_some());
                });
                Progress::add(&progress.files_total, 1);
                Progress::add(&progress.bytes_total, entry.size);
                let how = if replaces.is_some() { "replaced" } else { "new" };
                if opts.dry_run {
                    log.line(&format!("{verb} ({how}) {} ({})", esc(&entry.path), human_bytes(entry.size)));
                    rep(&|r| r.transferred += 1);
                    continue;
                }
                let permit = tokio::select! {
                    () = cancel.cancelled() => break,
                    p = sem.clone().acquire_owned() => p.expect("semaphore never closes"),
                };
                // Finished transfers are reaped as we go: a JoinSet keeps each task until it is
                // joined, and memory must not grow with the number of files.
                while tasks.try_join_next().is_some() {}
                let (src, dst, limiter, progress, log, cancel, report) = (
                    src.clone(),
                    dst.clone(),
                    limiter.clone(),
                    progress.clone(),
                    log.clone(),
                    cancel.clone(),
                    report.clone(),
                );
                let (mode, want_meta, seen) = (opts.mode, opts.want_meta, opts.seen.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let res = copy_one(&*src, &*dst, &entry, want_meta, (&limiter, &progress, &cancel)).await;
                    let copied = {
                        let mut r = report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        match res {
                            Ok(written) => {
                                if let (Some(seen), Some(w)) = (&seen, &written) {
                                    seen.uploaded(&entry, w);
                                }
                                Progress::add(&progress.files_done, 1);
                                r.transferred += 1;
                                log.line(&format!("Copied ({how}) {} ({})", esc(&entry.path), human_bytes(entry.size)));
                                true
                            }
                            Err(TransferError::Aborted) => {
                                r.aborted = true;
                                false
                            }
                            Err(TransferError::Failed(e)) => {
                                log.line(&format!("ERROR {e}"));
                                r.errors.push(e);
                                false
                            }
                        }
                    };
                    if copied && mode == Mode::Move {
                        move_source(&*src, &*dst, &entry, &log, &report).await;
                    }
                });
            }
            Op::Same { src: entry, .. } => {
                rep(&|r| {
                    r.same += 1;
                    r.src_files += 1;
                    r.dst_files += 1;
                });
                if opts.mode == Mode::Move {
                    if opts.dry_run {
                        log.line(&format!("Would delete source {} (already at the destination)", esc(&entry.path)));
                    } else {
                        move_source(&*src, &*dst, &entry, &log, &report).await;
                    }
                }
            }
            Op::MakeDir { path } => {
                if opts.dry_run {
                    log.line(&format!("Would create folder {}", esc(&path)));
                } else if dst.has_dirs() {
                    match dst.make_dir(&path).await {
                        Ok(()) => log.line(&format!("Created folder {}", esc(&path))),
                        Err(e) => {
                            log.line(&format!("ERROR {e}"));
                            rep(&|r| r.errors.push(e.to_string()));
                        }
                    }
                } else {
                    log.line(&format!("Empty folder {} not created: bucket storage has no folders", esc(&path)));
                }
            }
            Op::DeleteFile { dst: entry } => {
                rep(&|r| r.dst_files += 1);
                delete_files.push(entry);
            }
            Op::DeleteDir { path } => delete_dirs.push(path),
            Op::Conflict { path, reason } => {
                let e = if path.is_empty() { reason } else { format!("{}: {reason}", esc(&path)) };
                log.line(&format!("ERROR {e}"));
                rep(&|r| r.errors.push(e.clone()));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    if cancel.is_cancelled() {
        rep(&|r| r.aborted = true);
    }

    // Deletions, only after everything else went well.
    let mut r =
        Arc::try_unwrap(report).map_or_else(|a| std::mem::take(&mut *a.lock().unwrap()), |m| m.into_inner().unwrap());
    if delete_files.is_empty() && delete_dirs.is_empty() {
        return r;
    }
    let refusal = if r.aborted {
        Some("the job was aborted".to_owned())
    } else if !r.errors.is_empty() {
        Some(format!("{} error(s) happened", r.errors.len()))
    } else if opts.empty_source_guard && r.src_files == 0 && r.dst_files > 0 {
        Some(format!(
            "the source {} is empty while the destination {} holds {} file(s) (is the dataset mounted?)",
            opts.src_name, opts.dst_name, r.dst_files
        ))
    } else if opts.max_delete > 0 && (delete_files.len() as u64) * 100 > u64::from(opts.max_delete) * r.dst_files {
        Some(format!(
            "it would delete {} of the destination's {} files, more than max_delete ({}%)",
            delete_files.len(),
            r.dst_files,
            opts.max_delete
        ))
    } else {
        None
    };
    if let Some(why) = refusal {
        log.line(&format!("Not deleting {} file(s) at the destination because {why}", delete_files.len()));
        for e in &delete_files {
            log.line(&format!("Not deleted: {}", esc(&e.path)));
        }
        r.skipped_deletes = delete_files.into_iter().map(|e| e.path).collect();
        r.delete_refusal = Some(why);
        return r;
    }
    for e in delete_files {
        if cancel.is_cancelled() {
            r.aborted = true;
            r.skipped_deletes.push(e.path);
            continue;
        }
        if opts.dry_run {
            log.line(&format!("Would delete {}", esc(&e.path)));
            r.deleted += 1;
            continue;
        }
        match dst.delete(&e.path).await {
            Ok(()) => {
                log.line(&format!("Deleted {}", esc(&e.path)));
                r.deleted += 1;
            }
            Err(err) => {
                log.line(&format!("ERROR {err}"));
                r.errors.push(err.to_string());
            }
        }
    }
    // Folders deepest first, and only when empty.
    delete_dirs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for d in delete_dirs {
        if opts.dry_run {
            log.line(&format!("Would remove folder {}", esc(&d)));
            continue;
        }
        if dst.has_dirs() {
            match dst.remove_dir(&d).await {
                Ok(true) => log.line(&format!("Removed folder {}", esc(&d))),
                Ok(false) => log.line(&format!("Folder {} kept: not empty", esc(&d))),
                Err(err) => log.line(&format!("ERROR {err}")),
            }
        }
    }
    r
}

/// MOVE: deletes the source file once the destination holds the same size.
async fn move_source(src: &dyn Remote, dst: &dyn Remote, entry: &Entry, log: &JobLog, report: &Mutex<Report>) {
    let verified = match dst.stat(&entry.path).await {
        Ok(Some(d)) => d.kind == Kind::File && d.size == entry.size,
        _ => false,
    };
    let note = |f: &dyn Fn(&mut Report)| f(&mut report.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    if !verified {
        let e = format!("{}: copy could not be verified; the source was kept", esc(&entry.path));
        log.line(&format!("ERROR {e}"));
        note(&|r| r.errors.push(e.clone()));
        return;
    }
    match src.delete(&entry.path).await {
        Ok(()) => {
            log.line(&format!("Deleted source {}", esc(&entry.path)));
            note(&|r| r.moved += 1);
        }
        Err(err) => {
            log.line(&format!("ERROR {err}"));
            note(&|r| r.errors.push(err.to_string()));
        }
    }
}
