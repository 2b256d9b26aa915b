//! `SigV4` for S3: canonical request, string to sign, signature, `Authorization` header auth and presigned query auth, with the time passed in by the caller; may import only std, `zeroize`, `thiserror` and the sibling `crypto`, `encode` and `time` modules.

use std::{
    borrow::Cow,
    fmt,
    time::{Duration, SystemTime},
};

use zeroize::Zeroizing;

use super::{
    crypto::{EMPTY_SHA256, hex, hmac_sha256, is_sha256_hex, sha256_hex, signing_key},
    encode::{canonical_query, canonical_uri},
    time::AmzDate,
};

/// The `SigV4` algorithm name, first line of every string to sign.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Longest validity S3 accepts for a presigned URL: 7 days.
const MAX_PRESIGN_SECONDS: u64 = 604_800;

/// Query parameters that [`presign`] adds itself (compared case-insensitively).
const PRESIGN_PARAMS: [&str; 7] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-security-token",
    "x-amz-signature",
];

/// Errors of [`sign`], [`presign`] and [`ChunkSigner::new`](super::ChunkSigner::new).
///
/// No variant carries a secret, a session token or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing time is before 1970 or after the year 9999.
    #[error("signing time is outside 1970-01-01 ..= 9999-12-31")]
    TimeOutOfRange,
    /// No `Host` header was passed; S3 requires it to be signed.
    #[error("request has no Host header; S3 requires one to be signed")]
    MissingHost,
    /// An `Authorization` header was passed; it is never signed.
    #[error("the Authorization header must not be passed in: the signer produces it")]
    AuthorizationHeaderPresent,
    /// A header the signer computes was passed with another value (or more than once).
    #[error("header {name} was passed with a value other than the one the signer computes")]
    ConflictingHeader {
        /// Lower-case header name (`x-amz-date`, `x-amz-content-sha256` or `x-amz-security-token`).
        name: &'static str,
    },
    /// A header name is empty or holds characters outside the HTTP token set.
    #[error("header name {0:?} is empty or not an HTTP token")]
    InvalidHeaderName(String),
    /// [`Payload::Sha256Hex`] is not 64 lower-case hex digits.
    #[error("payload hash {0:?} is not 64 lower-case hex digits")]
    InvalidPayloadHash(String),
    /// A seed signature given to a chunk signer is not 64 lower-case hex digits.
    #[error("seed signature is not 64 lower-case hex digits")]
    InvalidSeedSignature,
    /// The presigned URL validity is outside 1 s ..= 7 days.
    #[error("presigned URL validity of {0} s is outside 1..=604800")]
    InvalidExpiry(u64),
    /// The query already holds a parameter that [`presign`] adds.
    #[error("query parameter {0} is reserved for presigning")]
    ReservedQueryParameter(String),
}

/// An access key pair, optionally with an STS session token.
///
/// `Debug` prints only the access key id; the secret and the token are
/// redacted.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (`AKIA...`), sent in the clear in `Credential=`.
    pub access_key_id: String,
    /// The secret access key; wiped from memory on drop.
    pub secret_access_key: Zeroizing<String>,
    /// STS session token, sent (and signed) as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials without a session token.
    #[must_use]
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token: None,
        }
    }

    /// The same credentials with an STS session token.
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The region and service of the credential scope
/// (`<date>/<region>/<service>/aws4_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Region, for example `us-east-1` (what S3-compatible servers expect varies).
    pub region: String,
    /// Service name; `s3` for S3.
    pub service: String,
}

impl Scope {
    /// The S3 scope of `region`.
    #[must_use]
    pub fn s3(region: impl Into<String>) -> Self {
        Self::new(region, "s3")
    }

    /// Any region and service (the generic `SigV4` test suite uses `service`).
    #[must_use]
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Self { region: region.into(), service: service.into() }
    }

    /// The credential scope string on `date` (`YYYYMMDD`).
    pub(super) fn to_string_at(&self, date: &str) -> String {
        format!("{date}/{}/{}/aws4_request", self.region, self.service)
    }
}

