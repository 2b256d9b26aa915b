//! `s3sig` signing against the `SigV4` vectors in `tests/fixtures/sigv4/` (see its README.md).
//!
//! * `suite.json`: the 90 cases marked `s3_applicable` must reproduce the
//!   canonical request, string to sign, signature, `Authorization` header and
//!   signed request (headers, or the presigned query) exactly, with S3 rules
//!   (no normalisation, single encoding). The 23 other cases must give a
//!   *different* signature, and the double-encoding ones the single-encoded
//!   path their `s3_note` names.
//! * `s3-examples.json`: all 7 Amazon S3 API Reference examples, including
//!   the chunked-upload signature chains and the trailer signature.
//!
//! Each test runs every case, collects the mismatches by case name and fails
//! once at the end, and asserts how many cases ran, so that a skipped case
//! fails too.

use std::{
    num::NonZeroU64,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cloudsyncd::s3sig::{
    ChunkSigner, Credentials, Payload, RequestParts, Scope, Streaming, canonical_uri, chunk_header, parse_query,
    presign, sign, trailer_section,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    credentials: CaseCredentials,
    region: String,
    service: String,
    timestamp: String,
    request: CaseRequest,
    signature_location: String,
    expires_in: Option<u64>,
    sign_body: bool,
    x_amz_content_sha256_header: bool,
    payload_hash: String,
    s3_applicable: Option<bool>,
    s3_note: Option<String>,
    source_defects: Option<Vec<String>>,
    kind: Option<String>,
    chunk_size: Option<usize>,
    expected: Expected,
}

#[derive(Deserialize)]
struct CaseCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

#[derive(Deserialize)]
struct CaseRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    decoded_body: Option<Repeat>,
}

#[derive(Deserialize)]
struct Repeat {
    repeat_byte: String,
    count: usize,
}

#[derive(Deserialize)]
struct Expected {
    canonical_request: String,
    string_to_sign: String,
    signature: String,
    authorization: Option<String>,
    signed_request: Option<String>,
    presigned_url: Option<String>,
    chunks: Option<Vec<ExpectedChunk>>,
    trailer: Option<ExpectedTrailer>,
    encoded_body_length: Option<u64>,
}

#[derive(Deserialize)]
struct ExpectedChunk {
    size: usize,
    string_to_sign: String,
    signature: String,
    wire_header: Option<String>,
}

#[derive(Deserialize)]
struct ExpectedTrailer {
    headers: Vec<(String, String)>,
    string_to_sign: String,
    signature: String,
}

fn load(file: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `YYYY-MM-DDTHH:MM:SSZ` as a `SystemTime` (test-side, independent of the
/// crate's own date code).
fn timestamp(text: &str) -> SystemTime {
    assert!(text.len() == 20 && text.ends_with('Z'), "unexpected timestamp {text}");
    let field = |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect(text) };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year - 719_468;
    let secs = u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).expect("after 1970");
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn credentials(case: &Case) -> Credentials {
    let c = &case.credentials;
    let creds = Credentials::new(c.access_key_id.clone(), c.secret_access_key.clone());
    match &c.session_token {
        Some(token) => creds.with_session_token(token.clone()),
        None => creds,
    }
}

fn payload(case: &Case) -> Payload<'_> {
    match case.payload_hash.as_str() {
        "UNSIGNED-PAYLOAD" => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::Streaming(Streaming::Signed),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::Streaming(Streaming::SignedWithTrailer),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::Streaming(Streaming::UnsignedWithTrailer),
        _ if case.sign_body => Payload::Bytes(case.request.body.as_deref().unwrap_or_default().as_bytes()),
        hash => Payload::Sha256Hex(hash),
    }
}

/// Collects mismatches of one case.
struct Check<'a> {
    case: &'a str,
    failures: Vec<String>,
}

impl Check<'_> {
    fn eq(&mut self, what: &str, expected: &str, got: &str) {
        if expected != got {
            self.failures.push(format!("{}: {what} differs\n  expected: {expected:?}\n  got:      {got:?}", self.case));
        }
    }

    fn fail(&mut self, what: &str) {
        self.failures.push(format!("{}: {what}", self.case));
    }
}

