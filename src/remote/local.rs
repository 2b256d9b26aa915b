//! A local folder as a tree: the task's own path, and the LOCAL provider (USB disks, NFS mounts).
//! Every access below the root walks one component at a time with `O_NOFOLLOW` (`openat`), so a
//! symlink planted inside the tree can never redirect a write or a delete outside it; writes land
//! under a recognisable temporary name (`.cloudsyncd-<job>-<random>.partial`) and are renamed when
//! complete.
//!
//! Ownership of what it creates follows an [`Owners`] rule, applied with `fchown`/`fchmod`/
//! `fsetxattr` on descriptors opened through those `O_NOFOLLOW` walks (a planted symlink is never
//! followed): files before they are renamed into place, folders when they are made and — with
//! `Preserve` — again after their contents ([`Remote::finish_dir`]).
//!
//! Create modes: new files are created 0666 and folders 0777, so that a default ACL of the folder
//! they land in decides their permissions (the kernel applies it and ignores the umask); we never
//! narrow them at creation, which would cut the inherited ACL's mask. In a folder without a
//! default ACL they are then set to 0644 and 0755, whatever the daemon's own umask (0077 in the
//! unit, for its private files); on a file system without POSIX ACLs (ZFS with NFSv4 ACLs) the
//! mode is left to the file system's inheritance. Imports std, rustix, tokio and
//! `engine::{entry, filter, names}`, `remote::meta`.

use super::{
    ByteStream, ListOptions, Listed, RangeSource, Remote, RemoteError, RootState, Upload, WriteAt, Written,
    meta::{Meta, PosixAcl, XATTR_ACL_ACCESS, XATTR_ACL_DEFAULT, XATTR_NFS4_ACL},
};
use crate::engine::{
    entry::{Entry, Kind, Mtime, WalkStep, walk_steps},
    names::{check_remote_path, escape_for_log},
};
use rustix::fs::Timespec;
use rustix::{
    fd::{AsFd, BorrowedFd, OwnedFd},
    fs::{Advice, AtFlags, FileType, Gid, Mode, OFlags, Stat, Timestamps, Uid, XattrFlags},
    io::Errno,
};
use std::{
    num::NonZeroU64,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};
use tokio::{io::AsyncWriteExt, sync::mpsc};

const PARTIAL_PREFIX: &str = ".cloudsyncd-";
const PARTIAL_SUFFIX: &str = ".partial";

/// The temporary name of a file being written by job `job`.
#[must_use]
pub fn partial_name(job: u64) -> String {
    let mut r = [0u8; 8];
    // Uniqueness also comes from O_EXCL; randomness only avoids retries.
    let _ = getrandom::fill(&mut r);
    format!("{PARTIAL_PREFIX}{job}-{:016x}{PARTIAL_SUFFIX}", u64::from_le_bytes(r))
}

/// The job that wrote a temporary file, if `name` is one of ours.
#[must_use]
pub fn partial_job(name: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(name).ok()?;
    let rest = s.strip_prefix(PARTIAL_PREFIX)?.strip_suffix(PARTIAL_SUFFIX)?;
    let (job, rand) = rest.split_once('-')?;
    (rand.len() == 16 && rand.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    job.parse().ok()
}

/// What a local tree does with the owner, group, mode and ACLs of the files and folders it
/// creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owners {
    /// Leave them as created: owned by the daemon's user (root), permissions from the create
    /// mode and the folder's default ACL. TrueNAS's behaviour (`ownership=root`).
    #[default]
    AsCreated,
    /// The owner and group of the folder it lands in; the folder's default ACL (or NFSv4
    /// inheritable entries) is applied by the file system at creation.
    Inherit,
    /// Owner, group, mode and ACLs from the object's metadata where present, else as
    /// `Inherit`. `strict`: a refused change fails the file (a restore); otherwise it is noted
    /// once in the job log and the file is kept (a LOCAL remote on a disk that cannot hold
    /// owners, such as FAT).
    Preserve {
        /// Refused changes fail the file.
        strict: bool,
    },
}

