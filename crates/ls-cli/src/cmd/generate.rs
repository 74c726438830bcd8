//! `litestream __generate DIR`: writes the man pages and the bash, zsh and fish completions into
//! `DIR/man/man1/` and `DIR/completions/`. `cargo xtask dist` ships them in the release tarball.
//!
//! The command is hidden (the usage texts do not list it): it is a build step, not part of
//! Litestream's surface. Everything is generated from the clap definitions of [`crate::args`],
//! and each flag's help comes from the command's usage text (`help/*.txt`), so the man pages say
//! what `litestream <command> -h` says and cannot drift from the flags the parser accepts.
//! Flags appear in clap's `--name` spelling, which Litestream's Go flags accept too.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, ValueHint};
use clap_complete::Shell;

use crate::args::{
    Command, DatabasesArgs, ListArgs, MAIN_USAGE, ReplicateArgs, RestoreArgs, VersionArgs, WalArgs,
};
use crate::cmd::Status;
use crate::cmd::version::{BUILD_VERSION, VERSION};

/// The hidden command's name; the leading underscores keep it clear of Litestream's names.
pub(crate) const NAME: &str = "__generate";

/// The binary's name, as the completions register it.
const BIN: &str = "litestream";

/// The config path the man pages name as the default (the usage texts show the current one).
const DEFAULT_CONFIG: &str = "/etc/litestream.yml";

/// Runs `litestream __generate DIR`.
///
/// # Errors
/// Without exactly one argument, or when a file cannot be written.
pub(crate) fn run(args: &[OsString]) -> anyhow::Result<Status> {
    let [dir] = args else {
        bail!("usage: litestream {NAME} DIR");
    };
    write_all(Path::new(dir))?;
    Ok(Status::Success)
}

/// Writes `litestream.1` and `litestream-<command>.1` into `dir/man/man1/`, and
/// `litestream.bash`, `_litestream` (zsh) and `litestream.fish` into `dir/completions/`.
///
/// # Errors
/// When a directory or file cannot be written; the error names it.
pub(crate) fn write_all(dir: &Path) -> anyhow::Result<()> {
    let man_dir = dir.join("man").join("man1");
    let completions_dir = dir.join("completions");
    for dir in [&man_dir, &completions_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    clap_mangen::generate_to(cli(), &man_dir)
        .with_context(|| format!("cannot write man pages into {}", man_dir.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli(), BIN, &completions_dir).with_context(
            || {
                format!(
                    "cannot write {shell} completions into {}",
                    completions_dir.display()
                )
            },
        )?;
    }
    Ok(())
}

/// The whole command line as one clap tree: Litestream's commands with their flags, helped by
/// the usage texts.
pub(crate) fn cli() -> clap::Command {
    let main = UsagePage::parse(MAIN_USAGE);
    let mut root = clap::Command::new(BIN)
        .about("Streaming replication for SQLite databases (Litestream 0.3.13 compatible)")
        .long_about(main.description.clone())
        // Shown in the man page's VERSION section; there is no `--version` flag, as in
        // Litestream (`litestream version` prints it).
        .version(leak(format!(
            "{} (litestream-rs {BUILD_VERSION})",
            VERSION.trim_start_matches('v')
        )))
        .disable_version_flag(true)
        .propagate_version(true)
        .subcommand_required(true);
    for command in COMMANDS {
        root = root.subcommand(subcommand(command, &main));
    }
    root
}

/// Every Litestream command, in the usage text's order.
const COMMANDS: [Command; 7] = [
    Command::Databases,
    Command::Generations,
    Command::Replicate,
    Command::Restore,
    Command::Snapshots,
    Command::Version,
    Command::Wal,
];

/// One command's clap definition with the texts of its usage page.
fn subcommand(command: Command, main: &UsagePage) -> clap::Command {
    let (name, definition, positional) = match command {
        Command::Databases => ("databases", DatabasesArgs::command(), None),
        Command::Generations => ("generations", ListArgs::command(), Some(TARGET)),
        Command::Replicate => ("replicate", ReplicateArgs::command(), Some(REPLICATE_ARGS)),
        Command::Restore => ("restore", RestoreArgs::command(), Some(TARGET)),
        Command::Snapshots => ("snapshots", ListArgs::command(), Some(TARGET)),
        Command::Version => ("version", VersionArgs::command(), None),
        Command::Wal => ("wal", WalArgs::command(), Some(TARGET)),
    };
    let page = UsagePage::parse(&command.usage(DEFAULT_CONFIG));
    let about = main.commands.get(name).cloned().unwrap_or_default();
    let mut definition = definition
        .name(name)
        .no_binary_name(false)
        .disable_help_flag(false)
        .about(about)
        .long_about(page.description.clone());
    let ids: Vec<String> = definition
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect();
    for id in ids {
        definition = definition.mut_arg(id, |arg| {
            if let Some(long) = arg.get_long().map(str::to_owned) {
                let Some(flag) = page.flags.get(&long) else {
                    return arg;
                };
                let arg = arg.help(flag.help.clone());
                match &flag.value_name {
                    Some(value_name) => arg
                        .value_name(leak(value_name.clone()))
                        .value_hint(value_hint(&long)),
                    None => arg,
                }
            } else {
                match positional {
                    Some(positional) => arg
                        .value_name(positional.value_name)
                        .help(positional.help)
                        .value_hint(ValueHint::AnyPath),
                    None => arg.hide(true),
                }
            }
        });
    }
    definition
}

/// A `&'static str` for clap, which takes owned strings only with its `string` feature: the
/// process generates once and exits, so the few bytes are never missed.
fn leak(text: String) -> &'static str {
    text.leak()
}

