//! The engine's errors: each names the replica, generation, segment or file at fault.

use std::io;
use std::path::PathBuf;

use ls_core::{ClientError, EncryptionError, Generation, Pos};

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// A replica could not be listed.
    #[error("cannot list replica {replica}")]
    List {
        /// The replica's name.
        replica: String,
        /// What the storage said.
        #[source]
        source: ClientError,
    },
    /// No snapshot is old enough for the target (Litestream: `no snapshots available`).
    #[error("no snapshots available in generation {generation}")]
    NoSnapshots {
        /// The chosen generation.
        generation: Generation,
    },
    /// An index's first segment does not start at offset 0.
    #[error("missing initial wal segment before {pos}")]
    MissingInitialSegment {
        /// Where the first listed segment of the index starts.
        pos: Pos,
    },
    /// Two segments of one index share an offset.
    #[error("wal segments out of order at {pos}")]
    SegmentsOutOfOrder {
        /// The offending segment.
        pos: Pos,
    },
    /// A whole WAL index is missing between the snapshot and the target.
    #[error("missing wal index {generation}/{index:08x}")]
    MissingIndex {
        /// The chosen generation.
        generation: Generation,
        /// The missing index.
        index: u32,
    },
    /// `-index` names an index beyond the generation's last one (0.3.13 silently restores
    /// everything instead).
    #[error("index {index:08x} not found in generation {generation}: the last index is {last:08x}")]
    IndexNotFound {
        /// The chosen generation.
        generation: Generation,
        /// The requested index.
        index: u32,
        /// The generation's highest index.
        last: u32,
    },
    /// The output path exists already; it is never overwritten.
    #[error("cannot restore, output path already exists: {}", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// Reading a snapshot or segment from the replica failed.
    #[error("cannot read {what}")]
    Read {
        /// The object: `snapshot <generation>/<index>` or `wal segment <pos>`.
        what: String,
        /// What the storage said.
        #[source]
        source: ClientError,
    },
    /// A snapshot or segment did not decode (age, LZ4) or is damaged (WAL checksum, position).
    #[error("{what} is damaged")]
    Damaged {
        /// The object at fault.
        what: String,
        /// What is wrong with it.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// An object could not be decrypted: no identity fits, or its age header is bad.
    #[error("cannot decrypt {what}")]
    Decrypt {
        /// The object: `snapshot <path>` or `wal segment <path>`.
        what: String,
        /// What age said.
        #[source]
        source: EncryptionError,
    },
    /// The snapshot does not hold a SQLite database (too short, wrong magic, bad page size,
    /// or a size that is not a whole number of pages).
    #[error("snapshot {path} is not a SQLite database: {reason}")]
    NotADatabase {
        /// The snapshot's path in the replica.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A WAL segment does not start where the previous segment of its index ended: a segment
    /// is missing (gap) or two overlap.
    #[error(
        "wal segment {path} starts at offset {offset}, but the wal of index {index:08x} \
         reaches offset {expected}: a segment is missing or overlaps"
    )]
    SegmentGap {
        /// The segment's path in the replica.
        path: String,
        /// The segment's WAL index.
        index: u32,
        /// Where the segment says it starts.
        offset: u64,
        /// Where the segments before it end.
        expected: u64,
    },
    /// A WAL index ends inside a transaction: its last segment is cut short or missing.
    #[error(
        "wal index {generation}/{index:08x} ends inside a transaction at offset {offset} \
         (last segment {path})"
    )]
    Uncommitted {
        /// The chosen generation.
        generation: Generation,
        /// The index.
        index: u32,
        /// Where the frames read end.
        offset: u64,
        /// The index's last segment.
        path: String,
    },
    /// A WAL's page size differs from the snapshot's.
    #[error("wal segment {path} has page size {wal_page_size}, the database {db_page_size}")]
    PageSizeMismatch {
        /// The segment's path in the replica.
        path: String,
        /// The WAL header's page size in bytes.
        wal_page_size: u32,
        /// The snapshot's page size in bytes.
        db_page_size: u32,
    },
    /// The restore stopped before `what` arrived: a download failed or the restore was
    /// cancelled.
    #[error("restore interrupted before {what}")]
    Interrupted {
        /// The object that never arrived.
        what: String,
    },
    /// The blocking worker that writes the database panicked or was cancelled.
    #[error("restore worker for {} failed", path.display())]
    Worker {
        /// The output path.
        path: PathBuf,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Writing the restored database failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
}
