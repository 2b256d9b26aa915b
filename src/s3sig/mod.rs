//! Sans-IO S3 support: AWS Signature Version 4 signing and S3 XML parsing; may import only std, `sha2`, `hmac`, `zeroize`, `thiserror` and `quick-xml` (no tokio, hyper or clock reads).
//!
//! Nothing here sends a request, reads a file or looks at the clock: the
//! caller passes the signing time in, and gets back headers, query strings and
//! request bodies to send, or typed values parsed from response bodies.
//!
//! * [`sign`] / [`presign`]: header and query (presigned URL) authentication,
//!   following the S3 rules (no path normalisation, every path segment
//!   URI-encoded exactly once, `x-amz-content-sha256` always signed).
//! * [`ChunkSigner`]: the per-chunk and trailer signatures of
//!   `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` uploads, with the
//!   `aws-chunked` framing helpers [`chunk_header`], [`unsigned_chunk_header`]
//!   and [`trailer_section`].
//! * [`host_and_path`]: virtual-hosted or path-style request targets with
//!   correctly encoded keys.
//! * `parse_*` functions: pure parsers of S3 XML response bodies, plus the
//!   [`delete_objects_body`] and [`complete_multipart_upload_body`] builders.
//!
//! Layout (one file per stage or per S3 call, as in rusty-s3):
//! `encode.rs` (URI encoding), `time.rs` (date formatting and ISO 8601
//! parsing), `crypto.rs` (the only SHA-256/HMAC user), `sign.rs` (canonical
//! request, string to sign, signature), `chunked.rs` (streaming uploads),
//! `url.rs` (request targets) and `xml/` (one file per response type).

mod chunked;
mod crypto;
mod encode;
mod sign;
mod time;
mod url;
mod xml;

pub use chunked::{ChunkSignature, ChunkSigner, chunk_header, trailer_section, unsigned_chunk_header};
pub use encode::{canonical_query, canonical_uri, parse_query, uri_encode};
pub use sign::{
    Credentials, Payload, PresignedRequest, RequestParts, Scope, SignError, SignedRequest, Streaming, presign, sign,
};
pub use url::{host_and_path, is_dns_compatible_bucket};
pub use xml::{
    Bucket, BucketList, CompleteMultipartUpload, CompletedPart, CopyObjectResult, DeleteError, DeleteMarker,
    DeleteResult, DeletedObject, InitiateMultipartUpload, ListMultipartUploadsPage, ListObjectsV2Page,
    ListVersionsPage, MultipartUpload, Object, ObjectIdentifier, ObjectVersion, S3ErrorResponse, S3XmlError,
    VersionEntry, complete_multipart_upload_body, delete_objects_body, parse_complete_multipart_upload,
    parse_copy_object, parse_delete_result, parse_error, parse_initiate_multipart_upload, parse_list_buckets,
    parse_list_multipart_uploads, parse_list_object_versions, parse_list_objects_v2, parse_location_constraint,
};
