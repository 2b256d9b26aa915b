//! S3 client configuration: endpoint, region, addressing style, credentials, TLS trust, timeouts, payload signing and retry policy; may import std, `s3sig` (credentials, DNS-compatible bucket check) and `model::credential` (the stored attributes).

use std::{fmt, path::PathBuf, time::Duration};

use crate::{
    model::credential::{B2Attrs, S3Attrs},
    s3sig::{Credentials, is_dns_compatible_bucket},
};

use super::error::S3Error;

/// The region signed for when none is given and none is detected (also the
/// one `GetBucketLocation` is signed with, as AWS expects).
pub const DEFAULT_REGION: &str = "us-east-1";

/// How request bodies are hashed and signed.
///
/// Data in memory (files up to 1 MiB, XML bodies, buffered parts): with `Auto` (the default) its
/// SHA-256 is signed over `http://`, where nothing else protects the body, and
/// `UNSIGNED-PAYLOAD` with `Content-MD5` goes over `https://`, where TLS protects it in transit
/// and one MD5 pass replaces the SHA-256 (the client is CPU-bound on small NAS boxes).
///
/// Streamed sources (files and parts read from disk, sealed for an encrypted task) are sent
/// `aws-chunked` (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) with `Auto` and `Always`: read once,
/// each 64 KiB chunk signed in a chain the server checks. A server that refuses that encoding
/// (501 `NotImplemented`, or a 400 showing it did not understand it) gets that request again
/// the old way, and every later one from the same client: the source hashed first, then sent
/// (read twice). `Whole` always does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadSigning {
    /// Signed over http, unsigned over https; streamed sources `aws-chunked`.
    #[default]
    Auto,
    /// Always signed (some servers refuse `UNSIGNED-PAYLOAD`); streamed sources `aws-chunked`.
    Always,
    /// Always signed with the SHA-256 of the whole body, never `aws-chunked` (for a server that
    /// mishandles it without refusing it): a streamed source is read twice, hashed then sent.
    Whole,
}

/// Bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// The most one delay can be.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(20) }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry), given a
    /// random number: "equal jitter", half of the exponential step fixed and
    /// half random, capped at [`RetryPolicy::max_delay`].
    #[must_use]
    pub fn delay(&self, retry: u32, random: u64) -> Duration {
        let shift = retry.saturating_sub(1).min(20);
        let step = self.base_delay.saturating_mul(1 << shift).min(self.max_delay);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let half = step_ms / 2;
        Duration::from_millis(half + random % (step_ms - half + 1))
    }
}

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://` (else `http://`).
    pub(crate) https: bool,
    /// `host[:port]` of a custom endpoint; `None` for AWS, whose host
    /// depends on the region.
    pub(crate) authority: Option<String>,
}

impl Endpoint {
    /// Parses `""` (AWS) or `http(s)://host[:port][/]`.
    pub(crate) fn parse(endpoint: &str) -> Result<Self, S3Error> {
        if endpoint.is_empty() {
            return Ok(Self { https: true, authority: None });
        }
        let (https, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = endpoint.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(S3Error::config(format!("endpoint {endpoint:?} must start with http:// or https://")));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty()
            || authority.contains(['/', '?', '#', '@'])
            || authority.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(S3Error::config(format!(
                "endpoint {endpoint:?} must be a scheme and host[:port] only (no path, query or user)"
            )));
        }
        authority
            .parse::<http::uri::Authority>()
            .map_err(|e| S3Error::config(format!("endpoint {endpoint:?} has an invalid host: {e}")))?;
        Ok(Self { https, authority: Some(authority.to_ascii_lowercase()) })
    }

    /// Whether this is AWS.
    pub(crate) fn is_aws(&self) -> bool {
        self.authority.is_none()
    }

