//! Pure domain types: credentials, tasks, their validation and masking. Imports std, serde,
//! zeroize and `schedule` only; no IO, no async, no D-Bus.

pub mod credential;
pub mod fields;
pub mod job;
pub mod secret;
pub mod task;
pub mod value;

pub use credential::{Credential, CredentialAttrs, Environment, Provider};
pub use fields::{VResult, ValidationError};
pub use job::{JobRecord, JobState};
pub use secret::{MASK, Secret};
pub use task::{Direction, Origin, Ownership, RestoreOptions, TaskConfig, TransferMode};
pub use value::{Entries, Value};
