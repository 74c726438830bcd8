//! `cargo xtask dist`: the release tarball of `litestream` and its SHA-256 file.
//!
//! Builds the binary with the `release-dist` profile (the release profile, thin LTO, symbols
//! stripped) and the commit embedded (`LITESTREAM_RS_COMMIT`, read by ls-cli's `build.rs`),
//! checks what `litestream version` prints, lets the binary generate its man pages and shell
//! completions (the hidden `litestream __generate`), and packs everything under `target/dist/`:
//!
//! ```text
//! litestream-rs-<version>-<target>.tar.gz          the tarball
//! litestream-rs-<version>-<target>.tar.gz.sha256   `sha256sum` line, checkable with `sha256sum -c`
//! ```
//!
//! The tarball holds one directory, `litestream-rs-<version>-<target>/`, with `litestream`,
//! `README.md`, `man/man1/*.1`, `completions/{litestream.bash,_litestream,litestream.fish}` and
//! `examples/` (the systemd unit, the Dockerfile and its entrypoint). Entries are sorted, owned by
//! root and dated at the commit, so two runs on one commit give the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::command::Cmd;

/// The workspace version, which ls-cli shares.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The cargo profile of the release build, defined on the command line (see [`build`]); its
/// output goes to `target/release-dist/`, the tarball to `target/dist/`.
const PROFILE: &str = "release-dist";

/// Builds the tarball and its checksum; returns the tarball's path.
///
/// # Errors
/// When a step fails: the build, the version check, generating the pages, packing, hashing.
pub(crate) fn run(root: &Path) -> Result<PathBuf> {
    let commit = commit(root);
    let target = host_target(root)?;
    let binary = build(root, &commit)?;
    let name = archive_name(VERSION, &target);
    let out = root.join("target").join("dist");
    let stage = out.join("stage");
    let package = stage.join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove old staging directory {}", stage.display()))?;
    }
    fs::create_dir_all(&package).with_context(|| format!("cannot create {}", package.display()))?;

    let staged_binary = package.join("litestream");
    copy(&binary, &staged_binary)?;
    let version_output = Cmd::new(&staged_binary, root).args(["version"]).read()?;
    check_version_output(&version_output, VERSION, &commit)?;
    Cmd::new(&staged_binary, root)
        .args([std::ffi::OsStr::new("__generate"), package.as_os_str()])
        .run()?;
    copy(&root.join("README.md"), &package.join("README.md"))?;
    let examples = root.join("examples");
    if examples.is_dir() {
        copy_dir(&examples, &package.join("examples"))?;
    }

    let tarball = out.join(format!("{name}.tar.gz"));
    pack(root, &stage, &name, &tarball, &commit)?;
    let tarball_name = format!("{name}.tar.gz");
    let checksum = Cmd::new("sha256sum", &out)
        .args([tarball_name.as_str()])
        .read()?;
    let checksum_path = out.join(format!("{tarball_name}.sha256"));
    fs::write(&checksum_path, &checksum)
        .with_context(|| format!("cannot write {}", checksum_path.display()))?;
    Cmd::new("sha256sum", &out)
        .args(["--check", "--quiet", &format!("{tarball_name}.sha256")])
        .run()?;
    fs::remove_dir_all(&stage)
        .with_context(|| format!("cannot remove staging directory {}", stage.display()))?;
    println!("dist: {}", tarball.display());
    println!("dist: {}", checksum_path.display());
    print!("dist: {checksum}");
    Ok(tarball)
}

/// `litestream-rs-<version>-<target>`: the tarball's name and its top directory.
fn archive_name(version: &str, target: &str) -> String {
    format!("litestream-rs-{version}-{target}")
}

/// The short hash of `HEAD`, or `unknown` outside a git checkout.
fn commit(root: &Path) -> String {
    Cmd::new("git", root)
        .args(["rev-parse", "--short", "HEAD"])
        .read()
        .map(|text| text.trim().to_owned())
        .ok()
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The host's target triple, from `rustc -vV`.
fn host_target(root: &Path) -> Result<String> {
    let text = Cmd::new("rustc", root).args(["-vV"]).read()?;
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_owned())
        .context("`rustc -vV` printed no `host:` line")
}

/// Builds `litestream` with the dist profile, defined here rather than in Cargo.toml so the
/// release profile (and the `bench` builds in target/release) stay as they are: the release
/// settings (thin LTO, 4 codegen units) with every symbol stripped. Returns the binary's path.
fn build(root: &Path, commit: &str) -> Result<PathBuf> {
    Cmd::cargo(root)
        .env("LITESTREAM_RS_COMMIT", commit)
        .args([
            "build",
            "--locked",
            "--package",
            "ls-cli",
            "--bin",
            "litestream",
            "--config",
            "profile.release-dist.inherits=\"release\"",
            "--config",
            "profile.release-dist.lto=\"thin\"",
            "--config",
            "profile.release-dist.strip=\"symbols\"",
            "--profile",
            PROFILE,
        ])
        .run()?;
    Ok(root.join("target").join(PROFILE).join("litestream"))
}

/// Checks what `litestream version` printed: Litestream's line first, exactly, then this
/// build's line with the version and the commit.
fn check_version_output(output: &str, version: &str, commit: &str) -> Result<()> {
    let expected = format!("v0.3.13\nlitestream-rs {version} (commit {commit})\n");
    if output != expected {
        bail!("`litestream version` printed {output:?}, expected {expected:?}");
    }
    Ok(())
}

/// Packs `stage/<name>` into a gzipped tarball: sorted entries, root-owned, dated at the commit,
/// gzip without a timestamp.
fn pack(root: &Path, stage: &Path, name: &str, tarball: &Path, commit: &str) -> Result<()> {
    let mtime = Cmd::new("git", root)
        .args(["show", "-s", "--format=%ct", commit])
        .read()
        .map(|text| format!("@{}", text.trim()))
        .unwrap_or_else(|_| "@0".to_owned());
    let tar = tarball.with_extension("");
    if tarball.exists() {
        fs::remove_file(tarball).with_context(|| format!("cannot remove {}", tarball.display()))?;
    }
    Cmd::new("tar", stage)
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            &format!("--mtime={mtime}"),
            "--create",
            "--file",
        ])
        .args([tar.as_os_str()])
        .args([name])
        .run()?;
    Cmd::new("gzip", stage)
        .args(["-n", "-9", "--force"])
        .args([tar.as_os_str()])
        .run()
}

/// Copies one file, keeping its permissions.
fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Copies a directory tree of regular files.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries = fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", from.display()))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest)?;
        } else {
            copy(&path, &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_name_names_version_and_target() {
        assert_eq!(
            archive_name("0.1.0", "x86_64-unknown-linux-gnu"),
            "litestream-rs-0.1.0-x86_64-unknown-linux-gnu"
        );
    }

    #[test]
    fn check_version_output_wants_litestream_line_then_build_line() {
        assert!(
            check_version_output(
                "v0.3.13\nlitestream-rs 0.1.0 (commit abc1234)\n",
                "0.1.0",
                "abc1234"
            )
            .is_ok()
        );
        let err = check_version_output("v0.3.13\n", "0.1.0", "abc1234").unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(
            check_version_output(
                "v0.3.13\nlitestream-rs 0.1.0 (commit unknown)\n",
                "0.1.0",
                "abc1234"
            )
            .is_err()
        );
    }
}
