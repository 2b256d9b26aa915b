//! Persistence of credentials, tasks and kept jobs (indexed by task): one CBOR file with a schema
//! version, secrets sealed, written atomically (temporary file, fsync, rename, fsync of the
//! folder), mode 0600.
//! Imports std, serde/ciborium, `model` and `store::seal`.

pub mod seal;

use crate::model::{
    Credential, CredentialAttrs, Entries, Environment, JobRecord, Origin, Provider, TaskConfig, Value,
    task::TASK_SECRETS,
};
use seal::{SealError, SealKey};
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;
const STATE_FILE: &str = "state.cbor";
const KEY_FILE: &str = "secret.key";

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file is not what this build can read.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Secrets could not be sealed or opened.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Never reused.
    pub id: u64,
    /// The validated configuration.
    pub config: TaskConfig,
}

/// Id counters: each id is handed out once, ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Next credential id.
    pub credential: u64,
    /// Next task id.
    pub task: u64,
    /// Next job id.
    pub job: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self { credential: 1, task: 1, job: 1 }
    }
}

/// Everything the daemon keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Id counters.
    pub next: Counters,
    /// Credentials by id.
    pub credentials: BTreeMap<u64, Credential>,
    /// Tasks by id.
    pub tasks: BTreeMap<u64, Task>,
    /// Jobs by id (the last ones of each task).
    pub jobs: Jobs,
}

/// The kept jobs, by id and by task: a task's jobs are found without looking at every job (a
/// NAS with 1,000 tasks keeps up to 20,000), which the start of the daemon and every
/// `GetManagedObjects` do once per task.
///
/// A job's `id` and `task` never change once it is inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jobs {
    by_id: BTreeMap<u64, JobRecord>,
    by_task: BTreeSet<(Option<u64>, u64)>,
}

impl Jobs {
    /// Job `id`.
    #[must_use]
    pub fn get(&self, id: &u64) -> Option<&JobRecord> {
        self.by_id.get(id)
    }

    /// Job `id`, to change its state and counters (never its `id` or `task`).
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut JobRecord> {
        self.by_id.get_mut(id)
    }

    /// Whether job `id` is kept.
    #[must_use]
    pub fn contains_key(&self, id: &u64) -> bool {
        self.by_id.contains_key(id)
    }

    /// The ids, oldest first.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> {
        self.by_id.keys()
    }

    /// The jobs, oldest first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &JobRecord> {
        self.by_id.values()
    }

    /// The jobs, oldest first, to change their state and counters (never `id` or `task`).
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut JobRecord> {
        self.by_id.values_mut()
    }

    /// The jobs of `task` (`None`: the `RunOnce` jobs), oldest first.
    pub fn of_task(&self, task: Option<u64>) -> impl DoubleEndedIterator<Item = &JobRecord> + Clone {
        self.by_task.range((task, 0)..=(task, u64::MAX)).filter_map(|(_, id)| self.by_id.get(id))
    }

    /// Keeps `rec` under its id (replacing a job with that id).
    pub fn insert(&mut self, rec: JobRecord) {
        let id = rec.id;
        if let Some(old) = self.by_id.get(&id) {
            self.by_task.remove(&(old.task, id));
        }
        self.by_task.insert((rec.task, id));
        self.by_id.insert(id, rec);
    }

    /// Drops job `id`.
    pub fn remove(&mut self, id: &u64) -> Option<JobRecord> {
        let rec = self.by_id.remove(id)?;
        self.by_task.remove(&(rec.task, *id));
        Some(rec)
    }

    /// How many jobs are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no job is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl FromIterator<JobRecord> for Jobs {
    fn from_iter<I: IntoIterator<Item = JobRecord>>(iter: I) -> Self {
        let mut jobs = Self::default();
        for j in iter {
            jobs.insert(j);
        }
        jobs
    }
}

/// A value as written to the file: like [`Value`], with secrets sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Stored {
    Bool(bool),
    U32(u32),
    U64(u64),
    Str(String),
    StrList(Vec<String>),
    Map(Vec<(String, Stored)>),
    Sealed(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct FileCredential {
    id: u64,
    name: String,
    provider: Provider,
    attributes: Vec<(String, Stored)>,
}

#[derive(Serialize, Deserialize)]
struct FileTask {
    id: u64,
    config: Vec<(String, Stored)>,
}

#[derive(Serialize, Deserialize)]
struct FileV1 {
    version: u32,
    next: Counters,
    credentials: Vec<FileCredential>,
    tasks: Vec<FileTask>,
    #[serde(default)]
    jobs: Vec<JobRecord>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// The state folder: the state file and the key that seals its secrets.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    key: SealKey,
}

/// Loaded state trusts what it stored: folders may have gone away since, and that is for the
/// run to report, not a reason to drop the task.
struct Trusting<'a>(&'a BTreeMap<u64, Credential>);

impl Environment for Trusting<'_> {
    fn check_dir(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn credential_provider(&self, id: u64) -> Option<Provider> {
        self.0.get(&id).map(Credential::provider)
    }
}

fn seal_entries(key: &SealKey, entries: Entries, secrets: &[&str]) -> Result<Vec<(String, Stored)>, SealError> {
    entries
        .into_iter()
        .map(|(k, v)| {
            let nested: Vec<&str> =
                secrets.iter().filter_map(|s| s.strip_prefix(k.as_str()).and_then(|r| r.strip_prefix('.'))).collect();
            let stored = match v {
                Value::Str(s) if secrets.contains(&k.as_str()) && !s.is_empty() => {
                    Stored::Sealed(key.seal(s.as_bytes())?)
                }
                Value::Bool(b) => Stored::Bool(b),
                Value::U32(n) => Stored::U32(n),
                Value::U64(n) => Stored::U64(n),
                Value::Str(s) => Stored::Str(s),
                Value::StrList(l) => Stored::StrList(l),
                Value::Map(m) => Stored::Map(seal_entries(key, m, &nested)?),
                Value::Other(sig) => Stored::Str(sig),
            };
            Ok((k, stored))
        })
        .collect()
}

