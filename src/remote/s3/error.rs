//! The S3 client's error type: what failed (operation, bucket, key) and why (S3 code, message, request id, HTTP status, or the transport), with the retry classification; may import std, `hyper`, `hyper-util`, `rustls` and `s3sig` (error documents).

use std::{error::Error as StdError, fmt, io, time::Duration};

use crate::s3sig::S3ErrorResponse;

/// The request an error belongs to: operation name, bucket and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// S3 operation, for example `PutObject`.
    pub op: &'static str,
    /// Bucket, `""` for `ListBuckets`.
    pub bucket: String,
    /// Key, `""` for bucket-level operations.
    pub key: String,
}

impl Target {
    /// A target, boxed as errors carry it (it keeps [`S3Error`] small).
    #[must_use]
    pub fn new(op: &'static str, bucket: &str, key: &str) -> Box<Self> {
        Box::new(Self { op, bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op)?;
        match (self.bucket.is_empty(), self.key.is_empty()) {
            (true, _) => Ok(()),
            (false, true) => write!(f, " s3://{}", self.bucket),
            (false, false) => write!(f, " s3://{}/{}", self.bucket, self.key),
        }
    }
}

/// What went wrong below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The TCP connection could not be opened (refused, unreachable, timed out).
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    Tls,
    /// Another IO or protocol error.
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "cannot connect",
            Self::Reset => "connection reset or closed",
            Self::Tls => "TLS error",
            Self::Other => "transport error",
        })
    }
}

/// An S3 client error. Never holds a secret, a signature or an
/// `Authorization` header.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// S3 answered with an error (an `<Error>` document, or only a status
    /// for `HEAD` requests and non-S3 bodies).
    #[error(
        "{target}: HTTP {status} {code}{}{}",
        .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        .request_id.as_deref().map(|r| format!(" [request id {r}]")).unwrap_or_default()
    )]
    Service {
        /// The request.
        target: Box<Target>,
        /// HTTP status (200 for errors sent in a 200 body).
        status: u16,
        /// S3 error code (`NoSuchKey`, `SlowDown`, ...), or a name derived from
        /// the status when the body says nothing (`NotFound`, `Forbidden`).
        code: String,
        /// The message, when sent.
        message: Option<String>,
        /// The request id, when sent (`x-amz-request-id` or `<RequestId>`).
        request_id: Option<String>,
        /// The bucket's region, when S3 said (`x-amz-bucket-region`, `<Region>`).
        region: Option<String>,
    },
    /// The object is in an archive storage class (GLACIER, DEEP_ARCHIVE) and
    /// has no restored copy: S3 refused to read it (`InvalidObjectState`).
    #[error(
        "{target}: the object is archived{} and cannot be read until it is restored \
         (RestoreObject, then wait for the restore to finish){}",
        .storage_class.as_deref().map(|c| format!(" in storage class {c}")).unwrap_or_default(),
        .request_id.as_deref().map(|r| format!(" [request id {r}]")).unwrap_or_default()
    )]
    Archived {
        /// The request.
        target: Box<Target>,
        /// The storage class, when known.
        storage_class: Option<String>,
        /// The request id, when sent.
        request_id: Option<String>,
    },
    /// The request did not get a complete response.
    #[error("{target}: {kind}: {detail}")]
    Transport {
        /// The request.
        target: Box<Target>,
        /// What kind of failure.
        kind: TransportKind,
        /// The error chain, as text.
        detail: String,
    },
    /// Nothing was sent or received for the read timeout.
    #[error("{target}: no progress for {} s", .after.as_secs_f32())]
    Timeout {
        /// The request.
        target: Box<Target>,
        /// The read timeout.
        after: Duration,
    },
    /// A success response that cannot be understood.
    #[error("{target}: unexpected response (HTTP {status}): {detail}")]
    InvalidResponse {
        /// The request.
        target: Box<Target>,
        /// HTTP status.
        status: u16,
        /// What is wrong with it.
        detail: String,
    },
    /// Reading the data to upload failed, or it changed while uploading.
    #[error("{target}: upload source: {source}")]
    Source {
        /// The request.
        target: Box<Target>,
        /// The cause.
        source: io::Error,
    },
    /// The arguments cannot make a valid request.
    #[error("{target}: {reason}")]
    Invalid {
        /// The request.
        target: Box<Target>,
        /// Why.
        reason: String,
    },
    /// The client cannot be built from its configuration.
    #[error("S3 configuration: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
}

