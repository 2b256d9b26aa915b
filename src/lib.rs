//! cloudsyncd: the cloud sync service of a NAS appliance.
//!
//! Layering (an arrow means "may import"; nothing imports upward):
//! - pure leaves, no IO and no async: [`model`], [`schedule`], [`s3sig`], [`crypt`];
//! - [`zfs`] → std, tokio, jiff (the one wrapper around the `zfs` command);
//! - [`store`] → model;
//! - [`remote`] → engine entries and names, s3sig, model (the S3 provider on hyper + rustls); [`engine`] → remote, scripts, zfs;
//! - [`service`] → model, store, schedule;
//! - [`dbus`] → service, model (only `dbus` and `daemon` import zbus);
//! - [`daemon`] → everything; `main.rs` → daemon.

pub mod crypt;
pub mod daemon;
pub mod dbus;
pub mod engine;
pub mod model;
pub mod remote;
pub mod s3sig;
pub mod schedule;
pub mod scripts;
pub mod service;
pub mod store;
pub mod systemd;
pub mod zfs;
