//! Restores of Litestream 0.3.13's `basic` fixture through a client that fails downloads on
//! purpose: cut streams and short bodies are fetched again and give the same file as a clean
//! restore; a download that always fails, a missing object and a damaged one fail at once or
//! after the tries, naming the object, and leave nothing behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ls_backends::FileReplicaClient;
use ls_core::{ByteStream, SnapshotInfo};

use super::*;
use crate::restore::retry::FETCH_TRIES;
use crate::{NoProgress, RestoreUntil, plan_restore};

/// What the client does to one object's downloads.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The stream fails with a connection reset after this many bytes.
    Cut(usize),
    /// The stream ends cleanly after this many bytes.
    Short(usize),
    /// The object is not found.
    Missing,
    /// One byte in the middle is flipped; the length is right.
    Corrupt,
}

/// A file replica whose downloads fail as told: `faults` maps a replica path to the fault
/// and how many downloads it hits (`u32::MAX` = all).
#[derive(Debug)]
struct FaultyClient {
    inner: FileReplicaClient,
    faults: Mutex<HashMap<String, (Fault, u32)>>,
    opened: Mutex<HashMap<String, u32>>,
}

impl FaultyClient {
    fn new(root: &Path, faults: &[(&str, Fault, u32)]) -> Self {
        let faults = faults
            .iter()
            .map(|(path, fault, times)| ((*path).to_owned(), (*fault, *times)))
            .collect();
        Self {
            inner: FileReplicaClient::new(root),
            faults: Mutex::new(faults),
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// How many times `path` was opened for reading.
    fn opened(&self, path: &str) -> u32 {
        self.opened
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    async fn faulty(&self, path: String, stream: ByteStream) -> Result<ByteStream, ClientError> {
        *self.opened.lock().unwrap().entry(path.clone()).or_default() += 1;
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            match faults.get_mut(&path) {
                Some((fault, times)) if *times > 0 => {
                    *times = times.saturating_sub(1);
                    Some(*fault)
                }
                _ => None,
            }
        };
        let Some(fault) = fault else {
            return Ok(stream);
        };
        let chunks: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        let mut whole = BytesMut::new();
        for chunk in chunks {
            whole.extend_from_slice(&chunk);
        }
        let items: Vec<Result<Bytes, ClientError>> = match fault {
            Fault::Missing => return Err(ClientError::NotFound { key: path }),
            Fault::Cut(n) => vec![
                Ok(whole.split_to(n).freeze()),
                Err(ClientError::Io {
                    op: "read",
                    key: path,
                    source: io::Error::from(io::ErrorKind::ConnectionReset),
                }),
            ],
            Fault::Short(n) => vec![Ok(whole.split_to(n).freeze())],
            Fault::Corrupt => {
                let middle = whole.len() / 2;
                whole[middle] ^= 0xff;
                // Two chunks, as a network read gives them.
                let rest = whole.split_off(middle);
                vec![Ok(whole.freeze()), Ok(rest.freeze())]
            }
        };
        Ok(Box::pin(stream::iter(items)))
    }
}

#[async_trait::async_trait]
impl ReplicaClient for FaultyClient {
    fn kind(&self) -> &'static str {
        "faulty"
    }
    async fn generations(&self) -> Result<Vec<Generation>, ClientError> {
        self.inner.generations().await
    }
    async fn delete_generation(&self, generation: &Generation) -> Result<(), ClientError> {
        self.inner.delete_generation(generation).await
    }
    async fn snapshots(&self, generation: &Generation) -> Result<Vec<SnapshotInfo>, ClientError> {
        self.inner.snapshots(generation).await
    }
    async fn write_snapshot(
        &self,
        generation: &Generation,
        index: u32,
        data: ByteStream,
    ) -> Result<SnapshotInfo, ClientError> {
        self.inner.write_snapshot(generation, index, data).await
    }
    async fn delete_snapshot(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<(), ClientError> {
        self.inner.delete_snapshot(generation, index).await
    }
    async fn snapshot_reader(
        &self,
        generation: &Generation,
        index: u32,
    ) -> Result<ByteStream, ClientError> {
        let stream = self.inner.snapshot_reader(generation, index).await?;
        self.faulty(layout::snapshot_path(generation, index), stream)
            .await
    }
    async fn wal_segments(
        &self,
        generation: &Generation,
    ) -> Result<Vec<WalSegmentInfo>, ClientError> {
        self.inner.wal_segments(generation).await
    }
    async fn write_wal_segment(
        &self,
        pos: &Pos,
        data: ByteStream,
    ) -> Result<WalSegmentInfo, ClientError> {
        self.inner.write_wal_segment(pos, data).await
    }
    async fn delete_wal_segments(&self, positions: &[Pos]) -> Result<(), ClientError> {
        self.inner.delete_wal_segments(positions).await
    }
    async fn wal_segment_reader(&self, pos: &Pos) -> Result<ByteStream, ClientError> {
        let stream = self.inner.wal_segment_reader(pos).await?;
        self.faulty(layout::wal_segment_path(pos), stream).await
    }
}

/// The `basic` fixture's replica, copied into a new temporary folder: `(folder, replica)`.
fn basic_replica() -> (tempfile::TempDir, PathBuf) {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/basic/replica");
    assert!(source.is_dir(), "fixture missing: {}", source.display());
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    copy_dir(&source, &replica);
    (dir, replica)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Plans the latest state of `client` and restores it to `output`.
async fn restore_to<C: ReplicaClient + 'static>(
    client: Arc<C>,
    output: &Path,
) -> (RestorePlan, Result<RestoreSummary, RestoreError>) {
    let client: Arc<dyn ReplicaClient> = client;
    let replicas = vec![("r".to_owned(), Arc::clone(&client))];
    let plan = plan_restore(&replicas, None, RestoreUntil::Latest)
        .await
        .unwrap()
        .unwrap();
    let options = RestoreOptions {
        output: output.to_path_buf(),
        parallelism: 2,
        identities: AgeIdentities::default(),
    };
    let res = restore(client, &plan, options, Arc::new(NoProgress)).await;
    (plan, res)
}

/// The bytes of a restore without faults.
async fn clean_restore(replica: &Path, dir: &Path) -> Vec<u8> {
    let output = dir.join("clean.db");
    let client = Arc::new(FileReplicaClient::new(replica));
    restore_to(client, &output).await.1.unwrap();
    std::fs::read(output).unwrap()
}

/// The snapshot's path and the segments' paths of the plan.
fn paths(plan: &RestorePlan) -> (String, Vec<String>) {
    let snapshot = layout::snapshot_path(&plan.generation, plan.snapshot.index);
    let segments = plan
        .wal
        .iter()
        .flatten()
        .map(|segment| layout::wal_segment_path(&segment.pos()))
        .collect();
    (snapshot, segments)
}

/// The plan of the `basic` replica, for the objects' paths.
async fn basic_plan(replica: &Path) -> RestorePlan {
    let client: Arc<dyn ReplicaClient> = Arc::new(FileReplicaClient::new(replica));
    let replicas = vec![("r".to_owned(), client)];
    plan_restore(&replicas, None, RestoreUntil::Latest)
        .await
        .unwrap()
        .unwrap()
}

/// `err` and its sources, joined with `: `.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(&format!(": {err}"));
        source = err.source();
    }
    text
}

