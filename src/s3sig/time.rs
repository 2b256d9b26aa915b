//! Pure UTC calendar arithmetic: the `SigV4` `YYYYMMDDTHHMMSSZ` date from a caller-supplied `SystemTime`, and ISO 8601 timestamps from S3 XML to unix seconds; may import only std and never reads the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds of 9999-12-31T23:59:59Z, the last instant a 4-digit year can hold.
const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// The signing time in the two forms `SigV4` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AmzDate {
    /// `YYYYMMDDTHHMMSSZ`, the `x-amz-date` value.
    pub(super) timestamp: String,
    /// `YYYYMMDD`, the date of the credential scope.
    pub(super) date: String,
}

impl AmzDate {
    /// Formats `time` in UTC; `None` before 1970 or after year 9999.
    pub(super) fn from_system_time(time: SystemTime) -> Option<Self> {
        let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
        if secs > MAX_UNIX_SECONDS {
            return None;
        }
        let secs = i64::try_from(secs).ok()?;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let date = format!("{y:04}{m:02}{d:02}");
        let timestamp = format!("{date}T{hh:02}{mm:02}{ss:02}Z");
        Some(Self { timestamp, date })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
const fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

const fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

const fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits from the front of `s`.
fn take_digits(s: &mut &[u8], n: usize) -> Option<i64> {
    if s.len() < n {
        return None;
    }
    let (head, tail) = s.split_at(n);
    let mut v = 0_i64;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(b - b'0');
    }
    *s = tail;
    Some(v)
}

fn take_byte(s: &mut &[u8], allowed: &[u8]) -> Option<u8> {
    let (&first, rest) = s.split_first()?;
    if allowed.contains(&first) {
        *s = rest;
        Some(first)
    } else {
        None
    }
}

/// Parses an ISO 8601 / RFC 3339 timestamp as S3 writes it
/// (`2009-10-12T17:50:30.000Z`) into unix seconds.
///
/// Accepts any number of fractional digits (truncated), `Z` or a numeric
/// `±HH:MM` / `±HHMM` offset, and surrounding whitespace. Returns `None` for
/// anything else, including impossible dates such as February 30.
pub(super) fn parse_iso8601(s: &str) -> Option<i64> {
    let mut s = s.trim().as_bytes();
    let year = take_digits(&mut s, 4)?;
    take_byte(&mut s, b"-")?;
    let month = take_digits(&mut s, 2)?;
    take_byte(&mut s, b"-")?;
    let day = take_digits(&mut s, 2)?;
    take_byte(&mut s, b"Tt")?;
    let hour = take_digits(&mut s, 2)?;
    take_byte(&mut s, b":")?;
    let minute = take_digits(&mut s, 2)?;
    take_byte(&mut s, b":")?;
    let second = take_digits(&mut s, 2)?;
    if take_byte(&mut s, b".").is_some() {
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        s = &s[digits..];
    }
    let offset = match take_byte(&mut s, b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = take_digits(&mut s, 2)?;
            take_byte(&mut s, b":");
            let om = take_digits(&mut s, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if sign == b'-' { -off } else { off }
        }
    };
    if !s.is_empty()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_amz_dates() {
        let d = AmzDate::from_system_time(at(1_369_353_600)).unwrap();
        assert_eq!(d.timestamp, "20130524T000000Z");
        assert_eq!(d.date, "20130524");
        let d = AmzDate::from_system_time(at(1_440_938_160)).unwrap();
        assert_eq!(d.timestamp, "20150830T123600Z");
        let d = AmzDate::from_system_time(at(0)).unwrap();
        assert_eq!(d.timestamp, "19700101T000000Z");
        let d = AmzDate::from_system_time(at(951_825_599)).unwrap();
        assert_eq!(d.timestamp, "20000229T115959Z");
        // Sub-second parts are truncated.
        let d = AmzDate::from_system_time(at(0) + Duration::from_millis(999)).unwrap();
        assert_eq!(d.timestamp, "19700101T000000Z");
        assert!(AmzDate::from_system_time(UNIX_EPOCH - Duration::from_secs(1)).is_none());
        assert!(AmzDate::from_system_time(at(MAX_UNIX_SECONDS)).is_some());
        assert!(AmzDate::from_system_time(at(MAX_UNIX_SECONDS + 1)).is_none());
    }

    #[test]
    fn parses_s3_timestamps() {
        assert_eq!(parse_iso8601("2009-10-12T17:50:30.000Z"), Some(1_255_369_830));
        assert_eq!(parse_iso8601("2009-10-12T17:50:30Z"), Some(1_255_369_830));
        assert_eq!(parse_iso8601(" 2009-10-12T17:50:30.123456789Z\n"), Some(1_255_369_830));
        assert_eq!(parse_iso8601("2009-10-12T19:50:30+02:00"), Some(1_255_369_830));
        assert_eq!(parse_iso8601("2009-10-12T15:50:30-0200"), Some(1_255_369_830));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(parse_iso8601("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2009-10-12",
            "2009-10-12T17:50:30",
            "2009-10-12T17:50:30.Z",
            "2009-13-12T17:50:30Z",
            "2023-02-29T00:00:00Z",
            "2009-10-12T24:00:00Z",
            "2009-10-12T17:50:30Zjunk",
            "20091012T175030Z",
            "Mon, 12 Oct 2009 17:50:30 GMT",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000_i64, -1, 0, 1, 59, 60, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