fn open_entries(key: &SealKey, stored: Vec<(String, Stored)>) -> Result<Entries, SealError> {
    stored
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                Stored::Bool(b) => Value::Bool(b),
                Stored::U32(n) => Value::U32(n),
                Stored::U64(n) => Value::U64(n),
                Stored::Str(s) => Value::Str(s),
                Stored::StrList(l) => Value::StrList(l),
                Stored::Map(m) => Value::Map(open_entries(key, m)?),
                Stored::Sealed(b) => {
                    let plain = key.open(&b)?;
                    Value::Str(String::from_utf8(plain.to_vec()).map_err(|_| SealError::Tampered)?)
                }
            };
            Ok((k, value))
        })
        .collect()
}

impl Store {
    /// Opens the state folder, creating it (0700) and the key file when missing.
    ///
    /// # Errors
    /// The folder or key file cannot be made or read.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let ioerr = |source| StoreError::Io { path: dir.display().to_string(), source };
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode_0700().create(dir).map_err(ioerr)?;
        }
        let state_exists = dir.join(STATE_FILE).exists();
        // A state file without its key file means the secrets are lost: say so, never make a new
        // key that would silently fail every stored secret.
        let key = SealKey::load_or_create(&dir.join(KEY_FILE), !state_exists)?;
        Ok(Self { dir: dir.to_owned(), key })
    }

    /// The state file's path.
    #[must_use]
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Loads the state; an absent file is an empty state.
    ///
    /// # Errors
    /// The file cannot be read, is of an unknown version, or does not decode.
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.state_path();
        let shown = path.display().to_string();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => return Err(StoreError::Io { path: shown, source }),
        };
        let format = |reason: String| StoreError::Format { path: shown.clone(), reason };
        let unsupported = |version: u32| {
            format(format!(
                "schema version {version} is not supported by this build (it reads version {SCHEMA_VERSION}); \
                 the file was left untouched"
            ))
        };
        // One pass in the common case; the version alone is read only to explain a failure.
        let file: FileV1 = match ciborium::from_reader(bytes.as_slice()) {
            Ok(file) => file,
            Err(e) => {
                let v: VersionOnly =
                    ciborium::from_reader(bytes.as_slice()).map_err(|e| format(format!("not a state file: {e}")))?;
                return Err(if v.version == SCHEMA_VERSION {
                    format(format!("cannot decode: {e}"))
                } else {
                    unsupported(v.version)
                });
            }
        };
        if file.version != SCHEMA_VERSION {
            return Err(unsupported(file.version));
        }
        let mut state = State { next: file.next, ..State::default() };
        for c in file.credentials {
            let entries = open_entries(&self.key, c.attributes)?;
            let attrs = CredentialAttrs::parse(c.provider, entries, &Trusting(&state.credentials))
                .map_err(|e| format(format!("credential {}: {e}", c.id)))?;
            state.credentials.insert(c.id, Credential { id: c.id, name: c.name, attrs });
        }
        for t in file.tasks {
            let entries = open_entries(&self.key, t.config)?;
            let config = TaskConfig::parse(entries, &Trusting(&state.credentials), Origin::Stored)
                .map_err(|e| format(format!("task {}: {e}", t.id)))?;
            state.tasks.insert(t.id, Task { id: t.id, config });
        }
        state.jobs = file.jobs.into_iter().collect();
        Ok(state)
    }

    /// Writes the state atomically: a temporary file (0600), fsync, rename over the state file,
    /// fsync of the folder. Either the old or the new state survives a crash.
    ///
    /// # Errors
    /// Sealing or any step of the write fails; the old state file is then untouched.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let mut credentials = Vec::with_capacity(state.credentials.len());
        for c in state.credentials.values() {
            let secrets = c.provider().secrets();
            let attributes = seal_entries(&self.key, c.attrs.to_entries(false), secrets)?;
            credentials.push(FileCredential { id: c.id, name: c.name.clone(), provider: c.provider(), attributes });
        }
        let mut tasks = Vec::with_capacity(state.tasks.len());
        for t in state.tasks.values() {
            tasks.push(FileTask {
                id: t.id,
                config: seal_entries(&self.key, t.config.to_entries(false), &TASK_SECRETS)?,
            });
        }
        let jobs = state.jobs.values().cloned().collect();
        let file = FileV1 { version: SCHEMA_VERSION, next: state.next, credentials, tasks, jobs };
        let mut bytes = Vec::new();
        ciborium::into_writer(&file, &mut bytes).map_err(|e| StoreError::Format {
            path: self.state_path().display().to_string(),
            reason: format!("cannot encode: {e}"),
        })?;
        write_atomic(&self.state_path(), &bytes)
    }
}

trait DirBuilderExt2 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirBuilderExt2 for fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// Replaces `path` with `bytes` atomically, mode 0600.
///
/// # Errors
/// Any step fails; `path` is then untouched (a stray temporary file may remain and is replaced by
/// the next write).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let ioerr = |p: &Path| {
        let p = p.display().to_string();
        move |source| StoreError::Io { path: p, source }
    };
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(ioerr(&tmp))?;
    f.write_all(bytes).map_err(ioerr(&tmp))?;
    f.sync_all().map_err(ioerr(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(ioerr(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ioerr(dir))?;
    Ok(())
}
