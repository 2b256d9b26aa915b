//! Job records: what the bus shows of a run and what survives a restart. Pure.

use serde::{Deserialize, Serialize};

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Queued behind the running job of its task.
    Waiting,
    /// Running.
    Running,
    /// Finished without error.
    Success,
    /// Finished with an error.
    Failed,
    /// Stopped by `Abort`.
    Aborted,
}

impl JobState {
    /// The name used on the bus.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    /// Whether the job has ended.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Aborted)
    }
}

/// What is kept of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id, from one counter for all jobs.
    pub id: u64,
    /// The task, `None` for `RunOnce`.
    pub task: Option<u64>,
    /// State.
    pub state: JobState,
    /// Plan and log only.
    pub dry_run: bool,
    /// When it became RUNNING, unix seconds; 0 before.
    pub started_at: u64,
    /// When it ended, unix seconds; 0 before.
    pub finished_at: u64,
    /// Why it failed.
    pub error: String,
    /// Final counters (live ones come from the running job).
    pub bytes_done: u64,
    /// Bytes total.
    pub bytes_total: u64,
    /// Files done.
    pub files_done: u64,
    /// Files total.
    pub files_total: u64,
}

impl JobRecord {
    /// A new job.
    #[must_use]
    pub fn new(id: u64, task: Option<u64>, state: JobState, dry_run: bool) -> Self {
        Self {
            id,
            task,
            state,
            dry_run,
            started_at: 0,
            finished_at: 0,
            error: String::new(),
            bytes_done: 0,
            bytes_total: 0,
            files_done: 0,
            files_total: 0,
        }
    }
}

/// How many finished jobs are kept per task (and for `RunOnce` jobs together).
pub const KEEP_JOBS: usize = 20;

/// The message of a job that was running when the daemon stopped.
pub const INTERRUPTED: &str = "interrupted by a daemon restart";
