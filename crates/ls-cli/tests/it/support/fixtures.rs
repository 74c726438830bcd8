//! The one way in to the replicas the real Litestream 0.3.13 wrote (`../shared/fixtures`, see
//! its README): copy a case to a temporary folder, restore the replica files' mtimes from
//! `case.json`, run a `litestream` binary there with `{CASE}` and `{OUT}` substituted, and sum
//! up a restored database (rows digest, `PRAGMA integrity_check`, page size and count).
//!
//! Databases are read with python3's `sqlite3` module, which `cargo xtask tools` checks for; the
//! reference binary comes from `LITESTREAM_REF_BIN` or `target/tools/venv`.

use std::cell::Cell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

/// The rows query of the fixtures README ("Digest"): one line per row of `t`, by `id`.
pub(crate) const ROWS_SQL: &str = "SELECT id||'|'||k||'|'||hex(v) FROM t ORDER BY id";

/// Longest a single `litestream` run may take before the harness kills it.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The workspace root: this crate is `<root>/crates/ls-cli`.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("CARGO_MANIFEST_DIR is <root>/crates/ls-cli")
        .to_path_buf()
}

/// `<root>/../shared/fixtures`; panics with a clear message when it is missing.
pub(crate) fn fixtures_dir() -> PathBuf {
    let dir = workspace_root().join("..").join("shared").join("fixtures");
    assert!(
        dir.join("README.md").is_file(),
        "the Litestream 0.3.13 fixtures are missing: expected {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// The names of every fixture case (folders holding a `case.json`), sorted.
pub(crate) fn case_names() -> Vec<String> {
    let dir = fixtures_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display())))
        .filter(|entry| entry.path().join("case.json").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no case in {}", dir.display());
    names
}

/// Our `litestream` binary, built by cargo for this test.
pub(crate) fn our_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_litestream"))
}

/// The real Litestream 0.3.13: `LITESTREAM_REF_BIN`, else `<root>/target/tools/venv/bin/litestream`.
pub(crate) fn reference_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LITESTREAM_REF_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "LITESTREAM_REF_BIN={} is not a file; unset it or run `cargo xtask tools`",
            path.display()
        );
        return path;
    }
    let path = workspace_root()
        .join("target")
        .join("tools")
        .join("venv")
        .join("bin")
        .join("litestream");
    assert!(
        path.is_file(),
        "the reference Litestream 0.3.13 is missing: run `cargo xtask tools` (installs it at {}) \
         or set LITESTREAM_REF_BIN",
        path.display()
    );
    path
}

/// A writable copy of one fixture case, with the replica files' mtimes restored.
pub(crate) struct Case {
    name: String,
    temp: TempDir,
    dir: PathBuf,
    json: Value,
    n_outs: Cell<u32>,
}

