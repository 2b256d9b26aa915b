//! `SigV4` URI encoding for S3: canonical URI (decode once, encode each segment once, no normalisation) and canonical query string; may import only std.

use std::fmt::Write as _;

/// Whether `b` is an RFC 3986 unreserved character (`A-Z a-z 0-9 - _ . ~`),
/// the only bytes `SigV4` leaves unencoded.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Appends the `SigV4` encoding of `bytes` to `out`.
fn encode_bytes_into(out: &mut String, bytes: &[u8], encode_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// URI-encodes `s` the way `SigV4` and S3 require.
///
/// Every byte of the UTF-8 encoding is percent-encoded with upper-case hex,
/// except the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`. A space
/// becomes `%20` (never `+`), `+` becomes `%2B` and `%` becomes `%25`. With
/// `encode_slash == false`, `/` is kept (for object keys in paths); query
/// names and values use `encode_slash == true`.
///
/// ```
/// use cloudsyncd::s3sig::uri_encode;
/// assert_eq!(uri_encode("a b+c/ü~", false), "a%20b%2Bc/%C3%BC~");
/// assert_eq!(uri_encode("a/b", true), "a%2Fb");
/// ```
#[must_use]
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    encode_bytes_into(&mut out, s.as_bytes(), encode_slash);
    out
}

/// Value of an ASCII hex digit.
const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` once, leniently: a `%` not followed by two hex digits
/// is kept as a literal `%` (it is then re-encoded as `%25`). `+` is kept.
pub(super) fn percent_decode_lenient(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', hi, lo]) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        if let Some((hi, lo)) = escaped {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Strict form-style URL decoding (`+` is a space), as used by S3 listings
/// requested with `encoding-type=url`. Returns `None` on a malformed escape or
/// when the result is not UTF-8.
pub(super) fn form_decode_strict(s: &str) -> Option<String> {
    String::from_utf8(form_decode_bytes(s)?).ok()
}

/// [`form_decode_strict`] without the UTF-8 check: the bytes, `None` on a
/// malformed escape.
pub(super) fn form_decode_bytes(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The canonical URI of an S3 request path.
///
/// `path` is the path as sent on the request line: it may already be
/// percent-encoded (as produced by [`host_and_path`](super::host_and_path)),
/// or hold raw characters such as spaces or UTF-8. It is percent-decoded once
/// and every segment is then encoded once with [`uri_encode`], so `%3D` stays
/// `%3D` (never `%253D`), `$` becomes `%24`, and `.`, `..` and empty segments
/// are kept literally (S3 never normalises). An empty path is `/`, and a
/// missing leading `/` is added.
///
/// A raw object key that itself contains `%` must therefore be encoded by
/// the caller before it is put in `path`.
///
/// ```
/// use cloudsyncd::s3sig::canonical_uri;
/// assert_eq!(canonical_uri("/test$file.text"), "/test%24file.text");
/// assert_eq!(canonical_uri("/a%3Db/../c d"), "/a%3Db/../c%20d");
/// assert_eq!(canonical_uri(""), "/");
/// ```
#[must_use]
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode_lenient(path);
    let mut out = String::with_capacity(decoded.len() + 1);
    if decoded.first() != Some(&b'/') {
        out.push('/');
    }
    encode_bytes_into(&mut out, &decoded, false);
    out
}

/// The canonical query string of already-decoded query parameters.
///
/// Names and values are encoded with [`uri_encode`] (`/` becomes `%2F`,
/// `=` `%3D`, `+` `%2B`, space `%20`), the pairs are sorted by encoded name
/// and then by encoded value in byte order, and joined as `name=value` with
/// `&`. A parameter without a value (`?lifecycle`) is passed as
/// `("lifecycle", "")` and becomes `lifecycle=`.
///
/// Sending exactly this string as the request's query keeps what is sent and
/// what is signed identical.
///
/// ```
/// use cloudsyncd::s3sig::canonical_query;
/// let q = [("prefix".to_owned(), "a b/".to_owned()), ("list-type".to_owned(), "2".to_owned())];
/// assert_eq!(canonical_query(&q), "list-type=2&prefix=a%20b%2F");
/// ```
#[must_use]
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    encoded.sort_unstable();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Splits a raw query string (the part after `?`) into decoded pairs.
///
/// The string is split on `&` (empty parts are skipped), each part at its
/// first `=` (a missing value is empty), and names and values are
/// percent-decoded once. `+` is kept as a literal `+`, never read as a space.
/// Bytes that do not form UTF-8 are replaced with U+FFFD.
///
/// ```
/// use cloudsyncd::s3sig::parse_query;
/// assert_eq!(
///     parse_query("lifecycle&a=b%2Fc+d"),
///     vec![("lifecycle".to_owned(), String::new()), ("a".to_owned(), "b/c+d".to_owned())]
/// );
/// ```
#[must_use]
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (decode_lossy(k), decode_lossy(v))
        })
        .collect()
}

fn decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_lenient(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_only() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        assert_eq!(uri_encode(unreserved, true), unreserved);
        assert_eq!(
            uri_encode(" !\"#$%&'()*+,:;<=>?@[\\]^`{|}", true),
            "%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D"
        );
        assert_eq!(uri_encode("ሴ", false), "%E1%88%B4");
    }

    #[test]
    fn canonical_uri_decodes_once() {
        assert_eq!(canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D"), "/test/%40connections/JBDvjfGEIAMCERw%3D");
        assert_eq!(canonical_uri("/%E1%88%B4"), "/%E1%88%B4");
        assert_eq!(canonical_uri("/ሴ"), "/%E1%88%B4");
        assert_eq!(canonical_uri("//example//"), "//example//");
        assert_eq!(canonical_uri("/./"), "/./");
        // Lenient: a stray '%' is data.
        assert_eq!(canonical_uri("/100%"), "/100%25");
        assert_eq!(canonical_uri("/%zz"), "/%25zz");
        assert_eq!(canonical_uri("key"), "/key");
    }

    #[test]
    fn query_sorting_is_by_encoded_bytes() {
        let q = parse_query("Param1=value2&Param1=Value1");
        assert_eq!(canonical_query(&q), "Param1=Value1&Param1=value2");
        let q = parse_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1");
        // By name first: "Param" sorts before "Param-3" although '-' < '='.
        assert_eq!(canonical_query(&q), "%E1%88%B4=Value1&Param=Value2&Param-3=Value3");
        let q = parse_query("a=1+1&b=x y");
        assert_eq!(canonical_query(&q), "a=1%2B1&b=x%20y");
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode_strict("a+b%2Bc%20d").as_deref(), Some("a b+c d"));
        assert_eq!(form_decode_strict("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(form_decode_strict("%E2%82"), None);
        assert_eq!(form_decode_strict("%4"), None);
        assert_eq!(form_decode_strict("%zz"), None);
    }
}
