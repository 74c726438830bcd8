//! Every object of the Litestream 0.3.13 fixtures decodes through ls-core's readers, and the
//! frames of every WAL index chain across segments exactly as a restore will read them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use ls_core::{
    AgeIdentities, AgeRecipients, Lz4Error, WalHeader, WalReader, decompress, frame_align,
};

use crate::fixtures::{Case, Object, ObjectKind, cases, objects, open_plaintext, read_plaintext};

/// The frame header v0.3.13 writes: magic, FLG 0x64, BD 0x70, HC 0xB9.
const LITESTREAM_LZ4_PREFIX: [u8; 7] = [0x04, 0x22, 0x4D, 0x18, 0x64, 0x70, 0xB9];

#[test]
fn fixture_objects_decode_to_snapshots_and_wal_segments() {
    let mut n_objects = 0;
    for case in cases() {
        let identities = case.is_encrypted().then(|| case.identities());
        let page_size = case.page_size();
        let frame_size = usize::try_from(page_size).unwrap() + 24;
        for replica in case.replica_dirs() {
            for object in objects(&replica) {
                let raw = fs::read(&object.path).unwrap();
                if identities.is_none() {
                    assert_eq!(raw[..7], LITESTREAM_LZ4_PREFIX, "{}", object.path.display());
                } else {
                    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
                }
                let plain = read_plaintext(&object.path, identities.as_ref());
                match object.kind {
                    ObjectKind::Snapshot { .. } => {
                        assert!(
                            plain.starts_with(b"SQLite format 3\0"),
                            "{}",
                            object.path.display()
                        );
                        let stored = u16::from_be_bytes([plain[16], plain[17]]);
                        let db_page_size = if stored == 1 {
                            65536
                        } else {
                            u32::from(stored)
                        };
                        assert_eq!(db_page_size, page_size, "{}", object.path.display());
                        assert_eq!(plain.len() % frame_size.saturating_sub(24), 0);
                    }
                    ObjectKind::WalSegment { offset, .. } => {
                        let frames = if offset == 0 {
                            let header = WalHeader::parse(&plain).unwrap();
                            assert_eq!(header.page_size, page_size, "{}", object.path.display());
                            &plain[32..]
                        } else {
                            &plain[..]
                        };
                        assert!(!frames.is_empty(), "{}", object.path.display());
                        assert_eq!(frames.len() % frame_size, 0, "{}", object.path.display());
                    }
                }
                n_objects += 1;
            }
        }
    }
    assert!(n_objects > 100, "only {n_objects} objects found");
}

#[test]
fn fixture_large_txn_segment_is_a_two_block_frame() {
    let case = cases()
        .into_iter()
        .find(|case| case.name == "large-txn")
        .unwrap();
    let path = case
        .dir
        .join("replica/generations")
        .join(case.latest_generation())
        .join("wal/00000000_000060b0.wal.lz4");
    let raw = fs::read(&path).unwrap();
    let mut n_blocks = 0;
    let mut at = 7;
    loop {
        let word = u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
        if word == 0 {
            break;
        }
        n_blocks += 1;
        at += 4 + usize::try_from(word & 0x7FFF_FFFF).unwrap();
    }
    assert_eq!(
        at + 8,
        raw.len(),
        "end mark and content checksum close the frame"
    );
    assert_eq!(n_blocks, 2);
    let plain = decompress(&raw).unwrap();
    assert_eq!(plain.len(), 5_384_840);
    assert_eq!(
        u64::try_from(plain.len()).unwrap() + 0x60b0,
        frame_align(5_384_840 + 0x60b0, 4096)
    );
}

#[test]
fn fixture_wal_indexes_read_strictly_across_segments() {
    let mut n_frames = 0;
    for case in cases() {
        let identities = case.is_encrypted().then(|| case.identities());
        for replica in case.replica_dirs() {
            for (_, segments) in wal_indexes(&objects(&replica)) {
                let mut reader: Option<WalReader<Box<dyn Read>>> = None;
                for (offset, path) in segments {
                    let input = open_plaintext(&path, identities.as_ref());
                    let mut current = match reader {
                        None => {
                            assert_eq!(offset, 0, "{} starts an index", path.display());
                            WalReader::new(input).unwrap()
                        }
                        Some(previous) => {
                            assert_eq!(previous.offset(), offset, "{} follows on", path.display());
                            previous.continue_with(input)
                        }
                    };
                    let mut n = 0;
                    while let Some(frame) = current
                        .next_frame()
                        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
                    {
                        assert_eq!(
                            frame.page().len(),
                            usize::try_from(case.page_size()).unwrap()
                        );
                        n += 1;
                    }
                    assert!(n > 0, "{} has frames", path.display());
                    assert!(
                        current.ends_on_commit(),
                        "{} ends on a commit",
                        path.display()
                    );
                    n_frames += n;
                    reader = Some(current);
                }
            }
        }
    }
    assert!(n_frames > 1000, "only {n_frames} frames read");
}

