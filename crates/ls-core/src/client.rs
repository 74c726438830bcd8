//! The storage trait every replica backend implements, and the types it speaks.
//!
//! A client stores, lists, reads and deletes opaque bytes at the paths of [`crate::layout`]. It
//! never compresses or encrypts: the caller hands it objects that are already LZ4 (and maybe
//! age) encoded, and decodes what it reads.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_core::Stream;

use crate::pos::{Generation, Pos};

/// An object's bytes as a stream of chunks, so large snapshots never sit whole in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send + 'static>>;

/// A snapshot as listed by a replica: `generations/<generation>/snapshots/<index>.snapshot.lz4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The generation the snapshot belongs to.
    pub generation: Generation,
    /// The WAL index the snapshot was taken at.
    pub index: u32,
    /// Stored (compressed, maybe encrypted) size in bytes.
    pub size: u64,
    /// When the storage says the object was written (a file's mtime, an object's
    /// `LastModified`); restore's choices follow these times, as in Litestream.
    pub created_at: SystemTime,
}

/// A WAL segment as listed by a replica: `generations/<generation>/wal/<index>_<offset>.wal.lz4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalSegmentInfo {
    /// The generation the segment belongs to.
    pub generation: Generation,
    /// The WAL index (cycle) of the segment.
    pub index: u32,
    /// Byte offset of the segment's first byte in that index's WAL file.
    pub offset: u64,
    /// Stored (compressed, maybe encrypted) size in bytes.
    pub size: u64,
    /// When the storage says the object was written.
    pub created_at: SystemTime,
}

impl WalSegmentInfo {
    /// The position where this segment starts.
    pub fn pos(&self) -> Pos {
        Pos::new(self.generation, self.index, self.offset)
    }
}

/// Why a replica client call failed. Each variant names the object key or replica path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The object or folder does not exist.
    #[error("{key} not found")]
    NotFound {
        /// The path or key looked up.
        key: String,
    },
    /// A local or remote I/O failure on `key`.
    #[error("cannot {op} {key}")]
    Io {
        /// What was being done: `list`, `read`, `write`, `delete`, ...
        op: &'static str,
        /// The path or key at fault.
        key: String,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A failure reported by a storage service or its SDK.
    #[error("cannot {op} {key}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The path or key at fault.
        key: String,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Storage for one replica: Litestream's `ReplicaClient`.
///
/// Listings return items in Litestream's order: generations by name, snapshots by index,
/// segments by `(index, offset)`. Names that are not Litestream's are skipped, never an error.
/// Deleting something that does not exist succeeds.
#[async_trait::async_trait]
pub trait ReplicaClient: Send + Sync + fmt::Debug {
    /// The replica type: `file`, `s3`, `gcs`, `abs` or `sftp`.
    fn kind(&self) -> &'static str;

    /// Every generation in the replica, by name.
    ///
    /// # Errors
    /// When the storage cannot be listed; a missing replica root is [`ClientError::NotFound`].
    async fn generations(&self) -> Result<Vec<Generation>, ClientError>;

    /// Deletes every object of `generation`.
    ///
    /// # Errors
    /// When the storage refuses a listing or a delete.
    async fn delete_generation(&self, generation: &Generation) -> Result<(), ClientError>;

    /// The snapshots of `generation`, by index; empty when the generation has none.
    ///
    /// # Errors
    /// When the storage cannot be listed.
    async fn snapshots(&self, generation: &Generation) -> Result<Vec<SnapshotInfo>, ClientError>;

    /// Stores an encoded snapshot of `generation` at `index` durably and returns what a listing
    /// would now show for it.
    ///
    /// # Errors
    /// When the stream fails or the storage refuses the write; nothing is left at the final name.
    async fn write_snapshot(
        &self,
        generation: &Generation,
        index: u32,
        data: ByteStream,
    ) -> Result<SnapshotInfo, ClientError>;

    /// Deletes one snapshot; a missing one is not an error.
    ///
    /// # Errors
    /// When the storage refuses the delete.
    async fn delete_snapshot(&self, generation: &Generation, index: u32)
    -> Result<(), ClientError>;

    /// The stored bytes of one snapshot.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when it does not exist; I/O failures while streaming come
    /// through the stream.
    async fn snapshot_reader(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<ByteStream, ClientError>;

    /// The WAL segments of `generation`, by `(index, offset)`; empty when it has none.
    ///
    /// # Errors
    /// When the storage cannot be listed.
    async fn wal_segments(
        &self,
        generation: &Generation,
    ) -> Result<Vec<WalSegmentInfo>, ClientError>;

    /// The WAL segments of `generation` whose index is `from_index` or more, by
    /// `(index, offset)`. Storage that can list from a key (S3's `start-after`) lists only
    /// those; the default filters the full listing.
    ///
    /// # Errors
    /// When the storage cannot be listed.
    async fn wal_segments_from(
        &self,
        generation: &Generation,
        from_index: u32,
    ) -> Result<Vec<WalSegmentInfo>, ClientError> {
        let mut segments = self.wal_segments(generation).await?;
        segments.retain(|segment| segment.index >= from_index);
        Ok(segments)
    }

    /// Stores an encoded WAL segment that starts at `pos` durably.
    ///
    /// # Errors
    /// When the stream fails or the storage refuses the write; nothing is left at the final name.
    async fn write_wal_segment(
        &self,
        pos: &Pos,
        data: ByteStream,
    ) -> Result<WalSegmentInfo, ClientError>;

    /// Deletes WAL segments; missing ones are not errors.
    ///
    /// # Errors
    /// When the storage refuses a delete.
    async fn delete_wal_segments(&self, positions: &[Pos]) -> Result<(), ClientError>;

    /// The stored bytes of the WAL segment that starts at `pos`.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] when it does not exist.
    async fn wal_segment_reader(&self, pos: &Pos) -> Result<ByteStream, ClientError>;
}
