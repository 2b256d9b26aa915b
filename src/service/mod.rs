//! The application core: owns the state (credentials, tasks), validates and persists every change,
//! and answers the questions the D-Bus adapter asks. Imports `model`, `store`, `schedule`, std;
//! never zbus.

mod jobs;
mod local;

pub use jobs::JobView;

use crate::{
    model::{
        Credential, CredentialAttrs, Entries, Environment, Origin, Provider, RestoreOptions, TaskConfig,
        ValidationError, Value, credential, fields, task::TASK_SECRETS,
    },
    schedule::Schedule,
    store::{State, Store, StoreError, Task},
};
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

/// Why a call was refused or failed; maps one to one onto the contract's error names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A bad or missing key or option.
    #[error("{0}")]
    InvalidArgument(String),
    /// The object does not exist (any more).
    #[error("{0}")]
    NotFound(String),
    /// The object is busy with a running job.
    #[error("{0}")]
    Busy(String),
    /// The credential is used by a task.
    #[error("{0}")]
    InUse(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Anything else, with the reason.
    #[error("{0}")]
    Failed(String),
}

impl From<ValidationError> for ServiceError {
    fn from(e: ValidationError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

/// Result of a service call.
pub type SResult<T> = Result<T, ServiceError>;

/// A credential as the bus shows it: secrets masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialView {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Provider name.
    pub provider: Provider,
    /// Attributes, secrets masked.
    pub attributes: Entries,
}

/// One entry of `Credential.ListDirectory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name within the folder.
    pub name: String,
    /// Path relative to the listed bucket or root.
    pub path: String,
    /// Size in bytes (plaintext).
    pub size: u64,
    /// Modification time, unix seconds.
    pub mtime: u64,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Whether the name was decrypted.
    pub decrypted: bool,
}

/// Validation against the real file system and the current state.
struct FsEnv<'a>(&'a BTreeMap<u64, Credential>);

impl Environment for FsEnv<'_> {
    fn check_dir(&self, path: &str) -> Result<(), String> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("{path} is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{path} does not exist")),
            Err(e) => Err(format!("{path} cannot be read: {e}")),
        }
    }
    fn credential_provider(&self, id: u64) -> Option<Provider> {
        self.0.get(&id).map(Credential::provider)
    }
}

/// A change the D-Bus adapter must publish (objects to add or remove, properties to re-read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A job was created.
    JobAdded(u64),
    /// A job's state changed (it started).
    JobChanged(u64),
    /// A job ended.
    JobFinished(u64),
    /// A job was dropped from the history.
    JobRemoved(u64),
    /// A task's State, LastJob or NextRun changed.
    TaskChanged(u64),
}

/// Where the service keeps job logs and script files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Job logs.
    pub log_dir: PathBuf,
    /// A private folder for script files.
    pub work_dir: PathBuf,
    /// The state folder (absolute): our ZFS snapshots are tagged with it and clones are
    /// mounted below it.
    pub state_dir: PathBuf,
}

/// The service: state, persistence, jobs and the local time zone for schedules.
#[derive(Debug)]
pub struct Service {
    store: Store,
    state: Mutex<State>,
    tz: jiff::tz::TimeZone,
    log_dir: PathBuf,
    work_dir: PathBuf,
    state_dir: PathBuf,
    /// The first job id of this daemon run: ZFS leftovers of lower ids are swept at start.
    first_job: u64,
    live: Mutex<HashMap<u64, jobs::Live>>,
    events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    interrupted: Mutex<Vec<u64>>,
}

/// Checks a configuration's filter patterns.
fn check_filters(cfg: &TaskConfig) -> SResult<()> {
    crate::engine::filter::Filter::new(&cfg.include, &cfg.exclude)
        .map(drop)
        .map_err(|e| ServiceError::InvalidArgument(e.to_string()))
}

/// A `ListDirectory` entry of a child of `folder`.
fn dir_entry(folder: &str, b: crate::remote::crypt::Browsed) -> DirEntry {
    DirEntry {
        path: if folder.is_empty() { b.name.clone() } else { format!("{folder}/{}", b.name) },
        name: b.name,
        size: b.size,
        mtime: u64::try_from(b.mtime.secs()).unwrap_or(0),
        is_dir: b.kind == crate::engine::entry::Kind::Dir,
        decrypted: b.decrypted,
    }
}

