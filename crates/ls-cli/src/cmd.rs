//! Command dispatch (Litestream's `Main.Run`) and what the listing commands share: turning a
//! DB path or replica URL argument into the replicas to list.

mod databases;
mod generate;
mod generations;
mod replicate;
mod restore;
mod snapshots;
pub(crate) mod version;
mod wal;

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use ls_core::ClientError;

use crate::args::{self, Command, ConfigArgs, MAIN_USAGE, Parsed};
use crate::client::{Replica, open_db_replicas, open_replica};
use crate::config::{Config, EnvExpansion, ReplicaConfig, expand_path};
use crate::quote::go_quote;

/// How a command that did not fail ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Done: exit 0.
    Success,
    /// A usage text was printed: exit 1, as Litestream.
    Usage,
}

/// Runs the command named by `args[0]` with the rest of `args`.
///
/// # Errors
/// Whatever the command fails with; [`args::FlagError`] for bad flags.
pub(crate) async fn run(args: &[OsString]) -> anyhow::Result<Status> {
    let Some((name, rest)) = args.split_first() else {
        return print_usage(MAIN_USAGE);
    };
    let name_text = name.to_string_lossy();
    if name_text == "help" || name_text.starts_with('-') {
        return print_usage(MAIN_USAGE);
    }
    // Hidden: a build step of `cargo xtask dist`, not one of Litestream's commands.
    if name_text == generate::NAME {
        return generate::run(rest);
    }
    let Some(command) = Command::from_name(&name_text) else {
        bail!("litestream {name_text}: unknown command");
    };
    match command {
        Command::Version => version::run(command, rest),
        Command::Databases => databases::run(command, rest),
        Command::Generations => generations::run(command, rest).await,
        Command::Snapshots => snapshots::run(command, rest).await,
        Command::Wal => wal::run(command, rest).await,
        Command::Restore => restore::run(command, rest).await,
        Command::Replicate => replicate::run(command, rest).await,
    }
}

/// Parses a command's flags; `None` when help was asked for and printed.
fn parse<T: clap::Parser>(command: Command, args: &[OsString]) -> anyhow::Result<Option<T>> {
    match command.parse::<T>(args)? {
        Parsed::Help => {
            print_usage(&command_usage(command))?;
            Ok(None)
        }
        Parsed::Args(parsed) => Ok(Some(parsed)),
    }
}

/// A command's usage text with the current default config path.
pub(crate) fn command_usage(command: Command) -> String {
    command.usage(&Config::default_path().to_string_lossy())
}

/// Writes a usage text to stdout.
fn print_usage(text: &str) -> anyhow::Result<Status> {
    write_stdout(text.as_bytes())?;
    Ok(Status::Usage)
}

/// Writes `bytes` to stdout and flushes.
///
/// # Errors
/// When stdout is closed; main treats a broken pipe as a clean exit.
pub(crate) fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

/// Loads the config file `-config` names (or the default one) and switches logging to its
/// `logging` section, as Litestream's `ReadConfigFile` does.
///
/// # Errors
/// When the file is missing or invalid.
pub(crate) fn load_config(flags: &ConfigArgs) -> anyhow::Result<Config> {
    let path = explicit_config(flags).unwrap_or_else(Config::default_path);
    let expansion = if flags.no_expand_env {
        EnvExpansion::Off
    } else {
        EnvExpansion::Expand
    };
    let config = Config::load(&path, expansion)?;
    crate::log::configure(&config.logging);
    Ok(config)
}

/// `-config` when given and non-empty (Go treats an empty value as not given).
pub(crate) fn explicit_config(flags: &ConfigArgs) -> Option<PathBuf> {
    flags
        .config
        .clone()
        .filter(|path| !path.as_os_str().is_empty())
}

/// The one positional argument of a listing command.
///
/// # Errors
/// `missing` when there is none (or it is empty), `too many arguments` for more than one.
fn single_arg<'a>(args: &'a [OsString], missing: &str) -> anyhow::Result<&'a OsStr> {
    match args {
        [] => bail!("{missing}"),
        [arg] if arg.is_empty() => bail!("{missing}"),
        [arg] => Ok(arg),
        _ => bail!("too many arguments"),
    }
}