#[test]
fn fixture_latest_state_rebuilt_from_frames_matches_expected_db() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases() {
        let restored = tmp.path().join(format!("{}.db", case.name));
        fs::write(&restored, rebuild_latest(&case)).unwrap();
        assert_eq!(
            sqlite(&restored, "PRAGMA integrity_check;"),
            "ok\n",
            "{}",
            case.name
        );
        let rows = "SELECT id||'|'||k||'|'||hex(v) FROM t ORDER BY id;";
        let expected = case.dir.join("expected.db");
        assert_eq!(
            sqlite(&restored, rows),
            sqlite(&expected, rows),
            "{}",
            case.name
        );
    }
}

#[test]
fn fixture_encrypted_object_read_as_lz4_fails_with_bad_magic() {
    let case = cases().into_iter().find(Case::is_encrypted).unwrap();
    let object = &objects(&case.main_replica())[0];
    let err = decompress(&fs::read(&object.path).unwrap()).unwrap_err();
    assert!(
        matches!(err, Lz4Error::BadMagic { magic: 0x2d65_6761 }),
        "{err:?}"
    );
}

#[test]
fn fixture_age_config_keys_parse_and_match() {
    let case = cases().into_iter().find(Case::is_encrypted).unwrap();
    let config = fs::read_to_string(case.dir.join("litestream.yml")).unwrap();
    let list_item = |prefix: &str| -> String {
        config
            .lines()
            .map(|line| line.trim_start().trim_start_matches("- "))
            .find(|line| line.starts_with(prefix))
            .unwrap()
            .to_owned()
    };
    let identities = AgeIdentities::parse(&list_item("AGE-SECRET-KEY-1")).unwrap();
    let recipients = AgeRecipients::parse(&list_item("age1")).unwrap();
    assert_eq!(identities.to_recipients(), recipients);
    assert_eq!(case.identities().to_recipients(), recipients);
}

/// WAL segments of one generation grouped by generation and index, each in offset order.
fn wal_indexes(objects: &[Object]) -> BTreeMap<(String, u32), Vec<(u64, std::path::PathBuf)>> {
    let mut indexes: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for object in objects {
        if let ObjectKind::WalSegment { index, offset } = object.kind {
            indexes
                .entry((object.generation.clone(), index))
                .or_default()
                .push((offset, object.path.clone()));
        }
    }
    indexes
}

/// The latest state of a case's database, rebuilt the way ls-replica's restore will: the
/// newest snapshot of the latest generation, then the committed pages of every later WAL
/// index, read strictly, truncated to each commit's database size.
fn rebuild_latest(case: &Case) -> Vec<u8> {
    let identities = case.is_encrypted().then(|| case.identities());
    let generation = case.latest_generation();
    let objects: Vec<Object> = objects(&case.main_replica())
        .into_iter()
        .filter(|object| object.generation == generation)
        .collect();
    let (snapshot_index, snapshot) = objects
        .iter()
        .filter_map(|object| match object.kind {
            ObjectKind::Snapshot { index } => Some((index, object)),
            ObjectKind::WalSegment { .. } => None,
        })
        .max_by_key(|(index, _)| *index)
        .unwrap();
    let mut db = read_plaintext(&snapshot.path, identities.as_ref());
    let page_size = usize::try_from(case.page_size()).unwrap();
    let mut pending: Vec<(usize, Vec<u8>)> = Vec::new();
    for ((_, index), segments) in wal_indexes(&objects) {
        if index < snapshot_index {
            continue;
        }
        let mut reader: Option<WalReader<Box<dyn Read>>> = None;
        for (_, path) in segments {
            let input = open_plaintext(&path, identities.as_ref());
            let next = match reader.take() {
                None => WalReader::new(input).unwrap(),
                Some(previous) => previous.continue_with(input),
            };
            let current = reader.insert(next);
            while let Some(frame) = current.next_frame().unwrap() {
                let pgno = usize::try_from(frame.header().pgno).unwrap();
                pending.push((pgno, frame.page().to_vec()));
                if frame.header().is_commit() {
                    for (pgno, page) in pending.drain(..) {
                        let at = (pgno - 1) * page_size;
                        if db.len() < at + page_size {
                            db.resize(at + page_size, 0);
                        }
                        db[at..at + page_size].copy_from_slice(&page);
                    }
                    let db_size = usize::try_from(frame.header().db_size_pages).unwrap();
                    db.resize(db_size * page_size, 0);
                }
            }
        }
    }
    assert!(
        pending.is_empty(),
        "{}: uncommitted frames at the end",
        case.name
    );
    db
}

/// Runs one statement with the `sqlite3` CLI and returns its output.
fn sqlite(db: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI is installed (apt-get install sqlite3)");
    assert!(
        output.status.success(),
        "sqlite3 {}: {}",
        db.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
