//! Table tests for `cloudsyncd::schedule`: parsing, errors, normalised printing and next-run
//! computation in UTC and in zones with DST (system tzdb under /usr/share/zoneinfo).
//!
//! Expected instants were worked out by hand from the calendar and the zones' DST rules and
//! cross-checked with an independent minute-by-minute reference written in Python (zoneinfo);
//! every expected string carries the zone's real UTC offset at that instant.

use cloudsyncd::schedule::{CronError, DEFAULT_EXPRESSION, Field, Schedule};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

fn zone(name: &str) -> TimeZone {
    if name == "UTC" {
        return TimeZone::UTC;
    }
    TimeZone::get(name).unwrap_or_else(|e| panic!("time zone {name} not in the tzdb: {e}"))
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("bad timestamp {s:?} in table: {e}"))
}

/// (time zone, expression, after, the successive next runs; "never" = `None` from there on).
/// Each run after the first is computed from the previous expected run.
#[rustfmt::skip]
const NEXT_RUNS: &[(&str, &str, &str, &[&str])] = &[
    // --- basics in UTC
    ("UTC", "0 0 * * *", "2026-01-15T10:20:00Z",
        &["2026-01-16T00:00:00Z", "2026-01-17T00:00:00Z"]),
    ("UTC", "*/15 * * * *", "2026-01-15T10:07:30Z",
        &["2026-01-15T10:15:00Z", "2026-01-15T10:30:00Z", "2026-01-15T10:45:00Z", "2026-01-15T11:00:00Z"]),
    // strictly after: a run at exactly `after` is not returned again
    ("UTC", "*/15 * * * *", "2026-01-15T10:15:00Z",
        &["2026-01-15T10:30:00Z"]),
    // fractional seconds in `after`
    ("UTC", "5 * * * *", "2026-01-15T10:05:00.5Z",
        &["2026-01-15T11:05:00Z", "2026-01-15T12:05:00Z"]),
    ("UTC", "* * * * *", "2026-12-31T23:59:30Z",
        &["2027-01-01T00:00:00Z", "2027-01-01T00:01:00Z", "2027-01-01T00:02:00Z"]),
    // --- month ends: the 31st only in 31-day months, the 30th never in February
    ("UTC", "0 12 31 * *", "2026-04-01T00:00:00Z",
        &["2026-05-31T12:00:00Z", "2026-07-31T12:00:00Z", "2026-08-31T12:00:00Z",
          "2026-10-31T12:00:00Z", "2026-12-31T12:00:00Z", "2027-01-31T12:00:00Z"]),
    ("UTC", "0 0 30 * *", "2026-01-30T00:00:00Z",
        &["2026-03-30T00:00:00Z", "2026-04-30T00:00:00Z"]),
    // --- leap days
    ("UTC", "0 0 29 2 *", "2025-01-01T00:00:00Z",
        &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    ("UTC", "0 0 29 2 *", "2024-02-29T00:00:00Z",
        &["2028-02-29T00:00:00Z"]),
    // 2100 is not a leap year: eight years to the next 29 February
    ("UTC", "0 0 29 2 *", "2096-03-01T00:00:00Z",
        &["2104-02-29T00:00:00Z"]),
    // --- year rollover
    ("UTC", "59 23 31 12 *", "2026-12-31T23:59:00Z",
        &["2027-12-31T23:59:00Z"]),
    ("UTC", "0 0 1 1 *", "2026-06-01T00:00:00Z",
        &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
    ("UTC", "30 23 * * *", "2026-02-28T23:30:00Z",
        &["2026-03-01T23:30:00Z"]),
    // --- ranges with steps, N/STEP, lists
    ("UTC", "10-40/10 9-17/4 * * *", "2026-01-15T00:00:00Z",
        &["2026-01-15T09:10:00Z", "2026-01-15T09:20:00Z", "2026-01-15T09:30:00Z",
          "2026-01-15T09:40:00Z", "2026-01-15T13:10:00Z"]),
    ("UTC", "45/5 * * * *", "2026-01-15T10:50:00Z",
        &["2026-01-15T10:55:00Z", "2026-01-15T11:45:00Z", "2026-01-15T11:50:00Z"]),
    ("UTC", "0,30 8,12-13 * * *", "2026-01-15T07:00:00Z",
        &["2026-01-15T08:00:00Z", "2026-01-15T08:30:00Z", "2026-01-15T12:00:00Z",
          "2026-01-15T12:30:00Z", "2026-01-15T13:00:00Z", "2026-01-15T13:30:00Z",
          "2026-01-16T08:00:00Z"]),
    ("UTC", "0 0 1-10/3,25 * *", "2026-01-01T00:00:00Z",
        &["2026-01-04T00:00:00Z", "2026-01-07T00:00:00Z", "2026-01-10T00:00:00Z",
          "2026-01-25T00:00:00Z", "2026-02-01T00:00:00Z"]),
    ("UTC", "0 0 1 */4 *", "2026-01-01T00:00:00Z",
        &["2026-05-01T00:00:00Z", "2026-09-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    // --- names (any case); 2026-01-30 is a Friday, 2026-07-01 a Wednesday
    ("UTC", "0 9 * jan,jul mon-fri", "2026-01-30T10:00:00Z",
        &["2026-07-01T09:00:00Z", "2026-07-02T09:00:00Z", "2026-07-03T09:00:00Z",
          "2026-07-06T09:00:00Z"]),
    ("UTC", "0 6 * DEC Sat", "2026-12-01T00:00:00Z",
        &["2026-12-05T06:00:00Z", "2026-12-12T06:00:00Z", "2026-12-19T06:00:00Z",
          "2026-12-26T06:00:00Z", "2027-12-04T06:00:00Z"]),
    ("UTC", "0 0 1 Feb-Apr *", "2026-01-01T00:00:00Z",
        &["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z",
          "2027-02-01T00:00:00Z"]),
    // --- Sunday as 0, 7 and sun (2026-01-15 is a Thursday)
    ("UTC", "0 0 * * 0", "2026-01-15T00:00:00Z",
        &["2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"]),
    ("UTC", "0 0 * * 7", "2026-01-15T00:00:00Z",
        &["2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"]),
    ("UTC", "0 0 * * sun", "2026-01-15T00:00:00Z",
        &["2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z"]),
    ("UTC", "0 0 * * 5-7", "2026-01-15T12:00:00Z",
        &["2026-01-16T00:00:00Z", "2026-01-17T00:00:00Z", "2026-01-18T00:00:00Z",
          "2026-01-23T00:00:00Z"]),
    // --- Vixie day rule: both restricted = either (1st of the month or any Monday)
    ("UTC", "0 0 1 * mon", "2026-01-30T00:00:00Z",
        &["2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
          "2026-02-16T00:00:00Z", "2026-02-23T00:00:00Z", "2026-03-01T00:00:00Z",
          "2026-03-02T00:00:00Z"]),
    // day of month restricted, day of week `*`: only the day of month
    ("UTC", "0 0 1 * *", "2026-01-15T00:00:00Z",
        &["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
    // day of week restricted, day of month `*`: only the weekday
    ("UTC", "0 0 * * mon", "2026-01-30T00:00:00Z",
        &["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]),
    // a field starting with `*` is unrestricted for the rule, so both must match:
    // odd days that are Mondays
    ("UTC", "0 0 */2 * mon", "2026-01-01T00:00:00Z",
        &["2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z",
          "2026-02-23T00:00:00Z"]),
    // the 13th when it is a Sunday (`*/7` = 0 and 7)
    ("UTC", "0 0 13 * */7", "2026-01-01T00:00:00Z",
        &["2026-09-13T00:00:00Z", "2026-12-13T00:00:00Z"]),
    // 1-31 is restricted (does not start with `*`): every day, via the OR rule
    ("UTC", "0 0 1-31 * mon", "2026-01-15T12:00:00Z",
        &["2026-01-16T00:00:00Z", "2026-01-17T00:00:00Z"]),
    // --- schedules that never match
    ("UTC", "0 0 30 2 *", "2026-01-01T00:00:00Z", &["never"]),
    ("UTC", "0 0 31 2,4,6,9,11 *", "2026-01-01T00:00:00Z", &["never"]),
    ("America/New_York", "* * 31 apr *", "2026-01-01T00:00:00Z", &["never"]),
    // --- a fixed-offset zone from the tzdb (Etc/GMT+5 is UTC-5)
    ("Etc/GMT+5", "0 0 * * *", "2026-01-15T12:00:00Z",
        &["2026-01-16T00:00:00-05:00", "2026-01-17T00:00:00-05:00"]),
    // --- New York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT
    // 02:30 does not exist that day: runs at 03:00 EDT, the first valid minute after the gap
    ("America/New_York", "30 2 * * *", "2026-03-06T12:00:00-05:00",
        &["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("America/New_York", "0 2 * * *", "2026-03-07T12:00:00-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]),
    // 02:00, 02:30 (skipped) and 03:00 all land on 03:00 EDT: one run
    ("America/New_York", "*/30 * * * *", "2026-03-08T01:00:00-05:00",
        &["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]),
    ("America/New_York", "15 2,3 * * *", "2026-03-08T00:00:00-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00", "2026-03-09T02:15:00-04:00"]),
    // `after` just before the gap
    ("America/New_York", "59 2 * * *", "2026-03-08T01:59:30-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-09T02:59:00-04:00"]),
    // far future: the rule continues (second Sunday of March 2090 is the 12th)
    ("America/New_York", "30 2 * 3 *", "2090-03-11T12:00:00-05:00",
        &["2090-03-12T03:00:00-04:00", "2090-03-13T02:30:00-04:00"]),
    // --- New York, fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-01:59 happens twice
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00-04:00",
        &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    // the repeated hour runs once: nothing in the second pass
    ("America/New_York", "*/30 * * * *", "2026-11-01T00:15:00-04:00",
        &["2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
          "2026-11-01T02:00:00-05:00", "2026-11-01T02:30:00-05:00"]),
    // `after` inside the second pass
    ("America/New_York", "*/30 * * * *", "2026-11-01T01:10:00-05:00",
        &["2026-11-01T02:00:00-05:00"]),
    ("America/New_York", "59 1 * * *", "2026-11-01T01:59:00-04:00",
        &["2026-11-02T01:59:00-05:00"]),
    ("America/New_York", "0 2 * * *", "2026-10-31T12:00:00-04:00",
        &["2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"]),
    // --- Berlin, spring forward 2026-03-29 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00+01:00",
        &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("Europe/Berlin", "0 * * * *", "2026-03-29T00:30:00+01:00",
        &["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    // --- Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00+02:00",
        &["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("Europe/Berlin", "0 * * * *", "2026-10-25T01:30:00+02:00",
        &["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T04:00:00+01:00"]),
    // --- Lord Howe Island, 30-minute DST: ends 2026-04-05 02:00 +11 -> 01:30 +10:30,
    //     starts 2026-10-04 02:00 +10:30 -> 02:30 +11
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-04-05T01:20:00+11:00",
        &["2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T02:00:00+10:30",
          "2026-04-05T02:15:00+10:30"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T12:00:00+10:30",
        &["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    ("Australia/Lord_Howe", "45 2 * * *", "2026-10-03T12:00:00+10:30",
        &["2026-10-04T02:45:00+11:00", "2026-10-05T02:45:00+11:00"]),
    ("Australia/Lord_Howe", "*/15 * * * *", "2026-10-04T01:40:00+10:30",
        &["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]),
    // --- Sao Paulo 2018/19: DST began at midnight (00:00 -03 -> 01:00 -02), so that day had no
    //     midnight, and ended at midnight (00:00 -02 -> 23:00 -03 the evening before)
    ("America/Sao_Paulo", "0 0 * * *", "2018-11-03T12:00:00-03:00",
        &["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"]),
    ("America/Sao_Paulo", "30 23 * * *", "2019-02-16T12:00:00-02:00",
        &["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"]),
];

#[test]
fn next_runs_table() {
    let mut failures = Vec::new();
    for &(tz_name, expr, after, expected) in NEXT_RUNS {
        let tz = zone(tz_name);
        let schedule: Schedule = expr.parse().unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"));
        let mut cursor = ts(after);
        for &want in expected {
            let got = schedule.next_after(cursor, &tz);
            let want = (want != "never").then(|| ts(want));
            if got != want {
                let show = |t: Option<Timestamp>| {
                    t.map_or("None".to_owned(), |t| format!("{} ({t})", t.to_zoned_datetime(tz.clone())))
                };
                failures.push(format!(
                    "{tz_name} {expr:?} after {}: want {}, got {}",
                    cursor.to_zoned_datetime(tz.clone()),
                    show(want),
                    show(got)
                ));
                break;
            }
            match want {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), NEXT_RUNS.len(), failures.join("\n"));
}

/// (expression, the error message).
#[rustfmt::skip]
const PARSE_ERRORS: &[(&str, &str)] = &[
    // field count
    ("", "expected 5 cron fields, got 0"),
    ("   ", "expected 5 cron fields, got 0"),
    ("* * * *", "expected 5 cron fields, got 4"),
    ("0 0 * * * *", "expected 5 cron fields, got 6"),
    ("@daily", "expected 5 cron fields, got 1"),
    ("0 0 * * * /bin/true", "expected 5 cron fields, got 6"),
    // out of range
    ("61 * * * *", "minute: 61 is out of range 0-59"),
    ("60 * * * *", "minute: 60 is out of range 0-59"),
    ("0 24 * * *", "hour: 24 is out of range 0-23"),
    ("0 0 0 * *", "day of month: 0 is out of range 1-31"),
    ("0 0 32 * *", "day of month: 32 is out of range 1-31"),
    ("0 0 * 13 *", "month: 13 is out of range 1-12"),
    ("0 0 * 0 *", "month: 0 is out of range 1-12"),
    ("0 0 * * 8", "day of week: 8 is out of range 0-7"),
    ("0 0 * * 1-8", "day of week: 8 is out of range 0-7"),
    ("0-99 * * * *", "minute: 99 is out of range 0-59"),
    ("99999999999 * * * *", "minute: 99999999999 is out of range 0-59"),
    // names
    ("0 0 * * fro", "day of week: unknown name \"fro\""),
    ("0 0 * * monday", "day of week: unknown name \"monday\""),
    ("0 0 * janu *", "month: unknown name \"janu\""),
    ("0 0 * mon *", "month: unknown name \"mon\""),
    ("0 0 * * jan", "day of week: unknown name \"jan\""),
    ("abc * * * *", "minute: \"abc\" is not a number"),
    ("0 0 jan * *", "day of month: \"jan\" is not a number"),
    ("0 0 * * 5a", "day of week: \"5a\" is not a number"),
    ("*/x * * * *", "minute: \"x\" is not a number"),
    ("0 0 * */feb *", "month: \"feb\" is not a number"),
    // steps
    ("*/0 * * * *", "minute: step 0 is not allowed"),
    ("0 */0 * * *", "hour: step 0 is not allowed"),
    ("0 1-5/00 * * *", "hour: step 0 is not allowed"),
    ("*/60 * * * *", "minute: step 60 is out of range 1-59"),
    ("0 0 * * */8", "day of week: step 8 is out of range 1-7"),
    // backwards ranges
    ("0 0 20-10 * *", "day of month: range 20-10 is backwards"),
    ("0 0 * * fri-mon", "day of week: range fri-mon is backwards"),
    ("0 0 * dec-jan *", "month: range dec-jan is backwards"),
    // empty list items
    ("1,,2 * * * *", "minute: empty list item"),
    ("1, * * * *", "minute: empty list item"),
    ("0 ,1 * * *", "hour: empty list item"),
    // garbage characters
    ("5# * * * *", "minute: unexpected character '#' in \"5#\""),
    ("0 0 * * 1.5", "day of week: unexpected character '.' in \"1.5\""),
    ("0 0 ? * *", "day of month: unexpected character '?' in \"?\""),
    ("0 0 * * mön", "day of week: unexpected character 'ö' in \"mön\""),
    ("0 0 L * *", "day of month: \"L\" is not a number"),
    // malformed items
    ("1-2-3 * * * *", "minute: malformed item \"1-2-3\" (more than one '-')"),
    ("-5 * * * *", "minute: malformed item \"-5\" (missing range start)"),
    ("5- * * * *", "minute: malformed item \"5-\" (missing range end)"),
    ("*/ * * * *", "minute: malformed item \"*/\" (missing step after '/')"),
    ("/5 * * * *", "minute: malformed item \"/5\" (nothing before '/')"),
    ("*/5/2 * * * *", "minute: malformed item \"*/5/2\" (more than one '/')"),
    ("*-5 * * * *", "minute: malformed item \"*-5\" ('*' must stand alone or as */STEP)"),
    ("** * * * *", "minute: malformed item \"**\" ('*' must stand alone or as */STEP)"),
    ("*/-1 * * * *", "minute: malformed item \"*/-1\" (a step must be a plain number)"),
    // the first bad field, left to right, is reported
    ("61 0 0 * *", "minute: 61 is out of range 0-59"),
    ("0 0 0 13 *", "day of month: 0 is out of range 1-31"),
];

#[test]
fn parse_errors_table() {
    let mut failures = Vec::new();
    for &(expr, want) in PARSE_ERRORS {
        match Schedule::parse(expr) {
            Ok(s) => failures.push(format!("{expr:?}: want error {want:?}, parsed as {s}")),
            Err(e) if e.to_string() != want => {
                failures.push(format!("{expr:?}: want {want:?}, got {:?}", e.to_string()));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_are_structured() {
    assert_eq!(Schedule::parse("0 0 * * * *"), Err(CronError::FieldCount { got: 6 }));
    assert_eq!("0 */0 * * *".parse::<Schedule>(), Err(CronError::StepZero { field: Field::Hour }));
    assert_eq!(
        Schedule::parse("0 0 20-10 * *"),
        Err(CronError::Backwards { field: Field::DayOfMonth, range: "20-10".to_owned() })
    );
}

/// (expression, its normalised form); every normalised form must parse back to the same schedule.
#[rustfmt::skip]
const NORMALISED: &[(&str, &str)] = &[
    ("0 0 * * *", "0 0 * * *"),
    ("  0\t0  *  * *  ", "0 0 * * *"),
    ("*/15 9-17 * * mon-fri", "*/15 9-17 * * 1-5"),
    ("0,30 8,12-13 1,15 JAN-MAR sun,7", "*/30 8,12,13 1,15 1-3 0"),
    ("0 0 */2 * mon", "0 0 */2 * 1"),
    ("0 0 1-31 * mon", "0 0 1-31 * 1"),
    ("0 0 * * 0-7", "0 0 * * 0-6"),
    ("0 0 * * */2", "0 0 * * */2"),
    ("0 0 13 * */7", "0 0 13 * */7"),
    ("0 0 */10,5 * *", "0 0 */10,5 * *"),
    ("5/20 * * * *", "5,25,45 * * * *"),
    ("0-59 */6 * 1-12/1 *", "* */6 * * *"),
    ("0 0 1 */3 *", "0 0 1 */3 *"),
    ("59 23 31 12 7", "59 23 31 12 0"),
];

#[test]
fn normalised_display_table() {
    for &(expr, want) in NORMALISED {
        let schedule = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        assert_eq!(schedule.to_string(), want, "normalising {expr:?}");
        let again = Schedule::parse(want).unwrap_or_else(|e| panic!("{want:?}: {e}"));
        assert_eq!(again, schedule, "{want:?} should parse back to {expr:?}");
    }
}

#[test]
fn default_is_daily_at_midnight() {
    assert_eq!(DEFAULT_EXPRESSION, "0 0 * * *");
    assert_eq!(Schedule::default(), Schedule::parse("0 0 * * *").unwrap());
    assert_eq!(
        Schedule::default().next_after(ts("2026-05-05T13:00:00Z"), &TimeZone::UTC),
        Some(ts("2026-05-06T00:00:00Z"))
    );
}

/// (expression, wall-clock time, whether it matches).
#[rustfmt::skip]
const MATCHES: &[(&str, &str, bool)] = &[
    ("0 0 1 * mon", "2026-02-01T00:00", true),   // the 1st, a Sunday
    ("0 0 1 * mon", "2026-02-02T00:00", true),   // a Monday
    ("0 0 1 * mon", "2026-02-03T00:00", false),
    ("0 0 1 * mon", "2026-02-02T00:01", false),
    ("*/5 * * * *", "2026-02-02T10:25:59", true), // seconds are ignored
    ("0 0 * * 7", "2026-02-01T00:00", true),
];

#[test]
fn matches_table() {
    for &(expr, wall, want) in MATCHES {
        let schedule = Schedule::parse(expr).unwrap();
        let wall: DateTime = wall.parse().unwrap();
        assert_eq!(schedule.matches(wall), want, "{expr:?} at {wall}");
    }
}

/// Brute force: walks every UTC minute and fires where the rules say, then compares with
/// `next_after` over stretches around DST changes.
#[test]
fn next_after_agrees_with_minute_by_minute_walk() {
    let cases = [
        ("America/New_York", "2026-03-07T20:00:00Z", "2026-03-09T12:00:00Z"),
        ("America/New_York", "2026-10-31T20:00:00Z", "2026-11-02T12:00:00Z"),
        ("Europe/Berlin", "2026-03-28T20:00:00Z", "2026-03-29T12:00:00Z"),
        ("Europe/Berlin", "2026-10-24T20:00:00Z", "2026-10-25T12:00:00Z"),
        ("Australia/Lord_Howe", "2026-04-04T10:00:00Z", "2026-04-05T06:00:00Z"),
        ("Australia/Lord_Howe", "2026-10-03T10:00:00Z", "2026-10-04T06:00:00Z"),
    ];
    let exprs =
        ["* * * * *", "*/7 * * * *", "0,30 * * * *", "15,45 1-3 * * *", "59 1 * * *", "0 2 * * *", "10 2 * * sun"];
    for (tz_name, from, to) in cases {
        let tz = zone(tz_name);
        let (from, to) = (ts(from), ts(to));
        for expr in exprs {
            let schedule = Schedule::parse(expr).unwrap();
            let walked = walk(&schedule, &tz, from, to);
            let mut computed = Vec::new();
            let mut cursor = from;
            while let Some(next) = schedule.next_after(cursor, &tz) {
                if next > to {
                    break;
                }
                computed.push(next);
                cursor = next;
            }
            assert_eq!(computed, walked, "{tz_name} {expr:?}");
        }
    }
}

/// Every UTC minute in (from, to]: fires when its wall time matches and is the first occurrence
/// of that wall time, or when wall minutes were skipped just before it and one of them matches.
fn walk(schedule: &Schedule, tz: &TimeZone, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
    let minute = jiff::SignedDuration::from_mins(1);
    let mut out = Vec::new();
    let mut prev_wall = tz.to_datetime(from);
    let mut t = from + minute;
    while t <= to {
        let wall = tz.to_datetime(t);
        let first_occurrence = !earlier_instant_with_same_wall(tz, t, wall);
        let mut fire = schedule.matches(wall) && first_occurrence;
        let mut skipped = prev_wall + minute;
        while !fire && skipped < wall {
            fire = schedule.matches(skipped);
            skipped += minute;
        }
        if fire {
            out.push(t);
        }
        prev_wall = wall;
        t += minute;
    }
    out
}

fn earlier_instant_with_same_wall(tz: &TimeZone, t: Timestamp, wall: DateTime) -> bool {
    // A fold here is at most 3 hours deep: look for the same wall time up to 3 hours earlier,
    // where the offset changed in those 3 hours.
    let three_hours_ago = t - jiff::SignedDuration::from_hours(3);
    tz.to_offset(three_hours_ago) != tz.to_offset(t)
        && (1..=180).any(|m| tz.to_datetime(t - jiff::SignedDuration::from_mins(m)) == wall)
}

#[test]
fn never_matching_schedules_return_quickly() {
    let started = std::time::Instant::now();
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 feb *"] {
        let schedule = Schedule::parse(expr).unwrap();
        for tz in ["UTC", "America/New_York"] {
            assert_eq!(schedule.next_after(ts("2026-01-01T00:00:00Z"), &zone(tz)), None);
        }
    }
    // Rare but possible: 29 February on a Sunday (both `*`-restricted, so AND), next in 2032.
    let rare = Schedule::parse("0 0 29 2 */7").unwrap();
    assert_eq!(rare.next_after(ts("2026-01-01T00:00:00Z"), &TimeZone::UTC), Some(ts("2032-02-29T00:00:00Z")));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn end_of_representable_time() {
    let schedule = Schedule::parse("0 0 29 2 *").unwrap();
    // 9996 is the last leap year jiff can represent.
    assert_eq!(schedule.next_after(ts("9996-03-01T00:00:00Z"), &TimeZone::UTC), None);
    assert_eq!(Schedule::parse("* * * * *").unwrap().next_after(Timestamp::MAX, &TimeZone::UTC), None);
}
