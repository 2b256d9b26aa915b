//! Our snapshots: which dataset holds a path, the tagged snapshot
//! `<dataset>@cloud_sync-<task id|onetime>-<UTC YYYYmmddHHMMSS>`, reading it through
//! `<mountpoint>/.zfs/snapshot/<name>/<relative path>` or, where ZFS offers no such folder
//! (zfs-fuse), through a temporary read-only clone mounted under `<state-dir>/clones/`, destroying
//! clone and snapshot (checked by guid) however a job ends, and the start-up sweep of leftovers
//! (our user properties *and* our name prefix). Every `zfs` call goes through [`super::cmd`].
//! Imports std, tokio, jiff, tracing and `super::cmd`.
//!
//! A path whose dataset has other datasets mounted below it is refused: a snapshot of one
//! dataset does not contain its children's files, and silently pushing empty folders for them
//! would be worse than saying so.

use super::{
    NAME_PREFIX, PROP_JOB, PROP_STATE,
    cmd::{Sub, Zfs, ZfsError},
};
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

/// One row of `zfs list -H -o name,mountpoint,mounted -t filesystem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRow {
    /// Dataset name.
    pub name: String,
    /// Absolute mount point (rows with `legacy`, `none` or `-` are dropped).
    pub mountpoint: PathBuf,
    /// Whether it is mounted.
    pub mounted: bool,
}

/// Parses the rows of `zfs list -H -o name,mountpoint,mounted -t filesystem`.
#[must_use]
pub fn parse_fs_rows(text: &str) -> Vec<FsRow> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let (name, mp, mounted) = (it.next()?, it.next()?, it.next()?);
            mp.starts_with('/').then(|| FsRow {
                name: name.to_owned(),
                mountpoint: PathBuf::from(mp),
                mounted: mounted == "yes",
            })
        })
        .collect()
}

/// Where a path lives in ZFS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The dataset holding the path.
    pub dataset: String,
    /// Its mount point.
    pub mountpoint: PathBuf,
    /// The path below the mount point (empty for the dataset root).
    pub rel: PathBuf,
    /// Other mounted datasets whose mount point lies below the path (name, mount point): a
    /// snapshot of `dataset` does not hold their files.
    pub nested: Vec<(String, PathBuf)>,
}

/// The mounted dataset whose mount point is the deepest ancestor of (or equal to) `path`, an
/// absolute path without symlinks or `..`.
#[must_use]
pub fn locate_in(rows: &[FsRow], path: &Path) -> Option<Located> {
    let holder = rows
        .iter()
        .filter(|r| r.mounted && path.starts_with(&r.mountpoint))
        .max_by_key(|r| r.mountpoint.components().count())?;
    let rel = path.strip_prefix(&holder.mountpoint).ok()?.to_path_buf();
    let nested = rows
        .iter()
        .filter(|r| r.mounted && r.name != holder.name && r.mountpoint.starts_with(path))
        .map(|r| (r.name.clone(), r.mountpoint.clone()))
        .collect();
    Some(Located { dataset: holder.name.clone(), mountpoint: holder.mountpoint.clone(), rel, nested })
}

/// Finds the dataset holding `path`.
///
/// # Errors
/// `zfs` fails, or the path is not on a mounted ZFS dataset ([`ZfsError::Refused`]).
pub async fn locate(zfs: &Zfs, path: &Path) -> Result<Located, ZfsError> {
    let canonical = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| ZfsError::Refused(format!("{} cannot be resolved: {e}", path.display())))?;
    let out = zfs.cmd(Sub::List, &["-o", "name,mountpoint,mounted", "-t", "filesystem"]).await?;
    let loc = locate_in(&parse_fs_rows(&out), &canonical)
        .ok_or_else(|| ZfsError::Refused(format!("{} is not on a mounted ZFS dataset", path.display())))?;
    // Something else (a USB disk, a tmpfs) may be mounted inside the dataset at or above the path.
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(&canonical).is_none() || dev(&canonical) != dev(&loc.mountpoint) {
        return Err(ZfsError::Refused(format!(
            "{} is inside dataset {} but on another file system mounted there",
            path.display(),
            loc.dataset
        )));
    }
    Ok(loc)
}

