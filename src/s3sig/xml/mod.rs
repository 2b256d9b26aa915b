//! S3 XML: the shared element tree read with `quick-xml`, the one error type, and value helpers used by the per-call parsers and body builders beside it; may import only std, `quick-xml`, `thiserror` and the sibling `encode` and `time` modules.
//!
//! Every `parse_*` function takes the raw response body. A body whose root
//! is `<Error>` (which S3 can send with status 200, for example for
//! `CompleteMultipartUpload` and `CopyObject`) is returned as
//! [`S3XmlError::ErrorDocument`], so it cannot be mistaken for success.

mod copy;
mod delete;
mod error;
mod list_buckets;
mod list_objects;
mod list_versions;
mod location;
mod multipart;

use quick_xml::{
    escape::resolve_predefined_entity,
    events::{BytesStart, Event},
    reader::Reader,
};

use super::{
    encode::{form_decode_bytes, form_decode_strict},
    time::parse_iso8601,
};

pub use copy::{CopyObjectResult, parse_copy_object};
pub use delete::{
    DeleteError, DeleteResult, DeletedObject, ObjectIdentifier, delete_objects_body, parse_delete_result,
};
pub use error::{S3ErrorResponse, parse_error};
pub use list_buckets::{Bucket, BucketList, parse_list_buckets};
pub use list_objects::{ListObjectsV2Page, Object, parse_list_objects_v2};
pub use list_versions::{DeleteMarker, ListVersionsPage, ObjectVersion, VersionEntry, parse_list_object_versions};
pub use location::parse_location_constraint;
pub use multipart::{
    CompleteMultipartUpload, CompletedPart, InitiateMultipartUpload, ListMultipartUploadsPage, MultipartUpload,
    complete_multipart_upload_body, parse_complete_multipart_upload, parse_initiate_multipart_upload,
    parse_list_multipart_uploads,
};

/// Deepest element nesting accepted. S3 responses nest four levels at most;
/// the limit keeps a hostile body from building a tree whose recursive drop
/// could exhaust the stack.
const MAX_DEPTH: usize = 32;

/// The S3 XML namespace, put on the root of request bodies.
const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Errors of the S3 XML parsers and body builders.
///
/// Parser variants name the element that was missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum S3XmlError {
    /// The body is not UTF-8.
    #[error("response body is not UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not well-formed XML.
    #[error("malformed XML at byte {position}: {message}")]
    Malformed {
        /// Byte offset where the problem was found.
        position: u64,
        /// What is wrong.
        message: String,
    },
    /// The body holds no element at all (for example an empty body).
    #[error("response body holds no XML element")]
    NoRootElement,
    /// The root element is not the one this response should have.
    #[error("expected a <{expected}> document, found <{found}>")]
    UnexpectedRoot {
        /// Root element the parser expects.
        expected: &'static str,
        /// Root element found.
        found: String,
    },
    /// A required element is absent.
    #[error("<{parent}> has no <{element}> element")]
    MissingElement {
        /// The element that should contain it.
        parent: String,
        /// The missing element.
        element: &'static str,
    },
    /// An element's text is not a valid value of its type.
    #[error("<{element}> holds {value:?}, which is not {expected}")]
    InvalidValue {
        /// The element.
        element: &'static str,
        /// Its text.
        value: String,
        /// What it should have been.
        expected: &'static str,
    },
    /// The body is an S3 `<Error>` document, possibly sent with status 200.
    #[error("S3 returned an error document: {0}")]
    ErrorDocument(Box<S3ErrorResponse>),
    /// `DeleteObjects` takes 1 to 1000 objects.
    #[error("DeleteObjects takes 1 to 1000 objects, got {count}")]
    InvalidObjectCount {
        /// Number of objects given.
        count: usize,
    },
    /// `CompleteMultipartUpload` needs at least one part.
    #[error("CompleteMultipartUpload needs at least one part")]
    NoParts,
    /// A part number is outside 1..=10000.
    #[error("part number {part_number} is outside 1..=10000")]
    InvalidPartNumber {
        /// The part number given.
        part_number: u32,
    },
    /// Part numbers are not strictly ascending.
    #[error("part numbers must be strictly ascending: {part_number} follows {previous}")]
    PartsNotAscending {
        /// The preceding part number.
        previous: u32,
        /// The offending part number.
        part_number: u32,
    },
    /// A value holds a character that XML 1.0 cannot represent at all
    /// (a control character other than tab, line feed and carriage return).
    #[error("{field} {value:?} holds a character that XML 1.0 cannot carry")]
    UnrepresentableCharacter {
        /// Which value (`Key`, `VersionId`, `ETag`).
        field: &'static str,
        /// The value.
        value: String,
    },
}

