//! `ListObjectVersions` response (`<ListVersionsResult>`): versions and delete markers in listed order; may import only std and the parent `xml` module.

use super::{Node, S3XmlError, common_prefixes, decode_value, is_url_encoded, opt_decoded, parse_root};

/// A stored version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Object key (decoded).
    pub key: String,
    /// `VersionId`; `null` for objects written while versioning was off.
    pub version_id: String,
    /// Whether this is the current version.
    pub is_latest: bool,
    /// `LastModified`, unix seconds.
    pub last_modified: i64,
    /// `ETag` as sent (with its quotes).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// `StorageClass`, when present.
    pub storage_class: Option<String>,
}

/// A delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMarker {
    /// Object key (decoded).
    pub key: String,
    /// `VersionId` of the marker.
    pub version_id: String,
    /// Whether the marker is the current version (the object looks deleted).
    pub is_latest: bool,
    /// `LastModified`, unix seconds.
    pub last_modified: i64,
}

/// One entry of a versions listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionEntry {
    /// A `<Version>`.
    Version(ObjectVersion),
    /// A `<DeleteMarker>`.
    DeleteMarker(DeleteMarker),
}

impl VersionEntry {
    /// The entry's key.
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            Self::Version(v) => &v.key,
            Self::DeleteMarker(d) => &d.key,
        }
    }
}

/// One page of a `ListObjectVersions` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersionsPage {
    /// Bucket name.
    pub name: Option<String>,
    /// `Prefix` of the request (decoded), when non-empty.
    pub prefix: Option<String>,
    /// Versions and delete markers, in listed order (by key, newest first).
    pub entries: Vec<VersionEntry>,
    /// `CommonPrefixes/Prefix` values (decoded).
    pub common_prefixes: Vec<String>,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// `NextKeyMarker` (decoded); always present when `is_truncated`.
    pub next_key_marker: Option<String>,
    /// `NextVersionIdMarker`, when present.
    pub next_version_id_marker: Option<String>,
}

fn version(node: &Node, url: bool) -> Result<ObjectVersion, S3XmlError> {
    Ok(ObjectVersion {
        key: decode_value("Key", node.req_text("Key")?, url)?,
        version_id: node.req_text("VersionId")?.to_owned(),
        is_latest: node.req_bool("IsLatest")?,
        last_modified: node.req_time("LastModified")?,
        etag: node.req_text("ETag")?.to_owned(),
        size: node.req_u64("Size")?,
        storage_class: node.opt_nonempty("StorageClass"),
    })
}

fn delete_marker(node: &Node, url: bool) -> Result<DeleteMarker, S3XmlError> {
    Ok(DeleteMarker {
        key: decode_value("Key", node.req_text("Key")?, url)?,
        version_id: node.req_text("VersionId")?.to_owned(),
        is_latest: node.req_bool("IsLatest")?,
        last_modified: node.req_time("LastModified")?,
    })
}

/// Parses one page of a `ListObjectVersions` response body.
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] for a missing `IsTruncated`, an entry's
/// `Key`, `VersionId`, `IsLatest`, `LastModified` (and a version's `ETag`
/// or `Size`), or a `NextKeyMarker` missing from a truncated page;
/// [`S3XmlError::InvalidValue`], [`S3XmlError::ErrorDocument`],
/// [`S3XmlError::UnexpectedRoot`] and the document-level errors.
pub fn parse_list_object_versions(body: &[u8]) -> Result<ListVersionsPage, S3XmlError> {
    let root = parse_root(body, &["ListVersionsResult"])?;
    let url = is_url_encoded(&root);
    let mut entries = Vec::new();
    for child in &root.children {
        match child.name.as_str() {
            "Version" => entries.push(VersionEntry::Version(version(child, url)?)),
            "DeleteMarker" => entries.push(VersionEntry::DeleteMarker(delete_marker(child, url)?)),
            _ => {}
        }
    }
    let is_truncated = root.req_bool("IsTruncated")?;
    let next_key_marker = opt_decoded(&root, "NextKeyMarker", url)?;
    if is_truncated && next_key_marker.is_none() {
        return Err(root.missing("NextKeyMarker"));
    }
    Ok(ListVersionsPage {
        name: root.opt_nonempty("Name"),
        prefix: opt_decoded(&root, "Prefix", url)?,
        entries,
        common_prefixes: common_prefixes(&root, url)?,
        is_truncated,
        next_key_marker,
        next_version_id_marker: root.opt_nonempty("NextVersionIdMarker"),
    })
}
