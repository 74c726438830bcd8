//! The one way in to the replicas the real Litestream 0.3.13 wrote (`../shared/fixtures`, see
//! its README), plus small readers for them. The fixtures are read in place, never written.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use ls_core::{AgeIdentities, Lz4Reader, layout};

/// `<root>/../shared/fixtures`; panics with a clear message when it is missing, so the fixture
/// tests never pass by finding nothing.
pub(crate) fn fixtures_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("CARGO_MANIFEST_DIR is <root>/crates/ls-core")
        .to_path_buf();
    let dir = root.join("..").join("shared").join("fixtures");
    assert!(
        dir.join("README.md").is_file(),
        "the Litestream 0.3.13 fixtures are missing: expected {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// One fixture case folder.
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    /// `case.json` as text (read with plain string search: these tests need three numbers).
    pub(crate) json: String,
}

/// One LZ4 object of a replica, with what its path says.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) path: PathBuf,
    pub(crate) generation: String,
    pub(crate) kind: ObjectKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectKind {
    Snapshot { index: u32 },
    WalSegment { index: u32, offset: u64 },
}

impl Case {
    pub(crate) fn is_encrypted(&self) -> bool {
        self.name == "age-encrypted"
    }

    /// The case's replica folders: `replica/` or every `replicas/<name>/`.
    pub(crate) fn replica_dirs(&self) -> Vec<PathBuf> {
        let single = self.dir.join("replica");
        if single.is_dir() {
            return vec![single];
        }
        sorted_children(&self.dir.join("replicas"))
    }

    /// The first replica folder (`replica/` or `replicas/primary/`, which holds everything).
    pub(crate) fn main_replica(&self) -> PathBuf {
        let single = self.dir.join("replica");
        if single.is_dir() {
            single
        } else {
            self.dir.join("replicas").join("primary")
        }
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.json_number("\"page_size\": ").try_into().unwrap()
    }

    pub(crate) fn latest_generation(&self) -> String {
        self.json_string("\"latest_generation\": \"")
    }

    fn json_number(&self, key: &str) -> u64 {
        let start = self
            .json
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {}", self.name))
            + key.len();
        let digits: String = self.json[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }

    fn json_string(&self, key: &str) -> String {
        let start = self
            .json
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {}", self.name))
            + key.len();
        self.json[start..]
            .chars()
            .take_while(|&c| c != '"')
            .collect()
    }

    /// The identities of the age-encrypted case (from `age-identity.txt`).
    pub(crate) fn identities(&self) -> AgeIdentities {
        let text = fs::read_to_string(self.dir.join("age-identity.txt")).unwrap();
        AgeIdentities::parse(&text).unwrap()
    }
}

/// Every case folder (one holding a `case.json`), sorted by name.
pub(crate) fn cases() -> Vec<Case> {
    let cases: Vec<Case> = sorted_children(&fixtures_dir())
        .into_iter()
        .filter(|dir| dir.join("case.json").is_file())
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            json: fs::read_to_string(dir.join("case.json")).unwrap(),
            dir,
        })
        .collect();
    assert!(
        cases.len() >= 10,
        "expected the 11 fixture cases, found {}",
        cases.len()
    );
    cases
}

/// Every snapshot and WAL segment of a replica folder, ordered by generation, then snapshots
/// by index, then segments by (index, offset).
pub(crate) fn objects(replica: &Path) -> Vec<Object> {
    let mut out = Vec::new();
    for generation_dir in sorted_children(&replica.join(layout::GENERATIONS_DIR)) {
        let generation = generation_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for path in sorted_children(&generation_dir.join("snapshots")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let index = layout::parse_snapshot_name(&name).unwrap();
            out.push(Object {
                path,
                generation: generation.clone(),
                kind: ObjectKind::Snapshot { index },
            });
        }
        let mut segments: Vec<Object> = sorted_children(&generation_dir.join("wal"))
            .into_iter()
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let (index, offset) = layout::parse_wal_segment_name(&name).unwrap();
                Object {
                    path,
                    generation: generation.clone(),
                    kind: ObjectKind::WalSegment { index, offset },
                }
            })
            .collect();
        segments.sort_by_key(|object| match object.kind {
            ObjectKind::WalSegment { index, offset } => (index, offset),
            ObjectKind::Snapshot { .. } => unreachable!(),
        });
        out.extend(segments);
    }
    out
}

/// A streaming reader of an object's plaintext: decrypted when `identities` is given, then
/// LZ4-decoded. This is the read pipeline of spec 7.1.
pub(crate) fn open_plaintext(path: &Path, identities: Option<&AgeIdentities>) -> Box<dyn Read> {
    let file = BufReader::new(fs::File::open(path).unwrap());
    match identities {
        Some(identities) => Box::new(Lz4Reader::new(identities.decrypt(file).unwrap())),
        None => Box::new(Lz4Reader::new(file)),
    }
}

/// The whole plaintext of an object.
pub(crate) fn read_plaintext(path: &Path, identities: Option<&AgeIdentities>) -> Vec<u8> {
    let mut out = Vec::new();
    open_plaintext(path, identities)
        .read_to_end(&mut out)
        .unwrap_or_else(|err| panic!("cannot decode {}: {err}", path.display()));
    out
}

fn sorted_children(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut children: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
    children.sort();
    children
}
