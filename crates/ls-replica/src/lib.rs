//! The replication engine: database monitor, shadow WAL, replica sync, snapshots, retention and
//! restore. It reaches storage only through `dyn ls_core::ReplicaClient` and knows no URL, cloud
//! SDK, YAML or argv.
//!
//! # Replicating
//!
//! A [`Db`] is one database and its replicas: [`Db::new`] takes [`DbOptions`] (Litestream's
//! `dbs[]` settings) and one [`Replica`] per storage client ([`ReplicaOptions`] plus an
//! `Arc<dyn ls_core::ReplicaClient>`). [`Db::start`] runs the monitor: it holds a read
//! transaction so no checkpoint passes frames not yet copied, copies new WAL frames into the
//! shadow WAL, checkpoints through SQLite, and each replica uploads snapshots and LZ4 WAL
//! segments under `generations/<generation>/`. [`Db::sync`] makes everything committed so far
//! durable in every replica; [`Db::close`] stops the monitor after a final sync. Failures are
//! [`ReplicateError`]s.
//!
//! # Restoring
//!
//! [`plan_restore`] lists the replicas and picks the generation, snapshot and WAL segments for a
//! [`RestoreUntil`] target (latest, a WAL index or a timestamp), as Litestream 0.3.13 chooses;
//! [`restore`] downloads them, checks every frame, and writes a new database file named by
//! [`RestoreOptions`], reporting to a [`RestoreProgress`]. Failures are [`RestoreError`]s.
//!
//! # Example
//!
//! `examples/embed.rs` replicates a program's own database to a folder and restores it
//! (`cargo run -p ls-replica --example embed`). In short:
//!
//! ```no_run
//! # async fn example(client: std::sync::Arc<dyn ls_core::ReplicaClient>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use ls_replica::{
//!     DEFAULT_PARALLELISM, Db, DbOptions, NoProgress, Replica, ReplicaOptions, RestoreOptions,
//!     RestoreUntil, plan_restore, restore,
//! };
//!
//! let replica = Replica::new(ReplicaOptions::new("file"), Arc::clone(&client));
//! let db = Db::new(DbOptions::new("app.db"), vec![replica])?;
//! db.start()?;
//! // ... the application writes to app.db ...
//! db.sync().await?;
//! db.close().await?;
//!
//! let replicas = vec![("file".to_owned(), Arc::clone(&client))];
//! let plan = plan_restore(&replicas, None, RestoreUntil::Latest)
//!     .await?
//!     .ok_or("no backup")?;
//! let options = RestoreOptions {
//!     output: "restored.db".into(),
//!     parallelism: DEFAULT_PARALLELISM,
//!     identities: ls_core::AgeIdentities::default(),
//! };
//! let summary = restore(client, &plan, options, Arc::new(NoProgress)).await?;
//! assert_eq!(summary.pos.generation, plan.generation);
//! # Ok(())
//! # }
//! ```

mod db;
mod encode;
mod engine_error;
mod error;
mod image;
mod metrics;
mod replica;
mod restore;
mod restore_plan;
mod shadow;
mod shmlock;
mod sqlite;
mod timer_grid;
mod watch;

pub use crate::db::{Db, DbOptions, FULL_PASS_EVERY};
pub use crate::engine_error::ReplicateError;
pub use crate::error::RestoreError;
pub use crate::metrics::describe_metrics;
pub use crate::replica::{Replica, ReplicaOptions};
pub use crate::restore::{
    DEFAULT_PARALLELISM, NoProgress, RestoreOptions, RestoreProgress, RestoreSummary,
    WAL_BUDGET_BYTES, restore,
};
pub use crate::restore_plan::{RestorePlan, RestoreUntil, plan_restore};
pub use crate::timer_grid::set_timer_epoch;
