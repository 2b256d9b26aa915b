//! Request targets: virtual-hosted or path-style host and encoded path for a bucket and key; may import only std and the sibling `encode` module.

use super::encode::uri_encode;

/// The `Host` header value and the encoded request path for `key` in
/// `bucket`.
///
/// * `endpoint` is the server authority, `host[:port]`, without scheme or
///   path (for example `s3.eu-west-1.amazonaws.com` or `127.0.0.1:9000`).
/// * Virtual-hosted (`path_style == false`): host `<bucket>.<endpoint>`,
///   path `/<key>`. Only for buckets where [`is_dns_compatible_bucket`]
///   holds (and, over TLS with a wildcard certificate, without dots).
/// * Path-style: host `<endpoint>`, path `/<bucket>/<key>`, or `/<bucket>`
///   for bucket-level requests (`key` empty).
/// * An empty `bucket` (`ListBuckets`) gives `/` on the endpoint.
///
/// The key is encoded with [`uri_encode`] keeping `/` as the separator: a
/// space becomes `%20`, `+` `%2B`, `%` `%25`, non-ASCII its UTF-8 escapes,
/// and `~` stays. Empty segments, `.` and `..` are kept as they are (S3 does
/// not normalise; the HTTP client must not either). The returned path can be
/// passed unchanged as [`RequestParts::path`](super::RequestParts::path).
///
/// ```
/// use cloudsyncd::s3sig::host_and_path;
/// assert_eq!(
///     host_and_path("s3.amazonaws.com", "bkt", "dir/a b+c~.txt", false),
///     ("bkt.s3.amazonaws.com".to_owned(), "/dir/a%20b%2Bc~.txt".to_owned())
/// );
/// assert_eq!(
///     host_and_path("127.0.0.1:9000", "bkt", "ü", true),
///     ("127.0.0.1:9000".to_owned(), "/bkt/%C3%BC".to_owned())
/// );
/// ```
#[must_use]
pub fn host_and_path(endpoint: &str, bucket: &str, key: &str, path_style: bool) -> (String, String) {
    let encoded_key = uri_encode(key, false);
    if bucket.is_empty() {
        return (endpoint.to_owned(), format!("/{encoded_key}"));
    }
    if path_style {
        let bucket = uri_encode(bucket, true);
        let path = if key.is_empty() { format!("/{bucket}") } else { format!("/{bucket}/{encoded_key}") };
        (endpoint.to_owned(), path)
    } else {
        (format!("{bucket}.{endpoint}"), format!("/{encoded_key}"))
    }
}

/// Whether `bucket` can be used in the host name of virtual-hosted requests.
///
/// That takes 3 to 63 characters of `a-z 0-9 . -`, starting and ending with
/// a letter or digit, no `..`, `.-` or `-.`, and not shaped like an IPv4
/// address. Other names must use path-style requests.
#[must_use]
pub fn is_dns_compatible_bucket(bucket: &str) -> bool {
    let b = bucket.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge_ok(c) || c == b'.' || c == b'-')
        && edge_ok(b[0])
        && edge_ok(b[b.len() - 1])
        && !bucket.contains("..")
        && !bucket.contains(".-")
        && !bucket.contains("-.")
        && !looks_like_ipv4(bucket)
}

fn looks_like_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosted_and_path_style() {
        let (h, p) = host_and_path("s3.eu-west-1.amazonaws.com", "my-bucket", "a/b/c.txt", false);
        assert_eq!(h, "my-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(p, "/a/b/c.txt");
        let (h, p) = host_and_path("localhost:9000", "my-bucket", "a/b/c.txt", true);
        assert_eq!(h, "localhost:9000");
        assert_eq!(p, "/my-bucket/a/b/c.txt");
        // Bucket-level requests.
        assert_eq!(host_and_path("e", "b", "", true).1, "/b");
        assert_eq!(host_and_path("e", "b", "", false), ("b.e".to_owned(), "/".to_owned()));
        // ListBuckets.
        assert_eq!(host_and_path("e", "", "", false), ("e".to_owned(), "/".to_owned()));
        assert_eq!(host_and_path("e", "", "", true), ("e".to_owned(), "/".to_owned()));
    }

    #[test]
    fn keys_are_encoded_once_with_slash_kept() {
        let path = |key: &str| host_and_path("e", "b", key, true).1;
        assert_eq!(path("photos/2024 summer/ü ñ.jpg"), "/b/photos/2024%20summer/%C3%BC%20%C3%B1.jpg");
        assert_eq!(path("a+b=c&d?e#f"), "/b/a%2Bb%3Dc%26d%3Fe%23f");
        assert_eq!(path("100%/x~y"), "/b/100%25/x~y");
        assert_eq!(path("/lead//double/./dot/../"), "/b//lead//double/./dot/../");
        assert_eq!(path("日本語"), "/b/%E6%97%A5%E6%9C%AC%E8%AA%9E");
        assert_eq!(path("emoji😀"), "/b/emoji%F0%9F%98%80");
        // The signer's canonical URI of the path is the path itself.
        for key in ["a b", "a+b", "100%", "ü/ñ", "$x", "x//y/../z"] {
            let p = path(key);
            assert_eq!(super::super::encode::canonical_uri(&p), p, "{key}");
        }
    }

    #[test]
    fn dns_compatibility() {
        for ok in ["abc", "my-bucket", "my.bucket.name", "a1b", "123"] {
            assert!(is_dns_compatible_bucket(ok), "{ok}");
        }
        for bad in
            ["ab", "My-Bucket", "my_bucket", "-abc", "abc-", "a..b", "a.-b", "a-.b", "192.168.1.1", &"a".repeat(64)]
        {
            assert!(!is_dns_compatible_bucket(bad), "{bad}");
        }
    }
}