fn not_found(kind: &str, id: u64) -> ServiceError {
    ServiceError::NotFound(format!("{kind} {id} does not exist"))
}

impl Service {
    /// Loads the state from `store`; schedules are computed in `tz`.
    ///
    /// # Errors
    /// The state cannot be loaded.
    pub fn new(
        store: Store,
        tz: jiff::tz::TimeZone,
        dirs: Dirs,
        events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    ) -> Result<Self, StoreError> {
        let mut state = store.load()?;
        let interrupted = Self::fail_interrupted(&mut state);
        if !interrupted.is_empty() || state.jobs.values().any(|j| j.error == crate::model::job::INTERRUPTED) {
            store.save(&state)?;
        }
        let first_job = state.next.job;
        Ok(Self {
            store,
            state: Mutex::new(state),
            tz,
            log_dir: dirs.log_dir,
            work_dir: dirs.work_dir,
            state_dir: dirs.state_dir,
            first_job,
            live: Mutex::new(HashMap::new()),
            events,
            interrupted: Mutex::new(interrupted),
        })
    }

    /// Starts the background work: sweeping temporary files of interrupted runs and the
    /// scheduler.
    pub fn start_background(self: &Arc<Self>) {
        let tasks = std::mem::take(&mut *self.interrupted.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.sweep_after_restart(tasks);
        self.sweep_zfs_leftovers();
        self.spawn_scheduler();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the last saved state in memory: keep serving it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `f` to a copy of the state, saves the copy, and only then makes it current: a
    /// refused or unsaved change leaves everything as it was.
    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> SResult<T>) -> SResult<T> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = f(&mut next)?;
        self.store.save(&next).map_err(|e| ServiceError::Failed(format!("could not save the state: {e}")))?;
        *guard = next;
        Ok(out)
    }

    /// Provider names this build supports.
    #[must_use]
    pub fn providers(&self) -> Vec<String> {
        Provider::ALL.iter().map(|p| p.as_str().to_owned()).collect()
    }

