//! Which replica, generation, snapshot and WAL segments a restore uses: Litestream 0.3.13's
//! choices (`DB.CalcRestoreTarget`, `Replica.SnapshotIndexAt`, `Replica.walSegmentMap`), made
//! once from one listing of each generation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use ls_core::{ClientError, Generation, ReplicaClient, SnapshotInfo, WalSegmentInfo};

use crate::error::RestoreError;

/// How far a restore goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestoreUntil {
    /// Everything the chosen generation holds.
    #[default]
    Latest,
    /// Up to and including this WAL index (`-index`).
    Index(u32),
    /// The state at this time (`-timestamp`): files created after it are not used.
    Timestamp(SystemTime),
}

/// The replica, generation and files one restore uses.
#[derive(Clone, Debug)]
pub struct RestorePlan {
    /// Position of the chosen replica in the list handed to [`plan_restore`].
    pub replica: usize,
    /// The chosen generation.
    pub generation: Generation,
    /// The snapshot the restore starts from.
    pub snapshot: SnapshotInfo,
    /// The WAL segments applied after the snapshot, index by index, each in offset order,
    /// from the snapshot's index up; empty for a snapshot-only restore.
    pub wal: Vec<Vec<WalSegmentInfo>>,
}

impl RestorePlan {
    /// The last WAL index applied, if any WAL is applied.
    pub fn max_index(&self) -> Option<u32> {
        self.wal
            .last()
            .and_then(|segments| segments.first())
            .map(|segment| segment.index)
    }

    /// Stored bytes the restore downloads: the snapshot and every segment.
    pub fn stored_bytes(&self) -> u64 {
        self.snapshot.size
            + self
                .wal
                .iter()
                .flatten()
                .map(|segment| segment.size)
                .sum::<u64>()
    }

    /// Number of WAL segments the restore applies.
    pub fn n_segments(&self) -> usize {
        self.wal.iter().map(Vec::len).sum()
    }
}

/// One generation as listed once: its files and time bounds.
struct GenerationListing {
    generation: Generation,
    snapshots: Vec<SnapshotInfo>,
    segments: Vec<WalSegmentInfo>,
    created_at: SystemTime,
    updated_at: SystemTime,
}

impl GenerationListing {
    /// Whether this generation holds newer data than `other`: its newest file is newer, or
    /// equally new and its oldest file is newer. Litestream 0.3.13 keeps the first in listing
    /// order on a tie, which on a store that keeps whole seconds (SFTP) restores the older of two
    /// generations written in the same second about half the time: a generation that began
    /// later is the one that followed.
    fn is_newer_than(&self, other: &Self) -> bool {
        (self.updated_at, self.created_at) > (other.updated_at, other.created_at)
    }
}

/// Chooses the replica, generation, snapshot and WAL segments, as Litestream 0.3.13 does.
///
/// `replicas` are `(name, client)` in config order. The generation whose newest file is newest
/// wins; on a tie, the one whose oldest file is newer (0.3.13 keeps listing order there), then
/// the earlier replica and the earlier generation in listing order; with a
/// timestamp only generations whose files span it are candidates. `Ok(None)` means no backup
/// matches (Litestream's `no matching backups found`).
///
/// # Errors
/// A listing failure, or a generation without the snapshot or WAL the target needs.
///
/// # Cancel safety
/// Cancel safe: it only lists.
pub async fn plan_restore(
    replicas: &[(String, Arc<dyn ReplicaClient>)],
    generation: Option<Generation>,
    until: RestoreUntil,
) -> Result<Option<RestorePlan>, RestoreError> {
    let mut best: Option<(usize, GenerationListing)> = None;
    for (replica, (name, client)) in replicas.iter().enumerate() {
        let listed = replica_target(client.as_ref(), generation, until)
            .await
            .map_err(|source| RestoreError::List {
                replica: name.clone(),
                source,
            })?;
        if let Some(listed) = listed
            && best
                .as_ref()
                .is_none_or(|(_, current)| listed.is_newer_than(current))
        {
            best = Some((replica, listed));
        }
    }
    let Some((replica, listed)) = best else {
        return Ok(None);
    };
    let (snapshot, wal) = select_files(&listed, until)?;
    Ok(Some(RestorePlan {
        replica,
        generation: listed.generation,
        snapshot,
        wal,
    }))
}

