//! ONC-RPC v2 messages (RFC 5531): decoding a call header with its
//! credentials, and encoding every reply the server sends.
//!
//! Only the header is decoded here; procedure arguments are left in the
//! record for the program that owns them. Anything malformed becomes a
//! [`CallError`] saying how to answer, never a panic.

use crate::xdr::{Garbage, PackError, XdrReader};
use bytes::Bytes;
use nfs3_types::rpc::{
    accept_stat_data, accepted_reply, auth_stat, msg_body, opaque_auth, rejected_reply, reply_body,
    rpc_msg,
};
use nfs3_types::xdr_codec::Pack;
use nitrofs_core_fs::ReadPiece;

/// The RPC protocol version spoken.
pub const RPC_VERSION: u32 = 2;
/// Largest credential or verifier body (RFC 5531 `MAX_AUTH_BYTES`).
pub const MAX_AUTH_BYTES: usize = 400;
/// Largest AUTH_SYS machine name.
const MAX_MACHINE_NAME: usize = 255;
/// Largest AUTH_SYS supplementary group list.
const MAX_AUTH_GIDS: usize = 16;

/// AUTH_NONE flavor number.
pub const AUTH_NONE: u32 = 0;
/// AUTH_SYS (AUTH_UNIX) flavor number.
pub const AUTH_SYS: u32 = 1;

/// The caller's credentials as sent, before export squashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// AUTH_NONE: anonymous.
    None,
    /// AUTH_SYS: Unix ids the client vouches for.
    Sys {
        /// Effective user id.
        uid: u32,
        /// Primary group id.
        gid: u32,
        /// Supplementary groups (at most 16).
        gids: Vec<u32>,
    },
    /// A flavor this server does not accept (AUTH_DH, RPCSEC_GSS…).
    Unsupported(u32),
}

/// A decoded call header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_num: u32,
    /// Credentials.
    pub auth: Auth,
}

/// How to answer a record whose call header is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// Not even a transaction id, or not a call: nothing to answer.
    Ignore,
    /// The RPC version is not 2: MSG_DENIED / RPC_MISMATCH.
    RpcMismatch(u32),
    /// The header is truncated or malformed: GARBAGE_ARGS.
    Garbage(u32),
    /// The credential does not decode: MSG_DENIED / AUTH_BADCRED.
    BadCred(u32),
}

impl CallError {
    /// The reply for this error, if one is due.
    pub fn reply(self) -> Option<Vec<u8>> {
        match self {
            CallError::Ignore => None,
            CallError::RpcMismatch(xid) => Some(denied(
                xid,
                rejected_reply::RPC_MISMATCH {
                    low: RPC_VERSION,
                    high: RPC_VERSION,
                },
            )),
            CallError::Garbage(xid) => Some(accepted(xid, accept_stat_data::GARBAGE_ARGS)),
            CallError::BadCred(xid) => Some(auth_error(xid, auth_stat::AUTH_BADCRED)),
        }
    }
}

/// One reply ready to send: `head` (RPC header and results) followed by
/// `data`, a payload kept apart from it (READ data: chunk file ranges sent
/// with `sendfile`, or the core's own buffers, never copied into `head`)
/// and padded when written.
#[derive(Debug)]
pub struct Reply {
    /// RPC reply header and the XDR results up to the payload.
    pub head: Vec<u8>,
    /// Trailing opaque payload (empty for most procedures).
    pub data: Payload,
}

impl Reply {
    /// A reply with no separate payload.
    pub fn head(head: Vec<u8>) -> Self {
        Self {
            head,
            data: Payload::default(),
        }
    }
}

/// A reply's trailing opaque payload: bytes in memory, and ranges of chunk
/// files that the connection sends from the page cache with `sendfile`
/// (no copy into the server's memory and out again).
#[derive(Debug, Default)]
pub struct Payload {
    pieces: Vec<ReadPiece>,
    len: usize,
}

impl Payload {
    pub fn new(pieces: Vec<ReadPiece>) -> Self {
        let len = pieces.iter().map(ReadPiece::len).sum();
        Self { pieces, len }
    }

    /// Bytes in all, before padding.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn pieces(&self) -> &[ReadPiece] {
        &self.pieces
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Self::new(vec![ReadPiece::Bytes(b)])
    }
}

/// Why a procedure produced no results: answered with the matching
/// accepted or denied reply instead of SUCCESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// PROG_UNAVAIL.
    ProgUnavail,
    /// PROG_MISMATCH with the supported versions.
    ProgMismatch {
        /// Lowest supported version.
        low: u32,
        /// Highest supported version.
        high: u32,
    },
    /// PROC_UNAVAIL.
    ProcUnavail,
    /// GARBAGE_ARGS.
    Garbage,
    /// MSG_DENIED / AUTH_ERROR.
    Auth(auth_stat),
    /// SYSTEM_ERR.
    System,
}

