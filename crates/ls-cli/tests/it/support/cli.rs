//! Running our `litestream` in a temporary folder of its own, with a clean environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

/// `2026-11-25T19:28:08Z`: the base of the hand-made replicas' mtimes.
pub(crate) const T0_UNIX_SECONDS: u64 = 1_795_634_888;

/// A temporary working directory (also `$HOME`) to run `litestream` in.
pub(crate) struct TestEnv {
    dir: TempDir,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit code (`None` when killed by a signal).
    pub(crate) code: Option<i32>,
    /// stdout, lossily decoded.
    pub(crate) stdout: String,
    /// stderr with log times replaced by `TIME`.
    pub(crate) stderr: String,
}

impl TestEnv {
    /// A new empty directory.
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("cannot create a temporary directory"),
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `relative` inside the directory.
    pub(crate) fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `text` to `relative`, creating parent directories.
    pub(crate) fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|err| panic!("cannot create {}: {err}", parent.display()));
        }
        fs::write(&path, text)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// Writes a file of `size` bytes whose mtime is `T0 + offset_secs`.
    pub(crate) fn write_sized(&self, relative: &str, size: usize, offset_secs: u64) -> PathBuf {
        let path = self.write(relative, &"x".repeat(size));
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(T0_UNIX_SECONDS + offset_secs);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(mtime))
            .unwrap_or_else(|err| panic!("cannot set the mtime of {}: {err}", path.display()));
        path
    }

    /// Runs `litestream args...` here, with `$HOME` set to this directory and no
    /// `$LITESTREAM_CONFIG`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    /// As [`TestEnv::run`], with extra environment variables.
    pub(crate) fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_litestream"))
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env_remove("LITESTREAM_CONFIG")
            .env("TZ", "UTC")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run litestream");
        Output {
            code: output.status.code(),
            stdout: mask_times(&String::from_utf8_lossy(&output.stdout)),
            stderr: mask_times(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// Replaces the time of each log line (`2026/11/25 19:27:20 ` or `time=... `) with `TIME`.
fn mask_times(text: &str) -> String {
    text.lines()
        .map(|line| {
            let bytes = line.as_bytes();
            let go_default = bytes.len() >= 20
                && bytes[4] == b'/'
                && bytes[7] == b'/'
                && bytes[10] == b' '
                && bytes[13] == b':'
                && bytes[16] == b':';
            if go_default {
                format!("TIME{}", &line[19..])
            } else if let Some(rest) = line.strip_prefix("time=") {
                let after = rest.find(' ').map_or("", |space| &rest[space..]);
                format!("time=TIME{after}")
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect()
}
