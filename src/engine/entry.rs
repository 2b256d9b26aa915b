//! Listed objects (files and folders) and the order listings come in. Pure: no IO, no async; imports only std.
//!
//! # Listing order
//!
//! Every listing the planner reads is sorted by [`key_cmp`]: plain byte order of the whole
//! `/`-separated path, which is S3 key order. A folder entry `a` sorts as `a` itself, so it comes
//! before its contents, but its contents do **not** come right after it: `-`, `.` and space sort
//! below `/`, so siblings such as `a-b` and `a.txt` fall between the folder and its contents.
//! A complete listing in key order looks like this:
//!
//! ```text
//! a        (folder)
//! a-b
//! a.txt
//! a/x      (contents of a)
//! a0
//! ```
//!
//! A depth-first walker therefore cannot emit a folder's own entry at the moment it descends
//! into it. [`sort_dir_names`] gives the order in which to *descend* (files by name, folders by
//! name + `/`); [`walk_steps`] gives the full order of one folder's steps, emitting each
//! folder's own entry at its name and descending at its name + `/`. A walker that follows
//! `walk_steps` recursively emits full paths strictly increasing under [`key_cmp`].

use std::cmp::Ordering;
use std::iter;

/// One listed object: a file or folder, `/`-separated path relative to the listed root, no leading or trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Path relative to the listed root, `/`-separated, without leading or trailing slash.
    pub path: String,
    /// File or folder.
    pub kind: Kind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
}

impl Entry {
    /// A file entry.
    #[must_use]
    pub fn file(path: impl Into<String>, size: u64, mtime: Mtime) -> Self {
        Self { path: path.into(), kind: Kind::File, size, mtime }
    }

    /// A folder entry (size 0).
    #[must_use]
    pub fn dir(path: impl Into<String>, mtime: Mtime) -> Self {
        Self { path: path.into(), kind: Kind::Dir, size: 0, mtime }
    }

    /// Whether this is a file.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    /// Whether this is a folder.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// What a listed object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file (or an object on a bucket remote).
    File,
    /// A folder (a directory, or a common prefix on a bucket remote).
    Dir,
}

/// Modification time in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mtime(pub i128);

const NANOS_PER_SEC: i128 = 1_000_000_000;

impl Mtime {
    /// Builds a time from whole seconds since the epoch and nanoseconds added to them.
    ///
    /// `nanos` is normally below 1e9; larger values simply carry into the seconds.
    /// `from_parts(-1, 500_000_000)` is half a second before the epoch.
    #[must_use]
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Self(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos))
    }

    /// Whole seconds, rounded towards negative infinity (half a second before the epoch is
    /// second -1). Saturates at the `i64` bounds for times that do not fit.
    #[must_use]
    pub fn secs(self) -> i64 {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
    }

    /// Nanoseconds past [`Mtime::secs`], always in `0..1_000_000_000`.
    #[must_use]
    pub fn subsec_nanos(self) -> u32 {
        // rem_euclid of a positive divisor is in 0..1e9, which fits in u32.
        u32::try_from(self.0.rem_euclid(NANOS_PER_SEC)).unwrap_or(0)
    }
}

/// The order of listings: plain byte comparison of the full paths (S3 key order).
///
/// A folder `a` compares as `a`, so `a` < `a-b` < `a.txt` < `a/x` < `a0`.
#[must_use]
pub fn key_cmp(a: &str, b: &str) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

/// The bytes a child sorts by when walking: its name, plus `/` for folders.
fn walk_key(name: &str, kind: Kind) -> impl Iterator<Item = u8> + '_ {
    name.bytes().chain(iter::once(b'/').filter(move |_| kind == Kind::Dir))
}

/// Sorts one folder's children (names without `/`) into the order in which a depth-first walk
/// must visit them so that files and folder *contents* come out in [`key_cmp`] order: the sort key
/// is the name for files and name + `/` for folders.
///
/// A folder's own entry must be emitted earlier than its position here (at its bare name, see the
/// module docs); [`walk_steps`] does both.
#[allow(clippy::ptr_arg)] // the signature is part of the engine's contract
pub fn sort_dir_names(names: &mut Vec<(String, Kind)>) {
    names.sort_by(|(a, ak), (b, bk)| walk_key(a, *ak).cmp(walk_key(b, *bk)));
}

/// One step of walking a folder's children, see [`walk_steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkStep {
    /// Emit the entry of child `i` (a file, or a folder's own entry).
    Emit(usize),
    /// Walk the contents of folder child `i` (recursively, with its own `walk_steps`).
    Descend(usize),
}

/// The steps that walk one folder's children (indices into `names`, which need not be sorted)
/// so that the full paths come out strictly increasing under [`key_cmp`]: every child is emitted
/// at its name, and every folder child is descended into at its name + `/`.
///
/// For children `a` (folder), `a-b` and `a.txt` (files) this gives `Emit(a)`, `Emit(a-b)`,
/// `Emit(a.txt)`, `Descend(a)`. Names that occur twice (possible on bucket remotes) keep their
/// input order; the planner reports the duplicate.
#[must_use]
pub fn walk_steps(names: &[(String, Kind)]) -> Vec<WalkStep> {
    let mut steps: Vec<WalkStep> = Vec::with_capacity(names.len() * 2);
    for (i, (_, kind)) in names.iter().enumerate() {
        steps.push(WalkStep::Emit(i));
        if *kind == Kind::Dir {
            steps.push(WalkStep::Descend(i));
        }
    }
    let key = |step: &WalkStep| match *step {
        WalkStep::Emit(i) => walk_key(&names[i].0, Kind::File),
        WalkStep::Descend(i) => walk_key(&names[i].0, Kind::Dir),
    };
    steps.sort_by(|a, b| key(a).cmp(key(b)));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtime_parts_roundtrip_with_floor() {
        for (secs, nanos) in [(0, 0), (1, 5), (-1, 0), (-1, 999_999_999), (i64::MIN, 0), (i64::MAX, 999_999_999)] {
            let t = Mtime::from_parts(secs, nanos);
            assert_eq!((t.secs(), t.subsec_nanos()), (secs, nanos));
        }
        assert_eq!(Mtime(-1).secs(), -1);
        assert_eq!(Mtime(-1).subsec_nanos(), 999_999_999);
        assert_eq!(Mtime::from_parts(1, 1_500_000_000), Mtime::from_parts(2, 500_000_000));
        assert_eq!(Mtime(i128::MAX).secs(), i64::MAX);
        assert_eq!(Mtime(i128::MIN).secs(), i64::MIN);
    }
}
