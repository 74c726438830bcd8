//! `litestream restore`: Litestream 0.3.13's flags, checks and order of checks (spec 9.4, 8.2,
//! 8.3), then the ls-replica engine, with a progress bar on a terminal and one summary line.
//!
//! Order, as in 0.3.13: flags (`-index`, `-parallelism` errors are flag errors), `-timestamp`,
//! the positional argument, URL or config (`-o` defaults to the DB path), `-if-db-not-exists`,
//! the choice of replica and generation (`-if-replica-exists`), then `-index` with
//! `-timestamp`, the output check and the restore.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, bail};
use chrono::DateTime;
use ls_core::{AgeIdentities, ClientError, Generation, ReplicaClient};
use ls_replica::{DEFAULT_PARALLELISM, RestoreOptions, RestoreUntil, plan_restore};
use tracing::{Instrument as _, info};

use crate::args::{self, Command, FlagError, RestoreArgs};
use crate::client::{open_db_replicas, open_replica};
use crate::cmd::{Status, explicit_config, load_config, parse, single_arg};
use crate::config::{ReplicaConfig, expand_path};
use crate::progress::restore_progress;

/// 0.3.13's text, with its U+00A0 no-break space between `8601` and `format`.
const TIMESTAMP_ERROR: &str =
    "invalid -timestamp, must specify in ISO 8601\u{a0}format (e.g. 2000-01-01T00:00:00Z)";

/// Runs `litestream restore`.
///
/// # Errors
/// Litestream's errors for bad flags, arguments and config, `no matching backups found`, an
/// existing output, and any failure of the restore itself (naming the object at fault).
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<RestoreArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    let index = args
        .index
        .as_deref()
        .map(|text| parse_index(text).map_err(|message| flag_error(command, message)))
        .transpose()?;
    let parallelism = match args.parallelism.as_deref() {
        None => DEFAULT_PARALLELISM,
        Some(text) => parse_parallelism(text).map_err(|message| flag_error(command, message))?,
    };
    let timestamp = args
        .timestamp
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(parse_timestamp)
        .transpose()?;
    let arg = single_arg(&args.args, "database path or replica URL required")?;
    let target = Target::resolve(&args, arg)?;

    if args.if_db_not_exists && !is_missing(&target.output) {
        info!("database already exists, skipping");
        return Ok(Status::Success);
    }

    let generation = args.generation.as_deref().filter(|name| !name.is_empty());
    let until = match (index, timestamp) {
        (_, Some(timestamp)) => RestoreUntil::Timestamp(timestamp),
        (Some(index), None) => RestoreUntil::Index(index),
        (None, None) => RestoreUntil::Latest,
    };
    let replicas = target.listable_replicas().await;
    let plan = match generation.map(Generation::parse) {
        // Not a generation name: it matches no generation, as in Litestream.
        Some(Err(_)) => None,
        Some(Ok(generation)) => plan_restore(&replicas, Some(generation), until).await?,
        None => plan_restore(&replicas, None, until).await?,
    };
    let Some(plan) = plan else {
        if args.if_replica_exists {
            info!("no matching backups found");
            return Ok(Status::Success);
        }
        bail!("no matching backups found");
    };
    if index.is_some() && timestamp.is_some() {
        bail!("cannot specify index & timestamp to restore");
    }
    let Some((name, client)) = replicas.get(plan.replica) else {
        bail!(
            "restore plan names replica {} of {}",
            plan.replica,
            replicas.len()
        );
    };
    let identities = target
        .identities
        .iter()
        .find(|(replica, _)| replica == name)
        .map(|(_, identities)| identities.clone())
        .unwrap_or_default();

    let span = match &target.db_path {
        Some(db) => tracing::info_span!("restore", db = %db.display(), replica = %name),
        None => tracing::info_span!("restore", replica = %name),
    };
    let (progress, bar) = restore_progress();
    let options = RestoreOptions {
        output: target.output.clone(),
        parallelism,
        identities,
    };
    let started = Instant::now();
    let restored = ls_replica::restore(Arc::clone(client), &plan, options, progress)
        .instrument(span.clone())
        .await;
    if let Some(bar) = bar {
        bar.clear();
    }
    let summary = restored?;
    span.in_scope(|| {
        info!(
            path = %target.output.display(),
            position = %summary.pos,
            snapshot_index = summary.snapshot_index,
            segments = summary.n_segments,
            size = summary.db_size_bytes,
            elapsed = ?started.elapsed(),
            "restored database"
        );
    });
    Ok(Status::Success)
}

/// What to restore from and to.
struct Target {
    /// Candidate replicas, in config order.
    replicas: Vec<(String, Arc<dyn ReplicaClient>)>,
    /// Each replica's `age.identities`, by name.
    identities: Vec<(String, AgeIdentities)>,
    /// The output file.
    output: PathBuf,
    /// The database's path in config form (logged as `db=`), `None` for a URL.
    db_path: Option<PathBuf>,
}

