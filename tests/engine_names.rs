//! Tests of hostile-name handling (`engine::names`).

use cloudsyncd::engine::names::{
    MAX_PATH_BYTES, MAX_SEGMENT_BYTES, NameError, check_remote_path, cut_utf8, escape_for_log,
};

/// (path, expected: None = accepted, Some(message) = refused with this Display)
const PATHS: &[(&str, Option<&str>)] = &[
    ("a", None),
    ("a/b", None),
    ("a b/c d", None),
    (".hidden", None),
    ("a/.hidden", None),
    ("...", None),
    ("..a", None),
    ("a..", None),
    ("a/..b/c", None),
    (".a./b", None),
    ("a\\b", None),
    ("..\\..\\etc", None), // a backslash is an ordinary character on Linux
    ("é/日本/😀", None),
    ("a\nb", None), // stored as is, escaped in logs
    ("-rf", None),
    ("~", None),
    ("", Some(r#""": the path is empty"#)),
    ("/", Some(r#""/": starts with '/'"#)),
    ("/etc/passwd", Some(r#""/etc/passwd": starts with '/'"#)),
    ("a/", Some(r#""a/": ends with '/'"#)),
    ("a/b/", Some(r#""a/b/": ends with '/'"#)),
    ("a//b", Some(r#""a//b": contains an empty segment ("//")"#)),
    (".", Some(r#"".": contains a "." segment"#)),
    ("./a", Some(r#""./a": contains a "." segment"#)),
    ("a/./b", Some(r#""a/./b": contains a "." segment"#)),
    ("a/.", Some(r#""a/.": contains a "." segment"#)),
    ("..", Some(r#""..": contains a ".." segment"#)),
    ("../etc/passwd", Some(r#""../etc/passwd": contains a ".." segment"#)),
    ("a/../../b", Some(r#""a/../../b": contains a ".." segment"#)),
    ("a/..", Some(r#""a/..": contains a ".." segment"#)),
    ("a\0b", Some(r#""a\x00b": contains a NUL byte"#)),
    ("/\0", Some(r#""/\x00": contains a NUL byte"#)), // NUL is checked first
    ("\0", Some(r#""\x00": contains a NUL byte"#)),
    ("a\n/../b", Some(r#""a\x0a/../b": contains a ".." segment"#)), // escaped in the message
    ("a/./../b", Some(r#""a/./../b": contains a "." segment"#)),    // the first problem from the left
];

#[test]
fn remote_path_table() {
    let mut failures = Vec::new();
    for &(path, want) in PATHS {
        let got = check_remote_path(path).err().map(|e| e.to_string());
        if got.as_deref() != want {
            failures.push(format!("{path:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), PATHS.len(), failures.join("\n"));
}

#[test]
fn remote_path_lengths() {
    let segment = "s".repeat(MAX_SEGMENT_BYTES);
    assert_eq!(check_remote_path(&segment), Ok(()));
    assert_eq!(check_remote_path(&format!("a/{segment}/b")), Ok(()));
    let long = "s".repeat(MAX_SEGMENT_BYTES + 1);
    assert_eq!(
        check_remote_path(&format!("a/{long}")),
        Err(NameError::SegmentTooLong { path: format!("a/{long}"), len: 256 })
    );
    // Bytes, not characters: 127 × "é" is 254 bytes, 128 × is 256.
    assert_eq!(check_remote_path(&"é".repeat(127)), Ok(()));
    assert!(matches!(check_remote_path(&"é".repeat(128)), Err(NameError::SegmentTooLong { len: 256, .. })));

    // 17 segments of 240 bytes and 16 slashes: 4096 bytes in all.
    let max = vec!["s".repeat(240); 17].join("/");
    assert_eq!(max.len(), MAX_PATH_BYTES);
    assert_eq!(check_remote_path(&max), Ok(()));
    let over = max + "b";
    assert_eq!(check_remote_path(&over), Err(NameError::PathTooLong { path: over.clone(), len: 4097 }));

    // Long paths are cut in messages, on a character boundary.
    let message = check_remote_path(&format!("{}/../{}", "é".repeat(120), "x".repeat(200))).unwrap_err().to_string();
    assert!(message.starts_with(&format!("\"{}…\": contains a \"..\" segment", "é".repeat(100))), "{message}");
}

/// (bytes, expected log text)
const ESCAPES: &[(&[u8], &str)] = &[
    (b"", ""),
    (b"plain name.txt", "plain name.txt"),
    (b"a\nb", r"a\x0ab"),
    (b"\r\n", r"\x0d\x0a"),
    (b"\0", r"\x00"),
    (b"nul\0in name", r"nul\x00in name"),
    (b"\t", r"\x09"),
    (b"\x1b[31mred", r"\x1b[31mred"),
    (b"\x7f", r"\x7f"),
    (b"\x01\x1f", r"\x01\x1f"),
    ("é".as_bytes(), "é"),
    ("日本語".as_bytes(), "日本語"),
    ("😀".as_bytes(), "😀"),
    ("\u{85}".as_bytes(), "\u{85}"), // valid UTF-8 that is not ASCII is kept
    (b"a\\b", r"a\b"),               // a backslash stays one backslash
    (b"\\x41", r"\x41"),
    (b"\xff", r"\xff"),
    (b"\xc3", r"\xc3"), // truncated sequence
    (b"\xc3(", r"\xc3("),
    (b"\xe2\x82", r"\xe2\x82"),
    (b"\xed\xa0\x80", r"\xed\xa0\x80"), // an encoded surrogate is not UTF-8
    (b"\xc0\xaf", r"\xc0\xaf"),         // overlong '/'
    (b"\x80", r"\x80"),
    (b"ok\xffthen \xc3\xa9", r"ok\xffthen é"),
    (b"\xf4\x90\x80\x80", r"\xf4\x90\x80\x80"), // above U+10FFFF
];

#[test]
fn escape_table() {
    for &(bytes, want) in ESCAPES {
        let got = escape_for_log(bytes);
        assert_eq!(got, want, "{bytes:?}");
        assert!(!got.chars().any(|c| c.is_ascii_control()), "{got:?}");
    }
}

#[test]
fn escape_keeps_every_non_control_char() {
    for c in ['\u{20}', '~', '\u{a0}', '\u{fffd}', '\u{10ffff}', '\u{202e}'] {
        let s = c.to_string();
        assert_eq!(escape_for_log(s.as_bytes()), s);
    }
    for b in (0u8..0x20).chain([0x7f]) {
        assert_eq!(escape_for_log(&[b]), format!("\\x{b:02x}"));
    }
}

/// (bytes, max, expected cut)
const CUTS: &[(&[u8], usize, usize)] = &[
    (b"", 0, 0),
    (b"", 5, 0),
    (b"abc", 0, 0),
    (b"abc", 2, 2),
    (b"abc", 3, 3),
    (b"abc", 10, 3),
    ("é".as_bytes(), 1, 0),
    ("é".as_bytes(), 2, 2),
    ("aé".as_bytes(), 2, 1),
    ("aé".as_bytes(), 3, 3),
    ("€".as_bytes(), 1, 0),
    ("€".as_bytes(), 2, 0),
    ("€x".as_bytes(), 3, 3),
    ("😀".as_bytes(), 3, 0),
    ("a😀".as_bytes(), 4, 1),
    ("😀x".as_bytes(), 4, 4),
    (b"a\x80b", 2, 2),                   // a stray continuation byte is not a character
    (b"\x80\x80\x80\x80\x80\x80", 4, 4), // no lead byte in reach
    (b"\xe2\x82", 1, 0),                 // truncated character at the end
    (b"\xc3\xa9\xa9", 2, 2),             // the extra continuation byte is not part of 'é'
    ("é".as_bytes(), 10, 2),             // max past the end: the whole text
    (b"ab\xe2\x82", 4, 2),               // a character split by the end of the buffer is dropped
    (b"ab\xe2\x82", 10, 2),
    (b"ab\xf0\x9f\x98", 5, 2),
    ("ab😀".as_bytes(), 6, 6),
    (b"ab\x80", 3, 3), // a stray continuation byte at the end is not a split character
    (b"\xe2", 1, 0),   // nothing but a split character: no progress, the caller reads more
];

#[test]
fn cut_table() {
    for &(bytes, max, want) in CUTS {
        assert_eq!(cut_utf8(bytes, max), want, "{bytes:?} max {max}");
    }
}

#[test]
fn cut_is_the_last_boundary_for_valid_utf8() {
    // Also as ReadLog uses it: the whole buffer, possibly ending inside a character.
    let text = "aé€😀 日本\n\u{85}x";
    for max in 0..=text.len() + 2 {
        let got = cut_utf8(text.as_bytes(), max);
        let want = (0..=max.min(text.len())).rev().find(|&n| text.is_char_boundary(n)).unwrap();
        assert_eq!(got, want, "max {max}");
        let buf = &text.as_bytes()[..max.min(text.len())];
        assert_eq!(cut_utf8(buf, buf.len()), want, "buffer of {max}");
    }
}
