//! Storage backends behind [`ls_core::ReplicaClient`].
//!
//! This crate stores, lists and deletes bytes at the paths `ls_core::layout` computes. It knows
//! nothing of SQLite, shadow WALs or the generation lifecycle.
//!
//! - [`FileReplicaClient`]: a replica in a local directory (`file`).

mod file;

pub use crate::file::FileReplicaClient;
