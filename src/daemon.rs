//! Wiring: open the state folder, build the service, serve the objects, take the bus name, tell
//! systemd, pet the watchdog from the main loop, and stop cleanly on SIGTERM or SIGINT.

use crate::{dbus, service::Service, store::Store, systemd};
use std::{path::PathBuf, sync::Arc, time::Duration};

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (production).
    System,
    /// The user's session bus.
    Session,
    /// Any bus address (development, tests).
    Address(String),
}

/// Daemon settings from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bus.
    pub bus: Bus,
    /// The state folder.
    pub state_dir: PathBuf,
    /// The folder of job logs.
    pub log_dir: PathBuf,
    /// Gives memory the allocator holds but no longer uses back to the system (the binary
    /// passes glibc's `malloc_trim`); called once serving and then every [`RELEASE_EVERY`].
    pub release_memory: fn(),
}

/// How often the main loop gives freed memory back to the system.
pub const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state could not be loaded.
    #[error("state: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The bus failed.
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
    /// Something else on the file system.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// The state cannot be loaded, or the bus cannot be reached or its name is taken.
pub async fn run(opts: Options) -> Result<(), DaemonError> {
    let started = std::time::Instant::now();
    let store = Store::open(&opts.state_dir)?;
    std::fs::create_dir_all(&opts.log_dir).map_err(|e| DaemonError::Io(opts.log_dir.display().to_string(), e))?;
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let state_dir = std::fs::canonicalize(&opts.state_dir).unwrap_or_else(|_| opts.state_dir.clone());
    let dirs = crate::service::Dirs { log_dir: opts.log_dir.clone(), work_dir: state_dir.join("run"), state_dir };
    let svc = Arc::new(Service::new(store, jiff::tz::TimeZone::system(), dirs, Some(events_tx))?);
    let (creds, tasks) = svc.counts();
    tracing::info!(state_dir = %opts.state_dir.display(), creds, tasks, "state loaded");

    let builder = match &opts.bus {
        Bus::System => zbus::connection::Builder::system()?,
        Bus::Session => zbus::connection::Builder::session()?,
        Bus::Address(a) => zbus::connection::Builder::address(a.as_str())?,
    };
    // Objects are served before the name is taken, so a client that sees the name finds them.
    let conn = builder.build().await?;
    let ctx = dbus::Ctx { svc: svc.clone(), auth: dbus::auth::Auth::new(&conn).await? };
    dbus::serve_all(conn.object_server(), &ctx).await?;
    tokio::spawn(dbus::pump::run(conn.clone(), ctx.clone(), events_rx));
    conn.request_name_with_flags(dbus::BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into()).await?;
    svc.start_background();
    tracing::info!(name = dbus::BUS_NAME, elapsed_ms = started.elapsed().as_millis(), "serving");
    systemd::ready(&status_line(&svc));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DaemonError::Io("SIGTERM handler".into(), e))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| DaemonError::Io("SIGINT handler".into(), e))?;
    let wd = systemd::watchdog_interval();
    let mut pet = tokio::time::interval(wd.unwrap_or(Duration::from_secs(3600)));
    pet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    let mut release = tokio::time::interval(RELEASE_EVERY);
    release.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = release.tick() => {
                // Off the main loop: it locks each arena in turn.
                drop(tokio::task::spawn_blocking(opts.release_memory));
            }
            _ = pet.tick() => {
                if wd.is_some() {
                    systemd::watchdog();
                }
                let s = status_line(&svc);
                if s != last_status {
                    systemd::status(&s);
                    last_status = s;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    systemd::stopping();
    // Running jobs end ABORTED and remove their temporary files before the process exits.
    svc.abort_all(Duration::from_secs(10)).await;
    drop(conn);
    Ok(())
}

fn status_line(svc: &Service) -> String {
    let (c, t) = svc.counts();
    match svc.running_job_ids().len() {
        0 => format!("Idle: {t} tasks, {c} credentials"),
        n => format!("Running {n} job(s): {t} tasks, {c} credentials"),
    }
}
