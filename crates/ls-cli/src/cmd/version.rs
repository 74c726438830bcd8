//! `litestream version`: prints the version Litestream would print, so scripts that check it
//! keep working, then which build of litestream-rs this is.
//!
//! The first line is exactly Litestream's (`v0.3.13`): scripts that read it (`litestream
//! version | head -n1`, or a match on `v0.3.13`) see what they saw before. The second line
//! names this implementation, its version and the commit it was built from (embedded by
//! `build.rs`): `litestream-rs 0.1.0 (commit abc1234)`.

use std::ffi::OsString;

use crate::args::{Command, VersionArgs};
use crate::cmd::{Status, parse, write_stdout};

/// The version printed: the Litestream release whose behaviour this build reproduces.
pub(crate) const VERSION: &str = "v0.3.13";

/// This implementation's version (the workspace version).
pub(crate) const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this binary was built from (short hash), or `unknown`.
pub(crate) const BUILD_COMMIT: &str = env!("LS_CLI_COMMIT");

/// Runs `litestream version`; extra arguments are ignored, as in Litestream.
///
/// # Errors
/// For a flag (it takes none) or when stdout is closed.
pub(crate) fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(_args) = parse::<VersionArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    write_stdout(version_text().as_bytes())?;
    Ok(Status::Success)
}

/// What `litestream version` prints: Litestream's line, then the build's.
pub(crate) fn version_text() -> String {
    format!("{VERSION}\nlitestream-rs {BUILD_VERSION} (commit {BUILD_COMMIT})\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_first_line_is_litestream_version() {
        let text = version_text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("v0.3.13"));
        let build = lines.next().unwrap();
        let prefix = format!("litestream-rs {BUILD_VERSION} (commit ");
        assert!(build.starts_with(&prefix), "{build}");
        assert!(build.ends_with(')'), "{build}");
        assert_eq!(lines.next(), None);
        assert!(text.ends_with(")\n"));
    }
}