/// Where a tree reports things worth a line in the job log that are not errors: `(kind,
/// message)`; the receiver may log only the first message of each kind.
#[derive(Clone, Default)]
pub struct Notes(Option<Arc<dyn Fn(&'static str, String) + Send + Sync>>);

impl Notes {
    /// Notes go to `f`.
    pub fn new(f: impl Fn(&'static str, String) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    fn note(&self, kind: &'static str, msg: String) {
        match &self.0 {
            Some(f) => f(kind, msg),
            None => tracing::info!(kind, "{msg}"),
        }
    }
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Notes(sink)" } else { "Notes(tracing)" })
    }
}

/// A local folder tree.
#[derive(Debug, Clone)]
pub struct LocalFs {
    root: PathBuf,
    job: u64,
    follow_symlinks: bool,
    owners: Owners,
    notes: Notes,
    created: Arc<Mutex<Vec<String>>>,
    /// Held from a folder's creation until its owner is settled, and while reading the owner a
    /// new entry inherits: a transfer never copies the owner of a folder another transfer has
    /// just made and not yet handed over (it would still be root's).
    settling: Arc<Mutex<()>>,
}

fn mtime_of(st: &Stat) -> Mtime {
    Mtime::from_parts(st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0))
}

fn to_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// One child of a folder: name, kind, stat (of the target when reached through a symlink), and
/// whether it was reached through a symlink.
type Child = (String, Kind, Stat, bool);

fn entry_of(path: String, kind: Kind, st: &Stat) -> Entry {
    let size = if kind == Kind::File { u64::try_from(st.st_size).unwrap_or(0) } else { 0 };
    Entry { path, kind, size, mtime: mtime_of(st) }
}

fn split(path: &str) -> Result<(Vec<&str>, &str), RemoteError> {
    check_remote_path(path).map_err(|e| RemoteError::Refused { path: path.to_owned(), reason: e.to_string() })?;
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    Ok((parts, name))
}

impl LocalFs {
    /// A tree rooted at `root`; `job` names the temporary files this instance writes.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>, job: u64, follow_symlinks: bool) -> Self {
        Self {
            root: root.into(),
            job,
            follow_symlinks,
            owners: Owners::AsCreated,
            notes: Notes::default(),
            created: Arc::default(),
            settling: Arc::default(),
        }
    }

    /// The same tree with an ownership rule for what it creates.
    #[must_use]
    pub fn with_owners(mut self, owners: Owners) -> Self {
        self.owners = owners;
        self
    }

    /// The same tree, reporting notes to `notes`.
    #[must_use]
    pub fn with_notes(mut self, notes: Notes) -> Self {
        self.notes = notes;
        self
    }

    /// The ownership rule.
    #[must_use]
    pub fn owners(&self) -> Owners {
        self.owners
    }

    /// The root folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn open_root(&self) -> Result<OwnedFd, RemoteError> {
        rustix::fs::open(&self.root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RemoteError::io(&self.root.display().to_string(), to_io(e)))
    }

    fn nofollow(&self) -> OFlags {
        if self.follow_symlinks { OFlags::empty() } else { OFlags::NOFOLLOW }
    }

    /// Opens the folder `parts` below the root one component at a time, never following a
    /// symlink (unless the tree follows symlinks, which only a PUSH source does); creates missing
    /// folders when `create`.
    fn open_dir(&self, parts: &[&str], create: bool, shown: &str) -> Result<OwnedFd, RemoteError> {
        self.open_dir_creating(parts, create, shown, &mut Vec::new())
    }

    /// [`LocalFs::open_dir`] that also notes every folder it created (its parent and name, outermost
    /// first), so that a write that does not complete can remove them again.
    fn open_dir_creating(
        &self,
        parts: &[&str],
        create: bool,
        shown: &str,
        created: &mut Vec<(OwnedFd, String)>,
    ) -> Result<OwnedFd, RemoteError> {
        let mut fd = self.open_root()?;
        for (i, comp) in parts.iter().enumerate() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | self.nofollow();
            let mut made = false;
            let next = match rustix::fs::openat(&fd, *comp, flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    let _settling = self.settling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    // 0777: the folder's default ACL, else the umask, decides (see the module docs).
                    match rustix::fs::mkdirat(&fd, *comp, Mode::from_raw_mode(0o777)) {
                        Ok(()) => made = true,
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(RemoteError::io(shown, to_io(e))),
                    }
                    // Never through a symlink, even one planted right after mkdirat.
                    let next = rustix::fs::openat(&fd, *comp, flags | OFlags::NOFOLLOW, Mode::empty());
                    if made && let Ok(next) = &next {
                        let path = parts[..=i].join("/");
                        self.created.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(path.clone());
                        fresh_mode(next.as_fd(), fd.as_fd(), true);
                        if self.owners != Owners::AsCreated {
                            let d = rustix::fs::fstat(&fd).map_err(|e| RemoteError::io(&path, to_io(e)))?;
                            self.inherit_from(next.as_fd(), &d, &path)?;
                        }
                    }
                    next
                }
                other => other,
            };
            let next = next.map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR | Errno::MLINK => RemoteError::Refused {
                    path: shown.to_owned(),
                    reason: format!("{comp:?} is a symlink or not a folder; refusing to go through it"),
                },
                e => RemoteError::io(shown, to_io(e)),
            })?;
            let parent = std::mem::replace(&mut fd, next);
            if made {
                created.push((parent, (*comp).to_owned()));
            }
        }
        Ok(fd)
    }

    fn stat_blocking(&self, path: &str) -> Result<Option<Entry>, RemoteError> {
        let (parts, name) = split(path)?;
        let dir = match self.open_dir(&parts, false, path) {
            Err(RemoteError::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => Kind::Dir,
                    FileType::RegularFile => Kind::File,
                    _ => {
                        return Err(RemoteError::Refused {
                            path: path.to_owned(),
                            reason: "not a regular file or folder".into(),
                        });
                    }
                };
                Ok(Some(Entry {
                    path: path.to_owned(),
                    kind,
                    size: if kind == Kind::File { u64::try_from(st.st_size).unwrap_or(0) } else { 0 },
                    mtime: mtime_of(&st),
                }))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(RemoteError::io(path, to_io(e))),
        }
    }

    /// Opens the file at `path` for reading, walking the tree without following symlinks.
    async fn open_file(&self, path: &str) -> Result<std::fs::File, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        Ok(std::fs::File::from(blocking(path, move || me.open_file_now(&p)).await?))
    }

    /// [`Self::open_file`] on the calling (blocking) thread.
    fn open_file_now(&self, p: &str) -> Result<OwnedFd, RemoteError> {
        let (parts, name) = split(p)?;
        let dir = self.open_dir(&parts, false, p)?;
        rustix::fs::openat(&dir, name, OFlags::RDONLY | OFlags::CLOEXEC | self.nofollow(), Mode::empty()).map_err(|e| {
            match e {
                Errno::LOOP => RemoteError::Refused { path: p.to_owned(), reason: "is a symlink".into() },
                e => RemoteError::io(p, to_io(e)),
            }
        })
    }

    /// Gives `fd` (just created in `dir`) the owner and group of `dir`. A refusal (the daemon
    /// not running as root) is noted, not fatal: the file keeps the daemon's owner.
    fn inherit(&self, fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, path: &str) -> Result<(), RemoteError> {
        let d = self.settled_stat(dir, path)?;
        self.inherit_from(fd, &d, path)
    }

    /// The stat of `dir` once any folder creation in progress has settled its owner.
    fn settled_stat(&self, dir: BorrowedFd<'_>, path: &str) -> Result<Stat, RemoteError> {
        let _settling = self.settling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rustix::fs::fstat(dir).map_err(|e| RemoteError::io(path, to_io(e)))
    }

    /// Gives `fd` the owner and group `d` (its folder's stat) has.
    fn inherit_from(&self, fd: BorrowedFd<'_>, d: &Stat, path: &str) -> Result<(), RemoteError> {
        let f = rustix::fs::fstat(fd).map_err(|e| RemoteError::io(path, to_io(e)))?;
        if (f.st_uid, f.st_gid) == (d.st_uid, d.st_gid) {
            return Ok(());
        }
        if let Err(e) = rustix::fs::fchown(fd, Some(Uid::from_raw(d.st_uid)), Some(Gid::from_raw(d.st_gid))) {
            self.notes.note(
                "inherit",
                format!(
                    "{} keeps owner {}:{} instead of its folder's {}:{}: {}",
                    escape_for_log(path.as_bytes()),
                    f.st_uid,
                    f.st_gid,
                    d.st_uid,
                    d.st_gid,
                    to_io(e)
                ),
            );
        }
        Ok(())
    }

    /// Applies the ownership rule to `fd`, a file or folder this tree just made in `dir`, for an
    /// object with `meta`.
    fn settle(
        &self,
        fd: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        meta: Option<&Meta>,
        is_dir: bool,
        path: &str,
    ) -> Result<(), RemoteError> {
        let strict = match self.owners {
            Owners::AsCreated => return Ok(()),
            Owners::Inherit => return self.inherit(fd, dir, path),
            Owners::Preserve { strict } => strict,
        };
        let Some(m) = meta.filter(|m| m.uid.is_some() || m.gid.is_some() || m.mode.is_some()) else {
            return self.inherit(fd, dir, path);
        };
        let shown = escape_for_log(path.as_bytes());
        let fail = |what: &str, e: Errno| -> Result<(), RemoteError> {
            if strict {
                Err(RemoteError::Refused {
                    path: path.to_owned(),
                    reason: format!("cannot set its {what}: {}", to_io(e)),
                })
            } else {
                self.notes.note(
                    "preserve",
                    format!("the {what} of {shown} could not be kept on {}: {}", self.root.display(), to_io(e)),
                );
                Ok(())
            }
        };
        let d = self.settled_stat(dir, path)?;
        let cur = rustix::fs::fstat(fd).map_err(|e| RemoteError::io(path, to_io(e)))?;
        let (uid, gid) = (m.uid.unwrap_or(d.st_uid), m.gid.unwrap_or(d.st_gid));
        if (cur.st_uid, cur.st_gid) != (uid, gid)
            && let Err(e) = rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        {
            fail("owner", e)?;
        }
        if let Some(perm) = m.perm() {
            // Set-user-id and set-group-id bits on files never come back from a remote: whoever
            // can write the bucket could otherwise plant a set-uid-root program.
            let keep = if is_dir { 0o3777 } else { 0o777 };
            match rustix::fs::fchmod(fd, Mode::from_raw_mode(perm & keep)) {
                Ok(()) => {}
                // A sandbox that forbids set-id bits (systemd's RestrictSUIDSGID): the rest of
                // the mode is kept, and the job log says so.
                Err(Errno::PERM) if perm & keep & 0o6000 != 0 => {
                    rustix::fs::fchmod(fd, Mode::from_raw_mode(perm & 0o1777)).or_else(|e| fail("mode", e))?;
                    self.notes.note("setid", format!("the set-group-id bit of {shown} was refused and not restored"));
                }
                Err(e) => fail("mode", e)?,
            }
        }
        // With a mode in the metadata the ACLs are exact: an ACL inherited from the destination
        // folder goes when the original had none.
        let exact = m.mode.is_some();
        for (name, acl) in [(XATTR_ACL_ACCESS, m.acl_access.as_ref()), (XATTR_ACL_DEFAULT, m.acl_default.as_ref())] {
            if name == XATTR_ACL_DEFAULT && !is_dir {
                continue;
            }
            let res = match acl {
                Some(a) => rustix::fs::fsetxattr(fd, name, &a.to_xattr(), XattrFlags::empty()),
                None if exact => match rustix::fs::fremovexattr(fd, name) {
                    Err(Errno::NODATA | Errno::NOTSUP | Errno::NOSYS) => Ok(()),
                    other => other,
                },
                None => Ok(()),
            };
            match res {
                Ok(()) => {}
                Err(Errno::NOTSUP | Errno::NOSYS) => self.notes.note(
                    "acl",
                    format!(
                        "the POSIX ACL of {shown} was not kept: the file system of {} does not support POSIX ACLs",
                        self.root.display()
                    ),
                ),
                Err(e) => fail("POSIX ACL", e)?,
            }
        }
        if let Some(x) = &m.nfs4_acl {
            match rustix::fs::fsetxattr(fd, XATTR_NFS4_ACL, x, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP | Errno::NOSYS) => self.notes.note(
                    "nfs4",
                    format!(
                        "the NFSv4 ACL of {shown} was not restored: the file system of {} does not offer {XATTR_NFS4_ACL}",
                        self.root.display()
                    ),
                ),
                Err(e) => fail("NFSv4 ACL", e)?,
            }
        }
        Ok(())
    }

    fn read_meta_blocking(&self, path: &str) -> Result<Option<Meta>, RemoteError> {
        let (parts, name) = split(path)?;
        let dir = match self.open_dir(&parts, false, path) {
            Err(RemoteError::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY | self.nofollow();
        let fd = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(RemoteError::io(path, to_io(e))),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| RemoteError::io(path, to_io(e)))?;
        let is_dir = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => true,
            FileType::RegularFile => false,
            _ => return Ok(None),
        };
        let acl = |name: &str| -> Result<Option<PosixAcl>, RemoteError> {
            match get_xattr(fd.as_fd(), name, path)? {
                Some(b) => PosixAcl::from_xattr(&b)
                    .map(Some)
                    .map_err(|e| RemoteError::Refused { path: path.to_owned(), reason: format!("{name}: {e}") }),
                None => Ok(None),
            }
        };
        Ok(Some(Meta {
            uid: Some(st.st_uid),
            gid: Some(st.st_gid),
            mode: Some(st.st_mode),
            mtime: Some(mtime_of(&st)),
            acl_access: acl(XATTR_ACL_ACCESS)?,
            acl_default: if is_dir { acl(XATTR_ACL_DEFAULT)? } else { None },
            nfs4_acl: get_xattr(fd.as_fd(), XATTR_NFS4_ACL, path)?,
        }))
    }

    fn finish_dir_blocking(&self, path: &str, meta: &Meta) -> Result<(), RemoteError> {
        let (parts, name) = split(path)?;
        let parent = self.open_dir(&parts, false, path)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::empty()).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => RemoteError::Refused {
                path: path.to_owned(),
                reason: "is now a symlink or not a folder; left alone".into(),
            },
            e => RemoteError::io(path, to_io(e)),
        })?;
        self.settle(fd.as_fd(), parent.as_fd(), Some(meta), true, path)?;
        if let Some(t) = meta.mtime {
            let ts = Timespec { tv_sec: t.secs(), tv_nsec: i64::from(t.subsec_nanos()) };
            rustix::fs::futimens(&fd, &Timestamps { last_access: ts, last_modification: ts })
                .map_err(|e| RemoteError::io(path, to_io(e)))?;
        }
        Ok(())
    }

    /// The depth-first walk, emitting paths in byte order of the whole path.
    fn walk(&self, opts: &ListOptions, tx: &mpsc::Sender<Listed>) -> Result<(), RemoteError> {
        let root = self.open_root()?;
        let st = rustix::fs::fstat(&root).map_err(|e| RemoteError::io(&self.root.display().to_string(), to_io(e)))?;
        let mut ancestors = vec![(st.st_dev, st.st_ino)];
        self.walk_dir(&root, "", opts, tx, &mut ancestors);
        Ok(())
    }

    /// Reads one folder's children (name, kind, stat, reached through a symlink), sending what
    /// is skipped or unreadable to `problem`; `None` once `problem` returns false (the listing
    /// was dropped). Temporary files are never children; with `sweep`, those of other jobs
    /// (leftovers of interrupted runs) are removed on the way.
    fn read_children(
        &self,
        dir: &OwnedFd,
        prefix: &str,
        sweep: bool,
        problem: &mut dyn FnMut(Listed) -> bool,
    ) -> Option<Vec<Child>> {
        let shown = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let rd = match rustix::fs::Dir::read_from(dir) {
            Ok(rd) => rd,
            Err(e) => return problem(Listed::Error { path: shown(""), reason: to_io(e).to_string() }).then(Vec::new),
        };
        let mut children: Vec<Child> = Vec::new();
        for ent in rd {
            let ent = match ent {
                Ok(e) => e,
                Err(e) => {
                    if !problem(Listed::Error { path: shown(""), reason: to_io(e).to_string() }) {
                        return None;
                    }
                    break;
                }
            };
            let raw = ent.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            if let Some(job) = partial_job(raw) {
                // A leftover of an interrupted run is removed; our own temporary files are not
                // user files either.
                if sweep && job != self.job {
                    let _ = rustix::fs::unlinkat(dir, ent.file_name(), AtFlags::empty());
                }
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                let p = format!(
                    "{}{}",
                    if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
                    escape_for_log(raw)
                );
                if !problem(Listed::Skipped { path: p, reason: "name is not valid UTF-8".into() }) {
                    return None;
                }
                continue;
            };
            let st = match rustix::fs::statat(dir, ent.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    if !problem(Listed::Error { path: shown(name), reason: to_io(e).to_string() }) {
                        return None;
                    }
                    continue;
                }
            };
            let (st, via_link) = match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if !self.follow_symlinks => {
                    if !problem(Listed::Skipped {
                        path: shown(name),
                        reason: "symlink skipped (follow_symlinks is off)".into(),
                    }) {
                        return None;
                    }
                    continue;
                }
                FileType::Symlink => match rustix::fs::statat(dir, ent.file_name(), AtFlags::empty()) {
                    Ok(t) => (t, true),
                    Err(e) => {
                        if !problem(Listed::Error {
                            path: shown(name),
                            reason: format!("broken symlink: {}", to_io(e)),
                        }) {
                            return None;
                        }
                        continue;
                    }
                },
                _ => (st, false),
            };
            let kind = match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Kind::Dir,
                FileType::RegularFile => Kind::File,
                _ => {
                    if !problem(Listed::Skipped { path: shown(name), reason: "not a regular file".into() }) {
                        return None;
                    }
                    continue;
                }
            };
            children.push((name.to_owned(), kind, st, via_link));
        }
        Some(children)
    }

    fn walk_dir(
        &self,
        dir: &OwnedFd,
        prefix: &str,
        opts: &ListOptions,
        tx: &mpsc::Sender<Listed>,
        ancestors: &mut Vec<(u64, u64)>,
    ) -> bool {
        let send = |l: Listed| tx.blocking_send(l).is_ok();
        let shown = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let Some(children) = self.read_children(dir, prefix, true, &mut |l| send(l)) else {
            return false;
        };
        // Byte order of the whole path: a folder's own entry sorts as "name", its contents as
        // "name/…", so siblings like "name-x" and "name.txt" come between the two.
        let names: Vec<(String, Kind)> = children.iter().map(|c| (c.0.clone(), c.1)).collect();
        let mut included = vec![false; children.len()];
        for step in walk_steps(&names) {
            match step {
                WalkStep::Emit(i) => {
                    let (name, kind, st, _) = &children[i];
                    let path = shown(name);
                    let entry = match kind {
                        Kind::File if opts.filter.includes_file(&path) => Entry {
                            path,
                            kind: *kind,
                            size: u64::try_from(st.st_size).unwrap_or(0),
                            mtime: mtime_of(st),
                        },
                        Kind::Dir if opts.filter.includes_dir(&path) => {
                            if ancestors.contains(&(st.st_dev, st.st_ino)) {
                                if !send(Listed::Skipped { path, reason: "symlink loop".into() }) {
                                    return false;
                                }
                                continue;
                            }
                            included[i] = true;
                            Entry { path, kind: *kind, size: 0, mtime: mtime_of(st) }
                        }
                        _ => continue,
                    };
                    if !send(Listed::Entry(entry)) {
                        return false;
                    }
                }
                WalkStep::Descend(i) => {
                    if !included[i] {
                        continue;
                    }
                    let (name, _, st, via_link) = &children[i];
                    let path = shown(name);
                    let flags = OFlags::RDONLY
                        | OFlags::DIRECTORY
                        | OFlags::CLOEXEC
                        | if *via_link { OFlags::empty() } else { OFlags::NOFOLLOW };
                    match rustix::fs::openat(dir, name.as_str(), flags, Mode::empty()) {
                        Ok(sub) => {
                            ancestors.push((st.st_dev, st.st_ino));
                            let go_on = self.walk_dir(&sub, &path, opts, tx, ancestors);
                            ancestors.pop();
                            if !go_on {
                                return false;
                            }
                        }
                        Err(e) => {
                            if !send(Listed::Error { path, reason: to_io(e).to_string() }) {
                                return false;
                            }
                        }
                    }
                }
            }
        }
        true
    }

    fn sweep_dir(dir: &OwnedFd, keep: Option<u64>, depth: usize) -> u64 {
        let Ok(rd) = rustix::fs::Dir::read_from(dir) else { return 0 };
        let mut n = 0;
        let mut subdirs = Vec::new();
        for ent in rd.flatten() {
            let raw = ent.file_name().to_bytes();
            if raw == b"." || raw == b".." || raw == b".zfs" {
                continue;
            }
            if let Some(job) = partial_job(raw) {
                if Some(job) != keep && rustix::fs::unlinkat(dir, ent.file_name(), AtFlags::empty()).is_ok() {
                    n += 1;
                }
                continue;
            }
            if ent.file_type() == FileType::Directory {
                subdirs.push(ent.file_name().to_owned());
            }
        }
        if depth < 256 {
            for s in subdirs {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
                if let Ok(sub) = rustix::fs::openat(dir, s.as_c_str(), flags, Mode::empty()) {
                    n += Self::sweep_dir(&sub, keep, depth + 1);
                }
            }
        }
        n
    }
}

