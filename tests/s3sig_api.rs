//! `s3sig` public API behaviour beyond the published vectors: secret redaction, request targets that sign consistently, presigning for S3, and the chunked-upload helpers.

use std::{
    num::NonZeroU64,
    time::{Duration, UNIX_EPOCH},
};

use cloudsyncd::s3sig::{
    Credentials, Payload, RequestParts, Scope, Streaming, canonical_query, canonical_uri, host_and_path, presign, sign,
};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// 2013-05-24T00:00:00Z, the time of the S3 documentation examples, in unix seconds.
const DOCS_TIME: u64 = 1_369_353_600;

fn creds() -> Credentials {
    Credentials::new("AKIAIOSFODNN7EXAMPLE", SECRET)
}

#[test]
fn credentials_debug_does_not_print_secrets() {
    let c = creds().with_session_token("FwoGZXIvYXdzEBYaDSessionTokenValue");
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("EXAMPLEKEY"), "{text}");
        assert!(!text.contains("SessionTokenValue"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn signed_path_matches_the_path_sent() {
    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (key, path_style) in
        [("photos/2024 summer/ü ñ+1~.jpg", false), ("a%2Fb/100%", true), ("dir//./../x", true), ("日本語/😀", false)]
    {
        let (host, path) = host_and_path("s3.eu-west-1.amazonaws.com", "nas-backup", key, path_style);
        // What is sent is what is signed: no second encoding.
        assert_eq!(canonical_uri(&path), path, "{key}");
        let headers = vec![("host".to_owned(), host)];
        let query = vec![("versionId".to_owned(), "3/L4kq+tJl".to_owned())];
        let parts = RequestParts::new("GET", &path, &query, &headers, Payload::Unsigned);
        let signed = sign(&parts, &creds(), &Scope::s3("eu-west-1"), time).unwrap();
        let mut lines = signed.canonical_request.lines();
        assert_eq!(lines.next(), Some("GET"));
        assert_eq!(lines.next(), Some(path.as_str()));
        assert_eq!(lines.next(), Some(canonical_query(&query).as_str()));
        assert_eq!(canonical_query(&query), "versionId=3%2FL4kq%2BtJl");
    }
}

#[test]
fn presigned_get_uses_unsigned_payload_and_token() {
    let (host, path) = host_and_path("s3.amazonaws.com", "examplebucket", "test.txt", false);
    let headers = vec![("Host".to_owned(), host)];
    let parts = RequestParts::new("GET", &path, &[], &headers, Payload::Unsigned);
    let c = creds().with_session_token("tok/en+=");
    let time = UNIX_EPOCH + Duration::from_secs(DOCS_TIME);
    let p = presign(&parts, &c, &Scope::s3("us-east-1"), time, Duration::from_secs(86_400)).unwrap();
    assert!(p.canonical_request.ends_with("\nhost\nUNSIGNED-PAYLOAD"));
    assert!(p.query.contains("&X-Amz-Security-Token=tok%2Fen%2B%3D&"), "{}", p.query);
    assert!(p.query.starts_with("X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
    assert!(p.query.ends_with(&format!("&X-Amz-Signature={}", p.signature)));
    assert_eq!(p.signed_headers, "host");
}

#[test]
fn streaming_upload_headers() {
    // The helper gives the Content-Length to sign and send for a chunked upload.
    let size = NonZeroU64::new(65_536).unwrap();
    let content_length = Streaming::Signed.encoded_length(66_560, size, &[]);
    assert_eq!(content_length, 66_824);
    let headers: Vec<(String, String)> = [
        ("Host", "s3.amazonaws.com"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", &content_length.to_string()),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .collect();
    for mode in [Streaming::Signed, Streaming::SignedWithTrailer, Streaming::UnsignedWithTrailer] {
        let parts = RequestParts::new("PUT", "/b/k", &[], &headers, Payload::Streaming(mode));
        let s = sign(&parts, &creds(), &Scope::s3("us-east-1"), UNIX_EPOCH).unwrap();
        assert!(s.canonical_request.ends_with(mode.content_sha256()));
        assert!(s.headers.iter().any(|(n, v)| *n == "x-amz-content-sha256" && v == mode.content_sha256()));
    }
}
