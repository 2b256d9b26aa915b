//! Vixie cron: parses five-field expressions and finds the next run in a time zone. Pure; imports only std, jiff, thiserror.
//!
//! # Syntax
//!
//! An expression has exactly five whitespace-separated fields, `minute hour day-of-month month
//! day-of-week`. Each field is a comma-separated list of items; an item is `*`, `*/STEP`, `N`,
//! `N-M`, `N-M/STEP` or `N/STEP` (meaning `N-MAX/STEP`). Months may be written `jan`..`dec` and
//! weekdays `sun`..`sat`, case-insensitively, anywhere a number is allowed (not as a step).
//! Sunday is 0 or 7. Ranges: minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week
//! 0-7. A step is 1..=MAX of its field (`*/0` and `*/60` in the minute field are refused).
//!
//! # Matching
//!
//! As in Vixie cron, a field whose text starts with `*` counts as unrestricted for the day rule:
//! when both day of month and day of week are restricted (neither starts with `*`), a day matches
//! if either matches; otherwise both must match (so `0 0 1 * *` runs on the 1st only and
//! `0 0 */2 * mon` on odd-numbered Mondays).
//!
//! Matching is done on local wall-clock minutes in the time zone the caller passes. Each matching
//! wall-clock minute fires at most once, at one instant:
//!
//! - a wall-clock minute that exists once fires at that instant;
//! - a wall-clock minute skipped by a forward transition (spring forward) fires at the first
//!   valid minute after the gap, i.e. the instant the gap ends; several matching minutes in the
//!   same gap (and a match at the gap's end itself) collapse into that one run;
//! - a wall-clock minute that exists twice (fall back) fires only at its first occurrence; in the
//!   repeated hour nothing fires a second time, so `*/30 * * * *` in New York on 2026-11-01 runs
//!   at 01:00 EDT and 01:30 EDT and then next at 02:00 EST.
//!
//! This deliberately differs from Vixie cron's own DST heuristics for wildcard jobs (which run
//! again in a repeated hour): the contract says a repeated hour runs once.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// The cron expression a task uses when none is given: every day at midnight.
pub const DEFAULT_EXPRESSION: &str = "0 0 * * *";

/// How far ahead [`Schedule::next_after`] searches. The Gregorian calendar repeats every 400
/// years (146097 days, a whole number of weeks), so a schedule with no match in 401 years never
/// matches.
const SEARCH_YEARS: i16 = 401;