/// S3 codes worth retrying besides any 5xx and 429: throttling, timeouts, and
/// refusals of a body that arrived damaged.
const RETRYABLE_CODES: [&str; 11] = [
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "BadDigest",
    "InvalidDigest",
    "XAmzContentSHA256Mismatch",
];

/// Codes that say the key pair or the signature is wrong.
const AUTH_CODES: [&str; 6] = [
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "NotSignedUp",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
];

impl S3Error {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config { reason: reason.into() }
    }

    pub(crate) fn invalid(target: Box<Target>, reason: impl Into<String>) -> Self {
        Self::Invalid { target, reason: reason.into() }
    }

    /// An error from an S3 error document.
    pub(crate) fn from_response(
        target: Box<Target>,
        status: u16,
        doc: S3ErrorResponse,
        request_id: Option<String>,
    ) -> Self {
        let request_id = doc.request_id.or(request_id);
        if doc.code == "InvalidObjectState" {
            return Self::Archived { target, storage_class: None, request_id };
        }
        Self::Service { target, status, code: doc.code, message: doc.message, request_id, region: doc.region }
    }

    /// An error known only by its status (HEAD responses, non-XML bodies).
    pub(crate) fn from_status(
        target: Box<Target>,
        status: u16,
        request_id: Option<String>,
        region: Option<String>,
    ) -> Self {
        let code = match status {
            301 => "PermanentRedirect".to_owned(),
            307 => "TemporaryRedirect".to_owned(),
            400 => "BadRequest".to_owned(),
            403 => "Forbidden".to_owned(),
            404 => "NotFound".to_owned(),
            405 => "MethodNotAllowed".to_owned(),
            409 => "Conflict".to_owned(),
            412 => "PreconditionFailed".to_owned(),
            416 => "InvalidRange".to_owned(),
            429 => "TooManyRequests".to_owned(),
            500 => "InternalError".to_owned(),
            501 => "NotImplemented".to_owned(),
            502 => "BadGateway".to_owned(),
            503 => "ServiceUnavailable".to_owned(),
            504 => "GatewayTimeout".to_owned(),
            s => format!("HTTP{s}"),
        };
        Self::Service { target, status, code, message: None, request_id, region }
    }

    /// A transport error from hyper, classified by its cause chain.
    pub(crate) fn transport(target: Box<Target>, err: &(dyn StdError + 'static)) -> Self {
        let (kind, detail) = classify(err);
        Self::Transport { target, kind, detail }
    }

    /// The request this error belongs to (`None` for configuration errors).
    #[must_use]
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::Service { target, .. }
            | Self::Archived { target, .. }
            | Self::Transport { target, .. }
            | Self::Timeout { target, .. }
            | Self::InvalidResponse { target, .. }
            | Self::Source { target, .. }
            | Self::Invalid { target, .. } => Some(target),
            Self::Config { .. } => None,
        }
    }

    /// The S3 error code, when S3 answered with one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            Self::Archived { .. } => Some("InvalidObjectState"),
            _ => None,
        }
    }

    /// The HTTP status, when a response arrived.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Service { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            Self::Archived { .. } => Some(403),
            _ => None,
        }
    }

    /// The request id S3 gave, if any.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Service { request_id, .. } | Self::Archived { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Whether trying the same request again may succeed: 5xx (except 501),
    /// 429, throttling and timeout codes, body-integrity refusals, connection
    /// failures, resets and timeouts.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Service { status, code, .. } => {
                (*status >= 500 && *status != 501) || *status == 429 || RETRYABLE_CODES.contains(&code.as_str())
            }
            Self::Transport { kind, .. } => *kind != TransportKind::Tls,
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the object, upload or bucket does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self.code(), Some("NoSuchKey" | "NotFound" | "NoSuchBucket" | "NoSuchUpload" | "NoSuchVersion"))
    }

    /// Whether the key pair or the signature was refused.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        self.code().is_some_and(|c| AUTH_CODES.contains(&c) || c == "Forbidden")
    }

    /// Whether the server does not implement the operation (501).
    #[must_use]
    pub fn is_not_implemented(&self) -> bool {
        self.status() == Some(501) || self.code() == Some("NotImplemented")
    }
}

/// Kind and text of a transport error, walking its source chain. The most
/// telling cause wins: TLS, then an IO error's kind, then hyper's view, then
/// hyper-util's "connect" flag (which also wraps TLS handshake failures).
fn classify(err: &(dyn StdError + 'static)) -> (TransportKind, String) {
    let mut found: Vec<TransportKind> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        found.extend(kind_of(e));
        cur = e.source();
    }
    let kind = [TransportKind::Tls, TransportKind::Reset, TransportKind::Connect]
        .into_iter()
        .find(|k| found.contains(k))
        .unwrap_or(TransportKind::Other);
    (kind, parts.join(": "))
}

