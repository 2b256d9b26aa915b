//! Multipart uploads: `CreateMultipartUpload`, `CompleteMultipartUpload` (body builder and response, which may be an error sent with 200) and `ListMultipartUploads`; may import only std and the parent `xml` module.

use super::{
    Node, S3XmlError, common_prefixes, decode_value, is_url_encoded, open_body, opt_decoded, parse_root, push_element,
};

/// Highest part number S3 accepts.
const MAX_PART_NUMBER: u32 = 10_000;

/// Response of `CreateMultipartUpload` (`<InitiateMultipartUploadResult>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiateMultipartUpload {
    /// Bucket, when present.
    pub bucket: Option<String>,
    /// Key, when present.
    pub key: Option<String>,
    /// The upload id to pass to `UploadPart` and `CompleteMultipartUpload`.
    pub upload_id: String,
}

/// Parses a `CreateMultipartUpload` response body.
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] without a non-empty `UploadId`,
/// [`S3XmlError::ErrorDocument`], [`S3XmlError::UnexpectedRoot`] and the
/// document-level errors.
pub fn parse_initiate_multipart_upload(body: &[u8]) -> Result<InitiateMultipartUpload, S3XmlError> {
    let root = parse_root(body, &["InitiateMultipartUploadResult"])?;
    let upload_id = root.opt_nonempty("UploadId").ok_or_else(|| root.missing("UploadId"))?;
    Ok(InitiateMultipartUpload { bucket: root.opt_nonempty("Bucket"), key: root.opt_nonempty("Key"), upload_id })
}

/// A part to list in `CompleteMultipartUpload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// The `ETag` that `UploadPart` returned, as returned (with its quotes).
    pub etag: String,
}

/// Builds the `CompleteMultipartUpload` request body.
///
/// # Errors
///
/// [`S3XmlError::NoParts`] for an empty list,
/// [`S3XmlError::InvalidPartNumber`] outside 1..=10000,
/// [`S3XmlError::PartsNotAscending`] unless part numbers strictly increase,
/// and [`S3XmlError::UnrepresentableCharacter`] for an `ETag` that XML
/// cannot carry.
pub fn complete_multipart_upload_body(parts: &[CompletedPart]) -> Result<String, S3XmlError> {
    if parts.is_empty() {
        return Err(S3XmlError::NoParts);
    }
    let mut out = open_body("CompleteMultipartUpload");
    let mut previous: Option<u32> = None;
    for part in parts {
        if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
            return Err(S3XmlError::InvalidPartNumber { part_number: part.part_number });
        }
        if let Some(prev) = previous.filter(|&prev| part.part_number <= prev) {
            return Err(S3XmlError::PartsNotAscending { previous: prev, part_number: part.part_number });
        }
        previous = Some(part.part_number);
        out.push_str("<Part>");
        push_element(&mut out, "PartNumber", &part.part_number.to_string())?;
        push_element(&mut out, "ETag", &part.etag)?;
        out.push_str("</Part>");
    }
    out.push_str("</CompleteMultipartUpload>");
    Ok(out)
}

/// Response of a successful `CompleteMultipartUpload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteMultipartUpload {
    /// `Location` URL, when present.
    pub location: Option<String>,
    /// Bucket, when present.
    pub bucket: Option<String>,
    /// Key, when present.
    pub key: Option<String>,
    /// `ETag` of the assembled object (with its quotes).
    pub etag: String,
}

/// Parses a `CompleteMultipartUpload` response body.
///
/// S3 sends the 200 status before it has assembled the object, so a failure
/// arrives as a 200 response with an `<Error>` body: that is returned as
/// [`S3XmlError::ErrorDocument`] (retry on `InternalError` / `SlowDown`).
///
/// # Errors
///
/// [`S3XmlError::ErrorDocument`] as above, [`S3XmlError::MissingElement`]
/// without an `ETag`, [`S3XmlError::UnexpectedRoot`] and the document-level
/// errors (a truncated body gives [`S3XmlError::Malformed`]).
pub fn parse_complete_multipart_upload(body: &[u8]) -> Result<CompleteMultipartUpload, S3XmlError> {
    // moto 5.2.1 names the root `CompleteMultipartUploadResponse`, with the same children.
    let root = parse_root(body, &["CompleteMultipartUploadResult", "CompleteMultipartUploadResponse"])?;
    Ok(CompleteMultipartUpload {
        location: root.opt_nonempty("Location"),
        bucket: root.opt_nonempty("Bucket"),
        key: root.opt_nonempty("Key"),
        etag: root.req_text("ETag")?.to_owned(),
    })
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// Object key (decoded).
    pub key: String,
    /// Upload id (pass it to `AbortMultipartUpload`).
    pub upload_id: String,
    /// `Initiated`, unix seconds.
    pub initiated: i64,
    /// `StorageClass`, when present.
    pub storage_class: Option<String>,
}

/// One page of a `ListMultipartUploads` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMultipartUploadsPage {
    /// Bucket, when present.
    pub bucket: Option<String>,
    /// The uploads of this page.
    pub uploads: Vec<MultipartUpload>,
    /// `CommonPrefixes/Prefix` values (decoded).
    pub common_prefixes: Vec<String>,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// `NextKeyMarker` (decoded); always present when `is_truncated`.
    pub next_key_marker: Option<String>,
    /// `NextUploadIdMarker`, when present.
    pub next_upload_id_marker: Option<String>,
}

fn upload(node: &Node, url: bool) -> Result<MultipartUpload, S3XmlError> {
    Ok(MultipartUpload {
        key: decode_value("Key", node.req_text("Key")?, url)?,
        upload_id: node.req_text("UploadId")?.to_owned(),
        initiated: node.req_time("Initiated")?,
        storage_class: node.opt_nonempty("StorageClass"),
    })
}

/// Parses one page of a `ListMultipartUploads` response body.
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] for a missing `IsTruncated`, an upload's
/// `Key`, `UploadId` or `Initiated`, or a `NextKeyMarker` missing from a
/// truncated page; [`S3XmlError::InvalidValue`],
/// [`S3XmlError::ErrorDocument`], [`S3XmlError::UnexpectedRoot`] and the
/// document-level errors.
pub fn parse_list_multipart_uploads(body: &[u8]) -> Result<ListMultipartUploadsPage, S3XmlError> {
    let root = parse_root(body, &["ListMultipartUploadsResult"])?;
    let url = is_url_encoded(&root);
    let uploads = root.children_named("Upload").map(|u| upload(u, url)).collect::<Result<_, _>>()?;
    let is_truncated = root.req_bool("IsTruncated")?;
    let next_key_marker = opt_decoded(&root, "NextKeyMarker", url)?;
    if is_truncated && next_key_marker.is_none() {
        return Err(root.missing("NextKeyMarker"));
    }
    Ok(ListMultipartUploadsPage {
        bucket: root.opt_nonempty("Bucket"),
        uploads,
        common_prefixes: common_prefixes(&root, url)?,
        is_truncated,
        next_key_marker,
        next_upload_id_marker: root.opt_nonempty("NextUploadIdMarker"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn moto_complete_root_is_accepted() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<CompleteMultipartUploadResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://bkt.s3.amazonaws.com/k</Location><Bucket>bkt</Bucket><Key>k</Key><ETag>"81485c0e873d222199469076b60f30e9-1"</ETag></CompleteMultipartUploadResponse>"#;
        let done = super::parse_complete_multipart_upload(xml).unwrap();
        assert_eq!(done.etag, "\"81485c0e873d222199469076b60f30e9-1\"");
    }
}
