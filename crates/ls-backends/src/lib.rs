//! Storage backends behind [`ls_core::ReplicaClient`].
//!
//! This crate stores, lists and deletes bytes at the paths `ls_core::layout` computes. It knows
//! nothing of SQLite, shadow WALs or the generation lifecycle.
//!
//! - [`FileReplicaClient`]: a replica in a local directory (`file`).
//! - [`ReplicaUrl`], [`is_url`], [`open_url`]: replica URLs as Litestream 0.3.13 reads them.

mod file;
mod url;

pub use crate::file::FileReplicaClient;
pub use crate::url::{Password, ReplicaUrl, ReplicaUrlError, is_url, open_url, redact_url};
