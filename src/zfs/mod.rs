//! ZFS for consistent pushes: [`cmd`] is the one place that runs the `zfs` command, [`snapshot`]
//! finds the dataset of a path, takes our tagged snapshot, reads it through `.zfs/snapshot` or a
//! temporary read-only clone, destroys both however a job ends, and sweeps leftovers at start-up.
//! Imports std, tokio, jiff and tracing only.

pub mod cmd;
pub mod snapshot;

pub use cmd::{Zfs, ZfsError};
pub use snapshot::{Frozen, Located, SweepReport};

/// The user property holding the job id on every snapshot and clone we create.
pub const PROP_JOB: &str = "org.cloudsyncd:job";
/// The user property holding the state folder of the daemon that created it, so that a daemon
/// (or a test daemon beside it) only ever destroys what it created itself.
pub const PROP_STATE: &str = "org.cloudsyncd:state";
/// Every snapshot and clone name we create starts with this (after the `@` or the last `/`).
pub const NAME_PREFIX: &str = "cloud_sync-";
