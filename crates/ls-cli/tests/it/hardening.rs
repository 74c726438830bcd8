//! Hostile replica listings and file modes (issue #6).
//!
//! A file replica holding names no Litestream writes (`..`-prefixed, upper-case or 20-digit
//! hex, non-UTF-8), symlinks to a folder outside the replica with valid-looking names, and
//! garbage under valid-looking names that only the symlinks reach: `generations`, `snapshots`,
//! `wal`, `restore` and `replicate` (with retention) list, read and delete only what is the
//! replica's own, and never touch the outside folder. The same for S3 (moto), GCS
//! (fake-gcs-server) and Azure Blob (Azurite) replicas holding keys no Litestream writes,
//! objects outside the replica's prefix and keys `object_store` cannot represent.
//!
//! Modes: ours creates the replica's and the meta folder's files (our replication lock included) and folders with the modes
//! Litestream 0.3.13 gives them (the database file's mode for files, its folder's mode for
//! folders), and a restored database is not readable by others when the source was not.

#[path = "../../../ls-backends/tests/it/servers.rs"]
#[expect(
    dead_code,
    clippy::duplicate_mod,
    reason = "cloud.rs loads the same harness for all its servers; these tests use no sshd"
)]
mod servers;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::fixtures::{Case, db_summary, our_bin, reference_bin, workspace_root};
use crate::support::replicate::{
    Replicate, Scene, Tuning, config_yaml, create_db, file_url, insert_rows,
};

/// The generation of the `basic` fixture.
const BASIC_GENERATION: &str = "c1f9d892161e0749";
/// How long a replicate may take to snapshot, upload or enforce retention here.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The `basic` fixture with hostile entries added to its replica, and a bait folder beside it.
struct Hostile {
    case: Case,
    replica: PathBuf,
    outside: PathBuf,
    /// Every path under `outside` with its content, as set up.
    outside_before: BTreeMap<PathBuf, Vec<u8>>,
}

impl Hostile {
    fn new() -> Self {
        let case = Case::load("basic");
        let replica = case.dir().join("replica");
        let outside = case.dir().join("outside");
        let generation = replica.join("generations").join(BASIC_GENERATION);
        let garbage = b"not an lz4 frame, must never be read".to_vec();

        // Outside: a valid-looking generation and a bare file, newer than the replica's.
        let bait_generation = outside.join("generations").join("aaaaaaaaaaaaaaaa");
        write(
            &bait_generation
                .join("snapshots")
                .join("00000000.snapshot.lz4"),
            &garbage,
        );
        write(
            &bait_generation
                .join("wal")
                .join("00000000_00000000.wal.lz4"),
            &garbage,
        );
        write(&outside.join("secret"), &garbage);

        // Generations: a symlink to the outside one, and names that are not generations.
        symlink(
            &bait_generation,
            replica.join("generations").join("bbbbbbbbbbbbbbbb"),
        )
        .expect("symlink");
        for name in [
            OsStr::new("ffffffffffffffffffff"),
            OsStr::new("..0123456789abcd"),
            OsStr::new("0123456789ABCDEF"),
            OsStr::new("0123456789abcdef.."),
            OsStr::from_bytes(b"\xff\xfe0123456789abcd"),
        ] {
            let dir = replica.join("generations").join(name);
            write(
                &dir.join("snapshots").join("00000000.snapshot.lz4"),
                &garbage,
            );
            write(&dir.join("wal").join("00000000_00000000.wal.lz4"), &garbage);
        }

        // In the real generation: garbage under names that are not objects' names, and
        // symlinks to the outside file under names that would be the newest objects.
        let snapshots = generation.join("snapshots");
        for name in [
            OsStr::new("ffffffffffffffffffff.snapshot.lz4"),
            OsStr::new("100000000.snapshot.lz4"),
            OsStr::new("0000000g.snapshot.lz4"),
            OsStr::new("FFFFFFFF.snapshot.lz4"),
            OsStr::from_bytes(b"0000000\xff.snapshot.lz4"),
        ] {
            write(&snapshots.join(name), &garbage);
        }
        symlink(
            outside.join("secret"),
            snapshots.join("00000009.snapshot.lz4"),
        )
        .expect("symlink");
        let wal = generation.join("wal");
        for name in [
            OsStr::new("ffffffffffffffffffff_00000000.wal.lz4"),
            OsStr::new("00000000_ffffffffffffffffffff.wal.lz4"),
            OsStr::new("00000000_0000000.wal.lz4"),
            OsStr::new("00000000_00000000_00000000.wal.lz4"),
            OsStr::new("-0000001_00000000.wal.lz4"),
            OsStr::from_bytes(b"00000000_0000\xff000.wal.lz4"),
        ] {
            write(&wal.join(name), &garbage);
        }
        symlink(
            outside.join("secret"),
            wal.join("00000009_00000000.wal.lz4"),
        )
        .expect("symlink");
        symlink(
            bait_generation.join("wal"),
            generation.join("wal").join("00000009_00001000.wal.lz4"),
        )
        .expect("symlink");

        let outside_before = snapshot_tree(&outside);
        Self {
            case,
            replica,
            outside,
            outside_before,
        }
    }