/// One of the five fields of a cron expression, named in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Minute of the hour, 0-59.
    Minute,
    /// Hour of the day, 0-23.
    Hour,
    /// Day of the month, 1-31.
    DayOfMonth,
    /// Month of the year, 1-12 or `jan`..`dec`.
    Month,
    /// Day of the week, 0-7 (0 and 7 are Sunday) or `sun`..`sat`.
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

    /// The field's name as used in error messages, e.g. `day of month`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        }
    }

    fn min(self) -> u8 {
        match self {
            Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
        }
    }

    fn max(self) -> u8 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// Names allowed in place of numbers; the first name stands for `min()`.
    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            Field::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            Field::Minute | Field::Hour | Field::DayOfMonth => &[],
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a cron expression was refused. The messages are meant for users (the daemon prefixes them
/// with `schedule: `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not have exactly five whitespace-separated fields.
    #[error("expected 5 cron fields, got {got}")]
    FieldCount {
        /// How many fields were found.
        got: usize,
    },
    /// A list has an empty item, as in `1,,2` or `1,`.
    #[error("{field}: empty list item")]
    EmptyItem {
        /// The field with the empty item.
        field: Field,
    },
    /// A character that no cron item may contain.
    #[error("{field}: unexpected character {ch:?} in {item:?}")]
    UnexpectedChar {
        /// The field.
        field: Field,
        /// The offending character.
        ch: char,
        /// The list item that contains it.
        item: String,
    },
    /// An item built from valid characters in an invalid way, e.g. `1-2-3`, `*/` or `-5`.
    #[error("{field}: malformed item {item:?} ({reason})")]
    Malformed {
        /// The field.
        field: Field,
        /// The list item.
        item: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A word where a number is needed (in a field without names, or as a step).
    #[error("{field}: {token:?} is not a number")]
    NotANumber {
        /// The field.
        field: Field,
        /// The offending word.
        token: String,
    },
    /// A name that is not a month (`jan`..`dec`) or weekday (`sun`..`sat`) name.
    #[error("{field}: unknown name {name:?}")]
    UnknownName {
        /// The field.
        field: Field,
        /// The name as written.
        name: String,
    },
    /// A number outside the field's range.
    #[error("{field}: {value} is out of range {min}-{max}")]
    OutOfRange {
        /// The field.
        field: Field,
        /// The number as written.
        value: String,
        /// The smallest allowed value.
        min: u8,
        /// The largest allowed value.
        max: u8,
    },
    /// A step of 0, as in `*/0`.
    #[error("{field}: step 0 is not allowed")]
    StepZero {
        /// The field.
        field: Field,
    },
    /// A step larger than the field's largest value, as in `*/60` for minutes.
    #[error("{field}: step {step} is out of range 1-{max}")]
    StepOutOfRange {
        /// The field.
        field: Field,
        /// The step as written.
        step: String,
        /// The largest allowed step.
        max: u8,
    },
    /// A range whose start is after its end, as in `20-10`.
    #[error("{field}: range {range} is backwards")]
    Backwards {
        /// The field.
        field: Field,
        /// The range as written, e.g. `20-10` or `fri-mon`.
        range: String,
    },
}

/// A parsed five-field cron expression (Vixie cron semantics; see the module documentation).
///
/// Build one with [`Schedule::parse`] or [`str::parse`]; [`fmt::Display`] prints a normalised
/// expression that parses back to an equal `Schedule`. `Schedule::default()` is
/// [`DEFAULT_EXPRESSION`], every day at midnight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    /// Bit `m` set: minute `m` (0-59) matches.
    minutes: u64,
    /// Bit `h` set: hour `h` (0-23) matches.
    hours: u64,
    /// Bit `d` set: day of month `d` (1-31) matches.
    days_of_month: u64,
    /// Bit `m` set: month `m` (1-12) matches.
    months: u64,
    /// Bit `w` set: weekday `w` (0 = Sunday .. 6 = Saturday) matches; 7 is folded into 0.
    days_of_week: u64,
    /// `Some(step)` when the day-of-month field starts with `*` (or `*/step`): unrestricted for
    /// the Vixie day rule.
    dom_star: Option<u8>,
    /// `Some(step)` when the day-of-week field starts with `*` (or `*/step`).
    dow_star: Option<u8>,
}

/// The result of parsing one field.
struct ParsedField {
    bits: u64,
    /// The step of the leading `*` item, if the field starts with `*`.
    star: Option<u8>,
}