/// The `aws-chunked` streaming upload variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Streaming {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed, no trailer.
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: every chunk signed,
    /// then signed trailing headers (such as `x-amz-checksum-crc32c`).
    SignedWithTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, then unsigned
    /// trailing headers. Only the request headers are signed.
    UnsignedWithTrailer,
}

impl Streaming {
    /// The `x-amz-content-sha256` value of this variant.
    #[must_use]
    pub const fn content_sha256(self) -> &'static str {
        match self {
            Self::Signed => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Self::SignedWithTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            Self::UnsignedWithTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        }
    }
}

/// What the request signs as its payload: the last line of the canonical
/// request and the value of `x-amz-content-sha256`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The whole body; its SHA-256 is computed here.
    Bytes(&'a [u8]),
    /// The hex SHA-256 of the body, computed by the caller (64 lower-case hex digits).
    Sha256Hex(&'a str),
    /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature (TLS
    /// only); also what presigned URLs use.
    Unsigned,
    /// A chunked `aws-chunked` upload; see [`ChunkSigner`](super::ChunkSigner).
    Streaming(Streaming),
}

impl Payload<'_> {
    /// The payload hash line / `x-amz-content-sha256` value.
    fn content_sha256(&self) -> Result<Cow<'static, str>, SignError> {
        Ok(match *self {
            Self::Bytes([]) => Cow::Borrowed(EMPTY_SHA256),
            Self::Bytes(body) => Cow::Owned(sha256_hex(body)),
            Self::Sha256Hex(h) => {
                if !is_sha256_hex(h) {
                    return Err(SignError::InvalidPayloadHash(h.to_owned()));
                }
                Cow::Owned(h.to_owned())
            }
            Self::Unsigned => Cow::Borrowed("UNSIGNED-PAYLOAD"),
            Self::Streaming(s) => Cow::Borrowed(s.content_sha256()),
        })
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            Self::Sha256Hex(h) => f.debug_tuple("Sha256Hex").field(h).finish(),
            Self::Unsigned => f.write_str("Unsigned"),
            Self::Streaming(s) => f.debug_tuple("Streaming").field(s).finish(),
        }
    }
}

/// The parts of a request that `SigV4` covers.
///
/// `Debug` prints header names only (values may hold keys, such as SSE-C's).
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method as sent, for example `GET`.
    pub method: &'a str,
    /// Path as sent on the request line, usually from
    /// [`host_and_path`](super::host_and_path). Percent-encoded or raw both
    /// work: see [`canonical_uri`](super::canonical_uri) (decoded once,
    /// encoded once, never normalised).
    pub path: &'a str,
    /// Decoded query parameters; a valueless one (`?uploads`) is `("uploads", "")`.
    /// Send [`canonical_query`](super::canonical_query) of the same list.
    pub query: &'a [(String, String)],
    /// Headers to sign, names in any case, values raw (they are trimmed and
    /// folded for signing). Must include `Host`. Every header here is signed,
    /// so pass only headers that are sent unchanged; repeated names are
    /// joined with `,` in the order given.
    pub headers: &'a [(String, String)],
    /// The payload hash to sign.
    pub payload: Payload<'a>,
    /// Whether [`sign`] adds and signs `x-amz-content-sha256` (S3 requires
    /// it: keep `true`; `false` only reproduces generic `SigV4` vectors).
    /// [`presign`] ignores it and never sends that header.
    pub content_sha256_header: bool,
}

impl<'a> RequestParts<'a> {
    /// An S3 request (`content_sha256_header` is `true`).
    #[must_use]
    pub const fn new(
        method: &'a str,
        path: &'a str,
        query: &'a [(String, String)],
        headers: &'a [(String, String)],
        payload: Payload<'a>,
    ) -> Self {
        Self { method, path, query, headers, payload, content_sha256_header: true }
    }
}

impl fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &names)
            .field("payload", &self.payload)
            .field("content_sha256_header", &self.content_sha256_header)
            .finish()
    }
}

