//! Storage a task reads from or writes to: the [`Remote`] trait and its providers. A remote lists
//! its tree in key order, streams reads, and writes through an [`Upload`] that only makes the
//! object visible under its final name when complete (a local one also takes positional writes,
//! [`WriteAt`], for downloads in parallel ranges). Object metadata (owner, mode, ACLs) is
//! the provider-neutral [`meta::Meta`]. Imports `engine::{entry, filter}`, `crypt` (for the
//! encrypting decorator) and std/tokio.
//! The S3 provider (`s3`) also imports `s3sig`, `model::credential`, hyper and rustls.

pub mod crypt;
pub mod local;
pub mod meta;

pub use meta::Meta;
pub mod s3;

use crate::engine::{
    entry::{Entry, Mtime},
    filter::Filter,
};
use std::{pin::Pin, sync::Arc};
use tokio::{io::AsyncRead, sync::mpsc};

/// A streamed read of one object.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

/// Why a remote operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A file system or network error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The object or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The object does not exist.
    #[error("{path}: does not exist")]
    NotFound {
        /// The object.
        path: String,
    },
    /// Refused for safety (a name that would escape, a symlink in the way, …).
    #[error("{path}: {reason}")]
    Refused {
        /// The object.
        path: String,
        /// Why.
        reason: String,
    },
}

impl RemoteError {
    /// An IO error on `path`.
    pub fn io(path: &str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Self::NotFound { path: path.to_owned() };
        }
        Self::Io { path: path.to_owned(), source }
    }

    /// Whether trying again may help (network hiccups); file system errors are final.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::Interrupted
            ),
            _ => false,
        }
    }
}

/// One item of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A file or folder that passed the filter.
    Entry(Entry),
    /// Left out on purpose, with the reason (a symlink when not following them, a name that is
    /// not UTF-8); logged, not an error.
    Skipped {
        /// What was skipped (escaped for the log).
        path: String,
        /// Why.
        reason: String,
    },
    /// A file of a bucket store whose listing does not carry its mtime (it lives in object
    /// metadata, one request per object to read): `entry.mtime` is the store's upload time, and
    /// `version` tells this version of the object apart, so that the caller can take the mtime
    /// from what an earlier run saw and ask ([`Remote::stat`]) only where that does not match.
    /// Sent only when [`ListOptions::versions`] asks for it.
    Unresolved {
        /// The file, its mtime not yet known.
        entry: Entry,
        /// Which version of the object the listing showed.
        version: Version,
    },
    /// A part of the tree that could not be read: the run fails and a SYNC deletes nothing.
    Error {
        /// The folder or file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// How to list.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Which files and folders to list (and which folders to descend into).
    pub filter: Arc<Filter>,
    /// Follow symlinks instead of skipping them (local trees only).
    pub follow_symlinks: bool,
    /// Bucket stores may send files as [`Listed::Unresolved`] instead of reading each mtime.
    pub versions: bool,
    /// Folders (paths under the listed root, without a trailing slash) that the last run met
    /// first, in walk order, at most [`LIST_HINTS`]: a bucket walked folder by folder starts
    /// listing them at once instead of after its root listing arrives. A folder that no
    /// longer exists costs one listing, and nothing else.
    pub hints: Vec<String>,
}

/// Folders [`ListOptions::hints`] names at most (the folder walk's look-ahead).
pub const LIST_HINTS: usize = 8;

/// One version of an object of a bucket store, as its listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    /// The `ETag`, with its quotes; empty when the listing carries none.
    pub etag: String,
    /// Upload time (`LastModified`), unix seconds.
    pub modified: i64,
}

/// What a completed upload to a bucket store became, for the next run's [`Version`] matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    /// The `ETag` the store answered with.
    pub etag: String,
    /// The store's clock (its `Date` header) when the upload started and when it completed,
    /// unix seconds: its `LastModified` lies between them.
    pub window: Option<(i64, i64)>,
}

/// State of the root folder of a tree before a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootState {
    /// The folder exists.
    Present,
    /// The folder does not exist.
    Missing,
}

/// The words every report of an [`Archived`] object carries.
pub const ARCHIVED_NOTE: &str = "neither read nor deleted";

/// An object a job met that its storage class keeps offline (S3 `GLACIER`, `DEEP_ARCHIVE`
/// without a restored copy): it is neither read nor deleted, the listing reports it as a
/// [`Listed::Error`], and [`Remote::archived`] tells the engine about it so that the job can say
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The object's path in the tree.
    pub path: String,
    /// Its storage class.
    pub storage_class: String,
    /// What became of a restore request.
    pub restore: RestoreAsked,
}

/// Whether a restore of an [`Archived`] object was asked for, and what the store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreAsked {
    /// Not asked (the task's `glacier_restore` is off).
    No,
    /// Accepted now (or a restored copy already existed).
    Requested,
    /// A restore was already running.
    InProgress,
    /// The request failed, with the reason.
    Failed(String),
}

