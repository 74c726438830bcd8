//! The readers behind the fuzz targets in `fuzz/` (same small bodies), run on stable in CI:
//! arbitrary bytes and mutated fixture objects never make them panic or loop forever.

use std::fs;
use std::io::Read;
use std::sync::OnceLock;

use ls_core::{AgeIdentities, Generation, Lz4Reader, WalReader, decompress, layout};
use proptest::prelude::*;

use crate::fixtures::{ObjectKind, cases, objects};

/// Raw bytes of a few fixture objects: plain LZ4 snapshots and segments, their decoded WAL
/// bytes, and encrypted objects.
struct Samples {
    lz4: Vec<Vec<u8>>,
    wal: Vec<Vec<u8>>,
    age: Vec<Vec<u8>>,
    identities: AgeIdentities,
}

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let mut samples = Samples {
            lz4: Vec::new(),
            wal: Vec::new(),
            age: Vec::new(),
            identities: AgeIdentities::default(),
        };
        for case in cases() {
            for object in objects(&case.main_replica()).into_iter().take(4) {
                let raw = fs::read(&object.path).unwrap();
                if raw.len() > 64 * 1024 {
                    continue;
                }
                if case.is_encrypted() {
                    samples.identities = case.identities();
                    samples.age.push(raw);
                    continue;
                }
                if matches!(object.kind, ObjectKind::WalSegment { offset: 0, .. }) {
                    samples.wal.push(decompress(&raw).unwrap());
                }
                samples.lz4.push(raw);
            }
        }
        assert!(!samples.lz4.is_empty() && !samples.wal.is_empty() && !samples.age.is_empty());
        samples
    })
}

/// Up to 8 edits: flip a byte, cut the tail, or insert a byte.
fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, kind, value) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at.index(bytes.len());
        match kind % 3 {
            0 => bytes[at] ^= value | 1,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, *value),
        }
    }
    bytes
}

/// Body of the `wal_reader` fuzz target.
fn wal_reader_body(data: &[u8]) {
    let limit = data.len() / 536 + 2;
    if let Ok(mut reader) = WalReader::new(data) {
        let mut n = 0;
        while let Ok(Some(_)) = reader.next_frame() {
            n += 1;
            assert!(n <= limit, "more frames than bytes allow");
        }
    }
    if let Ok(mut reader) = WalReader::new(data) {
        let mut n = 0;
        while let Ok(Some(frame)) = reader.next_valid_frame() {
            assert_eq!(frame.bytes().len(), 24 + frame.page().len());
            n += 1;
            assert!(n <= limit, "more frames than bytes allow");
        }
        assert!(
            reader
                .last_commit()
                .is_none_or(|commit| commit.offset <= reader.offset())
        );
    }
}

/// Body of the `lz4_reader` fuzz target.
fn lz4_reader_body(data: &[u8]) {
    let mut reader = Lz4Reader::new(data);
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Body of the `age_reader` fuzz target.
fn age_reader_body(identities: &AgeIdentities, data: &[u8]) {
    if let Ok(mut reader) = identities.decrypt(data) {
        let _ = reader.read_to_end(&mut Vec::new());
    }
}

/// Body of the `path_parser` fuzz target.
fn path_parser_body(data: &[u8]) {
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(index) = layout::parse_snapshot_name(name) {
            assert_eq!(layout::snapshot_name(index), name);
        }
        if let Some((index, offset)) = layout::parse_wal_segment_name(name) {
            assert_eq!(layout::wal_segment_name(index, offset), name);
        }
        if let Ok(generation) = Generation::parse(name) {
            assert_eq!(generation.as_str(), name);
        }
    }
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    prop::collection::vec(
        (any::<prop::sample::Index>(), any::<u8>(), any::<u8>()),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn wal_reader_survives_arbitrary_and_mutated_input(
        arbitrary in prop::collection::vec(any::<u8>(), 0..3000),
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        wal_reader_body(&arbitrary);
        let sample = pick.get(&samples().wal).clone();
        wal_reader_body(&mutate(sample, &edits));
    }

    #[test]
    fn lz4_reader_survives_arbitrary_and_mutated_input(
        arbitrary in prop::collection::vec(any::<u8>(), 0..3000),
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        lz4_reader_body(&arbitrary);
        let sample = pick.get(&samples().lz4).clone();
        lz4_reader_body(&mutate(sample, &edits));
    }

    #[test]
    fn age_reader_survives_arbitrary_and_mutated_input(
        arbitrary in prop::collection::vec(any::<u8>(), 0..3000),
        pick in any::<prop::sample::Index>(),
        edits in edits(),
    ) {
        let samples = samples();
        age_reader_body(&samples.identities, &arbitrary);
        let mut header = b"age-encryption.org/v1\n".to_vec();
        header.extend_from_slice(&arbitrary);
        age_reader_body(&samples.identities, &header);
        let sample = pick.get(&samples.age).clone();
        age_reader_body(&samples.identities, &mutate(sample, &edits));
    }

    #[test]
    fn path_parser_survives_arbitrary_input(
        arbitrary in prop::collection::vec(any::<u8>(), 0..40),
        name in "[0-9a-f_.]{0,30}(snapshot|wal)?(\\.lz4)?",
    ) {
        path_parser_body(&arbitrary);
        path_parser_body(name.as_bytes());
    }
}

/// Names a hostile replica listing may hold (issue #6): none parses as an object or a
/// generation, so no path is ever built from them.
#[test]
fn layout_hostile_names_never_parse() {
    for name in [
        "ffffffffffffffffffff.snapshot.lz4",
        "100000000.snapshot.lz4",
        "FFFFFFFF.snapshot.lz4",
        "+0000001.snapshot.lz4",
        " 0000001.snapshot.lz4",
        "0000000\u{663}.snapshot.lz4",
        "../00000000.snapshot.lz4",
        "00000000.snapshot.lz4/..",
        "00000000.snapshot.lz4\0",
        "./00000000.snapshot.lz4",
    ] {
        assert_eq!(layout::parse_snapshot_name(name), None, "{name:?}");
        let wal = name.replace(".snapshot", "_00000000.wal");
        assert_eq!(layout::parse_wal_segment_name(&wal), None, "{wal:?}");
    }
    for name in [
        "ffffffffffffffffffff_00000000.wal.lz4",
        "00000000_ffffffffffffffffffff.wal.lz4",
        "00000000_00000000_00000000.wal.lz4",
        "00000000/00000000.wal.lz4",
        "00000000_../00000.wal.lz4",
        "-0000001_00000000.wal.lz4",
    ] {
        assert_eq!(layout::parse_wal_segment_name(name), None, "{name:?}");
    }
    for name in [
        "..",
        "../../etc/passwd",
        "0123456789abcde/",
        "/123456789abcdef",
        "0123456789ABCDEF",
        "ffffffffffffffffffff",
        "0123456789abcde\u{fffd}",
        "0123456789abcdef\0",
    ] {
        assert!(Generation::parse(name).is_err(), "{name:?}");
    }
}
