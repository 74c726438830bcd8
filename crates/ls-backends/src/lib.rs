//! Storage backends behind [`ls_core::ReplicaClient`].
//!
//! This crate stores, lists and deletes bytes at the paths `ls_core::layout` computes. It knows
//! nothing of SQLite, shadow WALs or the generation lifecycle, and reads no environment variable
//! itself: the options' `*_from_env` methods take the lookup from the caller.
//!
//! - [`FileReplicaClient`]: a replica in a local directory (`file`).
//! - [`ObjectReplicaClient`]: S3 and S3-compatible stores, GCS and Azure Blob Storage (`s3`,
//!   `gcs`, `abs`) over `object_store`, built from [`S3Options`], [`GcsOptions`],
//!   [`AzureOptions`].
//! - [`SftpReplicaClient`]: a directory on an SFTP server (`sftp`), from [`SftpOptions`].
//! - [`ReplicaUrl`], [`is_url`], [`open_url`]: replica URLs as Litestream 0.3.13 reads them.
//! - [`is_transient`]: whether a client error is worth retrying later.
//!
//! Every client is used through `Arc<dyn ReplicaClient>`: the engine (ls-replica) takes it in
//! `Replica::new`, and the `litestream` binary (ls-cli) is the only crate that builds clients
//! from configuration. Errors name the replica type, bucket or host and the key at fault, and
//! never carry a secret ([`Secret`] and [`redact_url`] keep passwords and keys out of logs).
//!
//! ```
//! # async fn example() -> Result<(), ls_core::ClientError> {
//! use std::sync::Arc;
//!
//! use ls_backends::FileReplicaClient;
//! use ls_core::ReplicaClient;
//!
//! let client: Arc<dyn ReplicaClient> = Arc::new(FileReplicaClient::new("/backup/app.db"));
//! for generation in client.generations().await? {
//!     let snapshots = client.snapshots(&generation).await?;
//!     assert!(snapshots.iter().all(|snapshot| snapshot.generation == generation));
//! }
//! # Ok(())
//! # }
//! ```

mod file;
mod object;
mod secret;
mod sftp;
mod transient;
mod url;

pub use crate::file::FileReplicaClient;
pub use crate::object::{AzureOptions, GcsOptions, ObjectReplicaClient, OpenError, S3Options};
pub use crate::secret::Secret;
pub use crate::sftp::{HostKeyCheck, SftpOptions, SftpReplicaClient};
pub use crate::transient::is_transient;
pub use crate::url::{Password, ReplicaUrl, ReplicaUrlError, is_url, open_url, redact_url};