/// Nothing but `keep` in `dir`: no output, no temporary file.
fn assert_only(dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        assert!(keep.is_empty(), "{} is missing", dir.display());
        return;
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "files left in {}", dir.display());
}

#[tokio::test]
async fn restore_cut_and_short_downloads_refetched_same_database() {
    let (dir, replica) = basic_replica();
    let expected = clean_restore(&replica, dir.path()).await;
    let (snapshot, segments) = paths(&basic_plan(&replica).await);
    assert!(segments.len() >= 3, "{segments:?}");
    let client = Arc::new(FaultyClient::new(
        &replica,
        &[
            (&snapshot, Fault::Cut(100), 2),
            (&segments[0], Fault::Cut(10), 1),
            (&segments[1], Fault::Short(1000), 2),
            (&segments[2], Fault::Cut(0), 1),
        ],
    ));
    let output = dir.path().join("out.db");
    let (_, res) = restore_to(Arc::clone(&client), &output).await;
    res.unwrap();
    assert_eq!(std::fs::read(&output).unwrap(), expected);
    assert_eq!(client.opened(&snapshot), 3);
    assert_eq!(client.opened(&segments[0]), 2);
    assert_eq!(client.opened(&segments[1]), 3);
    assert_eq!(client.opened(&segments[2]), 2);
}

