//! NFSv3 (RFC 1813): the 22 procedures, one file per family, over the core.
//!
//! Every procedure except NULL goes through [`Call::target`]: decode the
//! handle, apply the export's client list, read-only flag and id squashing,
//! then resolve the handle in the core. Errors are mapped only by
//! [`crate::error::nfsstat`]; failure replies carry whatever attributes are
//! cheap to read after the fact (post-op only, never a guessed pre-op).

mod attr;
mod dir;
mod fs;
mod io;
mod readdir;

use crate::export::ExportOptions;
use crate::handle::FileHandle;
use crate::rpc::{Auth, Fault, Payload, ProcResult};
use crate::server::Call;
use crate::xdr::{pack_into, XdrReader, XdrResult};
use nfs3_types::nfs3::{
    fattr3, ftype3, nfsstat3, nfstime3, post_op_attr, post_op_fh3, pre_op_attr, sattr3, set_atime,
    set_mtime, specdata3, wcc_attr, wcc_data, Nfs3Option, NFS3_FHSIZE,
};
use nfs3_types::rpc::auth_stat;
use nfs3_types::xdr_codec::{Pack, Unpack};
use nitrofs_core_fs::{
    Attr, Credentials, FileType, InodeId, SetAttr, SetTime, Timestamp, Wcc, MODE_MASK,
};

/// NFS program number.
pub const PROGRAM: u32 = nfs3_types::nfs3::PROGRAM;
/// The one version served.
pub const VERSION: u32 = nfs3_types::nfs3::VERSION;

/// Largest READ and WRITE payload (FSINFO rtmax/wtmax).
pub const MAX_IO: u32 = 1024 * 1024;

/// Procedure names for logs, by procedure number.
pub const PROC_NAMES: [&str; 22] = [
    "NULL",
    "GETATTR",
    "SETATTR",
    "LOOKUP",
    "ACCESS",
    "READLINK",
    "READ",
    "WRITE",
    "CREATE",
    "MKDIR",
    "SYMLINK",
    "MKNOD",
    "REMOVE",
    "RMDIR",
    "RENAME",
    "LINK",
    "READDIR",
    "READDIRPLUS",
    "FSSTAT",
    "FSINFO",
    "PATHCONF",
    "COMMIT",
];

/// Runs one NFSv3 procedure, appending its results to `out`.
pub(crate) fn dispatch(
    call: &Call<'_>,
    proc_num: u32,
    args: &mut XdrReader<'_>,
    out: &mut Vec<u8>,
) -> ProcResult {
    if proc_num == 0 {
        return Ok(Payload::default());
    }
    if matches!(call.auth, Auth::Unsupported(_)) {
        return Err(Fault::Auth(auth_stat::AUTH_TOOWEAK));
    }
    match proc_num {
        1 => attr::getattr(call, args, out),
        2 => attr::setattr(call, args, out),
        3 => dir::lookup(call, args, out),
        4 => attr::access(call, args, out),
        5 => io::readlink(call, args, out),
        6 => io::read(call, args, out),
        7 => io::write(call, args, out),
        8 => dir::create(call, args, out),
        9 => dir::mkdir(call, args, out),
        10 => dir::symlink(call, args, out),
        11 => dir::mknod(call, args, out),
        12 => dir::remove(call, args, out),
        13 => dir::rmdir(call, args, out),
        14 => dir::rename(call, args, out),
        15 => dir::link(call, args, out),
        16 => readdir::readdir(call, args, out),
        17 => readdir::readdirplus(call, args, out),
        18 => fs::fsstat(call, args, out),
        19 => fs::fsinfo(call, args, out),
        20 => fs::pathconf(call, args, out),
        21 => io::commit(call, args, out),
        _ => Err(Fault::ProcUnavail),
    }
}

pub(crate) use dir::{not_durable, SYNC_AFTER_PROCS};

/// Whether a procedure changes the filesystem (refused on read-only
/// exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Reads only.
    Read,
    /// Modifies: NFS3ERR_ROFS on a read-only export.
    Modify,
}

/// A resolved, authorized handle.
pub(crate) struct Target<'a> {
    /// The object's attributes when the call started.
    pub attr: Attr,
    /// The caller, after squashing.
    pub cred: Credentials,
    /// The export's options.
    pub opts: &'a ExportOptions,
}

impl<'a> Call<'a> {
    /// Decodes, authorizes and resolves a handle.
    pub(crate) fn target(&self, fh: &[u8], intent: Intent) -> Result<Target<'a>, nfsstat3> {
        let handle = FileHandle::decode(fh)?;
        let opts = self.server.options_for_volume(handle.volume)?;
        if !opts.allows(self.peer) {
            tracing::debug!(client = %self.peer, volume = handle.volume, "client not allowed");
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if intent == Intent::Modify && opts.read_only {
            return Err(nfsstat3::NFS3ERR_ROFS);
        }
        let attr = handle.resolve(&self.server.fs)?;
        Ok(Target {
            attr,
            cred: opts.credentials(self.auth),
            opts,
        })
    }

