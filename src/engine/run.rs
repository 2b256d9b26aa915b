//! One run of a task: pre-script, then (with `snapshot`) the ZFS snapshot — after the script, so
//! that a script can dump a database into the dataset first — listing both sides, plan, execute,
//! folders finished after their contents, the snapshot (and its clone) destroyed whatever
//! happened, then the post-script on success. The local tree of a PULL applies the task's
//! `ownership` rule. With `encryption`, the remote side is wrapped in [`CryptRemote`] (keys
//! derived once per job, off the async threads), and with `filename_encryption` a PUSH first
//! checks every source name's encrypted length. Imports `remote`, `crypt`, `scripts`, `zfs` and
//! the engine's own parts.

use super::{
    archive::{archive_problem, is_archive_error},
    entry::{Entry, Kind},
    exec::{ExecOptions, JobIo, Report, execute},
    filter::Filter,
    joblog::{JobLog, esc},
    limit::Limiter,
    plan::{Mode, Plan, PlanOptions},
    progress::{Progress, human_bytes},
    seen::{self, Seen},
};
use crate::{
    crypt::Cipher,
    model::{Credential, CredentialAttrs, Direction, Ownership, TaskConfig, TransferMode, task::TaskAttrs},
    remote::{
        Archived, LIST_HINTS, ListOptions, Listed, Remote, RootState,
        crypt::{CryptRemote, derive_cipher},
        local::{LocalFs, Notes, Owners},
        s3::{RESTORE_DAYS, S3Client, S3Config, S3Remote},
    },
    scripts::{self, Phase},
    zfs::{
        Frozen, Zfs,
        snapshot::{FreezeSpec, locate},
    },
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};
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
    /// The daemon's state folder: snapshots are tagged with it, clones are mounted below it.
    pub state_dir: PathBuf,
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

/// The remote side of a task as a tree (not encrypted: see [`run`]).
///
/// # Errors
/// The provider is not part of this build yet.
pub fn remote_for(cred: &Credential, config: &TaskConfig, job: u64) -> Result<Arc<dyn Remote>, String> {
    remote_with(cred, &config.attributes, job, Notes::default())
}

/// The remote tree of a task with its attributes (for S3 and B2 also the chunk size, storage
/// class, server-side encryption and region); notes go to `notes`.
///
/// # Errors
/// The client cannot be set up.
pub fn remote_with(cred: &Credential, attrs: &TaskAttrs, job: u64, notes: Notes) -> Result<Arc<dyn Remote>, String> {
    match &cred.attrs {
        CredentialAttrs::S3(_) | CredentialAttrs::B2(_) => {
            s3_remote(cred, &attrs.bucket, &attrs.folder, job, Some(attrs))
        }
        CredentialAttrs::Local(_) => remote_at(cred, &attrs.bucket, &attrs.folder, job, notes),
    }
}

/// The tree at `bucket`/`folder` of a credential's storage (LOCAL has no bucket); `job` names the
/// temporary files written there; notes go to `notes`. A LOCAL remote keeps each pushed file's
/// owner, group, mode and ACLs on the copy itself (where its file system can hold them).
///
/// # Errors
/// The S3 client cannot be set up (a bad endpoint or CA file).
pub fn remote_at(
    cred: &Credential,
    bucket: &str,
    folder: &str,
    job: u64,
    notes: Notes,
) -> Result<Arc<dyn Remote>, String> {
    match &cred.attrs {
        CredentialAttrs::Local(a) => {
            let root = if folder.is_empty() { PathBuf::from(&a.root) } else { PathBuf::from(&a.root).join(folder) };
            Ok(Arc::new(
                LocalFs::new(root, job, false).with_owners(Owners::Preserve { strict: false }).with_notes(notes),
            ))
        }
        CredentialAttrs::S3(_) | CredentialAttrs::B2(_) => s3_remote(cred, bucket, folder, job, None),
    }
}

