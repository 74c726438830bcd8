//! The restore progress bar: bytes and WAL segments done, rate and ETA, drawn on stderr only
//! when stderr is a terminal. The engine reports through `ls_replica::RestoreProgress`; this
//! file is the only one that knows indicatif.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ls_replica::{NoProgress, RestoreProgress};

/// How often the bar is redrawn at most.
const REFRESH_PER_SECOND: u8 = 8;

/// A progress bar on stderr.
pub(crate) struct TerminalProgress {
    bar: ProgressBar,
    segments_done: AtomicUsize,
    segments_total: AtomicUsize,
}

/// The progress reporter for a restore: a bar when stderr is a terminal, else nothing (logs
/// and the final summary line say what happened). The bar, when there is one, is returned too
/// so the caller can clear it.
pub(crate) fn restore_progress() -> (Arc<dyn RestoreProgress>, Option<Arc<TerminalProgress>>) {
    if !std::io::stderr().is_terminal() {
        return (Arc::new(NoProgress), None);
    }
    let bar = ProgressBar::with_draw_target(
        Some(0),
        ProgressDrawTarget::stderr_with_hz(REFRESH_PER_SECOND),
    );
    let style = ProgressStyle::with_template(
        "restoring [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} \
         eta {eta} {msg}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    let progress = Arc::new(TerminalProgress {
        bar,
        segments_done: AtomicUsize::new(0),
        segments_total: AtomicUsize::new(0),
    });
    let reporter: Arc<dyn RestoreProgress> = progress.clone();
    (reporter, Some(progress))
}

impl TerminalProgress {
    /// Removes the bar from the terminal.
    pub(crate) fn clear(&self) {
        self.bar.finish_and_clear();
    }

    fn show_segments(&self) {
        let done = self.segments_done.load(Ordering::Relaxed);
        let total = self.segments_total.load(Ordering::Relaxed);
        if total > 0 {
            self.bar.set_message(format!("{done}/{total} wal segments"));
        }
    }
}

impl RestoreProgress for TerminalProgress {
    fn start(&self, stored_bytes: u64, n_segments: usize) {
        self.bar.set_length(stored_bytes);
        self.segments_total.store(n_segments, Ordering::Relaxed);
        self.show_segments();
    }

    fn advance(&self, stored_bytes: u64, n_segments: usize) {
        self.bar.inc(stored_bytes);
        if n_segments > 0 {
            self.segments_done.fetch_add(n_segments, Ordering::Relaxed);
            self.show_segments();
        }
    }
}