/// `cloud_sync-<task id|onetime>-<UTC YYYYmmddHHMMSS>`, the name TrueNAS uses too.
#[must_use]
pub fn snapshot_name(task: Option<u64>, at: jiff::Timestamp) -> String {
    let id = task.map_or_else(|| "onetime".to_owned(), |t| t.to_string());
    format!("{NAME_PREFIX}{id}-{}", at.strftime("%Y%m%d%H%M%S"))
}

/// The clone of snapshot `snap` of a dataset in `pool`, made for job `job`.
#[must_use]
pub fn clone_name(pool: &str, snap: &str, job: u64) -> String {
    format!("{pool}/{snap}-clone{job}")
}

/// What a snapshot is for.
#[derive(Debug, Clone)]
pub struct FreezeSpec {
    /// The task (`None` for `RunOnce`).
    pub task: Option<u64>,
    /// The job; tagged on the snapshot and the clone.
    pub job: u64,
    /// The daemon's state folder: tagged, and where clones are mounted (`clones/`).
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone)]
struct Made {
    name: String,
    guid: String,
}

#[derive(Debug, Clone)]
struct CloneMade {
    made: Made,
    mount: PathBuf,
}

/// A snapshot of ours (and its clone, if reading needs one) for the life of one job. Call
/// [`Frozen::destroy`]; if it is dropped without that (a panic), it destroys both in the
/// background.
#[derive(Debug)]
pub struct Frozen {
    zfs: Zfs,
    snapshot: Made,
    clone: Option<CloneMade>,
    read_root: PathBuf,
    done: bool,
}

async fn guid_of(zfs: &Zfs, name: &str) -> Result<String, ZfsError> {
    Ok(zfs.cmd(Sub::Get, &["-o", "value", "guid", name]).await?.trim().to_owned())
}

fn props(spec: &FreezeSpec) -> [String; 4] {
    ["-o".into(), format!("{PROP_JOB}={}", spec.job), "-o".into(), format!("{PROP_STATE}={}", spec.state_dir.display())]
}

