//! The sync diff: a streaming merge of the source and destination listings into ops. Pure: no IO, no async.
//!
//! Imports only std and [`super::entry`]. Both listings come in [`key_cmp`] order (see
//! [`super::entry`]). [`Plan`] holds only the current head of each side and yields [`Op`]s in key
//! order, so its memory does not grow with the listings (only with the longest path). Filtering is the caller's job: pass both listings through the same
//! [`super::filter::Filter`] first (as rclone, excluded destination files are then neither
//! compared nor deleted).
//!
//! For one path:
//!
//! | source | destination | op |
//! | --- | --- | --- |
//! | file | file, same size, mtimes within the window | [`Op::Same`] |
//! | file | file, otherwise | [`Op::Transfer`] replacing it |
//! | file | none | [`Op::Transfer`] |
//! | folder | folder | none |
//! | folder | none | [`Op::MakeDir`] with `create_empty_dirs`, else none |
//! | none | file / folder | SYNC: [`Op::DeleteFile`] / [`Op::DeleteDir`]; COPY, MOVE: none |
//! | file (folder) | folder (file) | [`Op::Conflict`]; nothing is planned below that path either |
//!
//! Hostile listings: an entry whose path is not strictly greater than the previous one of its
//! side (out of order or duplicate) is reported as `Conflict { reason: "listing out of order" }`
//! where it is met, and skipped. These conflicts are the only ops that may break key order.
//! Nothing panics, whatever the input.

use std::cmp::Ordering;
use std::iter;

use super::entry::{Entry, Kind, key_cmp};

/// What the run does with files the source no longer has, and with the source afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make the destination like the source: also delete what the source does not have.
    Sync,
    /// Copy new and changed files; delete nothing.
    Copy,
    /// Like `Copy`, then the executor deletes each source file that was transferred or was
    /// already the same.
    Move,
}

/// How to plan a run.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Sync, copy or move.
    pub mode: Mode,
    /// Largest mtime difference, in nanoseconds, at which two files of equal size are the same.
    pub modify_window_ns: u64,
    /// Plan [`Op::MakeDir`] for source folders missing at the destination.
    pub create_empty_dirs: bool,
}

/// One planned operation on one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Copy `src` to the destination (new, or replacing `replaces`).
    Transfer {
        /// The source file.
        src: Entry,
        /// The destination file it replaces, if any.
        replaces: Option<Entry>,
    },
    /// Already identical (same size, mtimes within the window). In Move mode the executor deletes the source.
    Same {
        /// The source file.
        src: Entry,
        /// The destination file.
        dst: Entry,
    },
    /// Create this folder at the destination (only with create_empty_dirs; the executor may skip it if files were written inside).
    MakeDir {
        /// The folder's path.
        path: String,
    },
    /// Sync only: a destination file that is not in the source. The executor defers these until every transfer succeeded.
    DeleteFile {
        /// The destination file.
        dst: Entry,
    },
    /// Sync only: a destination folder not in the source; the executor removes these after the file deletions, deepest first, only when empty.
    DeleteDir {
        /// The folder's path.
        path: String,
    },
    /// Source and destination disagree in kind at the same path (file vs folder); reported as an error for that path, nothing done.
    Conflict {
        /// The path.
        path: String,
        /// Why, in words for the job log.
        reason: String,
    },
}

/// The reason of the [`Op::Conflict`] for an entry that breaks its listing's order.
pub const OUT_OF_ORDER: &str = "listing out of order";

/// The streaming merge of a source and a destination listing; an iterator of [`Op`]s.
///
/// `S` and `D` must yield entries in [`key_cmp`] order; see the module docs for what happens
/// when they do not.
#[derive(Debug)]
pub struct Plan<S, D> {
    src: Side<S>,
    dst: Side<D>,
    opts: PlanOptions,
    /// Paths of kind conflicts whose subtrees are still ahead, as nested prefixes of one string:
    /// each entry of `conflict_lens` is the length of one such path in `conflicts`.
    conflicts: String,
    conflict_lens: Vec<usize>,
}

impl<S: Iterator<Item = Entry>, D: Iterator<Item = Entry>> Plan<S, D> {
    /// Plans a run from the source and destination listings.
    pub fn new(src: S, dst: D, opts: PlanOptions) -> Self {
        Self { src: Side::new(src), dst: Side::new(dst), opts, conflicts: String::new(), conflict_lens: Vec::new() }
    }

    fn only_in_src(&mut self, src: Entry) -> Option<Op> {
        if self.under_conflict(&src.path) {
            return None;
        }
        match src.kind {
            Kind::File => Some(Op::Transfer { src, replaces: None }),
            Kind::Dir if self.opts.create_empty_dirs => Some(Op::MakeDir { path: src.path }),
            Kind::Dir => None,
        }
    }

