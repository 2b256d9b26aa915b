//! `CopyObject` / `UploadPartCopy` response (`<CopyObjectResult>` / `<CopyPartResult>`); may import only std and the parent `xml` module.

use super::{S3XmlError, parse_root};

/// Result of `CopyObject` or `UploadPartCopy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyObjectResult {
    /// `ETag` of the new object or part, as sent (with its quotes).
    pub etag: String,
    /// `LastModified`, unix seconds.
    pub last_modified: i64,
}

/// Parses a `CopyObject` (`<CopyObjectResult>`) or `UploadPartCopy`
/// (`<CopyPartResult>`) response body.
///
/// # Errors
///
/// [`S3XmlError::ErrorDocument`] when the copy failed after the 200 status
/// was sent, [`S3XmlError::MissingElement`] / [`S3XmlError::InvalidValue`]
/// for `ETag` and `LastModified`, and the document-level errors.
pub fn parse_copy_object(body: &[u8]) -> Result<CopyObjectResult, S3XmlError> {
    let root = parse_root(body, &["CopyObjectResult", "CopyPartResult"])?;
    Ok(CopyObjectResult { etag: root.req_text("ETag")?.to_owned(), last_modified: root.req_time("LastModified")? })
}
