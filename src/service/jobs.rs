//! Jobs: one running and one waiting per task, `RunOnce` jobs, abort, the job history kept across
//! restarts, job logs, and the cron scheduler. Part of the service core.

use super::{Event, SResult, Service, ServiceError, not_found};
use crate::{
    engine::{
        joblog::{self, JobLog},
        progress::{Progress, Snapshot},
        run::{self, Outcome, RunSpec},
    },
    model::{
        Credential, Entries, JobRecord, JobState, Origin, TaskConfig, ValidationError,
        fields::Reader,
        job::{INTERRUPTED, KEEP_JOBS},
    },
    schedule::Schedule,
};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

/// The running part of a job.
#[derive(Debug)]
pub(super) struct Live {
    progress: Arc<Progress>,
    cancel: CancellationToken,
}

/// A job as the bus shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// The stored record (final counters for ended jobs).
    pub record: JobRecord,
    /// Live counters while it runs.
    pub live: Option<Snapshot>,
}

impl JobView {
    /// Counters: live while running, else the final ones.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.live.unwrap_or(Snapshot {
            bytes_done: self.record.bytes_done,
            bytes_total: self.record.bytes_total,
            files_done: self.record.files_done,
            files_total: self.record.files_total,
            speed: 0,
            eta: 0,
        })
    }

    /// 0..100 by bytes; 100 once SUCCESS.
    #[must_use]
    pub fn percent(&self) -> f64 {
        if self.record.state == JobState::Success { 100.0 } else { self.snapshot().percent() }
    }

    /// The progress sentence.
    #[must_use]
    pub fn description(&self) -> String {
        match self.record.state {
            JobState::Waiting => "Waiting for the running job of this task".to_owned(),
            JobState::Running if self.live.is_some_and(|s| s.files_total == 0) => "Listing".to_owned(),
            _ => self.snapshot().description(),
        }
    }
}

fn now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

fn parse_run_options(options: Entries) -> SResult<bool> {
    let mut r = Reader::new("", options)?;
    let dry_run = r.bool("dry_run")?.unwrap_or(false);
    r.finish()?;
    Ok(dry_run)
}

impl Service {
    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    fn log_path(&self, job: u64) -> PathBuf {
        self.log_dir.join(format!("job-{job}.log"))
    }

    fn live(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids of all jobs kept.
    #[must_use]
    pub fn job_ids(&self) -> Vec<u64> {
        self.lock().jobs.keys().copied().collect()
    }

    /// Ids of the jobs running now.
    #[must_use]
    pub fn running_job_ids(&self) -> Vec<u64> {
        self.live().keys().copied().collect()
    }

    /// A job as the bus shows it.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn job(&self, id: u64) -> SResult<JobView> {
        let record = self.lock().jobs.get(&id).cloned().ok_or_else(|| not_found("job", id))?;
        let live = self.live().get(&id).map(|l| l.progress.snapshot());
        Ok(JobView { record, live })
    }

    /// The running job of `task`, else its newest one.
    pub(super) fn task_last_job(state: &crate::store::State, task: u64) -> Option<&JobRecord> {
        let mut jobs = state.jobs.of_task(Some(task)).rev();
        let newest = jobs.clone().next();
        jobs.find(|j| j.state == JobState::Running).or(newest)
    }

    /// Marks jobs that were running or waiting when the daemon stopped as FAILED; returns the
    /// task ids whose destinations may hold temporary files.
    pub(super) fn fail_interrupted(state: &mut crate::store::State) -> Vec<u64> {
        let mut tasks = Vec::new();
        for j in state.jobs.values_mut().filter(|j| !j.state.is_final()) {
            if j.state == JobState::Running {
                tasks.extend(j.task);
            }
            j.state = JobState::Failed;
            j.error = INTERRUPTED.to_owned();
            j.finished_at = now();
        }
        tasks
    }

