//! Job progress: counters the transfer updates, the speed over the last seconds, ETA, and the
//! human `Description` line. The formatting is pure; counters are atomics shared with the bus.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Live counters of one job.
#[derive(Debug, Default)]
pub struct Progress {
    /// Plaintext bytes transferred.
    pub bytes_done: AtomicU64,
    /// Plaintext bytes to transfer, growing while the listing runs.
    pub bytes_total: AtomicU64,
    /// Files transferred (empty ones too).
    pub files_done: AtomicU64,
    /// Files to transfer, growing while the listing runs.
    pub files_total: AtomicU64,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

/// A consistent reading of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes total.
    pub bytes_total: u64,
    /// Files done.
    pub files_done: u64,
    /// Files total.
    pub files_total: u64,
    /// Bytes per second over the last few seconds.
    pub speed: u64,
    /// Seconds left at that speed, 0 when unknown.
    pub eta: u64,
}

impl Snapshot {
    /// BytesDone / BytesTotal in percent, 0 while nothing is known, at most 100.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a percentage
    pub fn percent(&self) -> f64 {
        if self.bytes_total == 0 {
            return 0.0;
        }
        (self.bytes_done as f64 * 100.0 / self.bytes_total as f64).min(100.0)
    }

    /// `12 / 3546 files, 1.2 GiB / 27.6 GiB, 48 MiB/s, ETA 9m`.
    #[must_use]
    pub fn description(&self) -> String {
        let mut s = format!(
            "{} / {} files, {} / {}",
            self.files_done,
            self.files_total,
            human_bytes(self.bytes_done),
            human_bytes(self.bytes_total)
        );
        if self.speed > 0 {
            s.push_str(&format!(", {}/s", human_bytes(self.speed)));
            if self.eta > 0 {
                s.push_str(&format!(", ETA {}", human_duration(self.eta)));
            }
        }
        s
    }
}

const WINDOW: Duration = Duration::from_secs(5);

impl Progress {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads the counters and updates the speed estimate.
    pub fn snapshot(&self) -> Snapshot {
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        samples.push_back((now, bytes_done));
        while samples.len() > 2 && samples.front().is_some_and(|(t, _)| now.duration_since(*t) > WINDOW) {
            samples.pop_front();
        }
        let speed = match samples.front() {
            Some((t, b)) if now.duration_since(*t) >= Duration::from_millis(200) => {
                let dt = now.duration_since(*t).as_secs_f64();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
                let s = (bytes_done.saturating_sub(*b) as f64 / dt) as u64;
                s
            }
            _ => 0,
        };
        let eta = if speed > 0 { bytes_total.saturating_sub(bytes_done).div_ceil(speed) } else { 0 };
        Snapshot {
            bytes_done,
            bytes_total,
            files_done: self.files_done.load(Ordering::Relaxed),
            files_total: self.files_total.load(Ordering::Relaxed),
            speed,
            eta,
        }
    }
}

/// `512 B`, `1.2 KiB`, `27.6 GiB`.
#[must_use]
#[allow(clippy::cast_precision_loss)] // a display value
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// `45s`, `9m`, `1h5m`, `2d3h`.
#[must_use]
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs.div_ceil(60)),
        3600..86_400 => format!("{}h{}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(540), "9m");
        assert_eq!(human_duration(3900), "1h5m");
        let s = Snapshot {
            bytes_done: 1 << 30,
            bytes_total: 1 << 32,
            files_done: 12,
            files_total: 3546,
            speed: 48 << 20,
            eta: 540,
        };
        assert_eq!(s.description(), "12 / 3546 files, 1.0 GiB / 4.0 GiB, 48.0 MiB/s, ETA 9m");
        assert!((s.percent() - 25.0).abs() < 1e-9);
        assert!(Snapshot::default().percent().abs() < f64::EPSILON);
    }
}