/// Permissions of a file or folder just created in `dir` with 0666/0777: 0644/0755 unless a
/// default ACL of `dir` decided them (see the module docs). Best effort: a file system that
/// refuses keeps what the kernel gave.
fn fresh_mode(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, is_dir: bool) {
    if rustix::fs::fgetxattr_query(dir, XATTR_ACL_DEFAULT) == Err(Errno::NODATA) {
        let _ = rustix::fs::fchmod(fd, Mode::from_raw_mode(if is_dir { 0o755 } else { 0o644 }));
    }
}

/// The value of xattr `name`, `None` when unset or unsupported by the file system.
fn get_xattr(fd: BorrowedFd<'_>, name: &str, path: &str) -> Result<Option<Vec<u8>>, RemoteError> {
    let mut buf = vec![0u8; 512];
    for _ in 0..4 {
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA | Errno::NOTSUP | Errno::NOSYS) => return Ok(None),
            Err(Errno::RANGE) => {
                let want = rustix::fs::fgetxattr_query(fd, name).unwrap_or(0);
                buf.resize(want.max(buf.len() * 4), 0);
            }
            Err(e) => return Err(RemoteError::io(path, to_io(e))),
        }
    }
    Err(RemoteError::Refused { path: path.to_owned(), reason: format!("{name} keeps changing size") })
}

