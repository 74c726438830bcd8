//! Reads, without taking them, the WAL-index locks other processes hold on a database's `-shm`
//! file (SQLite's `WALINDEX_LOCK_OFFSET` bytes), to notice an application's checkpoint that is
//! waiting for our read transaction.
//!
//! SQLite's lock bytes in the `-shm` file start at offset 120: byte 120 is the writer lock,
//! 121 the checkpointer lock, 122 the recovery lock, 123.. the reader slots. A checkpoint in
//! FULL, RESTART or TRUNCATE mode holds the writer and checkpointer locks together for its
//! whole call, waiting in its busy handler for readers; PASSIVE checkpoints never wait.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;

use nix::fcntl::{FcntlArg, fcntl};

/// Offset of the writer lock byte in the `-shm` file.
const WRITE_LOCK: i64 = 120;
/// Offset of the checkpointer lock byte.
const CKPT_LOCK: i64 = 121;

/// The process, other than this one, that holds `byte` of `shm` for writing, if any.
fn holder(shm: &File, byte: i64) -> Option<i32> {
    // F_GETLK asks whether this write lock could be taken; the kernel rewrites the struct with
    // a conflicting lock (type and holder), or sets the type to F_UNLCK.
    let mut lock = nix::libc::flock {
        l_type: i16::try_from(nix::libc::F_WRLCK).ok()?,
        l_whence: i16::try_from(nix::libc::SEEK_SET).ok()?,
        l_start: byte,
        l_len: 1,
        l_pid: 0,
    };
    fcntl(shm.as_raw_fd(), FcntlArg::F_GETLK(&mut lock)).ok()?;
    if i32::from(lock.l_type) == nix::libc::F_UNLCK {
        return None;
    }
    Some(lock.l_pid)
}

/// The process holding both the writer and the checkpointer locks, when one does: a checkpoint
/// in FULL, RESTART or TRUNCATE mode (or, rarely, a writer and a checkpointer of one process).
pub(crate) fn blocked_checkpointer(shm: &File) -> Option<i32> {
    let writer = holder(shm, WRITE_LOCK)?;
    let checkpointer = holder(shm, CKPT_LOCK)?;
    (writer == checkpointer).then_some(writer)
}

/// Whether `pid` still holds the writer lock.
pub(crate) fn holds_write_lock(shm: &File, pid: i32) -> bool {
    holder(shm, WRITE_LOCK) == Some(pid)
}

/// SQLite's commit counter in the wal-index header (`iChange`: bytes 8..12 of the `-shm` file),
/// which every committed write transaction increments.
pub(crate) fn commit_counter(shm: &File) -> Option<u32> {
    read_u32(shm, 8)
}

/// A 32-bit field of the `-shm` file, which SQLite stores in the machine's byte order.
fn read_u32(shm: &File, offset: u64) -> Option<u32> {
    let mut bytes = [0u8; 4];
    shm.read_exact_at(&mut bytes, offset).ok()?;
    #[expect(
        clippy::host_endian_bytes,
        reason = "SQLite keeps the wal-index in the machine's byte order"
    )]
    Some(u32::from_ne_bytes(bytes))
}

/// Offset of `nBackfill` in the `-shm` file: the frames checkpoints have copied into the
/// database file (the first field after the two 48-byte copies of the wal-index header).
const BACKFILL: u64 = 96;
/// Offset of `nBackfillAttempted`: the frames a checkpoint set out to copy, written before it
/// writes the database file (past `nBackfill` when a checkpoint stopped part way).
const BACKFILL_ATTEMPTED: u64 = 128;

/// How far checkpoints have written the WAL's current cycle into the database file: SQLite's
/// `nBackfill` and `nBackfillAttempted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backfill {
    done: u32,
    attempted: u32,
}

/// [`Backfill`], or `None` when the `-shm` cannot be read.
pub(crate) fn backfill(shm: &File) -> Option<Backfill> {
    Some(Backfill {
        done: read_u32(shm, BACKFILL)?,
        attempted: read_u32(shm, BACKFILL_ATTEMPTED)?,
    })
}

/// Size of one copy of the wal-index header at the start of the `-shm` file.
const HEADER_COPY: usize = 48;

/// The salts of the WAL cycle the wal-index describes (bytes 16..24 of the WAL header, which
/// the wal-index header keeps byte for byte at its offset 32); `None` when the two copies of
/// the wal-index header differ (a writer is updating it) or the `-shm` cannot be read.
fn cycle_salts(shm: &File) -> Option<[u8; 8]> {
    let mut both = [0u8; 2 * HEADER_COPY];
    shm.read_exact_at(&mut both, 0).ok()?;
    let (first, second) = both.split_at(HEADER_COPY);
    if first != second {
        return None;
    }
    first.get(32..40)?.try_into().ok()
}

/// The WAL cycle that `backfill` counts frames of, and the last frame of it the database
/// file may hold: the larger of `nBackfill` and `nBackfillAttempted`.
pub(crate) fn backfilled_through(shm: &File, backfill: Backfill) -> Option<([u8; 8], u32)> {
    Some((cycle_salts(shm)?, backfill.done.max(backfill.attempted)))
}

/// The WAL cycle of the wal-index and how many of its frames checkpoints copied into the
/// database file (`nBackfill`).
pub(crate) fn backfilled(shm: &File) -> Option<([u8; 8], u32)> {
    let done = read_u32(shm, BACKFILL)?;
    Some((cycle_salts(shm)?, done))
}
