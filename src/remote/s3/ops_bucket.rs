//! Bucket operations: ListBuckets, HeadBucket, GetBucketLocation (with region detection) and CreateBucket; may import std, `s3sig` parsers and the sibling `client`, `config` and `error` modules.

use http::Method;

use crate::s3sig::{self, Bucket};

use super::{
    Req,
    client::{Mode, ReqBody, S3Client, bad_xml},
    config::DEFAULT_REGION,
    error::S3Error,
};

/// What `HeadBucket` says about a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// The region, when the server names it (`x-amz-bucket-region`).
    pub region: Option<String>,
}

impl S3Client {
    /// Every bucket the key pair owns (following `ListBuckets` pages).
    ///
    /// # Errors
    /// Any [`S3Error`]; a wrong key pair gives an [`S3Error::is_auth`] error.
    pub async fn list_buckets(&self) -> Result<Vec<Bucket>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = Req::new("ListBuckets", Method::GET, "", "");
            if let Some(t) = &token {
                req = req.query("continuation-token", t.clone());
            }
            let target = req.target();
            let page = self
                .run(&req, Mode::Collect, |r| {
                    s3sig::parse_list_buckets(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
                })
                .await?;
            out.extend(page.buckets);
            match page.continuation_token {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Checks that `bucket` exists and is reachable with this key pair.
    ///
    /// # Errors
    /// `NotFound` (no such bucket), `Forbidden` (not ours or wrong key), and
    /// the other [`S3Error`]s.
    pub async fn head_bucket(&self, bucket: &str) -> Result<BucketInfo, S3Error> {
        let req = Req::new("HeadBucket", Method::HEAD, bucket, "");
        self.run(&req, Mode::Collect, |r| Ok(BucketInfo { region: r.header("x-amz-bucket-region").map(str::to_owned) }))
            .await
    }

    /// The region of `bucket` (`GetBucketLocation`, signed for `us-east-1`
    /// as AWS expects, following an `x-amz-bucket-region` hint); the result is
    /// remembered for later requests.
    ///
    /// # Errors
    /// Any [`S3Error`] of the request.
    pub async fn get_bucket_location(&self, bucket: &str) -> Result<String, S3Error> {
        let region = self.location_request(bucket).await?;
        self.remember_region(bucket, &region);
        Ok(region)
    }

    async fn location_request(&self, bucket: &str) -> Result<String, S3Error> {
        let mut req = Req::new("GetBucketLocation", Method::GET, bucket, "").query("location", "");
        req.fixed_region = Some(DEFAULT_REGION);
        let target = req.target();
        match self
            .run(&req, Mode::Collect, |r| {
                s3sig::parse_location_constraint(r.bytes()).map_err(|e| bad_xml(target.clone(), r.status, e))
            })
            .await
        {
            Ok(region) => Ok(region),
            Err(S3Error::Service { region: Some(region), .. }) => Ok(region),
            Err(e) => Err(e),
        }
    }

    /// Region detection for a bucket with no configured region: the
    /// location, else the `HeadBucket` hint, else `us-east-1` when the server
    /// does not say (501, denied).
    pub(crate) async fn detect_region(&self, bucket: &str) -> Result<String, S3Error> {
        match self.location_request(bucket).await {
            Ok(region) => Ok(region),
            Err(e @ (S3Error::Transport { .. } | S3Error::Timeout { .. } | S3Error::Config { .. })) => Err(e),
            Err(e) if e.code() == Some("NoSuchBucket") => Err(e),
            Err(e) => {
                tracing::debug!(bucket, error = %e, "GetBucketLocation gave no region; trying HeadBucket");
                let mut req = Req::new("HeadBucket", Method::HEAD, bucket, "");
                req.fixed_region = Some(DEFAULT_REGION);
                let hinted = match self
                    .run(&req, Mode::Collect, |r| Ok(r.header("x-amz-bucket-region").map(str::to_owned)))
                    .await
                {
                    Ok(r) => r,
                    Err(S3Error::Service { region, .. }) => region,
                    Err(e) => return Err(e),
                };
                Ok(hinted.unwrap_or_else(|| DEFAULT_REGION.to_owned()))
            }
        }
    }

    /// Creates `bucket` in the configured region; a bucket we already own is
    /// not an error.
    ///
    /// # Errors
    /// `BucketAlreadyExists` (someone else's), invalid names, and the other
    /// [`S3Error`]s.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let cfg = self.config();
        let region = if cfg.region.is_empty() { DEFAULT_REGION } else { cfg.region.as_str() };
        let mut req = Req::new("CreateBucket", Method::PUT, bucket, "");
        req.fixed_region = Some(region);
        if region != DEFAULT_REGION && !cfg.skip_region {
            let body = format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            );
            req = req.body(ReqBody::Bytes { data: body.into(), md5: false });
        }
        match self.run(&req, Mode::Collect, |_| Ok(())).await {
            Ok(()) => {}
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) => return Err(e),
        }
        self.remember_region(bucket, region);
        Ok(())
    }

    /// Turns versioning on (`Enabled`) or off (`Suspended`) for `bucket`.
    ///
    /// # Errors
    /// Servers without versioning answer 501 (see [`S3Error::is_not_implemented`]);
    /// any other [`S3Error`].
    pub async fn put_bucket_versioning(&self, bucket: &str, enabled: bool) -> Result<(), S3Error> {
        let status = if enabled { "Enabled" } else { "Suspended" };
        let body = format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></VersioningConfiguration>"
        );
        let req = Req::new("PutBucketVersioning", Method::PUT, bucket, "")
            .query("versioning", "")
            .body(ReqBody::Bytes { data: body.into(), md5: true });
        self.run(&req, Mode::Collect, |_| Ok(())).await
    }
}
