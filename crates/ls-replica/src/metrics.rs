//! The HELP texts of Litestream's metric families (spec 12), registered with whichever
//! `metrics` recorder the program installed.

use std::sync::Once;

/// Registers the HELP text of every Litestream metric family with the installed `metrics`
/// recorder; call it once, after installing the recorder (e.g. a Prometheus exporter).
pub fn describe_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!("litestream_db_size", "The current size of the real DB");
        metrics::describe_gauge!("litestream_wal_size", "The current size of the real WAL");
        metrics::describe_counter!(
            "litestream_total_wal_bytes",
            "Total number of bytes written to shadow WAL"
        );
        metrics::describe_gauge!(
            "litestream_shadow_wal_index",
            "The current index of the shadow WAL"
        );
        metrics::describe_gauge!(
            "litestream_shadow_wal_size",
            "Current size of shadow WAL, in bytes"
        );
        metrics::describe_counter!(
            "litestream_sync_count",
            "Number of sync operations performed"
        );
        metrics::describe_counter!(
            "litestream_sync_error_count",
            "Number of sync errors that have occurred"
        );
        metrics::describe_gauge!(
            "litestream_sync_seconds",
            "Time spent syncing shadow WAL, in seconds"
        );
        metrics::describe_counter!(
            "litestream_checkpoint_count",
            "Number of checkpoint operations performed"
        );
        metrics::describe_counter!(
            "litestream_checkpoint_error_count",
            "Number of checkpoint errors that have occurred"
        );
        metrics::describe_gauge!(
            "litestream_checkpoint_seconds",
            "Time spent checkpointing WAL, in seconds"
        );
        metrics::describe_counter!(
            "litestream_replica_wal_bytes",
            "The number wal bytes written"
        );
        metrics::describe_gauge!("litestream_replica_wal_index", "The current WAL index");
        metrics::describe_gauge!("litestream_replica_wal_offset", "The current WAL offset");
        metrics::describe_counter!(
            "litestream_replica_validation_total",
            "The number of validations performed"
        );
        metrics::describe_gauge!(
            "litestream_replica_lag_seconds",
            "Seconds since the replica last held everything the shadow WAL held (0 when caught up)"
        );
    });
}
