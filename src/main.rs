//! The `cloudsyncd` binary: arguments, logging, the allocator's thresholds, runtime; may import the library, clap, tracing-subscriber, anyhow and libc.

use clap::Parser;
use cloudsyncd::daemon::{self, Bus, Options};
use std::path::PathBuf;

/// The cloud sync service of a NAS appliance: backs datasets up to S3-compatible storage and
/// restores them, driven over D-Bus (org.cloudsyncd.CloudSync1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Serve on the system bus (the default).
    #[arg(long, conflicts_with_all = ["session", "address"])]
    system: bool,
    /// Serve on the session bus.
    #[arg(long, conflicts_with = "address")]
    session: bool,
    /// Serve on the bus at this address, e.g. unix:path=/tmp/bus.
    #[arg(long, value_name = "ADDR")]
    address: Option<String>,
    /// Where credentials, tasks and job history are kept.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/cloudsyncd")]
    state_dir: PathBuf,
    /// Where job logs go [default: /var/log/cloudsyncd on the system bus, else STATE_DIR/logs].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Pull objects of at least this many MiB from S3 in 4 parallel ranged GETs each.
    #[arg(long, env = "CLOUDSYNCD_RANGED_PULL_FROM", value_name = "MIB", default_value_t = cloudsyncd::remote::s3::DEFAULT_RANGED_CUTOFF >> 20)]
    ranged_pull_from: u64,
}

/// Large blocks (a read buffer, a batch of upload records) are taken from and given back to the
/// system directly above this size, and free memory above this much at the top of an arena is
/// given back.
const MALLOC_THRESHOLD: i32 = 512 << 10;

/// Keeps glibc's allocator from holding on to freed memory as a run goes on. By default glibc
/// raises its mmap threshold to the size of each large block freed, and its trim threshold to
/// twice that, so every arena (one per thread that allocates) keeps megabytes it no longer
/// uses: the daemon's peak RSS grew from 14 to 21 MiB between pushes of 10,000 and 100,000
/// files, with a live heap of about 1 MiB. Fixed thresholds: 16.6 MiB at 100,000 files.
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn bound_allocator_retention() {
    // SAFETY: `mallopt` takes two integers, no pointers, and only changes the allocator's tuning
    // parameters (under its own lock); it is called first thing in `main`, before any other
    // thread exists, and a refusal (return value 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_THRESHOLD);
    }
}

#[cfg(not(target_env = "gnu"))]
fn bound_allocator_retention() {}

/// Gives the free pages inside the allocator's heaps back to the system. A burst of small
/// allocations (a `GetManagedObjects` reply for 21,000 objects, the state of a big start-up)
/// leaves them scattered between live blocks, where no threshold returns them: RSS stayed at
/// 100 MiB after one such reply, against 41 MiB live.
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn release_freed_memory() {
    // SAFETY: `malloc_trim` takes an integer, no pointers, and works on the allocator's own
    // free lists under each arena's lock, so it is safe to call from any thread at any time;
    // it only gives whole free pages back (madvise) and never touches live blocks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn release_freed_memory() {}

fn main() -> anyhow::Result<()> {
    bound_allocator_retention();
    let args = Args::parse();
    cloudsyncd::remote::s3::set_ranged_cutoff(args.ranged_pull_from.saturating_mul(1 << 20));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLOUDSYNCD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    let bus = match (args.session, args.address) {
        (_, Some(a)) => Bus::Address(a),
        (true, None) => Bus::Session,
        (false, None) => Bus::System,
    };
    let log_dir = args.log_dir.unwrap_or_else(|| {
        if bus == Bus::System { PathBuf::from("/var/log/cloudsyncd") } else { args.state_dir.join("logs") }
    });
    let opts = Options { bus, state_dir: args.state_dir, log_dir, release_memory: release_freed_memory };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(daemon::run(opts)).map_err(|e| anyhow::anyhow!("cloudsyncd: {e}"))
}
