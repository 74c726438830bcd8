//! One inotify watcher for the whole process (one thread, one descriptor), shared by every
//! database: it watches each database's directory once and wakes the monitors whose database
//! or WAL file changed. Without notifications (no inotify watches left, a file system without
//! them) the monitor's tick still drives syncs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use notify::Watcher as _;
use tokio::sync::Notify;

/// The monitors to wake, by watched file path.
type Subscribers = HashMap<PathBuf, Vec<Weak<Notify>>>;

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
                        wake.notify_one();
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
pub(crate) fn subscribe(dir: &Path, files: &[PathBuf], wake: &Arc<Notify>) {
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