/// An element: local name (namespace prefix dropped), concatenated text
/// (entities resolved, not trimmed) and child elements. Attributes are not
/// needed by any S3 response we read.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) text: String,
    pub(super) children: Vec<Self>,
}

fn local_name(start: &BytesStart<'_>) -> String {
    start.local_name().as_ref().to_owned()
}

/// The elements still open while reading, and the finished root.
#[derive(Default)]
struct TreeBuilder {
    open: Vec<Node>,
    root: Option<Node>,
}

impl TreeBuilder {
    /// Attaches a finished element to its parent, or makes it the root.
    fn finish(&mut self, node: Node) -> Result<(), String> {
        if let Some(parent) = self.open.last_mut() {
            parent.children.push(node);
            Ok(())
        } else if self.root.is_none() {
            self.root = Some(node);
            Ok(())
        } else {
            Err("second root element".to_owned())
        }
    }

    fn start(&mut self, name: String) -> Result<(), String> {
        if self.root.is_some() {
            return Err("second root element".to_owned());
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        self.open.push(Node { name, ..Node::default() });
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        let node = self.open.pop().ok_or_else(|| "unmatched end tag".to_owned())?;
        self.finish(node)
    }

    /// Appends character data to the open element; only whitespace may
    /// stand outside the root.
    fn text(&mut self, text: &str, what: &str) -> Result<(), String> {
        match self.open.last_mut() {
            Some(top) => {
                top.text.push_str(text);
                Ok(())
            }
            None if what == "text" && text.trim().is_empty() => Ok(()),
            None => Err(format!("{what} outside the root element")),
        }
    }

    /// Handles one reader event; `Ok(false)` at the end of the input.
    fn event(&mut self, event: Event<'_>) -> Result<bool, String> {
        match event {
            Event::Start(start) => self.start(local_name(&start))?,
            Event::Empty(start) => self.finish(Node { name: local_name(&start), ..Node::default() })?,
            Event::End(_) => self.end()?,
            Event::Text(t) => self.text(&t.xml10_content(), "text")?,
            Event::CData(c) => self.text(&c.xml10_content(), "CDATA")?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(ch) => ch.to_string(),
                    None => {
                        resolve_predefined_entity(&r).ok_or_else(|| format!("unknown entity &{};", &*r))?.to_owned()
                    }
                };
                self.text(&resolved, "reference")?;
            }
            Event::Eof => {
                if let Some(open) = self.open.last() {
                    return Err(format!("document ends inside <{}>", open.name));
                }
                return Ok(false);
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
        Ok(true)
    }
}

/// Reads a whole document into a [`Node`] tree and returns its root.
pub(super) fn parse_document(body: &[u8]) -> Result<Node, S3XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| S3XmlError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut tree = TreeBuilder::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| S3XmlError::Malformed { position: reader.error_position(), message: e.to_string() })?;
        match tree.event(event) {
            Ok(true) => {}
            Ok(false) => break,
            Err(message) => {
                return Err(S3XmlError::Malformed { position: reader.buffer_position(), message });
            }
        }
    }
    tree.root.ok_or(S3XmlError::NoRootElement)
}

