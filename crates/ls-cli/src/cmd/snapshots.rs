//! `litestream snapshots`: every snapshot of every generation of each replica.

use std::ffi::OsString;

use crate::args::{Command, ListArgs};
use crate::cmd::{
    ListTarget, Status, format_time, log_list_error, parse, single_arg, write_stdout,
};
use crate::table::Table;

/// Runs `litestream snapshots`: rows sorted by generation then index, per replica.
///
/// # Errors
/// For bad arguments or config, and a missing replica root in URL form. Other listing errors
/// are logged and the replica skipped, as in Litestream.
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<ListArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    let arg = single_arg(&args.args, "database path required")?;
    let target = ListTarget::resolve(&args.config, arg, args.replica.as_deref())?;
    let mut table = Table::new(&["replica", "generation", "index", "size", "created"]);
    let result = fill(&target, &mut table).await;
    let mut out = Vec::new();
    table.write_to(&mut out)?;
    write_stdout(&out)?;
    result.map(|()| Status::Success)
}

async fn fill(target: &ListTarget, table: &mut Table) -> anyhow::Result<()> {
    'replicas: for replica in &target.replicas {
        let Some(generations) = target
            .generations(replica, "cannot determine snapshots")
            .await?
        else {
            continue;
        };
        let mut snapshots = Vec::new();
        for generation in &generations {
            match replica.client.snapshots(generation).await {
                Ok(found) => snapshots.extend(found),
                Err(err) => {
                    log_list_error("cannot determine snapshots", &err);
                    continue 'replicas;
                }
            }
        }
        snapshots.sort_by_key(|snapshot| (snapshot.generation, snapshot.index));
        for snapshot in snapshots {
            table.push(vec![
                replica.name.clone(),
                snapshot.generation.to_string(),
                snapshot.index.to_string(),
                snapshot.size.to_string(),
                format_time(snapshot.created_at),
            ]);
        }
    }
    Ok(())
}
