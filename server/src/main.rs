//! `nitrofs`: the NitroFS server binary.
//!
//! It owns the command line, the configuration file and the wiring of
//! roles to concrete backends; it must not implement filesystem or
//! protocol logic (that lives in core-fs and protocols/*).
//! `nitrofs serve` runs every role in one process; `nitrofs admin` talks
//! to a running server's admin API.

mod admin;
mod cli;
mod config;
mod kv;
mod kv_bench;
mod kv_cli;
mod memory;
mod metrics;
mod s3;
mod serve;

use clap::Parser;
use std::io::{IsTerminal, Write};

/// mimalloc instead of glibc malloc. Data paths allocate and free buffers
/// of about a MiB per request (NFS READ replies and WRITE records, S3 parts,
/// KV values); glibc serves those with mmap or trims them back to the OS
/// when freed, so every request paid page faults and the kernel's zeroing
/// of fresh pages (perf during an NFS checkpoint read-back: ~8% of the
/// server's CPU in clear_page, page faults and munmap). mimalloc keeps
/// freed memory for the next request.
///
/// Built with its `no_thp` feature: mimalloc otherwise asks for
/// transparent huge pages (`MADV_HUGEPAGE`) on the memory it maps, so the
/// first touch of each new 2 MiB runs a huge-page fault, zeroing all of it
/// on the executor thread that touched it. The inline bytes cache grows by
/// a file's bytes at every small WRITE, so NFS small-file creates took
/// such a fault about every 90 files (`thp_fault_alloc` in /proc/vmstat):
/// 9% of the server's samples were `clear_page_erms` under
/// `do_huge_pmd_anonymous_page`, and a 16 KiB WRITE took 151-163 µs of
/// server time against 111-123 µs without; KV batch puts of 2 MiB values
/// ran at 283-299 keys/s against 985-1,248. The system's own huge page
/// policy still applies.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Any error that ends a command: printed as `error: …`, exit status 1.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Writes lines to stdout and flushes, so a parent reading a pipe sees
/// them at once. A closed stdout is an error value, never a panic.
fn print_lines(lines: &[String]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: `default_level`).
fn init_tracing(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result: Result<(), Error> = match cli.command {
        cli::Command::Serve(args) => {
            init_tracing("info");
            serve::run(&args).map_err(Error::from)
        }
        cli::Command::Admin(args) => {
            init_tracing("warn");
            admin::run_client(args)
        }
        cli::Command::Kv(args) => {
            init_tracing("warn");
            match kv_cli::run(args) {
                Ok(code) => return code,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}