struct LocalUpload {
    dir: Arc<OwnedFd>,
    tmp: String,
    name: String,
    path: String,
    file: Option<tokio::fs::File>,
    mtime: Mtime,
    fs: LocalFs,
    meta: Option<Meta>,
    /// Folders made for this file (parent, name; outermost first), removed again if it fails.
    created: Vec<(OwnedFd, String)>,
    /// Bytes written so far, and how many of them were handed to the disk ([`WRITEBACK_STEP`]).
    written: u64,
    kicked: u64,
}

/// A file being written is handed to the disk in steps of this many bytes while it arrives, so
/// that the fsync before its rename finds little left to write (it waited for the whole file:
/// 0.8 s of a 3.4 s pull of 1 GiB here).
const WRITEBACK_STEP: u64 = 8 << 20;

impl LocalUpload {
    /// Removes what a write that did not complete left: its temporary file, and the folders made
    /// for it while they are empty (a folder another write is filling stays).
    fn discard(&mut self) {
        let _ = rustix::fs::unlinkat(&*self.dir, self.tmp.as_str(), AtFlags::empty());
        for (parent, name) in self.created.drain(..).rev() {
            let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR);
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Never leave a temporary file behind, whatever ended the upload.
        if self.file.is_some() {
            self.discard();
        }
    }
}