fn kind_of(e: &(dyn StdError + 'static)) -> Option<TransportKind> {
    if e.is::<rustls::Error>() {
        return Some(TransportKind::Tls);
    }
    if let Some(mut io) = e.downcast_ref::<io::Error>() {
        // hyper-rustls wraps tokio-rustls's io::Error (which wraps the
        // rustls::Error) in another io::Error, and io::Error::source() skips
        // the wrapped error itself: unwrap them by hand.
        loop {
            match io.get_ref() {
                Some(inner) if inner.is::<rustls::Error>() => return Some(TransportKind::Tls),
                Some(inner) if io.kind() == io::ErrorKind::Other => match inner.downcast_ref::<io::Error>() {
                    Some(nested) => io = nested,
                    None => break,
                },
                _ => break,
            }
        }
        return match io.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => Some(TransportKind::Connect),
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => Some(TransportKind::Reset),
            _ => None,
        };
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>()
        && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
    {
        return Some(TransportKind::Reset);
    }
    if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
        && h.is_connect()
    {
        return Some(TransportKind::Connect);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> S3Error {
        S3Error::Service {
            target: Target::new("PutObject", "b", "k"),
            status,
            code: code.into(),
            message: None,
            request_id: None,
            region: None,
        }
    }

    #[test]
    fn retry_classification() {
        for (status, code) in [
            (503, "SlowDown"),
            (500, "InternalError"),
            (502, "BadGateway"),
            (429, "TooManyRequests"),
            (400, "RequestTimeout"),
            (400, "BadDigest"),
            (400, "InvalidDigest"),
            (400, "XAmzContentSHA256Mismatch"),
            (200, "InternalError"),
        ] {
            assert!(service(status, code).is_retryable(), "{status} {code}");
        }
        for (status, code) in
            [(501, "NotImplemented"), (403, "AccessDenied"), (404, "NoSuchKey"), (400, "InvalidArgument")]
        {
            assert!(!service(status, code).is_retryable(), "{status} {code}");
        }
        let t = Target::new("GetObject", "b", "k");
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let e = S3Error::transport(t.clone(), &reset);
        assert!(matches!(e, S3Error::Transport { kind: TransportKind::Reset, .. }) && e.is_retryable());
        let tls = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        let e = S3Error::transport(t.clone(), &tls);
        assert!(matches!(e, S3Error::Transport { kind: TransportKind::Tls, .. }) && !e.is_retryable());
        // As hyper-rustls reports a refused certificate.
        let wrapped = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError));
        let e = S3Error::transport(t.clone(), &wrapped);
        assert!(matches!(e, S3Error::Transport { kind: TransportKind::Tls, .. }), "{e:?}");
        let wrapped_reset = io::Error::other(io::Error::from(io::ErrorKind::ConnectionReset));
        let e = S3Error::transport(t.clone(), &wrapped_reset);
        assert!(matches!(e, S3Error::Transport { kind: TransportKind::Reset, .. }), "{e:?}");
        assert!(S3Error::Timeout { target: t, after: Duration::from_secs(1) }.is_retryable());
    }

    #[test]
    fn display_names_the_request() {
        let e = S3Error::Service {
            target: Target::new("GetObject", "bkt", "a/b c"),
            status: 404,
            code: "NoSuchKey".into(),
            message: Some("The specified key does not exist.".into()),
            request_id: Some("R1".into()),
            region: None,
        };
        assert_eq!(
            e.to_string(),
            "GetObject s3://bkt/a/b c: HTTP 404 NoSuchKey: The specified key does not exist. [request id R1]"
        );
        assert!(e.is_not_found());
        let doc = S3ErrorResponse {
            code: "InvalidObjectState".into(),
            message: Some("not valid for the object's storage class".into()),
            request_id: None,
            host_id: None,
            region: None,
            endpoint: None,
        };
        let e = S3Error::from_response(Target::new("GetObject", "b", "k"), 403, doc, Some("R2".into()));
        assert!(matches!(e, S3Error::Archived { .. }));
        let text = e.to_string();
        assert!(text.contains("archived") && text.contains("RestoreObject") && text.contains("R2"), "{text}");
        assert_eq!(Target::new("ListBuckets", "", "").to_string(), "ListBuckets");
    }
}
