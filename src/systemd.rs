//! systemd integration: `READY=1`, `STATUS=`, `WATCHDOG=1` and `STOPPING=1` through sd-notify.
//! Does nothing when not started by systemd (no `NOTIFY_SOCKET`). Imports std and sd-notify.

use std::time::Duration;

/// Tells systemd the service is ready, with a status line.
pub fn ready(status: &str) {
    send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
}

/// Updates the status line.
pub fn status(status: &str) {
    send(&[sd_notify::NotifyState::Status(status)]);
}

/// Pets the watchdog.
pub fn watchdog() {
    send(&[sd_notify::NotifyState::Watchdog]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("Stopping")]);
}

/// How often to pet the watchdog: half of `WATCHDOG_USEC`, when systemd asked for it.
#[must_use]
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// The rule of `sd_watchdog_enabled`: `WATCHDOG_USEC` set and positive, and `WATCHDOG_PID`
/// either unset or our pid; pet at half the timeout.
#[must_use]
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok()? != own_pid
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_rule() {
        assert_eq!(watchdog_interval_from(Some("1000000"), None, 7), Some(Duration::from_millis(500)));
        assert_eq!(watchdog_interval_from(Some("1000000"), Some("7"), 7), Some(Duration::from_millis(500)));
        assert_eq!(watchdog_interval_from(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }
}
