//! The `file` replica client against the `ReplicaClient` contract: writes, listings, reads and
//! deletes in a temporary folder, names that are not Litestream's, durability leftovers, and the
//! replicas the real Litestream 0.3.13 wrote.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ls_backends::FileReplicaClient;
use ls_core::{ClientError, Generation, Pos, ReplicaClient, layout};
use proptest::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use crate::{bytes_stream, collect_chunks, fixtures_dir, read_all, stream_of};

fn generation(name: &str) -> Generation {
    Generation::parse(name).expect("a valid generation name")
}

/// A client on `<temp>/replica`, a folder that does not exist yet.
fn new_client() -> (TempDir, FileReplicaClient) {
    let temp = tempfile::tempdir().expect("a temporary folder can be made");
    let client = FileReplicaClient::new(temp.path().join("replica"));
    (temp, client)
}

/// Every path under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("the folder can be listed") {
            let path = entry.expect("the folder can be listed").path();
            out.push(
                path.strip_prefix(base)
                    .expect("a path under base")
                    .display()
                    .to_string(),
            );
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .expect("the file has an mtime")
}

/// The process umask, from `/proc/self/status` (Linux).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("Linux has /proc/self/status");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .expect("/proc/self/status has a Umask line");
    u32::from_str_radix(line.trim(), 8).expect("the umask is octal")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .expect("the path exists")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn write_snapshot_then_list_and_read_back() {
    let (_temp, client) = new_client();
    let generation = generation("249c268eb6efdc47");
    let data = b"lz4 bytes of a snapshot".repeat(10);
    let written = client
        .write_snapshot(
            &generation,
            3,
            stream_of(vec![data[..7].to_vec(), data[7..].to_vec()]),
        )
        .await
        .unwrap();

    let path = client
        .root()
        .join("generations/249c268eb6efdc47/snapshots/00000003.snapshot.lz4");
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(written.generation, generation);
    assert_eq!(written.index, 3);
    assert_eq!(written.size, u64::try_from(data.len()).unwrap());
    assert_eq!(written.created_at, mtime(&path));

    assert_eq!(client.generations().await.unwrap(), vec![generation]);
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![written]);
    assert_eq!(
        read_all(client.snapshot_reader(&generation, 3).await.unwrap()).await,
        data
    );
}

#[tokio::test]
async fn write_wal_segments_lists_by_index_then_offset() {
    let (_temp, client) = new_client();
    let generation = generation("afa94d810124981b");
    let positions = [(1, 32), (0, 4152), (1, 0), (0, 0), (10, 0), (0, 0x1_0000)];
    for (index, offset) in positions {
        let pos = Pos::new(generation, index, offset);
        let written = client
            .write_wal_segment(&pos, bytes_stream(format!("{index}/{offset}").as_bytes()))
            .await
            .unwrap();
        assert_eq!(written.pos(), pos);
    }

    let listed = client.wal_segments(&generation).await.unwrap();
    let listed_positions: Vec<(u32, u64)> = listed.iter().map(|s| (s.index, s.offset)).collect();
    assert_eq!(
        listed_positions,
        vec![(0, 0), (0, 4152), (0, 0x1_0000), (1, 0), (1, 32), (10, 0)]
    );
    for segment in &listed {
        let data = read_all(client.wal_segment_reader(&segment.pos()).await.unwrap()).await;
        assert_eq!(
            data,
            format!("{}/{}", segment.index, segment.offset).as_bytes()
        );
        assert_eq!(segment.size, u64::try_from(data.len()).unwrap());
    }
    assert!(
        client
            .root()
            .join("generations/afa94d810124981b/wal/0000000a_00000000.wal.lz4")
            .is_file()
    );
}

#[tokio::test]
async fn generations_lists_directories_sorted_by_name() {
    let (_temp, client) = new_client();
    for name in ["ffffffffffffffff", "0000000000000001", "8000000000000000"] {
        fs::create_dir_all(client.root().join("generations").join(name)).unwrap();
    }
    let names: Vec<String> = client
        .generations()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        names,
        ["0000000000000001", "8000000000000000", "ffffffffffffffff"]
    );
}