/// The result of [`sign`].
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Headers to add to the request, with lower-case names, in this order:
    /// `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (each only
    /// when not already among [`RequestParts::headers`]) and `authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// The `Authorization` header value (also the last entry of `headers`).
    pub authorization: String,
    /// Sorted lower-case names of the signed headers, joined with `;`.
    pub signed_headers: String,
    /// The canonical request (may contain the session token).
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// Hex signature; the seed of a [`ChunkSigner`](super::ChunkSigner).
    pub signature: String,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("SignedRequest")
            .field("headers", &names)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// The result of [`presign`].
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// The complete query string to send after `?`: the canonical query
    /// (caller's parameters plus the `X-Amz-*` ones) and `X-Amz-Signature` last.
    /// Anyone holding it can perform the request until it expires.
    pub query: String,
    /// Sorted lower-case names of the signed headers, joined with `;`.
    pub signed_headers: String,
    /// The canonical request.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// Hex signature (also the `X-Amz-Signature` value).
    pub signature: String,
}

impl fmt::Debug for PresignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedRequest")
            .field("query", &"<redacted>")
            .field("signed_headers", &self.signed_headers)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a non-empty HTTP token (RFC 9110 `tchar`s).
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Trims a header value and folds every internal whitespace run (including
/// obs-fold line breaks) into one space.
fn normalize_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_ascii_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Lower-cased names and normalised values of the caller's headers, after
/// checking them.
fn checked_headers(headers: &[(String, String)]) -> Result<Vec<(String, String)>, SignError> {
    let mut out = Vec::with_capacity(headers.len() + 4);
    let mut has_host = false;
    for (name, value) in headers {
        if !is_token(name) {
            return Err(SignError::InvalidHeaderName(name.clone()));
        }
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "authorization" => return Err(SignError::AuthorizationHeaderPresent),
            "host" => has_host = true,
            _ => {}
        }
        out.push((name, normalize_value(value)));
    }
    if has_host { Ok(out) } else { Err(SignError::MissingHost) }
}

/// Makes sure header `name` is signed with `value`: adds it to `headers` and
/// `added` when absent, accepts one identical copy, rejects anything else.
fn ensure_header(
    headers: &mut Vec<(String, String)>,
    added: &mut Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Result<(), SignError> {
    let mut present = headers.iter().filter(|(n, _)| n == name);
    match (present.next(), present.next()) {
        (None, _) => {
            headers.push((name.to_owned(), normalize_value(value)));
            added.push((name, value.to_owned()));
            Ok(())
        }
        (Some((_, v)), None) if v == value => Ok(()),
        _ => Err(SignError::ConflictingHeader { name }),
    }
}

/// Canonical headers block (`name:value\n` each) and the signed headers list.
fn canonical_headers(mut headers: Vec<(String, String)>) -> (String, String) {
    // Stable: repeated names keep the order in which they were given.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = String::new();
    let mut signed = String::new();
    let mut last: Option<&str> = None;
    for (name, value) in &headers {
        if last == Some(name.as_str()) {
            canonical.pop(); // the '\n' of the previous value
            canonical.push(',');
        } else {
            if last.is_some() {
                signed.push(';');
            }
            signed.push_str(name);
            canonical.push_str(name);
            canonical.push(':');
        }
        canonical.push_str(value);
        canonical.push('\n');
        last = Some(name);
    }
    (canonical, signed)
}

/// The canonical request: method, canonical URI, canonical query, canonical
/// headers, signed headers and payload hash, one per line.
fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        canonical_uri(path)
    )
}