/// An S3 (or B2) bucket folder. With the task's attributes: their chunk size, storage class,
/// server-side encryption and region (which wins over the credential's); without (browsing):
/// the defaults.
fn s3_remote(
    cred: &Credential,
    bucket: &str,
    folder: &str,
    job: u64,
    task: Option<&TaskAttrs>,
) -> Result<Arc<dyn Remote>, String> {
    let mut cfg = s3_config(cred)?;
    let (chunk_mib, class, sse) = match task {
        Some(a) => {
            if !a.region.is_empty() {
                cfg.region.clone_from(&a.region);
            }
            (a.chunk_size, a.storage_class.as_str(), a.encryption.as_str())
        }
        None => (16, "", ""),
    };
    let client = S3Client::new(cfg).map_err(|e| e.to_string())?;
    let chunk = chunk_mib.saturating_mul(1 << 20);
    let remote = S3Remote::new(client, bucket, folder, chunk, class, sse, job);
    Ok(Arc::new(match task {
        Some(a) => {
            remote.with_hard_delete(a.hard_delete).with_glacier_restore(a.glacier_restore).with_fast_list(a.fast_list)
        }
        None => remote.browsing(),
    }))
}

fn s3_config(cred: &Credential) -> Result<S3Config, String> {
    match &cred.attrs {
        CredentialAttrs::S3(a) => Ok(S3Config::from_s3_attrs(a)),
        CredentialAttrs::B2(a) => Ok(S3Config::from_b2_attrs(a)),
        CredentialAttrs::Local(_) => Err("a LOCAL credential has no bucket".to_owned()),
    }
}

/// The buckets an S3 or B2 credential sees: `(name, created unix seconds)`
/// (`Credential.Verify` and `ListBuckets`).
///
/// # Errors
/// The credential is LOCAL, or the listing failed (the reason, never a secret).
pub async fn s3_buckets(cred: &Credential) -> Result<Vec<(String, u64)>, String> {
    let client = S3Client::new(s3_config(cred)?).map_err(|e| e.to_string())?;
    let buckets = client.list_buckets().await.map_err(|e| e.to_string())?;
    Ok(buckets.into_iter().map(|b| (b.name, u64::try_from(b.creation_date).unwrap_or(0))).collect())
}

/// What `Credential.ListDirectory` needs to show an encrypted folder.
#[derive(Debug)]
pub struct Decrypting<'a> {
    /// The encryption password (secret).
    pub password: &'a crate::model::Secret,
    /// The salt (secret; empty for rclone's default salt).
    pub salt: &'a crate::model::Secret,
    /// Whether names are encrypted.
    pub filename_encryption: bool,
}

/// The children of the (not encrypted) folder `bucket`/`folder`, decrypted where they decrypt
/// (`Credential.ListDirectory`); provider-neutral.
///
/// # Errors
/// The provider is not part of this build, or the folder cannot be listed.
pub async fn browse_encrypted(
    cred: &Credential,
    bucket: &str,
    folder: &str,
    keys: Decrypting<'_>,
) -> Result<Vec<crate::remote::crypt::Browsed>, String> {
    let inner = remote_at(cred, bucket, folder, 0, Notes::default())?;
    existing_folder(&*inner).await?;
    let cipher = derive_cipher(keys.password.expose(), keys.salt.expose(), keys.filename_encryption).await?;
    CryptRemote::new(inner, cipher).browse().await.map_err(|e| format!("cannot list {e}"))
}

