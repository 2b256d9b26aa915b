//! Object operations: HeadObject, GetObject (streamed, ranges), PutObject (from bytes or a re-openable source, with `Content-MD5`), CopyObject (metadata REPLACE), DeleteObject (optionally a version) and RestoreObject, plus the upload options and object metadata types; may import std, `jiff`, `s3sig` and the sibling modules.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::s3sig::{self, CopyObjectResult};

use super::{
    Req,
    client::{Mode, Reply, ReplyBody, ReqBody, S3Client, bad_xml, header_str},
    error::{S3Error, Target},
    http::ObjectBody,
    mtime::{MTIME_HEADER, MTIME_META, format_mtime, parse_mtime},
    multipart::MD5_META,
    source::{BodySource, hex, md5_from_hex},
};

use base64::Engine as _;

/// The largest object one `PutObject` (or one part, or one `CopyObject`)
/// may carry: 5 GiB.
pub const MAX_SINGLE_PUT: u64 = 5 << 30;

/// Metadata and settings of a new object (`PutObject`,
/// `CreateMultipartUpload`, `CopyObject` with REPLACE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// `Content-Type`; S3 defaults to `binary/octet-stream`.
    pub content_type: Option<String>,
    /// Modification time in ns since the epoch, stored as rclone does
    /// (`X-Amz-Meta-Mtime`).
    pub mtime: Option<i128>,
    /// Other user metadata (`x-amz-meta-<name>`): names are lower-cased, and
    /// values must be printable ASCII.
    pub metadata: Vec<(String, String)>,
    /// `x-amz-storage-class` (`STANDARD`, `STANDARD_IA`, `GLACIER`, ...).
    pub storage_class: Option<String>,
    /// Server-side encryption (`x-amz-server-side-encryption`, e.g. `AES256`).
    pub sse: Option<String>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl PutOptions {
    /// The user metadata these options set, as `HeadObject` reads it back: names lower-case,
    /// without `x-amz-meta-`.
    pub(crate) fn user_metadata(&self) -> Vec<(String, String)> {
        let mut m: Vec<_> = self.metadata.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        if let Some(ns) = self.mtime {
            m.push((MTIME_META.to_owned(), format_mtime(ns)));
        }
        m
    }

    /// The request headers these options add.
    pub(crate) fn headers(&self, target: &Target) -> Result<Vec<(String, String)>, S3Error> {
        let mut h = Vec::new();
        let check = |what: &str, v: &str| {
            if is_header_value(v) {
                Ok(())
            } else {
                Err(S3Error::invalid(Box::new(target.clone()), format!("{what} {v:?} must be printable ASCII")))
            }
        };
        if let Some(ct) = &self.content_type {
            check("content type", ct)?;
            h.push(("content-type".to_owned(), ct.clone()));
        }
        if let Some(ns) = self.mtime {
            h.push((MTIME_HEADER.to_owned(), format_mtime(ns)));
        }
        for (name, value) in &self.metadata {
            let name = name.to_ascii_lowercase();
            if !is_token(&name) || (self.mtime.is_some() && name == MTIME_META) {
                return Err(S3Error::invalid(
                    Box::new(target.clone()),
                    format!("invalid or duplicate metadata name {name:?}"),
                ));
            }
            check("metadata value", value)?;
            h.push((format!("x-amz-meta-{name}"), value.clone()));
        }
        if let Some(class) = self.storage_class.as_deref().filter(|c| !c.is_empty()) {
            if !is_token(class) {
                return Err(S3Error::invalid(Box::new(target.clone()), format!("invalid storage class {class:?}")));
            }
            h.push(("x-amz-storage-class".to_owned(), class.to_owned()));
        }
        if let Some(sse) = self.sse.as_deref().filter(|s| !s.is_empty()) {
            if !is_token(sse) {
                return Err(S3Error::invalid(
                    Box::new(target.clone()),
                    format!("invalid server-side encryption {sse:?}"),
                ));
            }
            h.push(("x-amz-server-side-encryption".to_owned(), sse.to_owned()));
        }
        Ok(h)
    }
}

/// What S3 says about an object (`HeadObject`, `GetObject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size of the whole object in bytes.
    pub size: u64,
    /// `ETag`, with its quotes.
    pub etag: String,
    /// `Last-Modified`, unix seconds.
    pub last_modified: Option<i64>,
    /// Storage class; `STANDARD` when S3 sends none.
    pub storage_class: String,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// User metadata, names lower-case without `x-amz-meta-`.
    pub metadata: BTreeMap<String, String>,
    /// `x-amz-version-id`, in versioned buckets.
    pub version_id: Option<String>,
    /// `x-amz-restore` of an archived object (`ongoing-request="false", expiry-date=...`).
    pub restore: Option<String>,
    /// `x-amz-server-side-encryption`.
    pub sse: Option<String>,
}

