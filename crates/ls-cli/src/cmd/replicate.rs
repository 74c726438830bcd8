//! `litestream replicate`: flags and help for now; replication comes with its own issue.

use std::ffi::OsString;

use anyhow::bail;

use crate::args::{Command, ReplicateArgs};
use crate::cmd::{Status, parse};

/// Runs `litestream replicate`.
///
/// # Errors
/// Always, after flag parsing: not implemented yet.
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(_args) = parse::<ReplicateArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    bail!("replicate: not implemented yet")
}