    /// Runs our `litestream args...` in the case folder; panics on a non-zero exit, a panic
    /// message or a name only hostile entries have in its output.
    fn run_ok(&self, args: &[&str]) -> String {
        let output = Command::new(our_bin())
            .args(args)
            .current_dir(self.case.dir())
            .env("HOME", self.case.dir())
            .env_remove("LITESTREAM_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("cannot run litestream");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "`litestream {}` failed ({}):\n{stdout}{stderr}",
            args.join(" "),
            output.status
        );
        for needle in [
            "panicked",
            "aaaaaaaaaaaaaaaa",
            "bbbbbbbbbbbbbbbb",
            "ffffffff",
            "00000009",
            "outside",
        ] {
            assert!(
                !stdout.contains(needle) && !stderr.contains(needle),
                "`litestream {}` printed {needle:?}:\n{stdout}{stderr}",
                args.join(" ")
            );
        }
        stdout
    }

    /// Panics unless the outside folder holds exactly what it did at the start.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            snapshot_tree(&self.outside),
            self.outside_before,
            "the folder outside the replica changed"
        );
    }

    /// The `rows` and `rows_sha256` of the `basic` case.
    fn expected_rows(&self) -> (u64, String) {
        let text = fs::read_to_string(self.case.dir().join("case.json")).expect("case.json");
        let json: Value = serde_json::from_str(&text).expect("case.json is JSON");
        (
            json["rows"].as_u64().expect("rows"),
            json["rows_sha256"]
                .as_str()
                .expect("rows_sha256")
                .to_owned(),
        )
    }
}

fn write(path: &Path, bytes: &[u8]) {
    let parent = path.parent().expect("a file has a folder");
    fs::create_dir_all(parent).unwrap_or_else(|err| panic!("mkdir {}: {err}", parent.display()));
    fs::write(path, bytes).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}

/// Every regular file under `dir` (not following symlinks) with its content.
fn snapshot_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("a readable folder") {
            let entry = entry.expect("a folder entry");
            let file_type = entry.file_type().expect("a file type");
            if file_type.is_dir() {
                pending.push(entry.path());
            } else {
                let bytes = if file_type.is_file() {
                    fs::read(entry.path()).expect("a readable file")
                } else {
                    Vec::new()
                };
                out.insert(entry.path(), bytes);
            }
        }
    }
    out
}

#[test]
fn listings_hostile_file_replica_show_only_its_own_objects() {
    let hostile = Hostile::new();
    let url = file_url(&hostile.replica);

    let generations = hostile.run_ok(&["generations", &url]);
    assert_eq!(generations.lines().count(), 2, "{generations}");
    assert!(generations.contains(BASIC_GENERATION), "{generations}");

    let snapshots = hostile.run_ok(&["snapshots", &url]);
    assert_eq!(snapshots.lines().count(), 2, "{snapshots}");

    let wal = hostile.run_ok(&["wal", &url]);
    // The header and the four segments of index 0.
    assert_eq!(wal.lines().count(), 5, "{wal}");
    hostile.assert_outside_untouched();
}

#[test]
fn restore_hostile_file_replica_reads_only_its_own_objects() {
    let hostile = Hostile::new();
    let url = file_url(&hostile.replica);
    let before: BTreeSet<PathBuf> = snapshot_tree(hostile.case.dir()).into_keys().collect();
    let out = hostile.case.dir().join("restored").join("out.db");
    let out_text = out.to_string_lossy().into_owned();

    hostile.run_ok(&["restore", "-o", &out_text, &url]);

    let summary = db_summary(&out);
    assert_eq!((summary.rows, summary.rows_sha256), hostile.expected_rows());
    assert_eq!(summary.integrity, "ok");
    hostile.assert_outside_untouched();
    // Nothing was written anywhere but next to the output.
    let after: BTreeSet<PathBuf> = snapshot_tree(hostile.case.dir()).into_keys().collect();
    let new: Vec<_> = after
        .difference(&before)
        .filter(|path| !path.starts_with(out.parent().expect("a folder")))
        .collect();
    assert!(new.is_empty(), "restore wrote outside its output: {new:?}");
}

