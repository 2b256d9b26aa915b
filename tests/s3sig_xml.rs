//! `s3sig` S3 XML parsers and body builders on captured-looking response bodies in `tests/fixtures/s3-xml/`.

use std::path::PathBuf;

use cloudsyncd::s3sig::{
    CompletedPart, ObjectIdentifier, S3XmlError, VersionEntry, complete_multipart_upload_body, delete_objects_body,
    parse_complete_multipart_upload, parse_copy_object, parse_delete_result, parse_error,
    parse_initiate_multipart_upload, parse_list_buckets, parse_list_multipart_uploads, parse_list_object_versions,
    parse_list_objects_v2, parse_location_constraint,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/s3-xml").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn list_buckets() {
    let list = parse_list_buckets(&fixture("list_buckets.xml")).unwrap();
    assert_eq!(list.owner_id.as_deref(), Some("bcaf1ffd86f461ca5fb16fd081034f"));
    assert_eq!(list.owner_display_name.as_deref(), Some("webfile"));
    assert_eq!(list.buckets.len(), 2);
    assert_eq!(list.buckets[0].name, "nas-backup");
    assert_eq!(list.buckets[0].creation_date, 1_576_107_167);
    assert_eq!(list.buckets[0].region, None);
    assert_eq!(list.buckets[1].name, "photos.archive");
    assert_eq!(list.buckets[1].creation_date, 1_709_194_500);
    assert_eq!(list.buckets[1].region.as_deref(), Some("eu-west-1"));
    assert_eq!(list.continuation_token, None);

    let empty = parse_list_buckets(&fixture("list_buckets_empty.xml")).unwrap();
    assert!(empty.buckets.is_empty());
    assert_eq!(empty.owner_display_name.as_deref(), Some("minio"));
}

#[test]
fn list_objects_v2_truncated_page_with_continuation_token() {
    let page = parse_list_objects_v2(&fixture("list_objects_v2_page1.xml")).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.next_continuation_token.as_deref(), Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
    assert_eq!(page.name.as_deref(), Some("nas-backup"));
    assert_eq!(page.prefix.as_deref(), Some("photos/"));
    assert_eq!(page.delimiter.as_deref(), Some("/"));
    assert_eq!(page.key_count, Some(3));
    assert!(!page.url_encoded);
    assert_eq!(page.common_prefixes, ["photos/2023/", "photos/raw/"]);

    let keys: Vec<&str> = page.contents.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["photos/2024 summer.jpg", "photos/Ünïcødé 日本語 😀.png", "photos/a&b <c> 'q'.txt",]);
    let first = &page.contents[0];
    assert_eq!(first.last_modified, 1_255_369_830);
    assert_eq!(first.etag, "\"fba9dede5f27731c9771645a39863328\"");
    assert_eq!(first.size, 434_234);
    assert_eq!(first.storage_class.as_deref(), Some("STANDARD"));
    let second = &page.contents[1];
    assert_eq!(second.last_modified, 1_709_251_199);
    assert_eq!(second.etag, "\"d41d8cd98f00b204e9800998ecf8427e-12\"");
    assert_eq!(second.size, 0);
    assert_eq!(second.storage_class.as_deref(), Some("GLACIER"));
    let third = &page.contents[2];
    assert_eq!(third.size, u64::MAX);
    assert_eq!(third.storage_class, None);
    assert_eq!(third.last_modified, 1_709_251_200);
}

#[test]
fn list_objects_v2_last_and_empty_pages() {
    let page = parse_list_objects_v2(&fixture("list_objects_v2_last_page.xml")).unwrap();
    assert!(!page.is_truncated);
    assert_eq!(page.next_continuation_token, None);
    assert_eq!(page.contents.len(), 1);
    // ETag quotes written as character references.
    assert_eq!(page.contents[0].etag, "\"0cc175b9c0f1b6a831c399e269772661\"");
    assert_eq!(page.contents[0].last_modified, 1_688_205_600);

    let empty = parse_list_objects_v2(&fixture("list_objects_v2_empty.xml")).unwrap();
    assert!(empty.contents.is_empty());
    assert!(empty.common_prefixes.is_empty());
    assert_eq!(empty.key_count, Some(0));
    assert_eq!(empty.prefix, None);
}

