//! The command line: `nitrofs serve …` and `nitrofs admin …`.
//!
//! Only argument shapes live here; `serve.rs` and `admin.rs` do the work.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Where `nitrofs admin` looks for the server when `--admin-addr` is not given.
pub const DEFAULT_ADMIN_CLIENT_ADDR: &str = "127.0.0.1:7070";

/// NitroFS: one storage system for AI clusters, served over NFSv3.
#[derive(Debug, Parser)]
#[command(
    name = "nitrofs",
    version,
    about = "NitroFS: one storage system for AI clusters, served over NFSv3",
    propagate_version = true
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role (metadata, data, NFS gateway, admin API) in one
    /// process on one data directory.
    Serve(ServeArgs),
    /// Manage a running server through its admin API.
    Admin(AdminArgs),
}

/// Arguments of `nitrofs serve`. Each flag overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see deploy/nitrofs.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (metadata in `meta/`, chunks in `chunks/`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the NFSv3 + MOUNT + PORTMAP endpoint (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub nfs_addr: Option<String>,
    /// Address of the admin HTTP API (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_addr: Option<String>,
}

/// Arguments of `nitrofs admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API address of the server to talk to.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADMIN_CLIENT_ADDR)]
    pub admin_addr: String,
    /// What to manage.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Objects `nitrofs admin` manages.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Volumes: NFS exports `/<name>` (and, later, S3 buckets).
    #[command(subcommand)]
    Volume(VolumeCommand),
}

/// `nitrofs admin volume …`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create an empty volume.
    Create {
        /// Volume name (S3 bucket rules: 3-63 of a-z, 0-9, '-', '.').
        name: String,
    },
    /// List volumes, one name per line.
    List,
    /// Delete an empty volume.
    Delete {
        /// Volume name.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_are_optional_overrides() {
        let cli = Cli::try_parse_from(["nitrofs", "serve", "--nfs-addr", "127.0.0.1:0"])
            .expect("serve parses");
        let Command::Serve(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.nfs_addr.as_deref(), Some("127.0.0.1:0"));
        assert!(args.config.is_none() && args.data_dir.is_none() && args.admin_addr.is_none());
    }

    #[test]
    fn admin_volume_commands_parse() {
        let cli = Cli::try_parse_from(["nitrofs", "admin", "volume", "create", "scratch"])
            .expect("admin parses");
        let Command::Admin(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.admin_addr, DEFAULT_ADMIN_CLIENT_ADDR);
        assert!(matches!(
            args.command,
            AdminCommand::Volume(VolumeCommand::Create { ref name }) if name == "scratch"
        ));
        assert!(Cli::try_parse_from(["nitrofs", "admin", "volume", "delete"]).is_err());
    }
}
