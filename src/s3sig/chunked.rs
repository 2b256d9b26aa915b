//! Streaming (`aws-chunked`) uploads: the chained per-chunk and trailer signatures and the chunk framing; may import only std, `zeroize` and the sibling `crypto`, `sign` and `time` modules.
//!
//! Wire format of the body (`Content-Encoding: aws-chunked`):
//!
//! ```text
//! signed:    hex(len);chunk-signature=<sig>\r\n <data> \r\n   ... then
//!            0;chunk-signature=<sig>\r\n                     (final, empty chunk)
//! unsigned:  hex(len)\r\n <data> \r\n   ...   then   0\r\n
//! then the trailer section: name:value\r\n ... [x-amz-trailer-signature:<sig>\r\n] \r\n
//! ```
//!
//! Without trailers the section is just the closing `\r\n`.

use std::{fmt, num::NonZeroU64, time::SystemTime};

use zeroize::Zeroizing;

use super::{
    crypto::{EMPTY_SHA256, hex, hmac_sha256, is_sha256_hex, sha256_hex},
    sign::{Credentials, Scope, SignError, Streaming, derive_key},
    time::AmzDate,
};

/// Length of `;chunk-signature=` plus a hex signature.
const SIGNED_EXTENSION_LEN: u64 = 17 + 64;
/// Length of `x-amz-trailer-signature:` plus a hex signature plus CRLF.
const TRAILER_SIGNATURE_LINE_LEN: u64 = 24 + 64 + 2;

/// One step of a chunked upload's signature chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSignature {
    /// The string that was signed.
    pub string_to_sign: String,
    /// Hex signature; goes into the chunk header or `x-amz-trailer-signature`.
    pub signature: String,
}

/// Signs the chunks of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` upload.
///
/// Each signature covers the previous one, starting from the seed signature
/// of the request headers ([`SignedRequest::signature`](super::SignedRequest)).
/// Call [`sign_chunk`](Self::sign_chunk) for every data chunk in order, then
/// once with an empty slice for the final chunk, then
/// [`sign_trailer`](Self::sign_trailer) when the upload has trailing headers.
/// `Debug` does not print the signing key.
///
/// ```
/// use std::{num::NonZeroU64, time::{Duration, UNIX_EPOCH}};
/// use cloudsyncd::s3sig::{
///     chunk_header, sign, trailer_section, ChunkSigner, Credentials, Payload, RequestParts,
///     Scope, Streaming,
/// };
///
/// let data = vec![b'a'; 100_000];
/// let chunk = 65_536;
/// let mode = Streaming::Signed;
/// let length = mode.encoded_length(data.len() as u64, NonZeroU64::new(chunk).unwrap(), &[]);
/// let headers: Vec<(String, String)> = [
///     ("host", "bkt.s3.amazonaws.com".to_owned()),
///     ("content-encoding", "aws-chunked".to_owned()),
///     ("content-length", length.to_string()),
///     ("x-amz-decoded-content-length", data.len().to_string()),
/// ]
/// .into_iter()
/// .map(|(n, v)| (n.to_owned(), v))
/// .collect();
/// let (creds, scope) = (Credentials::new("AKID", "secret"), Scope::s3("us-east-1"));
/// let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // read by the caller
/// let parts = RequestParts::new("PUT", "/key", &[], &headers, Payload::Streaming(mode));
/// let seed = sign(&parts, &creds, &scope, time)?;
///
/// let mut signer = ChunkSigner::new(&creds, &scope, time, &seed.signature)?;
/// let mut body = Vec::new();
/// for piece in data.chunks(chunk as usize) {
///     body.extend_from_slice(chunk_header(piece.len(), &signer.sign_chunk(piece).signature).as_bytes());
///     body.extend_from_slice(piece);
///     body.extend_from_slice(b"\r\n");
/// }
/// body.extend_from_slice(chunk_header(0, &signer.sign_chunk(&[]).signature).as_bytes());
/// body.extend_from_slice(trailer_section(&[], None).as_bytes());
/// assert_eq!(body.len() as u64, length);
/// # Ok::<(), cloudsyncd::s3sig::SignError>(())
/// ```
#[derive(Clone)]
pub struct ChunkSigner {
    key: Zeroizing<[u8; 32]>,
    timestamp: String,
    scope: String,
    previous: String,
}