#[async_trait::async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, buf: &[u8]) -> Result<(), RemoteError> {
        let f = self.file.as_mut().expect("write after finish");
        f.write_all(buf).await.map_err(|e| RemoteError::io(&self.path, e))?;
        // The file's writes run one after the other: all before this one are in the page cache.
        let before = self.written;
        self.written += buf.len() as u64;
        if before - self.kicked >= WRITEBACK_STEP {
            // Linux starts writing the dirty pages of the range back without waiting for them
            // (and drops the clean ones: a restore does not crowd out the NAS's cache). Advice
            // only: a refusal changes nothing but the speed.
            let _ = rustix::fs::fadvise(&*f, self.kicked, NonZeroU64::new(before - self.kicked), Advice::DontNeed);
            self.kicked = before;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Option<Written>, RemoteError> {
        let mut f = self.file.take().expect("finish twice");
        let res = async {
            f.flush().await?;
            f.sync_data().await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        let std_file = f.into_std().await;
        let path = self.path.clone();
        let (dir, tmp, name, mtime) = (self.dir.clone(), self.tmp.clone(), self.name.clone(), self.mtime);
        let (fs, meta) = (self.fs.clone(), self.meta.take());
        let done = tokio::task::spawn_blocking(move || -> Result<(), RemoteError> {
            res.map_err(|e| RemoteError::io(&path, e))?;
            let ts = Timespec { tv_sec: mtime.secs(), tv_nsec: i64::from(mtime.subsec_nanos()) };
            rustix::fs::futimens(&std_file, &Timestamps { last_access: ts, last_modification: ts })
                .map_err(|e| RemoteError::io(&path, to_io(e)))?;
            // Owner, mode and ACLs before the file appears under its name.
            fs.settle(std_file.as_fd(), dir.as_fd(), meta.as_ref(), false, &path)?;
            drop(std_file);
            rustix::fs::renameat(&*dir, tmp.as_str(), &*dir, name.as_str()).map_err(|e| match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                    RemoteError::Refused { path: path.clone(), reason: "a folder is in the way".into() }
                }
                e => RemoteError::io(&path, to_io(e)),
            })
        })
        .await
        .unwrap_or_else(|e| {
            Err(RemoteError::Refused { path: self.path.clone(), reason: format!("write task failed: {e}") })
        });
        if done.is_err() {
            self.discard();
        } else {
            self.created.clear();
        }
        done.map(|()| None)
    }

    async fn abort(mut self: Box<Self>) {
        self.file.take();
        self.discard();
    }

    async fn positional(&mut self) -> Result<Option<Arc<dyn WriteAt>>, RemoteError> {
        // A second descriptor of the same open file: positional writes through it land in the
        // temporary file that finish() syncs, stamps and renames (or discard() removes).
        let f = self.file.as_ref().expect("positional after finish");
        let dup = f.try_clone().await.map_err(|e| RemoteError::io(&self.path, e))?.into_std().await;
        Ok(Some(Arc::new(PositionalFile(dup))))
    }

    fn set_meta(&mut self, meta: &Meta) {
        self.meta = Some(meta.clone());
    }
}

