//! File data: READ (chunk file ranges sent with `sendfile` for reads of at
//! least [`ZERO_COPY_MIN`] bytes, copied otherwise), WRITE with its
//! stability levels, COMMIT, and READLINK.
//!
//! The write verifier is the store's boot count, so it changes at every
//! server start and clients re-send UNSTABLE data the restart may have lost.

use super::{fh, post, reply, wcc, Intent, MAX_IO};
use crate::error::nfsstat;
use crate::rpc::{Payload, ProcResult};
use crate::server::Call;
use crate::xdr::{pack_into, Garbage, XdrReader};
use nfs3_types::nfs3::{
    nfspath3, nfsstat3, stable_how, writeverf3, COMMIT3res, COMMIT3resfail, COMMIT3resok,
    Nfs3Result, READ3res, READ3resfail, READLINK3res, READLINK3resfail, READLINK3resok, WRITE3res,
    WRITE3resfail, WRITE3resok,
};
use nfs3_types::xdr_codec::Opaque;
use nitrofs_core_fs::{FsResult, InodeId, Wcc};
use std::sync::atomic::Ordering;

/// READLINK.
pub(super) fn readlink(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let link = fh(args)?;
    let t = match call.target(link, Intent::Read) {
        Ok(t) => t,
        Err(stat) => {
            return reply(out, &READLINK3res::Err((stat, READLINK3resfail::default())));
        }
    };
    match call.server.fs.readlink(&t.cred, t.attr.ino) {
        Ok((attr, target)) => reply(
            out,
            &READLINK3res::Ok(READLINK3resok {
                symlink_attributes: post(&attr),
                data: nfspath3(Opaque::borrowed(&target)),
            }),
        ),
        Err(e) => reply(
            out,
            &READLINK3res::Err((
                nfsstat(&e),
                READLINK3resfail {
                    symlink_attributes: post(&t.attr),
                },
            )),
        ),
    }
}

/// A READ whose bytes (its count, cut at the end of the file) are fewer
/// than this is copied into the reply; one of this many or more sends its
/// chunk file ranges with `sendfile`. A range costs the reply a hop to the
/// blocking pool and a TCP segment of its own after the header, which for
/// a 16 KiB read is more than the two copies it saves: 4 libnfs processes
/// reading 8,000 cached 16 KiB files (open + pread + close), 8 runs
/// alternating the two servers, read a median 4,095 files/s with a range
/// for every READ and 4,559 copying. At 64 KiB the two ways came out even
/// (4,000 files, 8 alternated runs: median 5,186 files/s sending ranges,
/// 5,052 copying), so a client mounted with `rsize=65536` still gets
/// `sendfile`; 1 MiB checkpoint reads gain from it.
pub(crate) const ZERO_COPY_MIN: u64 = 64 * 1024;

/// READ: up to [`MAX_IO`] bytes. The data goes out as the reply's payload:
/// chunk file ranges sent from the page cache (`sendfile`) for a read of at
/// least [`ZERO_COPY_MIN`] bytes, or the core's `Bytes` (copied) for a
/// smaller one and where it has no file to show.
pub(super) fn read(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let file = fh(args)?;
    let offset = args.u64()?;
    let count = args.u32()?.min(MAX_IO);
    let t = match call.target(file, Intent::Read) {
        Ok(t) => t,
        Err(stat) => return reply(out, &READ3res::Err((stat, READ3resfail::default()))),
    };
    let fs = &call.server.fs;
    // What the file holds there as the call found it; a file that grows
    // before the read is taken just reads the copying way.
    let len = u64::from(count).min(t.attr.size.saturating_sub(offset));
    // On the connection's task only small reads are answered (a miss here
    // runs the call again on the blocking pool; its reply is dropped).
    if len >= ZERO_COPY_MIN && nitrofs_core_fs::may_wait().is_err() {
        return reply(
            out,
            &READ3res::Err((nfsstat3::NFS3ERR_IO, READ3resfail::default())),
        );
    }
    let read = if len >= ZERO_COPY_MIN && call.server.zero_copy.load(Ordering::Relaxed) {
        fs.read_ranges(&t.cred, t.attr.ino, offset, count)
            .map(|r| (r.attr, r.eof, Payload::new(r.pieces)))
    } else {
        fs.read(&t.cred, t.attr.ino, offset, count)
            .map(|r| (r.attr, r.eof, Payload::from(r.data)))
    };
    match read {
        Ok((attr, eof, data)) => {
            // READ3resok up to the opaque's length word; the bytes follow.
            let len = u32::try_from(data.len()).map_err(|_| Garbage)?;
            pack_into(out, &nfsstat3::NFS3_OK)?;
            pack_into(out, &post(&attr))?;
            pack_into(out, &len)?;
            pack_into(out, &eof)?;
            pack_into(out, &len)?;
            Ok(data)
        }
        Err(e) => reply(
            out,
            &READ3res::Err((
                nfsstat(&e),
                READ3resfail {
                    file_attributes: call.post_op(t.attr.ino),
                },
            )),
        ),
    }
}

