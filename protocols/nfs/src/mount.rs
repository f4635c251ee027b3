//! MOUNT v3 (RFC 1813 appendix I): turns an export path into a root file
//! handle, and lists exports.
//!
//! Exports are volumes: `/<volume>` or a directory inside one,
//! `/<volume>/sub/dir`. The path is walked with the caller's squashed
//! credentials, so a client cannot mount what it could not look up.

use crate::error::{mountstat, nfsstat};
use crate::handle::FileHandle;
use crate::rpc::{Auth, Fault, Payload, ProcResult, AUTH_SYS};
use crate::server::Call;
use crate::xdr::{pack_into, XdrReader};
use nfs3_types::mount::{
    dirpath, export_node, fhandle3, mountres3, mountres3_ok, mountstat3, name, MNTPATHLEN,
};
use nfs3_types::rpc::auth_stat;
use nfs3_types::xdr_codec::{List, Opaque};
use nitrofs_core_fs::FileType;

/// MOUNT program number.
pub const PROGRAM: u32 = nfs3_types::mount::PROGRAM;
/// The one version served.
pub const VERSION: u32 = nfs3_types::mount::VERSION;

/// Procedure names for logs.
pub const PROC_NAMES: [&str; 6] = [
    "MNT_NULL",
    "MNT",
    "MNT_DUMP",
    "UMNT",
    "UMNTALL",
    "MNT_EXPORT",
];

/// Runs one MOUNT procedure.
pub(crate) fn dispatch(
    call: &Call<'_>,
    proc_num: u32,
    args: &mut XdrReader<'_>,
    out: &mut Vec<u8>,
) -> ProcResult {
    match proc_num {
        0 => Ok(Payload::default()),
        1 => {
            if matches!(call.auth, Auth::Unsupported(_)) {
                return Err(Fault::Auth(auth_stat::AUTH_TOOWEAK));
            }
            let path = args.opaque(usize::MAX)?;
            let handle = mnt(call, path);
            let res = match &handle {
                Ok(h) => mountres3::Ok(mountres3_ok {
                    fhandle: fhandle3(Opaque::borrowed(h)),
                    auth_flavors: vec![AUTH_SYS],
                }),
                Err(stat) => mountres3::Err(*stat),
            };
            pack_into(out, &res)?;
            Ok(Payload::default())
        }
        // DUMP: mounts are not tracked (NFS is stateless); an empty list.
        2 => {
            pack_into(out, &false)?;
            Ok(Payload::default())
        }
        3 => {
            let path = args.opaque(usize::MAX)?;
            tracing::debug!(path = %String::from_utf8_lossy(path), "unmount");
            Ok(Payload::default())
        }
        4 => Ok(Payload::default()),
        5 => {
            export(call, out)?;
            Ok(Payload::default())
        }
        _ => Err(Fault::ProcUnavail),
    }
}

/// MNT: the root handle of the export at `path`.
fn mnt(call: &Call<'_>, path: &[u8]) -> Result<[u8; crate::handle::HANDLE_LEN], mountstat3> {
    if path.len() > MNTPATHLEN {
        return Err(mountstat3::MNT3ERR_NAMETOOLONG);
    }
    let path = std::str::from_utf8(path).map_err(|_| mountstat3::MNT3ERR_NOENT)?;
    let trimmed = path.trim_start_matches('/');
    let (volume_name, sub) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    if volume_name.is_empty() {
        return Err(mountstat3::MNT3ERR_NOENT);
    }
    let fs = &call.server.fs;
    let volume = fs.volume(volume_name).map_err(|e| mountstat(nfsstat(&e)))?;
    let opts = call.server.policy.options_for(&volume.name);
    if !opts.allows(call.peer) {
        tracing::info!(path, client = %call.peer, "mount refused: client not allowed");
        return Err(mountstat3::MNT3ERR_ACCES);
    }
    let cred = opts.credentials(call.auth);
    let attr = fs
        .lookup_path(&cred, volume.root, sub)
        .map_err(|e| mountstat(nfsstat(&e)))?;
    if attr.kind != FileType::Directory {
        return Err(mountstat3::MNT3ERR_NOTDIR);
    }
    tracing::info!(path, client = %call.peer, "mounted");
    Ok(FileHandle::of(&attr).encode())
}

/// EXPORT: every volume as `/<name>` with its allowed clients.
fn export(call: &Call<'_>, out: &mut Vec<u8>) -> Result<(), Fault> {
    let volumes = match call.server.fs.list_volumes() {
        Ok(v) => v,
        Err(e) => {
            nfsstat(&e);
            return Err(Fault::System);
        }
    };
    let nodes: Vec<export_node<'static, 'static>> = volumes
        .iter()
        .map(|v| export_node {
            ex_dir: dirpath(Opaque::owned(format!("/{}", v.name).into_bytes())),
            ex_groups: List(
                call.server
                    .policy
                    .options_for(&v.name)
                    .group_names()
                    .into_iter()
                    .map(|g| name(Opaque::owned(g.into_bytes())))
                    .collect(),
            ),
        })
        .collect();
    pack_into(out, &List(nodes))?;
    Ok(())
}