async fn blocking<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> Result<T, RemoteError> + Send + 'static,
) -> Result<T, RemoteError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(RemoteError::Refused { path: path.to_owned(), reason: format!("task failed: {e}") }))
}

#[async_trait::async_trait]
impl Remote for LocalFs {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn mtime_precision_ns(&self) -> u64 {
        1
    }

    fn has_dirs(&self) -> bool {
        true
    }

    async fn create_root(&self) -> Result<(), RemoteError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(|e| RemoteError::io(&self.describe(), e))
    }

    async fn root_state(&self) -> Result<RootState, RemoteError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(RootState::Present),
            Ok(_) => Err(RemoteError::Refused { path: self.describe(), reason: "is not a folder".into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RootState::Missing),
            Err(e) => Err(RemoteError::io(&self.describe(), e)),
        }
    }

    async fn list(&self, opts: ListOptions, tx: mpsc::Sender<Listed>) -> Result<(), RemoteError> {
        let me = self.clone();
        blocking("", move || me.walk(&opts, &tx)).await
    }

    async fn list_folder(&self, path: &str) -> Result<Option<Vec<Listed>>, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || {
            let dir = if p.is_empty() {
                me.open_root()?
            } else {
                split(&p)?;
                let parts: Vec<&str> = p.split('/').collect();
                me.open_dir(&parts, false, &p)?
            };
            let mut out = Vec::new();
            let children = me.read_children(&dir, &p, false, &mut |l| {
                out.push(l);
                true
            });
            for (name, kind, st, _) in children.unwrap_or_default() {
                let path = if p.is_empty() { name } else { format!("{p}/{name}") };
                out.push(Listed::Entry(entry_of(path, kind, &st)));
            }
            Ok(Some(out))
        })
        .await
    }

    async fn open(&self, path: &str) -> Result<ByteStream, RemoteError> {
        Ok(Box::pin(tokio::fs::File::from_std(self.open_file(path).await?)))
    }

    async fn reopenable(&self, entry: &Entry) -> Result<Option<Arc<dyn RangeSource>>, RemoteError> {
        // One trip to a blocking thread: open, read a small file whole, then check it against
        // the listing (a small file's upload then needs no more file system calls).
        let (me, e) = (self.clone(), entry.clone());
        let src = blocking(&entry.path, move || {
            let file = std::fs::File::from(me.open_file_now(&e.path)?);
            let data = match e.size {
                n if n <= PRELOAD => Some(read_at_most(&file, 0, n).map_err(|err| RemoteError::io(&e.path, err))?),
                _ => None,
            };
            let src = LocalFile { file: Arc::new(file), path: e.path, size: e.size, mtime: e.mtime, data };
            match src.changed_now() {
                Some(why) => Err(RemoteError::Refused { path: src.path, reason: why }),
                None => Ok(src),
            }
        })
        .await?;
        Ok(Some(Arc::new(src)))
    }

    async fn create(&self, path: &str, _size: u64, mtime: Mtime) -> Result<Box<dyn Upload>, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        let (dir, tmp, name, fd, created) = blocking(path, move || {
            let (parts, name) = split(&p)?;
            let mut created = Vec::new();
            // A folder made for a write that then failed is removed again; if that happens
            // between opening our folder and creating our file in it, make it again.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let dir = me.open_dir_creating(&parts, true, &p, &mut created)?;
                let tmp = partial_name(me.job);
                match rustix::fs::openat(
                    &dir,
                    tmp.as_str(),
                    // Read-write: a download in parallel ranges reads back what landed to hash it.
                    OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                ) {
                    Ok(fd) => {
                        fresh_mode(fd.as_fd(), dir.as_fd(), false);
                        return Ok((dir, tmp, name.to_owned(), fd, created));
                    }
                    Err(Errno::NOENT) if attempts < 3 => {}
                    Err(e) => {
                        for (parent, name) in created.drain(..).rev() {
                            let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR);
                        }
                        return Err(RemoteError::io(&p, to_io(e)));
                    }
                }
            }
        })
        .await?;
        Ok(Box::new(LocalUpload {
            dir: Arc::new(dir),
            tmp,
            name,
            path: path.to_owned(),
            file: Some(tokio::fs::File::from_std(std::fs::File::from(fd))),
            mtime,
            created,
            fs: self.clone(),
            meta: None,
            written: 0,
            kicked: 0,
        }))
    }

    async fn stat(&self, path: &str) -> Result<Option<Entry>, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || me.stat_blocking(&p)).await
    }

    async fn delete(&self, path: &str) -> Result<(), RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || {
            let (parts, name) = split(&p)?;
            let dir = me.open_dir(&parts, false, &p)?;
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(|e| RemoteError::io(&p, to_io(e)))
        })
        .await
    }

    async fn make_dir(&self, path: &str) -> Result<(), RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || {
            split(&p)?;
            let parts: Vec<&str> = p.split('/').collect();
            me.open_dir(&parts, true, &p).map(drop)
        })
        .await
    }

    async fn remove_dir(&self, path: &str) -> Result<bool, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || {
            let (parts, name) = split(&p)?;
            let dir = me.open_dir(&parts, false, &p)?;
            match rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR) {
                Ok(()) => Ok(true),
                Err(Errno::NOTEMPTY | Errno::EXIST) => Ok(false),
                Err(e) => Err(RemoteError::io(&p, to_io(e))),
            }
        })
        .await
    }

    async fn sweep_partials(&self, keep_job: Option<u64>) -> Result<u64, RemoteError> {
        let me = self.clone();
        blocking("", move || {
            let root = match me.open_root() {
                Err(RemoteError::NotFound { .. }) => return Ok(0),
                other => other?,
            };
            Ok(Self::sweep_dir(&root, keep_job, 0))
        })
        .await
    }

    async fn read_meta(&self, path: &str) -> Result<Option<Meta>, RemoteError> {
        let (me, p) = (self.clone(), path.to_owned());
        blocking(path, move || me.read_meta_blocking(&p)).await
    }

    fn created_dirs(&self) -> Vec<String> {
        self.created.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    async fn finish_dir(&self, path: &str, meta: Option<&Meta>) -> Result<(), RemoteError> {
        // Inherit and AsCreated were applied when the folder was made; without metadata so was
        // Preserve's fallback.
        let (Owners::Preserve { .. }, Some(meta)) = (self.owners, meta) else { return Ok(()) };
        let (me, p, m) = (self.clone(), path.to_owned(), meta.clone());
        blocking(path, move || me.finish_dir_blocking(&p, &m)).await
    }
}