    /// A second handle of a two-handle call (RENAME, LINK): it must be on
    /// the same volume as `first`.
    pub(crate) fn second_target(&self, first: &Target<'_>, fh: &[u8]) -> Result<Attr, nfsstat3> {
        let handle = FileHandle::decode(fh)?;
        if handle.volume != first.attr.volume {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        handle.resolve(&self.server.fs)
    }

    /// Current attributes of `ino`, if readable (for failure replies).
    pub(crate) fn post_op(&self, ino: InodeId) -> post_op_attr {
        match self.server.fs.getattr(ino) {
            Ok(a) => Nfs3Option::Some(fattr(&a)),
            Err(_) => Nfs3Option::None,
        }
    }

    /// Failure WCC of `ino`: no pre-op attributes, current post-op ones.
    pub(crate) fn wcc_after(&self, ino: InodeId) -> wcc_data {
        wcc_data {
            before: Nfs3Option::None,
            after: self.post_op(ino),
        }
    }
}

/// Appends a result and returns an empty payload.
pub(crate) fn reply<T: Pack>(out: &mut Vec<u8>, res: &T) -> ProcResult {
    pack_into(out, res)?;
    Ok(Payload::default())
}

/// Decodes a file handle (`nfs_fh3`, at most 64 bytes).
pub(crate) fn fh<'a>(r: &mut XdrReader<'a>) -> XdrResult<&'a [u8]> {
    r.opaque(NFS3_FHSIZE)
}

/// Decodes `diropargs3`: a directory handle and a name. Names are not
/// limited here; the core answers NAMETOOLONG.
pub(crate) fn dirop<'a>(r: &mut XdrReader<'a>) -> XdrResult<(&'a [u8], &'a [u8])> {
    Ok((fh(r)?, r.opaque(usize::MAX)?))
}

/// An NFS time from a core timestamp (clamped to the u32 range).
pub(crate) fn nfstime(t: Timestamp) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.secs.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nanos,
    }
}

/// A core timestamp from an NFS time.
pub(crate) fn timestamp(t: nfstime3) -> Timestamp {
    Timestamp::new(i64::from(t.seconds), t.nseconds)
}

/// NFS file type of a core type.
pub(crate) fn ftype(kind: FileType) -> ftype3 {
    match kind {
        FileType::Regular => ftype3::NF3REG,
        FileType::Directory => ftype3::NF3DIR,
        FileType::Symlink => ftype3::NF3LNK,
        FileType::BlockDevice => ftype3::NF3BLK,
        FileType::CharDevice => ftype3::NF3CHR,
        FileType::Fifo => ftype3::NF3FIFO,
        FileType::Socket => ftype3::NF3SOCK,
    }
}

/// `fattr3` of core attributes: fsid is the volume, fileid the inode.
pub(crate) fn fattr(a: &Attr) -> fattr3 {
    fattr3 {
        type_: ftype(a.kind),
        mode: a.mode & MODE_MASK,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.used,
        rdev: specdata3 {
            specdata1: a.rdev.0,
            specdata2: a.rdev.1,
        },
        fsid: u64::from(a.volume),
        fileid: a.ino,
        atime: nfstime(a.atime),
        mtime: nfstime(a.mtime),
        ctime: nfstime(a.ctime),
    }
}

/// `post_op_attr` present.
pub(crate) fn post(a: &Attr) -> post_op_attr {
    Nfs3Option::Some(fattr(a))
}

/// `post_op_fh3` present.
pub(crate) fn post_fh(a: &Attr) -> post_op_fh3 {
    Nfs3Option::Some(FileHandle::of(a).to_nfs())
}

/// WCC data of a successful change.
pub(crate) fn wcc(w: &Wcc) -> wcc_data {
    wcc_data {
        before: pre_op_attr::Some(wcc_attr {
            size: w.before.size,
            mtime: nfstime(w.before.mtime),
            ctime: nfstime(w.before.ctime),
        }),
        after: post(&w.after),
    }
}

fn option<T: Pack + Unpack + Copy>(o: &Nfs3Option<T>) -> Option<T> {
    match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    }
}

/// Core attribute changes of an NFS `sattr3`.
pub(crate) fn set_attr(s: &sattr3) -> SetAttr {
    SetAttr {
        mode: option(&s.mode).map(|m| m & MODE_MASK),
        uid: option(&s.uid),
        gid: option(&s.gid),
        size: option(&s.size),
        atime: match s.atime {
            set_atime::DONT_CHANGE => SetTime::Keep,
            set_atime::SET_TO_SERVER_TIME => SetTime::ServerNow,
            set_atime::SET_TO_CLIENT_TIME(t) => SetTime::Exact(timestamp(t)),
        },
        mtime: match s.mtime {
            set_mtime::DONT_CHANGE => SetTime::Keep,
            set_mtime::SET_TO_SERVER_TIME => SetTime::ServerNow,
            set_mtime::SET_TO_CLIENT_TIME(t) => SetTime::Exact(timestamp(t)),
        },
    }
}

#[cfg(test)]
mod tests;