#[test]
fn list_objects_v2_url_encoded_keys_are_decoded() {
    let page = parse_list_objects_v2(&fixture("list_objects_v2_url_encoded.xml")).unwrap();
    assert!(page.url_encoded);
    assert_eq!(page.prefix.as_deref(), Some("café/"));
    assert_eq!(page.delimiter.as_deref(), Some("/"));
    let keys: Vec<&str> = page.contents.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["café/naïve file+1.txt", "café/line\nbreak\r\u{1}ctl", "café/100% ~ &.txt",]);
    assert_eq!(page.common_prefixes, ["café/sub dir/"]);
    assert_eq!(page.contents[0].last_modified, 1_609_556_645);
}

#[test]
fn list_objects_v2_bad_url_encoding_is_reported() {
    let xml = br#"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<Contents><Key>bad%ZZkey</Key><LastModified>2021-01-02T03:04:05Z</LastModified><ETag>"x"</ETag><Size>1</Size></Contents></ListBucketResult>"#;
    let err = parse_list_objects_v2(xml).unwrap_err();
    assert_eq!(
        err,
        S3XmlError::InvalidValue { element: "Key", value: "bad%ZZkey".to_owned(), expected: "URL-encoded UTF-8" }
    );
}

#[test]
fn list_objects_v2_missing_and_invalid_fields() {
    let truncated_without_token = br"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
    assert_eq!(
        parse_list_objects_v2(truncated_without_token).unwrap_err(),
        S3XmlError::MissingElement { parent: "ListBucketResult".to_owned(), element: "NextContinuationToken" }
    );
    let no_truncated = br"<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>";
    assert_eq!(
        parse_list_objects_v2(no_truncated).unwrap_err(),
        S3XmlError::MissingElement { parent: "ListBucketResult".to_owned(), element: "IsTruncated" }
    );
    let no_size = br#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>
<LastModified>2021-01-02T03:04:05Z</LastModified><ETag>"x"</ETag></Contents></ListBucketResult>"#;
    assert_eq!(
        parse_list_objects_v2(no_size).unwrap_err(),
        S3XmlError::MissingElement { parent: "Contents".to_owned(), element: "Size" }
    );
    let bad_size = br#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>
<LastModified>2021-01-02T03:04:05Z</LastModified><ETag>"x"</ETag><Size>-1</Size></Contents></ListBucketResult>"#;
    let err = parse_list_objects_v2(bad_size).unwrap_err();
    assert!(matches!(err, S3XmlError::InvalidValue { element: "Size", .. }), "{err:?}");
    assert_eq!(err.to_string(), "<Size> holds \"-1\", which is not a non-negative integer");
    let bad_date = br#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key>
<LastModified>yesterday</LastModified><ETag>"x"</ETag><Size>1</Size></Contents></ListBucketResult>"#;
    assert!(matches!(
        parse_list_objects_v2(bad_date).unwrap_err(),
        S3XmlError::InvalidValue { element: "LastModified", .. }
    ));
    let bad_bool = br"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>";
    assert!(matches!(
        parse_list_objects_v2(bad_bool).unwrap_err(),
        S3XmlError::InvalidValue { element: "IsTruncated", .. }
    ));
}