impl Frozen {
    /// Takes the snapshot of `loc.dataset` and makes it readable; `note` gets one line per
    /// thing created. Nothing is left behind when this fails.
    ///
    /// # Errors
    /// Nested datasets below the path ([`ZfsError::Refused`]), or a `zfs` command failed.
    pub async fn create(
        zfs: &Zfs,
        loc: &Located,
        spec: &FreezeSpec,
        note: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Self, ZfsError> {
        if !loc.nested.is_empty() {
            let shown: Vec<String> =
                loc.nested.iter().take(5).map(|(n, m)| format!("{n} at {}", m.display())).collect();
            return Err(ZfsError::Refused(format!(
                "dataset {} has other datasets mounted below the task path ({}); a snapshot of {} would \
                 not contain their files. Point the task at a dataset without nested datasets, or turn \
                 snapshot off",
                loc.dataset,
                shown.join(", "),
                loc.dataset
            )));
        }
        let props = props(spec);
        let mut attempt = 0;
        let (snap, full) = loop {
            let snap = snapshot_name(spec.task, jiff::Timestamp::now());
            let full = format!("{}@{snap}", loc.dataset);
            let mut args: Vec<&str> = props.iter().map(String::as_str).collect();
            args.push(&full);
            match zfs.cmd(Sub::Snapshot, &args).await {
                Ok(_) => break (snap, full),
                // Another job of the same task (or another RunOnce) in the same second.
                Err(e) if e.is_existing_dataset() && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let mut me = Self {
            zfs: zfs.clone(),
            snapshot: Made { name: full.clone(), guid: String::new() },
            clone: None,
            read_root: PathBuf::new(),
            done: false,
        };
        note(format!("Snapshot {full} created"));
        match me.make_readable(loc, spec, &snap, &props, note).await {
            Ok(()) => Ok(me),
            Err(e) => {
                if let Err(d) = me.destroy(note).await {
                    note(format!("ERROR {d}"));
                }
                Err(e)
            }
        }
    }

    async fn make_readable(
        &mut self,
        loc: &Located,
        spec: &FreezeSpec,
        snap: &str,
        props: &[String; 4],
        note: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), ZfsError> {
        let zfs = self.zfs.clone();
        self.snapshot.guid = guid_of(&zfs, &self.snapshot.name).await?;
        let snapdir = loc.mountpoint.join(".zfs").join("snapshot").join(snap);
        if tokio::fs::metadata(&snapdir).await.is_ok_and(|m| m.is_dir()) {
            self.read_root = snapdir.join(&loc.rel);
            note(format!("Reading the snapshot through {}", snapdir.display()));
            return Ok(());
        }
        // No .zfs folder (zfs-fuse): a read-only clone in the same pool, mounted in our state folder.
        let pool = loc.dataset.split('/').next().unwrap_or(&loc.dataset);
        let name = clone_name(pool, snap, spec.job);
        let clones = spec.state_dir.join("clones");
        tokio::fs::create_dir_all(&clones)
            .await
            .map_err(|e| ZfsError::Refused(format!("cannot create {}: {e}", clones.display())))?;
        let mount = clones.join(format!("{snap}-job{}", spec.job));
        let mp = format!("mountpoint={}", mount.display());
        let mut args: Vec<&str> = vec!["-o", "readonly=on", "-o", &mp];
        args.extend(props.iter().map(String::as_str));
        args.push(&self.snapshot.name);
        args.push(&name);
        zfs.cmd(Sub::Clone, &args).await?;
        self.clone = Some(CloneMade { made: Made { name: name.clone(), guid: String::new() }, mount: mount.clone() });
        let guid = guid_of(&zfs, &name).await?;
        if let Some(c) = self.clone.as_mut() {
            c.made.guid = guid;
        }
        if zfs.cmd(Sub::Get, &["-o", "value", "mounted", &name]).await?.trim() != "yes" {
            zfs.cmd(Sub::Mount, &[&name]).await?;
        }
        wait_mounted(&mount, &clones).await?;
        self.read_root = mount.join(&loc.rel);
        note(format!(
            "Reading the snapshot through the read-only clone {name} mounted at {} (this ZFS has no .zfs/snapshot folder)",
            mount.display()
        ));
        Ok(())
    }

    /// The folder to read: the task path as it was when the snapshot was taken.
    #[must_use]
    pub fn read_root(&self) -> &Path {
        &self.read_root
    }

    /// The snapshot's full name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.snapshot.name
    }

    /// Destroys the clone (if any), its mount folder, then the snapshot; `note` gets one line
    /// per thing destroyed. Goes on after a failure and returns the first one.
    ///
    /// # Errors
    /// Something could not be destroyed (it is then left for the start-up sweep).
    pub async fn destroy(mut self, note: &(dyn Fn(String) + Send + Sync)) -> Result<(), ZfsError> {
        self.done = true;
        let (zfs, snapshot, clone) = (self.zfs.clone(), self.snapshot.clone(), self.clone.take());
        destroy_all(&zfs, &snapshot, clone.as_ref(), note).await
    }
}

async fn wait_mounted(mount: &Path, parent: &Path) -> Result<(), ZfsError> {
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    for _ in 0..50 {
        if dev(mount).is_some() && dev(mount) != dev(parent) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ZfsError::Refused(format!("the clone did not appear at {}", mount.display())))
}

async fn destroy_all(
    zfs: &Zfs,
    snapshot: &Made,
    clone: Option<&CloneMade>,
    note: &(dyn Fn(String) + Send + Sync),
) -> Result<(), ZfsError> {
    let mut first: Option<ZfsError> = None;
    if let Some(c) = clone {
        match destroy_checked(zfs, &c.made).await {
            Ok(true) => note(format!("Clone {} destroyed", c.made.name)),
            Ok(false) => {}
            Err(e) => first = Some(e),
        }
        let _ = tokio::fs::remove_dir(&c.mount).await;
    }
    if first.is_none() {
        match destroy_checked(zfs, snapshot).await {
            Ok(true) => note(format!("Snapshot {} destroyed", snapshot.name)),
            Ok(false) => {}
            Err(e) => first = Some(e),
        }
    }
    first.map_or(Ok(()), Err)
}

/// Destroys `made` if it still is the dataset we made (same guid); `Ok(false)` when it is gone.
async fn destroy_checked(zfs: &Zfs, made: &Made) -> Result<bool, ZfsError> {
    let now = match guid_of(zfs, &made.name).await {
        Ok(g) => g,
        Err(e) if e.is_missing_dataset() => return Ok(false),
        Err(e) => return Err(e),
    };
    if !made.guid.is_empty() && now != made.guid {
        return Err(ZfsError::Refused(format!(
            "{} is no longer the one this job created (guid {now}, expected {}); left alone",
            made.name, made.guid
        )));
    }
    destroy_retrying(zfs, &made.name).await.map(|()| true)
}

/// `zfs destroy -f` (a clone is unmounted first), retried while it is busy.
async fn destroy_retrying(zfs: &Zfs, name: &str) -> Result<(), ZfsError> {
    let mut tries = 0;
    loop {
        match zfs.cmd(Sub::Destroy, &["-f", name]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_missing_dataset() => return Ok(()),
            Err(e) if e.is_busy() && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (zfs, snapshot, clone) = (self.zfs.clone(), self.snapshot.clone(), self.clone.take());
        tracing::warn!(snapshot = %snapshot.name, "snapshot dropped without being destroyed; destroying it");
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let note = |l: String| tracing::info!("{l}");
                if let Err(e) = destroy_all(&zfs, &snapshot, clone.as_ref(), &note).await {
                    tracing::warn!(error = %e, "could not destroy; the next start-up sweep will");
                }
            });
        }
    }
}

