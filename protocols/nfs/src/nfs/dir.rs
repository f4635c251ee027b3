//! Names in directories: LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD, LINK,
//! REMOVE, RMDIR and RENAME.
//!
//! Each changing call returns the core's WCC of the directory; on failure
//! the directory's current attributes are sent as post-op only.

use super::{dirop, fh, post, post_fh, reply, set_attr, wcc, Intent, Target};
use crate::error::nfsstat;
use crate::rpc::ProcResult;
use crate::server::Call;
use crate::xdr::XdrReader;
use nfs3_types::nfs3::{
    createhow3, ftype3, nfsstat3, sattr3, specdata3, wcc_data, COMMIT3res, COMMIT3resfail,
    CREATE3res, CREATE3resfail, CREATE3resok, LINK3res, LINK3resfail, LINK3resok, LOOKUP3res,
    LOOKUP3resfail, LOOKUP3resok, MKDIR3res, MKDIR3resfail, MKDIR3resok, MKNOD3res, MKNOD3resfail,
    MKNOD3resok, Nfs3Option, Nfs3Result, REMOVE3res, REMOVE3resfail, REMOVE3resok, RENAME3res,
    RENAME3resfail, RENAME3resok, RMDIR3res, RMDIR3resfail, RMDIR3resok, SETATTR3res,
    SETATTR3resfail, SYMLINK3res, SYMLINK3resfail, SYMLINK3resok, WRITE3res, WRITE3resfail,
};
use nitrofs_core_fs::{Attr, CreateHow, FsResult, InodeId, NodeKind, Wcc};

/// A failed directory change: its status and the directory, if resolved.
type DirFailure = (nfsstat3, Option<InodeId>);

