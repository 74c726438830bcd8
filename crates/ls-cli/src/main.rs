//! The `litestream` binary: a drop-in for Litestream 0.3.13's command line.
//!
//! This crate is the only one that knows argv, `litestream.yml`, environment variables, exit
//! codes, stdout and the log format. `main` alone prints the final error and picks the exit
//! code: 0 on success, 1 on any error or after a usage text (as Litestream), and 0 when stdout
//! was closed under us (a broken pipe is not a failure of the command).

mod args;
mod client;
mod cmd;
mod config;
mod duration;
mod env_expand;
mod log;
mod process_metrics;
mod progress;
mod quote;
mod table;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;

use crate::args::FlagError;
use crate::cmd::Status;

fn main() -> ExitCode {
    tune_allocator();
    log::init();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Two workers: the machines this runs on are small, and the engine's heavy work (copies,
    // compression, SQLite) runs on blocking threads anyway.
    // Idle ticks land on the timer's slot starts: one wake-up each instead of two.
    ls_replica::set_timer_epoch(std::time::Instant::now());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Longer than the engine's idle full pass (every 60 s), so an idle replicate reuses its
        // blocking thread instead of starting a new one each time.
        .thread_keep_alive(std::time::Duration::from_secs(90))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(cmd::run(&args)),
        Err(err) => Err(anyhow::Error::new(err).context("cannot start the async runtime")),
    };
    match result {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Usage) => ExitCode::FAILURE,
        Err(err) => report(&err),
    }
}

/// Prints the final error as Litestream's `main` does and returns the exit code.
fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    if let Some(flag_error) = err.downcast_ref::<FlagError>() {
        // Go's flag package prints the error on stderr and the usage on stdout before
        // Litestream logs the error. Nothing useful can be done if either write fails.
        let _ = writeln!(io::stderr().lock(), "{flag_error}");
        let _ = cmd::write_stdout(cmd::command_usage(flag_error.command).as_bytes());
    }
    tracing::error!(error = %crate::log::error_chain(err.as_ref()), "failed to run");
    ExitCode::FAILURE
}

/// Whether the error comes from writing to a closed stdout.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Keeps glibc's allocator from handing memory back to the kernel after every sync pass: each
/// upload allocates and frees a few MiB of buffers (LZ4 blocks, reads), and returning them
/// each time costs a page fault per 4 KiB when they are touched again, most of replicate's CPU
/// under a steady load. Two arenas bound what the blocking threads can keep; allocations stay
/// out of `mmap` below 32 MiB. Peak memory is unchanged: only what was in use is kept.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    const MIB: std::ffi::c_int = 1 << 20;
    for (param, value) in [
        (nix::libc::M_ARENA_MAX, 2),
        (nix::libc::M_TRIM_THRESHOLD, 64 * MIB),
        (nix::libc::M_MMAP_THRESHOLD, 32 * MIB),
    ] {
        // SAFETY: `mallopt` only sets allocator parameters; it is called before any other
        // thread exists, and a rejected value (return 0) leaves glibc's default in place.
        let _ = unsafe { nix::libc::mallopt(param, value) };
    }
}

/// Other allocators keep their defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