/// What a listing command reads: the replicas, and whether they came from a URL.
#[derive(Debug)]
struct ListTarget {
    replicas: Vec<Replica>,
    source: ListSource,
}

/// Where a listing's replicas came from.
#[derive(Debug)]
enum ListSource {
    /// A replica URL on the command line. Listing a replica whose root does not exist fails
    /// (Litestream 0.3.13 prints an empty table): a mistyped URL must not look like an empty
    /// replica.
    Url(String),
    /// A database of the config file. A missing replica root lists as empty, as in
    /// Litestream: a configured replica may not have been written yet.
    Config {
        /// The database's absolute path.
        db_path: PathBuf,
    },
}

impl ListTarget {
    /// Resolves `arg` (a replica URL or a DB path) into replicas, keeping only `replica_name`
    /// when given (config form only, as in Litestream).
    ///
    /// # Errors
    /// Litestream's errors: a URL together with `-config`, a config that cannot be loaded, a
    /// database not in the config, an unknown `-replica`, a replica that cannot be built.
    fn resolve(
        flags: &ConfigArgs,
        arg: &OsStr,
        replica_name: Option<&str>,
    ) -> anyhow::Result<Self> {
        if args::is_url(arg) {
            if explicit_config(flags).is_some() {
                bail!("cannot specify a replica URL and the -config flag");
            }
            let url = arg.to_string_lossy().into_owned();
            let replica = open_replica(&ReplicaConfig::from_url(&url))?;
            return Ok(Self {
                replicas: vec![replica],
                source: ListSource::Url(url),
            });
        }
        let config = load_config(flags)?;
        let db_path = expand_path(Path::new(arg))
            .with_context(|| format!("cannot expand path {}", Path::new(arg).display()))?;
        let Some(db) = config.db(&db_path) else {
            bail!("database not found in config: {}", db_path.display());
        };
        let mut replicas = open_db_replicas(db, &config.path)?;
        if let Some(name) = replica_name.filter(|name| !name.is_empty()) {
            replicas.retain(|replica| replica.name == name);
            if replicas.is_empty() {
                bail!(
                    "replica {} not found for database {}",
                    go_quote(name),
                    go_quote(&db_path.to_string_lossy())
                );
            }
        }
        Ok(Self {
            replicas,
            source: ListSource::Config { db_path },
        })
    }

    /// The generations of `replica`, or `None` when listing failed and was logged (the
    /// replica is then skipped, as in Litestream).
    ///
    /// # Errors
    /// Only for a missing replica root in URL form.
    async fn generations(
        &self,
        replica: &Replica,
        log_message: &'static str,
    ) -> anyhow::Result<Option<Vec<ls_core::Generation>>> {
        match replica.client.generations().await {
            Ok(generations) => Ok(Some(generations)),
            Err(err @ ClientError::NotFound { .. }) => match &self.source {
                ListSource::Url(url) => {
                    let url = ls_backends::redact_url(url);
                    Err(anyhow::Error::new(err).context(format!("cannot list replica {url}")))
                }
                ListSource::Config { .. } => Ok(Some(Vec::new())),
            },
            Err(err) => {
                log_list_error(log_message, &err);
                Ok(None)
            }
        }
    }
}

/// Logs a listing error the way Litestream does: `msg` plus `error`, no other attribute.
fn log_list_error(message: &str, err: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = err, "{message}");
}

/// RFC 3339 in UTC without a fraction, as Go's `Format(time.RFC3339)` of a UTC time.
fn format_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_time_is_rfc3339_utc_whole_seconds() {
        let time =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_795_634_888_999_999_999);
        assert_eq!(format_time(time), "2026-11-25T19:28:08Z");
    }

    #[test]
    fn single_arg_counts_positionals() {
        let missing = "database path required";
        assert_eq!(single_arg(&[], missing).unwrap_err().to_string(), missing);
        assert_eq!(
            single_arg(&[OsString::new()], missing)
                .unwrap_err()
                .to_string(),
            missing
        );
        assert_eq!(
            single_arg(&[OsString::from("a"), OsString::from("b")], missing)
                .unwrap_err()
                .to_string(),
            "too many arguments"
        );
        assert_eq!(
            single_arg(&[OsString::from("a")], missing).unwrap(),
            OsStr::new("a")
        );
    }
}
