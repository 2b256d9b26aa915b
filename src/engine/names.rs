//! Hostile names: checks remote paths before writing them locally; escapes names for logs. Pure: no IO, no async.
//!
//! Imports only std and thiserror.
//!
//! A remote listing is untrusted input. On PULL every listed path is joined to the local root, so
//! [`check_remote_path`] refuses anything that could escape it or that the local file system
//! cannot hold. [`escape_for_log`] turns any bytes into one line of valid UTF-8, and [`cut_utf8`]
//! finds where a log read may end without splitting a character (`Job.ReadLog`).

use std::fmt::Write as _;

use thiserror::Error;

/// The longest segment (file or folder name) accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The longest relative path accepted, in bytes (Linux `PATH_MAX`). The executor must still check
/// the joined local path, which is longer by the root.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a remote path is refused. Each variant carries the path; `Display` shows it escaped with
/// [`escape_for_log`], e.g. `"../etc/passwd": contains a ".." segment`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The path is empty.
    #[error("\"\": the path is empty")]
    Empty,
    /// The path contains a NUL byte.
    #[error("\"{}\": contains a NUL byte", shown(.path))]
    Nul {
        /// The refused path.
        path: String,
    },
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("\"{}\": is {len} bytes long, more than {MAX_PATH_BYTES}", shown(.path))]
    PathTooLong {
        /// The refused path.
        path: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The path starts with `/`.
    #[error("\"{}\": starts with '/'", shown(.path))]
    Absolute {
        /// The refused path.
        path: String,
    },
    /// The path ends with `/`.
    #[error("\"{}\": ends with '/'", shown(.path))]
    TrailingSlash {
        /// The refused path.
        path: String,
    },
    /// The path contains `//`.
    #[error("\"{}\": contains an empty segment (\"//\")", shown(.path))]
    EmptySegment {
        /// The refused path.
        path: String,
    },
    /// A segment is `.`.
    #[error("\"{}\": contains a \".\" segment", shown(.path))]
    DotSegment {
        /// The refused path.
        path: String,
    },
    /// A segment is `..`.
    #[error("\"{}\": contains a \"..\" segment", shown(.path))]
    DotDotSegment {
        /// The refused path.
        path: String,
    },
    /// A segment is longer than [`MAX_SEGMENT_BYTES`].
    #[error("\"{}\": has a segment of {len} bytes, more than {MAX_SEGMENT_BYTES}", shown(.path))]
    SegmentTooLong {
        /// The refused path.
        path: String,
        /// The length of the first too-long segment, in bytes.
        len: usize,
    },
}

/// How a refused path is shown in an error: escaped, and cut to keep messages short.
fn shown(path: &str) -> String {
    const SHOWN_BYTES: usize = 200;
    let bytes = path.as_bytes();
    if bytes.len() <= SHOWN_BYTES {
        escape_for_log(bytes)
    } else {
        let mut out = escape_for_log(&bytes[..cut_utf8(bytes, SHOWN_BYTES)]);
        out.push('…');
        out
    }
}

/// Checks a path from a remote listing that will be written beneath the local root on PULL.
///
/// Accepts a relative `/`-separated path whose segments are non-empty, not `.` or `..`, and at
/// most [`MAX_SEGMENT_BYTES`] bytes, with no NUL and at most [`MAX_PATH_BYTES`] bytes in all.
/// Everything else in a name (spaces, backslashes, control characters, any Unicode) is allowed:
/// Linux stores it, and logs escape it.
///
/// # Errors
///
/// [`NameError`] naming the first problem found, checked in this order: empty, NUL, too long,
/// leading `/`, trailing `/`, then per segment from the left: empty, `.`, `..`, too long.
pub fn check_remote_path(path: &str) -> Result<(), NameError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.contains('\0') {
        return Err(NameError::Nul { path: owned() });
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(NameError::PathTooLong { path: owned(), len: path.len() });
    }
    if path.starts_with('/') {
        return Err(NameError::Absolute { path: owned() });
    }
    if path.ends_with('/') {
        return Err(NameError::TrailingSlash { path: owned() });
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(NameError::EmptySegment { path: owned() }),
            "." => return Err(NameError::DotSegment { path: owned() }),
            ".." => return Err(NameError::DotDotSegment { path: owned() }),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(NameError::SegmentTooLong { path: owned(), len: s.len() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Makes any bytes (a file name, a line of tool output) safe for a one-line log record.
///
/// Valid UTF-8 is kept as it is, except ASCII control characters (NUL, newline, tab, ESC, DEL,
/// ...), which become `\xNN` (two lowercase hex digits). Bytes that are not valid UTF-8 become
/// `\xNN` each. A backslash stays a single backslash, so the escaping cannot be undone exactly;
/// it is meant for reading, not parsing.
#[must_use]
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_ascii_control() {
                push_hex(&mut out, c as u8);
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\x{b:02x}");
}

/// The largest length `n <= max` (and `<= s.len()`) such that `s[..n]` does not end inside a
/// UTF-8 character: `n` is `max` unless a character starting before `max` continues past it, or
/// is left unfinished at the end of `s`; then `n` is the start of that character.
///
/// For `Job.ReadLog`: read up to `max` bytes from the log into `s`, then send `s[..n]` and go on
/// from `offset + n`. `cut_utf8(&buf, buf.len())` drops a character split by the end of the read.
/// Bytes that are not UTF-8 (stray continuation bytes) are not characters, so they never pull the
/// cut back; a lead byte pulls it back at most 3 bytes. When `max` is smaller than the first
/// character, the result is 0: the caller must then read more to make progress.
#[must_use]
pub fn cut_utf8(s: &[u8], max: usize) -> usize {
    let max = max.min(s.len());
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    if s.get(max).is_some_and(|&b| !is_continuation(b)) {
        return max;
    }
    // `max` is at the end of `s` or before a continuation byte: find the lead byte of the
    // character it may be inside, at most three bytes back.
    let Some(start) = (max.saturating_sub(3)..max).rev().find(|&n| !is_continuation(s[n])) else {
        return max;
    };
    let len = match s[start] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    if start + len > max { start } else { max }
}
