//! Litestream's vocabulary and byte formats, with no runtime policy.
//!
//! This crate knows positions ([`Pos`], [`Generation`]), where snapshots and WAL segments live
//! in a replica ([`layout`]), and the [`ReplicaClient`] trait that every storage backend
//! implements. It knows nothing of tokio, networks, configuration or logging: everything here
//! is synchronous code over byte slices, `Read` and `Write`, except the trait's signatures.
//!
//! # Overview
//!
//! - Positions: a [`Generation`] is 16 lowercase hex digits naming one unbroken stretch of WAL
//!   history; a [`Pos`] is a generation, a WAL index and a byte offset, printed as Litestream
//!   prints it (`<generation>/<index %08x>:<offset>`).
//! - Replica layout: [`layout`] computes every path inside a replica
//!   (`generations/<generation>/snapshots/<index>.snapshot.lz4`,
//!   `generations/<generation>/wal/<index>_<offset>.wal.lz4`) and parses them back.
//! - Storage: [`ReplicaClient`] is what a backend implements (list, read, write and delete
//!   snapshots and WAL segments), with [`SnapshotInfo`], [`WalSegmentInfo`] and [`ClientError`].
//! - WAL: [`WalHeader`], [`WalFrameHeader`] and [`WalReader`] read SQLite's write-ahead log and
//!   check its salts and checksum chain ([`wal_checksum`]); [`wal_size`] and [`frame_align`]
//!   do the arithmetic.
//! - Encodings: LZ4 frames ([`Lz4Writer`], [`Lz4Reader`], [`compress`], [`decompress`]) and age
//!   encryption ([`AgeRecipients`], [`AgeIdentities`]) as Litestream 0.3.13 writes them.
//! - Durability: [`write_file`], [`rename_durable`] and [`fsync_dir`] replace files so that a
//!   crash leaves the old file or the new one, never a mix.
//!
//! ```
//! use ls_core::{Generation, Pos, compress, decompress, layout};
//!
//! let generation = Generation::parse("0123456789abcdef").expect("16 hex digits");
//! let pos = Pos::new(generation, 2, 4152);
//! assert_eq!(pos.to_string(), "0123456789abcdef/00000002:4152");
//! assert_eq!(
//!     layout::wal_segment_path(&pos),
//!     "generations/0123456789abcdef/wal/00000002_00001038.wal.lz4"
//! );
//! let frame = compress(b"page bytes");
//! assert_eq!(decompress(&frame).expect("a valid LZ4 frame"), b"page bytes");
//! ```

mod checksum;
mod client;
mod durable;
mod encryption;
pub mod layout;
mod lz4;
mod pos;
mod transient;
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
pub use crate::transient::{http_status, is_transient_with};
pub use crate::wal::{
    WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WAL_MAGIC_BE, WAL_MAGIC_LE, WAL_VERSION, WalCommit,
    WalError, WalFrame, WalFrameHeader, WalHeader, WalReader, WalStop, frame_align, wal_size,
};