/// What completes a flag's value.
fn value_hint(long: &str) -> ValueHint {
    match long {
        "config" | "o" => ValueHint::FilePath,
        "exec" => ValueHint::CommandString,
        _ => ValueHint::Other,
    }
}

/// A command's positional arguments, as the man page shows them.
#[derive(Clone, Copy, Debug)]
struct Positional {
    value_name: &'static str,
    help: &'static str,
}

/// `DB_PATH` or `REPLICA_URL`: the target of the listing commands and `restore`.
const TARGET: Positional = Positional {
    value_name: "DB_PATH|REPLICA_URL",
    help: "A database of the config file (by path), or a replica URL such as s3://bkt/db.",
};

/// `replicate`'s optional database and replica URLs.
const REPLICATE_ARGS: Positional = Positional {
    value_name: "DB_PATH REPLICA_URL",
    help: "A database path followed by one or more replica URLs; without them, the databases \
           of the config file are replicated.",
};

/// A usage text taken apart: its description, the one-line summaries of the main usage's
/// command list, and the flags of its `Arguments:` section.
#[derive(Debug, Default, PartialEq, Eq)]
struct UsagePage {
    /// The paragraphs before `Usage:`, each on one line, separated by blank lines.
    description: String,
    /// `name` → summary, from the main usage's `The commands are:` list.
    commands: BTreeMap<String, String>,
    /// Flag name without dashes → its value name and help.
    flags: BTreeMap<String, FlagHelp>,
}

/// One flag of a usage text.
#[derive(Debug, PartialEq, Eq)]
struct FlagHelp {
    /// `PATH` in `-config PATH`; `None` for a boolean.
    value_name: Option<String>,
    /// The indented lines below the flag, joined.
    help: String,
}