/// Trims and folds whitespace, as the signer does.
fn fold(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Request line and headers (lower-case name, folded value) of a signed
/// request text, joining obs-fold continuation lines.
fn parse_signed_request(text: &str) -> (String, Vec<(String, String)>) {
    let mut lines = text.split('\n');
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line);
            }
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    for h in &mut headers {
        h.1 = fold(&h.1);
    }
    headers.sort();
    (request_line, headers)
}

fn sorted_pairs(query: &str) -> Vec<(String, String)> {
    let mut pairs = parse_query(query);
    pairs.sort();
    pairs
}

/// Runs a header-signed case; returns the seed signature.
fn check_header_case(case: &Case, check: &mut Check<'_>) -> Option<String> {
    let query = parse_query(&case.request.query);
    let mut parts =
        RequestParts::new(&case.request.method, &case.request.path, &query, &case.request.headers, payload(case));
    parts.content_sha256_header = case.x_amz_content_sha256_header;
    let scope = Scope::new(case.region.clone(), case.service.clone());
    let signed = match sign(&parts, &credentials(case), &scope, timestamp(&case.timestamp)) {
        Ok(s) => s,
        Err(e) => {
            check.fail(&format!("sign failed: {e}"));
            return None;
        }
    };
    let exp = &case.expected;
    check.eq("canonical request", &exp.canonical_request, &signed.canonical_request);
    check.eq("string to sign", &exp.string_to_sign, &signed.string_to_sign);
    check.eq("signature", &exp.signature, &signed.signature);
    match &exp.authorization {
        Some(auth) => check.eq("authorization", auth, &signed.authorization),
        None => check.fail("header case without expected authorization"),
    }
    if signed.headers.last().map(|(n, _)| *n) != Some("authorization") {
        check.fail("authorization is not the last header to add");
    }
    if let Some(text) = &exp.signed_request {
        // The headers sent = the caller's + the ones the signer adds.
        let (_, mut expected) = parse_signed_request(text);
        let mut got: Vec<(String, String)> = case
            .request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), fold(v)))
            .chain(signed.headers.iter().map(|(n, v)| ((*n).to_owned(), fold(v))))
            .collect();
        got.sort();
        if case.source_defects.is_some() {
            // The upstream .sreq Authorization line is known to be wrong.
            expected.retain(|(n, _)| n != "authorization");
            got.retain(|(n, _)| n != "authorization");
        }
        if expected != got {
            check.fail(&format!("signed request headers differ\n  expected: {expected:?}\n  got:      {got:?}"));
        }
    }
    Some(signed.signature)
}

fn check_query_case(case: &Case, check: &mut Check<'_>) {
    let query = parse_query(&case.request.query);
    let parts =
        RequestParts::new(&case.request.method, &case.request.path, &query, &case.request.headers, payload(case));
    let scope = Scope::new(case.region.clone(), case.service.clone());
    let Some(expires) = case.expires_in else {
        check.fail("query case without expires_in");
        return;
    };
    let presigned =
        match presign(&parts, &credentials(case), &scope, timestamp(&case.timestamp), Duration::from_secs(expires)) {
            Ok(p) => p,
            Err(e) => {
                check.fail(&format!("presign failed: {e}"));
                return;
            }
        };
    let exp = &case.expected;
    check.eq("canonical request", &exp.canonical_request, &presigned.canonical_request);
    check.eq("string to sign", &exp.string_to_sign, &presigned.string_to_sign);
    check.eq("signature", &exp.signature, &presigned.signature);
    if !presigned.query.ends_with(&format!("&X-Amz-Signature={}", exp.signature)) {
        check.fail("X-Amz-Signature is not the last query parameter");
    }
    if let Some(text) = &exp.signed_request {
        // Same parameters as the published request line (order may differ).
        let (request_line, _) = parse_signed_request(text);
        // "METHOD <target> HTTP/1.1"; the target may hold raw spaces.
        let target =
            request_line.split_once(' ').map_or("", |(_, rest)| rest.rsplit_once(' ').map_or(rest, |(t, _)| t));
        let (expected_path, expected_query) = target.split_once('?').unwrap_or((target, ""));
        check.eq("request path", &case.request.path, expected_path);
        let expected_pairs = sorted_pairs(expected_query);
        let got_pairs = sorted_pairs(&presigned.query);
        if expected_pairs != got_pairs {
            check.fail(&format!("presigned query differs\n  expected: {expected_pairs:?}\n  got:      {got_pairs:?}"));
        }
    }
    if let Some(url) = &exp.presigned_url {
        let host =
            case.request.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host")).map_or("", |(_, v)| v.as_str());
        let got = format!("https://{host}{}?{}", case.request.path, presigned.query);
        check.eq("presigned URL", url, &got);
    }
}

