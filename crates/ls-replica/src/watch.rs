//! One inotify instance for the whole process (one thread, one descriptor), shared by every
//! database. For each database it keeps two watches:
//!
//! - its directory, for files created, deleted or renamed there (the database replaced, the WAL
//!   created or removed): such an event wakes the monitor at once;
//! - its WAL, one-shot, for writes: the first write after the watch is armed wakes the monitor,
//!   and the watch is armed again only when the next sync pass starts. A burst of thousands of
//!   commits thus reaches this thread as one event per pass instead of one per write, which is
//!   most of what an inotify watcher would otherwise cost under load.
//!
//! Without inotify (another system, no watches left) the monitor's tick still drives syncs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

/// A write that comes this long after the last one counts as the first after a quiet spell.
pub(crate) const BURST: Duration = Duration::from_millis(250);

/// How a database monitor hears of file events.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    /// The WAL whose writes wake us, set when subscribed.
    wal: OnceLock<PathBuf>,
    /// This wake, as the watcher's tables hold it.
    this: OnceLock<Weak<Wake>>,
    /// The WAL watch, when armed.
    armed: Mutex<Armed>,
    /// An event came after a quiet spell: run a pass at once.
    urgent: AtomicBool,
    /// Events came in a burst since the last pass.
    pending: AtomicBool,
}

/// The state of a database's one-shot WAL watch.
#[derive(Debug, Default)]
struct Armed {
    /// The watch descriptor, while the watch waits for a write.
    wd: Option<i32>,
    /// The WAL's modification time when the watch was armed: its last write before the one
    /// that fires the watch.
    last_write: Option<SystemTime>,
}

