//! rclone's version suffixes in file names (`lib/version`: `name-v2001-02-03-040506-789.ext`),
//! which crypt keeps outside the encrypted part. May import: std.

/// Length of `-vYYYY-MM-DD-HHMMSS-mmm`.
const VERSION_LEN: usize = 23;

/// Go's `path.Ext` + rclone's `splitExt`: `base + ext == name`, the extension being the
/// last `.` after the last `/`; a name that is only an extension (".file") is all base.
fn split_ext(name: &str) -> (&str, &str) {
    let last_segment = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_segment..].rfind('.') {
        Some(i) if last_segment + i > 0 => name.split_at(last_segment + i),
        _ => (name, ""),
    }
}

const fn days_in_month(month: u32, year: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether `v` is `-vYYYY-MM-DD-HHMMSS-mmm` with a real date and time, as Go's
/// `time.Parse("-v2006-01-02-150405.000")` accepts it.
fn is_valid_version(v: &[u8]) -> bool {
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        v[r].iter().try_fold(0u32, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0')))
    };
    if v.len() != VERSION_LEN || &v[..2] != b"-v" || v[6] != b'-' || v[9] != b'-' || v[12] != b'-' || v[19] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec), Some(_ms)) =
        (digits(2..6), digits(7..9), digits(10..12), digits(13..15), digits(15..17), digits(17..19), digits(20..23))
    else {
        return false;
    };
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(month, year) && hour < 24 && min < 60 && sec < 60
}

/// rclone `version.Remove`: if `name`'s base (before the extension) ends in a valid version,
/// returns `(version, name without it)`.
pub(super) fn remove(name: &str) -> Option<(&str, String)> {
    let (base, ext) = split_ext(name);
    let start = base.len().checked_sub(VERSION_LEN)?;
    let version = base.get(start..)?;
    if !is_valid_version(version.as_bytes()) {
        return None;
    }
    Some((version, format!("{}{ext}", &base[..start])))
}

/// rclone `version.Add`: puts `version` before the extension of `name`.
pub(super) fn add(name: &str, version: &str) -> String {
    let (base, ext) = split_ext(name);
    format!("{base}{version}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_and_adds_like_rclone() {
        assert_eq!(
            remove("report-v2001-02-03-040506-789.txt"),
            Some(("-v2001-02-03-040506-789", "report.txt".to_string()))
        );
        assert_eq!(remove("report-v2001-02-03-040506-789"), Some(("-v2001-02-03-040506-789", "report".to_string())));
        assert_eq!(remove("-v2001-02-03-040506-789"), Some(("-v2001-02-03-040506-789", String::new())));
        // Not before the last extension.
        assert_eq!(remove("data-v2020-12-31-235959-000.tar.gz"), None);
        // Not a real date or time.
        assert_eq!(remove("x-v2001-02-29-040506-789"), None);
        assert_eq!(remove("x-v2001-13-01-040506-789"), None);
        assert_eq!(remove("x-v2001-01-01-240000-000"), None);
        assert!(remove("x-v2000-02-29-235959-999").is_some());
        assert_eq!(remove("x-v2001-02-03-040506.789"), None);
        assert_eq!(remove("short"), None);
        assert_eq!(remove("ééééééééééééééééééééééé"), None);
        assert_eq!(add("abc", "-v2001-02-03-040506-789"), "abc-v2001-02-03-040506-789");
        assert_eq!(add("42.LyJILN.NRN", "-v1"), "42.LyJILN-v1.NRN");
        assert_eq!(add(".file", "-v1"), ".file-v1");
        assert_eq!(add("d.x/f", "-v1"), "d.x/f-v1");
        assert_eq!(add("d/.f", "-v1"), "d/-v1.f");
    }
}