fn check_chunks(case: &Case, seed: &str, check: &mut Check<'_>) {
    let (Some(body), Some(chunk_size), Some(chunks)) =
        (&case.request.decoded_body, case.chunk_size, &case.expected.chunks)
    else {
        check.fail("chunked case without decoded_body, chunk_size or chunks");
        return;
    };
    let byte = body.repeat_byte.as_bytes()[0];
    let data = vec![byte; body.count];
    let mut pieces: Vec<&[u8]> = data.chunks(chunk_size).collect();
    pieces.push(&[]);
    if pieces.len() != chunks.len() {
        check.fail(&format!("{} chunks expected, {} built", chunks.len(), pieces.len()));
        return;
    }
    let scope = Scope::new(case.region.clone(), case.service.clone());
    let time = timestamp(&case.timestamp);
    let mut signer = match ChunkSigner::new(&credentials(case), &scope, time, seed) {
        Ok(s) => s,
        Err(e) => {
            check.fail(&format!("ChunkSigner::new failed: {e}"));
            return;
        }
    };
    let mut encoded_len = 0;
    for (i, (piece, exp)) in pieces.iter().zip(chunks).enumerate() {
        if piece.len() != exp.size {
            check.fail(&format!("chunk {} size {} != {}", i + 1, piece.len(), exp.size));
        }
        let got = signer.sign_chunk(piece);
        check.eq(&format!("chunk {} string to sign", i + 1), &exp.string_to_sign, &got.string_to_sign);
        check.eq(&format!("chunk {} signature", i + 1), &exp.signature, &got.signature);
        let header = chunk_header(piece.len(), &got.signature);
        if let Some(wire) = &exp.wire_header {
            check.eq(&format!("chunk {} wire header", i + 1), wire, &header);
        }
        encoded_len += header.len() + piece.len();
        if !piece.is_empty() {
            encoded_len += 2;
        }
    }
    let trailers: Vec<(&str, &str)> =
        case.expected.trailer.iter().flat_map(|t| t.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))).collect();
    let mode = if let Some(exp) = &case.expected.trailer {
        let got = signer.sign_trailer(&trailers);
        check.eq("trailer string to sign", &exp.string_to_sign, &got.string_to_sign);
        check.eq("trailer signature", &exp.signature, &got.signature);
        encoded_len += trailer_section(&trailers, Some(&got.signature)).len();
        Streaming::SignedWithTrailer
    } else {
        encoded_len += trailer_section(&[], None).len();
        Streaming::Signed
    };
    let size = NonZeroU64::new(chunk_size as u64).expect("chunk size > 0");
    let computed = mode.encoded_length(body.count as u64, size, &trailers);
    if computed != encoded_len as u64 {
        check.fail(&format!("encoded_length {computed} != framed length {encoded_len}"));
    }
    if let Some(expected) = case.expected.encoded_body_length.filter(|&e| e != computed) {
        check.fail(&format!("encoded length {computed} != documented {expected}"));
    }
}

fn report(failures: &[String]) {
    assert!(failures.is_empty(), "{} mismatch(es):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn suite_s3_applicable_cases_match() {
    let cases = load("suite.json");
    assert_eq!(cases.len(), 113, "suite.json should hold 113 cases");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|c| c.s3_applicable == Some(true)) {
        let mut check = Check { case: &case.name, failures: Vec::new() };
        match case.signature_location.as_str() {
            "header" => {
                check_header_case(case, &mut check);
            }
            "query" => check_query_case(case, &mut check),
            other => check.fail(&format!("unknown signature_location {other}")),
        }
        failures.append(&mut check.failures);
        ran += 1;
    }
    report(&failures);
    assert_eq!(ran, 90, "S3-applicable suite cases run");
}