/// The children of the folder `bucket`/`folder` of a bucket store, as stored, sorted by name
/// (`Credential.ListDirectory` without encryption; mtimes from the listing, without a HEAD per
/// object).
///
/// # Errors
/// The folder or bucket does not exist, or cannot be listed.
pub async fn browse_folder(
    cred: &Credential,
    bucket: &str,
    folder: &str,
) -> Result<Vec<crate::remote::crypt::Browsed>, String> {
    let inner = remote_at(cred, bucket, folder, 0, Notes::default())?;
    existing_folder(&*inner).await?;
    let listed = inner.list_folder("").await.map_err(|e| format!("cannot list {e}"))?.unwrap_or_default();
    let mut out: Vec<crate::remote::crypt::Browsed> = listed
        .into_iter()
        .filter_map(|l| match l {
            Listed::Entry(e) | Listed::Unresolved { entry: e, .. } => Some(crate::remote::crypt::Browsed {
                name: e.path.rsplit_once('/').map_or(e.path.as_str(), |(_, n)| n).to_owned(),
                kind: e.kind,
                size: e.size,
                mtime: e.mtime,
                decrypted: false,
            }),
            Listed::Skipped { .. } | Listed::Error { .. } => None,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `Ok` when the tree's root folder exists; else what to tell the user.
async fn existing_folder(tree: &dyn Remote) -> Result<(), String> {
    match tree.root_state().await {
        Ok(RootState::Present) => Ok(()),
        Ok(RootState::Missing) => Err(format!("{}: no such folder", esc(&tree.describe()))),
        Err(e) => Err(format!("cannot list {e}")),
    }
}

/// How many over-long names a run reports one by one (the rest are counted).
const LONG_NAMES_SHOWN: usize = 1000;

/// With file name encryption: the source's files and folders whose name (one path segment)
/// encrypts to more than 255 bytes, i.e. is over 143 bytes, and how many there are. Lists the
/// source once; listing problems are left to the run's own listing.
async fn long_names(src: &Arc<dyn Remote>, opts: &ListOptions, cipher: &Cipher) -> (Vec<String>, usize) {
    let (tx, mut rx) = mpsc::channel(1024);
    let lister = {
        let (src, opts) = (src.clone(), opts.clone());
        tokio::spawn(async move { src.list(opts, tx).await })
    };
    let (mut shown, mut count) = (Vec::new(), 0);
    while let Some(item) = rx.recv().await {
        let Listed::Entry(e) = item else { continue };
        // Every folder is listed before its contents, so checking each entry's own name finds
        // every long segment once.
        let name = e.path.rsplit_once('/').map_or(e.path.as_str(), |(_, n)| n);
        if cipher.names().check_name_lengths(name).is_err() {
            count += 1;
            if shown.len() < LONG_NAMES_SHOWN {
                shown.push(format!("{} ({} bytes)", esc(&e.path), name.len()));
            }
        }
    }
    let _ = lister.await;
    (shown, count)
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

/// Things worth a line that are not errors (a disk that cannot hold owners, an ACL the
/// destination cannot keep): the first of each kind is logged, the rest counted.
struct NoteLog {
    log: Arc<JobLog>,
    seen: Mutex<BTreeMap<&'static str, u64>>,
}

impl NoteLog {
    fn sink(self: &Arc<Self>) -> Notes {
        let me = self.clone();
        Notes::new(move |kind, msg| {
            let n = {
                let mut seen = me.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let n = seen.entry(kind).or_insert(0);
                *n += 1;
                *n
            };
            if n == 1 {
                me.log.line(&format!("NOTE {msg}"));
            }
        })
    }

    fn summary(&self) {
        for (kind, n) in self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            if *n > 1 {
                self.log.line(&format!("NOTE {} more like the first {kind} note above", n - 1));
            }
        }
    }
}

/// The ownership rule of a PULL's local tree, and the job log line that says it.
fn pull_owners(o: Ownership) -> (Owners, &'static str) {
    match o {
        Ownership::Inherit => (
            Owners::Inherit,
            "Ownership: inherit: new files and folders get the owner and group of the folder they land in, \
             and its default ACL (or NFSv4 inheritable entries) from the file system",
        ),
        Ownership::Preserve => (
            Owners::Preserve { strict: true },
            "Ownership: preserve: owner, group, mode and ACLs from each object's metadata where it has them \
             (set-id bits of files dropped), else as inherit",
        ),
        Ownership::Root => (
            Owners::AsCreated,
            "Ownership: root: new files and folders are owned by the daemon's user (root), as TrueNAS does",
        ),
    }
}

/// Runs one job to its end.
pub async fn run(spec: RunSpec, progress: Arc<Progress>, log: Arc<JobLog>, cancel: CancellationToken) -> Outcome {
    let c = &spec.config;
    let notes = Arc::new(NoteLog { log: log.clone(), seen: Mutex::default() });
    // A dry run changes nothing, so it requests no restore either.
    let attrs = TaskAttrs { glacier_restore: c.attributes.glacier_restore && !spec.dry_run, ..c.attributes.clone() };
    let remote = match remote_with(&spec.credential, &attrs, spec.job, notes.sink()) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    // Keys are derived once per job; every file shares them.
    let crypt = if c.encryption {
        let keys = derive_cipher(c.encryption_password.expose(), c.encryption_salt.expose(), c.filename_encryption);
        match keys.await {
            Ok(cipher) => Some(Arc::new(CryptRemote::new(remote.clone(), cipher))),
            Err(e) => return Outcome::Failed(e),
        }
    } else {
        None
    };
    let remote: Arc<dyn Remote> = match &crypt {
        Some(crypt) => crypt.clone(),
        None => remote,
    };
    let (from, to) = match c.direction {
        Direction::Push => (c.path.clone(), remote.describe()),
        Direction::Pull => (remote.describe(), c.path.clone()),
    };
    log.line(&format!(
        "{} {}{}: {} -> {} (credential {:?}, {} transfers{})",
        c.direction,
        c.transfer_mode,
        if spec.dry_run { " (dry run)" } else { "" },
        esc(&from),
        esc(&to),
        spec.credential.name,
        c.transfers,
        match (c.encryption, c.filename_encryption) {
            (false, _) => "",
            (true, true) => ", encrypted, file names encrypted",
            (true, false) => ", encrypted, file names not encrypted",
        }
    ));
    let owners = if c.direction == Direction::Pull {
        let (owners, line) = pull_owners(c.ownership);
        log.line(line);
        owners
    } else {
        Owners::AsCreated
    };

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

    // The snapshot comes after the pre-script, so that what the script wrote is in it.
    let frozen = if c.snapshot && spec.dry_run {
        log.line("Snapshot not taken: dry run (the live folder is listed)");
        None
    } else if c.snapshot {
        match freeze(&spec, &log).await {
            Ok(f) => Some(f),
            Err(o) => return o,
        }
    } else {
        None
    };
    let local_root = frozen.as_ref().map_or_else(|| PathBuf::from(&c.path), |f| f.read_root().to_path_buf());
    let local: Arc<dyn Remote> = Arc::new(
        LocalFs::new(local_root, spec.job, c.follow_symlinks && c.direction == Direction::Push)
            .with_owners(owners)
            .with_notes(notes.sink()),
    );
    let (src, dst) = match c.direction {
        Direction::Push => (local, remote),
        Direction::Pull => (remote, local),
    };
    let outcome = if cancel.is_cancelled() {
        Outcome::Aborted
    } else {
        transfer(&spec, src, dst, crypt.as_deref(), &progress, &log, &cancel).await
    };
    notes.summary();
    let outcome = match frozen {
        Some(f) => {
            let name = f.name().to_owned();
            let note = |l: String| log.line(&l);
            match f.destroy(&note).await {
                Ok(()) => outcome,
                Err(e) => {
                    log.line(&format!(
                        "ERROR could not destroy snapshot {name}: {e}; the daemon destroys it at its next start"
                    ));
                    match outcome {
                        Outcome::Success => Outcome::Failed(format!(
                            "the transfer succeeded, but snapshot {name} could not be destroyed: {e}"
                        )),
                        other => other,
                    }
                }
            }
        }
        None => outcome,
    };
    if outcome != Outcome::Success {
        return outcome;
    }
    if !c.post_script.is_empty() {
        if spec.dry_run {
            log.line("[Post-script] not run: dry run");
        } else if let Err(e) =
            scripts::run(Phase::Post, &c.post_script, &env, timeout, &cancel, &log, &spec.work_dir).await
        {
            return if cancel.is_cancelled() { Outcome::Aborted } else { Outcome::Failed(e.to_string()) };
        }
    }
    log.line("Finished successfully");
    Outcome::Success
}

/// Takes the snapshot of the task path's dataset; the job's error when that fails.
async fn freeze(spec: &RunSpec, log: &Arc<JobLog>) -> Result<Frozen, Outcome> {
    let failed = |e: &dyn std::fmt::Display| {
        let msg = format!("snapshot: {e}; nothing was transferred");
        log.line(&format!("FAILED: {msg}"));
        Outcome::Failed(msg)
    };
    let zfs = Zfs::system().map_err(|e| failed(&e))?;
    let loc = locate(&zfs, Path::new(&spec.config.path)).await.map_err(|e| failed(&e))?;
    let fspec = FreezeSpec { task: spec.task, job: spec.job, state_dir: spec.state_dir.clone() };
    let note = |l: String| log.line(&l);
    Frozen::create(&zfs, &loc, &fspec, &note).await.map_err(|e| failed(&e))
}

/// Lists, plans and executes; finishes the folders the destination created.
#[allow(clippy::too_many_lines)] // the steps of a transfer, in order
async fn transfer(
    spec: &RunSpec,
    src: Arc<dyn Remote>,
    dst: Arc<dyn Remote>,
    crypt: Option<&CryptRemote>,
    progress: &Arc<Progress>,
    log: &Arc<JobLog>,
    cancel: &CancellationToken,
) -> Outcome {
    let c = &spec.config;
    match src.root_state().await {
        Ok(RootState::Present) => {}
        Ok(RootState::Missing) => {
            let what = if c.direction == Direction::Push { "source folder" } else { "remote folder" };
            return Outcome::Failed(format!("the {what} {} does not exist; nothing was changed", esc(&src.describe())));
        }
        Err(e) => return Outcome::Failed(format!("cannot read the source: {e}")),
    }
    let filter = match Filter::new(&c.include, &c.exclude) {
        Ok(f) => Arc::new(f),
        Err(e) => return Outcome::Failed(format!("filter: {e}")),
    };
    let opts = ListOptions { filter, follow_symlinks: c.follow_symlinks, versions: true, hints: Vec::new() };
    if let Some(crypt) = crypt.filter(|_| c.filename_encryption && c.direction == Direction::Push) {
        // rclone fails such names one by one mid-run; we refuse the job before any transfer.
        let (shown, count) = long_names(&src, &opts, crypt.cipher()).await;
        if count > 0 {
            for p in &shown {
                log.line(&format!("ERROR name too long for file name encryption: {p}"));
            }
            let first: Vec<&str> = shown.iter().take(5).map(String::as_str).collect();
            let e = format!(
                "{count} name(s) too long for file name encryption (at most 143 bytes per file or folder name; \
                 rename or exclude them): {}{}; nothing was transferred",
                first.join("; "),
                if count > first.len() { "; …" } else { "" }
            );
            log.line(&format!("FAILED: {e}"));
            return Outcome::Failed(e);
        }
    }
    let dst_missing = match dst.root_state().await {
        Ok(s) => s == RootState::Missing,
        Err(e) => return Outcome::Failed(format!("cannot use the destination: {e}")),
    };
    if let Some(crypt) = crypt.filter(|_| c.direction == Direction::Push && !dst_missing)
        && let Err(why) = crypt.check_keys().await
    {
        let e = format!(
            "the remote folder holds files encrypted with another password or salt ({why}); check \
             encryption_password and encryption_salt; nothing was transferred"
        );
        log.line(&format!("FAILED: {e}"));
        return Outcome::Failed(e);
    }
    if dst_missing && !spec.dry_run {
        if c.direction == Direction::Pull {
            return Outcome::Failed(format!("the destination folder {} does not exist", esc(&dst.describe())));
        }
        // PUSH creates the remote folder when missing.
        if let Err(e) = dst.create_root().await {
            return Outcome::Failed(format!("cannot create the remote folder: {e}"));
        }
    }

    let (stx, srx) = mpsc::channel(1024);
    let (dtx, drx) = mpsc::channel(1024);
    // The bucket side's listing carries no mtimes: they come from what the task's last run saw,
    // and only where the listing shows another version from the store (one HEAD each).
    // The bucket side of the task (the destination of a PUSH, the source of a PULL).
    let remote_side = if c.direction == Direction::Push { &dst } else { &src };
    let seen = spec.task.map(|t| {
        let endpoint = match &spec.credential.attrs {
            CredentialAttrs::S3(a) => a.endpoint.as_str(),
            CredentialAttrs::B2(a) => a.endpoint.as_str(),
            CredentialAttrs::Local(_) => "",
        };
        let id = format!("{endpoint} {} {} {}", remote_side.describe(), c.encryption, c.filename_encryption);
        Seen::open(seen::file_for(&spec.state_dir, t), id)
    });
    let stats = Arc::new(AtomicU64::new(0));
    let resolved = |remote: &Arc<dyn Remote>, tx: mpsc::Sender<Listed>| {
        let (rtx, rrx) = mpsc::channel(1024);
        tokio::spawn(seen::resolve(remote.clone(), seen.clone(), rrx, tx, stats.clone()));
        rtx
    };
    let (stx, dtx) = match c.direction {
        Direction::Push => (stx, resolved(&dst, dtx)),
        Direction::Pull => (resolved(&src, stx), dtx),
    };
    // The folders the last run met first: a bucket walked folder by folder lists them at once.
    let hints = match &seen {
        Some(s) => {
            let s = s.clone();
            tokio::task::spawn_blocking(move || s.first_folders(LIST_HINTS)).await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let (src_hints, dst_hints) = match c.direction {
        Direction::Push => (Vec::new(), hints),
        Direction::Pull => (hints, Vec::new()),
    };
    let src_list = {
        let (src, opts) = (src.clone(), ListOptions { hints: src_hints, ..opts.clone() });
        tokio::spawn(async move { src.list(opts, stx).await })
    };
    let dst_list = {
        let (dst, opts) = (dst.clone(), ListOptions { follow_symlinks: false, hints: dst_hints, ..opts });
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
    let want_meta = c.direction == Direction::Push || c.ownership == Ownership::Preserve;
    let exec_opts = ExecOptions {
        want_meta,
        mode,
        transfers: usize::try_from(c.transfers).unwrap_or(4),
        dry_run: spec.dry_run,
        max_delete: if mode == Mode::Sync { c.max_delete } else { 0 },
        empty_source_guard: mode == Mode::Sync,
        src_name: esc(&src.describe()),
        dst_name: esc(&dst.describe()),
        seen: seen.clone().filter(|_| c.direction == Direction::Push),
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
                        let e = if path.is_empty() {
                            format!("{side}: {reason}")
                        } else {
                            format!("{side} {path}: {reason}")
                        };
                        log.line(&format!("ERROR {e}"));
                        errs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e);
                    }
                    Listed::Entry(_) | Listed::Unresolved { .. } => {}
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
    if let Some(seen) = seen
        && let Ok(Err(e)) = tokio::task::spawn_blocking(move || seen.commit()).await
    {
        log.line(&format!("Note: the listing cache could not be written ({e}); the next run reads mtimes again"));
    }
    let counts = remote_side.requests();
    if !counts.is_empty() {
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        log.line(&format!(
            "Requests: {} ({} mtime(s) read by HEAD, the rest known from the last run)",
            parts.join(", "),
            stats.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    if !spec.dry_run && !report.aborted && !cancel.is_cancelled() {
        finish_dirs(&*src, &*dst, want_meta, log, &mut report).await;
    }
    let archived: Vec<Archived> = src.archived().into_iter().chain(dst.archived()).collect();
    finish(spec, report, &archived, progress, log, cancel)
}

/// Folders the destination created, deepest first, after their contents: owner, mode, ACLs
/// and mtime from the source's metadata as the destination's rule says.
async fn finish_dirs(src: &dyn Remote, dst: &dyn Remote, want_meta: bool, log: &JobLog, report: &mut Report) {
    let mut dirs = dst.created_dirs();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in dirs {
        // A bucket store has no folders, so nothing to read about them (asking would HEAD a key
        // that is a prefix; s3s-fs answers that with 500 until the retries run out).
        let meta = if want_meta && src.has_dirs() {
            match src.read_meta(&d).await {
                Ok(m) => m,
                Err(e) => {
                    log.line(&format!("ERROR {e}"));
                    report.errors.push(e.to_string());
                    continue;
                }
            }
        } else {
            None
        };
        if let Err(e) = dst.finish_dir(&d, meta.as_ref()).await {
            log.line(&format!("ERROR {e}"));
            report.errors.push(e.to_string());
        }
    }
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

/// The summary line and the outcome of the transfer (the post-script comes later, after the
/// snapshot is gone).
fn finish(
    spec: &RunSpec,
    report: Report,
    archived: &[Archived],
    progress: &Progress,
    log: &Arc<JobLog>,
    cancel: &CancellationToken,
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
    // Archived objects get their own advice instead of a line each among the errors.
    problems.extend(archive_problem(archived, RESTORE_DAYS));
    let errors: Vec<&str> =
        report.errors.iter().map(String::as_str).filter(|e| archived.is_empty() || !is_archive_error(e)).collect();
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(5).copied().collect();
        problems.push(format!(
            "{} file(s) failed: {}{}",
            errors.len(),
            shown.join("; "),
            if errors.len() > 5 { "; …" } else { "" }
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
    Outcome::Success
}
