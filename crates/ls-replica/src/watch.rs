//! One inotify watcher for the whole process (one thread, one descriptor), shared by every
//! database: it watches each database's directory once and wakes the monitors whose database
//! or WAL file changed. Without notifications (no inotify watches left, a file system without
//! them) the monitor's tick still drives syncs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use notify::Watcher as _;
use tokio::sync::Notify;

/// File events closer together than this are one burst of commits.
pub(crate) const BURST: Duration = Duration::from_millis(250);

/// How a database monitor hears of file events, sorted in the watcher's thread so that a burst
/// of commits wakes the monitor about once per sync pass, not once per write.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    last_event: Mutex<Option<Instant>>,
    /// An event came after a quiet spell: run a pass at once.
    urgent: AtomicBool,
    /// Events came in a burst since the last pass.
    pending: AtomicBool,
}

/// What woke a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The first change after a quiet spell.
    Urgent,
    /// More changes in a burst.
    Pending,
}

impl Wake {
    /// Waits for the next wake-up.
    pub(crate) async fn woken(&self) -> Woken {
        self.notify.notified().await;
        if self.urgent.swap(false, Ordering::AcqRel) {
            Woken::Urgent
        } else {
            Woken::Pending
        }
    }

    /// A pass is starting: it will see every change so far.
    pub(crate) fn pass_started(&self) {
        self.pending.store(false, Ordering::Release);
    }

    fn event(&self) {
        let now = Instant::now();
        let quiet = {
            let mut last = self
                .last_event
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let quiet = last.is_none_or(|at| now.duration_since(at) >= BURST);
            *last = Some(now);
            quiet
        };
        if quiet {
            self.urgent.store(true, Ordering::Release);
            self.notify.notify_one();
        } else if !self.pending.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }
}

/// The monitors to wake, by watched file path.
type Subscribers = HashMap<PathBuf, Vec<Weak<Wake>>>;

struct Shared {
    watcher: Option<notify::RecommendedWatcher>,
    watched_dirs: HashSet<PathBuf>,
}

fn subscribers() -> &'static Arc<Mutex<Subscribers>> {
    static SUBSCRIBERS: OnceLock<Arc<Mutex<Subscribers>>> = OnceLock::new();
    SUBSCRIBERS.get_or_init(|| Arc::new(Mutex::new(HashMap::new())))
}

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let subs = Arc::clone(subscribers());
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let subs = subs.lock().unwrap_or_else(PoisonError::into_inner);
            for path in &event.paths {
                for wake in subs.get(path).into_iter().flatten() {
                    if let Some(wake) = wake.upgrade() {
                        wake.event();
                    }
                }
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                tracing::debug!(
                    error = crate::engine_error::as_dyn(&err),
                    "cannot watch files"
                );
                None
            }
        };
        Mutex::new(Shared {
            watcher,
            watched_dirs: HashSet::new(),
        })
    })
}

/// Wakes `wake` whenever one of `files` (in one directory) changes, for as long as `wake`
/// lives.
pub(crate) fn subscribe(dir: &Path, files: &[PathBuf], wake: &Arc<Wake>) {
    {
        let mut subs = subscribers().lock().unwrap_or_else(PoisonError::into_inner);
        for file in files {
            let list = subs.entry(file.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(wake));
        }
    }
    let mut shared = shared().lock().unwrap_or_else(PoisonError::into_inner);
    if shared.watched_dirs.contains(dir) {
        return;
    }
    let Some(watcher) = shared.watcher.as_mut() else {
        return;
    };
    match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => {
            shared.watched_dirs.insert(dir.to_path_buf());
        }
        Err(err) => {
            tracing::debug!(
                error = crate::engine_error::as_dyn(&err),
                "cannot watch database directory"
            );
        }
    }
}
