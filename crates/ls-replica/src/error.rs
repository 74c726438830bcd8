//! The engine's errors: each names the replica, generation, segment or file at fault.

use std::io;
use std::path::PathBuf;

use ls_core::{ClientError, Generation, Pos};

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