#[test]
fn replicate_hostile_file_replica_retention_deletes_only_its_own_objects() {
    let hostile = Hostile::new();
    let db = hostile.case.dir().join("app.db");
    create_db(&db, 4096);
    insert_rows(&db, 1, 50, 100);
    let config = hostile.case.dir().join("litestream.yml");
    // The fixture's generation is hours old: with a one-hour retention it is deleted.
    let yaml = config_yaml(
        &[(db.clone(), hostile.replica.clone())],
        &Tuning::default(),
        None,
    ) + "        retention: 1h\n        retention-check-interval: 1s\n";
    fs::write(&config, yaml).expect("config");

    let mut replicate = Replicate::with_config(&our_bin(), &config);
    let old_generation = hostile.replica.join("generations").join(BASIC_GENERATION);
    replicate.wait_until("retention to delete the old generation", TIMEOUT, |_| {
        !old_generation.exists()
    });
    insert_rows(&db, 51, 10, 100);
    let exited = replicate.stop_ok();

    for needle in ["level=ERROR", "panicked", "outside", "aaaaaaaaaaaaaaaa"] {
        assert!(
            !exited.log.contains(needle),
            "{needle:?} in:\n{}",
            exited.log
        );
    }
    hostile.assert_outside_untouched();
    // The entries that are not generations are left alone, the symlink included.
    let generations = hostile.replica.join("generations");
    for name in [
        OsStr::new("bbbbbbbbbbbbbbbb"),
        OsStr::new("ffffffffffffffffffff"),
        OsStr::new("..0123456789abcd"),
        OsStr::new("0123456789ABCDEF"),
        OsStr::from_bytes(b"\xff\xfe0123456789abcd"),
    ] {
        assert!(
            generations.join(name).symlink_metadata().is_ok(),
            "{name:?} was removed"
        );
    }
    // And the new generation restores.
    let out = hostile.case.dir().join("restored").join("new.db");
    hostile.run_ok(&[
        "restore",
        "-o",
        &out.to_string_lossy(),
        &file_url(&hostile.replica),
    ]);
    assert_eq!(db_summary(&out).rows, 60);
}

/// The permission bits of every file and folder under `root` (itself included), with
/// generation names and object names replaced by their kind, as `kind -> modes`.
fn modes_by_kind(root: &Path) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).expect("a listed path has metadata");
        let relative = path.strip_prefix(root).expect("under root");
        let kind: Vec<String> = relative
            .components()
            .map(|component| {
                let name = component.as_os_str().to_string_lossy();
                if name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "GEN".to_owned()
                } else if let Some(pos) = name.find('.') {
                    format!("*{}", &name[pos..])
                } else {
                    name.into_owned()
                }
            })
            .collect();
        let kind = format!("/{}", kind.join("/"));
        // Transient files.
        if kind.ends_with(".tmp") {
            continue;
        }
        out.entry(kind)
            .or_default()
            .insert(meta.permissions().mode() & 0o7777);
        if meta.is_dir() {
            for entry in fs::read_dir(&path).expect("a readable folder") {
                pending.push(entry.expect("an entry").path());
            }
        }
    }
    out
}

/// Replicates a database (mode 0640, in a folder of mode 0750) with `bin` into `rep/` until
/// a snapshot and a second WAL segment exist; returns the modes of the database folder (meta
/// folder included) and of the replica by kind.
fn replicate_modes(
    bin: &Path,
) -> (
    BTreeMap<String, BTreeSet<u32>>,
    BTreeMap<String, BTreeSet<u32>>,
) {
    let scene = Scene::new();
    let data = scene.join("data");
    fs::create_dir(&data).expect("mkdir data");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).expect("chmod data");
    let db = data.join("app.db");
    create_db(&db, 4096);
    fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).expect("chmod db");
    insert_rows(&db, 1, 20, 100);
    let replica = scene.join("rep");
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&[(db.clone(), replica.clone())], &Tuning::default(), None),
    );
    let mut replicate = Replicate::with_config(bin, &config);
    let count = |kind: &str| {
        let generations = replica.join("generations");
        fs::read_dir(&generations)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|generation| fs::read_dir(generation.path().join(kind)).ok())
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".lz4"))
            .count()
    };
    replicate.wait_until("a snapshot", TIMEOUT, |_| count("snapshots") >= 1);
    let before = count("wal");
    insert_rows(&db, 21, 20, 100);
    replicate.wait_until("a new WAL segment", TIMEOUT, |_| count("wal") > before);
    replicate.stop_ok();
    (modes_by_kind(&data), modes_by_kind(&replica))
}