impl fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("timestamp", &self.timestamp)
            .field("scope", &self.scope)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl ChunkSigner {
    /// A signer continuing from `seed_signature`, the signature of the request
    /// headers that [`sign`](super::sign) produced with the same
    /// `credentials`, `scope` and `time`.
    ///
    /// # Errors
    ///
    /// [`SignError::TimeOutOfRange`] and [`SignError::InvalidSeedSignature`]
    /// (not 64 lower-case hex digits).
    pub fn new(
        credentials: &Credentials,
        scope: &Scope,
        time: SystemTime,
        seed_signature: &str,
    ) -> Result<Self, SignError> {
        let date = AmzDate::from_system_time(time).ok_or(SignError::TimeOutOfRange)?;
        if !is_sha256_hex(seed_signature) {
            return Err(SignError::InvalidSeedSignature);
        }
        Ok(Self {
            key: derive_key(credentials, scope, &date.date),
            scope: scope.to_string_at(&date.date),
            timestamp: date.timestamp,
            previous: seed_signature.to_owned(),
        })
    }

    /// The most recent signature of the chain (the seed before any chunk).
    #[must_use]
    pub fn previous_signature(&self) -> &str {
        &self.previous
    }

    fn step(&mut self, algorithm: &str, lines: &str) -> ChunkSignature {
        let string_to_sign = format!("{algorithm}\n{}\n{}\n{}\n{lines}", self.timestamp, self.scope, self.previous);
        let signature = hex(&hmac_sha256(&*self.key, string_to_sign.as_bytes()));
        self.previous.clone_from(&signature);
        ChunkSignature { string_to_sign, signature }
    }

    /// Signs the next chunk (`data` empty for the final chunk):
    /// `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous>\n<sha256("")>\n<sha256(data)>`.
    /// Frame it with [`chunk_header`].
    pub fn sign_chunk(&mut self, data: &[u8]) -> ChunkSignature {
        let data_hash = if data.is_empty() { EMPTY_SHA256.to_owned() } else { sha256_hex(data) };
        self.step("AWS4-HMAC-SHA256-PAYLOAD", &format!("{EMPTY_SHA256}\n{data_hash}"))
    }

    /// Signs the trailing headers, after the final (empty) chunk:
    /// `AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n<previous>\n<sha256(trailers)>`,
    /// where the trailers are `name:value\n` lines as [`trailer_section`]
    /// writes them (lower-case names, sorted, trimmed values).
    pub fn sign_trailer(&mut self, trailers: &[(&str, &str)]) -> ChunkSignature {
        let mut text = String::new();
        for (name, value) in canonical_trailers(trailers) {
            text.push_str(&name);
            text.push(':');
            text.push_str(&value);
            text.push('\n');
        }
        self.step("AWS4-HMAC-SHA256-TRAILER", &sha256_hex(text.as_bytes()))
    }
}

