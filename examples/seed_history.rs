//! Gives every stored task `RUNS` ended jobs (the history a NAS keeps after that many runs, at
//! most 20 per task), for `scripts/measure-daemon`. Stop the daemon first.
//!
//! Usage: `cargo run --release --example seed_history -- STATE_DIR RUNS`

use cloudsyncd::{
    model::job::{JobRecord, JobState},
    store::Store,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(runs)) = (args.next(), args.next()) else {
        return Err("usage: seed_history STATE_DIR RUNS".into());
    };
    let runs: u64 = runs.parse().map_err(|e| format!("RUNS: {e}"))?;
    let keep = cloudsyncd::model::job::KEEP_JOBS as u64;
    if runs > keep {
        return Err(format!("RUNS: at most {keep} (the jobs kept per task)").into());
    }
    let store = Store::open(std::path::Path::new(&dir))?;
    let mut state = store.load()?;
    let tasks: Vec<u64> = state.tasks.keys().copied().collect();
    let day = 86_400;
    for run in 0..runs {
        for &task in &tasks {
            let id = state.next.job;
            state.next.job += 1;
            let mut job = JobRecord::new(id, Some(task), JobState::Success, false);
            job.started_at = 1_750_000_000 + run * day;
            job.finished_at = job.started_at + 60;
            state.jobs.insert(job);
        }
    }
    store.save(&state)?;
    println!("{} tasks, {} jobs kept", tasks.len(), state.jobs.len());
    Ok(())
}