/// What the start-up sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Clones and snapshots destroyed.
    pub destroyed: Vec<String>,
    /// Those that could not be, with the reason.
    pub failed: Vec<String>,
}

/// Our leftovers in the output of
/// `zfs get -H -p -s local -o name,property,value org.cloudsyncd:job,org.cloudsyncd:state`:
/// both properties set locally, `state` equal to `state_dir`, a job id below `before_job` (jobs
/// of this daemon run are never touched), and our name prefix (a snapshot `…@cloud_sync-…`, a
/// clone `…/cloud_sync-…-clone<job>`). Clones come first: a snapshot with a clone cannot go.
#[must_use]
pub fn leftovers(get_output: &str, state_dir: &str, before_job: u64) -> Vec<String> {
    let mut props: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for line in get_output.lines() {
        let mut it = line.split('\t');
        let (Some(name), Some(prop), Some(value)) = (it.next(), it.next(), it.next()) else { continue };
        let e = props.entry(name).or_default();
        match prop {
            PROP_JOB => e.0 = Some(value),
            PROP_STATE => e.1 = Some(value),
            _ => {}
        }
    }
    let ours = |name: &str| match name.split_once('@') {
        Some((_, snap)) => snap.starts_with(NAME_PREFIX),
        None => name.rsplit('/').next().is_some_and(|leaf| leaf.starts_with(NAME_PREFIX) && leaf.contains("-clone")),
    };
    let mut found: Vec<String> = props
        .into_iter()
        .filter(|(name, (job, state))| {
            *state == Some(state_dir)
                && job.and_then(|j| j.parse::<u64>().ok()).is_some_and(|j| j < before_job)
                && ours(name)
        })
        .map(|(name, _)| name.to_owned())
        .collect();
    found.sort_by_key(|n| n.contains('@'));
    found
}