/// The temporary file of a [`LocalUpload`], written at any offset.
struct PositionalFile(std::fs::File);

impl WriteAt for PositionalFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        self.0.write_all_at(buf, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        self.0.read_at(buf, offset)
    }
}

/// Files up to this size are read whole when opened as a [`RangeSource`], on the same blocking
/// trip as the open and the check against the listing.
const PRELOAD: u64 = 64 * 1024;

/// One open local file as a [`RangeSource`]: positional reads, so readers at different offsets
/// never disturb each other.
struct LocalFile {
    file: Arc<std::fs::File>,
    path: String,
    size: u64,
    mtime: Mtime,
    /// The whole file, read when it was opened (small files), checked against the listing after
    /// the read: what is served from here is one consistent read.
    data: Option<bytes::Bytes>,
}

impl LocalFile {
    /// The bytes `offset..offset + len` of [`Self::data`], if it holds them.
    fn preloaded(&self, offset: u64, len: u64) -> Option<bytes::Bytes> {
        let data = self.data.as_ref()?;
        let start = usize::try_from(offset).ok().filter(|s| *s <= data.len())?;
        let end = usize::try_from(offset.saturating_add(len)).unwrap_or(usize::MAX).min(data.len());
        Some(data.slice(start..end))
    }

    /// [`RangeSource::changed`] on the calling (blocking) thread.
    fn changed_now(&self) -> Option<String> {
        changed_since(&self.file, &self.path, (self.size, self.mtime), self.data.as_ref().map(|d| d.len() as u64))
    }
}