/// What woke a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The first change after a quiet spell, or a file created, deleted or renamed.
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

    /// A pass is starting: it will see every change so far. Arms the WAL watch again if a
    /// write used it up.
    pub(crate) fn pass_started(&self) {
        self.pending.store(false, Ordering::Release);
        let (Some(wal), Some(this)) = (self.wal.get(), self.this.get()) else {
            return;
        };
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        if armed.wd.is_none()
            && let Some(wd) = sys::arm_wal(wal, this)
        {
            armed.wd = Some(wd);
            // Read after the watch exists: a write in between fires it anyway.
            armed.last_write = std::fs::metadata(wal).and_then(|m| m.modified()).ok();
        }
    }

    /// Whether a write to the WAL will wake us: the WAL watch is armed.
    pub(crate) fn watching(&self) -> bool {
        self.armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wd
            .is_some()
    }

    /// A write to the WAL, reported by watch `wd`.
    fn wal_written(&self, wd: i32) {
        let quiet = {
            let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
            if armed.wd == Some(wd) {
                armed.wd = None;
                // Nothing was written while the watch waited, so the write before this one is
                // the one the WAL's time showed when it was armed.
                armed
                    .last_write
                    .take()
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|quiet_for| quiet_for >= BURST)
            } else {
                false
            }
        };
        if quiet {
            self.urgent.store(true, Ordering::Release);
            self.notify.notify_one();
        } else if !self.pending.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    /// The kernel dropped watch `wd` (used up, or the file is gone).
    fn wal_unwatched(&self, wd: i32) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        if armed.wd == Some(wd) {
            armed.wd = None;
            armed.last_write = None;
        }
    }

    /// A file of the database was created, deleted or renamed: run a pass at once, and watch
    /// whatever file now has the WAL's name.
    fn file_changed(&self) {
        {
            let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(wd) = armed.wd.take() {
                sys::disarm(wd);
            }
            armed.last_write = None;
        }
        self.urgent.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// Wakes `wake` whenever the database at `db` or its WAL `wal` (both in `dir`) is created,
/// deleted or renamed, and on writes to the WAL, for as long as `wake` lives.
pub(crate) fn subscribe(dir: &Path, db: &Path, wal: &Path, wake: &Arc<Wake>) {
    let _ = wake.wal.set(wal.to_path_buf());
    let _ = wake.this.set(Arc::downgrade(wake));
    sys::watch_dir(dir, &[db, wal], wake);
    wake.pass_started();
}

#[cfg(target_os = "linux")]
mod sys {
    use std::collections::HashMap;
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};

    use super::Wake;

    /// The process's inotify instance and what its watches mean.
    struct Watcher {
        watches: Watches,
        table: Mutex<Table>,
    }

    /// Files of one watched directory that wake someone, with who.
    type DirSubscribers = Vec<(PathBuf, Weak<Wake>)>;

    #[derive(Default)]
    struct Table {
        /// Directory watches: the directory and the files in it that wake someone.
        dirs: HashMap<i32, (PathBuf, DirSubscribers)>,
        /// Directory watch descriptors by path.
        dir_ids: HashMap<PathBuf, i32>,
        /// One-shot WAL watches.
        wals: HashMap<i32, (WatchDescriptor, Weak<Wake>)>,
    }

    fn watcher() -> Option<&'static Watcher> {
        static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
        WATCHER.get_or_init(start).as_ref()
    }

    fn start() -> Option<Watcher> {
        let inotify = match Inotify::init() {
            Ok(inotify) => inotify,
            Err(err) => {
                tracing::debug!(
                    error = crate::engine_error::as_dyn(&err),
                    "cannot watch files"
                );
                return None;
            }
        };
        let watches = inotify.watches();
        let spawned = std::thread::Builder::new()
            .name("ls-inotify".to_owned())
            .spawn(move || run(inotify));
        if let Err(err) = spawned {
            tracing::debug!(
                error = crate::engine_error::as_dyn(&err),
                "cannot watch files"
            );
            return None;
        }
        Some(Watcher {
            watches,
            table: Mutex::new(Table::default()),
        })
    }

    /// What one event asks of one subscriber.
    enum Action {
        Written(i32),
        Unwatched(i32),
        Changed,
    }

    fn run(mut inotify: Inotify) {
        let mut buffer = [0u8; 4096];
        loop {
            let events = match inotify.read_events_blocking(&mut buffer) {
                Ok(events) => events,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::debug!(
                        error = crate::engine_error::as_dyn(&err),
                        "file notifications stopped"
                    );
                    return;
                }
            };
            let mut actions: Vec<(Arc<Wake>, Action)> = Vec::new();
            if let Some(watcher) = watcher() {
                let mut table = watcher.table.lock().unwrap_or_else(PoisonError::into_inner);
                for event in events {
                    route(
                        &mut table,
                        event.wd.get_watch_descriptor_id(),
                        event.mask,
                        event.name,
                        &mut actions,
                    );
                }
            }
            // Subscribers are told outside the table lock (they take it to arm again).
            for (wake, action) in actions {
                match action {
                    Action::Written(wd) => wake.wal_written(wd),
                    Action::Unwatched(wd) => wake.wal_unwatched(wd),
                    Action::Changed => wake.file_changed(),
                }
            }
        }
    }

    fn route(
        table: &mut Table,
        wd: i32,
        mask: EventMask,
        name: Option<&OsStr>,
        actions: &mut Vec<(Arc<Wake>, Action)>,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            // Events were lost: everyone runs a pass.
            let all = table.dirs.values().flat_map(|(_, subs)| subs.iter());
            actions.extend(all.filter_map(|(_, w)| Some((w.upgrade()?, Action::Changed))));
            return;
        }
        if let Some((_, wake)) = table.wals.get(&wd) {
            let wake = wake.upgrade();
            if mask.contains(EventMask::IGNORED) {
                table.wals.remove(&wd);
                actions.extend(wake.map(|w| (w, Action::Unwatched(wd))));
            } else if mask.contains(EventMask::MODIFY) {
                actions.extend(wake.map(|w| (w, Action::Written(wd))));
            }
            return;
        }
        let (Some((dir, subs)), Some(name)) = (table.dirs.get_mut(&wd), name) else {
            return;
        };
        let path = dir.join(name);
        subs.retain(|(_, w)| w.strong_count() > 0);
        for (file, wake) in subs.iter() {
            if *file == path
                && let Some(wake) = wake.upgrade()
            {
                actions.push((wake, Action::Changed));
            }
        }
    }

    /// Watches `dir` for `files` being created, deleted or renamed, on behalf of `wake`.
    pub(super) fn watch_dir(dir: &Path, files: &[&Path], wake: &Arc<Wake>) {
        let Some(watcher) = watcher() else { return };
        let mut table = watcher.table.lock().unwrap_or_else(PoisonError::into_inner);
        let id = match table.dir_ids.get(dir) {
            Some(id) => *id,
            None => {
                let mask = WatchMask::CREATE
                    | WatchMask::DELETE
                    | WatchMask::MOVED_FROM
                    | WatchMask::MOVED_TO
                    | WatchMask::ONLYDIR;
                match watcher.watches.clone().add(dir, mask) {
                    Ok(wd) => {
                        let id = wd.get_watch_descriptor_id();
                        table.dir_ids.insert(dir.to_path_buf(), id);
                        table.dirs.insert(id, (dir.to_path_buf(), Vec::new()));
                        id
                    }
                    Err(err) => {
                        tracing::debug!(
                            error = crate::engine_error::as_dyn(&err),
                            "cannot watch database directory"
                        );
                        return;
                    }
                }
            }
        };
        if let Some((_, subs)) = table.dirs.get_mut(&id) {
            subs.extend(
                files
                    .iter()
                    .map(|f| (f.to_path_buf(), Arc::downgrade(wake))),
            );
        }
    }

    /// Arms a one-shot watch for writes to `wal` on behalf of `wake`; its descriptor, or `None`
    /// when the WAL does not exist yet (its creation is seen by the directory watch).
    pub(super) fn arm_wal(wal: &Path, wake: &Weak<Wake>) -> Option<i32> {
        let watcher = watcher()?;
        let mut table = watcher.table.lock().unwrap_or_else(PoisonError::into_inner);
        let wd = watcher
            .watches
            .clone()
            .add(wal, WatchMask::MODIFY | WatchMask::ONESHOT)
            .ok()?;
        let id = wd.get_watch_descriptor_id();
        table.wals.insert(id, (wd, wake.clone()));
        Some(id)
    }

    /// Drops watch `wd` (the file it watched was replaced).
    pub(super) fn disarm(wd: i32) {
        let Some(watcher) = watcher() else { return };
        let removed = watcher
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wals
            .remove(&wd);
        if let Some((wd, _)) = removed {
            // Already gone when the kernel dropped it with its file.
            let _ = watcher.watches.clone().remove(wd);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::path::Path;
    use std::sync::{Arc, Weak};

    use super::Wake;

    pub(super) fn watch_dir(_dir: &Path, _files: &[&Path], _wake: &Arc<Wake>) {}

    pub(super) fn arm_wal(_wal: &Path, _wake: &Weak<Wake>) -> Option<i32> {
        None
    }

    pub(super) fn disarm(_wd: i32) {}
}
