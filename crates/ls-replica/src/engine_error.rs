//! The error of replication: the database monitor, the shadow WAL, replica syncs, snapshots and
//! retention. Each variant carries what was being done and where, and chains the cause.

use std::io;

use ls_core::{ClientError, EncryptionError, WalError};

/// Why a replication step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicateError {
    /// A file of the database, its WAL or the shadow WAL could not be read or written.
    #[error("{context}")]
    Io {
        /// What was done, naming the file.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SQLite refused a statement.
    #[error("{context}")]
    Sqlite {
        /// What was done.
        context: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A WAL header or frame is invalid.
    #[error("{context}")]
    Wal {
        /// What was read, naming the file.
        context: String,
        /// The cause.
        #[source]
        source: WalError,
    },
    /// The replica's storage failed.
    #[error("{context}")]
    Client {
        /// What was done, naming the object.
        context: String,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// age encryption could not be set up.
    #[error("{context}")]
    Encryption {
        /// What was done.
        context: String,
        /// The cause.
        #[source]
        source: EncryptionError,
    },
    /// A snapshot could not be taken consistently on any attempt (ARCHITECTURE.md, I7, I8), so
    /// none was stored: why the last attempt was given up.
    #[error("snapshot: {0}")]
    Unsettled(&'static str),
    /// Any other failure, fully described by its message.
    #[error("{0}")]
    Other(String),
}

impl ReplicateError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A SQLite error with what was being done.
    pub(crate) fn sql(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Sqlite {
            context: context.into(),
            source,
        }
    }

    /// Whether SQLite said the database is busy or locked: another connection held the lock
    /// longer than our busy timeout. The step is simply tried again on the next pass.
    pub(crate) fn is_busy(&self) -> bool {
        let Self::Sqlite {
            source: sqlx::Error::Database(err),
            ..
        } = self
        else {
            return false;
        };
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
        err.code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
    }

    /// A storage error with what was being done.
    pub(crate) fn client(context: impl Into<String>, source: ClientError) -> Self {
        Self::Client {
            context: context.into(),
            source,
        }
    }
}

/// An error as the `&dyn Error` a `tracing` field records with its whole source chain.
pub(crate) fn as_dyn<E: std::error::Error + 'static>(
    err: &E,
) -> &(dyn std::error::Error + 'static) {
    err
}