/// A write in progress. Nothing is visible under the final name until [`Upload::finish`].
#[async_trait::async_trait]
pub trait Upload: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// The write failed; the upload should then be aborted.
    async fn write(&mut self, buf: &[u8]) -> Result<(), RemoteError>;
    /// Makes the object visible under its final name with its mtime; bucket stores say what
    /// version they stored.
    ///
    /// # Errors
    /// The object could not be completed; nothing is left behind.
    async fn finish(self: Box<Self>) -> Result<Option<Written>, RemoteError>;
    /// Drops the partial object.
    async fn abort(self: Box<Self>);
    /// The file being written, for writes at any offset from several tasks at once (local
    /// trees); `None` (the default) when the destination only takes bytes in order. Bytes written
    /// through it become the object at [`Upload::finish`] like those of [`Upload::write`].
    ///
    /// # Errors
    /// The file cannot be shared.
    async fn positional(&mut self) -> Result<Option<Arc<dyn WriteAt>>, RemoteError> {
        Ok(None)
    }
    /// Metadata (owner, group, mode, ACLs) to store with the object, given before
    /// [`Upload::finish`]: object stores keep it as object metadata under rclone's keys
    /// ([`Meta::to_pairs`]), a local tree applies it to the file as its ownership rule says. The
    /// default ignores it.
    fn set_meta(&mut self, _meta: &Meta) {}
}

/// A file that can be read from any offset, again and again, while it stays open: an upload
/// streams its parts from it (twice each: to hash, then to send, and again on a retry) instead
/// of holding them in memory.
#[async_trait::async_trait]
pub trait RangeSource: Send + Sync {
    /// A reader of `len` bytes from `offset`.
    ///
    /// # Errors
    /// The file cannot be read.
    async fn open_at(&self, offset: u64, len: u64) -> std::io::Result<ByteStream>;
    /// Up to `len` bytes from `offset` in memory (fewer only when the file ended first), for
    /// small files, which are cheaper read once and sent from memory.
    ///
    /// # Errors
    /// The file cannot be read.
    async fn read_range(&self, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
        use tokio::io::AsyncReadExt as _;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.open_at(offset, len).await?.take(len).read_to_end(&mut out).await?;
        Ok(out.into())
    }
    /// Why the file is no longer the one listed (size or mtime changed), if it is not.
    async fn changed(&self) -> Option<String>;
}

/// A file under construction that takes writes at any offset, from several tasks at once (a
/// download in parallel ranges), and gives back what landed (to hash it in order). Blocking calls:
/// run them on a blocking thread.
pub trait WriteAt: Send + Sync {
    /// Writes all of `buf` at `offset`.
    ///
    /// # Errors
    /// The write failed.
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()>;
    /// Reads into `buf` from `offset`; the number of bytes read (0 at the end).
    ///
    /// # Errors
    /// The read failed.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Called with the bytes of each part as it is stored.
pub type OnStored = Arc<dyn Fn(u64) + Send + Sync>;

/// A tree of objects.
#[async_trait::async_trait]
pub trait Remote: Send + Sync {
    /// How the tree is named in logs.
    fn describe(&self) -> String;
    /// The precision of stored mtimes, in nanoseconds.
    fn mtime_precision_ns(&self) -> u64;
    /// Whether empty folders can exist (bucket stores have none).
    fn has_dirs(&self) -> bool;
    /// Whether the root folder exists.
    ///
    /// # Errors
    /// The root cannot be checked.
    async fn root_state(&self) -> Result<RootState, RemoteError>;
    /// Creates the root folder when missing (a PUSH to a new remote folder). Bucket stores need
    /// nothing: a folder exists as soon as a key is written under it.
    ///
    /// # Errors
    /// The folder cannot be created.
    async fn create_root(&self) -> Result<(), RemoteError> {
        Ok(())
    }
    /// Sends every entry in key order (byte order of the whole path) into `tx`, then returns.
    ///
    /// # Errors
    /// The listing could not start at all (parts that fail are sent as [`Listed::Error`]).
    async fn list(&self, opts: ListOptions, tx: mpsc::Sender<Listed>) -> Result<(), RemoteError>;
    /// The direct children of the folder `path` (`""` = the root), unfiltered, in any order, with
    /// full paths; items that cannot be listed come as [`Listed::Skipped`] or [`Listed::Error`].
    /// Leaves the tree as it is (unlike [`Remote::list`], it removes no leftover).
    ///
    /// Decorators that must re-sort a listing (the encrypting remote) walk folder by folder with
    /// this, in memory bounded by one folder per level. `Ok(None)` (the default) means the remote
    /// only lists whole trees; they then buffer the whole listing.
    ///
    /// # Errors
    /// The folder cannot be listed at all.
    async fn list_folder(&self, path: &str) -> Result<Option<Vec<Listed>>, RemoteError> {
        let _ = path;
        Ok(None)
    }

