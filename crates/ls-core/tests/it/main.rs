//! Integration tests of ls-core's byte formats against real data: replicas written by
//! Litestream 0.3.13 (`../shared/fixtures`) and WAL files written by SQLite itself.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers as well as tests: a panic is the test failure wanted"
)]

mod fixtures;
mod replica_fixtures;
mod robustness;
mod sqlite_wal;