impl Schedule {
    /// Parses a five-field cron expression such as `*/15 8-18 * * mon-fri`.
    ///
    /// # Errors
    ///
    /// Returns a [`CronError`] naming the first problem found: a wrong number of fields, or in
    /// the first bad field (left to right) an empty list item, an unexpected character, a
    /// malformed item, an unknown name, a number out of range, a step of 0 or above the field's
    /// maximum, or a backwards range.
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount { got: fields.len() });
        }
        let mut parsed = Vec::with_capacity(5);
        for (field, text) in Field::ALL.into_iter().zip(fields) {
            parsed.push(parse_field(field, text)?);
        }
        let mut dow = parsed[4].bits;
        if dow & (1 << 7) != 0 {
            dow = (dow & !(1 << 7)) | 1;
        }
        Ok(Schedule {
            minutes: parsed[0].bits,
            hours: parsed[1].bits,
            days_of_month: parsed[2].bits,
            months: parsed[3].bits,
            days_of_week: dow,
            dom_star: parsed[2].star,
            dow_star: parsed[4].star,
        })
    }

    /// The first run strictly after `after`, as matched on wall-clock time in `tz`: a whole local
    /// minute (seconds 0), or, for a matching local time skipped by a DST gap, the instant the
    /// gap ends. A local time repeated by a DST fold runs only at its first occurrence.
    ///
    /// Calling it again with the returned instant yields the following run. Returns `None` when
    /// the schedule can never match (e.g. `0 0 30 2 *`) or the next run would lie beyond the
    /// years `jiff` can represent (9999).
    #[must_use]
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if !self.can_ever_match() {
            return None;
        }
        let local = tz.to_datetime(after);
        // Every wall-clock minute up to and including `local`'s minute fires at or before
        // `after` (fire instants are monotonic in wall-clock time), so start one minute later.
        let mut cursor = Cursor::from_datetime(local);
        cursor.add_minute();
        let last_year = local.year().saturating_add(SEARCH_YEARS).min(9999);
        loop {
            let wall = self.next_match(&mut cursor, last_year)?;
            let fire = fire_instant(tz, wall)?;
            if fire > after {
                return Some(fire);
            }
            // `after` lies in the second pass of a repeated hour, and this minute already ran
            // in the first pass.
            cursor.add_minute();
        }
    }

    /// Whether the wall-clock minute of `wall` matches (its seconds are ignored). This is the
    /// plain field test, without the DST rules of [`Schedule::next_after`].
    #[must_use]
    pub fn matches(&self, wall: DateTime) -> bool {
        self.months & (1 << wall.month()) != 0
            && self.day_matches(wall.date())
            && self.hours & (1 << wall.hour()) != 0
            && self.minutes & (1 << wall.minute()) != 0
    }

    /// Whether some day in the 400-year Gregorian cycle matches the month and day fields.
    fn can_ever_match(&self) -> bool {
        // Day-of-week restricted alone (`dom_star`), or both restricted (OR rule, and every
        // month has every weekday): always some day. Only "day of month decides" can be empty.
        if self.dom_star.is_some() || self.dow_star.is_none() {
            return true;
        }
        (1..=12u8).any(|month| {
            if self.months & (1 << month) == 0 {
                return false;
            }
            let longest = max_days_in_month(month);
            (1..=longest).any(|day| self.days_of_month & (1 << day) != 0)
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let weekday = date.weekday().to_sunday_zero_offset();
        let dow = self.days_of_week & (1 << weekday) != 0;
        if self.dom_star.is_some() || self.dow_star.is_some() { dom && dow } else { dom || dow }
    }

    /// Moves `cursor` forward to the first matching wall-clock minute at or after it; `None`
    /// past the end of `last_year`.
    fn next_match(&self, cursor: &mut Cursor, last_year: i16) -> Option<DateTime> {
        loop {
            if cursor.year > last_year {
                return None;
            }
            if self.months & (1 << cursor.month) == 0 {
                cursor.add_month();
                continue;
            }
            let date = Date::new(cursor.year, cursor.month, cursor.day).ok()?;
            if !self.day_matches(date) {
                cursor.add_day();
                continue;
            }
            let Some(hour) = next_bit(self.hours, cursor.hour, 23) else {
                cursor.add_day();
                continue;
            };
            if hour != cursor.hour {
                cursor.hour = hour;
                cursor.minute = 0;
            }
            let Some(minute) = next_bit(self.minutes, cursor.minute, 59) else {
                cursor.add_hour();
                continue;
            };
            cursor.minute = minute;
            return Some(date.at(cursor.hour, cursor.minute, 0, 0));
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::parse(DEFAULT_EXPRESSION).expect("the default expression is valid")
    }
}

impl FromStr for Schedule {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    /// Prints the normalised expression: numbers only, runs of three or more as ranges, `*` for
    /// a full field, `*/STEP` where the field starts with `*` (day fields) or is exactly such a
    /// progression (minute, hour, month); day of week uses 0 for Sunday.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minute = format_free_field(self.minutes, 0, 59);
        let hour = format_free_field(self.hours, 0, 23);
        let dom = format_day_field(self.days_of_month, 1, 31, self.dom_star);
        let month = format_free_field(self.months, 1, 12);
        let dow = format_day_field(self.days_of_week, 0, 6, self.dow_star);
        write!(f, "{minute} {hour} {dom} {month} {dow}")
    }
}

/// A wall-clock minute being searched; always a valid date.
struct Cursor {
    year: i16,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
}

impl Cursor {
    fn from_datetime(dt: DateTime) -> Cursor {
        Cursor { year: dt.year(), month: dt.month(), day: dt.day(), hour: dt.hour(), minute: dt.minute() }
    }

    fn add_minute(&mut self) {
        if self.minute < 59 {
            self.minute += 1;
        } else {
            self.add_hour();
        }
    }

    fn add_hour(&mut self) {
        self.minute = 0;
        if self.hour < 23 {
            self.hour += 1;
        } else {
            self.add_day();
        }
    }

    fn add_day(&mut self) {
        self.minute = 0;
        self.hour = 0;
        if self.day < days_in_month(self.year, self.month) {
            self.day += 1;
        } else {
            self.add_month();
        }
    }

    fn add_month(&mut self) {
        self.minute = 0;
        self.hour = 0;
        self.day = 1;
        if self.month < 12 {
            self.month += 1;
        } else {
            self.month = 1;
            // Saturating: the caller's year bound (at most 9999) stops the search.
            self.year = self.year.saturating_add(1);
        }
    }
}

fn is_leap_year(year: i16) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i16, month: i8) -> i8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn max_days_in_month(month: u8) -> u8 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The smallest set bit in `from..=max`.
fn next_bit(bits: u64, from: i8, max: i8) -> Option<i8> {
    (from..=max).find(|&i| bits & (1 << i) != 0)
}