#[test]
fn suite_non_s3_cases_differ_under_s3_rules() {
    let cases = load("suite.json");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|c| c.s3_applicable == Some(false)) {
        ran += 1;
        let query = parse_query(&case.request.query);
        let parts =
            RequestParts::new(&case.request.method, &case.request.path, &query, &case.request.headers, payload(case));
        let scope = Scope::new(case.region.clone(), case.service.clone());
        let time = timestamp(&case.timestamp);
        let creds = credentials(case);
        let result = if case.signature_location == "query" {
            let expires = Duration::from_secs(case.expires_in.unwrap_or(1));
            presign(&parts, &creds, &scope, time, expires).map(|p| (p.canonical_request, p.signature))
        } else {
            let mut parts = parts;
            parts.content_sha256_header = case.x_amz_content_sha256_header;
            sign(&parts, &creds, &scope, time).map(|s| (s.canonical_request, s.signature))
        };
        let (canonical, signature) = match result {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: signing failed: {e}", case.name));
                continue;
            }
        };
        if signature == case.expected.signature {
            failures.push(format!("{}: S3 rules reproduced a non-S3 signature", case.name));
        }
        // Double-encoding cases: the note names the single-encoded S3 path.
        if case.name.starts_with("smithy-rs/") {
            let note = case.s3_note.as_deref().unwrap_or_default();
            let s3_path = note
                .split_once("canonicalizes this path as '")
                .and_then(|(_, rest)| rest.split_once('\''))
                .map(|(path, _)| path);
            match s3_path {
                Some(path) => {
                    if canonical_uri(&case.request.path) != path {
                        failures.push(format!("{}: canonical URI is not {path}", case.name));
                    }
                    if canonical.lines().nth(1) != Some(path) {
                        failures.push(format!("{}: canonical request URI is not {path}", case.name));
                    }
                }
                None => failures.push(format!("{}: no S3 path in s3_note", case.name)),
            }
        }
    }
    report(&failures);
    assert_eq!(ran, 23, "non-S3 suite cases run");
}

#[test]
fn s3_documentation_examples_match() {
    let cases = load("s3-examples.json");
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut chunk_chains = 0;
    for case in &cases {
        let mut check = Check { case: &case.name, failures: Vec::new() };
        match case.kind.as_deref() {
            Some("header") => {
                check_header_case(case, &mut check);
            }
            Some("presigned-url") => check_query_case(case, &mut check),
            Some("chunked-upload" | "chunked-upload-trailer") => {
                if let Some(seed) = check_header_case(case, &mut check) {
                    check_chunks(case, &seed, &mut check);
                    chunk_chains += 1;
                }
            }
            other => check.fail(&format!("unknown kind {other:?}")),
        }
        failures.append(&mut check.failures);
        ran += 1;
    }
    report(&failures);
    assert_eq!(ran, 7, "S3 documentation examples run");
    assert_eq!(chunk_chains, 2, "chunked examples run");
}

/// The AWS documented chunked-upload example, spelled out (sigv4-streaming.html).
#[test]
fn aws_streaming_example_seed_and_first_chunk() {
    let headers: Vec<(String, String)> = [
        ("Host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("Content-Length", "66824"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
    .collect();
    let parts = RequestParts::new(
        "PUT",
        "/examplebucket/chunkObject.txt",
        &[],
        &headers,
        Payload::Streaming(Streaming::Signed),
    );
    let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let scope = Scope::s3("us-east-1");
    let time = timestamp("2013-05-24T00:00:00Z");
    let signed = sign(&parts, &creds, &scope, time).expect("sign");
    assert_eq!(signed.signature, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    assert_eq!(signed.headers[0], ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()));
    let mut chunks = ChunkSigner::new(&creds, &scope, time, &signed.signature).expect("signer");
    let first = chunks.sign_chunk(&vec![b'a'; 65536]);
    assert_eq!(first.signature, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    assert_eq!(
        chunk_header(65536, &first.signature),
        "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    );
}
