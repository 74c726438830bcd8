//! Tidy checks of `examples/`: the systemd unit, the Dockerfile and its entrypoint script are
//! shipped in the release tarball, so they are checked like code.
//!
//! No Docker or hadolint here, so the Dockerfile is parsed: every instruction is a Dockerfile
//! keyword, `ENTRYPOINT`/`CMD` are JSON arrays, every `COPY` source exists in the tarball's
//! layout. The unit is parsed (sections, keys, `ExecStart`) and, when `systemd-analyze` is
//! installed, verified by it with no warning allowed. The entrypoint must pass `sh -n`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

/// Dockerfile instructions (Docker's reference, "Dockerfile reference").
const DOCKERFILE_KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

#[test]
fn systemd_unit_has_sections_keys_and_replicate_command() {
    let unit = read("examples/litestream.service");
    let entries = parse_unit(&unit).unwrap_or_else(|err| panic!("litestream.service: {err}"));
    for (section, key) in [
        ("Unit", "Description"),
        ("Unit", "After"),
        ("Service", "ExecStart"),
        ("Service", "Restart"),
        ("Install", "WantedBy"),
    ] {
        assert!(
            entries.iter().any(|(s, k, _)| s == section && k == key),
            "litestream.service: no {key}= in [{section}]"
        );
    }
    let exec_start = entries
        .iter()
        .find(|(_, key, _)| key == "ExecStart")
        .map(|(_, _, value)| value.as_str())
        .unwrap_or_default();
    assert!(
        exec_start.starts_with('/') && exec_start.contains("litestream replicate"),
        "ExecStart must run `litestream replicate` by absolute path: {exec_start}"
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        // The parser test above still runs; this one needs systemd's own parser.
        return;
    }
    // The binary and the man pages are not installed here: point ExecStart at an executable
    // that exists and drop the `man:` links, which verify would try to open.
    let unit = read("examples/litestream.service")
        .replace("/usr/local/bin/litestream", "/bin/sh")
        .lines()
        .filter(|line| !line.starts_with("Documentation="))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = scratch_dir("systemd");
    let path = dir.join("litestream.service");
    fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}

#[test]
fn dockerfile_uses_known_instructions_and_shipped_files() {
    let dockerfile = read("examples/Dockerfile");
    let instructions =
        parse_dockerfile(&dockerfile).unwrap_or_else(|err| panic!("Dockerfile: {err}"));
    assert_eq!(
        instructions.first().map(|(keyword, _)| keyword.as_str()),
        Some("FROM"),
        "the first instruction must be FROM"
    );
    for (keyword, args) in &instructions {
        assert!(
            DOCKERFILE_KEYWORDS.contains(&keyword.as_str()),
            "unknown Dockerfile instruction {keyword}"
        );
        if ["ENTRYPOINT", "CMD", "VOLUME"].contains(&keyword.as_str()) {
            json_string_array(args)
                .unwrap_or_else(|| panic!("{keyword} must be a JSON array of strings: {args}"));
        }
        if keyword == "COPY" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let Some((_dest, sources)) = words.split_last() else {
                panic!("COPY without arguments");
            };
            for source in sources {
                // The build context is the unpacked tarball: `litestream` and `examples/`.
                assert!(
                    *source == "litestream" || workspace_root().join(source).exists(),
                    "COPY source {source} is not in the release tarball"
                );
            }
        }
    }
    let entrypoint = instructions
        .iter()
        .find(|(keyword, _)| keyword == "ENTRYPOINT")
        .and_then(|(_, args)| json_string_array(args))
        .expect("an ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/docker-entrypoint.sh"]);
}

#[test]
fn docker_entrypoint_restores_then_replicates_with_exec() {
    let script = read("examples/docker-entrypoint.sh");
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains("restore -config \"$CONFIG\" -if-db-not-exists -if-replica-exists"));
    assert!(script.contains("replicate -config \"$CONFIG\" -exec"));
    let out = Command::new("sh")
        .arg("-n")
        .arg(workspace_root().join("examples/docker-entrypoint.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sh -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn parse_unit_rejects_keys_outside_sections_and_bad_lines() {
    assert!(parse_unit("Description=x\n").is_err());
    assert!(parse_unit("[Unit]\nDescription x\n").is_err());
    assert!(parse_unit("[Unit\n").is_err());
    let entries = parse_unit("# c\n[Unit]\n; c\nDescription = a b \n").unwrap();
    assert_eq!(
        entries,
        [(
            "Unit".to_owned(),
            "Description".to_owned(),
            "a b".to_owned()
        )]
    );
}

#[test]
fn parse_dockerfile_joins_continuations_and_skips_comments() {
    let instructions =
        parse_dockerfile("# c\nFROM x\n\nRUN a \\\n    && b\ncmd [\"y\"]\n").unwrap();
    assert_eq!(
        instructions,
        [
            ("FROM".to_owned(), "x".to_owned()),
            ("RUN".to_owned(), "a && b".to_owned()),
            ("CMD".to_owned(), "[\"y\"]".to_owned()),
        ]
    );
    assert_eq!(
        json_string_array("[\"a\", \"b c\"]"),
        Some(vec!["a".to_owned(), "b c".to_owned()])
    );
    assert_eq!(json_string_array("a b"), None);
    assert_eq!(json_string_array("[a]"), None);
}

/// `(section, key, value)` of every assignment of a systemd unit file.
fn parse_unit(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut section: Option<String> = None;
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: unclosed section header", number + 1))?;
            section = Some(name.to_owned());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not `key=value`: {line}", number + 1))?;
        let section = section
            .clone()
            .ok_or_else(|| format!("line {}: key before any section", number + 1))?;
        entries.push((section, key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(entries)
}

/// `(KEYWORD, arguments)` of every instruction, continuation lines joined.
fn parse_dockerfile(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (pending.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head.trim());
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending
            .split_once(char::is_whitespace)
            .unwrap_or((&pending, ""));
        if keyword.is_empty() {
            return Err(format!("empty instruction near {line}"));
        }
        instructions.push((keyword.to_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    if !pending.is_empty() {
        return Err(format!("the last instruction ends with `\\`: {pending}"));
    }
    Ok(instructions)
}

/// The strings of a JSON array of plain strings (no escapes), or `None`.
fn json_string_array(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|item| {
            let item = item.trim().strip_prefix('"')?.strip_suffix('"')?;
            (!item.contains(['"', '\\'])).then(|| item.to_owned())
        })
        .collect()
}

/// A file of the workspace, as text.
fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// A fresh directory under target/ for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir: PathBuf = [
        workspace_root().as_path(),
        Path::new("target"),
        Path::new("tidy"),
        Path::new(&format!("{name}-{}", std::process::id())),
    ]
    .iter()
    .collect();
    // A leftover of an earlier run with the same pid, if any; create_dir_all reports real trouble.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