#[tokio::test]
async fn generations_missing_root_is_not_found() {
    let (_temp, client) = new_client();
    match client.generations().await {
        Err(ClientError::NotFound { key }) => {
            assert_eq!(key, client.root().display().to_string());
        }
        other => panic!("want NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn generations_root_without_generations_dir_is_empty() {
    let (_temp, client) = new_client();
    fs::create_dir(client.root()).unwrap();
    assert_eq!(client.generations().await.unwrap(), vec![]);
}

#[tokio::test]
async fn generations_root_is_a_file_fails_naming_path() {
    let (_temp, client) = new_client();
    fs::write(client.root(), b"not a folder").unwrap();
    let err = client.generations().await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&client.root().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn listings_of_missing_generation_are_empty() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    fs::create_dir_all(client.root().join("generations/0123456789abcdef")).unwrap();
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![]);
    assert_eq!(client.wal_segments(&generation).await.unwrap(), vec![]);
    let other = self::generation("fedcba9876543210");
    assert_eq!(client.snapshots(&other).await.unwrap(), vec![]);
    assert_eq!(client.wal_segments(&other).await.unwrap(), vec![]);
}

#[tokio::test]
async fn listings_skip_foreign_names() {
    let (temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    client
        .write_snapshot(&generation, 1, bytes_stream(b"s"))
        .await
        .unwrap();
    client
        .write_wal_segment(&Pos::new(generation, 1, 0), bytes_stream(b"w"))
        .await
        .unwrap();

    let generations_dir = client.root().join("generations");
    let generation_dir = generations_dir.join("0123456789abcdef");
    let outside = temp.path().join("outside");
    fs::create_dir_all(outside.join("snapshots")).unwrap();
    fs::write(outside.join("snapshots/00000000.snapshot.lz4"), b"secret").unwrap();
    // Generations: a file with a valid name, bad names, and a symlink out of the replica.
    fs::write(generations_dir.join("1111111111111111"), b"").unwrap();
    fs::create_dir(generations_dir.join("ABCDEF0123456789")).unwrap();
    fs::create_dir(generations_dir.join("0123456789abcde")).unwrap();
    fs::create_dir(generations_dir.join("..0123456789abcdef")).unwrap();
    fs::write(generations_dir.join("README"), b"").unwrap();
    symlink(&outside, generations_dir.join("2222222222222222")).unwrap();
    fs::write(
        generations_dir.join(std::ffi::OsStr::from_bytes(b"\xff\xfe0123456789ab")),
        b"",
    )
    .unwrap();
    // Snapshots and segments: temp files, old whole-WAL names, folders and symlinks with
    // valid names, uppercase hex, foreign files, a nested folder.
    let snapshots = generation_dir.join("snapshots");
    fs::write(snapshots.join("00000002.snapshot.lz4.tmp"), b"").unwrap();
    fs::write(snapshots.join("0000000A.snapshot.lz4"), b"").unwrap();
    fs::write(snapshots.join("00000002.snapshot"), b"").unwrap();
    fs::write(snapshots.join(".DS_Store"), b"").unwrap();
    fs::create_dir(snapshots.join("00000003.snapshot.lz4")).unwrap();
    symlink(
        outside.join("snapshots/00000000.snapshot.lz4"),
        snapshots.join("00000004.snapshot.lz4"),
    )
    .unwrap();
    fs::write(
        snapshots.join(std::ffi::OsStr::from_bytes(b"\xff.snapshot.lz4")),
        b"",
    )
    .unwrap();
    let wal = generation_dir.join("wal");
    fs::write(wal.join("00000001_00000020.wal.lz4.tmp"), b"").unwrap();
    fs::write(wal.join("00000001.wal.lz4"), b"").unwrap();
    fs::write(wal.join("00000001_0000002G.wal.lz4"), b"").unwrap();
    fs::create_dir_all(wal.join("00000002/00000000_00000000.wal.lz4")).unwrap();
    fs::write(wal.join("00000003_00000000.wal"), b"").unwrap();

    assert_eq!(client.generations().await.unwrap(), vec![generation]);
    let snapshot_indexes: Vec<u32> = client
        .snapshots(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.index)
        .collect();
    assert_eq!(snapshot_indexes, vec![1]);
    let segments: Vec<Pos> = client
        .wal_segments(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.pos())
        .collect();
    assert_eq!(segments, vec![Pos::new(generation, 1, 0)]);
    // Deleting the symlinked generation removes the link, never what it points to.
    let linked = self::generation("2222222222222222");
    client.delete_generation(&linked).await.unwrap();
    assert!(outside.join("snapshots/00000000.snapshot.lz4").is_file());
}

#[tokio::test]
async fn reader_of_missing_object_is_not_found_naming_path() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    let want = client
        .root()
        .join(layout::snapshot_path(&generation, 5))
        .display()
        .to_string();
    match client.snapshot_reader(&generation, 5).await {
        Err(ClientError::NotFound { key }) => assert_eq!(key, want),
        Err(err) => panic!("want NotFound, got {err:?}"),
        Ok(_) => panic!("want NotFound, got a reader"),
    }
    let pos = Pos::new(generation, 0, 32);
    match client.wal_segment_reader(&pos).await {
        Err(ClientError::NotFound { key }) => {
            assert!(key.ends_with("wal/00000000_00000020.wal.lz4"), "{key}");
        }
        Err(err) => panic!("want NotFound, got {err:?}"),
        Ok(_) => panic!("want NotFound, got a reader"),
    }
}

#[tokio::test]
async fn reader_streams_large_object_in_bounded_chunks() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    let data: Vec<u8> = (0..1_000_003u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    client
        .write_snapshot(&generation, 0, bytes_stream(&data))
        .await
        .unwrap();
    let chunks = collect_chunks(client.snapshot_reader(&generation, 0).await.unwrap())
        .await
        .unwrap();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|chunk| chunk.len() <= 256 * 1024));
    assert_eq!(chunks.concat(), data);
}

