//! Storage a task reads from or writes to; only the S3 provider lives here on this branch (the `Remote` trait comes from main). May import `s3sig`, `model` and std/tokio.

pub mod s3;