impl Fault {
    /// The reply announcing this fault.
    pub fn reply(self, xid: u32) -> Vec<u8> {
        match self {
            Fault::ProgUnavail => prog_unavail(xid),
            Fault::ProgMismatch { low, high } => prog_mismatch(xid, low, high),
            Fault::ProcUnavail => proc_unavail(xid),
            Fault::Garbage => garbage_args(xid),
            Fault::Auth(why) => auth_error(xid, why),
            Fault::System => system_err(xid),
        }
    }
}

impl From<Garbage> for Fault {
    fn from(_: Garbage) -> Self {
        Fault::Garbage
    }
}

impl From<PackError> for Fault {
    fn from(_: PackError) -> Self {
        Fault::System
    }
}

/// What a procedure returns: its trailing payload (usually empty) after
/// writing its results, or a fault.
pub type ProcResult = Result<Payload, Fault>;

/// Decodes the call header at the start of `record`; the reader is left at
/// the first byte of the procedure arguments.
pub fn parse_call(r: &mut XdrReader<'_>) -> Result<CallHeader, CallError> {
    let xid = r.u32().map_err(|_| CallError::Ignore)?;
    let garbage = |_: Garbage| CallError::Garbage(xid);
    // msg_type CALL = 0; a REPLY sent to a server is dropped.
    if r.u32().map_err(|_| CallError::Ignore)? != 0 {
        return Err(CallError::Ignore);
    }
    if r.u32().map_err(garbage)? != RPC_VERSION {
        return Err(CallError::RpcMismatch(xid));
    }
    let prog = r.u32().map_err(garbage)?;
    let vers = r.u32().map_err(garbage)?;
    let proc_num = r.u32().map_err(garbage)?;
    let flavor = r.u32().map_err(garbage)?;
    let body = r
        .opaque(MAX_AUTH_BYTES)
        .map_err(|_| CallError::BadCred(xid))?;
    let auth = match flavor {
        AUTH_NONE => Auth::None,
        AUTH_SYS => parse_auth_sys(body).map_err(|_| CallError::BadCred(xid))?,
        other => Auth::Unsupported(other),
    };
    // The verifier: flavor and body, ignored for AUTH_NONE and AUTH_SYS.
    r.u32().map_err(garbage)?;
    r.opaque(MAX_AUTH_BYTES).map_err(garbage)?;
    Ok(CallHeader {
        xid,
        prog,
        vers,
        proc_num,
        auth,
    })
}

/// Decodes an AUTH_SYS credential body (`authsys_parms`).
fn parse_auth_sys(body: &[u8]) -> Result<Auth, Garbage> {
    let mut r = XdrReader::new(body);
    let _stamp = r.u32()?;
    let _machine = r.opaque(MAX_MACHINE_NAME)?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let gids = r.u32_array(MAX_AUTH_GIDS)?;
    Ok(Auth::Sys { uid, gid, gids })
}

fn encode(msg: &rpc_msg<'_, '_>, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.packed_size() + extra);
    // Packing a fixed-size header into a Vec cannot fail: a Vec write never
    // errors and no field is anywhere near the 4 GiB opaque limit.
    let _ = msg.pack(&mut out);
    out
}

fn accepted(xid: u32, reply_data: accept_stat_data) -> Vec<u8> {
    accepted_with_capacity(xid, reply_data, 0)
}

fn accepted_with_capacity(xid: u32, reply_data: accept_stat_data, extra: usize) -> Vec<u8> {
    encode(
        &rpc_msg {
            xid,
            body: msg_body::REPLY(reply_body::MSG_ACCEPTED(accepted_reply {
                verf: opaque_auth::default(),
                reply_data,
            })),
        },
        extra,
    )
}

fn denied(xid: u32, rejected: rejected_reply) -> Vec<u8> {
    encode(
        &rpc_msg {
            xid,
            body: msg_body::REPLY(reply_body::MSG_DENIED(rejected)),
        },
        0,
    )
}

/// The header of a SUCCESS reply; the procedure's results are appended.
pub fn success(xid: u32) -> Vec<u8> {
    accepted_with_capacity(xid, accept_stat_data::SUCCESS, 256)
}

/// PROG_UNAVAIL: the program is not served here.
pub fn prog_unavail(xid: u32) -> Vec<u8> {
    accepted(xid, accept_stat_data::PROG_UNAVAIL)
}

/// PROG_MISMATCH with the supported version range.
pub fn prog_mismatch(xid: u32, low: u32, high: u32) -> Vec<u8> {
    accepted(xid, accept_stat_data::PROG_MISMATCH { low, high })
}

/// PROC_UNAVAIL: no such procedure in the program.
pub fn proc_unavail(xid: u32) -> Vec<u8> {
    accepted(xid, accept_stat_data::PROC_UNAVAIL)
}

