//! Tick deadlines that cost one wake-up instead of two.
//!
//! Tokio's timer wheel keeps a timer due in a second or more on a level of 64 ms slots and wakes
//! at the start of its slot to move it to the 1 ms level, then wakes again when it is due: two
//! wake-ups per tick of an idle monitor. A deadline exactly at a slot start (a multiple of 64 ms
//! after the runtime's timer started, as tokio counts it) fires on the first. The binary records
//! that start with [`set_timer_epoch`] right before it builds the runtime; without it deadlines
//! are used as given. Only the cost depends on this, never the behaviour: a deadline off the
//! grid still fires on time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The slot length of tokio's second timer level.
const GRID: Duration = Duration::from_millis(64);

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Records the instant the async runtime's timer counts from: call it right before building
/// the runtime (tokio takes its own start a moment later and rounds deadlines up to the next
/// millisecond, so grid points computed from this instant land on its slot starts). Later calls
/// are ignored.
pub fn set_timer_epoch(at: Instant) {
    let _ = EPOCH.set(at);
}

/// The first point of the timer grid at or after `at` (`at` itself when no epoch was set).
pub(crate) fn on_grid(at: Instant) -> Instant {
    let Some(epoch) = EPOCH.get() else {
        return at;
    };
    let since = at.saturating_duration_since(*epoch).as_nanos();
    let grid = GRID.as_nanos();
    let aligned = since.div_ceil(grid).saturating_mul(grid);
    u64::try_from(aligned)
        .ok()
        .and_then(|nanos| epoch.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_grid_rounds_up_to_a_multiple_of_64_ms_after_the_epoch() {
        let epoch = Instant::now();
        let _ = EPOCH.set(epoch);
        let epoch = *EPOCH.get().expect("set above");
        let aligned = on_grid(epoch + Duration::from_millis(1000));
        assert_eq!(aligned - epoch, Duration::from_millis(1024));
        let exact = on_grid(epoch + Duration::from_millis(128));
        assert_eq!(exact - epoch, Duration::from_millis(128));
        assert_eq!(on_grid(epoch), epoch);
    }
}
