//! `DeleteObjects`: the request body builder (quiet mode, escaped keys, at most 1000) and the `<DeleteResult>` response; may import only std and the parent `xml` module.

use super::{Node, S3XmlError, open_body, parse_root, push_element};

/// Most objects one `DeleteObjects` request may name.
const MAX_DELETE_OBJECTS: usize = 1000;

/// An object (or one version of it) to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectIdentifier<'a> {
    /// The object key, raw (it is XML-escaped here).
    pub key: &'a str,
    /// A specific version to delete; `None` deletes the current version (or
    /// adds a delete marker in a versioned bucket).
    pub version_id: Option<&'a str>,
}

impl<'a> From<&'a str> for ObjectIdentifier<'a> {
    fn from(key: &'a str) -> Self {
        Self { key, version_id: None }
    }
}

/// Builds the `DeleteObjects` request body. In `quiet` mode the response
/// lists only the failures.
///
/// Keys are XML-escaped (`& < > " '`, and `\r`, `\n`, `\t` as character
/// references, as S3 requires). The request also needs a `Content-MD5` or
/// `x-amz-checksum-*` header, which is the caller's job.
///
/// # Errors
///
/// [`S3XmlError::InvalidObjectCount`] for 0 or more than 1000 objects, and
/// [`S3XmlError::UnrepresentableCharacter`] for a key or version id holding
/// a control character XML 1.0 cannot carry (delete such objects one by one).
pub fn delete_objects_body(objects: &[ObjectIdentifier<'_>], quiet: bool) -> Result<String, S3XmlError> {
    if objects.is_empty() || objects.len() > MAX_DELETE_OBJECTS {
        return Err(S3XmlError::InvalidObjectCount { count: objects.len() });
    }
    let mut out = open_body("Delete");
    if quiet {
        out.push_str("<Quiet>true</Quiet>");
    }
    for object in objects {
        out.push_str("<Object>");
        push_element(&mut out, "Key", object.key)?;
        if let Some(version) = object.version_id {
            push_element(&mut out, "VersionId", version)?;
        }
        out.push_str("</Object>");
    }
    out.push_str("</Delete>");
    Ok(out)
}

/// An object that `DeleteObjects` deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedObject {
    /// The key.
    pub key: String,
    /// The version deleted, when one was named.
    pub version_id: Option<String>,
    /// Whether a delete marker was created or deleted.
    pub delete_marker: bool,
    /// Version id of that delete marker.
    pub delete_marker_version_id: Option<String>,
}

/// An object that `DeleteObjects` failed to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteError {
    /// The key.
    pub key: String,
    /// The version, when one was named.
    pub version_id: Option<String>,
    /// Error code, for example `AccessDenied`.
    pub code: String,
    /// Message, when present.
    pub message: Option<String>,
}

/// A `DeleteObjects` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteResult {
    /// Deleted objects (empty in quiet mode).
    pub deleted: Vec<DeletedObject>,
    /// Per-object failures; a 200 response can still hold these.
    pub errors: Vec<DeleteError>,
}

fn deleted(node: &Node) -> Result<DeletedObject, S3XmlError> {
    Ok(DeletedObject {
        key: node.req_text("Key")?.to_owned(),
        version_id: node.opt_nonempty("VersionId"),
        delete_marker: node.opt_bool("DeleteMarker")?.unwrap_or(false),
        delete_marker_version_id: node.opt_nonempty("DeleteMarkerVersionId"),
    })
}

fn failed(node: &Node) -> Result<DeleteError, S3XmlError> {
    Ok(DeleteError {
        key: node.req_text("Key")?.to_owned(),
        version_id: node.opt_nonempty("VersionId"),
        code: node.req_text("Code")?.trim().to_owned(),
        message: node.opt_nonempty("Message"),
    })
}

/// Parses a `DeleteObjects` response body.
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] for an entry without `Key` (or an error
/// entry without `Code`), [`S3XmlError::InvalidValue`] for a malformed
/// `DeleteMarker`, [`S3XmlError::ErrorDocument`],
/// [`S3XmlError::UnexpectedRoot`] and the document-level errors.
pub fn parse_delete_result(body: &[u8]) -> Result<DeleteResult, S3XmlError> {
    let root = parse_root(body, &["DeleteResult"])?;
    Ok(DeleteResult {
        deleted: root.children_named("Deleted").map(deleted).collect::<Result<_, _>>()?,
        errors: root.children_named("Error").map(failed).collect::<Result<_, _>>()?,
    })
}