impl ObjectMeta {
    /// The mtime rclone-style metadata holds, in ns.
    #[must_use]
    pub fn mtime(&self) -> Option<i128> {
        self.metadata.get(MTIME_META).and_then(|v| parse_mtime(v))
    }

    /// The mtime, else `Last-Modified`, in ns.
    #[must_use]
    pub fn mtime_or_last_modified(&self) -> Option<i128> {
        self.mtime().or_else(|| self.last_modified.map(|s| i128::from(s) * 1_000_000_000))
    }

    /// The MD5 of the content as lower-case hex: the `ETag` of a single-part
    /// upload, else rclone's `X-Amz-Meta-Md5chksum` (base64), if any.
    #[must_use]
    pub fn md5_hex(&self) -> Option<String> {
        if let Some(md5) = md5_from_hex(self.etag.trim_matches('"')) {
            return Some(hex(&md5));
        }
        let b64 = self.metadata.get(MD5_META)?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
        (raw.len() == 16).then(|| hex(&raw))
    }

    /// Whether the object sits in an archive class without a finished restore.
    #[must_use]
    pub fn is_archived(&self) -> bool {
        is_archive_class(&self.storage_class)
            && !self.restore.as_deref().is_some_and(|r| r.contains("ongoing-request=\"false\""))
    }

    fn from_headers(h: &HeaderMap, size: u64) -> Self {
        let s = |n: &str| header_str(h, n).map(str::to_owned);
        let metadata = h
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            })
            .collect();
        Self {
            size,
            etag: s("etag").unwrap_or_default(),
            last_modified: header_str(h, "last-modified").and_then(parse_http_date),
            storage_class: s("x-amz-storage-class").unwrap_or_else(|| "STANDARD".to_owned()),
            content_type: s("content-type"),
            metadata,
            version_id: s("x-amz-version-id"),
            restore: s("x-amz-restore"),
            sse: s("x-amz-server-side-encryption"),
        }
    }
}

/// Whether a storage class keeps objects offline until restored.
#[must_use]
pub fn is_archive_class(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

/// Parses an HTTP date (`Tue, 15 Nov 1994 08:12:31 GMT`) to unix seconds.
#[must_use]
pub fn parse_http_date(s: &str) -> Option<i64> {
    jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(s).ok().map(|t| t.as_second())
}

/// What `HeadObject ?partNumber=` says ([`S3Client::head_object_part`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// The object's metadata; `size` is the whole object's when the server tells it (a
    /// `Content-Range`, or a server that ignored `partNumber`), else 0.
    pub meta: ObjectMeta,
    /// `x-amz-mp-parts-count`: the number of parts of a multipart object.
    pub parts_count: Option<u64>,
    /// `Content-Length`: the part's length (the whole object's where `partNumber` was ignored).
    pub len: u64,
}

/// A byte range of a `GetObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// From this offset to the end.
    From(u64),
    /// These bytes, inclusive (`bytes=first-last`).
    Inclusive(u64, u64),
    /// The last n bytes.
    Last(u64),
}

impl Range {
    fn header(self) -> String {
        match self {
            Self::From(a) => format!("bytes={a}-"),
            Self::Inclusive(a, b) => format!("bytes={a}-{b}"),
            Self::Last(n) => format!("bytes=-{n}"),
        }
    }
}

/// Options of a `GetObject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Only these bytes.
    pub range: Option<Range>,
    /// That version.
    pub version_id: Option<String>,
    /// Only if the `ETag` still matches (`If-Match`).
    pub if_match: Option<String>,
}

/// A `GetObject` response: the metadata, and the body to stream.
#[derive(Debug)]
pub struct GetObjectOutput {
    /// The object's metadata (`size` is the whole object's).
    pub meta: ObjectMeta,
    /// Bytes in this response (the range's length for a range).
    pub content_length: u64,
    /// `(first, last)` byte of a range response.
    pub range: Option<(u64, u64)>,
    /// The body.
    pub body: ObjectBody,
}

/// A stored object's `ETag` and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutput {
    /// `ETag`, with its quotes.
    pub etag: String,
    /// `x-amz-version-id`, in versioned buckets.
    pub version_id: Option<String>,
    /// The server's clock when it answered (`Date`), unix seconds.
    pub date: Option<i64>,
}

