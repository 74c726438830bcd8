//! Build script of `litestream`: embeds the commit the binary was built from, which
//! `litestream version` prints on its second line.
//!
//! The commit is `$LITESTREAM_RS_COMMIT` when set (`cargo xtask dist` sets it, and so can a
//! build from a source tarball without `.git`), else `git rev-parse --short HEAD`, else
//! `unknown`. Git's `HEAD` and the branch it points at are watched, so a new commit rebuilds
//! the binary with the new hash.

use std::path::Path;
use std::process::Command;

/// The variable that overrides the commit.
const COMMIT_VAR: &str = "LITESTREAM_RS_COMMIT";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={COMMIT_VAR}");
    let commit = std::env::var(COMMIT_VAR)
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .map(|commit| commit.trim().to_owned())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=LS_CLI_COMMIT={commit}");
}

/// The short hash of `HEAD`, watching the files that change when it moves.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // `--git-path` resolves each name in the right directory, worktrees included.
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            // Cargo reruns the script on every build for a path that does not exist.
            if Path::new(&path).exists() {
                println!("cargo::rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}

/// Runs git in the crate directory; its trimmed stdout when it succeeds with some output.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
