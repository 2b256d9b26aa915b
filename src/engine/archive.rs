//! What a job says about archived objects (S3 GLACIER, DEEP_ARCHIVE) it met: they were neither
//! read nor deleted, so the job fails, and the user is told what to do (restore them, or set
//! `glacier_restore`) or, when restores were requested, when to run again. Pure: imports
//! `remote::{Archived, RestoreAsked}` and the job log's escaping.

use super::joblog::esc;
use crate::remote::{ARCHIVED_NOTE, Archived, RestoreAsked};

/// How many archived objects the job's error names (the job log names them all).
const SHOWN: usize = 5;

/// The job's error about `archived` objects, `None` when there were none.
#[must_use]
pub fn archive_problem(archived: &[Archived], restore_days: u32) -> Option<String> {
    if archived.is_empty() {
        return None;
    }
    let count = |f: fn(&RestoreAsked) -> bool| archived.iter().filter(|a| f(&a.restore)).count();
    let not_asked = count(|r| *r == RestoreAsked::No);
    let under_way = count(|r| matches!(r, RestoreAsked::Requested | RestoreAsked::InProgress));
    let failed = count(|r| matches!(r, RestoreAsked::Failed(_)));
    let shown: Vec<String> =
        archived.iter().take(SHOWN).map(|a| format!("{} ({})", esc(&a.path), a.storage_class)).collect();
    let mut msg = format!(
        "{} archived object(s) {ARCHIVED_NOTE} (see the job log): {}{}",
        archived.len(),
        shown.join(", "),
        if archived.len() > SHOWN { ", …" } else { "" }
    );
    if under_way > 0 {
        msg.push_str(&format!(
            "; restores are under way for {under_way}: run the task again when they are done, in about 5 hours \
             for GLACIER and 12 hours for DEEP_ARCHIVE (the restored copies stay readable for {restore_days} days)"
        ));
    }
    if not_asked > 0 {
        msg.push_str(&format!(
            "; {not_asked} not restored: restore them (for example `aws s3api restore-object`), or set the task \
             attribute glacier_restore so that a run requests the restores, then run the task again"
        ));
    }
    if failed > 0 {
        msg.push_str(&format!("; {failed} restore request(s) failed (see the job log); run the task again to retry"));
    }
    Some(msg)
}

/// Whether a job error is the listing's report of an archived object (told by
/// [`archive_problem`] instead).
#[must_use]
pub fn is_archive_error(error: &str) -> bool {
    error.contains(ARCHIVED_NOTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(path: &str, class: &str, restore: RestoreAsked) -> Archived {
        Archived { path: path.into(), storage_class: class.into(), restore }
    }

    #[test]
    fn none_is_no_problem() {
        assert_eq!(archive_problem(&[], 7), None);
    }

    #[test]
    fn says_what_to_do() {
        let m = archive_problem(&[a("x/cold.bin", "GLACIER", RestoreAsked::No)], 7).unwrap();
        assert!(m.starts_with("1 archived object(s) neither read nor deleted"), "{m}");
        assert!(m.contains("x/cold.bin (GLACIER)") && m.contains("set the task attribute glacier_restore"), "{m}");
        assert!(!m.contains("under way"), "{m}");
        assert!(is_archive_error(&format!("listing: source x: stored in GLACIER; {ARCHIVED_NOTE}")));
        assert!(!is_archive_error("listing: source x: connection reset"));
    }

    #[test]
    fn says_when_to_run_again() {
        let list: Vec<Archived> = (0..7)
            .map(|i| {
                a(
                    &format!("f{i}"),
                    "DEEP_ARCHIVE",
                    if i == 6 { RestoreAsked::Failed("503".into()) } else { RestoreAsked::Requested },
                )
            })
            .collect();
        let m = archive_problem(&list, 7).unwrap();
        assert!(m.contains("7 archived object(s)") && m.contains("f4 (DEEP_ARCHIVE), …"), "{m}");
        assert!(!m.contains("f5"), "{m}");
        assert!(m.contains("restores are under way for 6") && m.contains("12 hours"), "{m}");
        assert!(m.contains("1 restore request(s) failed"), "{m}");
        assert!(!m.contains("not restored"), "{m}");
    }
}