/// The instant at which the matching wall-clock minute `wall` fires in `tz`.
fn fire_instant(tz: &TimeZone, wall: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(wall).ok(),
        AmbiguousOffset::Fold { before, after } => {
            // The first occurrence: the earlier of the two instants.
            let a = before.to_timestamp(wall).ok()?;
            let b = after.to_timestamp(wall).ok()?;
            Some(a.min(b))
        }
        AmbiguousOffset::Gap { before, after } => {
            // The gap ends at the transition, which lies in (wall - after, wall - before].
            let lower = after.to_timestamp(wall).ok()?.min(before.to_timestamp(wall).ok()?);
            let transition = tz.following(lower).next()?.timestamp();
            round_up_to_local_minute(tz, transition)
        }
    }
}

/// `ts` if it is a whole minute in local time, else the next whole local minute. (Transitions
/// are whole minutes in all modern tzdb data; old local-mean-time offsets have seconds.)
fn round_up_to_local_minute(tz: &TimeZone, ts: Timestamp) -> Option<Timestamp> {
    let local = tz.to_datetime(ts);
    let into_minute = i64::from(local.second()) * 1_000_000_000 + i64::from(local.subsec_nanosecond());
    if into_minute == 0 {
        return Some(ts);
    }
    let nanos = ts.as_nanosecond().checked_add(i128::from(60_000_000_000 - into_minute))?;
    Timestamp::from_nanosecond(nanos).ok()
}

fn parse_field(field: Field, text: &str) -> Result<ParsedField, CronError> {
    let mut bits = 0u64;
    let mut star = None;
    for (index, item) in text.split(',').enumerate() {
        let (item_bits, item_star) = parse_item(field, item)?;
        bits |= item_bits;
        if index == 0 {
            star = item_star;
        }
    }
    Ok(ParsedField { bits, star })
}

/// Parses one list item into its bits, and the step if it is `*` or `*/STEP`.
fn parse_item(field: Field, item: &str) -> Result<(u64, Option<u8>), CronError> {
    if item.is_empty() {
        return Err(CronError::EmptyItem { field });
    }
    if let Some(ch) = item.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '/'))) {
        return Err(CronError::UnexpectedChar { field, ch, item: item.to_owned() });
    }
    let malformed = |reason| CronError::Malformed { field, item: item.to_owned(), reason };
    let (range, step) = match item.split_once('/') {
        None => (item, None),
        Some((range, step)) => {
            if step.contains('/') {
                return Err(malformed("more than one '/'"));
            }
            if range.is_empty() {
                return Err(malformed("nothing before '/'"));
            }
            if step.is_empty() {
                return Err(malformed("missing step after '/'"));
            }
            (range, Some(parse_step(field, step, item)?))
        }
    };
    let (start, end, star) = if range == "*" {
        (field.min(), field.max(), true)
    } else if range.contains('*') {
        return Err(malformed("'*' must stand alone or as */STEP"));
    } else if let Some((a, b)) = range.split_once('-') {
        if a.is_empty() {
            return Err(malformed("missing range start"));
        }
        if b.is_empty() {
            return Err(malformed("missing range end"));
        }
        if b.contains('-') {
            return Err(malformed("more than one '-'"));
        }
        let start = parse_value(field, a)?;
        let end = parse_value(field, b)?;
        if start > end {
            return Err(CronError::Backwards { field, range: range.to_owned() });
        }
        (start, end, false)
    } else {
        let value = parse_value(field, range)?;
        // `N/STEP` means `N-MAX/STEP`; a lone `N` is just N.
        let end = if step.is_some() { field.max() } else { value };
        (value, end, false)
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    for value in (start..=end).step_by(usize::from(step)) {
        bits |= 1 << value;
    }
    Ok((bits, star.then_some(step)))
}

