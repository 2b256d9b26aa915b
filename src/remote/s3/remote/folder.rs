//! One folder of a bucket tree at a time (ListObjectsV2 with delimiter `/`): its files from
//! `Contents`, its sub-folders from `CommonPrefixes`, so that the encrypting remote walks a bucket
//! folder by folder and `Credential.ListDirectory` lists one folder without reading the tree.
//! Part of [`S3Remote`]; imports its parent and the sibling S3 client modules.

use tokio::task::JoinSet;

use super::{
    Entry, HEAD_CONCURRENCY, Listed, Mtime, Remote, RemoteError, RootState, S3Remote, Version, archive::archive_class,
    remote_error,
};
use crate::{
    engine::names::{check_remote_path, escape_for_log},
    remote::s3::{ListRequest, Object},
};

/// Seconds to the engine's nanoseconds.
fn ns(secs: i64) -> Mtime {
    Mtime(i128::from(secs) * 1_000_000_000)
}

impl S3Remote {
    /// The direct children of the folder `path` (`""`: the tree's root) with full paths, in
    /// any order: folders (mtime 0) and files. Mtimes: when browsing, the listing's
    /// `LastModified`; for a job, `X-Amz-Meta-Mtime` by HEAD (as [`super::Remote::list`] does),
    /// since a sync compares them with the other side's mtimes. Objects in an archive class are
    /// handled as in `list` (see `archive.rs`) for a job, and listed as they are when browsing.
    /// With `unresolved`, files come as [`Listed::Unresolved`] (the listing's version, the mtime
    /// left to the caller) instead of being read by HEAD.
    pub(super) async fn folder_children(&self, path: &str, unresolved: bool) -> Result<Vec<Listed>, RemoteError> {
        let prefix = if path.is_empty() { self.prefix.clone() } else { format!("{}{path}/", self.prefix) };
        let shown = if path.is_empty() { self.describe() } else { path.to_owned() };
        let mut pages = self.client.list_objects_v2(
            &self.bucket,
            ListRequest { prefix: prefix.clone(), delimiter: "/".to_owned(), ..ListRequest::default() },
        );
        let mut out = Vec::new();
        let mut files: Vec<(String, Object)> = Vec::new();
        while let Some(page) = pages.next_page().await {
            let page = page.map_err(|e| remote_error(&shown, e))?;
            for cp in page.common_prefixes {
                // `folder/sub/` → `folder/sub`, relative to the tree.
                let Some(rel) = cp.strip_prefix(&self.prefix).and_then(|r| r.strip_suffix('/')) else { continue };
                if let Some(item) = checked(rel) {
                    out.push(item);
                    continue;
                }
                out.push(Listed::Entry(Entry::dir(rel, Mtime::default())));
            }
            for obj in page.contents {
                let Some(rel) = obj.key.strip_prefix(&self.prefix) else { continue };
                // The folder's own marker (`folder/`) is not a file.
                if rel.is_empty() || rel.ends_with('/') {
                    continue;
                }
                if let Some(item) = checked(rel) {
                    out.push(item);
                    continue;
                }
                files.push((rel.to_owned(), obj));
            }
        }
        if self.browsing {
            out.extend(files.into_iter().map(|(rel, o)| Listed::Entry(Entry::file(rel, o.size, ns(o.last_modified)))));
            return Ok(out);
        }
        let mut heads: JoinSet<Option<Listed>> = JoinSet::new();
        for (rel, obj) in files {
            if unresolved && archive_class(obj.storage_class.as_deref()).is_none() {
                let entry = Entry::file(rel, obj.size, ns(obj.last_modified));
                out.push(Listed::Unresolved {
                    entry,
                    version: Version { etag: obj.etag, modified: obj.last_modified },
                });
                continue;
            }
            while heads.len() >= HEAD_CONCURRENCY {
                out.extend(joined(heads.join_next().await));
            }
            let me = self.clone();
            heads.spawn(async move {
                match archive_class(obj.storage_class.as_deref()) {
                    Some(class) => me.archived_item(rel, obj.size, class.to_owned()).await,
                    None => me.head_entry(rel, obj.size, obj.last_modified).await,
                }
            });
        }
        while let Some(r) = heads.join_next().await {
            out.extend(joined(Some(r)));
        }
        Ok(out)
    }

    /// Whether anything is stored under the tree's folder (a folder marker counts); the bucket's
    /// root is always present. A missing bucket is an error that names it.
    pub(super) async fn folder_state(&self) -> Result<RootState, RemoteError> {
        if self.prefix.is_empty() {
            // The bucket's root is there when the bucket is: one HeadBucket (a listing, even of
            // one key, costs some servers a walk of the whole bucket).
            return match self.client.head_bucket(&self.bucket).await {
                Ok(_) => Ok(RootState::Present),
                Err(e) if e.status() == Some(404) || e.code() == Some("NoSuchBucket") => {
                    Err(RemoteError::NotFound { path: format!("bucket {}", self.bucket) })
                }
                Err(e) => Err(remote_error(&self.describe(), e)),
            };
        }
        let mut pages = self.client.list_objects_v2(
            &self.bucket,
            ListRequest { prefix: self.prefix.clone(), max_keys: Some(1), ..ListRequest::default() },
        );
        match pages.next_page().await {
            Some(Ok(page)) if page.contents.is_empty() && !self.prefix.is_empty() => Ok(RootState::Missing),
            Some(Ok(_)) | None => Ok(RootState::Present),
            Some(Err(e)) if e.code() == Some("NoSuchBucket") => {
                Err(RemoteError::NotFound { path: format!("bucket {}", self.bucket) })
            }
            Some(Err(e)) => Err(remote_error(&self.describe(), e)),
        }
    }
}

/// A name that cannot be used as a path, as the item reporting it.
fn checked(rel: &str) -> Option<Listed> {
    check_remote_path(rel)
        .err()
        .map(|e| Listed::Skipped { path: escape_for_log(rel.as_bytes()), reason: e.to_string() })
}

/// The item of a finished HEAD task.
fn joined(r: Option<Result<Option<Listed>, tokio::task::JoinError>>) -> Option<Listed> {
    match r? {
        Ok(item) => item,
        Err(e) => Some(Listed::Error { path: String::new(), reason: e.to_string() }),
    }
}
