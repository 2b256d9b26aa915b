//! TEMPORARY placeholder until the cron module lands (replaced by the real module).
use std::fmt;
#[derive(Debug)]
pub struct CronError(String);
impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
#[derive(Debug)]
pub struct Schedule;
impl Schedule {
    pub fn parse(s: &str) -> Result<Self, CronError> {
        let n = s.split_whitespace().count();
        if n == 5 { Ok(Self) } else { Err(CronError(format!("expected 5 cron fields, got {n}"))) }
    }
    pub fn next_after(&self, _after: jiff::Timestamp, _tz: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
        None
    }
}