/// Trailers with lower-case names and trimmed, folded values, sorted by name.
fn canonical_trailers(trailers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = trailers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The header of a signed chunk: `hex(len);chunk-signature=<signature>\r\n`.
/// The chunk data follows, then `\r\n`; after the final, empty chunk comes
/// [`trailer_section`].
///
/// ```
/// use cloudsyncd::s3sig::chunk_header;
/// assert_eq!(chunk_header(65536, "ab12"), "10000;chunk-signature=ab12\r\n");
/// ```
#[must_use]
pub fn chunk_header(len: usize, signature: &str) -> String {
    format!("{len:x};chunk-signature={signature}\r\n")
}

/// The header of an unsigned chunk (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`):
/// `hex(len)\r\n`. The final chunk is `0\r\n`, then [`trailer_section`].
#[must_use]
pub fn unsigned_chunk_header(len: usize) -> String {
    format!("{len:x}\r\n")
}

/// The trailer section that follows the final chunk's header.
///
/// Each trailer as `name:value\r\n` (same order and form as
/// [`ChunkSigner::sign_trailer`] hashes them), then
/// `x-amz-trailer-signature:<signature>\r\n` when signed, then the closing
/// `\r\n`. With no trailers and no signature this is just `\r\n`, which ends
/// a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body.
#[must_use]
pub fn trailer_section(trailers: &[(&str, &str)], signature: Option<&str>) -> String {
    let mut out = String::new();
    for (name, value) in canonical_trailers(trailers) {
        out.push_str(&name);
        out.push(':');
        out.push_str(&value);
        out.push_str("\r\n");
    }
    if let Some(sig) = signature {
        out.push_str("x-amz-trailer-signature:");
        out.push_str(sig);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// Number of hex digits of `n`.
const fn hex_len(mut n: u64) -> u64 {
    let mut digits = 1;
    while n >= 16 {
        n /= 16;
        digits += 1;
    }
    digits
}

impl Streaming {
    /// The encoded body length (the `Content-Length` to send) of an upload of
    /// `decoded_len` bytes (the `x-amz-decoded-content-length`) cut into
    /// chunks of `chunk_size` bytes (the last one shorter), with `trailers`
    /// (ignored by [`Streaming::Signed`]). Trailer values must be their final
    /// values, or at least of final length (checksums have fixed lengths).
    #[must_use]
    pub fn encoded_length(self, decoded_len: u64, chunk_size: NonZeroU64, trailers: &[(&str, &str)]) -> u64 {
        let signed = !matches!(self, Self::UnsignedWithTrailer);
        let chunk = |len: u64| hex_len(len) + if signed { SIGNED_EXTENSION_LEN } else { 0 } + 2 + len + 2;
        let size = chunk_size.get();
        let full = decoded_len / size;
        let rest = decoded_len % size;
        let mut total = full * chunk(size);
        if rest > 0 {
            total += chunk(rest);
        }
        // Final chunk header: "0" [+ extension] CRLF.
        total += 1 + if signed { SIGNED_EXTENSION_LEN } else { 0 } + 2;
        if !matches!(self, Self::Signed) {
            for (name, value) in canonical_trailers(trailers) {
                total += (name.len() + 1 + value.len() + 2) as u64;
            }
        }
        if matches!(self, Self::SignedWithTrailer) {
            total += TRAILER_SIGNATURE_LINE_LEN;
        }
        total + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2013-05-24T00:00:00Z in unix seconds.
    const DOCS_TIME: u64 = 1_369_353_600;
    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

    fn signer() -> ChunkSigner {
        let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let t = UNIX_EPOCH + Duration::from_secs(DOCS_TIME);
        ChunkSigner::new(&creds, &Scope::s3("us-east-1"), t, SEED).unwrap()
    }

    #[test]
    fn aws_documented_chunk_chain() {
        // sigv4-streaming.html: 66560 bytes of 'a', 64 KiB chunks.
        let mut s = signer();
        let first = s.sign_chunk(&vec![b'a'; 65536]);
        assert_eq!(first.signature, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        assert_eq!(s.previous_signature(), first.signature);
        let second = s.sign_chunk(&[b'a'; 1024]);
        assert_eq!(second.signature, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497");
        let last = s.sign_chunk(&[]);
        assert_eq!(last.signature, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9");
        assert!(!format!("{s:?}").contains("key"));
    }

    #[test]
    fn rejects_bad_seed() {
        let creds = Credentials::new("a", "b");
        let t = UNIX_EPOCH;
        for seed in ["", "xyz", &SEED.to_ascii_uppercase()] {
            assert_eq!(
                ChunkSigner::new(&creds, &Scope::s3("r"), t, seed).unwrap_err(),
                SignError::InvalidSeedSignature
            );
        }
    }

    #[test]
    fn framing() {
        assert_eq!(chunk_header(1024, "s"), "400;chunk-signature=s\r\n");
        assert_eq!(chunk_header(0, "s"), "0;chunk-signature=s\r\n");
        assert_eq!(unsigned_chunk_header(255), "ff\r\n");
        assert_eq!(trailer_section(&[], None), "\r\n");
        assert_eq!(
            trailer_section(&[("X-Amz-Checksum-Crc32c", " sOO8/Q== ")], Some("sig")),
            "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:sig\r\n\r\n"
        );
    }

    /// Builds an encoded body the long way and compares its length.
    fn build(mode: Streaming, len: usize, chunk: usize, trailers: &[(&str, &str)]) -> usize {
        let data = vec![b'a'; len];
        let mut s = signer();
        let mut body = String::new();
        let signed = mode != Streaming::UnsignedWithTrailer;
        for piece in data.chunks(chunk) {
            if signed {
                body.push_str(&chunk_header(piece.len(), &s.sign_chunk(piece).signature));
            } else {
                body.push_str(&unsigned_chunk_header(piece.len()));
            }
            body.push_str(std::str::from_utf8(piece).unwrap());
            body.push_str("\r\n");
        }
        if signed {
            body.push_str(&chunk_header(0, &s.sign_chunk(&[]).signature));
        } else {
            body.push_str(&unsigned_chunk_header(0));
        }
        match mode {
            Streaming::Signed => body.push_str(&trailer_section(&[], None)),
            Streaming::SignedWithTrailer => {
                let sig = s.sign_trailer(trailers).signature;
                body.push_str(&trailer_section(trailers, Some(&sig)));
            }
            Streaming::UnsignedWithTrailer => body.push_str(&trailer_section(trailers, None)),
        }
        body.len()
    }

    #[test]
    fn encoded_lengths_match_framing() {
        let size = NonZeroU64::new(65536).unwrap();
        assert_eq!(Streaming::Signed.encoded_length(66560, size, &[]), 66824);
        let trailers = [("x-amz-checksum-crc32c", "sOO8/Q==")];
        for mode in [Streaming::Signed, Streaming::SignedWithTrailer, Streaming::UnsignedWithTrailer] {
            for (len, chunk) in [(0, 8192), (1, 8192), (8192, 8192), (8193, 8192), (66560, 65536)] {
                let expected = build(mode, len, chunk, &trailers);
                let size = NonZeroU64::new(chunk as u64).unwrap();
                assert_eq!(
                    mode.encoded_length(len as u64, size, &trailers),
                    expected as u64,
                    "{mode:?} len {len} chunk {chunk}"
                );
            }
        }
    }
}
