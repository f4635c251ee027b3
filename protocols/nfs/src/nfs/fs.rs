//! Whole-filesystem questions: FSSTAT, FSINFO and PATHCONF.

use super::{fh, post, reply, Intent, MAX_IO};
use crate::error::nfsstat;
use crate::rpc::ProcResult;
use crate::server::Call;
use crate::xdr::XdrReader;
use nfs3_types::nfs3::{
    nfstime3, FSINFO3res, FSINFO3resfail, FSINFO3resok, FSSTAT3res, FSSTAT3resfail, FSSTAT3resok,
    Nfs3Result, PATHCONF3res, PATHCONF3resfail, PATHCONF3resok, FSF3_CANSETTIME, FSF3_HOMOGENEOUS,
    FSF3_LINK, FSF3_SYMLINK,
};
use nitrofs_core_fs::{FILE_SIZE_MAX, LINK_MAX, NAME_MAX};

/// Preferred READDIR reply size.
const DTPREF: u32 = 64 * 1024;

/// FSSTAT: capacity and file counts of the volume.
pub(super) fn fsstat(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let root = fh(args)?;
    let res: FSSTAT3res = match call.target(root, Intent::Read) {
        Err(stat) => Nfs3Result::Err((stat, FSSTAT3resfail::default())),
        Ok(t) => match call.server.fs.fsstat(t.attr.ino) {
            Ok((attr, s)) => Nfs3Result::Ok(FSSTAT3resok {
                obj_attributes: post(&attr),
                tbytes: s.total_bytes,
                fbytes: s.free_bytes,
                abytes: s.avail_bytes,
                tfiles: s.total_files,
                ffiles: s.free_files,
                afiles: s.avail_files,
                invarsec: 0,
            }),
            Err(e) => Nfs3Result::Err((
                nfsstat(&e),
                FSSTAT3resfail {
                    obj_attributes: post(&t.attr),
                },
            )),
        },
    };
    reply(out, &res)
}

/// FSINFO: transfer sizes (1 MiB reads and writes) and capabilities.
pub(super) fn fsinfo(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let root = fh(args)?;
    let res: FSINFO3res = match call.target(root, Intent::Read) {
        Err(stat) => Nfs3Result::Err((stat, FSINFO3resfail::default())),
        Ok(t) => Nfs3Result::Ok(FSINFO3resok {
            obj_attributes: post(&t.attr),
            rtmax: MAX_IO,
            rtpref: MAX_IO,
            rtmult: 4096,
            wtmax: MAX_IO,
            wtpref: MAX_IO,
            wtmult: 4096,
            dtpref: DTPREF,
            maxfilesize: FILE_SIZE_MAX,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
        }),
    };
    reply(out, &res)
}

/// PATHCONF: POSIX limits of names and links.
pub(super) fn pathconf(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let object = fh(args)?;
    let res: PATHCONF3res = match call.target(object, Intent::Read) {
        Err(stat) => Nfs3Result::Err((stat, PATHCONF3resfail::default())),
        Ok(t) => Nfs3Result::Ok(PATHCONF3resok {
            obj_attributes: post(&t.attr),
            linkmax: LINK_MAX,
            name_max: u32::try_from(NAME_MAX).unwrap_or(u32::MAX),
            no_trunc: true,
            chown_restricted: true,
            case_insensitive: false,
            case_preserving: true,
        }),
    };
    reply(out, &res)
}
