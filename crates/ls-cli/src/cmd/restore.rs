//! `litestream restore`: flags and help for now; the restore itself comes with its own issue.

use std::ffi::OsString;

use anyhow::bail;

use crate::args::{Command, RestoreArgs};
use crate::cmd::{Status, parse};

/// Runs `litestream restore`.
///
/// # Errors
/// Always, after flag parsing: not implemented yet.
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(_args) = parse::<RestoreArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    bail!("restore: not implemented yet")
}
