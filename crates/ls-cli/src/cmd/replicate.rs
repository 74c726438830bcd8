//! `litestream replicate` (spec 9.3): every database of the config file, or one database and
//! replica URLs from the command line; `-exec`, the metrics server, and a graceful shutdown
//! with a final sync of every replica on SIGINT or SIGTERM.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ls_backends::ReplicaUrl;
use ls_core::{AgeIdentities, AgeRecipients};
use ls_replica::{Db, DbOptions, Replica, ReplicaOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::{self, Command, ReplicateArgs};
use crate::client::open_replica_with_modes;
use crate::cmd::{Status, explicit_config, load_config, parse};
use crate::config::{DbConfig, ReplicaConfig, expand_path};
use crate::duration::GoDuration;

/// Runs `litestream replicate`.
///
/// # Errors
/// Bad arguments or config, a replica that cannot be built, a metrics address without a port,
/// an `-exec` command that cannot start, or a failed final sync; a child that exited non-zero.
pub(crate) async fn run(command: Command, argv: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<ReplicateArgs>(command, argv)? else {
        return Ok(Status::Usage);
    };
    let (dbs, addr, exec) = match args.args.as_slice() {
        [] => {
            let config = load_config(&args.config)?;
            tracing::info!(version = crate::cmd::version::VERSION, "litestream");
            if config.dbs.is_empty() {
                tracing::error!("no databases specified in configuration");
            }
            let mut dbs = Vec::new();
            for db in &config.dbs {
                dbs.push(build_db(db, &config.path)?);
            }
            let exec = args
                .exec
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or(config.exec);
            (dbs, config.addr, exec)
        }
        [db] => bail!(
            "must specify at least one replica URL for {}",
            Path::new(db).display()
        ),
        [db, urls @ ..] => {
            if explicit_config(&args.config).is_some() {
                bail!("cannot specify a replica URL and the -config flag");
            }
            tracing::info!(version = crate::cmd::version::VERSION, "litestream");
            let path = expand_path(Path::new(db))
                .with_context(|| format!("cannot expand path {}", Path::new(db).display()))?;
            let replicas = urls
                .iter()
                .map(|url| {
                    if !args::is_url(url) {
                        bail!("invalid replica url: {}", url.to_string_lossy());
                    }
                    Ok(ReplicaConfig::from_url(&url.to_string_lossy()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let config = DbConfig {
                key: path.display().to_string(),
                path,
                meta_path: None,
                monitor_interval: GoDuration(1_000_000_000),
                checkpoint_interval: GoDuration(60_000_000_000),
                min_checkpoint_page_count: 1000,
                max_checkpoint_page_count: 10_000,
                replicas,
            };
            (
                vec![build_db(&config, Path::new("command line"))?],
                String::new(),
                args.exec.clone().unwrap_or_default(),
            )
        }
    };

    for (db, _) in &dbs {
        db.start()?;
    }
    for (db, fields) in &dbs {
        tracing::info!(path = %db.path().display(), "initialized db");
        for field in fields {
            field.log();
        }
    }

    if !addr.is_empty() {
        serve_metrics(&addr)?;
    }

    let mut child = if exec.is_empty() {
        None
    } else {
        let words = shell_words::split(&exec).context("cannot parse exec command")?;
        let Some((program, rest)) = words.split_first() else {
            bail!("cannot parse exec command: empty command");
        };
        let child = tokio::process::Command::new(program)
            .args(rest)
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start exec command {program}"))?;
        Some(child)
    };

    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut child_failed = None;
    match child.as_mut() {
        Some(proc) => {
            tokio::select! {
                status = proc.wait() => {
                    tracing::info!("subprocess exited, litestream shutting down");
                    let status = status.context("cannot wait for exec process")?;
                    if !status.success() {
                        child_failed = Some(exit_text(status));
                    }
                }
                _ = sigint.recv() => forward(proc, nix::sys::signal::Signal::SIGINT).await?,
                _ = sigterm.recv() => forward(proc, nix::sys::signal::Signal::SIGTERM).await?,
            }
        }
        None => {
            tokio::select! {
                _ = sigint.recv() => {}
                _ = sigterm.recv() => {}
            }
            tracing::info!("signal received, litestream shutting down");
        }
    }

    let mut first_err = None;
    for (db, _) in &dbs {
        if let Err(err) = db.close().await {
            let span = tracing::info_span!("db", db = %db.path().display());
            span.in_scope(|| {
                tracing::error!(error = as_dyn(&err), "error closing db");
            });
            first_err.get_or_insert(err);
        }
    }
    tracing::info!("litestream shut down");
    if let Some(err) = first_err {
        return Err(err.into());
    }
    if let Some(text) = child_failed {
        bail!("{text}");
    }
    Ok(Status::Success)
}

/// Forwards a signal to the `-exec` child and waits for it (spec 9.3): a child that then
/// exits with a non-zero status is an error returned before the databases are closed, as in
/// Litestream.
async fn forward(
    child: &mut tokio::process::Child,
    signal: nix::sys::signal::Signal,
) -> anyhow::Result<()> {
    tracing::info!("signal received, litestream shutting down");
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        tracing::info!("sending signal to exec process");
        // The child may have exited meanwhile; waiting below tells how it ended.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
    tracing::info!("waiting for exec process to close");
    let status = child.wait().await.context("cannot wait for exec process")?;
    if status.code().is_some() && !status.success() {
        bail!("cannot wait for exec process: {}", exit_text(status));
    }
    Ok(())
}

/// Go's text for a child's exit status.
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {signal}"),
        _ => "exit status unknown".to_owned(),
    }
}

/// Starts the Prometheus exporter on `addr` (`:9090`, `127.0.0.1:9090`).
fn serve_metrics(addr: &str) -> anyhow::Result<()> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        bail!(
            "must specify port for bind address: {}",
            crate::quote::go_quote(addr)
        );
    };
    if port.is_empty() {
        bail!(
            "must specify port for bind address: {}",
            crate::quote::go_quote(addr)
        );
    }
    let bind_host = if host.is_empty() {
        "0.0.0.0"
    } else {
        host.trim_matches(['[', ']'])
    };
    let socket: std::net::SocketAddr = format!("{bind_host}:{port}")
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs as _;
            format!("{bind_host}:{port}")
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or(())
        })
        .map_err(|()| anyhow::anyhow!("invalid bind address: {}", crate::quote::go_quote(addr)))?;
    let shown = if host.is_empty() { "localhost" } else { host };
    tracing::info!(url = %format!("http://{shown}:{port}/metrics"), "serving metrics on");
    match metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(socket)
        .install()
    {
        Ok(()) => {
            ls_replica::describe_metrics();
            crate::process_metrics::spawn();
        }
        Err(err) => tracing::error!(error = as_dyn(&err), "cannot start metrics server"),
    }
    Ok(())
}

