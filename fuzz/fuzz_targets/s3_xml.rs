//! Every S3 XML parser on arbitrary bytes: no panic, no hang, no unbounded memory.
#![no_main]

use cloudsyncd::s3sig as xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = xml::parse_list_buckets(data);
    let _ = xml::parse_list_objects_v2(data);
    let _ = xml::parse_list_object_versions(data);
    let _ = xml::parse_initiate_multipart_upload(data);
    let _ = xml::parse_complete_multipart_upload(data);
    let _ = xml::parse_list_multipart_uploads(data);
    let _ = xml::parse_delete_result(data);
    let _ = xml::parse_location_constraint(data);
    let _ = xml::parse_copy_object(data);
    let _ = xml::parse_error(data);
});