/// Why `file` (listed as `path` with `listed` size and mtime) is no longer the file listed, if it
/// is not; `held`: how much of it was read whole (the read must have got all of it).
fn changed_since(file: &std::fs::File, path: &str, listed: (u64, Mtime), held: Option<u64>) -> Option<String> {
    let st = match rustix::fs::fstat(file) {
        Ok(st) => st,
        // Read whole: the check must hold to send what was read.
        Err(e) if held.is_some() => return Some(format!("{}: {e}; not copied", escape_for_log(path.as_bytes()))),
        Err(_) => return None,
    };
    let size = match held {
        Some(n) if n != listed.0 => n,
        _ => u64::try_from(st.st_size).unwrap_or(0),
    };
    (size != listed.0 || mtime_of(&st) != listed.1).then(|| {
        format!(
            "{}: changed while it was copied ({size} bytes now, {} listed); not copied",
            escape_for_log(path.as_bytes()),
            listed.0
        )
    })
}

/// Up to `len` bytes of `file` from `offset` (fewer only when the file ends first).
fn read_at_most(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
    use std::os::unix::fs::FileExt as _;
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf.into())
}

#[async_trait::async_trait]
impl RangeSource for LocalFile {
    async fn open_at(&self, offset: u64, len: u64) -> std::io::Result<ByteStream> {
        if let Some(data) = self.preloaded(offset, len) {
            return Ok(Box::pin(std::io::Cursor::new(data)));
        }
        Ok(Box::pin(PreadReader {
            file: Some(self.file.clone()),
            pos: offset,
            end: offset.saturating_add(len),
            ..Default::default()
        }))
    }

    async fn read_range(&self, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
        if let Some(data) = self.preloaded(offset, len) {
            return Ok(data);
        }
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || read_at_most(&file, offset, len)).await.map_err(std::io::Error::other)?
    }

    async fn changed(&self) -> Option<String> {
        if self.data.is_some() {
            // Checked after the read that everything sent comes from.
            return None;
        }
        let (file, path, listed) = (self.file.clone(), self.path.clone(), (self.size, self.mtime));
        tokio::task::spawn_blocking(move || changed_since(&file, &path, listed, None)).await.ok().flatten()
    }
}

/// Reads `pos..end` of a file with `pread` on a blocking thread, 256 KiB at a time.
#[derive(Default)]
struct PreadReader {
    file: Option<Arc<std::fs::File>>,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
    pending: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
}

impl tokio::io::AsyncRead for PreadReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.at < this.buf.len() {
                let n = (this.buf.len() - this.at).min(out.remaining());
                out.put_slice(&this.buf[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(h) = this.pending.as_mut() {
                let res = std::task::ready!(std::pin::Pin::new(h).poll(cx));
                this.pending = None;
                let buf = res.map_err(std::io::Error::other)??;
                if buf.is_empty() {
                    this.end = this.pos; // the file is shorter than announced: end of data
                    return Poll::Ready(Ok(()));
                }
                this.pos += buf.len() as u64;
                this.buf = buf;
                this.at = 0;
                continue;
            }
            if this.pos >= this.end {
                return Poll::Ready(Ok(()));
            }
            let Some(file) = this.file.clone() else { return Poll::Ready(Ok(())) };
            let (pos, want) = (this.pos, usize::try_from((this.end - this.pos).min(256 << 10)).unwrap_or(256 << 10));
            let mut buf = std::mem::take(&mut this.buf);
            this.pending = Some(tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt as _;
                buf.resize(want, 0);
                let n = file.read_at(&mut buf, pos)?;
                buf.truncate(n);
                Ok(buf)
            }));
        }
    }
}

/// The path of `rel` under `root`, for messages.
#[must_use]
pub fn shown_path(root: &Path, rel: &str) -> String {
    if rel.is_empty() { root.display().to_string() } else { root.join(rel).display().to_string() }
}

#[allow(dead_code)]
fn os_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}
