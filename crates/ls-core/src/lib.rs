//! Litestream's vocabulary and byte formats, with no runtime policy.
//!
//! This crate knows positions ([`Pos`], [`Generation`]), where snapshots and WAL segments live
//! in a replica ([`layout`]), and the [`ReplicaClient`] trait that every storage backend
//! implements. It knows nothing of tokio, networks, configuration or logging: everything here
//! is synchronous code over byte slices, `Read` and `Write`, except the trait's signatures.

mod checksum;
mod client;
mod durable;
mod encryption;
pub mod layout;
mod lz4;
mod pos;
mod wal;

pub use crate::checksum::{ByteOrder, wal_checksum};
pub use crate::client::{ByteStream, ClientError, ReplicaClient, SnapshotInfo, WalSegmentInfo};
pub use crate::durable::{
    DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, create_dir_all_durable, create_dir_all_durable_with_mode,
    fsync_dir, rename_durable, temp_path, write_file, write_file_with_mode,
};
pub use crate::encryption::{AgeIdentities, AgeReader, AgeRecipients, AgeWriter, EncryptionError};
pub use crate::lz4::{Lz4Error, Lz4Reader, Lz4Writer, compress, decompress};
pub use crate::pos::{Generation, MAX_INDEX, ParseGenerationError, Pos};
pub use crate::wal::{
    WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WAL_MAGIC_BE, WAL_MAGIC_LE, WAL_VERSION, WalCommit,
    WalError, WalFrame, WalFrameHeader, WalHeader, WalReader, WalStop, frame_align, wal_size,
};
