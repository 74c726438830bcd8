//! argv as Go's `flag` package reads it, filled into plain clap structs (the "low" form).
//!
//! Litestream's flags are Go flags: `-name` or `--name`, the value after `=` or in the next
//! argument, booleans only as `-flag` or `-flag=<Go bool>`. [`normalize`] rewrites argv into
//! clap's `--name=value` form and reports errors with Go's exact texts; clap then fills the
//! struct. Unlike Go, flags after a positional argument are still flags.
//!
//! The structs hold text as given; the commands turn it into typed settings and check it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::{Args, Parser};

/// A Litestream command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `litestream databases`.
    Databases,
    /// `litestream generations`.
    Generations,
    /// `litestream replicate`.
    Replicate,
    /// `litestream restore`.
    Restore,
    /// `litestream snapshots`.
    Snapshots,
    /// `litestream version`.
    Version,
    /// `litestream wal`.
    Wal,
}

/// A flag error, with Go's text (`flag provided but not defined: -x`). Litestream prints it on
/// stderr and the command's usage on stdout before the error is logged.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FlagError {
    /// The command whose usage is printed.
    pub(crate) command: Command,
    /// Go's message.
    pub(crate) message: String,
}

/// What a command's argv asked for.
#[derive(Debug)]
pub(crate) enum Parsed<T> {
    /// `-h`, `-help` or `--help`: print the usage, exit 1.
    Help,
    /// The flags and positional arguments.
    Args(T),
}

/// `-config PATH` and `-no-expand-env`, on every command but `version`.
#[derive(Args, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfigArgs {
    /// `-config`: the config file; empty counts as not given, as in Go.
    #[arg(long = "config")]
    pub(crate) config: Option<PathBuf>,
    /// `-no-expand-env`: read the config file without `$VAR` expansion.
    #[arg(long = "no-expand-env")]
    pub(crate) no_expand_env: bool,
}