#[tokio::test]
async fn reader_of_empty_object_yields_nothing() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    let written = client
        .write_snapshot(&generation, 0, stream_of(vec![]))
        .await
        .unwrap();
    assert_eq!(written.size, 0);
    let chunks = collect_chunks(client.snapshot_reader(&generation, 0).await.unwrap())
        .await
        .unwrap();
    assert!(chunks.is_empty());
}

#[tokio::test]
async fn write_leaves_no_tmp_file() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    client
        .write_snapshot(&generation, 0, bytes_stream(b"snapshot"))
        .await
        .unwrap();
    client
        .write_wal_segment(&Pos::new(generation, 0, 0), bytes_stream(b"segment"))
        .await
        .unwrap();
    assert_eq!(
        tree(client.root()),
        [
            "generations",
            "generations/0123456789abcdef",
            "generations/0123456789abcdef/snapshots",
            "generations/0123456789abcdef/snapshots/00000000.snapshot.lz4",
            "generations/0123456789abcdef/wal",
            "generations/0123456789abcdef/wal/00000000_00000000.wal.lz4",
        ]
    );
}

#[tokio::test]
async fn write_replaces_existing_object() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    client
        .write_snapshot(&generation, 0, bytes_stream(b"first, longer"))
        .await
        .unwrap();
    let second = client
        .write_snapshot(&generation, 0, bytes_stream(b"second"))
        .await
        .unwrap();
    assert_eq!(second.size, 6);
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![second]);
    assert_eq!(
        read_all(client.snapshot_reader(&generation, 0).await.unwrap()).await,
        b"second"
    );
}

#[tokio::test]
async fn write_failing_stream_leaves_nothing_and_returns_its_error() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    let failing: ls_core::ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(ClientError::NotFound {
            key: "upstream".to_owned(),
        }),
    ]));
    match client.write_snapshot(&generation, 0, failing).await {
        Err(ClientError::NotFound { key }) => assert_eq!(key, "upstream"),
        other => panic!("want the stream's error, got {other:?}"),
    }
    let snapshots_dir = client.root().join(layout::snapshots_dir(&generation));
    assert_eq!(tree(&snapshots_dir), Vec::<String>::new());
    assert_eq!(client.snapshots(&generation).await.unwrap(), vec![]);
}