/// The kind (see [`modes_by_kind`]) of our replication lock beside `app.db`.
const LOCK_KIND: &str = "/*.app.db-litestream/lock";

#[test]
fn replicate_file_modes_match_litestream() {
    let (mut ours_data, ours_replica) = replicate_modes(&our_bin());
    let (theirs_data, theirs_replica) = replicate_modes(&reference_bin());
    // Our replication lock, which Litestream 0.3.13 does not take, is a meta file like the
    // others: it takes the database's mode (it was 0644 whatever that mode until ls-replica
    // was fixed).
    assert_eq!(
        ours_data.remove(LOCK_KIND),
        Some(BTreeSet::from([0o640])),
        "mode of {LOCK_KIND} beside a database of mode 0640 (ours)"
    );
    assert_eq!(theirs_data.get(LOCK_KIND), None, "0.3.13 took a lock");
    assert_eq!(ours_replica, theirs_replica, "replica modes (ours, 0.3.13)");
    assert_eq!(
        ours_data, theirs_data,
        "database folder modes (ours, 0.3.13)"
    );
    // Files take the database's mode, folders its folder's.
    for (kind, modes) in ours_replica.iter().chain(&ours_data) {
        let want = if kind.ends_with(".lz4")
            || kind.ends_with(".wal")
            || kind.ends_with("/generation")
            || kind.ends_with(".db")
        {
            0o640
        } else if kind.ends_with("-wal") || kind.ends_with("-shm") {
            continue;
        } else {
            0o750
        };
        assert_eq!(modes, &BTreeSet::from([want]), "mode of {kind}");
    }
}

