//! Objects in an archive storage class (GLACIER, DEEP_ARCHIVE) met while listing: checked by HEAD
//! (a restored copy is readable and listed as usual), otherwise reported as a listing error —
//! never read, never deleted — recorded for the job's summary, and with `glacier_restore` sent a
//! RestoreObject. Part of [`S3Remote`]; imports its parent and the sibling S3 client modules.

use super::{Archived, Entry, Listed, Mtime, RemoteError, S3Remote};
use crate::remote::{
    ARCHIVED_NOTE, RestoreAsked,
    s3::{RestoreStatus, is_archive_class},
};

/// How long a restored copy stays readable, in days: long enough for the next scheduled run
/// (and a retry or two) to read it.
pub const RESTORE_DAYS: u32 = 7;

/// The retrieval tier of the restores we request (GLACIER: about 3-5 hours; DEEP_ARCHIVE:
/// within 12 hours).
pub(super) const RESTORE_TIER: &str = "Standard";

/// The storage class of a listed object when it is an archive class.
pub(super) fn archive_class(storage_class: Option<&str>) -> Option<&str> {
    storage_class.filter(|c| is_archive_class(c))
}

impl S3Remote {
    /// The listing item of `rel`, which the listing says is stored in the archive class `class`:
    /// its entry (mtime by HEAD) when a restored copy can be read, else a [`Listed::Error`] saying
    /// why it is left alone (the job then fails and a SYNC deletes nothing); `None` when it was
    /// deleted meanwhile.
    pub(super) async fn archived_item(&self, rel: String, size: u64, class: String) -> Option<Listed> {
        let key = self.key(&rel);
        let head = match self.client.head_object(&self.bucket, &key).await {
            Ok(Some(h)) => h,
            Ok(None) => return None,
            Err(e) => return Some(Listed::Error { path: rel, reason: e.to_string() }),
        };
        let restored = head.restore.as_deref().is_some_and(|r| r.contains("ongoing-request=\"false\""));
        if restored {
            let mtime = head.mtime_or_last_modified().unwrap_or_default();
            return Some(Listed::Entry(Entry::file(rel, size, Mtime(mtime))));
        }
        let restore = if self.glacier_restore {
            match self.client.restore_object(&self.bucket, &key, RESTORE_DAYS, RESTORE_TIER).await {
                Ok(RestoreStatus::Started | RestoreStatus::AlreadyRestored) => RestoreAsked::Requested,
                Ok(RestoreStatus::InProgress) => RestoreAsked::InProgress,
                Err(e) => RestoreAsked::Failed(e.to_string()),
            }
        } else if head.restore.as_deref().is_some_and(|r| r.contains("ongoing-request=\"true\"")) {
            RestoreAsked::InProgress
        } else {
            RestoreAsked::No
        };
        tracing::info!(job = self.job, bucket = %self.bucket, key = %key, class = %class, ?restore, "archived object");
        let reason = reason(&class, &restore);
        self.archived.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Archived {
            path: rel.clone(),
            storage_class: class,
            restore,
        });
        Some(Listed::Error { path: rel, reason })
    }

    /// Refuses to overwrite an object the listing found archived: a PUSH would otherwise
    /// replace it (the planner did not see it), which is neither what "not read, not deleted"
    /// promises nor cheap.
    pub(super) fn refuse_archived(&self, path: &str) -> Result<(), RemoteError> {
        let archived = self.archived.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match archived.iter().find(|a| a.path == path) {
            Some(a) => Err(RemoteError::Refused {
                path: path.to_owned(),
                reason: format!("stored in {}: not overwritten while archived; {ARCHIVED_NOTE}", a.storage_class),
            }),
            None => Ok(()),
        }
    }

    /// The archived objects met so far.
    pub(super) fn archived_so_far(&self) -> Vec<Archived> {
        self.archived.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The job log's reason for an archived object.
fn reason(class: &str, restore: &RestoreAsked) -> String {
    let what = format!("stored in {class}: it cannot be read until it is restored; {ARCHIVED_NOTE}");
    match restore {
        RestoreAsked::No => format!("{what} (restore it, or set the task attribute glacier_restore)"),
        RestoreAsked::Requested => format!(
            "{what}; restore requested (RestoreObject, {RESTORE_TIER} tier, readable for {RESTORE_DAYS} days once done)"
        ),
        RestoreAsked::InProgress => format!("{what}; a restore is already in progress"),
        RestoreAsked::Failed(e) => format!("{what}; the restore request failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_classes_and_reasons() {
        assert_eq!(archive_class(Some("GLACIER")), Some("GLACIER"));
        assert_eq!(archive_class(Some("DEEP_ARCHIVE")), Some("DEEP_ARCHIVE"));
        assert_eq!(archive_class(Some("GLACIER_IR")), None, "instant retrieval reads like STANDARD");
        assert_eq!(archive_class(Some("STANDARD")), None);
        assert_eq!(archive_class(None), None);
        assert!(reason("GLACIER", &RestoreAsked::No).contains("set the task attribute glacier_restore"));
        assert!(reason("DEEP_ARCHIVE", &RestoreAsked::Requested).contains("restore requested"));
        assert!(reason("GLACIER", &RestoreAsked::Failed("503".into())).contains("failed: 503"));
    }
}