/// Runs a change in directory `dir`, turning failures into a status and
/// the directory to report post-op attributes of.
fn in_dir<T>(
    call: &Call<'_>,
    dir: &[u8],
    op: impl FnOnce(&Target<'_>) -> FsResult<T>,
) -> Result<T, DirFailure> {
    let t = call
        .target(dir, Intent::Modify)
        .map_err(|stat| (stat, None))?;
    op(&t).map_err(|e| (nfsstat(&e), Some(t.attr.ino)))
}

/// The WCC of a failed change: post-op attributes of the directory only.
fn failed_wcc(call: &Call<'_>, dir: Option<InodeId>) -> wcc_data {
    dir.map(|ino| call.wcc_after(ino)).unwrap_or_default()
}

/// LOOKUP: a name's handle and attributes.
pub(super) fn lookup(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let res: LOOKUP3res = match call.target(dir, Intent::Read) {
        Err(stat) => Nfs3Result::Err((stat, LOOKUP3resfail::default())),
        Ok(t) => match call.server.fs.lookup(&t.cred, t.attr.ino, name) {
            Ok(a) => Nfs3Result::Ok(LOOKUP3resok {
                object: crate::handle::FileHandle::of(&a).to_nfs(),
                obj_attributes: post(&a),
                dir_attributes: post(&t.attr),
            }),
            Err(e) => Nfs3Result::Err((
                nfsstat(&e),
                LOOKUP3resfail {
                    dir_attributes: post(&t.attr),
                },
            )),
        },
    };
    reply(out, &res)
}

/// A created object and its directory's WCC.
struct Made {
    attr: Attr,
    dir_wcc: Wcc,
}

fn made(r: FsResult<(Attr, Wcc)>) -> FsResult<Made> {
    r.map(|(attr, dir_wcc)| Made { attr, dir_wcc })
}

/// CREATE: a regular file, UNCHECKED, GUARDED or EXCLUSIVE.
pub(super) fn create(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let how: createhow3 = args.fixed_type()?;
    let how = match &how {
        createhow3::UNCHECKED(s) => CreateHow::Unchecked(set_attr(s)),
        createhow3::GUARDED(s) => CreateHow::Guarded(set_attr(s)),
        createhow3::EXCLUSIVE(v) => CreateHow::Exclusive(v.0),
    };
    let fs = &call.server.fs;
    let res: CREATE3res = match in_dir(call, dir, |t| {
        made(fs.create(&t.cred, t.attr.ino, name, &how))
    }) {
        Ok(m) => Nfs3Result::Ok(CREATE3resok {
            obj: post_fh(&m.attr),
            obj_attributes: post(&m.attr),
            dir_wcc: wcc(&m.dir_wcc),
        }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            CREATE3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// MKDIR.
pub(super) fn mkdir(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let attrs: sattr3 = args.fixed_type()?;
    let fs = &call.server.fs;
    let set = set_attr(&attrs);
    let res: MKDIR3res = match in_dir(call, dir, |t| {
        made(fs.mkdir(&t.cred, t.attr.ino, name, &set))
    }) {
        Ok(m) => Nfs3Result::Ok(MKDIR3resok {
            obj: post_fh(&m.attr),
            obj_attributes: post(&m.attr),
            dir_wcc: wcc(&m.dir_wcc),
        }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            MKDIR3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// SYMLINK.
pub(super) fn symlink(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let attrs: sattr3 = args.fixed_type()?;
    let target = args.opaque(usize::MAX)?;
    let fs = &call.server.fs;
    let set = set_attr(&attrs);
    let res: SYMLINK3res = match in_dir(call, dir, |t| {
        made(fs.symlink(&t.cred, t.attr.ino, name, target, &set))
    }) {
        Ok(m) => Nfs3Result::Ok(SYMLINK3resok {
            obj: post_fh(&m.attr),
            obj_attributes: post(&m.attr),
            dir_wcc: wcc(&m.dir_wcc),
        }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            SYMLINK3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// MKNOD: devices, FIFOs and sockets; other types are NFS3ERR_BADTYPE.
pub(super) fn mknod(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let kind: ftype3 = args.fixed_type()?;
    let node = match kind {
        ftype3::NF3CHR | ftype3::NF3BLK => {
            let attrs: sattr3 = args.fixed_type()?;
            let spec: specdata3 = args.fixed_type()?;
            let (major, minor) = (spec.specdata1, spec.specdata2);
            let node = if kind == ftype3::NF3CHR {
                NodeKind::CharDevice(major, minor)
            } else {
                NodeKind::BlockDevice(major, minor)
            };
            Some((node, attrs))
        }
        ftype3::NF3SOCK => Some((NodeKind::Socket, args.fixed_type()?)),
        ftype3::NF3FIFO => Some((NodeKind::Fifo, args.fixed_type()?)),
        ftype3::NF3REG | ftype3::NF3DIR | ftype3::NF3LNK => None,
    };
    let fs = &call.server.fs;
    let result = match node {
        Some((node, attrs)) => {
            let set = set_attr(&attrs);
            in_dir(call, dir, |t| {
                made(fs.mknod(&t.cred, t.attr.ino, name, node, &set))
            })
        }
        None => match call.target(dir, Intent::Modify) {
            Ok(t) => Err((nfsstat3::NFS3ERR_BADTYPE, Some(t.attr.ino))),
            Err(stat) => Err((stat, None)),
        },
    };
    let res: MKNOD3res = match result {
        Ok(m) => Nfs3Result::Ok(MKNOD3resok {
            obj: post_fh(&m.attr),
            obj_attributes: post(&m.attr),
            dir_wcc: wcc(&m.dir_wcc),
        }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            MKNOD3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// REMOVE: a non-directory name.
pub(super) fn remove(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let fs = &call.server.fs;
    let res: REMOVE3res = match in_dir(call, dir, |t| fs.remove(&t.cred, t.attr.ino, name)) {
        Ok(w) => Nfs3Result::Ok(REMOVE3resok { dir_wcc: wcc(&w) }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            REMOVE3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// RMDIR: an empty directory.
pub(super) fn rmdir(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (dir, name) = dirop(args)?;
    let fs = &call.server.fs;
    let res: RMDIR3res = match in_dir(call, dir, |t| fs.rmdir(&t.cred, t.attr.ino, name)) {
        Ok(w) => Nfs3Result::Ok(RMDIR3resok { dir_wcc: wcc(&w) }),
        Err((stat, dir)) => Nfs3Result::Err((
            stat,
            RMDIR3resfail {
                dir_wcc: failed_wcc(call, dir),
            },
        )),
    };
    reply(out, &res)
}

/// RENAME: atomic, within one volume (else NFS3ERR_XDEV).
pub(super) fn rename(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let (from_dir, from) = dirop(args)?;
    let (to_dir, to) = dirop(args)?;
    let res: RENAME3res = match call.target(from_dir, Intent::Modify) {
        Err(stat) => Nfs3Result::Err((stat, RENAME3resfail::default())),
        Ok(t) => match call.second_target(&t, to_dir) {
            Err(stat) => Nfs3Result::Err((
                stat,
                RENAME3resfail {
                    fromdir_wcc: call.wcc_after(t.attr.ino),
                    todir_wcc: wcc_data::default(),
                },
            )),
            Ok(target_dir) => {
                match call
                    .server
                    .fs
                    .rename(&t.cred, t.attr.ino, from, target_dir.ino, to)
                {
                    Ok((fw, tw)) => Nfs3Result::Ok(RENAME3resok {
                        fromdir_wcc: wcc(&fw),
                        todir_wcc: wcc(&tw),
                    }),
                    Err(e) => Nfs3Result::Err((
                        nfsstat(&e),
                        RENAME3resfail {
                            fromdir_wcc: call.wcc_after(t.attr.ino),
                            todir_wcc: call.wcc_after(target_dir.ino),
                        },
                    )),
                }
            }
        },
    };
    reply(out, &res)
}

/// LINK: a hard link to a file, within one volume (else NFS3ERR_XDEV).
pub(super) fn link(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let file = fh(args)?;
    let (dir, name) = dirop(args)?;
    let res: LINK3res = match call.target(file, Intent::Modify) {
        Err(stat) => Nfs3Result::Err((
            stat,
            LINK3resfail {
                file_attributes: Nfs3Option::None,
                linkdir_wcc: wcc_data::default(),
            },
        )),
        Ok(t) => match call.second_target(&t, dir) {
            Err(stat) => Nfs3Result::Err((
                stat,
                LINK3resfail {
                    file_attributes: post(&t.attr),
                    linkdir_wcc: wcc_data::default(),
                },
            )),
            Ok(d) => match call.server.fs.link(&t.cred, t.attr.ino, d.ino, name) {
                Ok((a, w)) => Nfs3Result::Ok(LINK3resok {
                    file_attributes: post(&a),
                    linkdir_wcc: wcc(&w),
                }),
                Err(e) => Nfs3Result::Err((
                    nfsstat(&e),
                    LINK3resfail {
                        file_attributes: call.post_op(t.attr.ino),
                        linkdir_wcc: call.wcc_after(d.ino),
                    },
                )),
            },
        },
    };
    reply(out, &res)
}

/// The procedures whose commit is the last thing they do, so the server
/// may answer them once a log sync after the call has made their change
/// durable (see `crate::logsync`): SETATTR, CREATE, MKDIR, SYMLINK, MKNOD
/// and LINK. A SETATTR that cuts a file drops chunk data before its commit,
/// which misses inside `memory_only` and runs on the blocking pool. REMOVE,
/// RMDIR and RENAME free chunk data after their commit, which must be
/// durable first.
pub(crate) const SYNC_AFTER_PROCS: [u32; 6] = [2, 8, 9, 10, 11, 15];

/// The reply of one of [`SYNC_AFTER_PROCS`], or of a WRITE or COMMIT
/// (see `crate::server`), whose change could not be made durable:
/// NFS3ERR_IO, with no attributes.
pub(crate) fn not_durable(proc_num: u32, out: &mut Vec<u8>) -> ProcResult {
    let io = nfsstat3::NFS3ERR_IO;
    match proc_num {
        2 => reply(out, &SETATTR3res::Err((io, SETATTR3resfail::default()))),
        8 => reply(out, &CREATE3res::Err((io, CREATE3resfail::default()))),
        9 => reply(out, &MKDIR3res::Err((io, MKDIR3resfail::default()))),
        10 => reply(out, &SYMLINK3res::Err((io, SYMLINK3resfail::default()))),
        11 => reply(
            out,
            &MKNOD3res::Err((
                io,
                MKNOD3resfail {
                    dir_wcc: wcc_data::default(),
                },
            )),
        ),
        15 => reply(
            out,
            &LINK3res::Err((
                io,
                LINK3resfail {
                    file_attributes: Nfs3Option::None,
                    linkdir_wcc: wcc_data::default(),
                },
            )),
        ),
        7 => reply(out, &WRITE3res::Err((io, WRITE3resfail::default()))),
        21 => reply(
            out,
            &COMMIT3res::Err((
                io,
                COMMIT3resfail {
                    file_wcc: wcc_data::default(),
                },
            )),
        ),
        _ => Err(crate::rpc::Fault::ProcUnavail),
    }
}
