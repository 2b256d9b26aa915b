//! The sync engine: plan (pure diff of two sorted listings), execute (transfers, deletions,
//! progress), one run of a job (scripts, listing, plan, execute). Pure parts: `entry`, `filter`,
//! `names`, `plan`, progress formatting; the rest drives `remote` and `scripts`.

pub mod archive;
pub mod entry;
pub mod exec;
pub mod filter;
pub mod joblog;
pub mod limit;
pub mod names;
pub mod plan;
pub mod progress;
pub mod run;
pub mod seen;