/// The best generation of one replica (Litestream's `Replica.CalcRestoreTarget`).
async fn replica_target(
    client: &dyn ReplicaClient,
    only: Option<Generation>,
    until: RestoreUntil,
) -> Result<Option<GenerationListing>, ClientError> {
    let mut best: Option<GenerationListing> = None;
    for generation in client.generations().await? {
        if only.is_some_and(|only| only != generation) {
            continue;
        }
        let snapshots = client.snapshots(&generation).await?;
        let segments = client.wal_segments(&generation).await?;
        let times = snapshots
            .iter()
            .map(|snapshot| snapshot.created_at)
            .chain(segments.iter().map(|segment| segment.created_at));
        let Some((created_at, updated_at)) = time_bounds(times) else {
            continue;
        };
        if let RestoreUntil::Timestamp(timestamp) = until
            && (timestamp < created_at || timestamp > updated_at)
        {
            continue;
        }
        let listed = GenerationListing {
            generation,
            snapshots,
            segments,
            created_at,
            updated_at,
        };
        if best
            .as_ref()
            .is_none_or(|current| listed.is_newer_than(current))
        {
            best = Some(listed);
        }
    }
    Ok(best)
}

/// The earliest and latest of `times`, or `None` when there are none.
fn time_bounds(times: impl Iterator<Item = SystemTime>) -> Option<(SystemTime, SystemTime)> {
    times.fold(None, |bounds, time| match bounds {
        None => Some((time, time)),
        Some((min, max)) => Some((min.min(time), max.max(time))),
    })
}

/// The snapshot and the WAL segments to apply (Litestream's `SnapshotIndexAt`,
/// `SnapshotIndexByIndex` and `walSegmentMap`, plus the checks 0.3.13 lacks).
fn select_files(
    listed: &GenerationListing,
    until: RestoreUntil,
) -> Result<(SnapshotInfo, Vec<Vec<WalSegmentInfo>>), RestoreError> {
    let generation = listed.generation;
    let snapshot = match until {
        RestoreUntil::Index(index) => listed
            .snapshots
            .iter()
            .rfind(|snapshot| snapshot.index <= index),
        RestoreUntil::Latest => latest_created(listed.snapshots.iter()),
        RestoreUntil::Timestamp(timestamp) => latest_created(
            listed
                .snapshots
                .iter()
                .filter(|snapshot| snapshot.created_at <= timestamp),
        ),
    };
    let Some(snapshot) = snapshot.cloned() else {
        return Err(RestoreError::NoSnapshots { generation });
    };

    let mut by_index: BTreeMap<u32, Vec<WalSegmentInfo>> = BTreeMap::new();
    for segment in &listed.segments {
        let past_target = match until {
            RestoreUntil::Latest => false,
            RestoreUntil::Index(index) => segment.index > index,
            RestoreUntil::Timestamp(timestamp) => segment.created_at > timestamp,
        };
        if past_target {
            break;
        }
        if segment.index < snapshot.index {
            continue;
        }
        let offsets = by_index.entry(segment.index).or_default();
        match offsets.last() {
            None if segment.offset != 0 => {
                return Err(RestoreError::MissingInitialSegment { pos: segment.pos() });
            }
            Some(previous) if segment.offset <= previous.offset => {
                return Err(RestoreError::SegmentsOutOfOrder { pos: segment.pos() });
            }
            _ => offsets.push(segment.clone()),
        }
    }

    if let RestoreUntil::Index(index) = until {
        let last = listed
            .segments
            .last()
            .map(|segment| segment.index)
            .max(Some(snapshot.index));
        if last.is_some_and(|last| index > last) {
            return Err(RestoreError::IndexNotFound {
                generation,
                index,
                last: last.unwrap_or(0),
            });
        }
    }

    let mut wal = Vec::with_capacity(by_index.len());
    let mut expected = snapshot.index;
    for (index, segments) in by_index {
        if index != expected {
            return Err(RestoreError::MissingIndex {
                generation,
                index: expected,
            });
        }
        wal.push(segments);
        expected = index.saturating_add(1);
    }
    Ok((snapshot, wal))
}