impl Case {
    /// Copies case `name` to a new temporary folder and sets every file of `case.json`'s
    /// `files` to its `mtime_ns`: the 0.3.x file backend takes creation times from mtimes.
    pub(crate) fn load(name: &str) -> Self {
        let source = fixtures_dir().join(name);
        let temp = tempfile::tempdir().expect("a temporary folder can be made");
        let dir = temp.path().join(name);
        copy_dir(&source, &dir);
        let json_path = dir.join("case.json");
        let text = fs::read_to_string(&json_path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", json_path.display()));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", json_path.display()));
        let case = Self {
            name: name.to_owned(),
            temp,
            dir,
            json,
            n_outs: Cell::new(0),
        };
        case.set_mtimes();
        case
    }

    /// Every case, each in its own temporary folder.
    pub(crate) fn all() -> Vec<Self> {
        case_names().iter().map(|name| Self::load(name)).collect()
    }

    /// The case's name, e.g. `basic`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The copied case folder: `{CASE}` and the working directory of every run.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The replica folders of `replicas[*].path`, relative to the case folder.
    pub(crate) fn replica_paths(&self) -> Vec<String> {
        self.array("replicas")
            .iter()
            .map(|replica| str_field(replica, "path", &self.name).to_owned())
            .collect()
    }

    /// The database path of `litestream.yml` for config-driven cases, else `None`. Taken from a
    /// `restores` entry that uses `-config` and succeeds: its last argument is that path.
    pub(crate) fn config_db_path(&self) -> Option<String> {
        if !self.dir.join("litestream.yml").is_file() {
            return None;
        }
        let db = self
            .restores()
            .into_iter()
            .filter(|restore| matches!(restore.expected, Expected::Rows { .. }))
            .find(|restore| restore.args.iter().any(|arg| arg == "-config"))
            .and_then(|restore| restore.args.last().cloned());
        Some(db.unwrap_or_else(|| {
            panic!(
                "case {}: litestream.yml but no successful -config restore naming its db",
                self.name
            )
        }))
    }

    /// The `name`s of the replicas in `litestream.yml` (none when it is missing). A line scan,
    /// enough for the fixtures' flat configs: `- name: primary` or `name: primary`.
    pub(crate) fn config_replica_names(&self) -> Vec<String> {
        let path = self.dir.join("litestream.yml");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let line = line.trim_start().trim_start_matches("- ");
                let name = line.strip_prefix("name:")?.trim().trim_matches(['"', '\'']);
                Some(name.to_owned())
            })
            .collect()
    }

    /// The `page_size` and `page_count` of `expected.db`.
    pub(crate) fn expected_pages(&self) -> (u64, u64) {
        (
            u64_field(&self.json, "page_size", &self.name),
            u64_field(&self.json, "page_count", &self.name),
        )
    }

    /// The `restores` entries.
    pub(crate) fn restores(&self) -> Vec<RestoreSpec> {
        self.array("restores")
            .iter()
            .map(|entry| RestoreSpec::from_json(entry, &self.name))
            .collect()
    }

    /// A path for `{OUT}` that does not exist yet, alone in a new folder, so whatever a run
    /// leaves beside it can be listed.
    pub(crate) fn new_out_path(&self) -> PathBuf {
        let n = self.n_outs.get() + 1;
        self.n_outs.set(n);
        let dir = self.temp.path().join(format!("out-{n}"));
        fs::create_dir(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        dir.join("restored.db")
    }

    /// `args` with `{CASE}` and `{OUT}` replaced.
    pub(crate) fn substitute(&self, args: &[String], out: &Path) -> Vec<String> {
        let case = self.dir.to_string_lossy();
        let out = out.to_string_lossy();
        args.iter()
            .map(|arg| arg.replace("{CASE}", &case).replace("{OUT}", &out))
            .collect()
    }

    /// Runs `bin args…` with the case folder as working directory (`litestream.yml` paths are
    /// relative to it), no stdin, and a deadline.
    pub(crate) fn run(&self, bin: &Path, args: &[String]) -> Run {
        let child = Command::new(bin)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()));
        wait_with_deadline(child, &format!("{} {}", bin.display(), args.join(" ")))
    }

    fn set_mtimes(&self) {
        let files = self
            .json
            .get("files")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("case {}: case.json has no `files` object", self.name));
        for (relative, file) in files {
            let nanos = u64_field(file, "mtime_ns", &self.name);
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
            let path = self.dir.join(relative);
            let handle = fs::File::options()
                .write(true)
                .open(&path)
                .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
            handle
                .set_modified(mtime)
                .unwrap_or_else(|err| panic!("cannot set the mtime of {}: {err}", path.display()));
        }
    }

    fn array(&self, key: &str) -> &Vec<Value> {
        self.json
            .get(key)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("case {}: case.json has no `{key}` array", self.name))
    }
}

/// What one run of a binary did.
pub(crate) struct Run {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// Its stdout, lossily decoded.
    pub(crate) stdout: String,
    /// Its stderr, lossily decoded.
    pub(crate) stderr: String,
}

/// One entry of a case's `restores`.
pub(crate) struct RestoreSpec {
    /// The entry's `name`, e.g. `latest`.
    pub(crate) name: String,
    /// The arguments after the program name, with `{CASE}` and `{OUT}` placeholders.
    pub(crate) args: Vec<String>,
    /// What the restore must give.
    pub(crate) expected: Expected,
}

/// What a restore must give.
pub(crate) enum Expected {
    /// Success, with exactly these rows of `t`.
    Rows { rows: u64, rows_sha256: String },
    /// A non-zero exit. `litestream_error` is what 0.3.13 prints; `litestream_leaves` what it
    /// leaves behind (`{OUT}`-relative, e.g. `{OUT}.tmp`).
    Fails {
        litestream_error: String,
        litestream_leaves: Vec<String>,
    },
}

