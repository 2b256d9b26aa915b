//! Hard deletes (task attribute `hard_delete`): every version of a key and its delete markers
//! are removed (ListObjectVersions, then versioned DeleteObjects), so that a versioned bucket (or
//! B2, which hides instead of deleting) keeps nothing of a file a SYNC removed. Part of
//! [`S3Remote`]; imports its parent and the sibling S3 client modules.

use super::{RemoteError, S3Remote, remote_error};
use crate::remote::s3::{ListRequest, ObjectIdentifier, VersionEntry};

impl S3Remote {
    /// Deletes every version and delete marker of `path`'s key; other keys (also those that
    /// start with it) are untouched. A server without ListObjectVersions (501) gets a plain
    /// delete, as it keeps no versions.
    pub(super) async fn delete_every_version(&self, path: &str) -> Result<(), RemoteError> {
        let key = self.key(path);
        let mut pages = self
            .client
            .list_object_versions(&self.bucket, ListRequest { prefix: key.clone(), ..ListRequest::default() });
        let mut versions: Vec<String> = Vec::new();
        'pages: while let Some(page) = pages.next_page().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if e.is_not_implemented() && versions.is_empty() => {
                    self.client.delete_object(&self.bucket, &key, None).await.map_err(|e| remote_error(path, e))?;
                    return Ok(());
                }
                Err(e) => return Err(remote_error(path, e)),
            };
            // Listed by key: the key itself sorts before every longer key it is a prefix of.
            for entry in page.entries {
                if entry.key() != key {
                    break 'pages;
                }
                versions.push(match entry {
                    VersionEntry::Version(v) => v.version_id,
                    VersionEntry::DeleteMarker(d) => d.version_id,
                });
            }
        }
        if versions.is_empty() {
            return Ok(()); // gone already
        }
        let ids: Vec<ObjectIdentifier<'_>> =
            versions.iter().map(|v| ObjectIdentifier { key: &key, version_id: Some(v) }).collect();
        let out = self.client.delete_objects(&self.bucket, &ids).await.map_err(|e| remote_error(path, e))?;
        if let Some(first) = out.errors.first() {
            return Err(RemoteError::Refused {
                path: path.to_owned(),
                reason: format!(
                    "{} of {} versions could not be deleted: {}{}",
                    out.errors.len(),
                    versions.len(),
                    first.code,
                    first.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
                ),
            });
        }
        tracing::debug!(job = self.job, bucket = %self.bucket, key = %key, versions = versions.len(), "every version deleted");
        Ok(())
    }
}