fn parse_step(field: Field, step: &str, item: &str) -> Result<u8, CronError> {
    if !step.bytes().all(|b| b.is_ascii_digit()) {
        if step.contains(['*', '-']) {
            return Err(CronError::Malformed { field, item: item.to_owned(), reason: "a step must be a plain number" });
        }
        return Err(CronError::NotANumber { field, token: step.to_owned() });
    }
    match step.trim_start_matches('0') {
        "" => Err(CronError::StepZero { field }),
        digits => digits.parse::<u8>().ok().filter(|&n| n <= field.max()).ok_or_else(|| CronError::StepOutOfRange {
            field,
            step: step.to_owned(),
            max: field.max(),
        }),
    }
}

/// Parses a number or a name (month and weekday fields) into a value within the field's range.
fn parse_value(field: Field, token: &str) -> Result<u8, CronError> {
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range =
            || CronError::OutOfRange { field, value: token.to_owned(), min: field.min(), max: field.max() };
        let digits = token.trim_start_matches('0');
        let value = if digits.is_empty() { 0 } else { digits.parse::<u8>().map_err(|_| out_of_range())? };
        if value < field.min() || value > field.max() {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    let names = field.names();
    if names.is_empty() || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(CronError::NotANumber { field, token: token.to_owned() });
    }
    names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(token))
        .map(|index| field.min() + u8::try_from(index).expect("at most 12 names"))
        .ok_or_else(|| CronError::UnknownName { field, name: token.to_owned() })
}

/// Formats a field where a leading `*` carries no meaning beyond its values.
fn format_free_field(bits: u64, min: u8, max: u8) -> String {
    for step in 1..=max {
        let progression = (min..=max).step_by(usize::from(step)).fold(0u64, |acc, v| acc | (1 << v));
        if bits == progression {
            return if step == 1 { "*".to_owned() } else { format!("*/{step}") };
        }
    }
    format_list(bits, min, max)
}

/// Formats a day field, where a leading `*` makes it unrestricted for the Vixie day rule.
fn format_day_field(bits: u64, min: u8, max: u8, star: Option<u8>) -> String {
    let Some(step) = star else {
        return format_list(bits, min, max);
    };
    // Day of week: `*/STEP` spans 0-7, and 7 is folded into 0 (which `*` always includes).
    let star_max = if max == 6 { 7 } else { max };
    let covered =
        (min..=star_max).step_by(usize::from(step)).fold(0u64, |acc, v| acc | (1 << v)) & ((1u64 << (max + 1)) - 1);
    let head = if step == 1 { "*".to_owned() } else { format!("*/{step}") };
    let rest = bits & !covered;
    if rest == 0 { head } else { format!("{head},{}", format_list(rest, min, max)) }
}

/// Formats set bits as a list: runs of three or more as `a-b`, others as single numbers.
fn format_list(bits: u64, min: u8, max: u8) -> String {
    let mut items = Vec::new();
    let mut value = min;
    while value <= max {
        if bits & (1 << value) == 0 {
            value += 1;
            continue;
        }
        let start = value;
        while value < max && bits & (1 << (value + 1)) != 0 {
            value += 1;
        }
        match value - start {
            0 => items.push(start.to_string()),
            1 => {
                items.push(start.to_string());
                items.push(value.to_string());
            }
            _ => items.push(format!("{start}-{value}")),
        }
        value += 1;
    }
    items.join(",")
}