/// String to sign and signature of a canonical request.
fn string_to_sign_and_signature(canonical_request: &str, timestamp: &str, scope: &str, key: &[u8]) -> (String, String) {
    let string_to_sign = format!("{ALGORITHM}\n{timestamp}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let signature = hex(&hmac_sha256(key, string_to_sign.as_bytes()));
    (string_to_sign, signature)
}

/// The signing key of `credentials` for `scope` on `date` (`YYYYMMDD`).
pub(super) fn derive_key(credentials: &Credentials, scope: &Scope, date: &str) -> Zeroizing<[u8; 32]> {
    signing_key(&credentials.secret_access_key, date, &scope.region, &scope.service)
}

/// Signs a request for the `Authorization` header.
///
/// `time` is the signing time (the caller reads the clock); it becomes
/// `x-amz-date`. The signer adds and signs `x-amz-date`,
/// `x-amz-content-sha256` (unless [`RequestParts::content_sha256_header`] is
/// off) and, with a session token, `x-amz-security-token`; if the caller
/// already passes one of these with the same value it is signed as given and
/// not added again. All headers in [`RequestParts::headers`] are signed. The
/// returned [`SignedRequest::headers`] must be added to the request.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cloudsyncd::s3sig::{host_and_path, sign, Credentials, Payload, RequestParts, Scope};
///
/// let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // read by the caller
/// let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", "secret");
/// let (host, path) = host_and_path("s3.eu-west-1.amazonaws.com", "bkt", "dir/a b.txt", false);
/// let query = vec![("versionId".to_owned(), "v1".to_owned())];
/// let headers = vec![("host".to_owned(), host), ("range".to_owned(), "bytes=0-9".to_owned())];
/// let parts = RequestParts::new("GET", &path, &query, &headers, Payload::Unsigned);
/// let signed = sign(&parts, &creds, &Scope::s3("eu-west-1"), time)?;
/// // Send GET {path}?{canonical_query(&query)} with `headers` plus `signed.headers`.
/// let names: Vec<&str> = signed.headers.iter().map(|(n, _)| *n).collect();
/// assert_eq!(names, ["x-amz-date", "x-amz-content-sha256", "authorization"]);
/// # Ok::<(), cloudsyncd::s3sig::SignError>(())
/// ```
///
/// # Errors
///
/// [`SignError::MissingHost`], [`SignError::AuthorizationHeaderPresent`],
/// [`SignError::InvalidHeaderName`], [`SignError::ConflictingHeader`] (one of
/// the headers above passed with another value), [`SignError::InvalidPayloadHash`]
/// and [`SignError::TimeOutOfRange`].
pub fn sign(
    parts: &RequestParts<'_>,
    credentials: &Credentials,
    scope: &Scope,
    time: SystemTime,
) -> Result<SignedRequest, SignError> {
    let date = AmzDate::from_system_time(time).ok_or(SignError::TimeOutOfRange)?;
    let payload_hash = parts.payload.content_sha256()?;
    let mut headers = checked_headers(parts.headers)?;
    let mut added = Vec::with_capacity(4);
    ensure_header(&mut headers, &mut added, "x-amz-date", &date.timestamp)?;
    if parts.content_sha256_header {
        ensure_header(&mut headers, &mut added, "x-amz-content-sha256", &payload_hash)?;
    }
    if let Some(token) = &credentials.session_token {
        ensure_header(&mut headers, &mut added, "x-amz-security-token", token)?;
    }
    let (canonical_headers, signed_headers) = canonical_headers(headers);
    let scope_string = scope.to_string_at(&date.date);
    let canonical_request = canonical_request(
        parts.method,
        parts.path,
        &canonical_query(parts.query),
        &canonical_headers,
        &signed_headers,
        &payload_hash,
    );
    let key = derive_key(credentials, scope, &date.date);
    let (string_to_sign, signature) =
        string_to_sign_and_signature(&canonical_request, &date.timestamp, &scope_string, &*key);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope_string}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    added.push(("authorization", authorization.clone()));
    Ok(SignedRequest { headers: added, authorization, signed_headers, canonical_request, string_to_sign, signature })
}

