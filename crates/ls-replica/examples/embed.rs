//! Embedding the engine: a program that replicates its own SQLite database, then restores the
//! replica into a new file and checks that every row came back.
//!
//! ```sh
//! cargo run -p ls-replica --example embed            # in a temporary directory
//! cargo run -p ls-replica --example embed -- /tmp/x  # in /tmp/x (kept), which must be empty
//! ```
//!
//! The steps are the ones `litestream replicate` and `litestream restore` take, without the
//! config file: [`Db::new`] with a [`Replica`] per storage client, [`Db::start`] to run the
//! monitor beside the application's writes, [`Db::sync`] to make what is committed durable in
//! the replicas, [`Db::close`] at the end (final sync); then [`plan_restore`] chooses the
//! snapshot and WAL segments and [`restore`] writes them into a new database. Any
//! [`ls_core::ReplicaClient`] works where [`FileReplicaClient`] is used here (see ls-backends:
//! S3, GCS, Azure, SFTP). `cargo xtask ci` runs this program.

use std::error::Error;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ls_backends::FileReplicaClient;
use ls_core::{AgeIdentities, ReplicaClient};
use ls_replica::{
    DEFAULT_PARALLELISM, Db, DbOptions, NoProgress, Replica, ReplicaOptions, RestoreOptions,
    RestoreUntil, plan_restore, restore,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::{Connection as _, Row as _};

/// Rows written before the first sync, and again before closing.
const ROWS_PER_BATCH: i64 = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    // A directory given on the command line is kept for inspection; else a temporary one.
    let temp;
    let dir: PathBuf = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    let db_path = dir.join("app.db");
    let replica_path = dir.join("replica");
    let restored_path = dir.join("restored.db");

    // The application's database. Litestream needs WAL mode; the engine sets it too.
    let mut app = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal),
    )
    .await?;
    sqlx::query("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut app)
        .await?;

    // Replicate it to a local folder, with Litestream's default settings.
    let client: Arc<dyn ReplicaClient> = Arc::new(FileReplicaClient::new(&replica_path));
    let replica = Replica::new(ReplicaOptions::new("file"), Arc::clone(&client));
    let db = Db::new(DbOptions::new(&db_path), vec![replica])?;
    db.start()?;

    // The application writes while the monitor ships the WAL; sync() waits until everything
    // committed so far is in the replica (a program would do this before acknowledging, say).
    insert_batch(&mut app, 0).await?;
    db.sync().await?;
    say(&format!(
        "replicated {ROWS_PER_BATCH} rows, position {}",
        position(&db)
    ))?;
    insert_batch(&mut app, ROWS_PER_BATCH).await?;
    app.close().await?;
    // close() stops the monitor after a final sync of the database and every replica.
    db.close().await?;
    say(&format!(
        "closed after {} rows, position {}",
        2 * ROWS_PER_BATCH,
        position(&db)
    ))?;

    // Restore the latest state into a new file.
    let replicas = vec![("file".to_owned(), Arc::clone(&client))];
    let plan = plan_restore(&replicas, None, RestoreUntil::Latest)
        .await?
        .ok_or("no backup found in the replica")?;
    let summary = restore(
        client,
        &plan,
        RestoreOptions {
            output: restored_path.clone(),
            parallelism: DEFAULT_PARALLELISM,
            identities: AgeIdentities::default(),
        },
        Arc::new(NoProgress),
    )
    .await?;
    say(&format!(
        "restored generation {} to {} ({} WAL segments, {} bytes)",
        plan.generation, summary.pos, summary.n_segments, summary.db_size_bytes
    ))?;

    check_restored(&restored_path, 2 * ROWS_PER_BATCH).await?;
    say(&format!(
        "ok: {} has all {} rows and passes integrity_check",
        restored_path.display(),
        2 * ROWS_PER_BATCH
    ))?;
    Ok(())
}

/// Inserts `ROWS_PER_BATCH` rows with ids from `first + 1`, one transaction per ten rows.
async fn insert_batch(app: &mut SqliteConnection, first: i64) -> Result<(), sqlx::Error> {
    for chunk in 0..ROWS_PER_BATCH / 10 {
        let mut tx = app.begin().await?;
        for row in 1..=10 {
            let id = first + chunk * 10 + row;
            sqlx::query("INSERT INTO events (id, body) VALUES (?, ?)")
                .bind(id)
                .bind(format!("event {id}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Opens the restored database read-only and checks its rows and its integrity.
async fn check_restored(path: &Path, expected_rows: i64) -> Result<(), Box<dyn Error>> {
    let mut conn =
        SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path).read_only(true))
            .await?;
    let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(id), 0), MAX(body) FROM events")
        .fetch_one(&mut conn)
        .await?;
    let (count, sum, max_body): (i64, i64, Option<String>) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if count != expected_rows || sum != expected_rows * (expected_rows + 1) / 2 {
        return Err(format!(
            "restored database has {count} rows (id sum {sum}), expected {expected_rows}"
        )
        .into());
    }
    if max_body.is_none() {
        return Err("restored rows have no body".into());
    }
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?;
    if integrity != "ok" {
        return Err(format!("restored database fails integrity_check: {integrity}").into());
    }
    conn.close().await?;
    Ok(())
}

/// The database's position, or `none`.
fn position(db: &Db) -> String {
    db.position()
        .map_or_else(|| "none".to_owned(), |pos| pos.to_string())
}

/// One line on stdout: this program's report to whoever runs it.
fn say(line: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "embed: {line}")
}
