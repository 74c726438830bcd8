//! The replication engine: database monitor, shadow WAL, replica sync, snapshots, retention and
//! restore. It reaches storage only through `dyn ls_core::ReplicaClient` and knows no URL, cloud
//! SDK, YAML or argv.
