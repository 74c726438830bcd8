//! `litestream databases`: the databases of the config file and their replicas' names.

use std::ffi::OsString;

use anyhow::bail;

use crate::args::{Command, DatabasesArgs};
use crate::client::open_db_replicas;
use crate::cmd::{Status, load_config, parse, write_stdout};
use crate::table::Table;

/// Runs `litestream databases`.
///
/// # Errors
/// For positional arguments, a config that cannot be loaded, or a replica that cannot be
/// built; the rows printed so far are printed first, as Litestream's deferred flush does.
pub(crate) fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<DatabasesArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    if !args.args.is_empty() {
        bail!("too many arguments");
    }
    let config = load_config(&args.config)?;
    let mut table = Table::new(&["path", "replicas"]);
    let mut result = Ok(Status::Success);
    for db in &config.dbs {
        match open_db_replicas(db, &config.path) {
            Ok(replicas) => {
                let names: Vec<&str> = replicas.iter().map(|r| r.name.as_str()).collect();
                table.push(vec![db.path.display().to_string(), names.join(",")]);
            }
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    let mut out = Vec::new();
    table.write_to(&mut out)?;
    write_stdout(&out)?;
    result
}