/// WRITE: UNSTABLE writes may stay buffered in the core and are answered
/// UNSTABLE; DATA_SYNC and FILE_SYNC are durable before the reply, which
/// says FILE_SYNC.
pub(super) fn write(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let file = fh(args)?;
    let offset = args.u64()?;
    let count = args.u32()?;
    let stable: stable_how = args.fixed_type()?;
    let data = args.opaque(usize::MAX)?;
    let data = usize::try_from(count)
        .ok()
        .and_then(|n| data.get(..n))
        .ok_or(Garbage)?;
    let durable = stable != stable_how::UNSTABLE;
    let t = match call.target(file, Intent::Modify) {
        Ok(t) => t,
        Err(stat) => return reply(out, &WRITE3res::Err((stat, WRITE3resfail::default()))),
    };
    let res: WRITE3res = match call
        .server
        .fs
        .write(&t.cred, t.attr.ino, offset, data, durable)
    {
        Ok(w) => Nfs3Result::Ok(WRITE3resok {
            file_wcc: wcc(&w),
            count,
            committed: if durable {
                stable_how::FILE_SYNC
            } else {
                stable_how::UNSTABLE
            },
            verf: writeverf3(call.server.write_verf),
        }),
        Err(e) => Nfs3Result::Err((
            nfsstat(&e),
            WRITE3resfail {
                file_wcc: call.wcc_after(t.attr.ino),
            },
        )),
    };
    reply(out, &res)
}

/// Makes a file's unstable writes durable. On an `async_metadata` export
/// the metadata log is synced as far as it is now, too: the file's name,
/// and every change answered before its sync, are then durable with it.
/// (Inside `deferring_sync` that sync is owed by the call like any other.)
fn commit_file(call: &Call<'_>, ino: InodeId, whole_log: bool) -> FsResult<Wcc> {
    let fs = &call.server.fs;
    let w = fs.commit(ino)?;
    if whole_log {
        fs.sync_metadata_to(fs.log_position())?;
    }
    Ok(w)
}

/// COMMIT: makes every earlier write to the file durable (the range is
/// not needed: the whole file is committed).
pub(super) fn commit(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let file = fh(args)?;
    let _offset = args.u64()?;
    let _count = args.u32()?;
    let res: COMMIT3res = match call.target(file, Intent::Read) {
        Err(stat) => Nfs3Result::Err((
            stat,
            COMMIT3resfail {
                file_wcc: Default::default(),
            },
        )),
        Ok(t) => match commit_file(call, t.attr.ino, t.opts.async_metadata) {
            Ok(w) => Nfs3Result::Ok(COMMIT3resok {
                file_wcc: wcc(&w),
                verf: writeverf3(call.server.write_verf),
            }),
            Err(e) => Nfs3Result::Err((
                nfsstat(&e),
                COMMIT3resfail {
                    file_wcc: call.wcc_after(t.attr.ino),
                },
            )),
        },
    };
    reply(out, &res)
}
