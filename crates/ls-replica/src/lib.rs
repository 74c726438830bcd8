//! The replication engine: database monitor, shadow WAL, replica sync, snapshots, retention and
//! restore. It reaches storage only through `dyn ls_core::ReplicaClient` and knows no URL, cloud
//! SDK, YAML or argv.

mod error;
mod restore;
mod restore_plan;

pub use crate::error::RestoreError;
pub use crate::restore::{
    DEFAULT_PARALLELISM, NoProgress, RestoreOptions, RestoreProgress, RestoreSummary,
    WAL_BUDGET_BYTES, restore,
};
pub use crate::restore_plan::{RestorePlan, RestoreUntil, plan_restore};