impl Target {
    /// Resolves the positional argument: a replica URL (needs `-o`, ignores `-replica`) or a
    /// database of the config file (`-o` defaults to its path; `-replica` filters).
    fn resolve(args: &RestoreArgs, arg: &OsStr) -> anyhow::Result<Self> {
        let output = args
            .output
            .clone()
            .filter(|path| !path.as_os_str().is_empty());
        if args::is_url(arg) {
            if explicit_config(&args.config).is_some() {
                bail!("cannot specify a replica URL and the -config flag");
            }
            let url = arg.to_string_lossy().into_owned();
            let replica = open_replica(&ReplicaConfig::from_url(&url))?;
            let Some(output) = output else {
                bail!("output path required");
            };
            return Ok(Self {
                replicas: vec![(replica.name, replica.client)],
                identities: Vec::new(),
                output,
                db_path: None,
            });
        }
        let config = load_config(&args.config)?;
        let db_path = expand_path(Path::new(arg))
            .with_context(|| format!("cannot expand path {}", Path::new(arg).display()))?;
        let Some(db) = config.db(&db_path) else {
            bail!("database not found in config: {}", db_path.display());
        };
        let opened = open_db_replicas(db, &config.path)?;
        let mut identities = Vec::new();
        for (replica, settings) in opened.iter().zip(&db.replicas) {
            let mut keys = AgeIdentities::default();
            for text in &settings.age_identities {
                let parsed = AgeIdentities::parse(text.expose()).with_context(|| {
                    format!(
                        "replica {} in {}: age identities",
                        settings.key,
                        config.path.display()
                    )
                })?;
                keys.extend(parsed);
            }
            identities.push((replica.name.clone(), keys));
        }
        let only = args.replica.as_deref().filter(|name| !name.is_empty());
        let replicas = opened
            .into_iter()
            // An unknown name leaves no candidate: `no matching backups found`, as 0.3.13.
            .filter(|replica| only.is_none_or(|name| replica.name == name))
            .map(|replica| (replica.name, replica.client))
            .collect();
        Ok(Self {
            replicas,
            identities,
            output: output.unwrap_or_else(|| db_path.clone()),
            db_path: Some(db_path),
        })
    }

    /// The replicas whose root exists: a replica never written to has no backups (0.3.13's
    /// clients list a missing root as empty). Other listing errors are left for the planner
    /// to report.
    async fn listable_replicas(&self) -> Vec<(String, Arc<dyn ReplicaClient>)> {
        let mut replicas = Vec::with_capacity(self.replicas.len());
        for (name, client) in &self.replicas {
            if let Err(ClientError::NotFound { .. }) = client.generations().await {
                continue;
            }
            replicas.push((name.clone(), Arc::clone(client)));
        }
        replicas
    }
}

/// Whether `path` certainly does not exist (Go's `os.IsNotExist` on `os.Stat`).
fn is_missing(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
}

fn flag_error(command: Command, message: String) -> anyhow::Error {
    anyhow::Error::new(FlagError { command, message })
}

/// `-index`: hex, as Go's `strconv.ParseInt(s, 16, 32)` (no `0x`, at most `7fffffff`).
/// Negative values, which 0.3.13 accepts and then finds no snapshot for, are rejected too.
fn parse_index(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit());
    valid
        .then(|| u32::from_str_radix(digits, 16).ok())
        .flatten()
        .filter(|&index| index <= ls_core::MAX_INDEX)
        .ok_or_else(|| {
            format!(
                "invalid value {} for flag -index: invalid hexadecimal format",
                crate::quote::go_quote(text)
            )
        })
}

/// `-parallelism`: a Go `int` flag (`strconv.ParseInt(s, 0, 64)`: `0x`, `0o`, `0b` and a
/// leading `0` for octal, underscores between digits); values below 1 mean 1.
fn parse_parallelism(text: &str) -> Result<usize, String> {
    let invalid = |why: &str| {
        format!(
            "invalid value {} for flag -parallelism: {why}",
            crate::quote::go_quote(text)
        )
    };
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let digits = digits
        .strip_prefix('_')
        .filter(|_| radix != 10)
        .unwrap_or(digits);
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return Err(invalid("parse error"));
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid("parse error"));
    }
    let value = i64::from_str_radix(&digits, radix).map_err(|_| invalid("value out of range"))?;
    if negative || value < 1 {
        return Ok(1);
    }
    Ok(usize::try_from(value).unwrap_or(usize::MAX))
}

/// `-timestamp`: RFC 3339, fractional seconds allowed.
fn parse_timestamp(text: &str) -> anyhow::Result<SystemTime> {
    let Ok(time) = DateTime::parse_from_rfc3339(text) else {
        bail!("{TIMESTAMP_ERROR}");
    };
    Ok(SystemTime::from(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_index_takes_go_hex() {
        assert_eq!(parse_index("ff"), Ok(0xff));
        assert_eq!(parse_index("000000FF"), Ok(0xff));
        assert_eq!(parse_index("7fffffff"), Ok(0x7fff_ffff));
        for bad in ["0xff", "zz", "", "80000000", "-1", "1_0"] {
            let err = parse_index(bad).unwrap_err();
            assert!(err.ends_with("invalid hexadecimal format"), "{bad}: {err}");
        }
        assert_eq!(
            parse_index("zz").unwrap_err(),
            "invalid value \"zz\" for flag -index: invalid hexadecimal format"
        );
    }

    #[test]
    fn parse_parallelism_takes_go_int_and_floors_at_one() {
        assert_eq!(parse_parallelism("8"), Ok(8));
        assert_eq!(parse_parallelism("0x10"), Ok(16));
        assert_eq!(parse_parallelism("010"), Ok(8));
        assert_eq!(parse_parallelism("1_000"), Ok(1000));
        assert_eq!(parse_parallelism("0"), Ok(1));
        assert_eq!(parse_parallelism("-5"), Ok(1));
        assert_eq!(
            parse_parallelism("x").unwrap_err(),
            "invalid value \"x\" for flag -parallelism: parse error"
        );
        assert!(
            parse_parallelism("99999999999999999999")
                .unwrap_err()
                .ends_with("value out of range")
        );
    }

    #[test]
    fn parse_timestamp_takes_rfc3339_with_fraction() {
        let time = parse_timestamp("2026-11-25T19:45:31.5Z").unwrap();
        let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_millis(), 1_795_635_931_500);
        let err = parse_timestamp("2026-11-25").unwrap_err().to_string();
        assert_eq!(err, TIMESTAMP_ERROR);
    }
}
