//! Turns a replica's settings (from `litestream.yml` or a replica URL) into its replica client,
//! as Litestream's `NewReplicaFromConfig` and the per-type `new*ReplicaClientFromConfig`
//! functions do: the type comes from the URL scheme, else `type`, else `file`; URL and explicit
//! fields must not conflict (spec 10.2); the name defaults to the type.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use ls_backends::{FileReplicaClient, ReplicaUrl, ReplicaUrlError, is_url, redact_url};
use ls_core::ReplicaClient;

use crate::config::{DbConfig, ReplicaConfig, expand_path};
use crate::quote::go_quote;

/// A replica ready to be listed or restored from: its name and its client.
#[derive(Clone, Debug)]
pub(crate) struct Replica {
    /// The configured name, or the replica type.
    pub(crate) name: String,
    /// The storage behind it.
    pub(crate) client: Arc<dyn ReplicaClient>,
}

/// Builds every replica of `db`, in config order.
///
/// # Errors
/// When a replica's settings are invalid or two replicas share a name; the error names the
/// config key.
pub(crate) fn open_db_replicas(db: &DbConfig, config_path: &Path) -> anyhow::Result<Vec<Replica>> {
    let mut names = HashSet::new();
    let mut replicas = Vec::with_capacity(db.replicas.len());
    for config in &db.replicas {
        let replica = open_replica(config)
            .with_context(|| format!("replica {} in {}", config.key, config_path.display()))?;
        if !names.insert(replica.name.clone()) {
            bail!(
                "database {} in {}: duplicate replica name: {}",
                db.path.display(),
                config_path.display(),
                go_quote(&replica.name)
            );
        }
        replicas.push(replica);
    }
    Ok(replicas)
}

/// Builds one replica from its settings.
///
/// # Errors
/// For an unknown type, a URL that does not parse, conflicting URL and explicit fields, a
/// missing path, bucket or host, and replica types this build cannot open yet.
pub(crate) fn open_replica(config: &ReplicaConfig) -> anyhow::Result<Replica> {
    if is_url(&config.path) {
        bail!(
            "replica path cannot be a url, please use the 'url' field instead: {}",
            redact_url(&config.path)
        );
    }
    let url = if config.url.is_empty() {
        None
    } else {
        match ReplicaUrl::parse(config.url.as_str()) {
            Ok(url) => Some(url),
            Err(ReplicaUrlError::UnknownType { scheme, .. }) => {
                bail!("unknown replica type in config: {}", go_quote(&scheme))
            }
            Err(err) => return Err(err.into()),
        }
    };
    let kind = match &url {
        Some(url) => url.kind(),
        None => match config.kind.as_str() {
            "" | "file" => "file",
            "s3" => "s3",
            "gcs" => "gcs",
            "abs" => "abs",
            "sftp" => "sftp",
            other => bail!("unknown replica type in config: {}", go_quote(other)),
        },
    };
    let has_url = url.is_some();
    if has_url && !config.path.is_empty() {
        bail!("cannot specify url & path for {kind} replica");
    }
    let client: Arc<dyn ReplicaClient> = match (kind, url) {
        ("file", url) => {
            let path = match url {
                Some(ReplicaUrl::File { path }) => path,
                _ => config.path.clone().into(),
            };
            if path.as_os_str().is_empty() {
                bail!("file replica path required");
            }
            let path = expand_path(&path)
                .with_context(|| format!("cannot expand replica path {}", path.display()))?;
            Arc::new(FileReplicaClient::new(path))
        }
        ("sftp", _) => {
            // Litestream's checks, so a bad config is reported as such before the backend
            // exists.
            if has_url && !config.host.is_empty() {
                bail!("cannot specify url & host for sftp replica");
            }
            if !has_url && config.host.is_empty() {
                bail!("host required for sftp replica");
            }
            if !has_url && config.user.is_empty() {
                bail!("user required for sftp replica");
            }
            bail!("replica type {} is not supported yet", go_quote(kind));
        }
        (kind, _) => {
            if has_url && !config.bucket.is_empty() {
                bail!("cannot specify url & bucket for {kind} replica");
            }
            if !has_url && config.bucket.is_empty() {
                bail!("bucket required for {kind} replica");
            }
            bail!("replica type {} is not supported yet", go_quote(kind));
        }
    };
    let name = if config.name.is_empty() {
        kind.to_owned()
    } else {
        config.name.clone()
    };
    Ok(Replica { name, client })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(edit: impl FnOnce(&mut ReplicaConfig)) -> anyhow::Result<Replica> {
        let mut config = ReplicaConfig::from_url("");
        edit(&mut config);
        open_replica(&config)
    }

    fn error(edit: impl FnOnce(&mut ReplicaConfig)) -> String {
        format!("{:#}", replica(edit).unwrap_err())
    }

    #[test]
    fn open_replica_file_path_defaults_name_to_type() {
        let replica = replica(|c| c.path = "/backup/app".into()).unwrap();
        assert_eq!(replica.name, "file");
        assert_eq!(replica.client.kind(), "file");
        let named = super::open_replica(&ReplicaConfig {
            name: "second".into(),
            url: "file:///backup/app2".into(),
            ..ReplicaConfig::from_url("")
        })
        .unwrap();
        assert_eq!(named.name, "second");
    }

    #[test]
    fn open_replica_reports_litestream_conflicts() {
        assert_eq!(
            error(|c| {
                c.url = "file:///a".into();
                c.path = "/b".into();
            }),
            "cannot specify url & path for file replica"
        );
        assert_eq!(error(|_| {}), "file replica path required");
        assert_eq!(
            error(|c| c.path = "s3://bkt/x".into()),
            "replica path cannot be a url, please use the 'url' field instead: s3://bkt/x"
        );
        assert_eq!(
            error(|c| c.kind = "ftp".into()),
            "unknown replica type in config: \"ftp\""
        );
        assert_eq!(
            error(|c| c.url = "foo://bar".into()),
            "unknown replica type in config: \"foo\""
        );
        assert_eq!(
            error(|c| {
                c.url = "s3://bkt/db".into();
                c.bucket = "other".into();
            }),
            "cannot specify url & bucket for s3 replica"
        );
        assert_eq!(
            error(|c| c.kind = "gcs".into()),
            "bucket required for gcs replica"
        );
        assert_eq!(
            error(|c| c.kind = "sftp".into()),
            "host required for sftp replica"
        );
        assert_eq!(
            error(|c| {
                c.kind = "sftp".into();
                c.host = "h".into();
            }),
            "user required for sftp replica"
        );
    }
}