/// `litestream version` (it takes no flags and ignores arguments).
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub(crate) struct VersionArgs {
    /// Ignored, as in Litestream.
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

/// `litestream databases [-config PATH] [-no-expand-env]`.
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct DatabasesArgs {
    /// Config flags.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Positional arguments (none are allowed).
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

/// `litestream generations|snapshots [-config PATH] [-no-expand-env] [-replica NAME] TARGET`.
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct ListArgs {
    /// Config flags.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// `-replica`: only this replica.
    #[arg(long = "replica")]
    pub(crate) replica: Option<String>,
    /// Positional arguments: one DB path or replica URL.
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

/// `litestream wal [-config PATH] [-no-expand-env] [-replica NAME] [-generation NAME] TARGET`.
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct WalArgs {
    /// Config flags.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// `-replica`: only this replica.
    #[arg(long = "replica")]
    pub(crate) replica: Option<String>,
    /// `-generation`: only this generation (not validated, as in Litestream).
    #[arg(long = "generation")]
    pub(crate) generation: Option<String>,
    /// Positional arguments: one DB path or replica URL.
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

/// `litestream restore [flags] DB_PATH|REPLICA_URL` (spec 9.4).
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct RestoreArgs {
    /// Config flags.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// `-o`: output path.
    #[arg(long = "o")]
    pub(crate) output: Option<PathBuf>,
    /// `-replica`: only this replica.
    #[arg(long = "replica")]
    pub(crate) replica: Option<String>,
    /// `-generation`: only this generation.
    #[arg(long = "generation")]
    pub(crate) generation: Option<String>,
    /// `-index`: highest WAL index, hex.
    #[arg(long = "index")]
    pub(crate) index: Option<String>,
    /// `-timestamp`: RFC 3339 point in time.
    #[arg(long = "timestamp")]
    pub(crate) timestamp: Option<String>,
    /// `-parallelism`: concurrent WAL downloads (8).
    #[arg(long = "parallelism")]
    pub(crate) parallelism: Option<String>,
    /// `-if-db-not-exists`: exit 0 when the output exists.
    #[arg(long = "if-db-not-exists")]
    pub(crate) if_db_not_exists: bool,
    /// `-if-replica-exists`: exit 0 when no backup matches.
    #[arg(long = "if-replica-exists")]
    pub(crate) if_replica_exists: bool,
    /// Positional arguments: one DB path or replica URL.
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

/// `litestream replicate [-config PATH] [-no-expand-env] [-exec CMD] [DB_PATH REPLICA_URL...]`.
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct ReplicateArgs {
    /// Config flags.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// `-exec`: child command.
    #[arg(long = "exec")]
    pub(crate) exec: Option<String>,
    /// Positional arguments: nothing, or a DB path and replica URLs.
    #[arg(num_args = 0..)]
    pub(crate) args: Vec<OsString>,
}

impl Command {
    /// The command named `name`, if Litestream has it.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "databases" => Self::Databases,
            "generations" => Self::Generations,
            "replicate" => Self::Replicate,
            "restore" => Self::Restore,
            "snapshots" => Self::Snapshots,
            "version" => Self::Version,
            "wal" => Self::Wal,
            _ => return None,
        })
    }

    /// The command's usage text (Appendix C), with the default config path filled in.
    pub(crate) fn usage(self, default_config: &str) -> String {
        let text = match self {
            Self::Databases => include_str!("help/databases.txt"),
            Self::Generations => include_str!("help/generations.txt"),
            Self::Replicate => include_str!("help/replicate.txt"),
            Self::Restore => include_str!("help/restore.txt"),
            Self::Snapshots => include_str!("help/snapshots.txt"),
            Self::Version => include_str!("help/version.txt"),
            Self::Wal => include_str!("help/wal.txt"),
        };
        text.replace("{config}", default_config)
    }

    /// Parses this command's arguments (those after the command name) into `T`.
    ///
    /// # Errors
    /// A [`FlagError`] with Go's text for an undefined flag, a missing value or a bad boolean.
    pub(crate) fn parse<T: Parser>(self, args: &[OsString]) -> Result<Parsed<T>, FlagError> {
        let flag_error = |message: String| FlagError {
            command: self,
            message,
        };
        let flags = flag_specs(&T::command());
        let Some(normalized) = normalize(&flags, args).map_err(flag_error)? else {
            return Ok(Parsed::Help);
        };
        let matches = T::command()
            .try_get_matches_from(normalized)
            .map_err(|err| flag_error(clap_message(&err)))?;
        T::from_arg_matches(&matches)
            .map(Parsed::Args)
            .map_err(|err| flag_error(clap_message(&err)))
    }
}

/// The main usage text (Appendix C.1).
pub(crate) const MAIN_USAGE: &str = include_str!("help/main.txt");

/// One flag a command defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FlagSpec {
    /// The name without dashes.
    pub(crate) name: String,
    /// Whether the flag takes a value (`false`: a boolean).
    pub(crate) takes_value: bool,
}

/// The flags of a clap command: its long options.
pub(crate) fn flag_specs(command: &clap::Command) -> Vec<FlagSpec> {
    command
        .get_arguments()
        .filter_map(|arg| {
            arg.get_long().map(|name| FlagSpec {
                name: name.to_owned(),
                takes_value: arg.get_action().takes_values(),
            })
        })
        .collect()
}

/// Rewrites Go-style argv into clap's form: `--name=value` for value flags, `--name` for
/// booleans whose last setting is true, then `--` and the positional arguments.
/// `Ok(None)` means help was asked for (`-h`, `-help`, `--help`).
///
/// # Errors
/// Go's text for what Go's `flag` rejects: `flag provided but not defined: -x`, `flag needs an
/// argument: -x`, `invalid boolean value "v" for -x: parse error`, `bad flag syntax: ---x`.
pub(crate) fn normalize(
    flags: &[FlagSpec],
    args: &[OsString],
) -> Result<Option<Vec<OsString>>, String> {
    let mut out: Vec<OsString> = Vec::new();
    let mut bools: BTreeMap<&str, bool> = BTreeMap::new();
    let mut positionals: Vec<OsString> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let bytes = arg.as_encoded_bytes();
        if bytes.len() < 2 || bytes[0] != b'-' {
            positionals.push(arg.clone());
            continue;
        }
        if bytes == b"--" {
            positionals.extend(rest.by_ref().cloned());
            break;
        }
        let Some(text) = arg.to_str() else {
            return Err(format!(
                "flag provided but not defined: -{}",
                arg.to_string_lossy().trim_start_matches('-')
            ));
        };
        let body = text.strip_prefix("--").unwrap_or(&text[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(format!("bad flag syntax: {text}"));
        }
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(flag) = flags.iter().find(|flag| flag.name == name) else {
            if name == "h" || name == "help" {
                return Ok(None);
            }
            return Err(format!("flag provided but not defined: -{name}"));
        };
        if flag.takes_value {
            let value: OsString = match inline_value {
                Some(value) => value.into(),
                None => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
            };
            let mut option = OsString::from(format!("--{name}="));
            option.push(&value);
            out.push(option);
        } else {
            let value = match inline_value {
                None => true,
                Some(value) => parse_go_bool(value).ok_or_else(|| {
                    format!(
                        "invalid boolean value {} for -{name}: parse error",
                        crate::quote::go_quote(value)
                    )
                })?,
            };
            bools.insert(flag.name.as_str(), value);
        }
    }
    out.extend(
        bools
            .into_iter()
            .filter(|&(_, value)| value)
            .map(|(name, _)| OsString::from(format!("--{name}"))),
    );
    out.push(OsString::from("--"));
    out.extend(positionals);
    Ok(Some(out))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A clap error after normalisation: only a flag value that is not UTF-8 gets here.
fn clap_message(err: &clap::Error) -> String {
    let name = err
        .get(clap::error::ContextKind::InvalidArg)
        .map(|arg| arg.to_string())
        .unwrap_or_default();
    let name = name.trim_start_matches('-');
    let name = name.split([' ', '=', '<']).next().unwrap_or_default();
    match err.kind() {
        clap::error::ErrorKind::InvalidUtf8 => {
            format!("invalid value for flag -{name}: not valid UTF-8")
        }
        kind => format!("invalid arguments: {kind}"),
    }
}

/// Whether `arg` is a replica URL rather than a DB path: it matches `^\w+://`.
pub(crate) fn is_url(arg: &OsStr) -> bool {
    let bytes = arg.as_encoded_bytes();
    let scheme_len = bytes
        .iter()
        .take_while(|&&b| b == b'_' || b.is_ascii_alphanumeric())
        .count();
    scheme_len > 0 && bytes[scheme_len..].starts_with(b"://")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn specs() -> Vec<FlagSpec> {
        flag_specs(&WalArgs::command())
    }

    fn norm(args: &[&str]) -> Result<Option<Vec<String>>, String> {
        normalize(&specs(), &os(args))
            .map(|out| out.map(|args| args.into_iter().map(|a| a.into_string().unwrap()).collect()))
    }

    #[test]
    fn flag_specs_reads_clap_definitions() {
        let names: Vec<(String, bool)> = specs()
            .into_iter()
            .map(|f| (f.name, f.takes_value))
            .collect();
        assert_eq!(
            names,
            [
                ("config".to_owned(), true),
                ("no-expand-env".to_owned(), false),
                ("replica".to_owned(), true),
                ("generation".to_owned(), true),
            ]
        );
    }

    #[test]
    fn normalize_accepts_all_go_spellings() {
        let want = Ok(Some(vec![
            "--config=/c.yml".to_owned(),
            "--replica=s3".to_owned(),
            "--".to_owned(),
            "/db".to_owned(),
        ]));
        assert_eq!(norm(&["-config", "/c.yml", "-replica", "s3", "/db"]), want);
        assert_eq!(norm(&["--config", "/c.yml", "--replica=s3", "/db"]), want);
        assert_eq!(norm(&["-config=/c.yml", "/db", "--replica", "s3"]), want);
    }

    #[test]
    fn normalize_value_may_start_with_dash_or_be_empty() {
        assert_eq!(
            norm(&["-replica", "-x", "-config="]),
            Ok(Some(vec![
                "--replica=-x".to_owned(),
                "--config=".to_owned(),
                "--".to_owned()
            ]))
        );
    }

    #[test]
    fn normalize_bool_takes_go_bool_values_last_one_wins() {
        let on = Ok(Some(vec!["--no-expand-env".to_owned(), "--".to_owned()]));
        let off = Ok(Some(vec!["--".to_owned()]));
        assert_eq!(norm(&["-no-expand-env"]), on);
        assert_eq!(norm(&["--no-expand-env=true"]), on);
        assert_eq!(norm(&["-no-expand-env=T"]), on);
        assert_eq!(norm(&["-no-expand-env=1"]), on);
        assert_eq!(norm(&["-no-expand-env=false"]), off);
        assert_eq!(norm(&["-no-expand-env", "-no-expand-env=0"]), off);
        assert_eq!(
            norm(&["-no-expand-env", "false"]),
            Ok(Some(vec![
                "--no-expand-env".to_owned(),
                "--".to_owned(),
                "false".to_owned()
            ]))
        );
    }

    #[test]
    fn normalize_rejects_like_go_flag() {
        assert_eq!(
            norm(&["-bogus"]),
            Err("flag provided but not defined: -bogus".to_owned())
        );
        assert_eq!(
            norm(&["--bogus=1"]),
            Err("flag provided but not defined: -bogus".to_owned())
        );
        assert_eq!(
            norm(&["-trace"]),
            Err("flag provided but not defined: -trace".to_owned())
        );
        assert_eq!(
            norm(&["-config"]),
            Err("flag needs an argument: -config".to_owned())
        );
        assert_eq!(
            norm(&["-no-expand-env=maybe"]),
            Err("invalid boolean value \"maybe\" for -no-expand-env: parse error".to_owned())
        );
        assert_eq!(norm(&["---x"]), Err("bad flag syntax: ---x".to_owned()));
        assert_eq!(norm(&["-=x"]), Err("bad flag syntax: -=x".to_owned()));
    }

    #[test]
    fn normalize_help_flags_and_first_error_wins() {
        for help in ["-h", "-help", "--help", "--h", "-h=1"] {
            assert_eq!(norm(&[help]), Ok(None), "{help}");
        }
        assert_eq!(norm(&["-h", "-bogus"]), Ok(None));
        assert_eq!(
            norm(&["-bogus", "-h"]),
            Err("flag provided but not defined: -bogus".to_owned())
        );
    }

    #[test]
    fn normalize_double_dash_ends_flags_and_single_dash_is_positional() {
        assert_eq!(
            norm(&["-", "--", "-config", "x"]),
            Ok(Some(vec![
                "--".to_owned(),
                "-".to_owned(),
                "-config".to_owned(),
                "x".to_owned()
            ]))
        );
    }

    #[test]
    fn parse_fills_clap_struct() {
        let Parsed::Args(wal) = Command::Wal
            .parse::<WalArgs>(&os(&[
                "/db",
                "-generation",
                "abc",
                "--no-expand-env",
                "-config",
                "/a",
                "-config=/b",
            ]))
            .unwrap()
        else {
            panic!("expected args");
        };
        assert_eq!(
            wal.config.config.as_deref(),
            Some(std::path::Path::new("/b"))
        );
        assert!(wal.config.no_expand_env);
        assert_eq!(wal.generation.as_deref(), Some("abc"));
        assert_eq!(wal.replica, None);
        assert_eq!(wal.args, os(&["/db"]));
    }

    #[test]
    fn parse_restore_keeps_values_as_text() {
        let Parsed::Args(restore) = Command::Restore
            .parse::<RestoreArgs>(&os(&[
                "-o",
                "/out",
                "-index",
                "zz",
                "-if-replica-exists",
                "s3://b/p",
            ]))
            .unwrap()
        else {
            panic!("expected args");
        };
        assert_eq!(
            restore.output.as_deref(),
            Some(std::path::Path::new("/out"))
        );
        assert_eq!(restore.index.as_deref(), Some("zz"));
        assert!(restore.if_replica_exists);
        assert!(!restore.if_db_not_exists);
        let err = Command::Restore
            .parse::<RestoreArgs>(&os(&["-v", "x"]))
            .unwrap_err();
        assert_eq!(err.to_string(), "flag provided but not defined: -v");
        assert_eq!(err.command, Command::Restore);
    }

    #[test]
    fn version_takes_no_flags() {
        let err = Command::Version
            .parse::<VersionArgs>(&os(&["-x"]))
            .unwrap_err();
        assert_eq!(err.to_string(), "flag provided but not defined: -x");
        assert!(matches!(
            Command::Version.parse::<VersionArgs>(&os(&["-h"])),
            Ok(Parsed::Help)
        ));
    }

    #[test]
    fn is_url_matches_word_scheme() {
        for url in ["s3://bkt/db", "file:///backup", "abs://a@c/p", "a_1://x"] {
            assert!(is_url(OsStr::new(url)), "{url}");
        }
        for path in ["/data/app.db", "app.db", "://x", "s3:/x", "s-3://x", "~/x"] {
            assert!(!is_url(OsStr::new(path)), "{path}");
        }
    }

    #[test]
    fn usage_fills_default_config_path() {
        let usage = Command::Databases.usage("/etc/litestream.yml");
        assert!(usage.contains("\t    Defaults to /etc/litestream.yml\n"));
        assert!(
            usage.starts_with(
                "The databases command lists all databases in the configuration file.\n"
            )
        );
        assert!(MAIN_USAGE.ends_with("list available WAL files for a database\n\n"));
    }
}
