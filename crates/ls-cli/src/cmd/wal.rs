//! `litestream wal`: every WAL segment of each replica, or of one generation.

use std::ffi::OsString;

use ls_core::Generation;

use crate::args::{Command, WalArgs};
use crate::cmd::{
    ListTarget, Status, format_time, log_list_error, parse, single_arg, write_stdout,
};
use crate::table::Table;

/// Runs `litestream wal`: for each replica, for each generation (or only `-generation`), every
/// segment in listing order.
///
/// # Errors
/// For bad arguments or config, and a missing replica root in URL form. Other listing errors
/// are logged and skipped, as in Litestream.
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<WalArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    let arg = single_arg(&args.args, "database path required")?;
    let target = ListTarget::resolve(&args.config, arg, args.replica.as_deref())?;
    let only = args.generation.as_deref().filter(|name| !name.is_empty());
    let mut table = Table::new(&[
        "replica",
        "generation",
        "index",
        "offset",
        "size",
        "created",
    ]);
    let result = fill(&target, only, &mut table).await;
    let mut out = Vec::new();
    table.write_to(&mut out)?;
    write_stdout(&out)?;
    result.map(|()| Status::Success)
}

async fn fill(target: &ListTarget, only: Option<&str>, table: &mut Table) -> anyhow::Result<()> {
    for replica in &target.replicas {
        let generations = match only {
            // Not validated against the replica, as in Litestream; a name that is not a
            // generation name lists nothing there, here it is reported.
            Some(name) => match Generation::parse(name) {
                Ok(generation) => vec![generation],
                Err(err) => {
                    log_list_error("cannot fetch wal segments", &err);
                    continue;
                }
            },
            None => match target
                .generations(replica, "cannot determine generations")
                .await?
            {
                Some(generations) => generations,
                None => continue,
            },
        };
        for generation in &generations {
            let segments = match replica.client.wal_segments(generation).await {
                Ok(segments) => segments,
                Err(err) => {
                    log_list_error("cannot fetch wal segments", &err);
                    continue;
                }
            };
            for segment in segments {
                table.push(vec![
                    replica.name.clone(),
                    segment.generation.to_string(),
                    segment.index.to_string(),
                    segment.offset.to_string(),
                    segment.size.to_string(),
                    format_time(segment.created_at),
                ]);
            }
        }
    }
    Ok(())
}