#[tokio::test]
async fn write_cancelled_mid_stream_leaves_nothing() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    let endless: ls_core::ByteStream = Box::pin(futures_util::StreamExt::chain(
        futures_util::stream::iter(vec![Ok(Bytes::from_static(b"partial"))]),
        futures_util::stream::pending(),
    ));
    let final_path = client.root().join(layout::snapshot_path(&generation, 0));
    let mut tmp_path = final_path.clone().into_os_string();
    tmp_path.push(".tmp");
    let tmp_path = PathBuf::from(tmp_path);

    // An async-trait future is a `Pin<Box<_>>`: dropping it drops the write.
    let mut write = client.write_snapshot(&generation, 0, endless);
    wait_until(
        "the writer creates its temp file",
        || tmp_path.exists(),
        &mut write,
    )
    .await;
    drop(write);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmp_path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never removed",
            tmp_path.display()
        );
        tokio::task::yield_now().await;
    }
    assert!(!final_path.exists());
}

/// Polls `future` (which must not finish) until `done` holds, with a deadline.
async fn wait_until<F: std::future::Future + Unpin>(
    what: &str,
    done: impl Fn() -> bool,
    future: &mut F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::select! {
            biased;
            _ = &mut *future => panic!("the future finished while waiting until {what}"),
            () = tokio::task::yield_now() => {}
        }
    }
}