    /// Removes temporary files that interrupted runs left in the destinations of `tasks`.
    pub(super) fn sweep_after_restart(self: &Arc<Self>, tasks: Vec<u64>) {
        let svc = self.clone();
        tokio::spawn(async move {
            for t in tasks {
                let Some((cfg, cred)) = svc.task_and_credential(t) else { continue };
                let trees: Vec<Arc<dyn crate::remote::Remote>> = {
                    let mut v: Vec<Arc<dyn crate::remote::Remote>> =
                        vec![Arc::new(crate::remote::local::LocalFs::new(&cfg.path, 0, false))];
                    v.extend(run::remote_for(&cred, &cfg, 0).ok());
                    v
                };
                for tree in trees {
                    match tree.sweep_partials(None).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(task = t, removed = n, tree = %tree.describe(), "removed temporary files of an interrupted run")
                        }
                        Err(e) => tracing::warn!(task = t, error = %e, "could not sweep temporary files"),
                    }
                }
            }
        });
    }

    /// Destroys ZFS snapshots and clones that jobs of earlier runs of this daemon left behind
    /// (a crash, kill -9, power loss): ours by user property, state folder and name prefix.
    pub(super) fn sweep_zfs_leftovers(&self) {
        let (state_dir, before) = (self.state_dir.clone(), self.first_job);
        tokio::spawn(async move {
            let zfs = match crate::zfs::Zfs::system() {
                Ok(z) => z,
                Err(e) => {
                    tracing::debug!(error = %e, "no ZFS leftovers to sweep");
                    return;
                }
            };
            match crate::zfs::snapshot::sweep(&zfs, &state_dir, before).await {
                Ok(r) => {
                    for d in &r.destroyed {
                        tracing::info!(dataset = %d, "destroyed a snapshot or clone left by an interrupted job");
                    }
                    for f in &r.failed {
                        tracing::warn!(problem = %f, "could not destroy a snapshot or clone left by an interrupted job");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not look for snapshots left by interrupted jobs"),
            }
        });
    }

    fn task_and_credential(&self, task: u64) -> Option<(TaskConfig, Credential)> {
        let s = self.lock();
        let cfg = s.tasks.get(&task)?.config.clone();
        let cred = s.credentials.get(&cfg.credentials)?.clone();
        Some((cfg, cred))
    }

    /// Whether a task that uses credential `id` is running.
    pub(super) fn credential_busy(&self, state: &crate::store::State, id: u64) -> Option<u64> {
        state
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .filter_map(|j| j.task)
            .find(|t| state.tasks.get(t).is_some_and(|t| t.config.credentials == id))
    }

    /// `Task.Run`: starts a job, or queues one behind the running job; a third call returns the
    /// waiting job.
    ///
    /// # Errors
    /// `NotFound`, `InvalidArgument` for bad options.
    pub fn run_task(self: &Arc<Self>, task: u64, options: Entries) -> SResult<u64> {
        let dry_run = parse_run_options(options)?;
        let (id, created, start) = self.mutate(|s| {
            if !s.tasks.contains_key(&task) {
                return Err(not_found("task", task));
            }
            if let Some(w) = s.jobs.of_task(Some(task)).find(|j| j.state == JobState::Waiting) {
                return Ok((w.id, false, false));
            }
            let running = s.jobs.of_task(Some(task)).any(|j| j.state == JobState::Running);
            let id = s.next.job;
            s.next.job += 1;
            let state = if running { JobState::Waiting } else { JobState::Running };
            let mut rec = JobRecord::new(id, Some(task), state, dry_run);
            if !running {
                rec.started_at = now();
            }
            s.jobs.insert(rec);
            Ok((id, true, !running))
        })?;
        if created {
            self.emit(Event::JobAdded(id));
            self.emit(Event::TaskChanged(task));
            if start {
                self.start(id, None);
            }
        }
        Ok(id)
    }

    /// `Manager.RunOnce`: runs a configuration once without storing it.
    ///
    /// # Errors
    /// `InvalidArgument` naming the refused key or option.
    pub fn run_once(self: &Arc<Self>, config: Entries, options: Entries) -> SResult<u64> {
        let dry_run = parse_run_options(options)?;
        let (cfg, cred) = {
            let s = self.lock();
            let cfg = TaskConfig::parse(config, &super::FsEnv(&s.credentials), Origin::RunOnce)?;
            let cred = s.credentials.get(&cfg.credentials).cloned().ok_or_else(|| {
                ValidationError::new("credentials", format!("credential {} does not exist", cfg.credentials))
            })?;
            (cfg, cred)
        };
        super::check_filters(&cfg)?;
        let id = self.mutate(|s| {
            let id = s.next.job;
            s.next.job += 1;
            let mut rec = JobRecord::new(id, None, JobState::Running, dry_run);
            rec.started_at = now();
            s.jobs.insert(rec);
            Ok(id)
        })?;
        self.emit(Event::JobAdded(id));
        self.start(id, Some((cfg, cred)));
        Ok(id)
    }

    /// Starts job `id` (already RUNNING in the state).
    fn start(self: &Arc<Self>, id: u64, once: Option<(TaskConfig, Credential)>) {
        let (task, dry_run) = match self.lock().jobs.get(&id) {
            Some(j) => (j.task, j.dry_run),
            None => return,
        };
        // A RunOnce job's configuration lives only here (never stored: it may hold secrets).
        let pair = once.or_else(|| task.and_then(|t| self.task_and_credential(t)));
        let Some((config, credential)) = pair else { return };
        let progress = Arc::new(Progress::default());
        let cancel = CancellationToken::new();
        self.live().insert(id, Live { progress: progress.clone(), cancel: cancel.clone() });
        let log = Arc::new(JobLog::open(&self.log_path(id)));
        let spec = RunSpec {
            job: id,
            task,
            config,
            credential,
            dry_run,
            work_dir: self.work_dir.clone(),
            tz: self.tz.clone(),
            state_dir: self.state_dir.clone(),
        };
        tracing::info!(job = id, task = ?task, dry_run, "job started");
        self.emit(Event::JobChanged(id));
        let svc = self.clone();
        tokio::spawn(async move {
            let outcome = run::run(spec, progress, log, cancel).await;
            svc.finish(id, outcome);
        });
    }

    fn finish(self: &Arc<Self>, id: u64, outcome: Outcome) {
        let live = self.live().remove(&id);
        let snap = live.as_ref().map(|l| l.progress.snapshot()).unwrap_or_default();
        let (state, error) = match outcome {
            Outcome::Success => (JobState::Success, String::new()),
            Outcome::Failed(e) => (JobState::Failed, e),
            Outcome::Aborted => (JobState::Aborted, String::new()),
        };
        tracing::info!(job = id, state = state.as_str(), error = %error, "job finished");
        let res = self.mutate(|s| {
            let Some(j) = s.jobs.get_mut(&id) else { return Ok((None, Vec::new(), None)) };
            j.state = state;
            j.error.clone_from(&error);
            j.finished_at = now();
            j.bytes_done = snap.bytes_done;
            j.bytes_total = snap.bytes_total;
            j.files_done = snap.files_done;
            j.files_total = snap.files_total;
            let task = j.task;
            let pruned = Self::prune(s, task);
            let next = task.and_then(|t| {
                let w = s.jobs.of_task(Some(t)).find(|j| j.state == JobState::Waiting)?.id;
                let w = s.jobs.get_mut(&w)?;
                w.state = JobState::Running;
                w.started_at = now();
                Some(w.id)
            });
            Ok((task, pruned, next))
        });
        match res {
            Ok((task, pruned, next)) => {
                self.emit(Event::JobFinished(id));
                for p in pruned {
                    let _ = std::fs::remove_file(self.log_path(p));
                    self.emit(Event::JobRemoved(p));
                }
                if let Some(t) = task {
                    self.emit(Event::TaskChanged(t));
                }
                if let Some(n) = next {
                    self.start(n, None);
                }
            }
            Err(e) => tracing::error!(job = id, error = %e, "could not record the end of a job"),
        }
    }

    /// Drops the oldest ended jobs of `task` beyond [`KEEP_JOBS`]; returns their ids.
    fn prune(s: &mut crate::store::State, task: Option<u64>) -> Vec<u64> {
        let ended: Vec<u64> = s.jobs.of_task(task).filter(|j| j.state.is_final()).map(|j| j.id).collect();
        let extra = ended.len().saturating_sub(KEEP_JOBS);
        let gone: Vec<u64> = ended.into_iter().take(extra).collect();
        for g in &gone {
            s.jobs.remove(g);
        }
        gone
    }

    /// Stops the running job of `task` and drops its waiting one.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn abort_task(self: &Arc<Self>, task: u64) -> SResult<bool> {
        let (running, waiting) = {
            let s = self.lock();
            if !s.tasks.contains_key(&task) {
                return Err(not_found("task", task));
            }
            let find = |st| s.jobs.of_task(Some(task)).find(|j| j.state == st).map(|j| j.id);
            (find(JobState::Running), find(JobState::Waiting))
        };
        if let Some(w) = waiting {
            self.mutate(|s| {
                if let Some(j) = s.jobs.get_mut(&w) {
                    j.state = JobState::Aborted;
                    j.finished_at = now();
                }
                Ok(())
            })?;
            self.emit(Event::JobFinished(w));
            self.emit(Event::TaskChanged(task));
        }
        if let Some(l) = running.and_then(|r| self.live().get(&r).map(|l| l.cancel.clone())) {
            l.cancel();
        }
        Ok(running.is_some() || waiting.is_some())
    }

    /// `Job.Abort`: as `Task.Abort` for a task's job; stops a `RunOnce` job.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn abort_job(self: &Arc<Self>, id: u64) -> SResult<bool> {
        let rec = self.lock().jobs.get(&id).cloned().ok_or_else(|| not_found("job", id))?;
        if rec.state.is_final() {
            return Ok(false);
        }
        match rec.task {
            Some(t) => self.abort_task(t),
            None => Ok(self.live().get(&id).map(|l| l.cancel.cancel()).is_some()),
        }
    }

    /// Cancels every running job (shutdown), and waits up to `wait` for them to end.
    pub async fn abort_all(&self, wait: Duration) {
        for l in self.live().values() {
            l.cancel.cancel();
        }
        let t0 = std::time::Instant::now();
        while !self.live().is_empty() && t0.elapsed() < wait {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `Job.ReadLog`.
    ///
    /// # Errors
    /// `NotFound`, `Failed` when the log cannot be read.
    pub fn read_log(&self, id: u64, offset: u64, max: u32) -> SResult<(String, u64)> {
        if !self.lock().jobs.contains_key(&id) {
            return Err(not_found("job", id));
        }
        joblog::read(&self.log_path(id), offset, max)
            .map_err(|e| ServiceError::Failed(format!("cannot read the log: {e}")))
    }

    /// Removes a task's jobs (when the task is deleted): aborts the running one.
    pub(super) fn drop_task_jobs(&self, state: &mut crate::store::State, task: u64) -> Vec<u64> {
        let ids: Vec<u64> = state.jobs.of_task(Some(task)).map(|j| j.id).collect();
        for id in &ids {
            state.jobs.remove(id);
            if let Some(l) = self.live().get(id) {
                l.cancel.cancel();
            }
        }
        ids
    }

    /// After a task was deleted: its jobs' objects and logs go.
    pub(super) fn forget_jobs(&self, ids: &[u64]) {
        for id in ids {
            let _ = std::fs::remove_file(self.log_path(*id));
            self.emit(Event::JobRemoved(*id));
        }
    }

    /// Runs enabled tasks at their cron times (local time), at most once per minute slot; a run
    /// due while one runs becomes the waiting one.
    pub fn spawn_scheduler(self: &Arc<Self>) {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut prev = jiff::Timestamp::now();
            loop {
                let now = jiff::Timestamp::now();
                let next_minute = (now.as_second().div_euclid(60) + 1) * 60;
                let wait = u64::try_from(next_minute - now.as_second()).unwrap_or(60);
                tokio::time::sleep(Duration::from_millis(wait * 1000 + 50)).await;
                let now = jiff::Timestamp::now();
                let due: Vec<u64> = {
                    let s = svc.lock();
                    s.tasks
                        .values()
                        .filter(|t| t.config.enabled)
                        .filter(|t| {
                            Schedule::parse(&t.config.schedule)
                                .ok()
                                .and_then(|sch| sch.next_after(prev, &svc.tz))
                                .is_some_and(|n| n <= now)
                        })
                        .map(|t| t.id)
                        .collect()
                };
                prev = now;
                for t in due {
                    match svc.run_task(t, Vec::new()) {
                        Ok(j) => tracing::info!(task = t, job = j, "scheduled run"),
                        Err(e) => tracing::warn!(task = t, error = %e, "scheduled run refused"),
                    }
                    svc.emit(Event::TaskChanged(t));
                }
            }
        });
    }
}