/// Destroys what interrupted jobs of this daemon (same state folder, job ids below
/// `before_job`) left behind, and empty folders under `<state_dir>/clones/`.
///
/// # Errors
/// `zfs get` failed (the daemon of zfs-fuse not running, …).
pub async fn sweep(zfs: &Zfs, state_dir: &Path, before_job: u64) -> Result<SweepReport, ZfsError> {
    let props = format!("{PROP_JOB},{PROP_STATE}");
    let out = zfs.cmd(Sub::Get, &["-s", "local", "-o", "name,property,value", &props]).await?;
    let mut report = SweepReport::default();
    for name in leftovers(&out, &state_dir.display().to_string(), before_job) {
        match destroy_retrying(zfs, &name).await {
            Ok(()) => report.destroyed.push(name),
            Err(e) => report.failed.push(format!("{name}: {e}")),
        }
    }
    if let Ok(mut rd) = tokio::fs::read_dir(state_dir.join("clones")).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            // Only empty folders go; a folder something is still mounted on is not empty.
            let _ = tokio::fs::remove_dir(e.path()).await;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<FsRow> {
        parse_fs_rows(
            "tank\t/mnt/tank\tyes\n\
             tank/data\t/mnt/tank/data\tyes\n\
             tank/data/child\t/mnt/tank/data/sub/child\tyes\n\
             tank/off\t/mnt/tank/off\tno\n\
             tank/legacy\tlegacy\tyes\n\
             tank/datax\t/mnt/tank/datax\tyes\n\
             broken line\n",
        )
    }

    #[test]
    fn parse_drops_legacy_and_malformed_rows() {
        let r = rows();
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|r| r.name != "tank/legacy"));
        assert!(!r.iter().find(|r| r.name == "tank/off").unwrap().mounted);
    }

    #[test]
    fn locate_picks_the_deepest_mounted_ancestor_by_component() {
        let r = rows();
        let l = locate_in(&r, Path::new("/mnt/tank/data/docs")).unwrap();
        assert_eq!((l.dataset.as_str(), l.rel.as_path()), ("tank/data", Path::new("docs")));
        assert!(l.nested.is_empty());
        // "datax" is not inside "data": component-wise prefixes only.
        let l = locate_in(&r, Path::new("/mnt/tank/datax/y")).unwrap();
        assert_eq!(l.dataset, "tank/datax");
        // An unmounted dataset does not hold the path; its parent does.
        let l = locate_in(&r, Path::new("/mnt/tank/off/z")).unwrap();
        assert_eq!((l.dataset.as_str(), l.rel.as_path()), ("tank", Path::new("off/z")));
        assert!(locate_in(&r, Path::new("/srv/else")).is_none());
    }

    #[test]
    fn nested_datasets_below_the_path_are_reported() {
        let r = rows();
        let l = locate_in(&r, Path::new("/mnt/tank/data")).unwrap();
        assert_eq!(l.rel, PathBuf::new());
        assert_eq!(l.nested, vec![("tank/data/child".to_owned(), PathBuf::from("/mnt/tank/data/sub/child"))]);
        // Below the path only: a sibling folder of the child is fine.
        let l = locate_in(&r, Path::new("/mnt/tank/data/docs")).unwrap();
        assert!(l.nested.is_empty());
        // The pool root holds every other dataset below it.
        let l = locate_in(&r, Path::new("/mnt/tank")).unwrap();
        assert_eq!(l.nested.len(), 3);
    }

    #[test]
    fn names_follow_truenas() {
        let t: jiff::Timestamp = "2025-03-04T05:06:07.9Z".parse().unwrap();
        assert_eq!(snapshot_name(Some(12), t), "cloud_sync-12-20250304050607");
        assert_eq!(snapshot_name(None, t), "cloud_sync-onetime-20250304050607");
        assert_eq!(clone_name("tank", "cloud_sync-12-20250304050607", 9), "tank/cloud_sync-12-20250304050607-clone9");
    }

    #[test]
    fn only_our_leftovers_of_earlier_jobs_are_swept_clones_first() {
        let out = "\
tank/data@cloud_sync-1-20250101000000\torg.cloudsyncd:job\t4
tank/data@cloud_sync-1-20250101000000\torg.cloudsyncd:state\t/var/lib/cloudsyncd
tank/cloud_sync-1-20250101000000-clone4\torg.cloudsyncd:job\t4
tank/cloud_sync-1-20250101000000-clone4\torg.cloudsyncd:state\t/var/lib/cloudsyncd
tank/data@cloud_sync-2-20250101000000\torg.cloudsyncd:job\t9
tank/data@cloud_sync-2-20250101000000\torg.cloudsyncd:state\t/var/lib/cloudsyncd
tank/data@cloud_sync-3-20250101000000\torg.cloudsyncd:job\t5
tank/data@cloud_sync-3-20250101000000\torg.cloudsyncd:state\t/other/daemon
tank/data@manual\torg.cloudsyncd:job\t3
tank/data@manual\torg.cloudsyncd:state\t/var/lib/cloudsyncd
tank/data@cloud_sync-4-20250101000000\torg.cloudsyncd:job\t3
tank/home\torg.cloudsyncd:job\t3
tank/home\torg.cloudsyncd:state\t/var/lib/cloudsyncd
";
        assert_eq!(
            leftovers(out, "/var/lib/cloudsyncd", 9),
            vec!["tank/cloud_sync-1-20250101000000-clone4", "tank/data@cloud_sync-1-20250101000000"]
        );
        assert_eq!(leftovers(out, "/var/lib/cloudsyncd", 10).len(), 3);
        assert!(leftovers(out, "/nowhere", 100).is_empty());
    }
}
