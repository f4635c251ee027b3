//! `nitrofs kv …`: the native KV protocol from the command line, a thin
//! shell over `nitrofs-kv-client`. Exit status: 0 done, 1 error, 2 key not
//! found, 3 `--if-absent` found the key.

use crate::kv_bench::{self, BenchArgs};
use clap::{Args, Subcommand};
use nitrofs_kv_client::{ClientConfig, KvClient};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Where `nitrofs kv` connects when neither `--addr` nor `NITROFS_KV_ADDR` is set.
pub const DEFAULT_KV_CLIENT_ADDR: &str = "127.0.0.1:9100";

/// Arguments of `nitrofs kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// KV endpoint of any data node.
    #[arg(long, env = "NITROFS_KV_ADDR", value_name = "HOST:PORT", default_value = DEFAULT_KV_CLIENT_ADDR)]
    pub addr: String,
    /// Access key (the same identities as S3).
    #[arg(long, env = "NITROFS_ACCESS_KEY", hide_env_values = true)]
    pub access_key: Option<String>,
    /// Secret key (only used to answer the server's challenge).
    #[arg(long, env = "NITROFS_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: KvCommand,
}

/// `nitrofs kv` commands.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Store a value read from FILE (`-`: standard input).
    Put {
        /// Space name.
        space: String,
        /// Key.
        key: String,
        /// File holding the value, or `-` for standard input.
        file: String,
        /// Store only if the key has no value (exit status 3 otherwise).
        #[arg(long)]
        if_absent: bool,
    },
    /// Write a value to FILE (default `-`: standard output).
    Get {
        /// Space name.
        space: String,
        /// Key.
        key: String,
        /// Destination file, or `-` for standard output.
        file: Option<String>,
    },
    /// Delete a key.
    Del {
        /// Space name.
        space: String,
        /// Key.
        key: String,
    },
    /// Print `true` (exit 0) or `false` (exit 2).
    Exists {
        /// Space name.
        space: String,
        /// Key.
        key: String,
    },
    /// List keys (and value sizes) in byte order, optionally by prefix.
    Ls {
        /// Space name.
        space: String,
        /// Only keys starting with this.
        prefix: Option<String>,
    },
    /// Show a space's settings and counters.
    Stat {
        /// Space name.
        space: String,
    },
    /// Measure put/get/batch throughput and latency against a space.
    Bench(BenchArgs),
}

const NOT_FOUND: u8 = 2;
const EXISTS: u8 = 3;

/// Runs `nitrofs kv …`.
pub fn run(args: KvArgs) -> Result<ExitCode, crate::Error> {
    let (Some(access), Some(secret)) = (args.access_key.clone(), args.secret_key.clone()) else {
        return Err(
            "credentials missing: set NITROFS_ACCESS_KEY and NITROFS_SECRET_KEY \
                    (or pass --access-key and --secret-key); `nitrofs serve` prints the root \
                    keys on its first start"
                .into(),
        );
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut cfg = ClientConfig::new(&args.addr, &access, &secret);
        if let KvCommand::Bench(b) = &args.command {
            cfg.connections_per_node = b.connections.max(1);
        }
        let client = KvClient::connect(cfg)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
        command(&client, args.command).await
    })
}

async fn command(client: &KvClient, cmd: KvCommand) -> Result<ExitCode, crate::Error> {
    match cmd {
        KvCommand::Put {
            space,
            key,
            file,
            if_absent,
        } => {
            let value = read_input(&file)?;
            if if_absent {
                if !client.put_if_absent(&space, key.as_bytes(), &value).await? {
                    eprintln!("key {key:?} exists in {space}; not stored");
                    return Ok(ExitCode::from(EXISTS));
                }
            } else {
                client.put(&space, key.as_bytes(), &value).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KvCommand::Get { space, key, file } => match client.get(&space, key.as_bytes()).await? {
            Some(v) => {
                write_output(file.as_deref().unwrap_or("-"), &v)?;
                Ok(ExitCode::SUCCESS)
            }
            None => not_found(&space, &key),
        },
        KvCommand::Del { space, key } => match client.delete(&space, key.as_bytes()).await? {
            true => Ok(ExitCode::SUCCESS),
            false => not_found(&space, &key),
        },
        KvCommand::Exists { space, key } => {
            let yes = client.exists(&space, key.as_bytes()).await?;
            crate::print_lines(&[yes.to_string()])?;
            Ok(if yes {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(NOT_FOUND)
            })
        }
        KvCommand::Ls { space, prefix } => {
            let prefix = prefix.unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = client
                    .scan(&space, prefix.as_bytes(), after.as_deref(), 1000)
                    .await?;
                for (k, size) in &page.entries {
                    out.write_all(k)?;
                    writeln!(out, "\t{size}")?;
                }
                match page.entries.last() {
                    Some((k, _)) if page.more => after = Some(k.clone()),
                    _ => break,
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        KvCommand::Stat { space } => {
            let s = client.stat(&space).await?;
            let ttl = if s.ttl_secs == 0 {
                "none".to_string()
            } else {
                format!("{}s", s.ttl_secs)
            };
            crate::print_lines(&[
                format!("space: {space}"),
                format!("durability: {}", if s.durable { "disk" } else { "memory" }),
                format!("ttl: {ttl}"),
                format!("capacity: {}", s.capacity),
                format!("bytes: {}", s.bytes),
                format!("keys: {}", s.keys),
                format!("hits: {}", s.hits),
                format!("misses: {}", s.misses),
                format!("puts: {}", s.puts),
                format!("deletes: {}", s.deletes),
                format!("evictions: {}", s.evictions),
                format!("expirations: {}", s.expirations),
            ])?;
            Ok(ExitCode::SUCCESS)
        }
        KvCommand::Bench(b) => {
            kv_bench::run(client, &b).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn not_found(space: &str, key: &str) -> Result<ExitCode, crate::Error> {
    eprintln!("key {key:?} not found in {space}");
    Ok(ExitCode::from(NOT_FOUND))
}

fn read_input(file: &str) -> Result<Vec<u8>, crate::Error> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin().lock().read_to_end(&mut buf)?;
    } else {
        buf = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    }
    Ok(buf)
}

fn write_output(file: &str, value: &[u8]) -> Result<(), crate::Error> {
    if file == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(value)?;
        out.flush()?;
    } else {
        std::fs::write(file, value).map_err(|e| format!("cannot write {file}: {e}"))?;
    }
    Ok(())
}
