//! The command line: `nitrofs serve …` and `nitrofs admin …`.
//!
//! Only argument shapes live here; `serve.rs` and `admin.rs` do the work.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Where `nitrofs admin` looks for the server when `--admin-addr` is not given.
pub const DEFAULT_ADMIN_CLIENT_ADDR: &str = "127.0.0.1:7070";

/// NitroFS: one storage system for AI clusters, served over NFSv3 and S3.
#[derive(Debug, Parser)]
#[command(
    name = "nitrofs",
    version,
    about = "NitroFS: one storage system for AI clusters, served over NFSv3 and S3",
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
    /// Run every role (metadata, data, NFS and S3 gateways, admin API) in one
    /// process on one data directory.
    Serve(ServeArgs),
    /// Manage a running server through its admin API.
    Admin(AdminArgs),
    /// Use KV spaces over the native KV protocol (put, get, ls, bench…).
    Kv(crate::kv_cli::KvArgs),
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
    /// Address of the S3 endpoint (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub s3_addr: Option<String>,
    /// Base domain for virtual-hosted-style S3 requests (`<bucket>.<DOMAIN>`).
    #[arg(long, value_name = "DOMAIN")]
    pub s3_domain: Option<String>,
    /// S3 region (default us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Address of the native KV endpoint (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub kv_addr: Option<String>,
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
    /// Volumes: NFS exports `/<name>` and S3 buckets `<name>`.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// S3 identities: access key pairs acting as a uid, gid and groups.
    #[command(subcommand)]
    User(UserCommand),
    /// KV spaces: capacity-bounded key-value namespaces (KV-cache blocks).
    #[command(subcommand)]
    KvSpace(KvSpaceCommand),
    /// Snapshots of a volume: read-only views at `/<volume>/.snapshot/<name>/`.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Quotas: hard limits on bytes and inodes of a directory tree, or of
    /// a user's or group's files in a volume.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// POSIX ACLs of files and directories (getfacl / setfacl).
    #[command(subcommand)]
    Acl(AclCommand),
}

/// `nitrofs admin acl …`. PATH is `/<volume>/<path>`; SPEC is setfacl
/// syntax with numeric ids, e.g. `u:1001:rwx,g:2000:r-x,m::rwx,d:u:1001:rwx`
/// (`d:` entries are the default ACL of a directory). Each command prints
/// the ACLs afterwards as getfacl does.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Show the ACLs (getfacl).
    Get {
        /// `/<volume>/<path>`.
        path: String,
    },
    /// Replace the access ACL, the default ACL, or both, with SPEC
    /// (`setfacl --set`, per kind named in SPEC); missing user::, group::,
    /// other:: entries keep their current value, a missing mask is computed.
    Set {
        /// `/<volume>/<path>`.
        path: String,
        /// Entries in setfacl syntax.
        spec: String,
    },
    /// Add or change entries (`setfacl -m`); the mask is recomputed unless given.
    Modify {
        /// `/<volume>/<path>`.
        path: String,
        /// Entries in setfacl syntax.
        spec: String,
    },
    /// Remove every extended entry and the default ACL (`setfacl -b`).
    Remove {
        /// `/<volume>/<path>`.
        path: String,
        /// Remove only the default ACL (`setfacl -k`).
        #[arg(long)]
        default: bool,
    },
}

/// `nitrofs admin quota …`. TARGET is `VOLUME/PATH` for a directory-tree
/// quota (a leading `/` is allowed; `VOLUME` alone is the volume root), or
/// `VOLUME` with `--uid` or `--gid` for a user or group quota.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set a quota's hard limits (an omitted limit is unlimited); a new
    /// quota first counts what is already there.
    Set {
        /// `VOLUME/PATH`, or `VOLUME` with --uid/--gid.
        target: String,
        /// A user quota for this uid.
        #[arg(long, conflicts_with = "gid")]
        uid: Option<u32>,
        /// A group quota for this gid.
        #[arg(long)]
        gid: Option<u32>,
        /// Most bytes (e.g. 1073741824, 64MiB, 1G, 10GB).
        #[arg(long, value_parser = parse_limit)]
        bytes: Option<u64>,
        /// Most inodes (files, directories, symlinks).
        #[arg(long)]
        inodes: Option<u64>,
    },
    /// Show one quota: usage against limits.
    Get {
        /// `VOLUME/PATH`, or `VOLUME` with --uid/--gid.
        target: String,
        /// The quota of this uid.
        #[arg(long, conflicts_with = "gid")]
        uid: Option<u32>,
        /// The quota of this gid.
        #[arg(long)]
        gid: Option<u32>,
    },
    /// List the quotas of a volume (of every volume, and the KV spaces'
    /// capacities, without one).
    List {
        /// Volume name.
        volume: Option<String>,
    },
    /// Remove a quota.
    Remove {
        /// `VOLUME/PATH`, or `VOLUME` with --uid/--gid.
        target: String,
        /// The quota of this uid.
        #[arg(long, conflicts_with = "gid")]
        uid: Option<u32>,
        /// The quota of this gid.
        #[arg(long)]
        gid: Option<u32>,
    },
}