/// GARBAGE_ARGS: the arguments did not decode.
pub fn garbage_args(xid: u32) -> Vec<u8> {
    accepted(xid, accept_stat_data::GARBAGE_ARGS)
}

/// SYSTEM_ERR: the server failed to produce a reply.
pub fn system_err(xid: u32) -> Vec<u8> {
    accepted(xid, accept_stat_data::SYSTEM_ERR)
}

/// MSG_DENIED / AUTH_ERROR with the reason.
pub fn auth_error(xid: u32, why: auth_stat) -> Vec<u8> {
    denied(xid, rejected_reply::AUTH_ERROR(why))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nfs3_types::rpc::{auth_unix, call_body};

    /// Encodes a call header with the given credential.
    pub(crate) fn call(
        xid: u32,
        prog: u32,
        vers: u32,
        proc_num: u32,
        cred: opaque_auth<'_>,
    ) -> Vec<u8> {
        let msg = rpc_msg {
            xid,
            body: msg_body::CALL(call_body {
                rpcvers: 2,
                prog,
                vers,
                proc: proc_num,
                cred,
                verf: opaque_auth::default(),
            }),
        };
        let mut out = Vec::new();
        msg.pack(&mut out).expect("pack call");
        out
    }

    pub(crate) fn sys_cred(uid: u32, gid: u32, gids: Vec<u32>) -> opaque_auth<'static> {
        opaque_auth::auth_unix(&auth_unix {
            stamp: 7,
            machinename: nfs3_types::xdr_codec::Opaque::owned(b"client".to_vec()),
            uid,
            gid,
            gids,
        })
    }

    #[test]
    fn auth_sys_call_header_decodes_ids_and_leaves_the_arguments() {
        let mut buf = call(42, 100_003, 3, 1, sys_cred(1000, 100, vec![4, 5]));
        buf.extend_from_slice(&[1, 2, 3, 4]);
        let mut r = XdrReader::new(&buf);
        let h = parse_call(&mut r).expect("valid header");
        assert_eq!(h.xid, 42);
        assert_eq!((h.prog, h.vers, h.proc_num), (100_003, 3, 1));
        assert_eq!(
            h.auth,
            Auth::Sys {
                uid: 1000,
                gid: 100,
                gids: vec![4, 5]
            }
        );
        assert_eq!(r.remaining(), 4);
    }

    #[test]
    fn auth_none_and_unknown_flavors_are_reported() {
        let buf = call(1, 100_003, 3, 0, opaque_auth::default());
        assert_eq!(
            parse_call(&mut XdrReader::new(&buf)).map(|h| h.auth),
            Ok(Auth::None)
        );
        let mut buf = call(1, 100_003, 3, 0, opaque_auth::default());
        // Rewrite the credential flavor (word 7) to RPCSEC_GSS (6).
        buf[27] = 6;
        assert_eq!(
            parse_call(&mut XdrReader::new(&buf)).map(|h| h.auth),
            Ok(Auth::Unsupported(6))
        );
    }

    #[test]
    fn too_many_groups_is_a_bad_credential() {
        let buf = call(9, 100_003, 3, 1, sys_cred(1, 1, (0..17).collect()));
        assert_eq!(
            parse_call(&mut XdrReader::new(&buf)),
            Err(CallError::BadCred(9))
        );
    }

    #[test]
    fn wrong_rpc_version_is_a_mismatch() {
        let mut buf = call(5, 100_003, 3, 0, opaque_auth::default());
        buf[11] = 3;
        assert_eq!(
            parse_call(&mut XdrReader::new(&buf)),
            Err(CallError::RpcMismatch(5))
        );
    }

    #[test]
    fn every_truncation_of_a_header_is_an_error_value() {
        let buf = call(5, 100_003, 3, 0, sys_cred(0, 0, vec![1, 2, 3]));
        for cut in 0..buf.len() {
            let res = parse_call(&mut XdrReader::new(&buf[..cut]));
            assert!(res.is_err(), "cut at {cut} decoded");
            if (4..8).contains(&cut) {
                assert_eq!(res, Err(CallError::Ignore));
            }
        }
    }

    #[test]
    fn replies_echo_the_xid_and_status() {
        let r = garbage_args(0x01020304);
        assert_eq!(&r[..4], &[1, 2, 3, 4]);
        // REPLY, MSG_ACCEPTED, verf AUTH_NONE + empty body, GARBAGE_ARGS.
        assert_eq!(
            &r[4..],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]
        );
        let d = auth_error(7, auth_stat::AUTH_TOOWEAK);
        assert_eq!(&d[4..], &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5]);
        let m = prog_mismatch(7, 3, 3);
        assert_eq!(&m[m.len() - 12..], &[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3]);
    }
}
