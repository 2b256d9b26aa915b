//! `ListBuckets` response (`<ListAllMyBucketsResult>`); may import only std and the parent `xml` module.

use super::{Node, S3XmlError, parse_root};

/// One bucket of a `ListBuckets` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Bucket name.
    pub name: String,
    /// `CreationDate`, unix seconds.
    pub creation_date: i64,
    /// `BucketRegion`, sent by newer S3 versions.
    pub region: Option<String>,
}

/// A `ListBuckets` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketList {
    /// The buckets, in the order listed.
    pub buckets: Vec<Bucket>,
    /// `Owner/ID`, when present.
    pub owner_id: Option<String>,
    /// `Owner/DisplayName`, when present.
    pub owner_display_name: Option<String>,
    /// `ContinuationToken` for the next page (paginated `ListBuckets`).
    pub continuation_token: Option<String>,
}

fn bucket(node: &Node) -> Result<Bucket, S3XmlError> {
    Ok(Bucket {
        name: node.req_text("Name")?.to_owned(),
        creation_date: node.req_time("CreationDate")?,
        region: node.opt_nonempty("BucketRegion"),
    })
}

/// Parses a `ListBuckets` response body.
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] / [`S3XmlError::InvalidValue`] for a
/// bucket's `Name` or `CreationDate`, [`S3XmlError::ErrorDocument`],
/// [`S3XmlError::UnexpectedRoot`] and the document-level errors.
pub fn parse_list_buckets(body: &[u8]) -> Result<BucketList, S3XmlError> {
    let root = parse_root(body, &["ListAllMyBucketsResult"])?;
    let buckets = match root.child("Buckets") {
        Some(list) => list.children_named("Bucket").map(bucket).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let owner = root.child("Owner");
    Ok(BucketList {
        buckets,
        owner_id: owner.and_then(|o| o.opt_nonempty("ID")),
        owner_display_name: owner.and_then(|o| o.opt_nonempty("DisplayName")),
        continuation_token: root.opt_nonempty("ContinuationToken"),
    })
}
