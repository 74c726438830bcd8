//! The `process_*` metric families Prometheus clients export (CPU, memory, descriptors, start
//! time), read from `/proc/self` every few seconds while the metrics server runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock ticks per second of `/proc/<pid>/stat` times on Linux.
const TICKS_PER_SECOND: f64 = 100.0;
/// Page size of `/proc/<pid>/statm` on the platforms we build for.
const PAGE_SIZE: f64 = 4096.0;

/// Starts updating the `process_*` gauges; a no-op where `/proc` is missing.
pub(crate) fn spawn() {
    metrics::describe_counter!(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds."
    );
    metrics::describe_gauge!(
        "process_resident_memory_bytes",
        "Resident memory size in bytes."
    );
    metrics::describe_gauge!(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes."
    );
    metrics::describe_gauge!("process_open_fds", "Number of open file descriptors.");
    metrics::describe_gauge!(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds."
    );
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    metrics::gauge!("process_start_time_seconds").set(start);
    tokio::spawn(async {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            update();
        }
    });
}

fn update() {
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat: 11 and 12 after the state field.
        let cpu = (ticks(11) + ticks(12)) / TICKS_PER_SECOND;
        metrics::counter!("process_cpu_seconds_total").absolute(whole(cpu));
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let mut pages = statm
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let virtual_pages = pages.next().unwrap_or(0.0);
        let resident_pages = pages.next().unwrap_or(0.0);
        metrics::gauge!("process_virtual_memory_bytes").set(virtual_pages * PAGE_SIZE);
        metrics::gauge!("process_resident_memory_bytes").set(resident_pages * PAGE_SIZE);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let count = entries.count();
        metrics::gauge!("process_open_fds")
            .set(f64::from(u32::try_from(count).unwrap_or(u32::MAX)));
    }
}

/// Whole seconds of CPU time: the facade's counters are integers.
#[allow(
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn whole(seconds: f64) -> u64 {
    seconds.max(0.0) as u64
}