/// Presigns a request (query-string authentication), valid for `expires_in`
/// from `time`.
///
/// The `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
/// `X-Amz-SignedHeaders` and (with a session token) `X-Amz-Security-Token`
/// parameters are added to the caller's query and signed; `X-Amz-Signature`
/// is appended last. For S3 pass [`Payload::Unsigned`]. All headers in
/// [`RequestParts::headers`] are signed and must be sent by whoever uses the
/// URL (usually just `Host`). Sub-second parts of `expires_in` are ignored.
///
/// # Errors
///
/// [`SignError::InvalidExpiry`] (outside 1 s ..= 7 days),
/// [`SignError::ReservedQueryParameter`], [`SignError::MissingHost`],
/// [`SignError::AuthorizationHeaderPresent`], [`SignError::InvalidHeaderName`],
/// [`SignError::InvalidPayloadHash`] and [`SignError::TimeOutOfRange`].
pub fn presign(
    parts: &RequestParts<'_>,
    credentials: &Credentials,
    scope: &Scope,
    time: SystemTime,
    expires_in: Duration,
) -> Result<PresignedRequest, SignError> {
    let expires = expires_in.as_secs();
    if !(1..=MAX_PRESIGN_SECONDS).contains(&expires) {
        return Err(SignError::InvalidExpiry(expires));
    }
    if let Some((name, _)) = parts.query.iter().find(|(n, _)| PRESIGN_PARAMS.contains(&n.to_ascii_lowercase().as_str()))
    {
        return Err(SignError::ReservedQueryParameter(name.clone()));
    }
    let date = AmzDate::from_system_time(time).ok_or(SignError::TimeOutOfRange)?;
    let payload_hash = parts.payload.content_sha256()?;
    let (canonical_headers, signed_headers) = canonical_headers(checked_headers(parts.headers)?);
    let scope_string = scope.to_string_at(&date.date);

    let mut query = Vec::with_capacity(parts.query.len() + 6);
    query.extend_from_slice(parts.query);
    let mut add = |k: &str, v: String| query.push((k.to_owned(), v));
    add("X-Amz-Algorithm", ALGORITHM.to_owned());
    add("X-Amz-Credential", format!("{}/{scope_string}", credentials.access_key_id));
    add("X-Amz-Date", date.timestamp.clone());
    add("X-Amz-Expires", expires.to_string());
    add("X-Amz-SignedHeaders", signed_headers.clone());
    if let Some(token) = &credentials.session_token {
        add("X-Amz-Security-Token", token.clone());
    }
    let canonical_query = canonical_query(&query);

    let canonical_request = canonical_request(
        parts.method,
        parts.path,
        &canonical_query,
        &canonical_headers,
        &signed_headers,
        &payload_hash,
    );
    let key = derive_key(credentials, scope, &date.date);
    let (string_to_sign, signature) =
        string_to_sign_and_signature(&canonical_request, &date.timestamp, &scope_string, &*key);
    Ok(PresignedRequest {
        query: format!("{canonical_query}&X-Amz-Signature={signature}"),
        signed_headers,
        canonical_request,
        string_to_sign,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const T_2013_05_24: u64 = 1_369_353_600;

    fn creds() -> Credentials {
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = creds().with_session_token("TOKEN-SECRET-VALUE");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("AKIAIOSFODNN7EXAMPLE"), "{dbg}");
        assert!(!dbg.contains("wJalrXUtnFEMI"), "{dbg}");
        assert!(!dbg.contains("TOKEN-SECRET-VALUE"), "{dbg}");
        assert!(!format!("{c:#?}").contains("EXAMPLEKEY"));

        let headers = h(&[("Host", "examplebucket.s3.amazonaws.com")]);
        let parts = RequestParts::new("GET", "/k", &[], &headers, Payload::Unsigned);
        let signed = sign(&parts, &c, &Scope::s3("us-east-1"), at(T_2013_05_24)).unwrap();
        assert!(!format!("{signed:?}").contains("TOKEN-SECRET-VALUE"));
        let pre = presign(&parts, &c, &Scope::s3("us-east-1"), at(T_2013_05_24), Duration::from_secs(60)).unwrap();
        assert!(pre.query.contains("X-Amz-Security-Token=TOKEN-SECRET-VALUE"));
        assert!(!format!("{pre:?}").contains("TOKEN-SECRET-VALUE"));
        assert!(!format!("{pre:?}").contains(&pre.signature));
    }

    #[test]
    fn header_normalisation() {
        assert_eq!(normalize_value("  a   b\n  c\t d  "), "a b c d");
        assert_eq!(normalize_value("\"a   b\""), "\"a b\"");
        let (c, s) = canonical_headers(h(&[("b", "2"), ("a", "1"), ("b", "1"), ("c", "")]));
        assert_eq!(c, "a:1\nb:2,1\nc:\n");
        assert_eq!(s, "a;b;c");
    }

    #[test]
    fn adds_headers_and_token() {
        let headers = h(&[("Host", "b.s3.amazonaws.com")]);
        let parts = RequestParts::new("GET", "/", &[], &headers, Payload::Unsigned);
        let c = creds().with_session_token("tok");
        let s = sign(&parts, &c, &Scope::s3("eu-west-1"), at(T_2013_05_24)).unwrap();
        let names: Vec<&str> = s.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"]);
        assert_eq!(s.headers[1].1, "UNSIGNED-PAYLOAD");
        assert_eq!(s.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
        assert!(s.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
        assert!(
            s.authorization
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/eu-west-1/s3/aws4_request, ")
        );
    }

    #[test]
    fn rejects_bad_inputs() {
        let scope = Scope::s3("us-east-1");
        let t = at(T_2013_05_24);
        let no_host = h(&[("x-amz-meta-a", "1")]);
        let p = RequestParts::new("GET", "/", &[], &no_host, Payload::Unsigned);
        assert_eq!(sign(&p, &creds(), &scope, t), Err(SignError::MissingHost));

        let auth = h(&[("Host", "h"), ("Authorization", "x")]);
        let p = RequestParts::new("GET", "/", &[], &auth, Payload::Unsigned);
        assert_eq!(sign(&p, &creds(), &scope, t), Err(SignError::AuthorizationHeaderPresent));

        let bad_name = h(&[("Host", "h"), ("bad name", "x")]);
        let p = RequestParts::new("GET", "/", &[], &bad_name, Payload::Unsigned);
        assert!(matches!(sign(&p, &creds(), &scope, t), Err(SignError::InvalidHeaderName(_))));

        let wrong_date = h(&[("Host", "h"), ("X-Amz-Date", "20000101T000000Z")]);
        let p = RequestParts::new("GET", "/", &[], &wrong_date, Payload::Unsigned);
        assert_eq!(sign(&p, &creds(), &scope, t), Err(SignError::ConflictingHeader { name: "x-amz-date" }));

        let wrong_hash = h(&[("Host", "h"), ("x-amz-content-sha256", EMPTY_SHA256)]);
        let p = RequestParts::new("PUT", "/", &[], &wrong_hash, Payload::Bytes(b"x"));
        assert_eq!(sign(&p, &creds(), &scope, t), Err(SignError::ConflictingHeader { name: "x-amz-content-sha256" }));

        let host = h(&[("Host", "h")]);
        let p = RequestParts::new("PUT", "/", &[], &host, Payload::Sha256Hex("ABC"));
        assert!(matches!(sign(&p, &creds(), &scope, t), Err(SignError::InvalidPayloadHash(_))));
        let upper = EMPTY_SHA256.to_ascii_uppercase();
        let p = RequestParts::new("PUT", "/", &[], &host, Payload::Sha256Hex(&upper));
        assert!(matches!(sign(&p, &creds(), &scope, t), Err(SignError::InvalidPayloadHash(_))));

        let p = RequestParts::new("GET", "/", &[], &host, Payload::Unsigned);
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(sign(&p, &creds(), &scope, before_epoch), Err(SignError::TimeOutOfRange));

        for secs in [0, 604_801] {
            assert_eq!(
                presign(&p, &creds(), &scope, t, Duration::from_secs(secs)),
                Err(SignError::InvalidExpiry(secs))
            );
        }
        let q = vec![("x-amz-signature".to_owned(), "x".to_owned())];
        let p = RequestParts::new("GET", "/", &q, &host, Payload::Unsigned);
        assert_eq!(
            presign(&p, &creds(), &scope, t, Duration::from_secs(60)),
            Err(SignError::ReservedQueryParameter("x-amz-signature".to_owned()))
        );
    }

    #[test]
    fn payload_bytes_are_hashed() {
        let headers = h(&[("Host", "examplebucket.s3.amazonaws.com")]);
        let parts =
            RequestParts::new("PUT", "/test$file.text", &[], &headers, Payload::Bytes(b"Welcome to Amazon S3."));
        let s = sign(&parts, &creds(), &Scope::s3("us-east-1"), at(T_2013_05_24)).unwrap();
        assert_eq!(
            s.headers[1],
            ("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072".to_owned())
        );
        assert!(s.canonical_request.starts_with("PUT\n/test%24file.text\n\n"));
    }
}
