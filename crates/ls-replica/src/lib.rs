//! The replication engine: database monitor, shadow WAL, replica sync, snapshots, retention and
//! restore. It reaches storage only through `dyn ls_core::ReplicaClient` and knows no URL, cloud
//! SDK, YAML or argv.

mod db;
mod encode;
mod engine_error;
mod error;
mod metrics;
mod replica;
mod restore;
mod restore_plan;
mod shadow;
mod shmlock;
mod sqlite;
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
