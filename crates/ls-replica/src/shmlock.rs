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
/// which every committed write transaction increments. It is stored in the machine's byte
/// order; callers only compare two readings, so reading it as little-endian is enough.
pub(crate) fn commit_counter(shm: &File) -> Option<u32> {
    read_u32(shm, 8)
}

/// A 32-bit field of the `-shm` file, read as little-endian (SQLite stores it in the machine's
/// byte order; callers only compare readings).
fn read_u32(shm: &File, offset: u64) -> Option<u32> {
    let mut bytes = [0u8; 4];
    shm.read_exact_at(&mut bytes, offset).ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Offset of `nBackfill` in the `-shm` file: the frames checkpoints have copied into the
/// database file (the first field after the two 48-byte copies of the wal-index header).
const BACKFILL: u64 = 96;

/// SQLite's `nBackfill`, or `None` when another process holds the checkpointer lock (a
/// checkpoint may be writing the database file now) or the `-shm` cannot be read.
///
/// Only a checkpoint writes a WAL-mode database file, it holds the checkpointer lock while it
/// does, and it raises `nBackfill` before letting go (a WAL restart sets it to 0). So when two
/// readings are equal and not `None`, no other process's checkpoint wrote the file between
/// them.
pub(crate) fn quiet_backfill(shm: &File) -> Option<u32> {
    if holder(shm, CKPT_LOCK).is_some() {
        return None;
    }
    read_u32(shm, BACKFILL)
}
