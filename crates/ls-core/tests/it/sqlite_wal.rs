//! WAL files written by SQLite itself (through Python's sqlite3 module): read strictly they
//! rebuild exactly what SQLite's checkpoint writes; read in recovery mode they stop where
//! SQLite's own recovery stops.

use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::process::Command;

use ls_core::{ByteOrder, WalCommit, WalHeader, WalReader, wal_size};

/// Writes `src.db` in WAL mode (autocheckpoint off) with 40 transactions, copies the database
/// file to `before.db` and the WAL to `copy.db-wal` while the connection is still open, then
/// checkpoints with TRUNCATE and copies the result to `after.db`. With `uncommitted`, a large
/// transaction is left open (its pages spill into the WAL) when the WAL is copied, and rolled
/// back afterwards. Prints the WAL size after the last commit.
const WRITER: &str = r#"
import os, shutil, sqlite3, sys
d, page_size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = os.path.join(d, "src.db")
conn = sqlite3.connect(db, isolation_level=None)
conn.execute(f"PRAGMA page_size={page_size}")
assert conn.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
for i in range(40):
    conn.execute("BEGIN")
    for j in range(5):
        conn.execute("INSERT INTO t (v) VALUES (randomblob(?))", (50 + (i * 37 + j * 11) % 900,))
    if i % 7 == 3:
        conn.execute("DELETE FROM t WHERE id % 5 = ?", (i % 5,))
    conn.execute("COMMIT")
committed = os.path.getsize(db + "-wal")
if mode == "uncommitted":
    conn.execute("PRAGMA cache_size=2")
    conn.execute("BEGIN")
    for j in range(300):
        conn.execute("INSERT INTO t (v) VALUES (randomblob(3000))")
shutil.copy(db, os.path.join(d, "before.db"))
shutil.copy(db + "-wal", os.path.join(d, "copy.db-wal"))
if mode == "uncommitted":
    conn.execute("ROLLBACK")
busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
assert busy == 0
conn.close()
shutil.copy(db, os.path.join(d, "after.db"))
print(committed)
"#;

/// Runs [`WRITER`] in `dir`; returns the WAL size after the last commit.
fn write_with_sqlite(dir: &Path, page_size: u32, mode: &str) -> u64 {
    let output = Command::new("python3")
        .arg("-c")
        .arg(WRITER)
        .arg(dir)
        .arg(page_size.to_string())
        .arg(mode)
        .output()
        .expect("python3 with its sqlite3 module is installed");
    assert!(
        output.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn open_wal(dir: &Path) -> WalReader<BufReader<fs::File>> {
    let file = fs::File::open(dir.join("copy.db-wal")).unwrap();
    WalReader::new(BufReader::new(file)).unwrap()
}

#[test]
fn sqlite_wal_rebuilds_checkpointed_database() {
    for page_size in [1024u32, 4096, 65536] {
        let tmp = tempfile::tempdir().unwrap();
        let committed = write_with_sqlite(tmp.path(), page_size, "committed");
        let mut reader = open_wal(tmp.path());
        assert_eq!(reader.header().page_size, page_size);
        #[cfg(target_endian = "little")]
        assert_eq!(reader.header().byte_order, ByteOrder::LittleEndian);
        let raw_header = fs::read(tmp.path().join("copy.db-wal")).unwrap();
        assert_eq!(WalHeader::parse(&raw_header).unwrap(), *reader.header());

        let mut db = fs::read(tmp.path().join("before.db")).unwrap();
        let page_len = usize::try_from(page_size).unwrap();
        let mut n_frames = 0u64;
        let mut n_commits = 0;
        while let Some(frame) = reader.next_frame().unwrap() {
            // Every transaction here commits, so pages can be applied as they come.
            let at = (usize::try_from(frame.header().pgno).unwrap() - 1) * page_len;
            if db.len() < at + page_len {
                db.resize(at + page_len, 0);
            }
            db[at..at + page_len].copy_from_slice(frame.page());
            if frame.header().is_commit() {
                db.resize(
                    usize::try_from(frame.header().db_size_pages).unwrap() * page_len,
                    0,
                );
                n_commits += 1;
            }
            n_frames += 1;
        }
        assert!(reader.ends_on_commit());
        assert_eq!(n_commits, 41, "CREATE TABLE and 40 transactions");
        assert_eq!(reader.offset(), wal_size(page_size, n_frames));
        assert_eq!(reader.offset(), committed);
        assert!(
            db == fs::read(tmp.path().join("after.db")).unwrap(),
            "page size {page_size}"
        );
    }
}

#[test]
fn sqlite_wal_uncommitted_tail_stops_recovery_at_last_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let committed = write_with_sqlite(tmp.path(), 4096, "uncommitted");
    let wal_len = fs::metadata(tmp.path().join("copy.db-wal")).unwrap().len();
    assert!(
        wal_len > committed,
        "the open transaction spilled pages into the WAL"
    );

    let mut reader = open_wal(tmp.path());
    let mut commits: Vec<WalCommit> = Vec::new();
    while reader.next_valid_frame().unwrap().is_some() {
        if let Some(commit) = reader.last_commit()
            && commits.last() != Some(&commit)
        {
            commits.push(commit);
        }
    }
    assert!(
        reader.offset() > committed,
        "spilled frames are valid, only uncommitted"
    );
    let last = reader.last_commit().unwrap();
    assert_eq!(last.offset, committed);
    assert!(!reader.ends_on_commit());

    // Resume from a commit in the middle, as the copy routine continues from the end of the
    // shadow WAL with the checksum of its last frame.
    let middle = commits[commits.len() / 2];
    let mut file = BufReader::new(fs::File::open(tmp.path().join("copy.db-wal")).unwrap());
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(middle.offset)).unwrap();
    let mut resumed =
        WalReader::resume(file, *reader.header(), middle.offset, middle.checksum).unwrap();
    while resumed.next_valid_frame().unwrap().is_some() {}
    assert_eq!(resumed.last_commit(), Some(last));
    assert_eq!(resumed.offset(), reader.offset());
}
