//! The S3 `<Error>` response document (also sent with status 200 by some calls); may import only std and the parent `xml` module.

use std::fmt;

use super::{Node, S3XmlError, parse_document};

/// An S3 `<Error>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ErrorResponse {
    /// Error code, for example `NoSuchKey`, `SlowDown` or `InternalError`.
    pub code: String,
    /// Human-readable message, when present.
    pub message: Option<String>,
    /// `RequestId`, when present.
    pub request_id: Option<String>,
    /// `HostId` (extended request id), when present.
    pub host_id: Option<String>,
    /// `Region`, for example in `AuthorizationHeaderMalformed`: the region
    /// the bucket is in.
    pub region: Option<String>,
    /// `Endpoint`, for example in `PermanentRedirect`.
    pub endpoint: Option<String>,
}

impl fmt::Display for S3ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(region) = &self.region {
            write!(f, " (region {region})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

/// Reads an `<Error>` element.
pub(super) fn from_node(node: &Node) -> Result<S3ErrorResponse, S3XmlError> {
    let code = node.req_text("Code")?.trim();
    if code.is_empty() {
        return Err(node.missing("Code"));
    }
    Ok(S3ErrorResponse {
        code: code.to_owned(),
        message: node.opt_nonempty("Message"),
        request_id: node.opt_nonempty("RequestId"),
        host_id: node.opt_nonempty("HostId"),
        region: node.opt_nonempty("Region"),
        endpoint: node.opt_nonempty("Endpoint"),
    })
}

/// Parses the body of a failed request (`<Error>`).
///
/// # Errors
///
/// [`S3XmlError::UnexpectedRoot`] when the root is not `<Error>` (for
/// example an HTML page from a proxy), [`S3XmlError::MissingElement`]
/// without a non-empty `<Code>`, and the document-level errors.
pub fn parse_error(body: &[u8]) -> Result<S3ErrorResponse, S3XmlError> {
    let root = parse_document(body)?;
    if root.name != "Error" {
        return Err(S3XmlError::UnexpectedRoot { expected: "Error", found: root.name });
    }
    from_node(&root)
}