/// One `replicating to` log line's values.
struct ReplicaLog {
    db: String,
    name: String,
    kind: &'static str,
    sync_interval: std::time::Duration,
    fields: Vec<(&'static str, String)>,
}

impl ReplicaLog {
    /// Logs `replicating to` with the backend's attributes in Litestream's order.
    fn log(&self) {
        let field = |key: &str| {
            self.fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let (name, kind, interval) = (&self.name, self.kind, self.sync_interval);
        match kind {
            "file" => {
                tracing::info!(name = %name, r#type = kind, "sync-interval" = ?interval, path = field("path"), "replicating to")
            }
            "s3" => {
                tracing::info!(name = %name, r#type = kind, "sync-interval" = ?interval, bucket = field("bucket"), path = field("path"), region = field("region"), endpoint = field("endpoint"), "replicating to")
            }
            "gcs" => {
                tracing::info!(name = %name, r#type = kind, "sync-interval" = ?interval, bucket = field("bucket"), path = field("path"), "replicating to")
            }
            "abs" => {
                tracing::info!(name = %name, r#type = kind, "sync-interval" = ?interval, bucket = field("bucket"), path = field("path"), endpoint = field("endpoint"), "replicating to")
            }
            _ => {
                tracing::info!(name = %name, r#type = kind, "sync-interval" = ?interval, host = field("host"), user = field("user"), path = field("path"), "replicating to")
            }
        }
        let _ = &self.db;
    }
}

/// Builds one database and its replicas from its settings.
fn build_db(db: &DbConfig, config_path: &Path) -> anyhow::Result<(Db, Vec<ReplicaLog>)> {
    let mut options = DbOptions::new(db.path.clone());
    options.meta_path = db.meta_path.clone();
    options.monitor_interval = db.monitor_interval.to_std();
    options.checkpoint_interval = db.checkpoint_interval.to_std();
    options.min_checkpoint_page_count =
        u32::try_from(db.min_checkpoint_page_count.max(0)).unwrap_or(u32::MAX);
    options.max_checkpoint_page_count =
        u32::try_from(db.max_checkpoint_page_count.max(0)).unwrap_or(u32::MAX);
    let mut replicas = Vec::new();
    let mut logs = Vec::new();
    for config in &db.replicas {
        let opened = open_replica_with_modes(config, db_modes(&db.path))
            .with_context(|| format!("replica {} in {}", config.key, config_path.display()))?;
        let mut replica_options = ReplicaOptions::new(opened.name.clone());
        replica_options.sync_interval = config.sync_interval.to_std();
        replica_options.retention = config.retention.to_std();
        replica_options.retention_check_interval = config.retention_check_interval.to_std();
        replica_options.snapshot_interval = config.snapshot_interval.to_std();
        replica_options.validation_interval = config.validation_interval.to_std();
        let mut identities = AgeIdentities::default();
        for text in &config.age_identities {
            identities.extend(AgeIdentities::parse(text.expose()).with_context(|| {
                format!(
                    "replica {} in {}: age identities",
                    config.key,
                    config_path.display()
                )
            })?);
        }
        let mut recipients = AgeRecipients::default();
        for text in &config.age_recipients {
            recipients.extend(AgeRecipients::parse(text).with_context(|| {
                format!(
                    "replica {} in {}: age recipients",
                    config.key,
                    config_path.display()
                )
            })?);
        }
        if !identities.is_empty() {
            replica_options.identities = Some(Arc::new(identities));
        }
        if !recipients.is_empty() {
            replica_options.recipients = Some(Arc::new(recipients));
        }
        logs.push(ReplicaLog {
            db: db.path.display().to_string(),
            name: opened.name.clone(),
            kind: opened.client.kind(),
            sync_interval: config.sync_interval.to_std(),
            fields: backend_fields(config),
        });
        replicas.push(Replica::new(replica_options, opened.client));
    }
    let db_handle = Db::new(options, replicas)
        .with_context(|| format!("database {} in {}", db.key, config_path.display()))?;
    Ok((db_handle, logs))
}

/// The permission bits of the database file and its directory, when they can be read.
fn db_modes(db: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::metadata(db).ok()?.mode() & 0o777;
    let dir = std::fs::metadata(db.parent()?).ok()?.mode() & 0o777;
    Some((file, dir))
}

/// The backend attributes of the `replicating to` line (spec 9.3).
fn backend_fields(config: &ReplicaConfig) -> Vec<(&'static str, String)> {
    let url = if config.url.is_empty() {
        None
    } else {
        ReplicaUrl::parse(config.url.as_str()).ok()
    };
    match url {
        Some(ReplicaUrl::File { path }) => vec![("path", expand(&path))],
        Some(ReplicaUrl::S3 {
            bucket,
            path,
            region,
            endpoint,
            ..
        }) => vec![
            ("bucket", bucket),
            ("path", path),
            ("region", region.unwrap_or_else(|| config.region.clone())),
            (
                "endpoint",
                endpoint.unwrap_or_else(|| config.endpoint.clone()),
            ),
        ],
        Some(ReplicaUrl::Gcs { bucket, path }) => vec![("bucket", bucket), ("path", path)],
        Some(ReplicaUrl::Abs {
            container, path, ..
        }) => vec![
            ("bucket", container),
            ("path", path),
            ("endpoint", config.endpoint.clone()),
        ],
        Some(ReplicaUrl::Sftp {
            host, user, path, ..
        }) => vec![
            ("host", host),
            ("user", user.unwrap_or_default()),
            ("path", path),
        ],
        None => match config.kind.as_str() {
            "" | "file" => vec![("path", expand(Path::new(&config.path)))],
            "s3" => vec![
                ("bucket", config.bucket.clone()),
                ("path", config.path.clone()),
                ("region", config.region.clone()),
                ("endpoint", config.endpoint.clone()),
            ],
            "gcs" => vec![
                ("bucket", config.bucket.clone()),
                ("path", config.path.clone()),
            ],
            "abs" => vec![
                ("bucket", config.bucket.clone()),
                ("path", config.path.clone()),
                ("endpoint", config.endpoint.clone()),
            ],
            _ => vec![
                ("host", config.host.clone()),
                ("user", config.user.clone()),
                ("path", config.path.clone()),
            ],
        },
    }
}

fn expand(path: &Path) -> String {
    expand_path(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

/// An error as the `&dyn Error` a `tracing` field records with its whole source chain.
fn as_dyn<E: std::error::Error + 'static>(err: &E) -> &(dyn std::error::Error + 'static) {
    err
}