    /// [`Remote::list_folder`] for a sync: a bucket store may send files as
    /// [`Listed::Unresolved`], their mtimes left to the caller, as [`Remote::list`] does with
    /// [`ListOptions::versions`].
    ///
    /// # Errors
    /// The folder cannot be listed at all.
    async fn list_folder_versions(&self, path: &str) -> Result<Option<Vec<Listed>>, RemoteError> {
        self.list_folder(path).await
    }

    /// Opens an object for reading.
    ///
    /// # Errors
    /// It does not exist or cannot be read.
    async fn open(&self, path: &str) -> Result<ByteStream, RemoteError>;
    /// The file `entry` as a [`RangeSource`], for trees whose files can be read again from any
    /// offset (local trees); `None` (the default) otherwise. It fails when the file is no
    /// longer the listed one.
    ///
    /// # Errors
    /// It cannot be opened.
    async fn reopenable(&self, entry: &Entry) -> Result<Option<Arc<dyn RangeSource>>, RemoteError> {
        let _ = entry;
        Ok(None)
    }
    /// Whether [`Remote::upload_from`] is implemented (bucket stores: parts are streamed from
    /// the source instead of being buffered).
    fn streams_uploads(&self) -> bool {
        false
    }
    /// Stores `entry` (with `meta`) from `source`, calling `stored` as parts are stored; only
    /// where [`Remote::streams_uploads`]. Nothing is visible under the name unless complete.
    ///
    /// # Errors
    /// The upload failed; nothing is left behind.
    async fn upload_from(
        &self,
        entry: &Entry,
        meta: Option<&Meta>,
        source: Arc<dyn RangeSource>,
        stored: OnStored,
    ) -> Result<Option<Written>, RemoteError> {
        let _ = (meta, source, stored);
        Err(RemoteError::Refused { path: entry.path.clone(), reason: "this tree takes no streamed uploads".into() })
    }
    /// Whether [`Remote::download_to`] is worth it for a file of `size` bytes (bucket stores, for
    /// large objects: several ranges at once).
    fn ranged_download(&self, size: u64) -> bool {
        let _ = size;
        false
    }
    /// Reads `entry` into `sink` in ranges fetched at once, checking its integrity as the
    /// whole-object read does (or better), calling `stored` as bytes land; only where
    /// [`Remote::ranged_download`]. On an error, what the sink holds must be discarded.
    ///
    /// # Errors
    /// A range cannot be read, or the bytes are not the object's.
    async fn download_to(&self, entry: &Entry, sink: Arc<dyn WriteAt>, stored: OnStored) -> Result<(), RemoteError> {
        let _ = (sink, stored);
        Err(RemoteError::Refused { path: entry.path.clone(), reason: "this tree has no ranged downloads".into() })
    }
    /// Starts writing an object of `size` bytes that will carry `mtime`.
    ///
    /// # Errors
    /// The object cannot be created.
    async fn create(&self, path: &str, size: u64, mtime: Mtime) -> Result<Box<dyn Upload>, RemoteError>;
    /// The entry at `path`, if any.
    ///
    /// # Errors
    /// It cannot be checked.
    async fn stat(&self, path: &str) -> Result<Option<Entry>, RemoteError>;
    /// Deletes a file.
    ///
    /// # Errors
    /// It cannot be deleted.
    async fn delete(&self, path: &str) -> Result<(), RemoteError>;
    /// Creates a folder (and its parents).
    ///
    /// # Errors
    /// It cannot be created.
    async fn make_dir(&self, path: &str) -> Result<(), RemoteError>;
    /// Removes a folder if it is empty; `Ok(false)` when it is not.
    ///
    /// # Errors
    /// It cannot be removed for another reason.
    async fn remove_dir(&self, path: &str) -> Result<bool, RemoteError>;
    /// Removes leftovers of interrupted runs (temporary files of jobs other than `keep_job`);
    /// returns how many.
    ///
    /// # Errors
    /// The sweep could not run.
    async fn sweep_partials(&self, keep_job: Option<u64>) -> Result<u64, RemoteError>;
    /// The metadata of the object or folder at `path` (owner, group, mode, mtime, ACLs), when
    /// this tree keeps any; the default keeps none.
    ///
    /// # Errors
    /// It cannot be read.
    async fn read_meta(&self, _path: &str) -> Result<Option<Meta>, RemoteError> {
        Ok(None)
    }
    /// Requests sent so far, per kind (`HeadObject 3`), for the job log; empty for trees that
    /// send none.
    fn requests(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Archived objects met so far during the job (see [`Archived`]); the default: none.
    fn archived(&self) -> Vec<Archived> {
        Vec::new()
    }
    /// Folders this tree created so far during the job, in creation order (the default: none,
    /// as bucket stores have no folders).
    fn created_dirs(&self) -> Vec<String> {
        Vec::new()
    }
    /// Finishes a folder this tree created, after its contents: owner, mode, ACLs and mtime from
    /// `meta` as the tree's ownership rule says. The default does nothing.
    ///
    /// # Errors
    /// The folder cannot be changed.
    async fn finish_dir(&self, _path: &str, _meta: Option<&Meta>) -> Result<(), RemoteError> {
        Ok(())
    }
}