/// What a `DeleteObject` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutput {
    /// A delete marker was made (versioned bucket) or removed.
    pub delete_marker: bool,
    /// The version deleted or the marker's version.
    pub version_id: Option<String>,
}

/// The state of a `RestoreObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStatus {
    /// Accepted: a temporary copy is being made (202).
    Started,
    /// A restored copy already exists; its expiry was updated (200).
    AlreadyRestored,
    /// A restore was already running (409 `RestoreAlreadyInProgress`).
    InProgress,
}

/// Parses `bytes first-last/total`.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total.trim().parse().ok()?))
}

fn put_output(r: &Reply) -> PutOutput {
    PutOutput {
        etag: r.header("etag").unwrap_or_default().to_owned(),
        version_id: r.header("x-amz-version-id").map(str::to_owned),
        date: r.header("date").and_then(parse_http_date),
    }
}

impl S3Client {
    /// The metadata of `key`, `None` when it does not exist.
    ///
    /// # Errors
    /// Any other [`S3Error`].
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>, S3Error> {
        self.head_object_version(bucket, key, None).await
    }

    /// The metadata of one version of `key` (`None`: the current one).
    ///
    /// # Errors
    /// Any [`S3Error`] but not-found.
    pub async fn head_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectMeta>, S3Error> {
        let mut req = Req::new("HeadObject", Method::HEAD, bucket, key);
        if let Some(v) = version_id {
            req = req.query("versionId", v);
        }
        let res = self
            .run(&req, Mode::Collect, |r| {
                let size = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                Ok(ObjectMeta::from_headers(&r.headers, size))
            })
            .await;
        match res {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `HeadObject ?partNumber=part`: the object's metadata, with the number of parts of a
    /// multipart object (`x-amz-mp-parts-count`) and this part's length where the server tells
    /// them; `None` when the object does not exist. A server that ignores `partNumber` answers
    /// as a plain HEAD (no parts count, the whole length).
    ///
    /// # Errors
    /// Any [`S3Error`] but not-found.
    pub async fn head_object_part(&self, bucket: &str, key: &str, part: u32) -> Result<Option<PartHead>, S3Error> {
        let req = Req::new("HeadObjectPart", Method::HEAD, bucket, key).query("partNumber", part.to_string());
        let res = self
            .run(&req, Mode::Collect, |r| {
                let len: u64 = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let total = r.header("content-range").and_then(content_range).map(|(_, _, t)| t);
                let parts_count = r.header("x-amz-mp-parts-count").and_then(|v| v.trim().parse().ok());
                // Without a parts count or a range, the answer is about the whole object.
                let size = total.unwrap_or(if parts_count.is_some() { 0 } else { len });
                Ok(PartHead { meta: ObjectMeta::from_headers(&r.headers, size), parts_count, len })
            })
            .await;
        match res {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts reading `key`; the body streams from the returned output.
    ///
    /// # Errors
    /// `NoSuchKey`, [`S3Error::Archived`] for an archived object that is not
    /// restored, and the other [`S3Error`]s.
    pub async fn get_object(&self, bucket: &str, key: &str, opts: &GetOptions) -> Result<GetObjectOutput, S3Error> {
        // Ranged reads are counted apart (a large download in parallel ranges, a resumed read).
        let op = if opts.range.is_some() { "GetObjectRange" } else { "GetObject" };
        let mut req = Req::new(op, Method::GET, bucket, key);
        if let Some(v) = &opts.version_id {
            req = req.query("versionId", v.clone());
        }
        if let Some(r) = opts.range {
            req = req.header("range", r.header());
        }
        if let Some(etag) = &opts.if_match {
            req = req.header("if-match", etag.clone());
        }
        let target = req.target();
        self.run(&req, Mode::Stream, |r| {
            let content_length = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let cr = r.header("content-range").and_then(content_range);
            if opts.range.is_some() && r.status == 206 && cr.is_none() {
                return Err(S3Error::InvalidResponse {
                    target: target.clone(),
                    status: r.status,
                    detail: "206 without a valid Content-Range".to_owned(),
                });
            }
            let size = cr.map_or(content_length, |(_, _, total)| total);
            let meta = ObjectMeta::from_headers(&r.headers, size);
            let ReplyBody::Stream(body) = r.body else {
                return Err(S3Error::InvalidResponse {
                    target: target.clone(),
                    status: r.status,
                    detail: "no body".to_owned(),
                });
            };
            Ok(GetObjectOutput { meta, content_length, range: cr.map(|(a, b, _)| (a, b)), body })
        })
        .await
    }

    /// Stores `data` as `key` in one request, with `Content-MD5`.
    ///
    /// # Errors
    /// Objects over 5 GiB, invalid options, and any [`S3Error`].
    pub async fn put_object_bytes(
        &self,
        bucket: &str,
        key: &str,
        data: Bytes,
        opts: &PutOptions,
    ) -> Result<PutOutput, S3Error> {
        let target = Target::new("PutObject", bucket, key);
        if data.len() as u64 > MAX_SINGLE_PUT {
            return Err(S3Error::invalid(target, "a single PutObject takes at most 5 GiB; use multipart"));
        }
        let mut req = Req::new("PutObject", Method::PUT, bucket, key).body(ReqBody::Data(data));
        req.headers = opts.headers(&target)?;
        self.run(&req, Mode::Collect, |r| Ok(put_output(&r))).await
    }

    /// Stores `len` bytes of `source` as `key` in one streamed request.
    ///
    /// The source is read once, sent `aws-chunked` with every 64 KiB chunk
    /// signed, and never held in memory; a retry reads it again. Where the
    /// server refuses `aws-chunked` (or with
    /// [`PayloadSigning::Whole`](super::PayloadSigning)) it is read twice:
    /// hashed, then sent; if it changes between the reads, the request is
    /// cut off and fails with [`S3Error::Source`]. A source shorter or longer
    /// than `len` fails with [`S3Error::Source`].
    ///
    /// # Errors
    /// Objects over 5 GiB, invalid options, a failing source, and any
    /// [`S3Error`].
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        source: &dyn BodySource,
        opts: &PutOptions,
    ) -> Result<PutOutput, S3Error> {
        let target = Target::new("PutObject", bucket, key);
        if len > MAX_SINGLE_PUT {
            return Err(S3Error::invalid(target, "a single PutObject takes at most 5 GiB; use multipart"));
        }
        let mut req = Req::new("PutObject", Method::PUT, bucket, key).body(ReqBody::Source { source, len });
        req.headers = opts.headers(&target)?;
        self.run(&req, Mode::Collect, |r| Ok(put_output(&r))).await
    }

    /// Copies `src_key` to `dst_key` in the same bucket, replacing the
    /// metadata with `opts` (`x-amz-metadata-directive: REPLACE`): what
    /// `opts` does not name is dropped, so pass everything to keep. With
    /// `src_key == dst_key` this changes only metadata, as rclone does to
    /// update an mtime.
    ///
    /// # Errors
    /// Sources over 5 GiB are refused by S3 (`InvalidRequest`); any
    /// [`S3Error`], including an error sent in a 200 body.
    pub async fn copy_object(
        &self,
        bucket: &str,
        src_key: &str,
        dst_key: &str,
        opts: &PutOptions,
    ) -> Result<CopyObjectResult, S3Error> {
        let target = Target::new("CopyObject", bucket, dst_key);
        let mut req = Req::new("CopyObject", Method::PUT, bucket, dst_key);
        req.headers = opts.headers(&target)?;
        req.headers.push(("x-amz-copy-source".to_owned(), format!("/{bucket}/{}", s3sig::uri_encode(src_key, false))));
        req.headers.push(("x-amz-metadata-directive".to_owned(), "REPLACE".to_owned()));
        self.run(&req, Mode::Collect, |r| {
            s3sig::parse_copy_object(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
        })
        .await
    }

    /// Sets the rclone mtime of `key` with a metadata-only self-copy,
    /// keeping its other metadata, content type, storage class and
    /// encryption.
    ///
    /// # Errors
    /// `NoSuchKey`, and any [`S3Error`].
    pub async fn set_mtime(&self, bucket: &str, key: &str, mtime: i128) -> Result<(), S3Error> {
        let Some(meta) = self.head_object(bucket, key).await? else {
            return Err(S3Error::from_status(Target::new("CopyObject", bucket, key), 404, None, None));
        };
        let opts = PutOptions {
            content_type: meta.content_type.clone(),
            mtime: Some(mtime),
            metadata: meta.metadata.into_iter().filter(|(k, _)| k != MTIME_META).collect(),
            storage_class: Some(meta.storage_class).filter(|c| c != "STANDARD"),
            sse: meta.sse,
        };
        self.copy_object(bucket, key, key, &opts).await.map(drop)
    }

    /// Deletes `key`, or one version of it. Deleting a missing key succeeds.
    ///
    /// # Errors
    /// Any [`S3Error`].
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutput, S3Error> {
        let mut req = Req::new("DeleteObject", Method::DELETE, bucket, key);
        if let Some(v) = version_id {
            req = req.query("versionId", v);
        }
        self.run(&req, Mode::Collect, |r| {
            Ok(DeleteOutput {
                delete_marker: r.header("x-amz-delete-marker") == Some("true"),
                version_id: r.header("x-amz-version-id").map(str::to_owned),
            })
        })
        .await
    }

    /// Asks S3 to make a temporary readable copy of an archived object for
    /// `days` days, at retrieval `tier` (`Standard`, `Bulk`, `Expedited`).
    ///
    /// # Errors
    /// Objects not in an archive class (`InvalidObjectState`), and any
    /// [`S3Error`].
    pub async fn restore_object(
        &self,
        bucket: &str,
        key: &str,
        days: u32,
        tier: &str,
    ) -> Result<RestoreStatus, S3Error> {
        let target = Target::new("RestoreObject", bucket, key);
        if !is_token(tier) {
            return Err(S3Error::invalid(target, format!("invalid tier {tier:?}")));
        }
        let body = format!(
            "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>{days}</Days>\
             <GlacierJobParameters><Tier>{tier}</Tier></GlacierJobParameters></RestoreRequest>"
        );
        let req = Req::new("RestoreObject", Method::POST, bucket, key)
            .query("restore", "")
            .body(ReqBody::Bytes { data: body.into(), md5: true });
        match self
            .run(&req, Mode::Collect, |r| {
                Ok(if r.status == 202 { RestoreStatus::Started } else { RestoreStatus::AlreadyRestored })
            })
            .await
        {
            Err(e) if e.code() == Some("RestoreAlreadyInProgress") => Ok(RestoreStatus::InProgress),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_headers() {
        let t = Target::new("PutObject", "b", "k");
        let opts = PutOptions {
            content_type: Some("text/plain".into()),
            mtime: Some(1_700_000_000_500_000_000),
            metadata: vec![("Owner".into(), "alice".into())],
            storage_class: Some("STANDARD_IA".into()),
            sse: Some("AES256".into()),
        };
        let h = opts.headers(&t).unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-amz-meta-mtime",
                "x-amz-meta-owner",
                "x-amz-storage-class",
                "x-amz-server-side-encryption"
            ]
        );
        assert_eq!(h[1].1, "1700000000.5");
        let bad = PutOptions { metadata: vec![("a b".into(), "x".into())], ..PutOptions::default() };
        assert!(bad.headers(&t).is_err());
        let bad = PutOptions { metadata: vec![("a".into(), "é".into())], ..PutOptions::default() };
        assert!(bad.headers(&t).is_err());
        let dup = PutOptions { mtime: Some(1), metadata: vec![("Mtime".into(), "2".into())], ..PutOptions::default() };
        assert!(dup.headers(&t).is_err());
    }

    #[test]
    fn metadata_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("etag", "\"abc\"".parse().unwrap());
        h.insert("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT".parse().unwrap());
        h.insert("x-amz-meta-mtime", "1700000000.25".parse().unwrap());
        h.insert("x-amz-storage-class", "GLACIER".parse().unwrap());
        let m = ObjectMeta::from_headers(&h, 5);
        assert_eq!(m.last_modified, Some(1_700_000_000));
        assert_eq!(m.mtime(), Some(1_700_000_000_250_000_000));
        assert!(m.is_archived());
        let mut restored = m.clone();
        restored.restore = Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"".into());
        assert!(!restored.is_archived());
        assert_eq!(m.md5_hex(), None);
        let mut multi = m.clone();
        multi.etag = "\"0123456789abcdef0123456789abcdef-3\"".into();
        multi.metadata.insert("md5chksum".into(), "1B2M2Y8AsgTpgAmY7PhCfg==".into());
        assert_eq!(multi.md5_hex().as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        multi.etag = "\"0123456789ABCDEF0123456789abcdef\"".into();
        assert_eq!(multi.md5_hex().as_deref(), Some("0123456789abcdef0123456789abcdef"));
        let mut plain = m;
        plain.metadata.clear();
        plain.storage_class = "STANDARD".into();
        assert_eq!(plain.mtime_or_last_modified(), Some(1_700_000_000_000_000_000));
        assert!(!plain.is_archived());
    }

    #[test]
    fn ranges() {
        assert_eq!(Range::From(5).header(), "bytes=5-");
        assert_eq!(Range::Inclusive(0, 9).header(), "bytes=0-9");
        assert_eq!(Range::Last(3).header(), "bytes=-3");
        assert_eq!(content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(content_range("bytes */100"), None);
    }
}