#[tokio::test]
async fn write_into_root_that_is_a_file_fails_naming_path() {
    let (_temp, client) = new_client();
    fs::write(client.root(), b"not a folder").unwrap();
    let err = client
        .write_snapshot(&generation("0123456789abcdef"), 0, bytes_stream(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&client.root().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn write_uses_litestream_default_modes() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    client
        .write_snapshot(&generation, 0, bytes_stream(b"x"))
        .await
        .unwrap();
    let umask = umask();
    assert_eq!(
        mode(&client.root().join(layout::snapshot_path(&generation, 0))),
        0o600 & !umask
    );
    for dir in [
        client.root().to_path_buf(),
        client.root().join("generations"),
        client.root().join(layout::generation_dir(&generation)),
        client.root().join(layout::snapshots_dir(&generation)),
    ] {
        assert_eq!(mode(&dir), 0o700 & !umask, "{}", dir.display());
    }
}

#[tokio::test]
async fn write_with_modes_uses_given_modes() {
    let temp = tempfile::tempdir().unwrap();
    let client = FileReplicaClient::new(temp.path().join("replica")).with_modes(0o640, 0o750);
    let pos = Pos::new(generation("0123456789abcdef"), 0, 0);
    client
        .write_wal_segment(&pos, bytes_stream(b"x"))
        .await
        .unwrap();
    let umask = umask();
    assert_eq!(
        mode(&client.root().join(layout::wal_segment_path(&pos))),
        0o640 & !umask
    );
    assert_eq!(
        mode(&client.root().join(layout::wal_dir(&pos.generation))),
        0o750 & !umask
    );
}

#[tokio::test]
async fn delete_missing_objects_succeeds() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    client.delete_snapshot(&generation, 7).await.unwrap();
    client
        .delete_wal_segments(&[Pos::new(generation, 0, 0), Pos::new(generation, 1, 32)])
        .await
        .unwrap();
    client.delete_generation(&generation).await.unwrap();
    assert!(!client.root().exists());
}

#[tokio::test]
async fn delete_removes_only_named_objects() {
    let (_temp, client) = new_client();
    let generation = generation("0123456789abcdef");
    for index in 0..3 {
        client
            .write_snapshot(&generation, index, bytes_stream(b"s"))
            .await
            .unwrap();
        client
            .write_wal_segment(&Pos::new(generation, index, 0), bytes_stream(b"w"))
            .await
            .unwrap();
    }
    client.delete_snapshot(&generation, 1).await.unwrap();
    client
        .delete_wal_segments(&[Pos::new(generation, 0, 0), Pos::new(generation, 2, 0)])
        .await
        .unwrap();
    let snapshots: Vec<u32> = client
        .snapshots(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.index)
        .collect();
    assert_eq!(snapshots, vec![0, 2]);
    let segments: Vec<u32> = client
        .wal_segments(&generation)
        .await
        .unwrap()
        .iter()
        .map(|s| s.index)
        .collect();
    assert_eq!(segments, vec![1]);
}

#[tokio::test]
async fn delete_generation_keeps_root_and_other_generations() {
    let (_temp, client) = new_client();
    let doomed = generation("0123456789abcdef");
    let kept = generation("fedcba9876543210");
    for generation in [doomed, kept] {
        client
            .write_snapshot(&generation, 0, bytes_stream(b"s"))
            .await
            .unwrap();
        client
            .write_wal_segment(&Pos::new(generation, 0, 0), bytes_stream(b"w"))
            .await
            .unwrap();
    }
    client.delete_generation(&doomed).await.unwrap();
    assert_eq!(client.generations().await.unwrap(), vec![kept]);
    client.delete_generation(&kept).await.unwrap();
    assert_eq!(client.generations().await.unwrap(), vec![]);
    assert!(client.root().join("generations").is_dir());
}

#[test]
fn kind_is_file() {
    assert_eq!(FileReplicaClient::new("/x").kind(), "file");
}

/// One fixture case: its folder and parsed `case.json`.
fn fixture_cases(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut cases = Vec::new();
    for entry in fs::read_dir(dir).expect("the fixtures can be listed") {
        let case_dir = entry.expect("the fixtures can be listed").path();
        let json = case_dir.join("case.json");
        if json.is_file() {
            let text = fs::read_to_string(&json).expect("case.json is readable");
            cases.push((
                case_dir,
                serde_json::from_str(&text).expect("case.json is JSON"),
            ));
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(cases.len() >= 10, "only {} fixture cases", cases.len());
    cases
}

/// What the client lists for every replica of a case: path relative to the case → (size,
/// created_at), after checking the generations against `case.json`.
async fn list_case(case_dir: &Path, case: &Value) -> BTreeMap<String, (u64, SystemTime)> {
    let mut listed = BTreeMap::new();
    for replica in case["replicas"]
        .as_array()
        .expect("case.json lists replicas")
    {
        let replica_path = replica["path"].as_str().expect("a replica has a path");
        let client = FileReplicaClient::new(case_dir.join(replica_path));
        let generations = client
            .generations()
            .await
            .expect("the fixture replica lists");
        let names: Vec<String> = generations.iter().map(ToString::to_string).collect();
        let mut want: Vec<String> = replica["generations"]
            .as_array()
            .expect("a replica lists its generations")
            .iter()
            .map(|g| g.as_str().expect("generation names are strings").to_owned())
            .collect();
        want.sort();
        assert_eq!(names, want, "generations of {}", case_dir.display());
        for generation in &generations {
            for snapshot in client
                .snapshots(generation)
                .await
                .expect("the fixture replica lists")
            {
                let path = format!(
                    "{replica_path}/{}",
                    layout::snapshot_path(generation, snapshot.index)
                );
                listed.insert(path, (snapshot.size, snapshot.created_at));
            }
            let segments = client
                .wal_segments(generation)
                .await
                .expect("the fixture replica lists");
            assert!(
                segments.windows(2).all(|w| w[0].pos() < w[1].pos()),
                "segments of {generation} out of order"
            );
            for segment in segments {
                let path = format!(
                    "{replica_path}/{}",
                    layout::wal_segment_path(&segment.pos())
                );
                listed.insert(path, (segment.size, segment.created_at));
            }
        }
    }
    listed
}

/// Every path under `dir` with its size and mtime, to show that listing wrote nothing.
fn tree_state(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    tree(dir)
        .into_iter()
        .map(|path| {
            let metadata = fs::symlink_metadata(dir.join(&path)).expect("the path exists");
            (
                path,
                metadata.len(),
                metadata.modified().expect("the file has an mtime"),
            )
        })
        .collect()
}

#[tokio::test]
async fn fixtures_list_every_file_without_writing() {
    let fixtures = fixtures_dir();
    let before = tree_state(&fixtures);
    for (case_dir, case) in fixture_cases(&fixtures) {
        let listed = list_case(&case_dir, &case).await;
        let files = case["files"].as_object().unwrap();
        let listed_sizes: BTreeMap<&str, u64> = listed
            .iter()
            .map(|(path, (size, _))| (path.as_str(), *size))
            .collect();
        let want_sizes: BTreeMap<&str, u64> = files
            .iter()
            .map(|(path, file)| (path.as_str(), file["size"].as_u64().unwrap()))
            .collect();
        assert_eq!(listed_sizes, want_sizes, "files of {}", case_dir.display());
    }
    assert_eq!(
        tree_state(&fixtures),
        before,
        "listing changed the fixtures"
    );
}

#[tokio::test]
async fn fixtures_created_at_is_file_mtime() {
    let fixtures = fixtures_dir();
    let temp = tempfile::tempdir().unwrap();
    for (source_dir, case) in fixture_cases(&fixtures) {
        let case_dir = temp.path().join(source_dir.file_name().unwrap());
        let files = case["files"].as_object().unwrap();
        for (path, file) in files {
            let target = case_dir.join(path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(source_dir.join(path), &target).unwrap();
            let mtime = UNIX_EPOCH + Duration::from_nanos(file["mtime_ns"].as_u64().unwrap());
            fs::File::options()
                .write(true)
                .open(&target)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
        for (path, (_, created_at)) in list_case(&case_dir, &case).await {
            let want =
                UNIX_EPOCH + Duration::from_nanos(files[&path]["mtime_ns"].as_u64().unwrap());
            assert_eq!(created_at, want, "created_at of {path}");
        }
    }
}

#[tokio::test]
async fn fixture_snapshot_reads_back_byte_for_byte() {
    let case_dir = fixtures_dir().join("basic");
    let client = FileReplicaClient::new(case_dir.join("replica"));
    let generation = client.generations().await.unwrap()[0];
    let snapshot = client.snapshots(&generation).await.unwrap()[0].clone();
    let data = read_all(
        client
            .snapshot_reader(&generation, snapshot.index)
            .await
            .unwrap(),
    )
    .await;
    let path = client
        .root()
        .join(layout::snapshot_path(&generation, snapshot.index));
    assert_eq!(data, fs::read(path).unwrap());
    assert!(data.starts_with(&[0x04, 0x22, 0x4d, 0x18]), "an LZ4 frame");
}

/// A name to plant in a replica folder: Litestream's shapes, near misses and arbitrary text.
fn junk_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{16}",
        "[0-9a-fA-F]{15,17}",
        "[0-9a-f]{8}\\.snapshot\\.lz4(\\.tmp)?",
        "[0-9a-fA-F]{7,9}_[0-9a-f]{8}\\.wal\\.lz4(\\.tmp)?",
        "[0-9a-f]{8}\\.wal\\.lz4",
        "[^/\u{0}]{1,40}",
    ]
    .prop_filter("a file name", |name| {
        name != "." && name != ".." && !name.contains('/') && name.len() < 200
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn listing_junk_names_returns_only_valid_ones(
        names in prop::collection::vec((junk_name(), any::<bool>(), 0usize..3), 0..24)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("replica");
        let generation = generation("0123456789abcdef");
        let generation_dir = root.join(layout::generation_dir(&generation));
        let dirs = [
            root.join("generations"),
            generation_dir.join("snapshots"),
            generation_dir.join("wal"),
        ];
        for dir in &dirs {
            fs::create_dir_all(dir).unwrap();
        }
        let mut want_generations = vec![generation];
        let mut want_snapshots = Vec::new();
        let mut want_segments = Vec::new();
        for (name, is_dir, place) in &names {
            let path = dirs[*place].join(name);
            if path.exists() {
                continue;
            }
            if *is_dir {
                fs::create_dir(&path).unwrap();
            } else {
                fs::write(&path, b"junk").unwrap();
            }
            match place {
                0 if *is_dir => want_generations.extend(Generation::parse(name).ok()),
                1 if !is_dir => want_snapshots.extend(layout::parse_snapshot_name(name)),
                2 if !is_dir => want_segments.extend(layout::parse_wal_segment_name(name)),
                _ => {}
            }
        }
        want_generations.sort();
        want_snapshots.sort();
        want_segments.sort();

        let client = FileReplicaClient::new(&root);
        let (generations, snapshots, segments) = runtime.block_on(async {
            (
                client.generations().await.unwrap(),
                client.snapshots(&generation).await.unwrap(),
                client.wal_segments(&generation).await.unwrap(),
            )
        });
        prop_assert_eq!(generations, want_generations);
        let snapshots: Vec<u32> = snapshots.iter().map(|s| s.index).collect();
        prop_assert_eq!(snapshots, want_snapshots);
        let segments: Vec<(u32, u64)> = segments.iter().map(|s| (s.index, s.offset)).collect();
        prop_assert_eq!(segments, want_segments);
    }
}