/// Restores a replica of a database of mode `mode` with `bin` into a new folder; returns the
/// modes of the restored database and of the folder restore created.
fn restore_modes(bin: &Path, mode: u32) -> (u32, u32) {
    let scene = Scene::new();
    let db = scene.join("app.db");
    create_db(&db, 4096);
    insert_rows(&db, 1, 20, 100);
    fs::set_permissions(&db, fs::Permissions::from_mode(mode)).expect("chmod db");
    let replica = scene.join("rep");
    let config = scene.write(
        "litestream.yml",
        &config_yaml(&[(db.clone(), replica.clone())], &Tuning::default(), None),
    );
    let mut replicate = Replicate::with_config(&our_bin(), &config);
    replicate.wait_until("a snapshot", TIMEOUT, |_| {
        fs::read_dir(replica.join("generations")).is_ok_and(|mut entries| entries.next().is_some())
    });
    replicate.stop_ok();
    let out = scene.join("new").join("out.db");
    let status = Command::new(bin)
        .args(["restore", "-o", &out.to_string_lossy(), &file_url(&replica)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("cannot run restore");
    assert!(status.success(), "{} restore failed", bin.display());
    let mode_of = |path: &Path| {
        fs::metadata(path)
            .unwrap_or_else(|err| panic!("stat {}: {err}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    (mode_of(&out), mode_of(&scene.join("new")))
}

#[test]
fn restore_private_source_output_not_world_readable() {
    for mode in [0o600, 0o640, 0o644] {
        let ours = restore_modes(&our_bin(), mode);
        let theirs = restore_modes(&reference_bin(), mode);
        assert_eq!(
            ours, theirs,
            "restored (db, folder) modes for a {mode:o} source"
        );
        if mode & 0o077 == 0 {
            assert_eq!(ours.0 & 0o077, 0, "restored db mode {:o}", ours.0);
        }
    }
}

/// Configs for the mutation test: the fixtures' and the example's, and one with every key.
fn config_seeds() -> Vec<Vec<u8>> {
    let root = crate::support::fixtures::workspace_root();
    let mut seeds: Vec<Vec<u8>> = [
        "../shared/fixtures/age-encrypted/litestream.yml",
        "../shared/fixtures/config-two-replicas/litestream.yml",
        "examples/litestream.yml",
    ]
    .iter()
    .map(|path| fs::read(root.join(path)).unwrap_or_else(|err| panic!("{path}: {err}")))
    .collect();
    seeds.push(
        b"addr: \":9090\"\nlogging:\n  level: debug\n  type: json\naccess-key-id: $KEY\n\
          dbs:\n  - path: ~/a.db\n    monitor-interval: 1s\n    checkpoint-interval: 1m30s\n    \
          min-checkpoint-page-count: 10\n    replicas:\n      - url: s3://b/p?region=x\n        \
          retention: 24h\n        sync-interval: -1.5\xc2\xb5s\n        snapshot-interval: 0\n      \
          - type: sftp\n        host: h:22\n        password: ${PW}\n        path: /r\n"
            .to_vec(),
    );
    seeds
}

/// The config_parser fuzz target's twin on stable: mutated configs (byte flips, cuts,
/// inserted YAML and `$` characters, from a fixed-seed xorshift) make `databases` succeed or
/// fail with an error, never panic.
#[test]
fn config_mutated_files_load_or_fail_cleanly() {
    const INSERTS: &[&[u8]] = &[
        b"$",
        b"${",
        b"}",
        b":",
        b"- ",
        b"\n",
        b"[",
        b"{",
        b"&a",
        b"*a",
        b"!!binary ",
        b"1e999h",
        b"\xff",
        b"  ",
        b"'",
        b"\"",
    ];
    let env = crate::support::cli::TestEnv::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % u64::try_from(bound.max(1)).expect("usize fits u64"))
            .expect("less than bound")
    };
    for seed in config_seeds() {
        for case in 0..40 {
            let mut text = seed.clone();
            for _ in 0..=next(8) {
                if text.is_empty() {
                    break;
                }
                let at = next(text.len());
                match next(3) {
                    0 => text[at] ^= u8::try_from(next(255) + 1).expect("below 256"),
                    1 => text.truncate(at),
                    _ => {
                        let insert = INSERTS[next(INSERTS.len())];
                        text.splice(at..at, insert.iter().copied());
                    }
                }
            }
            let path = env.join("mutated.yml");
            fs::write(&path, &text).expect("write config");
            let out = env.run_with_env(&["databases", "-config", "mutated.yml"], &[("KEY", "k")]);
            assert!(
                matches!(out.code, Some(0 | 1)) && !out.stderr.contains("panicked"),
                "case {case}: exit {:?} for config {:?}:\n{}",
                out.code,
                String::from_utf8_lossy(&text),
                out.stderr
            );
        }
    }
}

/// Sends one HTTP/1.1 request to `addr`, `head` being its request line and extra headers
/// (each ending in CRLF), with `body`; panics unless the answer is 200.
fn raw_request(addr: &str, head: &str, body: &[u8]) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    write!(
        stream,
        "{head}Host: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| stream.write_all(body))
    .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response is read");
    assert!(response.starts_with("HTTP/1.1 200"), "{head}{response}");
}

/// PUTs `body` as the object `key` (sent as is, `..` and all) of bucket `bkt` on moto at `addr`.
fn s3_put(addr: &str, key: &str, body: &[u8]) {
    raw_request(addr, &format!("PUT /bkt/{key} HTTP/1.1\r\n"), body);
}

/// `key` as a query value: every byte but the unreserved ones percent-encoded, except that
/// the `%XX` escapes `key` already holds are kept (as moto and Azurite decode them in a path).
fn query_escape(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Uploads `body` as the object `key` (its `%XX` escapes decoded, `..` and all) of bucket
/// `bkt` on fake-gcs-server at `addr`, through its JSON media upload, which needs no auth.
fn gcs_put(addr: &str, key: &str, body: &[u8]) {
    raw_request(
        addr,
        &format!(
            "POST /upload/storage/v1/b/bkt/o?uploadType=media&name={} HTTP/1.1\r\n\
             Content-Type: application/octet-stream\r\n",
            query_escape(key)
        ),
        body,
    );
}

/// Puts a block blob (its body read from stdin) with a SharedKey-signed raw `PUT`: argv is the
/// port, the account, its key and the blob's path after the container, sent as is.
const AZURE_PUT: &str = r#"
import base64, email.utils, hashlib, hmac, http.client, sys
port, account, key, blob = sys.argv[1:]
body = sys.stdin.buffer.read()
path = "/%s/bkt/%s" % (account, blob)
headers = {"x-ms-blob-type": "BlockBlob", "x-ms-date": email.utils.formatdate(usegmt=True),
           "x-ms-version": "2021-08-06"}
canonical = "".join("%s:%s\n" % (name, headers[name]) for name in sorted(headers))
to_sign = "PUT\n\n\n%s\n\n\n\n\n\n\n\n\n%s/%s%s" % (len(body) or "", canonical, account, path)
mac = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
headers["Authorization"] = "SharedKey %s:%s" % (account, base64.b64encode(mac).decode())
con = http.client.HTTPConnection("127.0.0.1", int(port))
con.request("PUT", path, body=body, headers=headers)
res = con.getresponse()
text = res.read()
if res.status != 201:
    sys.exit("PUT %s: %d %r" % (blob, res.status, text))
"#;

/// Uploads `body` as the blob `key` (sent as is, `..` and all; Azurite decodes its `%XX`
/// escapes) of container `bkt` on Azurite at `port`, signed by python3's hmac.
fn azure_put(port: u16, key: &str, body: &[u8]) {
    let mut child = Command::new("python3")
        .args(["-c", AZURE_PUT, &port.to_string()])
        .args([servers::AZURITE_ACCOUNT, servers::AZURITE_KEY, key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(body)
        .expect("the body is written");
    let output = child.wait_with_output().expect("python3 ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Our `litestream args...` with the config `config` and `env` added; returns (exit code,
/// stdout + stderr).
fn run_with_config(config: &Path, env: &[(&str, String)], args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(our_bin())
        .args(args)
        .arg("-config")
        .arg(config)
        .arg(config.with_file_name("app.db"))
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run litestream");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(
        !text.contains("panicked"),
        "litestream {args:?} panicked:\n{text}"
    );
    (output.status.code(), text)
}

/// A key under the replica's generations whose generation name is not UTF-8 (once its `%XX`
/// escapes are decoded).
const NON_UTF8_KEY: &str = "db/generations/%FF%FEdddddddddddddd/snapshots/00000000.snapshot.lz4";

/// An object store holding a replica at `db` in bucket `bkt`, for [`listings_hostile_check`].
struct HostileStore<'a> {
    /// The replica block (`type:` line first, at 6 spaces) reaching the store.
    replica_yaml: String,
    /// The environment our binary needs to reach the store.
    env: Vec<(&'a str, String)>,
    /// Stores an object under a raw key (its `%XX` escapes decoded by the store).
    put: &'a dyn Fn(&str, &[u8]),
    /// Whether the store takes [`NON_UTF8_KEY`].
    takes_non_utf8: bool,
    /// Whether our client lists snapshots and WAL segments recursively by base name (GCS and
    /// Azure, as 0.3.13's `gcs` and `abs` clients, whose `path.Base` drops a trailing `/`):
    /// then [`TRAILING_SLASH_WAL_KEY`] is a WAL segment of index 9 to both 0.3.13 and ours
    /// (checked with fake-gcs-server: both list it, and both fail to restore with "missing WAL
    /// index 1"), so it is not put.
    recursive: bool,
    /// Whether our listings can skip past a key `object_store` cannot represent: not on
    /// fake-gcs-server, whose XML listing ignores `start-after` and `max-keys` (checked with
    /// curl: the same keys come back whatever their values), so the `.`/`..` keys come back
    /// after every skip and each listing fails, cleanly: an error naming the key, no row, no
    /// object read, and `restore` exits 1 writing nothing.
    skips_dot_keys: bool,
}

/// The end of a key under the fixture's generation: a WAL segment's name followed by `/`.
const TRAILING_SLASH_WAL_KEY: &str = "wal/00000009_00000000.wal.lz4/";

/// The hostile listings check for every object store: `store` gets the `basic` fixture's
/// objects, keys no Litestream writes (huge numbers, doubled slashes, non-UTF-8 escapes) and a
/// newer valid-looking generation outside the replica's prefix: listings show only the
/// replica's objects and restore gives the fixture's rows. Then keys with `.` or `..` segments,
/// which `object_store` cannot represent: they are skipped, so the listings and the restore
/// still succeed with the same results, and nothing is read from outside the prefix (unless
/// the store cannot skip, see [`HostileStore::skips_dot_keys`]). 0.3.13 ignores them on S3; on
/// GCS its recursive listings take the base names of `snapshots/../../../../x/00000009...` and
/// `wal/./00000009_...` as a snapshot and a segment of index 9 and its restore fails (checked
/// with fake-gcs-server), where ours skips them.
fn listings_hostile_check(store: &HostileStore<'_>) {
    let put = store.put;
    let case = Case::load("basic");
    let generation = case
        .dir()
        .join("replica")
        .join("generations")
        .join(BASIC_GENERATION);
    for kind in ["snapshots", "wal"] {
        for entry in fs::read_dir(generation.join(kind)).expect("a fixture folder") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().expect("a name").to_string_lossy();
            let bytes = fs::read(&path).expect("a fixture file");
            put(
                &format!("db/generations/{BASIC_GENERATION}/{kind}/{name}"),
                &bytes,
            );
        }
    }
    let garbage = b"not an lz4 frame, must never be read";
    for key in [
        "outside/generations/dddddddddddddddd/snapshots/00000000.snapshot.lz4".to_owned(),
        "db/generations/dddddddddddddddd0/snapshots/00000000.snapshot.lz4".to_owned(),
        "db/generations/ffffffffffffffffffff/snapshots/00000000.snapshot.lz4".to_owned(),
        NON_UTF8_KEY.to_owned(),
        format!("db/generations/{BASIC_GENERATION}/snapshots/ffffffffffffffffffff.snapshot.lz4"),
        format!("db/generations/{BASIC_GENERATION}/snapshots/00000009.snapshot.lz4/x"),
        format!("db/generations/{BASIC_GENERATION}/wal/ffffffffffffffffffff_00000000.wal.lz4"),
        format!("db/generations/{BASIC_GENERATION}//wal/00000009_00000000.wal.lz4"),
        format!("db/generations/{BASIC_GENERATION}/{TRAILING_SLASH_WAL_KEY}"),
    ] {
        let refused = (key == NON_UTF8_KEY && !store.takes_non_utf8)
            || (key.ends_with(TRAILING_SLASH_WAL_KEY) && store.recursive);
        if !refused {
            put(&key, garbage);
        }
    }
    let config = case.dir().join("litestream.yml");
    fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replicas:\n{}",
            case.dir().join("app.db").display(),
            store.replica_yaml
        ),
    )
    .expect("config");
    // A listing that fails logs an error and prints its header, with exit code 0.
    let run = |args: &[&str]| {
        let (code, text) = run_with_config(&config, &store.env, args);
        assert!(!text.contains("level=ERROR"), "{args:?} failed:\n{text}");
        (code, text)
    };

    // `generations` with a config also reads the database.
    create_db(&case.dir().join("app.db"), 4096);
    let (code, generations) = run(&["generations"]);
    assert_eq!(code, Some(0), "{generations}");
    assert_eq!(generations.lines().count(), 2, "{generations}");
    let (code, snapshots) = run(&["snapshots"]);
    assert_eq!(code, Some(0), "{snapshots}");
    assert_eq!(snapshots.lines().count(), 2, "{snapshots}");
    let (code, wal) = run(&["wal"]);
    assert_eq!(code, Some(0), "{wal}");
    assert_eq!(wal.lines().count(), 5, "{wal}");
    let out = case.dir().join("restored").join("out.db");
    let out_text = out.to_string_lossy().into_owned();
    let (code, text) = run(&["restore", "-o", &out_text]);
    assert_eq!(code, Some(0), "{text}");
    let summary = db_summary(&out);
    let json: Value =
        serde_json::from_str(&fs::read_to_string(case.dir().join("case.json")).expect("case.json"))
            .expect("case.json is JSON");
    assert_eq!(Some(summary.rows), json["rows"].as_u64());
    assert_eq!(
        Some(summary.rows_sha256.as_str()),
        json["rows_sha256"].as_str()
    );

    for key in [
        "db/generations/../outside/generations/dddddddddddddddd/snapshots/00000000.snapshot.lz4"
            .to_owned(),
        format!("db/generations/{BASIC_GENERATION}/snapshots/../../../../x/00000009.snapshot.lz4"),
        format!("db/generations/{BASIC_GENERATION}/wal/./00000009_00000000.wal.lz4"),
    ] {
        put(&key, garbage);
    }
    for (args, lines) in [
        (&["generations"][..], 2),
        (&["snapshots"], 2),
        (&["wal"], 5),
    ] {
        let (code, text) = run_with_config(&config, &store.env, args);
        assert_eq!(code, Some(0), "{args:?} with `.`/`..` keys:\n{text}");
        assert!(
            !text.contains("dddddddddddddddd"),
            "{args:?} listed the outside:\n{text}"
        );
        if store.skips_dot_keys {
            assert!(
                !text.contains("level=ERROR"),
                "{args:?} with `.`/`..` keys failed:\n{text}"
            );
            assert_eq!(
                text.lines().count(),
                lines,
                "{args:?} with `.`/`..` keys:\n{text}"
            );
        } else {
            // The error line naming the key, and the header.
            assert!(
                text.contains("level=ERROR") && text.contains("db/generations/../"),
                "{args:?} with `.`/`..` keys did not fail on `db/generations/../`:\n{text}"
            );
            assert_eq!(
                text.lines().count(),
                2,
                "{args:?} with `.`/`..` keys:\n{text}"
            );
        }
    }
    let out2 = case.dir().join("restored").join("out2.db");
    let (code, text) = run_with_config(
        &config,
        &store.env,
        &["restore", "-o", &out2.to_string_lossy()],
    );
    if !store.skips_dot_keys {
        assert_eq!(code, Some(1), "restore with `.`/`..` keys:\n{text}");
        assert!(!out2.exists(), "restore wrote {}:\n{text}", out2.display());
        return;
    }
    assert_eq!(code, Some(0), "restore with `.`/`..` keys:\n{text}");
    assert!(!text.contains("level=ERROR"), "{text}");
    let summary = db_summary(&out2);
    assert_eq!(Some(summary.rows), json["rows"].as_u64());
    assert_eq!(
        Some(summary.rows_sha256.as_str()),
        json["rows_sha256"].as_str()
    );
}

/// [`listings_hostile_check`] on moto, which stores every key as sent (its `%XX` escapes
/// decoded, so [`NON_UTF8_KEY`] holds the bytes FF FE).
#[test]
fn listings_hostile_s3_replica_show_only_its_own_objects() {
    let moto = servers::moto("bkt");
    listings_hostile_check(&HostileStore {
        replica_yaml: format!(
            "      - type: s3\n        bucket: bkt\n        path: db\n        endpoint: http://{}\n        \
             region: us-east-1\n        force-path-style: true\n        access-key-id: x\n        \
             secret-access-key: y\n",
            moto.addr
        ),
        env: Vec::new(),
        put: &|key, body| s3_put(&moto.addr, key, body),
        takes_non_utf8: true,
        recursive: false,
        skips_dot_keys: true,
    });
}

/// [`listings_hostile_check`] on fake-gcs-server, which stores every key, `.`/`..` segments
/// included; it lists [`NON_UTF8_KEY`] with U+FFFD in place of each of the bytes FF FE (Go
/// replaces invalid UTF-8 when it encodes the listing), so that key checks a generation name
/// that is valid UTF-8 but not hex here.
#[test]
fn listings_hostile_gcs_replica_show_only_its_own_objects() {
    let gcs = servers::fake_gcs("bkt");
    listings_hostile_check(&HostileStore {
        replica_yaml: "      - type: gcs\n        bucket: bkt\n        path: db\n".to_owned(),
        env: vec![("STORAGE_EMULATOR_HOST", format!("http://{}", gcs.addr))],
        put: &|key, body| gcs_put(&gcs.addr, key, body),
        takes_non_utf8: true,
        recursive: true,
        skips_dot_keys: false,
    });
}

/// [`listings_hostile_check`] on Azurite, which stores every key as sent, `.`/`..` segments
/// included, but [`NON_UTF8_KEY`]: Azurite answers 500 (its `extractStoragePartsFromPath`
/// throws `URIError: URI malformed` from `decodeURIComponent` on `%FF%FE`), and node's HTTP
/// parser answers 400 to the raw bytes in a request path, so no blob name can hold them.
#[test]
fn listings_hostile_abs_replica_show_only_its_own_objects() {
    let azurite = servers::azurite("bkt");
    listings_hostile_check(&HostileStore {
        replica_yaml: format!(
            "      - type: abs\n        account-name: {account}\n        account-key: {}\n        \
             bucket: bkt\n        path: db\n        endpoint: http://{}/{account}\n",
            servers::AZURITE_KEY,
            azurite.addr,
            account = servers::AZURITE_ACCOUNT,
        ),
        env: Vec::new(),
        put: &|key, body| azure_put(azurite.port, key, body),
        takes_non_utf8: false,
        recursive: true,
        skips_dot_keys: true,
    });
}
