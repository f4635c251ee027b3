//! GETATTR, SETATTR (with its ctime guard) and ACCESS.

use super::{fattr, fh, post, reply, set_attr, timestamp, wcc, Intent};
use crate::error::nfsstat;
use crate::rpc::ProcResult;
use crate::server::Call;
use crate::xdr::XdrReader;
use nfs3_types::nfs3::{
    sattr3, sattrguard3, ACCESS3res, ACCESS3resfail, ACCESS3resok, GETATTR3res, GETATTR3resok,
    Nfs3Option, Nfs3Result, SETATTR3res, SETATTR3resfail, SETATTR3resok,
};
use nfs3_types::xdr_codec::Void;
use nitrofs_core_fs::access::{DELETE, EXTEND, MODIFY};

/// GETATTR: the handle's resolution is the answer.
pub(super) fn getattr(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let object = fh(args)?;
    let res: GETATTR3res = match call.target(object, Intent::Read) {
        Ok(t) => Nfs3Result::Ok(GETATTR3resok {
            obj_attributes: fattr(&t.attr),
        }),
        Err(stat) => Nfs3Result::Err((stat, Void)),
    };
    reply(out, &res)
}

/// SETATTR: mode, owner, size and times, refused with NOT_SYNC when a
/// guard ctime no longer matches.
pub(super) fn setattr(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let object = fh(args)?;
    let new: sattr3 = args.fixed_type()?;
    let guard: sattrguard3 = args.fixed_type()?;
    let guard = match guard {
        Nfs3Option::Some(t) => Some(timestamp(t)),
        Nfs3Option::None => None,
    };
    let res: SETATTR3res = match call.target(object, Intent::Modify) {
        Err(stat) => Nfs3Result::Err((stat, SETATTR3resfail::default())),
        Ok(t) => match call
            .server
            .fs
            .setattr(&t.cred, t.attr.ino, &set_attr(&new), guard)
        {
            Ok(w) => Nfs3Result::Ok(SETATTR3resok { obj_wcc: wcc(&w) }),
            Err(e) => Nfs3Result::Err((
                nfsstat(&e),
                SETATTR3resfail {
                    obj_wcc: call.wcc_after(t.attr.ino),
                },
            )),
        },
    };
    reply(out, &res)
}

/// ACCESS: what the caller may do, as the core's permission checks decide;
/// a read-only export never grants MODIFY, EXTEND or DELETE.
pub(super) fn access(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let object = fh(args)?;
    let want = args.u32()?;
    let res: ACCESS3res = match call.target(object, Intent::Read) {
        Err(stat) => Nfs3Result::Err((stat, ACCESS3resfail::default())),
        Ok(t) => match call.server.fs.access(&t.cred, t.attr.ino, want) {
            Ok((attr, mut granted)) => {
                if t.opts.read_only {
                    granted &= !(MODIFY | EXTEND | DELETE);
                }
                Nfs3Result::Ok(ACCESS3resok {
                    obj_attributes: post(&attr),
                    access: granted & want,
                })
            }
            Err(e) => Nfs3Result::Err((
                nfsstat(&e),
                ACCESS3resfail {
                    obj_attributes: post(&t.attr),
                },
            )),
        },
    };
    reply(out, &res)
}