#[test]
fn malformed_xml_gives_clear_errors() {
    let err = parse_list_objects_v2(&fixture("list_objects_v2_truncated_body.xml")).unwrap_err();
    match &err {
        S3XmlError::Malformed { message, .. } => {
            assert!(message.contains("ends inside <Key>"), "{message}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(err.to_string().starts_with("malformed XML at byte "), "{err}");

    let err = parse_list_objects_v2(b"<ListBucketResult><Name>x</Nmae></ListBucketResult>").unwrap_err();
    assert!(matches!(err, S3XmlError::Malformed { .. }), "{err:?}");

    assert_eq!(parse_list_objects_v2(b"").unwrap_err(), S3XmlError::NoRootElement);

    let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
    assert_eq!(
        parse_list_objects_v2(html).unwrap_err(),
        S3XmlError::UnexpectedRoot { expected: "ListBucketResult", found: "html".to_owned() }
    );
    assert!(matches!(
        parse_list_objects_v2(b"<ListBucketResult>\xc3\x28</ListBucketResult>").unwrap_err(),
        S3XmlError::NotUtf8 { offset: 18 }
    ));
    // A V1 listing is not a V2 one.
    let v1 = br"<ListBucketResult><Marker></Marker><NextMarker>k</NextMarker><IsTruncated>true</IsTruncated></ListBucketResult>";
    assert!(matches!(
        parse_list_objects_v2(v1).unwrap_err(),
        S3XmlError::MissingElement { element: "NextContinuationToken", .. }
    ));
}

#[test]
fn error_documents_anywhere_become_error_document() {
    let body = fixture("error_no_such_key.xml");
    let err = parse_list_objects_v2(&body).unwrap_err();
    let S3XmlError::ErrorDocument(doc) = err else {
        panic!("expected ErrorDocument, got {err:?}");
    };
    assert_eq!(doc.code, "NoSuchKey");
    assert_eq!(doc.request_id.as_deref(), Some("4442587FB7D0A2F9"));
    assert_eq!(parse_error(&body).unwrap(), *doc);
}

#[test]
fn error_document_fields() {
    let e = parse_error(&fixture("error_authorization_header_malformed.xml")).unwrap();
    assert_eq!(e.code, "AuthorizationHeaderMalformed");
    assert_eq!(e.region.as_deref(), Some("eu-central-1"));
    assert_eq!(e.request_id.as_deref(), Some("R5N0QWMBQ2FHXZ8A"));
    assert!(e.host_id.as_deref().unwrap().starts_with("iJ3SP5/B5pZ2"));
    assert!(e.message.as_deref().unwrap().contains("expecting 'eu-central-1'"));
    assert_eq!(e.endpoint, None);
    assert_eq!(
        e.to_string(),
        "AuthorizationHeaderMalformed: The authorization header is malformed; the region \
         'us-east-1' is wrong; expecting 'eu-central-1' (region eu-central-1) [request id R5N0QWMBQ2FHXZ8A]"
    );

    let e = parse_error(b"<Error><Code>SlowDown</Code></Error>").unwrap();
    assert_eq!(e.code, "SlowDown");
    assert_eq!(e.message, None);

    assert_eq!(
        parse_error(b"<Error><Message>no code</Message></Error>").unwrap_err(),
        S3XmlError::MissingElement { parent: "Error".to_owned(), element: "Code" }
    );
    assert_eq!(
        parse_error(b"<ListBucketResult/>").unwrap_err(),
        S3XmlError::UnexpectedRoot { expected: "Error", found: "ListBucketResult".to_owned() }
    );
}

#[test]
fn list_object_versions() {
    let page = parse_list_object_versions(&fixture("list_versions.xml")).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.next_key_marker.as_deref(), Some("docs/report.pdf"));
    assert_eq!(page.next_version_id_marker.as_deref(), Some("3/L4kqtJl40Nr8X8gdRQBpUMLUo"));
    assert_eq!(page.prefix.as_deref(), Some("docs/"));
    assert_eq!(page.common_prefixes, ["docs/archive/"]);
    assert_eq!(page.entries.len(), 4);
    let keys: Vec<&str> = page.entries.iter().map(VersionEntry::key).collect();
    assert_eq!(keys, ["docs/old.txt", "docs/old.txt", "docs/report.pdf", "docs/report.pdf"]);
    let VersionEntry::DeleteMarker(marker) = &page.entries[0] else {
        panic!("first entry should be a delete marker");
    };
    assert_eq!(marker.version_id, "null");
    assert!(marker.is_latest);
    assert_eq!(marker.last_modified, 1_258_048_230);
    let VersionEntry::Version(v) = &page.entries[1] else {
        panic!("second entry should be a version");
    };
    assert!(!v.is_latest);
    assert_eq!(v.version_id, "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo");
    assert_eq!(v.etag, "\"396fefef536d5ce46c7537ecf978a360\"");
    assert_eq!(v.size, 217);
    assert_eq!(v.storage_class.as_deref(), Some("STANDARD"));
    assert_eq!(v.last_modified, 1_255_369_830);
    let VersionEntry::Version(latest) = &page.entries[2] else {
        panic!("third entry should be a version");
    };
    assert!(latest.is_latest);
    assert_eq!(latest.size, 166_434);
    assert_eq!(latest.storage_class.as_deref(), Some("DEEP_ARCHIVE"));
    assert_eq!(latest.last_modified, 1_255_197_030);

    let truncated_without_marker = br"<ListVersionsResult><IsTruncated>true</IsTruncated></ListVersionsResult>";
    assert_eq!(
        parse_list_object_versions(truncated_without_marker).unwrap_err(),
        S3XmlError::MissingElement { parent: "ListVersionsResult".to_owned(), element: "NextKeyMarker" }
    );
    let marker_without_version_id = br"<ListVersionsResult><IsTruncated>false</IsTruncated>
<DeleteMarker><Key>k</Key><IsLatest>true</IsLatest><LastModified>2009-11-12T17:50:30Z</LastModified></DeleteMarker></ListVersionsResult>";
    assert_eq!(
        parse_list_object_versions(marker_without_version_id).unwrap_err(),
        S3XmlError::MissingElement { parent: "DeleteMarker".to_owned(), element: "VersionId" }
    );
}

#[test]
fn initiate_multipart_upload() {
    let r = parse_initiate_multipart_upload(&fixture("initiate_multipart_upload.xml")).unwrap();
    assert_eq!(r.upload_id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
    assert_eq!(r.bucket.as_deref(), Some("nas-backup"));
    assert_eq!(r.key.as_deref(), Some("big/disk image.raw"));
    assert_eq!(
        parse_initiate_multipart_upload(b"<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>")
            .unwrap_err(),
        S3XmlError::MissingElement { parent: "InitiateMultipartUploadResult".to_owned(), element: "UploadId" }
    );
}

#[test]
fn complete_multipart_upload() {
    let r = parse_complete_multipart_upload(&fixture("complete_multipart_upload.xml")).unwrap();
    assert_eq!(r.etag, "\"3858f62230ac3c915f300c664312c11f-9\"");
    assert_eq!(r.key.as_deref(), Some("big/disk image.raw"));
    assert_eq!(r.bucket.as_deref(), Some("nas-backup"));
    assert_eq!(r.location.as_deref(), Some("https://nas-backup.s3.eu-west-1.amazonaws.com/big/disk%20image.raw"));
}

#[test]
fn complete_multipart_upload_error_sent_with_200() {
    let err = parse_complete_multipart_upload(&fixture("complete_multipart_upload_error_200.xml")).unwrap_err();
    let S3XmlError::ErrorDocument(doc) = &err else {
        panic!("expected ErrorDocument, got {err:?}");
    };
    assert_eq!(doc.code, "InternalError");
    assert_eq!(doc.message.as_deref(), Some("We encountered an internal error. Please try again."));
    assert_eq!(doc.request_id.as_deref(), Some("656c76696e6727732072657175657374"));
    assert!(err.to_string().contains("InternalError"), "{err}");
    // A body cut short while S3 was still sending whitespace keep-alives.
    let cut = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n   ";
    assert_eq!(parse_complete_multipart_upload(cut).unwrap_err(), S3XmlError::NoRootElement);
}

#[test]
fn list_multipart_uploads() {
    let page = parse_list_multipart_uploads(&fixture("list_multipart_uploads.xml")).unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.bucket.as_deref(), Some("nas-backup"));
    assert_eq!(page.next_key_marker.as_deref(), Some("my-movie.m2ts"));
    assert_eq!(page.next_upload_id_marker.as_deref(), Some("YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ"));
    assert_eq!(page.uploads.len(), 2);
    assert_eq!(page.uploads[0].key, "my-divisor");
    assert_eq!(page.uploads[0].upload_id, "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
    assert_eq!(page.uploads[0].initiated, 1_289_422_113);
    assert_eq!(page.uploads[0].storage_class.as_deref(), Some("STANDARD"));
    assert_eq!(page.uploads[1].initiated, 1_289_422_173);
    assert!(page.common_prefixes.is_empty());
}

#[test]
fn delete_result() {
    let r = parse_delete_result(&fixture("delete_result.xml")).unwrap();
    assert_eq!(r.deleted.len(), 3);
    assert_eq!(r.deleted[0].key, "sample1.txt");
    assert!(!r.deleted[0].delete_marker);
    assert_eq!(r.deleted[1].key, "versioned & marked.txt");
    assert!(r.deleted[1].delete_marker);
    assert_eq!(r.deleted[1].delete_marker_version_id.as_deref(), Some("NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s"));
    assert_eq!(r.deleted[2].version_id.as_deref(), Some("OYcLXagmS.WaD..oyH4KRguB95_YhLs7"));
    assert_eq!(r.errors.len(), 2);
    assert_eq!(r.errors[0].key, "sample2.txt");
    assert_eq!(r.errors[0].code, "AccessDenied");
    assert_eq!(r.errors[0].message.as_deref(), Some("Access Denied"));
    assert_eq!(r.errors[1].code, "InternalError");
    assert_eq!(r.errors[1].message, None);
    assert!(r.errors[1].version_id.is_some());

    let quiet_ok = parse_delete_result(b"<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>").unwrap();
    assert!(quiet_ok.deleted.is_empty() && quiet_ok.errors.is_empty());
}

#[test]
fn location_constraint() {
    assert_eq!(parse_location_constraint(&fixture("location_constraint_empty.xml")).unwrap(), "us-east-1");
    assert_eq!(parse_location_constraint(&fixture("location_constraint_eu.xml")).unwrap(), "eu-west-1");
    assert_eq!(parse_location_constraint(&fixture("location_constraint_region.xml")).unwrap(), "ap-southeast-2");
    assert_eq!(parse_location_constraint(b"<LocationConstraint></LocationConstraint>").unwrap(), "us-east-1");
}

#[test]
fn copy_object_result() {
    let r = parse_copy_object(&fixture("copy_object_result.xml")).unwrap();
    assert_eq!(r.etag, "\"9b2cf535f27731c974343645a3985328\"");
    assert_eq!(r.last_modified, 1_256_769_120);
    let part = parse_copy_object(
        b"<CopyPartResult><LastModified>2009-10-28T22:32:00Z</LastModified><ETag>\"e\"</ETag></CopyPartResult>",
    )
    .unwrap();
    assert_eq!(part.etag, "\"e\"");
    let err = parse_copy_object(&fixture("complete_multipart_upload_error_200.xml")).unwrap_err();
    assert!(matches!(err, S3XmlError::ErrorDocument(ref e) if e.code == "InternalError"));
}

#[test]
fn delete_objects_body_builder() {
    let objects = [
        ObjectIdentifier::from("plain.txt"),
        ObjectIdentifier::from("a&b<c>\"d\" 'e'.txt"),
        ObjectIdentifier { key: "line\r\nbreak\ttab ü.txt", version_id: Some("3/L4kqtJl40Nr8X8gdRQBpUMLUo") },
    ];
    let body = delete_objects_body(&objects, true).unwrap();
    assert_eq!(
        body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>\
         <Object><Key>plain.txt</Key></Object>\
         <Object><Key>a&amp;b&lt;c&gt;&quot;d&quot; &apos;e&apos;.txt</Key></Object>\
         <Object><Key>line&#13;&#10;break&#9;tab ü.txt</Key><VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId></Object>\
         </Delete>"
    );
    let verbose = delete_objects_body(&objects[..1], false).unwrap();
    assert!(!verbose.contains("<Quiet>"));

    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let ids: Vec<ObjectIdentifier<'_>> = keys.iter().map(|k| k.as_str().into()).collect();
    assert!(delete_objects_body(&ids[..1000], true).is_ok());
    assert_eq!(delete_objects_body(&ids, true).unwrap_err(), S3XmlError::InvalidObjectCount { count: 1001 });
    assert_eq!(delete_objects_body(&[], true).unwrap_err(), S3XmlError::InvalidObjectCount { count: 0 });
    assert!(matches!(
        delete_objects_body(&[ObjectIdentifier::from("nul\u{0}")], true).unwrap_err(),
        S3XmlError::UnrepresentableCharacter { field: "Key", .. }
    ));
}

#[test]
fn complete_multipart_upload_body_builder() {
    let parts = [
        CompletedPart { part_number: 1, etag: "\"a54357aff0632cce46d942af68356b38\"".to_owned() },
        CompletedPart { part_number: 2, etag: "\"0c78aef83f66abc1fa1e8477f296d394\"".to_owned() },
    ];
    assert_eq!(
        complete_multipart_upload_body(&parts).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Part><PartNumber>1</PartNumber><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>\
         </CompleteMultipartUpload>"
    );
    assert_eq!(complete_multipart_upload_body(&[]).unwrap_err(), S3XmlError::NoParts);
    let part = |n: u32| CompletedPart { part_number: n, etag: "\"e\"".to_owned() };
    assert_eq!(
        complete_multipart_upload_body(&[part(0)]).unwrap_err(),
        S3XmlError::InvalidPartNumber { part_number: 0 }
    );
    assert_eq!(
        complete_multipart_upload_body(&[part(10_001)]).unwrap_err(),
        S3XmlError::InvalidPartNumber { part_number: 10_001 }
    );
    assert_eq!(
        complete_multipart_upload_body(&[part(2), part(1)]).unwrap_err(),
        S3XmlError::PartsNotAscending { previous: 2, part_number: 1 }
    );
    assert_eq!(
        complete_multipart_upload_body(&[part(3), part(3)]).unwrap_err(),
        S3XmlError::PartsNotAscending { previous: 3, part_number: 3 }
    );
    assert!(complete_multipart_upload_body(&[part(1), part(5), part(10_000)]).is_ok());
}