/// Parses `body` and checks that its root is `expected`; an `<Error>` root
/// becomes [`S3XmlError::ErrorDocument`].
pub(super) fn parse_root(body: &[u8], expected: &'static [&'static str]) -> Result<Node, S3XmlError> {
    let root = parse_document(body)?;
    if expected.contains(&root.name.as_str()) {
        Ok(root)
    } else if root.name == "Error" {
        Err(S3XmlError::ErrorDocument(Box::new(error::from_node(&root)?)))
    } else {
        Err(S3XmlError::UnexpectedRoot { expected: expected[0], found: root.name })
    }
}

impl Node {
    /// The first child named `name`.
    pub(super) fn child(&self, name: &str) -> Option<&Self> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children named `name`, in document order.
    pub(super) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Self> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child named `name`, if present (possibly empty).
    pub(super) fn opt_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Text of the first child named `name`, `None` when absent or empty.
    pub(super) fn opt_nonempty(&self, name: &str) -> Option<String> {
        self.opt_text(name).filter(|t| !t.is_empty()).map(str::to_owned)
    }

    /// Text of the required child `name`.
    pub(super) fn req_text(&self, name: &'static str) -> Result<&str, S3XmlError> {
        self.opt_text(name).ok_or_else(|| self.missing(name))
    }

    pub(super) fn missing(&self, element: &'static str) -> S3XmlError {
        S3XmlError::MissingElement { parent: self.name.clone(), element }
    }

    pub(super) fn req_u64(&self, name: &'static str) -> Result<u64, S3XmlError> {
        parse_u64(name, self.req_text(name)?)
    }

    pub(super) fn opt_u64(&self, name: &'static str) -> Result<Option<u64>, S3XmlError> {
        self.opt_text(name).map(|t| parse_u64(name, t)).transpose()
    }

    pub(super) fn req_bool(&self, name: &'static str) -> Result<bool, S3XmlError> {
        parse_bool(name, self.req_text(name)?)
    }

    pub(super) fn opt_bool(&self, name: &'static str) -> Result<Option<bool>, S3XmlError> {
        self.opt_text(name).map(|t| parse_bool(name, t)).transpose()
    }

    /// Required ISO 8601 timestamp, as unix seconds.
    pub(super) fn req_time(&self, name: &'static str) -> Result<i64, S3XmlError> {
        let text = self.req_text(name)?;
        parse_iso8601(text).ok_or_else(|| invalid(name, text, "an ISO 8601 UTC timestamp"))
    }
}

fn invalid(element: &'static str, value: &str, expected: &'static str) -> S3XmlError {
    S3XmlError::InvalidValue { element, value: value.to_owned(), expected }
}

fn parse_u64(element: &'static str, text: &str) -> Result<u64, S3XmlError> {
    text.trim().parse().map_err(|_| invalid(element, text, "a non-negative integer"))
}

fn parse_bool(element: &'static str, text: &str) -> Result<bool, S3XmlError> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(element, text, "true or false")),
    }
}

/// Whether a listing says its keys are URL-encoded (`<EncodingType>url`).
pub(super) fn is_url_encoded(root: &Node) -> bool {
    root.opt_text("EncodingType").is_some_and(|t| t.trim().eq_ignore_ascii_case("url"))
}

/// A key-like value, URL-decoded (form style, `+` is a space) when the
/// listing was requested with `encoding-type=url`.
pub(super) fn decode_value(element: &'static str, text: &str, url_encoded: bool) -> Result<String, S3XmlError> {
    if url_encoded {
        form_decode_strict(text).ok_or_else(|| invalid(element, text, "URL-encoded UTF-8"))
    } else {
        Ok(text.to_owned())
    }
}

/// An object key, decoded like [`decode_value`], except that a URL-encoded key
/// whose bytes are not UTF-8 (S3 stores any bytes) does not fail the page: it
/// comes back lossily (U+FFFD for each bad sequence) with its bytes.
pub(super) fn decode_key(text: &str, url_encoded: bool) -> Result<(String, Option<Vec<u8>>), S3XmlError> {
    if !url_encoded {
        return Ok((text.to_owned(), None));
    }
    let bytes = form_decode_bytes(text).ok_or_else(|| invalid("Key", text, "URL-encoded UTF-8"))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok((s, None)),
        Err(e) => Ok((String::from_utf8_lossy(e.as_bytes()).into_owned(), Some(e.into_bytes()))),
    }
}