/// The snapshot with the latest `created_at`; ties keep the earlier one in listing order.
fn latest_created<'a>(
    snapshots: impl Iterator<Item = &'a SnapshotInfo>,
) -> Option<&'a SnapshotInfo> {
    snapshots.fold(None, |best: Option<&SnapshotInfo>, snapshot| match best {
        Some(best) if snapshot.created_at <= best.created_at => Some(best),
        _ => Some(snapshot),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn listing(snapshots: &[(u32, u64)], segments: &[(u32, u64, u64)]) -> GenerationListing {
        let generation = Generation::parse("0123456789abcdef").unwrap();
        let snapshots: Vec<_> = snapshots
            .iter()
            .map(|&(index, time)| SnapshotInfo {
                generation,
                index,
                size: 1,
                created_at: at(time),
            })
            .collect();
        let segments: Vec<_> = segments
            .iter()
            .map(|&(index, offset, time)| WalSegmentInfo {
                generation,
                index,
                offset,
                size: 1,
                created_at: at(time),
            })
            .collect();
        let times = snapshots
            .iter()
            .map(|s| s.created_at)
            .chain(segments.iter().map(|s| s.created_at));
        let (created_at, updated_at) = time_bounds(times).unwrap();
        GenerationListing {
            generation,
            snapshots,
            segments,
            created_at,
            updated_at,
        }
    }

    fn shape(wal: &[Vec<WalSegmentInfo>]) -> Vec<Vec<(u32, u64)>> {
        wal.iter()
            .map(|segments| segments.iter().map(|s| (s.index, s.offset)).collect())
            .collect()
    }

    #[test]
    fn select_latest_starts_at_newest_snapshot_and_takes_all_later_wal() {
        let listed = listing(
            &[(0, 10), (2, 30)],
            &[
                (0, 0, 11),
                (1, 0, 20),
                (2, 0, 31),
                (2, 4152, 32),
                (3, 0, 40),
            ],
        );
        let (snapshot, wal) = select_files(&listed, RestoreUntil::Latest).unwrap();
        assert_eq!(snapshot.index, 2);
        assert_eq!(shape(&wal), vec![vec![(2, 0), (2, 4152)], vec![(3, 0)]]);
    }

    #[test]
    fn newer_generation_is_the_newest_file_then_the_later_start() {
        let old = listing(&[(0, 10)], &[(0, 0, 11), (0, 4152, 40)]);
        let new = listing(&[(0, 40)], &[(0, 0, 40)]);
        // Same newest second (a store with whole-second times): the one that began later wins,
        // whichever is listed first.
        assert!(new.is_newer_than(&old));
        assert!(!old.is_newer_than(&new));
        let later = listing(&[(0, 10)], &[(0, 0, 41)]);
        assert!(later.is_newer_than(&new));
        assert!(!new.is_newer_than(&later));
        // Same bounds: the first listed stays.
        assert!(!new.is_newer_than(&listing(&[(0, 40)], &[(0, 0, 40)])));
    }

    #[test]
    fn select_index_stops_after_that_index() {
        let listed = listing(
            &[(0, 10), (2, 30)],
            &[(0, 0, 11), (1, 0, 20), (2, 0, 31), (3, 0, 40)],
        );
        let (snapshot, wal) = select_files(&listed, RestoreUntil::Index(1)).unwrap();
        assert_eq!(snapshot.index, 0);
        assert_eq!(shape(&wal), vec![vec![(0, 0)], vec![(1, 0)]]);
    }

    #[test]
    fn select_index_past_the_end_fails() {
        let listed = listing(&[(0, 10)], &[(0, 0, 11), (1, 0, 20)]);
        let err = select_files(&listed, RestoreUntil::Index(0xff)).unwrap_err();
        assert!(
            matches!(
                err,
                RestoreError::IndexNotFound {
                    index: 0xff,
                    last: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn select_timestamp_cuts_at_first_newer_segment() {
        let listed = listing(&[(0, 10)], &[(0, 0, 11), (0, 100, 12), (1, 0, 20)]);
        let (_, wal) = select_files(&listed, RestoreUntil::Timestamp(at(12))).unwrap();
        assert_eq!(shape(&wal), vec![vec![(0, 0), (0, 100)]]);
    }

    #[test]
    fn select_timestamp_before_every_snapshot_fails() {
        let listed = listing(&[(1, 30)], &[(0, 0, 11), (1, 0, 31)]);
        let err = select_files(&listed, RestoreUntil::Timestamp(at(20))).unwrap_err();
        assert!(matches!(err, RestoreError::NoSnapshots { .. }), "{err}");
    }

    #[test]
    fn select_missing_index_fails() {
        let listed = listing(&[(0, 10)], &[(0, 0, 11), (2, 0, 20)]);
        let err = select_files(&listed, RestoreUntil::Latest).unwrap_err();
        assert!(
            matches!(err, RestoreError::MissingIndex { index: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn select_missing_initial_segment_fails() {
        let listed = listing(&[(0, 10)], &[(0, 4152, 11)]);
        let err = select_files(&listed, RestoreUntil::Latest).unwrap_err();
        assert!(
            matches!(err, RestoreError::MissingInitialSegment { .. }),
            "{err}"
        );
    }

    #[test]
    fn select_wal_older_than_snapshot_means_snapshot_only() {
        let listed = listing(&[(0, 10), (5, 50)], &[(0, 0, 11), (1, 0, 20)]);
        let (snapshot, wal) = select_files(&listed, RestoreUntil::Latest).unwrap();
        assert_eq!(snapshot.index, 5);
        assert!(wal.is_empty());
    }

    #[test]
    fn latest_created_keeps_first_on_ties() {
        let listed = listing(&[(0, 10), (1, 10)], &[]);
        assert_eq!(latest_created(listed.snapshots.iter()).unwrap().index, 0);
    }
}
