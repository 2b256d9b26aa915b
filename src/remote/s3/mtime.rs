//! rclone's modification time in S3 user metadata (`X-Amz-Meta-Mtime`): pure formatting and parsing; may import only std.
//!
//! rclone (through `swift.TimeToFloatString`) writes the mtime as unix seconds
//! in fixed-point decimal with up to nine fractional digits, trailing zeros and
//! a bare trailing `.` dropped: `1700000000.123456789`, `1700000000.5`,
//! `1700000000`, `0.000000001`, and `-1.5` before 1970. It reads the value
//! back exactly (no float rounding): the fraction is cut or padded to nine
//! digits and joined to the integer part. Checked against rclone 1.60.1 on
//! s3s-fs (see `tests/s3_client.rs`).

/// The user metadata name (`x-amz-meta-<name>`) rclone keeps the mtime in.
pub const MTIME_META: &str = "mtime";

/// The header carrying the mtime, lower-case as we send it.
pub const MTIME_HEADER: &str = "x-amz-meta-mtime";

const NANOS: u128 = 1_000_000_000;

/// Formats nanoseconds since the unix epoch the way rclone writes them.
///
/// ```
/// use cloudsyncd::remote::s3::format_mtime;
/// assert_eq!(format_mtime(1_700_000_000_123_456_789), "1700000000.123456789");
/// assert_eq!(format_mtime(1_700_000_000_500_000_000), "1700000000.5");
/// assert_eq!(format_mtime(1_700_000_000_000_000_000), "1700000000");
/// assert_eq!(format_mtime(-1_500_000_000), "-1.5");
/// ```
#[must_use]
pub fn format_mtime(ns: i128) -> String {
    let abs = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    let (secs, frac) = (abs / NANOS, abs % NANOS);
    if frac == 0 {
        return format!("{sign}{secs}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{secs}.{}", digits.trim_end_matches('0'))
}

/// Parses an mtime written by rclone (or by [`format_mtime`]) into
/// nanoseconds since the unix epoch; `None` when it is not such a number.
///
/// Accepted: an optional sign, decimal digits, optionally `.` and more
/// digits (at least one digit in all). Fractional digits beyond the ninth
/// are dropped, as rclone does. Exponents, spaces and other characters are
/// refused.
///
/// ```
/// use cloudsyncd::remote::s3::parse_mtime;
/// assert_eq!(parse_mtime("1700000000.123456789"), Some(1_700_000_000_123_456_789));
/// assert_eq!(parse_mtime("1700000000.5"), Some(1_700_000_000_500_000_000));
/// assert_eq!(parse_mtime("-1.5"), Some(-1_500_000_000));
/// assert_eq!(parse_mtime("1e9"), None);
/// ```
#[must_use]
pub fn parse_mtime(s: &str) -> Option<i128> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    // 30 integer digits already exceed any time an i128 of nanoseconds holds.
    if int.len() > 30 {
        return None;
    }
    let secs: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut nanos: u128 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u128::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    let total = i128::try_from(secs.checked_mul(NANOS)?.checked_add(nanos)?).ok()?;
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_rclone() {
        let cases: [(i128, &str); 9] = [
            (0, "0"),
            (1, "0.000000001"),
            (500_000_000, "0.5"),
            (1_354_040_105_123_456_789, "1354040105.123456789"),
            (1_354_040_105_120_000_000, "1354040105.12"),
            (1_700_000_000_000_000_000, "1700000000"),
            (1_700_000_000_000_000_100, "1700000000.0000001"),
            (-1_500_000_000, "-1.5"),
            (-1, "-0.000000001"),
        ];
        for (ns, text) in cases {
            assert_eq!(format_mtime(ns), text, "{ns}");
            assert_eq!(parse_mtime(text), Some(ns), "{text}");
        }
    }

    #[test]
    fn parses_what_rclone_parses() {
        assert_eq!(parse_mtime("1.10"), Some(1_100_000_000));
        assert_eq!(parse_mtime("1."), Some(1_000_000_000));
        assert_eq!(parse_mtime(".5"), Some(500_000_000));
        assert_eq!(parse_mtime("+7"), Some(7_000_000_000));
        assert_eq!(parse_mtime("007"), Some(7_000_000_000));
        // Digits beyond nanoseconds are cut, not rounded.
        assert_eq!(parse_mtime("1.1234567899"), Some(1_123_456_789));
        assert_eq!(parse_mtime("-0.5"), Some(-500_000_000));
    }

    #[test]
    fn refuses_other_text() {
        for bad in
            ["", "-", "+", ".", "-.", "abc", "1e9", "1.2.3", " 1", "1 ", "1,5", "0x10", "1.5x", "--1", &"9".repeat(31)]
        {
            assert_eq!(parse_mtime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_extremes() {
        for ns in [i128::from(i64::MAX), i128::from(i64::MIN), 253_402_300_799_999_999_999, -62_135_596_800_000_000_001]
        {
            assert_eq!(parse_mtime(&format_mtime(ns)), Some(ns), "{ns}");
        }
    }
}
