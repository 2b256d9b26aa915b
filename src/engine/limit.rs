//! The bandwidth timetable as a shared token bucket: every transfer of a job takes its bytes
//! from it, and the rate follows the `bwlimit` entry in force at the local time.

use crate::model::task::BwLimit;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The rate in force at minute-of-day `minute` (the table repeats daily: before the first entry,
/// the last one of the previous day applies). `None` = unlimited.
#[must_use]
pub fn rate_at(table: &[BwLimit], minute: u16) -> Option<u64> {
    let last = table.last()?;
    table.iter().rev().find(|e| e.minute <= minute).unwrap_or(last).rate
}

/// A shared limiter for one job.
#[derive(Debug)]
pub struct Limiter {
    table: Vec<BwLimit>,
    tz: jiff::tz::TimeZone,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    /// Whether no limit is ever set (an empty timetable).
    #[must_use]
    pub fn unlimited(&self) -> bool {
        self.table.is_empty()
    }

    /// A limiter following `table` in `tz`.
    #[must_use]
    pub fn new(table: Vec<BwLimit>, tz: jiff::tz::TimeZone) -> Self {
        Self { table, tz, state: Mutex::new((0.0, Instant::now())) }
    }

    fn current_rate(&self) -> Option<u64> {
        if self.table.is_empty() {
            return None;
        }
        let now = self.tz.to_datetime(jiff::Timestamp::now());
        let minute = u16::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).unwrap_or(0);
        rate_at(&self.table, minute)
    }

    /// Waits until `n` bytes may pass.
    #[allow(clippy::cast_precision_loss)]
    pub async fn take(&self, n: usize) {
        let Some(rate) = self.current_rate() else { return };
        let rate = rate as f64;
        let mut st = self.state.lock().await;
        let now = Instant::now();
        // Refill, with at most a quarter second of burst.
        st.0 = (st.0 + now.duration_since(st.1).as_secs_f64() * rate).min(rate / 4.0);
        st.1 = now;
        st.0 -= n as f64;
        if st.0 < 0.0 {
            let wait = Duration::from_secs_f64(-st.0 / rate);
            // Holding the lock while sleeping keeps the transfers in line behind each other.
            tokio::time::sleep(wait).await;
            st.0 = 0.0;
            st.1 = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetable_wraps_daily() {
        let t = vec![BwLimit { minute: 480, rate: Some(10) }, BwLimit { minute: 1080, rate: None }];
        assert_eq!(rate_at(&t, 0), None, "before 08:00 the 18:00 entry of the day before applies");
        assert_eq!(rate_at(&t, 480), Some(10));
        assert_eq!(rate_at(&t, 1079), Some(10));
        assert_eq!(rate_at(&t, 1080), None);
        assert_eq!(rate_at(&[], 5), None);
    }
}