    /// Counts of credentials and tasks, for status lines.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.credentials.len(), s.tasks.len())
    }

    /// Ids of all credentials.
    #[must_use]
    pub fn credential_ids(&self) -> Vec<u64> {
        self.lock().credentials.keys().copied().collect()
    }

    /// Ids of all tasks.
    #[must_use]
    pub fn task_ids(&self) -> Vec<u64> {
        self.lock().tasks.keys().copied().collect()
    }

    // --- credentials ---

    /// A credential with secrets masked.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn credential(&self, id: u64) -> SResult<CredentialView> {
        let s = self.lock();
        let c = s.credentials.get(&id).ok_or_else(|| not_found("credential", id))?;
        Ok(CredentialView { id, name: c.name.clone(), provider: c.provider(), attributes: c.attrs.to_entries(true) })
    }

    fn check_unique_name(state: &State, name: &str, except: Option<u64>) -> SResult<()> {
        if let Some(other) = state.credentials.values().find(|c| c.name == name && Some(c.id) != except) {
            return Err(
                ValidationError::new("name", format!("{name:?} is already used by credential {}", other.id)).into()
            );
        }
        Ok(())
    }

    /// Stores a new credential.
    ///
    /// # Errors
    /// `InvalidArgument` naming the refused key.
    pub fn create_credential(&self, name: &str, provider: &str, attributes: Entries) -> SResult<u64> {
        credential::check_name(name)?;
        let provider = Provider::parse(provider)?;
        self.mutate(|s| {
            Self::check_unique_name(s, name, None)?;
            let attrs = CredentialAttrs::parse(provider, attributes, &FsEnv(&s.credentials))?;
            let id = s.next.credential;
            s.next.credential += 1;
            s.credentials.insert(id, Credential { id, name: name.to_owned(), attrs });
            Ok(id)
        })
    }

    /// Changes a credential's name and attributes (omitted keys keep their value).
    ///
    /// # Errors
    /// `NotFound`, `InvalidArgument`.
    pub fn update_credential(&self, id: u64, changes: Entries) -> SResult<()> {
        self.mutate(|s| {
            let c = s.credentials.get(&id).ok_or_else(|| not_found("credential", id))?.clone();
            if let Some(t) = self.credential_busy(s, id) {
                return Err(ServiceError::Busy(format!(
                    "task {t} is running with this credential; try again when it ends"
                )));
            }
            let mut name = c.name.clone();
            let mut attr_changes = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (k, v) in changes {
                if !seen.insert(k.clone()) {
                    return Err(ValidationError::new(k, "key given more than once").into());
                }
                if k == "name" {
                    match v {
                        Value::Str(n) => name = n,
                        other => {
                            return Err(ValidationError::new(
                                "name",
                                format!("expected type s, got {}", other.signature()),
                            )
                            .into());
                        }
                    }
                } else {
                    attr_changes.push((k, v));
                }
            }
            credential::check_name(&name)?;
            Self::check_unique_name(s, &name, Some(id))?;
            let provider = c.provider();
            let merged = fields::merge(c.attrs.to_entries(false), attr_changes, "", provider.secrets())?;
            let attrs = CredentialAttrs::parse(provider, merged, &FsEnv(&s.credentials))?;
            s.credentials.insert(id, Credential { id, name, attrs });
            Ok(())
        })
    }

    /// Deletes a credential that no task uses.
    ///
    /// # Errors
    /// `NotFound`, `InUse` naming the task.
    pub fn delete_credential(&self, id: u64) -> SResult<()> {
        self.mutate(|s| {
            let c = s.credentials.get(&id).ok_or_else(|| not_found("credential", id))?;
            if let Some(t) = self.credential_busy(s, id) {
                return Err(ServiceError::Busy(format!(
                    "task {t} is running with this credential; try again when it ends"
                )));
            }
            if let Some(t) = s.tasks.values().find(|t| t.config.credentials == id) {
                return Err(ServiceError::InUse(format!(
                    "credential {:?} is used by task {} ({:?}); delete or change that task first",
                    c.name, t.id, t.config.description
                )));
            }
            s.credentials.remove(&id);
            Ok(())
        })
    }

    fn credential_clone(&self, id: u64) -> SResult<Credential> {
        self.lock().credentials.get(&id).cloned().ok_or_else(|| not_found("credential", id))
    }

    /// Can we authenticate and list? Never an error for a remote failure.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn verify_credential(&self, id: u64) -> SResult<(bool, String)> {
        let c = self.credential_clone(id)?;
        let result = match &c.attrs {
            CredentialAttrs::Local(a) => local::verify(&a.root),
            CredentialAttrs::S3(_) | CredentialAttrs::B2(_) => crate::engine::run::s3_buckets(&c).await.map(drop),
        };
        Ok(match result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e),
        })
    }

    /// The buckets a credential sees: `(name, created unix seconds)`.
    ///
    /// # Errors
    /// `NotFound`; `Failed` for providers without buckets or when listing fails.
    pub async fn list_buckets(&self, id: u64) -> SResult<Vec<(String, u64)>> {
        let c = self.credential_clone(id)?;
        if c.provider() == Provider::Local {
            return Err(ServiceError::Failed("LOCAL does not use buckets".to_owned()));
        }
        crate::engine::run::s3_buckets(&c).await.map_err(|e| ServiceError::Failed(format!("cannot list buckets: {e}")))
    }

    /// Lists one folder of a credential's storage. With `encryption`, the folder is the place of
    /// an encrypted tree (not itself encrypted) and its children show decrypted names
    /// (`decrypted` true; names that do not decrypt show as stored, `decrypted` false).
    ///
    /// # Errors
    /// `NotFound`, `InvalidArgument` for a bad location, `Failed` when listing fails.
    pub async fn list_directory(&self, id: u64, location: Entries) -> SResult<Vec<DirEntry>> {
        let c = self.credential_clone(id)?;
        let loc = local::Location::parse(c.provider(), location)?;
        if let Some(enc) = &loc.encryption {
            let keys = crate::engine::run::Decrypting {
                password: &enc.password,
                salt: &enc.salt,
                filename_encryption: enc.filename_encryption,
            };
            let listed = crate::engine::run::browse_encrypted(&c, &loc.bucket, &loc.folder, keys)
                .await
                .map_err(ServiceError::Failed)?;
            return Ok(listed.into_iter().map(|b| dir_entry(&loc.folder, b)).collect());
        }
        match &c.attrs {
            CredentialAttrs::Local(a) => local::list(&a.root, &loc).map_err(ServiceError::Failed),
            CredentialAttrs::S3(_) | CredentialAttrs::B2(_) => {
                let listed = crate::engine::run::browse_folder(&c, &loc.bucket, &loc.folder)
                    .await
                    .map_err(ServiceError::Failed)?;
                Ok(listed.into_iter().map(|b| dir_entry(&loc.folder, b)).collect())
            }
        }
    }

    // --- tasks ---

    fn next_run(&self, cfg: &TaskConfig, now: jiff::Timestamp) -> u64 {
        if !cfg.enabled {
            return 0;
        }
        Schedule::parse(&cfg.schedule)
            .ok()
            .and_then(|s| s.next_after(now, &self.tz))
            .and_then(|t| u64::try_from(t.as_second()).ok())
            .unwrap_or(0)
    }

    /// A task's configuration as the bus shows it, secrets masked.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn task_config(&self, id: u64) -> SResult<Entries> {
        let s = self.lock();
        Ok(s.tasks.get(&id).ok_or_else(|| not_found("task", id))?.config.to_entries(true))
    }

    /// A task's state (`PENDING` until a job ran) and its running or newest job.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn task_state(&self, id: u64) -> SResult<(&'static str, Option<u64>)> {
        let s = self.lock();
        if !s.tasks.contains_key(&id) {
            return Err(not_found("task", id));
        }
        Ok(Self::task_last_job(&s, id).map_or(("PENDING", None), |j| (j.state.as_str(), Some(j.id))))
    }

    /// A task's next scheduled start, unix seconds; 0 when disabled.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn task_next_run(&self, id: u64) -> SResult<u64> {
        // The schedule is worked out without holding the state.
        let cfg = self.lock().tasks.get(&id).map(|t| t.config.clone()).ok_or_else(|| not_found("task", id))?;
        Ok(self.next_run(&cfg, jiff::Timestamp::now()))
    }

    /// Stores a new task.
    ///
    /// # Errors
    /// `InvalidArgument` naming the refused key.
    pub fn create_task(&self, config: Entries) -> SResult<u64> {
        self.mutate(|s| {
            let config = TaskConfig::parse(config, &FsEnv(&s.credentials), Origin::Stored)?;
            check_filters(&config)?;
            let id = s.next.task;
            s.next.task += 1;
            s.tasks.insert(id, Task { id, config });
            Ok(id)
        })
    }

    /// Changes a task: given keys replace stored ones, `attributes` merges key by key, masked
    /// secrets keep their value; validated as a whole.
    ///
    /// # Errors
    /// `NotFound`, `InvalidArgument`.
    pub fn update_task(&self, id: u64, changes: Entries) -> SResult<()> {
        self.mutate(|s| {
            let t = s.tasks.get(&id).ok_or_else(|| not_found("task", id))?;
            let merged = fields::merge(t.config.to_entries(false), changes, "attributes", &TASK_SECRETS)?;
            let config = TaskConfig::parse(merged, &FsEnv(&s.credentials), Origin::Stored)?;
            check_filters(&config)?;
            s.tasks.insert(id, Task { id, config });
            Ok(())
        })
    }

    /// Deletes a task.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn delete_task(&self, id: u64) -> SResult<()> {
        let jobs = self.mutate(|s| {
            s.tasks.remove(&id).ok_or_else(|| not_found("task", id))?;
            Ok(self.drop_task_jobs(s, id))
        })?;
        self.forget_jobs(&jobs);
        crate::engine::seen::forget(&self.state_dir, id);
        Ok(())
    }

    /// Creates the reversed task of `id` (see [`TaskConfig::restore_entries`]).
    ///
    /// # Errors
    /// `NotFound`, `InvalidArgument` naming the refused option or key.
    pub fn restore_task(&self, id: u64, options: Entries) -> SResult<u64> {
        self.mutate(|s| {
            let old = &s.tasks.get(&id).ok_or_else(|| not_found("task", id))?.config;
            let opts = RestoreOptions::parse(options, old)?;
            let config = TaskConfig::parse(old.restore_entries(&opts), &FsEnv(&s.credentials), Origin::Stored)?;
            let new_id = s.next.task;
            s.next.task += 1;
            s.tasks.insert(new_id, Task { id: new_id, config });
            Ok(new_id)
        })
    }
}
