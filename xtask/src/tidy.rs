//! Tidy checks: the mechanical rules of the house style, as plain tests over the source tree
//! (as rust-analyzer's `xtask/src/tidy.rs` does). They run with every other test in `cargo xtask
//! ci`; a failure lists every file at fault.

mod examples;

use std::fs;
use std::path::{Path, PathBuf};

use crate::workspace_root;

// Built with `concat!` so this file does not match its own needles.
const IGNORE_ATTR: &str = concat!("#[", "ignore");
const SHOULD_PANIC_ATTR: &str = concat!("#[", "should_panic");
const PRINTLN: &str = concat!("print", "ln!");

#[test]
fn rust_files_open_with_module_doc() {
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        offenders.is_empty(),
        "these files must open with a `//!` doc saying what they are for:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn tests_are_never_ignored_or_should_panic() {
    let offenders =
        lines_matching(|_, line| line.contains(IGNORE_ATTR) || line.contains(SHOULD_PANIC_ATTR));
    assert!(
        offenders.is_empty(),
        "no ignored or should_panic tests: assert today's behaviour with a FIXME, match the Err \
         (house style 7.3):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn println_appears_only_in_cli_and_xtask() {
    let offenders = lines_matching(|path, line| {
        !path.starts_with("crates/ls-cli/")
            && !path.starts_with("xtask/")
            && !line.trim_start().starts_with("//")
            && line.contains(PRINTLN)
    });
    assert!(
        offenders.is_empty(),
        "only ls-cli and xtask print; libraries return values and log with tracing:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn architecture_md_names_every_crate() {
    let root = workspace_root();
    let path = root.join("ARCHITECTURE.md");
    let architecture = fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let missing: Vec<String> = crate_names(&root)
        .into_iter()
        .filter(|name| !architecture.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these crates: {missing:?}"
    );
}

/// Every `.rs` file under `crates/` and `xtask/`, as (path relative to the root, text).
fn rust_files() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut paths = Vec::new();
    for dir in ["crates", "xtask"] {
        collect_rust_files(&root.join(dir), &mut paths);
    }
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no .rs file under {}: is the root right?",
        root.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            let relative = path.strip_prefix(&root).unwrap_or(&path);
            (relative.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

/// `path:line: text` of every line for which `matches(relative path, line)` holds.
fn lines_matching(matches: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in rust_files() {
        for (number, line) in text.lines().enumerate() {
            if matches(&path, line) {
                found.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The `name` of every workspace crate: `crates/*/Cargo.toml` and `xtask/Cargo.toml`.
fn crate_names(root: &Path) -> Vec<String> {
    let crates_dir = root.join("crates");
    let entries = fs::read_dir(&crates_dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", crates_dir.display()));
    let mut manifests: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|err| panic!("cannot list {}: {err}", crates_dir.display()))
                .path()
                .join("Cargo.toml")
        })
        .filter(|manifest| manifest.exists())
        .collect();
    manifests.push(root.join("xtask").join("Cargo.toml"));
    manifests.sort();
    manifests
        .iter()
        .map(|manifest| {
            let text = fs::read_to_string(manifest)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", manifest.display()));
            package_name(&text)
                .unwrap_or_else(|| panic!("no `name = \"...\"` in {}", manifest.display()))
        })
        .collect()
}

/// The first `name = "..."` of a manifest: the package's, as `[package]` comes first.
fn package_name(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("name")?
            .trim_start()
            .strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}