fn parse_limit(s: &str) -> Result<u64, String> {
    crate::admin::kv_spaces::parse_bytes(s)
}

/// `nitrofs admin snapshot …`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot (instant, whatever the volume holds).
    Create {
        /// Volume name.
        volume: String,
        /// Snapshot name (a directory name under `.snapshot`).
        name: String,
    },
    /// List a volume's snapshots, oldest first.
    List {
        /// Volume name.
        volume: String,
    },
    /// Delete a snapshot; its space is freed in the background.
    Delete {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
    /// Roll the volume back to its newest snapshot (changes since are lost).
    Restore {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
    /// Make a new writable volume holding what the snapshot shows.
    Clone {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
        /// Name of the new volume.
        new_volume: String,
    },
}

/// `nitrofs admin kv-space …`.
#[derive(Debug, Subcommand)]
pub enum KvSpaceCommand {
    /// Create a KV space.
    Create {
        /// Space name: 1-64 of A-Z a-z 0-9 . _ -
        name: String,
        /// Bytes of keys plus values it may hold (e.g. 1073741824, 64MiB, 1G);
        /// beyond that the least useful values are evicted.
        #[arg(long, value_parser = parse_capacity)]
        capacity: u64,
        /// Seconds a value lives after its put (default: until evicted).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// `memory` (lost on restart) or `disk` (fsynced, survives restart).
        #[arg(long, default_value = "memory", value_parser = ["memory", "disk"])]
        durability: String,
        /// Owning identity (a `nitrofs admin user` name; default root).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Permission bits in octal: r = get/exists/ls/stat, w = put/delete
        /// (default 0600).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
    },
    /// List KV spaces, one per line.
    List,
    /// Delete a KV space and every value in it.
    Delete {
        /// Space name.
        name: String,
    },
    /// The space's POSIX ACL (getfacl / setfacl), checked as files' are.
    ///
    /// SPEC is setfacl syntax with numeric ids, e.g.
    /// `u:1001:rw-,g:2000:r--,m::rw-`; r = get/exists/ls/stat, w = put/delete.
    #[command(subcommand)]
    Acl(KvSpaceAclCommand),
}

/// `nitrofs admin kv-space acl …`. SPEC is setfacl syntax with numeric
/// ids, access entries only, r and w only (r = get/exists/ls/stat, w =
/// put/delete), e.g. `u:1001:rw-,g:2000:r--,m::rw-`. Each command prints
/// the ACL afterwards as getfacl does.
#[derive(Debug, Subcommand)]
pub enum KvSpaceAclCommand {
    /// Show the space's ACL (getfacl).
    Get {
        /// Space name.
        name: String,
    },
    /// Replace the access ACL (`setfacl --set`): missing user::, group::,
    /// other:: entries keep their value, a missing mask is the union of
    /// the group class; the mode's group bits become the mask.
    Set {
        /// Space name.
        name: String,
        /// Entries in setfacl syntax.
        spec: String,
    },
}

fn parse_capacity(s: &str) -> Result<u64, String> {
    match crate::admin::kv_spaces::parse_bytes(s)? {
        0 => Err("capacity must be more than 0 bytes".into()),
        n => Ok(n),
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal mode from 0 to 0777")),
    }
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

/// `nitrofs admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an S3 identity and print its access key and secret key.
    Add {
        /// Identity name.
        name: String,
        /// User id its S3 requests act as.
        #[arg(long)]
        uid: u32,
        /// Primary group id.
        #[arg(long)]
        gid: u32,
        /// Supplementary group ids, comma-separated (e.g. 100,200).
        #[arg(long, value_delimiter = ',', value_name = "GID,...")]
        groups: Vec<u32>,
    },
    /// List identities, one per line: name, uid, gid, groups, access key.
    List,
    /// Remove an identity; its key pair stops working at once.
    Remove {
        /// Identity name.
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
        assert!(args.s3_addr.is_none() && args.s3_domain.is_none() && args.s3_region.is_none());
    }

    #[test]
    fn serve_takes_s3_flags() {
        let cli = Cli::try_parse_from([
            "nitrofs",
            "serve",
            "--s3-addr",
            "127.0.0.1:0",
            "--s3-domain",
            "s3.local",
            "--s3-region",
            "eu-west-1",
        ])
        .expect("serve parses");
        let Command::Serve(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.s3_addr.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(args.s3_domain.as_deref(), Some("s3.local"));
        assert_eq!(args.s3_region.as_deref(), Some("eu-west-1"));
    }

    fn user_command(args: &[&str]) -> Result<UserCommand, clap::Error> {
        let cli = Cli::try_parse_from(["nitrofs", "admin", "user"].iter().chain(args))?;
        match cli.command {
            Command::Admin(AdminArgs {
                command: AdminCommand::User(cmd),
                ..
            }) => Ok(cmd),
            other => panic!("parsed as another command: {other:?}"),
        }
    }

    #[test]
    fn admin_user_add_takes_ids_and_a_group_list() {
        let cmd = user_command(&[
            "add", "alice", "--uid", "1000", "--gid", "100", "--groups", "5,6",
        ])
        .expect("user add parses");
        let UserCommand::Add {
            name,
            uid,
            gid,
            groups,
        } = cmd
        else {
            panic!("parsed as {cmd:?}");
        };
        assert_eq!((name.as_str(), uid, gid), ("alice", 1000, 100));
        assert_eq!(groups, [5, 6]);

        let cmd = user_command(&["add", "bob", "--uid", "1", "--gid", "2"]).expect("no groups");
        assert!(matches!(cmd, UserCommand::Add { ref groups, .. } if groups.is_empty()));
    }

    #[test]
    fn admin_user_add_rejects_missing_or_bad_ids() {
        for bad in [
            &["add", "alice", "--gid", "100"][..],
            &["add", "alice", "--uid", "1000"],
            &["add", "--uid", "1", "--gid", "1"],
            &["add", "alice", "--uid", "-1", "--gid", "1"],
            &["add", "alice", "--uid", "x", "--gid", "1"],
            &["add", "alice", "--uid", "4294967296", "--gid", "1"],
            &[
                "add", "alice", "--uid", "1", "--gid", "1", "--groups", "1,x",
            ],
            &["remove"],
        ] {
            assert!(user_command(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn admin_user_list_and_remove_parse() {
        assert!(matches!(user_command(&["list"]), Ok(UserCommand::List)));
        assert!(matches!(
            user_command(&["remove", "alice"]),
            Ok(UserCommand::Remove { ref name }) if name == "alice"
        ));
    }

    #[test]
    fn admin_quota_commands_parse_targets_ids_and_sizes() {
        let quota = |args: &[&str]| -> Result<QuotaCommand, clap::Error> {
            let cli = Cli::try_parse_from(["nitrofs", "admin", "quota"].iter().chain(args))?;
            match cli.command {
                Command::Admin(AdminArgs {
                    command: AdminCommand::Quota(cmd),
                    ..
                }) => Ok(cmd),
                other => panic!("parsed as another command: {other:?}"),
            }
        };
        let cmd = quota(&[
            "set",
            "default/proj",
            "--bytes",
            "10GiB",
            "--inodes",
            "1000",
        ])
        .expect("tree quota");
        assert!(matches!(
            cmd,
            QuotaCommand::Set { ref target, uid: None, gid: None, bytes: Some(b), inodes: Some(1000) }
                if target == "default/proj" && b == 10 << 30
        ));
        let cmd = quota(&["set", "default", "--uid", "1000", "--bytes", "1G"]).expect("user quota");
        assert!(
            matches!(cmd, QuotaCommand::Set { uid: Some(1000), bytes: Some(b), inodes: None, .. } if b == 1 << 30)
        );
        assert!(matches!(
            quota(&["get", "default", "--gid", "50"]),
            Ok(QuotaCommand::Get { gid: Some(50), .. })
        ));
        assert!(matches!(
            quota(&["list"]),
            Ok(QuotaCommand::List { volume: None })
        ));
        assert!(matches!(
            quota(&["remove", "default/proj"]),
            Ok(QuotaCommand::Remove { .. })
        ));
        assert!(quota(&["set", "default", "--uid", "1", "--gid", "2"]).is_err());
        assert!(quota(&["set", "default", "--bytes", "lots"]).is_err());
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
