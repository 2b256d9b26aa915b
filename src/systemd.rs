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
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}
