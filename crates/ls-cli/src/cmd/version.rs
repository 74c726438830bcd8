//! `litestream version`: prints the version Litestream would print, so scripts that check it
//! keep working.

use std::ffi::OsString;

use crate::args::{Command, VersionArgs};
use crate::cmd::{Status, parse, write_stdout};

/// The version printed: the Litestream release whose behaviour this build reproduces.
pub(crate) const VERSION: &str = "v0.3.13";

/// Runs `litestream version`; extra arguments are ignored, as in Litestream.
///
/// # Errors
/// For a flag (it takes none) or when stdout is closed.
pub(crate) fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(_args) = parse::<VersionArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    write_stdout(format!("{VERSION}\n").as_bytes())?;
    Ok(Status::Success)
}