#[tokio::test]
async fn restore_download_failing_every_time_fails_naming_it_after_all_tries() {
    let (dir, replica) = basic_replica();
    let (_, segments) = paths(&basic_plan(&replica).await);
    let last = segments.last().unwrap().clone();
    let client = Arc::new(FaultyClient::new(
        &replica,
        &[(&last, Fault::Cut(5), u32::MAX)],
    ));
    let out_dir = dir.path().join("out");
    let output = out_dir.join("out.db");
    let (_, res) = restore_to(Arc::clone(&client), &output).await;
    let err = res.unwrap_err();
    assert!(
        matches!(&err, RestoreError::Read { what, .. } if what == &format!("wal segment {last}")),
        "{err:?}"
    );
    assert_eq!(client.opened(&last), FETCH_TRIES);
    assert_only(&out_dir, &[]);
}

#[tokio::test]
async fn restore_snapshot_short_every_time_fails_naming_it() {
    let (dir, replica) = basic_replica();
    let (snapshot, _) = paths(&basic_plan(&replica).await);
    let client = Arc::new(FaultyClient::new(
        &replica,
        &[(&snapshot, Fault::Short(50), u32::MAX)],
    ));
    let out_dir = dir.path().join("out");
    let (_, res) = restore_to(Arc::clone(&client), &out_dir.join("out.db")).await;
    let err = res.unwrap_err();
    let chain = chain(&err);
    assert!(chain.contains(&snapshot), "{chain}");
    assert!(chain.contains("ended after"), "{chain}");
    assert_eq!(client.opened(&snapshot), FETCH_TRIES);
    assert_only(&out_dir, &[]);
}

#[tokio::test]
async fn restore_missing_segment_fails_without_retry() {
    let (dir, replica) = basic_replica();
    let (_, segments) = paths(&basic_plan(&replica).await);
    let client = Arc::new(FaultyClient::new(
        &replica,
        &[(&segments[1], Fault::Missing, u32::MAX)],
    ));
    let out_dir = dir.path().join("out");
    let (_, res) = restore_to(Arc::clone(&client), &out_dir.join("out.db")).await;
    let err = res.unwrap_err();
    assert!(
        matches!(&err, RestoreError::Read { source: ClientError::NotFound { .. }, what }
            if what.contains(&segments[1])),
        "{err:?}"
    );
    assert_eq!(client.opened(&segments[1]), 1);
    assert_only(&out_dir, &[]);
}

#[tokio::test]
async fn restore_damaged_segment_of_full_size_fails_without_retry() {
    let (dir, replica) = basic_replica();
    let (_, segments) = paths(&basic_plan(&replica).await);
    let client = Arc::new(FaultyClient::new(
        &replica,
        &[(&segments[1], Fault::Corrupt, u32::MAX)],
    ));
    let out_dir = dir.path().join("out");
    let (_, res) = restore_to(Arc::clone(&client), &out_dir.join("out.db")).await;
    let err = res.unwrap_err();
    assert!(
        matches!(&err, RestoreError::Damaged { what, .. } if what.contains(&segments[1])),
        "{err:?}"
    );
    assert_eq!(client.opened(&segments[1]), 1);
    assert_only(&out_dir, &[]);
}
