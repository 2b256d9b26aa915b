//! `ListObjectsV2` response (`<ListBucketResult>`), including `encoding-type=url` key decoding; may import only std and the parent `xml` module.

use super::{Node, S3XmlError, decode_key, is_url_encoded, opt_decoded, parse_root};

/// One `<Contents>` entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Object key, URL-decoded when the listing was URL-encoded.
    pub key: String,
    /// The key's bytes when they are not UTF-8 (only a URL-encoded listing
    /// can carry such a key); `key` then shows them lossily.
    pub key_bytes: Option<Vec<u8>>,
    /// `LastModified`, unix seconds.
    pub last_modified: i64,
    /// `ETag` as sent (with its quotes; `-N` suffix for multipart uploads);
    /// empty when the server sends none (s3s-fs 0.14.1 leaves it out).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// `StorageClass`, when present (`STANDARD`, `GLACIER`, ...).
    pub storage_class: Option<String>,
}

/// One page of a `ListObjectsV2` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListObjectsV2Page {
    /// Bucket name.
    pub name: Option<String>,
    /// `Prefix` of the request (decoded), when non-empty.
    pub prefix: Option<String>,
    /// `Delimiter` of the request (decoded), when non-empty.
    pub delimiter: Option<String>,
    /// The objects of this page.
    pub contents: Vec<Object>,
    /// `CommonPrefixes/Prefix` values (decoded): the "directories".
    pub common_prefixes: Vec<String>,
    /// The bytes of `CommonPrefixes` that are not UTF-8 (only a URL-encoded listing can carry
    /// them); they do not fail the page.
    pub common_prefixes_not_utf8: Vec<Vec<u8>>,
    /// Whether more pages follow.
    pub is_truncated: bool,
    /// Token for the next page; always present when `is_truncated`.
    pub next_continuation_token: Option<String>,
    /// `KeyCount`, when present.
    pub key_count: Option<u64>,
    /// `StartAfter` of the request (decoded), when non-empty.
    pub start_after: Option<String>,
    /// Whether the response had `EncodingType=url` (and was decoded).
    pub url_encoded: bool,
}

fn object(node: &Node, url_encoded: bool) -> Result<Object, S3XmlError> {
    let (key, key_bytes) = decode_key(node.req_text("Key")?, url_encoded)?;
    Ok(Object {
        key,
        key_bytes,
        last_modified: node.req_time("LastModified")?,
        etag: node.opt_text("ETag").unwrap_or_default().to_owned(),
        size: node.req_u64("Size")?,
        storage_class: node.opt_nonempty("StorageClass"),
    })
}

/// Parses one page of a `ListObjectsV2` response body.
///
/// With `EncodingType=url` in the response, keys, prefixes, the delimiter
/// and `StartAfter` are URL-decoded (`+` is a space).
///
/// # Errors
///
/// [`S3XmlError::MissingElement`] for a missing `IsTruncated`, an entry's
/// `Key`, `LastModified` or `Size`, or a `NextContinuationToken`
/// missing from a truncated page; [`S3XmlError::InvalidValue`] for
/// malformed numbers, booleans, timestamps or URL encoding;
/// [`S3XmlError::ErrorDocument`], [`S3XmlError::UnexpectedRoot`] and the
/// document-level errors.
pub fn parse_list_objects_v2(body: &[u8]) -> Result<ListObjectsV2Page, S3XmlError> {
    let root = parse_root(body, &["ListBucketResult"])?;
    let url = is_url_encoded(&root);
    let contents = root.children_named("Contents").map(|c| object(c, url)).collect::<Result<_, _>>()?;
    let is_truncated = root.req_bool("IsTruncated")?;
    let next_continuation_token = root.opt_nonempty("NextContinuationToken");
    let mut common_prefixes = Vec::new();
    let mut common_prefixes_not_utf8 = Vec::new();
    for cp in root.children_named("CommonPrefixes") {
        match decode_key(cp.req_text("Prefix")?, url)? {
            (p, None) => common_prefixes.push(p),
            (_, Some(raw)) => common_prefixes_not_utf8.push(raw),
        }
    }
    if is_truncated && next_continuation_token.is_none() {
        return Err(root.missing("NextContinuationToken"));
    }
    Ok(ListObjectsV2Page {
        name: root.opt_nonempty("Name"),
        prefix: opt_decoded(&root, "Prefix", url)?,
        delimiter: opt_decoded(&root, "Delimiter", url)?,
        contents,
        common_prefixes,
        common_prefixes_not_utf8,
        is_truncated,
        next_continuation_token,
        key_count: root.opt_u64("KeyCount")?,
        start_after: opt_decoded(&root, "StartAfter", url)?,
        url_encoded: url,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn etag_may_be_missing() {
        let xml = br#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>
<LastModified>2026-11-25T19:01:02.913Z</LastModified><Size>2</Size></Contents></ListBucketResult>"#;
        let page = super::parse_list_objects_v2(xml).unwrap();
        assert_eq!((page.contents[0].key.as_str(), page.contents[0].etag.as_str()), ("k", ""));
    }

    #[test]
    fn a_key_that_is_not_utf8_keeps_its_bytes_and_the_page() {
        let xml = br#"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<Contents><Key>f%2Fbad-%FF.txt</Key><LastModified>2026-11-25T19:01:02.913Z</LastModified><Size>2</Size></Contents>
<Contents><Key>f/ok+1.txt</Key><LastModified>2026-11-25T19:01:02.913Z</LastModified><Size>2</Size></Contents>
</ListBucketResult>"#;
        let page = super::parse_list_objects_v2(xml).unwrap();
        assert_eq!(page.contents[0].key, "f/bad-\u{fffd}.txt");
        assert_eq!(page.contents[0].key_bytes.as_deref(), Some(&b"f/bad-\xff.txt"[..]));
        assert_eq!((page.contents[1].key.as_str(), page.contents[1].key_bytes.as_ref()), ("f/ok 1.txt", None));
        let bad = br#"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<Contents><Key>f%2</Key><LastModified>2026-11-25T19:01:02.913Z</LastModified><Size>2</Size></Contents>
</ListBucketResult>"#;
        assert!(super::parse_list_objects_v2(bad).is_err(), "a malformed escape still fails");
    }

    #[test]
    fn a_common_prefix_that_is_not_utf8_is_kept_apart() {
        let xml = br#"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<CommonPrefixes><Prefix>a%FF%2F</Prefix></CommonPrefixes><CommonPrefixes><Prefix>b+c%2F</Prefix></CommonPrefixes>
</ListBucketResult>"#;
        let page = super::parse_list_objects_v2(xml).unwrap();
        assert_eq!(page.common_prefixes, ["b c/"]);
        assert_eq!(page.common_prefixes_not_utf8, [b"a\xff/".to_vec()]);
    }
}