    fn only_in_dst(&mut self, dst: Entry) -> Option<Op> {
        if self.opts.mode != Mode::Sync || self.under_conflict(&dst.path) {
            return None;
        }
        match dst.kind {
            Kind::File => Some(Op::DeleteFile { dst }),
            Kind::Dir => Some(Op::DeleteDir { path: dst.path }),
        }
    }

    fn in_both(&mut self, src: Entry, dst: Entry) -> Option<Op> {
        if self.under_conflict(&src.path) {
            return None;
        }
        match (src.kind, dst.kind) {
            (Kind::File, Kind::File) => {
                let within = src.mtime.0.abs_diff(dst.mtime.0) <= u128::from(self.opts.modify_window_ns);
                if src.size == dst.size && within {
                    Some(Op::Same { src, dst })
                } else {
                    Some(Op::Transfer { src, replaces: Some(dst) })
                }
            }
            (Kind::Dir, Kind::Dir) => None,
            (src_kind, _) => {
                let reason = if src_kind == Kind::File {
                    "the source is a file but the destination is a folder"
                } else {
                    "the source is a folder but the destination is a file"
                };
                // Nothing below this path is planned: the subtree lives on one side only.
                // The conflicts still remembered are prefixes of this path (see `under_conflict`);
                // keep only those that are, should that ever not hold.
                let (old, new) = (self.conflicts.as_bytes(), src.path.as_bytes());
                self.conflict_lens.retain(|&len| old.get(..len).is_some_and(|p| new.starts_with(p)));
                self.conflicts.clear();
                self.conflicts.push_str(&src.path);
                self.conflict_lens.push(src.path.len());
                Some(Op::Conflict { path: src.path, reason: reason.to_owned() })
            }
        }
    }

    /// Whether `path` lies below a kind conflict met earlier. Forgets conflicts whose subtree
    /// is behind `path`.
    ///
    /// Every remembered conflict `c` was met before `path`, so `c < path`. Either `path` is below
    /// `c`, or it is past all of `c/…` (forget `c`), or it lies between `c` and `c/`, in which
    /// case `c` is a prefix of `path` and so are all conflicts remembered before `c`.
    fn under_conflict(&mut self, path: &str) -> bool {
        while let Some(&len) = self.conflict_lens.last() {
            let Some(conflict) = self.conflicts.get(..len) else {
                self.conflict_lens.pop();
                continue;
            };
            let with_slash = conflict.bytes().chain(iter::once(b'/'));
            if path.len() > len && path.starts_with(conflict) && path.as_bytes()[len] == b'/' {
                return true;
            }
            if path.bytes().cmp(with_slash) == Ordering::Less {
                return false;
            }
            self.conflict_lens.pop();
        }
        false
    }
}

impl<S: Iterator<Item = Entry>, D: Iterator<Item = Entry>> Iterator for Plan<S, D> {
    type Item = Op;

    fn next(&mut self) -> Option<Op> {
        loop {
            if let Some(op) = self.src.fill() {
                return Some(op);
            }
            if let Some(op) = self.dst.fill() {
                return Some(op);
            }
            let order = match (&self.src.head, &self.dst.head) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(s), Some(d)) => key_cmp(&s.path, &d.path),
            };
            let op = match order {
                Ordering::Less => self.src.head.take().and_then(|s| self.only_in_src(s)),
                Ordering::Greater => self.dst.head.take().and_then(|d| self.only_in_dst(d)),
                Ordering::Equal => match (self.src.head.take(), self.dst.head.take()) {
                    (Some(s), Some(d)) => self.in_both(s, d),
                    _ => None,
                },
            };
            if op.is_some() {
                return op;
            }
        }
    }
}

/// One listing, read one entry ahead.
#[derive(Debug)]
struct Side<I> {
    iter: I,
    /// The next entry to merge, once read.
    head: Option<Entry>,
    /// The path of the last entry accepted (kept to check the order; its buffer is reused).
    last: String,
    started: bool,
    /// The iterator returned `None`; it is not called again.
    done: bool,
}

impl<I: Iterator<Item = Entry>> Side<I> {
    fn new(iter: I) -> Self {
        Self { iter, head: None, last: String::new(), started: false, done: false }
    }

    /// Reads the next entry into `head` if it is empty. Returns the conflict to report when the
    /// entry read breaks the order; `head` then stays empty and the next call reads on.
    fn fill(&mut self) -> Option<Op> {
        if self.head.is_some() || self.done {
            return None;
        }
        let Some(entry) = self.iter.next() else {
            self.done = true;
            return None;
        };
        if self.started && key_cmp(&entry.path, &self.last) != Ordering::Greater {
            return Some(Op::Conflict { path: entry.path, reason: OUT_OF_ORDER.to_owned() });
        }
        self.started = true;
        self.last.clear();
        self.last.push_str(&entry.path);
        self.head = Some(entry);
        None
    }
}