    /// The `host[:port]` for requests signed for `region`.
    pub(crate) fn authority_for(&self, region: &str) -> String {
        match &self.authority {
            Some(a) => a.clone(),
            None => format!("s3.{region}.amazonaws.com"),
        }
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// Everything an [`S3Client`](super::S3Client) needs. `Debug` prints no secret.
#[derive(Clone)]
pub struct S3Config {
    /// `""` for AWS (`s3.<region>.amazonaws.com`), else `http(s)://host[:port]`.
    pub endpoint: String,
    /// The region to sign for; `""` to detect it per bucket.
    pub region: String,
    /// Never detect a region: sign for [`S3Config::region`], or `us-east-1`
    /// when that is empty (for servers that ignore regions).
    pub skip_region: bool,
    /// Path-style requests (`host/bucket/key`) instead of virtual-hosted ones
    /// (`bucket.host/key`); `None` = path style for custom endpoints,
    /// virtual-hosted for AWS.
    pub force_path_style: Option<bool>,
    /// The key pair.
    pub credentials: Credentials,
    /// A PEM file of extra CA certificates (a private endpoint's CA), trusted
    /// besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Limit for opening a TCP connection (and the TLS handshake).
    pub connect_timeout: Duration,
    /// The longest a request may make no progress: nothing sent and nothing
    /// received (a read/idle timeout, not a limit on a whole transfer).
    pub read_timeout: Duration,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// When payloads are signed.
    pub payload_signing: PayloadSigning,
    /// Idle keep-alive connections kept per host.
    pub max_idle_per_host: usize,
    /// The most parts one multipart upload may have (1..=10000).
    pub max_upload_parts: u32,
    /// Ask for URL-encoded keys in listings (`encoding-type=url`, needed
    /// for keys with characters XML cannot carry); `None` = only on AWS.
    /// Off elsewhere by default, as rclone does for provider `Other`: some
    /// servers (s3s-fs 0.14.1) claim `EncodingType=url` without encoding,
    /// which would turn `+` into a space.
    pub list_url_encode: Option<bool>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("skip_region", &self.skip_region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.credentials.access_key_id)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .field("payload_signing", &self.payload_signing)
            .field("max_upload_parts", &self.max_upload_parts)
            .field("list_url_encode", &self.list_url_encode)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// A configuration with the default timeouts and retries.
    #[must_use]
    pub fn new(endpoint: impl Into<String>, region: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: region.into(),
            skip_region: false,
            force_path_style: None,
            credentials,
            ca_file: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            payload_signing: PayloadSigning::Auto,
            max_idle_per_host: 32,
            max_upload_parts: 10_000,
            list_url_encode: None,
        }
    }

    /// The configuration of a stored S3 credential.
    #[must_use]
    pub fn from_s3_attrs(attrs: &S3Attrs) -> Self {
        let credentials = Credentials::new(attrs.access_key_id.clone(), attrs.secret_access_key.expose().to_owned());
        let mut cfg = Self::new(attrs.endpoint.clone(), attrs.region.clone(), credentials);
        cfg.skip_region = attrs.skip_region;
        cfg.force_path_style = attrs.force_path_style;
        cfg.max_upload_parts = attrs.max_upload_parts.clamp(1, 10_000);
        cfg.ca_file = (!attrs.ca_file.is_empty()).then(|| PathBuf::from(&attrs.ca_file));
        cfg
    }

    /// The configuration of a stored B2 credential (its S3-compatible API).
    #[must_use]
    pub fn from_b2_attrs(attrs: &B2Attrs) -> Self {
        let credentials = Credentials::new(attrs.account.clone(), attrs.key.expose().to_owned());
        Self::new(attrs.endpoint.clone(), attrs.region.clone(), credentials)
    }

    /// Whether requests for `bucket` go path-style on `endpoint`.
    pub(crate) fn path_style(&self, endpoint: &Endpoint, bucket: &str) -> bool {
        let wanted = self.force_path_style.unwrap_or(!endpoint.is_aws());
        // Virtual hosting needs a DNS label, and over TLS no dots (wildcard certificates).
        wanted || !is_dns_compatible_bucket(bucket) || (endpoint.https && bucket.contains('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::parse("").unwrap(), Endpoint { https: true, authority: None });
        let e = Endpoint::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(e, Endpoint { https: false, authority: Some("127.0.0.1:9000".into()) });
        assert_eq!(e.authority_for("x"), "127.0.0.1:9000");
        let e = Endpoint::parse("https://S3.Example.com").unwrap();
        assert_eq!(e.authority.as_deref(), Some("s3.example.com"));
        assert_eq!(Endpoint::parse("").unwrap().authority_for("eu-west-1"), "s3.eu-west-1.amazonaws.com");
        for bad in ["ftp://x", "s3.example.com", "http://", "http://h/path", "http://u@h", "http://h?x", "http://a b"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addressing_style() {
        let creds = Credentials::new("k", "s");
        let aws = S3Config::new("", "", creds.clone());
        let e = Endpoint::parse("").unwrap();
        assert!(!aws.path_style(&e, "my-bucket"));
        assert!(aws.path_style(&e, "my.bucket"), "dots over TLS");
        assert!(aws.path_style(&e, "My_Bucket"), "not a DNS label");
        let custom = S3Config::new("http://h:1", "", creds);
        let e = Endpoint::parse("http://h:1").unwrap();
        assert!(custom.path_style(&e, "my-bucket"));
        let mut forced = custom.clone();
        forced.force_path_style = Some(false);
        assert!(!forced.path_style(&e, "my.bucket"), "dots are fine over http");
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(p.delay(1, 0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 50), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0), Duration::from_millis(100));
        assert_eq!(p.delay(3, 200), Duration::from_millis(400));
        for retry in 1..40 {
            for r in [0, 1, 999, u64::MAX] {
                assert!(p.delay(retry, r) <= Duration::from_millis(1000));
            }
        }
        assert!(p.delay(30, 0) >= Duration::from_millis(500));
    }

    #[test]
    fn debug_hides_the_secret() {
        let cfg = S3Config::new("", "", Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI-very-secret"));
        let out = format!("{cfg:?}");
        assert!(out.contains("AKIDEXAMPLE") && !out.contains("very-secret"), "{out}");
    }
}