impl UsagePage {
    /// Reads a usage text laid out as Litestream's (`help/*.txt`).
    fn parse(text: &str) -> Self {
        let mut page = Self::default();
        let (head, body) = text.split_once("\nUsage:\n").unwrap_or((text, ""));
        page.description = head
            .trim()
            .split("\n\n")
            .map(|paragraph| {
                paragraph
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut section = "";
        let mut current: Option<(String, FlagHelp)> = None;
        for line in body.lines() {
            if !line.starts_with('\t') && line.ends_with(':') {
                section = line;
                continue;
            }
            match section {
                "The commands are:" => {
                    if let Some((name, summary)) = line.trim().split_once(' ') {
                        page.commands
                            .insert(name.to_owned(), summary.trim().to_owned());
                    }
                }
                "Arguments:" => {
                    if let Some(flag_line) = line.strip_prefix("\t-") {
                        if let Some((name, flag)) = current.take() {
                            page.flags.insert(name, flag);
                        }
                        let mut words = flag_line.split_whitespace();
                        let name = words.next().unwrap_or_default().to_owned();
                        let value_name = words.next().map(str::to_owned);
                        current = Some((
                            name,
                            FlagHelp {
                                value_name,
                                help: String::new(),
                            },
                        ));
                    } else if let Some(help_line) = line.strip_prefix("\t    ")
                        && let Some((_, flag)) = current.as_mut()
                    {
                        if !flag.help.is_empty() {
                            flag.help.push(' ');
                        }
                        flag.help.push_str(help_line.trim());
                    }
                }
                _ => {}
            }
        }
        if let Some((name, flag)) = current {
            page.flags.insert(name, flag);
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_passes_clap_debug_asserts() {
        cli().debug_assert();
    }

    #[test]
    fn usage_page_parses_description_commands_and_flags() {
        let main = UsagePage::parse(MAIN_USAGE);
        assert_eq!(
            main.description,
            "litestream is a tool for replicating SQLite databases."
        );
        assert_eq!(
            main.commands.get("restore").map(String::as_str),
            Some("recovers database backup from a replica")
        );
        assert_eq!(main.commands.len(), COMMANDS.len());
        let restore = UsagePage::parse(&Command::Restore.usage(DEFAULT_CONFIG));
        assert_eq!(
            restore.flags.get("config"),
            Some(&FlagHelp {
                value_name: Some("PATH".to_owned()),
                help: "Specifies the configuration file. Defaults to /etc/litestream.yml"
                    .to_owned(),
            })
        );
        assert_eq!(
            restore.flags.get("if-db-not-exists"),
            Some(&FlagHelp {
                value_name: None,
                help: "Returns exit code of 0 if the database already exists.".to_owned(),
            })
        );
    }

    /// `litestream <command> -h` prints the usage text: it must document every flag the
    /// parser accepts, and the man page takes each flag's help from it.
    #[test]
    fn usage_text_documents_every_flag_of_every_command() {
        let root = cli();
        for command in COMMANDS {
            let page = UsagePage::parse(&command.usage(DEFAULT_CONFIG));
            let name = format!("{command:?}").to_lowercase();
            let sub = root.find_subcommand(&name).unwrap();
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                let flag = page
                    .flags
                    .get(long)
                    .unwrap_or_else(|| panic!("{name}: -{long} missing from the usage text"));
                assert_eq!(
                    flag.value_name.is_some(),
                    arg.get_action().takes_values(),
                    "{name}: -{long}"
                );
                assert!(!flag.help.is_empty(), "{name}: -{long}");
            }
        }
    }

    #[test]
    fn write_all_writes_man_pages_and_completions_that_load() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        let man = dir.path().join("man/man1");
        let main_page = std::fs::read_to_string(man.join("litestream.1")).unwrap();
        assert!(main_page.contains("litestream\\-restore(1)"), "{main_page}");
        for command in COMMANDS {
            let name = format!("{command:?}").to_lowercase();
            assert!(man.join(format!("litestream-{name}.1")).is_file(), "{name}");
        }
        let restore_page = std::fs::read_to_string(man.join("litestream-restore.1")).unwrap();
        assert!(restore_page.contains("\\-\\-timestamp"), "{restore_page}");
        assert!(restore_page.contains("Restore to a specific point\\-in\\-time."));
        assert!(restore_page.contains("DB_PATH|REPLICA_URL"));

        let completions = dir.path().join("completions");
        for file in ["litestream.bash", "_litestream", "litestream.fish"] {
            assert!(completions.join(file).is_file(), "{file}");
        }
        let fish = std::fs::read_to_string(completions.join("litestream.fish")).unwrap();
        assert!(fish.contains("-l if-replica-exists"), "{fish}");

        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("source completions/litestream.bash && complete -p litestream")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.ends_with(" litestream\n"), "{stdout}");
    }

    #[test]
    fn run_without_a_directory_fails_with_usage() {
        let err = run(&[]).unwrap_err();
        assert_eq!(err.to_string(), "usage: litestream __generate DIR");
    }
}