/// Optional key-like child, decoded; empty text counts as absent.
pub(super) fn opt_decoded(node: &Node, element: &'static str, url_encoded: bool) -> Result<Option<String>, S3XmlError> {
    node.opt_text(element).filter(|t| !t.is_empty()).map(|t| decode_value(element, t, url_encoded)).transpose()
}

/// `<CommonPrefixes><Prefix>` values of a listing, decoded.
pub(super) fn common_prefixes(root: &Node, url_encoded: bool) -> Result<Vec<String>, S3XmlError> {
    root.children_named("CommonPrefixes")
        .map(|cp| decode_value("Prefix", cp.req_text("Prefix")?, url_encoded))
        .collect()
}

/// Appends `value` escaped as XML 1.0 character data. `\r`, `\n` and `\t`
/// become character references so that they survive end-of-line
/// normalisation; other control characters cannot be carried at all.
pub(super) fn push_escaped(out: &mut String, field: &'static str, value: &str) -> Result<(), S3XmlError> {
    for ch in value.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                return Err(S3XmlError::UnrepresentableCharacter { field, value: value.to_owned() });
            }
            c => out.push(c),
        }
    }
    Ok(())
}

/// Appends `<tag>escaped value</tag>`.
pub(super) fn push_element(out: &mut String, tag: &'static str, value: &str) -> Result<(), S3XmlError> {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    push_escaped(out, tag, value)?;
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
    Ok(())
}

/// Start of a request body: XML declaration and the namespaced root tag.
pub(super) fn open_body(root: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{S3_NAMESPACE}\">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_resolves_entities_and_keeps_whitespace() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- comment -->
<R xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><A> a &amp; b &lt;&#13;&#x0A;&quot;&apos; </A><s3:B xmlns:s3="x"/><C><![CDATA[<raw>]]></C></R>"#;
        let root = parse_document(xml).unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(root.opt_text("A"), Some(" a & b <\r\n\"' "));
        assert_eq!(root.opt_text("B"), Some(""));
        assert_eq!(root.opt_text("C"), Some("<raw>"));
    }

    #[test]
    fn malformed_documents_are_reported() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "no root"),
            (b"   \n", "no root"),
            (b"<A><B></A>", "mismatch"),
            (b"<A><B>text</B>", "ends inside"),
            (b"<A></A><B/>", "second root"),
            (b"<A>&bogus;</A>", "unknown entity"),
            (b"hello", "text outside"),
            (b"<A>\xff</A>", "utf-8"),
        ];
        for (xml, what) in cases {
            let err = parse_document(xml).unwrap_err();
            let msg = err.to_string().to_lowercase();
            let ok = match what {
                "no root" => err == S3XmlError::NoRootElement,
                "utf-8" => matches!(err, S3XmlError::NotUtf8 { offset: 3 }),
                _ => matches!(err, S3XmlError::Malformed { .. }),
            };
            assert!(ok, "{what}: {err:?}");
            assert!(!msg.is_empty());
        }
        let deep = "<a>".repeat(100_000);
        let err = parse_document(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 32"), "{err}");
        let ok = format!("{}{}", "<a>".repeat(32), "</a>".repeat(32));
        assert!(parse_document(ok.as_bytes()).is_ok());
        let err = parse_document(b"<A><B>text</B>").unwrap_err();
        assert!(err.to_string().contains("document ends inside <A>"), "{err}");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_escaped(&mut s, "Key", "a&b<c>d\"e'f\rg\nh\ti€").unwrap();
        assert_eq!(s, "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;g&#10;h&#9;i€");
        let err = push_escaped(&mut String::new(), "Key", "bell\u{7}").unwrap_err();
        assert!(matches!(err, S3XmlError::UnrepresentableCharacter { field: "Key", .. }));
    }
}
