//! Listing and bulk deletion: ListObjectsV2 and ListObjectVersions as pagers (pulled page by page, or prefetched into a channel), and DeleteObjects in batches of 1,000 with `Content-MD5`; may import std, tokio, `s3sig` and the sibling modules.

use http::Method;
use tokio::sync::mpsc;

use crate::s3sig::{self, DeleteError, ListObjectsV2Page, ListVersionsPage, ObjectIdentifier};

use super::{
    Req,
    client::{Mode, ReqBody, S3Client, bad_xml},
    error::{S3Error, Target},
};

/// The most keys one `DeleteObjects` request takes.
pub const DELETE_BATCH: usize = 1000;

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys by this separator into common prefixes (`""`: list every
    /// key; the parameter is then not sent at all).
    pub delimiter: String,
    /// Only keys after this one (ListObjectsV2; the first page only).
    pub start_after: String,
    /// Keys per page (S3's default and maximum is 1000).
    pub max_keys: Option<u32>,
}

/// Pages of a `ListObjectsV2`, in key order.
#[derive(Debug)]
pub struct ObjectPages {
    client: S3Client,
    bucket: String,
    req: ListRequest,
    token: Option<String>,
    done: bool,
}

impl ObjectPages {
    /// The next page, `None` after the last one (or after an error).
    pub async fn next_page(&mut self) -> Option<Result<ListObjectsV2Page, S3Error>> {
        if self.done {
            return None;
        }
        let mut req = Req::new("ListObjectsV2", Method::GET, &self.bucket, "").query("list-type", "2");
        if self.client.url_encode_listings() {
            req = req.query("encoding-type", "url");
        }
        if !self.req.prefix.is_empty() {
            req = req.query("prefix", self.req.prefix.clone());
        }
        if !self.req.delimiter.is_empty() {
            req = req.query("delimiter", self.req.delimiter.clone());
        }
        if let Some(n) = self.req.max_keys {
            req = req.query("max-keys", n.to_string());
        }
        match &self.token {
            Some(t) => req = req.query("continuation-token", t.clone()),
            None if !self.req.start_after.is_empty() => req = req.query("start-after", self.req.start_after.clone()),
            None => {}
        }
        let target = req.target();
        let page = self
            .client
            .run(&req, Mode::Collect, |r| {
                s3sig::parse_list_objects_v2(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        match (&page.next_continuation_token, page.is_truncated) {
            (Some(t), true) if Some(t) == self.token.as_ref() => {
                self.done = true;
                return Some(Err(S3Error::InvalidResponse {
                    target,
                    status: 200,
                    detail: "the server repeated its continuation token".to_owned(),
                }));
            }
            (Some(t), true) => self.token = Some(t.clone()),
            _ => self.done = true,
        }
        Some(Ok(page))
    }

    /// Lists in a background task, one page ahead of the consumer: the
    /// channel yields pages in order and ends after the last one or after an
    /// error.
    #[must_use]
    pub fn prefetch(mut self) -> mpsc::Receiver<Result<ListObjectsV2Page, S3Error>> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(page) = self.next_page().await {
                if tx.send(page).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Pages of a `ListObjectVersions`, by key, newest version first.
#[derive(Debug)]
pub struct VersionPages {
    client: S3Client,
    bucket: String,
    req: ListRequest,
    markers: Option<(String, Option<String>)>,
    done: bool,
}

impl VersionPages {
    /// The next page, `None` after the last one (or after an error).
    pub async fn next_page(&mut self) -> Option<Result<ListVersionsPage, S3Error>> {
        if self.done {
            return None;
        }
        let mut req = Req::new("ListObjectVersions", Method::GET, &self.bucket, "")
            .query("versions", "")
            .query("encoding-type", "url");
        if !self.req.prefix.is_empty() {
            req = req.query("prefix", self.req.prefix.clone());
        }
        if !self.req.delimiter.is_empty() {
            req = req.query("delimiter", self.req.delimiter.clone());
        }
        if let Some(n) = self.req.max_keys {
            req = req.query("max-keys", n.to_string());
        }
        if let Some((key, version)) = &self.markers {
            req = req.query("key-marker", key.clone());
            if let Some(v) = version {
                req = req.query("version-id-marker", v.clone());
            }
        }
        let target = req.target();
        let page = self
            .client
            .run(&req, Mode::Collect, |r| {
                s3sig::parse_list_object_versions(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        match (&page.next_key_marker, page.is_truncated) {
            (Some(k), true) => {
                let next = (k.clone(), page.next_version_id_marker.clone());
                if self.markers.as_ref() == Some(&next) {
                    self.done = true;
                    return Some(Err(S3Error::InvalidResponse {
                        target,
                        status: 200,
                        detail: "the server repeated its version markers".to_owned(),
                    }));
                }
                self.markers = Some(next);
            }
            _ => self.done = true,
        }
        Some(Ok(page))
    }
}

/// What a `DeleteObjects` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteObjectsOutput {
    /// Objects (or versions) deleted.
    pub deleted: usize,
    /// Per-object failures.
    pub errors: Vec<DeleteError>,
    /// Requests sent.
    pub requests: usize,
}

impl S3Client {
    /// Lists keys of `bucket` page by page (`ListObjectsV2`, URL-encoded keys
    /// decoded).
    #[must_use]
    pub fn list_objects_v2(&self, bucket: &str, req: ListRequest) -> ObjectPages {
        ObjectPages { client: self.clone(), bucket: bucket.to_owned(), req, token: None, done: false }
    }

    /// Lists versions and delete markers of `bucket` page by page.
    #[must_use]
    pub fn list_object_versions(&self, bucket: &str, req: ListRequest) -> VersionPages {
        VersionPages { client: self.clone(), bucket: bucket.to_owned(), req, markers: None, done: false }
    }

    /// Deletes objects (or versions), 1,000 per request (quiet mode, with
    /// `Content-MD5`); per-object failures are returned, not raised.
    ///
    /// # Errors
    /// A key XML cannot carry, and any [`S3Error`] of a request (the batches
    /// before it stay deleted).
    pub async fn delete_objects(
        &self,
        bucket: &str,
        objects: &[ObjectIdentifier<'_>],
    ) -> Result<DeleteObjectsOutput, S3Error> {
        let mut out = DeleteObjectsOutput::default();
        for batch in objects.chunks(DELETE_BATCH) {
            let target = Target::new("DeleteObjects", bucket, "");
            let body =
                s3sig::delete_objects_body(batch, true).map_err(|e| S3Error::invalid(target.clone(), e.to_string()))?;
            let req = Req::new("DeleteObjects", Method::POST, bucket, "")
                .query("delete", "")
                .body(ReqBody::Bytes { data: body.into(), md5: true });
            let result = self
                .run(&req, Mode::Collect, |r| {
                    s3sig::parse_delete_result(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
                })
                .await?;
            out.requests += 1;
            out.deleted += batch.len().saturating_sub(result.errors.len());
            out.errors.extend(result.errors);
        }
        Ok(out)
    }
}