impl RestoreSpec {
    fn from_json(entry: &Value, case: &str) -> Self {
        let name = str_field(entry, "name", case).to_owned();
        let args = entry
            .get("args")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("case {case}: restore {name} has no `args`"))
            .iter()
            .map(|arg| {
                arg.as_str()
                    .unwrap_or_else(|| panic!("case {case}: restore {name}: non-string arg"))
                    .to_owned()
            })
            .collect();
        let fails = entry.get("fails").and_then(Value::as_bool) == Some(true);
        let expected = if fails {
            let litestream_leaves = entry
                .get("litestream_leaves")
                .and_then(Value::as_array)
                .map(|leaves| {
                    leaves
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Expected::Fails {
                litestream_error: str_field(entry, "litestream_error", case).to_owned(),
                litestream_leaves,
            }
        } else {
            Expected::Rows {
                rows: u64_field(entry, "rows", case),
                rows_sha256: str_field(entry, "rows_sha256", case).to_owned(),
            }
        };
        Self {
            name,
            args,
            expected,
        }
    }
}

/// What running one `restores` entry gave.
pub(crate) struct RestoreOutcome {
    /// The run itself.
    pub(crate) run: Run,
    /// The `{OUT}` path used.
    pub(crate) out: PathBuf,
    /// The restored database, when the run succeeded and `{OUT}` exists.
    pub(crate) db: Option<DbSummary>,
    /// Files beside `{OUT}` other than `{OUT}` itself, named as the fixtures do (`{OUT}.tmp`),
    /// listed before the database is opened.
    pub(crate) leftovers: Vec<String>,
}

impl RestoreOutcome {
    /// Checks the outcome against the entry: rows, digest and `integrity_check` = `ok` (plus
    /// page size and count for the full restores `latest` and `config-default`); or a non-zero
    /// exit leaving nothing but what 0.3.13 leaves. The error says what differs.
    ///
    /// This is the bar 0.3.13 itself meets, so [`Self::leftovers`] is not checked on success:
    /// 0.3.13 leaves `{OUT}.tmp-shm` and `{OUT}.tmp-wal` behind. Ours must leave nothing: our
    /// tests assert `leftovers` is empty on top of this check.
    pub(crate) fn check(&self, case: &Case, spec: &RestoreSpec) -> Result<(), String> {
        let what = format!("case {} restore {}", case.name(), spec.name);
        match &spec.expected {
            Expected::Rows { rows, rows_sha256 } => {
                let Some(db) = &self.db else {
                    return Err(format!(
                        "{what}: expected success, got {} with no database at {}; stderr: {}",
                        self.run.status,
                        self.out.display(),
                        self.run.stderr.trim()
                    ));
                };
                let mut problems = Vec::new();
                if db.integrity != "ok" {
                    problems.push(format!("integrity_check = {:?}", db.integrity));
                }
                if (db.rows, db.rows_sha256.as_str()) != (*rows, rows_sha256.as_str()) {
                    problems.push(format!(
                        "rows {} (sha256 {}), expected {rows} (sha256 {rows_sha256})",
                        db.rows, db.rows_sha256
                    ));
                }
                let full_restore = matches!(spec.name.as_str(), "latest" | "config-default");
                if full_restore && (db.page_size, db.page_count) != case.expected_pages() {
                    problems.push(format!(
                        "page size and count {:?}, expected {:?}",
                        (db.page_size, db.page_count),
                        case.expected_pages()
                    ));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{what}: {}", problems.join("; ")))
                }
            }
            Expected::Fails {
                litestream_leaves, ..
            } => {
                if self.run.status.success() {
                    return Err(format!("{what}: expected a failure, got success"));
                }
                let unexpected: Vec<&String> = self
                    .leftovers
                    .iter()
                    .filter(|leftover| !litestream_leaves.contains(leftover))
                    .collect();
                if unexpected.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{what}: left {unexpected:?} beside {{OUT}}"))
                }
            }
        }
    }
}

/// Runs one `restores` entry of `case` with `bin`, with a fresh `{OUT}`.
pub(crate) fn run_restore_case(case: &Case, spec: &RestoreSpec, bin: &Path) -> RestoreOutcome {
    let out = case.new_out_path();
    let run = case.run(bin, &case.substitute(&spec.args, &out));
    let leftovers = leftovers_beside(&out);
    let db = (run.status.success() && out.is_file()).then(|| db_summary(&out));
    RestoreOutcome {
        run,
        out,
        db,
        leftovers,
    }
}

