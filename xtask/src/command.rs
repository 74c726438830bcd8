//! A thin builder over `std::process::Command` that echoes what it runs and turns a failed exit
//! into an error naming the command, so every task reports failures the same way.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A command to run, with the text shown to the developer.
pub(crate) struct Cmd {
    inner: Command,
    display: String,
}

impl Cmd {
    /// A command running `program` in `dir`.
    pub(crate) fn new(program: impl AsRef<OsStr>, dir: &Path) -> Self {
        let program = program.as_ref();
        let mut inner = Command::new(program);
        inner.current_dir(dir);
        Self {
            inner,
            display: program.to_string_lossy().into_owned(),
        }
    }

    /// `cargo` in `dir`: the cargo that runs xtask (`$CARGO`), so the pinned toolchain is used.
    pub(crate) fn cargo(dir: &Path) -> Self {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut cmd = Self::new(cargo, dir);
        cmd.display = String::from("cargo");
        cmd
    }

    /// Adds arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            let arg = arg.as_ref();
            self.display.push(' ');
            self.display.push_str(&arg.to_string_lossy());
            self.inner.arg(arg);
        }
        self
    }

    /// Sets environment variables, shown before the command.
    pub(crate) fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.inner.env(key, value);
        }
        self
    }

    /// Sets one environment variable and shows it before the command, as a shell would.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.display = format!("{key}={value} {}", self.display);
        self.inner.env(key, value);
        self
    }

    /// Runs the command with the terminal as its stdin, stdout and stderr.
    ///
    /// # Errors
    ///
    /// When the command cannot start or exits unsuccessfully.
    pub(crate) fn run(mut self) -> Result<()> {
        println!("$ {}", self.display);
        let status = self
            .inner
            .status()
            .with_context(|| format!("cannot run `{}`", self.display))?;
        if !status.success() {
            bail!("`{}` failed: {status}", self.display);
        }
        Ok(())
    }

    /// Runs the command quietly and returns its stdout.
    ///
    /// # Errors
    ///
    /// When the command cannot start or exits unsuccessfully; the error carries its stderr.
    pub(crate) fn read(mut self) -> Result<String> {
        let output = self
            .inner
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{}`", self.display))?;
        if !output.status.success() {
            bail!(
                "`{}` failed: {}: {}",
                self.display,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether the command runs and exits successfully; its output is discarded. For probes such
    /// as `cargo deny --version`.
    pub(crate) fn succeeds(mut self) -> bool {
        self.inner
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}
