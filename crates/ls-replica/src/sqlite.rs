//! Litestream's own SQLite connections (spec 2.4-2.6): WAL mode, no auto-checkpoint, a persisted
//! WAL, the `_litestream_seq` / `_litestream_lock` tables, the long read transaction and
//! checkpoints. Every change to the database goes through SQLite here; nothing else in the
//! engine writes the database or its WAL.

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

/// The upsert that forces SQLite to write a frame (spec 2.4).
const SEQ_UPSERT: &str = "INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) \
     ON CONFLICT (id) DO UPDATE SET seq = seq + 1";

/// A checkpoint mode Litestream issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckpointMode {
    /// Backfill what no reader needs; never waits.
    Passive,
    /// Backfill everything and restart the WAL, waiting for readers.
    Restart,
    /// As `Restart`, and truncate the WAL file to zero bytes.
    Truncate,
}

impl CheckpointMode {
    /// The mode's name in SQL and in metric labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Passive => "PASSIVE",
            Self::Restart => "RESTART",
            Self::Truncate => "TRUNCATE",
        }
    }
}

/// One SQLite connection on the replicated database, opened the way Litestream opens its own.
#[derive(Debug)]
pub(crate) struct Sqlite {
    conn: SqliteConnection,
    /// Whether this connection has an open transaction of ours.
    in_tx: bool,
}

impl Sqlite {
    /// Opens `path` (which must exist) with a 1 s busy timeout and a persisted WAL, so that
    /// closing it never checkpoints and deletes the WAL.
    pub(crate) async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(1))
            .create_if_missing(false)
            .foreign_keys(false)
            .statement_cache_capacity(16);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        {
            let mut handle = conn.lock_handle().await?;
            persist_wal(handle.as_raw_handle().as_ptr());
        }
        Ok(Self { conn, in_tx: false })
    }

    /// Switches the database to WAL mode, turns auto-checkpoints off, creates Litestream's
    /// tables and returns the page size (spec 2.4, 2.5).
    pub(crate) async fn init(&mut self) -> Result<u32, InitError> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = wal")
            .fetch_one(&mut self.conn)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(InitError::NotWal(mode));
        }
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut self.conn)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);\
             CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
        )
        .execute(&mut self.conn)
        .await?;
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut self.conn)
            .await?;
        u32::try_from(page_size)
            .ok()
            .filter(|size| *size > 0)
            .ok_or(InitError::PageSize(page_size))
    }

    /// Turns auto-checkpoints off on this connection (every connection of ours).
    pub(crate) async fn no_autocheckpoint(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Begins a read transaction and reads `_litestream_seq`, pinning the WAL (spec 2.6).
    pub(crate) async fn begin_read(&mut self) -> Result<(), sqlx::Error> {
        if self.in_tx {
            return Ok(());
        }
        sqlx::raw_sql("BEGIN").execute(&mut self.conn).await?;
        self.in_tx = true;
        sqlx::query("SELECT COUNT(1) FROM _litestream_seq")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Takes SQLite's write lock: a transaction that inserts into `_litestream_lock`, to be
    /// rolled back with [`Sqlite::rollback`].
    pub(crate) async fn begin_write_lock(&mut self) -> Result<(), sqlx::Error> {
        if self.in_tx {
            self.rollback().await?;
        }
        sqlx::raw_sql("BEGIN").execute(&mut self.conn).await?;
        self.in_tx = true;
        sqlx::query("INSERT INTO _litestream_lock (id) VALUES (1)")
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Ends the open transaction, if any, keeping nothing.
    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        if !self.in_tx {
            return Ok(());
        }
        self.in_tx = false;
        sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Writes one row to `_litestream_seq`, so SQLite writes a frame (and restarts a fully
    /// checkpointed WAL).
    pub(crate) async fn bump_seq(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query(SEQ_UPSERT).execute(&mut self.conn).await?;
        Ok(())
    }

    /// Runs `PRAGMA wal_checkpoint(mode)` and returns SQLite's three numbers (busy, WAL frames,
    /// frames checkpointed). A busy result is not an error.
    pub(crate) async fn checkpoint(
        &mut self,
        mode: CheckpointMode,
    ) -> Result<[i64; 3], sqlx::Error> {
        let row = sqlx::query(match mode {
            CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            CheckpointMode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            CheckpointMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        })
        .fetch_one(&mut self.conn)
        .await?;
        Ok([row.try_get(0)?, row.try_get(1)?, row.try_get(2)?])
    }

    /// Closes the connection (the WAL stays: it is persisted).
    pub(crate) async fn close(mut self) -> Result<(), sqlx::Error> {
        self.rollback().await?;
        self.conn.close().await
    }
}

/// Why a database cannot be made ready for replication.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    /// SQLite refused a statement.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The journal mode could not be set to WAL (another connection holds a lock, or the
    /// database is in memory).
    #[error("enable wal failed, mode={0:?}")]
    NotWal(String),
    /// SQLite reported an impossible page size.
    #[error("invalid page size: {0}")]
    PageSize(i64),
}

/// Sets `SQLITE_FCNTL_PERSIST_WAL` on the main database of `db` (spec 2.5), so that the last
/// connection to close does not checkpoint and delete the WAL that replication follows.
#[allow(unsafe_code)]
fn persist_wal(db: *mut libsqlite3_sys::sqlite3) {
    let mut on: c_int = 1;
    // SAFETY: `db` is a live handle locked out of sqlx's worker for the duration of this call
    // (`LockedSqliteHandle`); "main" is a NUL-terminated static string; the PERSIST_WAL file
    // control reads and writes exactly one `int` through the pointer, which outlives the call.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            libsqlite3_sys::SQLITE_FCNTL_PERSIST_WAL,
            std::ptr::from_mut(&mut on).cast::<c_void>(),
        )
    };
    // The unix VFS always implements PERSIST_WAL; another VFS may not, and then the WAL is
    // simply not persisted at close, as with any SQLite client.
    if rc != libsqlite3_sys::SQLITE_OK {
        tracing::debug!(rc, "cannot set SQLITE_FCNTL_PERSIST_WAL");
    }
}