/// The rows digest and health of a database, read with python3's `sqlite3`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DbSummary {
    /// Row count of `t`.
    pub(crate) rows: u64,
    /// SHA-256 (lowercase hex) of [`ROWS_SQL`]'s lines, each followed by `\n`.
    pub(crate) rows_sha256: String,
    /// `PRAGMA integrity_check`, lines joined with `; `: `ok` when healthy.
    pub(crate) integrity: String,
    /// `PRAGMA page_size`, in bytes.
    pub(crate) page_size: u64,
    /// `PRAGMA page_count`.
    pub(crate) page_count: u64,
}

/// Reads `db` as the fixtures README's "Digest" says. Opening it may checkpoint a WAL beside it.
pub(crate) fn db_summary(db: &Path) -> DbSummary {
    const SCRIPT: &str = r#"
import hashlib, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
digest = hashlib.sha256()
rows = 0
for (line,) in con.execute(sys.argv[2]):
    digest.update(("" if line is None else line).encode() + b"\n")
    rows += 1
integrity = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
print(rows)
print(digest.hexdigest())
print(integrity)
print(con.execute("PRAGMA page_size").fetchone()[0])
print(con.execute("PRAGMA page_count").fetchone()[0])
con.close()
"#;
    assert!(db.is_file(), "no database at {}", db.display());
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(db)
        .arg(ROWS_SQL)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run python3 (run `cargo xtask tools` to check it): {err}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python3 cannot read {}: {}",
        db.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let number = |line: &str| -> u64 {
        line.parse()
            .unwrap_or_else(|err| panic!("python3 printed {line:?} for a number: {err}"))
    };
    match lines.as_slice() {
        [rows, sha256, integrity, page_size, page_count] => DbSummary {
            rows: number(rows),
            rows_sha256: (*sha256).to_owned(),
            integrity: (*integrity).to_owned(),
            page_size: number(page_size),
            page_count: number(page_count),
        },
        _ => panic!(
            "unexpected output of the python3 digest of {}: {stdout:?}",
            db.display()
        ),
    }
}

/// Files in `out`'s folder other than `out`, named relative to it: `{OUT}.tmp`, or
/// `{DIR}/name` for others.
fn leftovers_beside(out: &Path) -> Vec<String> {
    let dir = out.parent().expect("an {OUT} path has a parent folder");
    let out_name = out
        .file_name()
        .expect("an {OUT} path has a file name")
        .to_string_lossy();
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| *name != out_name)
        .map(|name| match name.strip_prefix(out_name.as_ref()) {
            Some(suffix) => format!("{{OUT}}{suffix}"),
            None => format!("{{DIR}}/{name}"),
        })
        .collect();
    names.sort();
    names
}

fn wait_with_deadline(mut child: Child, what: &str) -> Run {
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                // Best effort: the panic below is the report.
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{what}` still running after {RUN_TIMEOUT:?}: killed");
            }
            Err(err) => panic!("cannot wait for `{what}`: {err}"),
        }
    };
    Run {
        status,
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error leaves what was read: the caller compares output, a short one fails it.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|err| panic!("cannot create {}: {err}", to.display()));
    let entries =
        fs::read_dir(from).unwrap_or_else(|err| panic!("cannot list {}: {err}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", from.display()));
        let source = entry.path();
        let target = to.join(entry.file_name());
        if source.is_dir() {
            copy_dir(&source, &target);
        } else {
            fs::copy(&source, &target).unwrap_or_else(|err| {
                panic!(
                    "cannot copy {} to {}: {err}",
                    source.display(),
                    target.display()
                )
            });
            // shared/ has no write bits on CI; the copy is ours to change.
            fs::set_permissions(&target, fs::Permissions::from_mode(0o644))
                .unwrap_or_else(|err| panic!("cannot make {} writable: {err}", target.display()));
        }
    }
}

fn str_field<'a>(value: &'a Value, key: &str, case: &str) -> &'a str {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("case {case}: case.json: no string `{key}` in {value}"))
}

fn u64_field(value: &Value, key: &str, case: &str) -> u64 {
    value
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("case {case}: case.json: no integer `{key}` in {value}"))
}
