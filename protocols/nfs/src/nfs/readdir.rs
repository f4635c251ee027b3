//! READDIR and READDIRPLUS: pages of entries packed to the client's byte
//! budget.
//!
//! The core's cookies stay valid for the life of the directory, so the
//! cookie verifier only has to name the directory object: it is derived
//! from the directory's generation, and a non-zero cookie presented with
//! another verifier is NFS3ERR_BAD_COOKIE.

use super::{fh, post, post_fh, reply, Intent, Target};
use crate::error::nfsstat;
use crate::rpc::ProcResult;
use crate::server::Call;
use crate::xdr::XdrReader;
use nfs3_types::nfs3::{
    cookieverf3, dirlist3, dirlistplus3, entry3, entryplus3, filename3, nfsstat3, Nfs3Option,
    READDIR3res, READDIR3resfail, READDIR3resok, READDIRPLUS3res, READDIRPLUS3resfail,
    READDIRPLUS3resok,
};
use nfs3_types::xdr_codec::{List, Opaque, Pack};
use nitrofs_core_fs::{Attr, ReadDirPage};

/// Most entries asked of the core for one page.
const MAX_PAGE_ENTRIES: usize = 4096;
/// Smallest encoded READDIR entry (name of 1–4 bytes).
const MIN_ENTRY: usize = 4 + 8 + 8 + 8;
/// Smallest encoded READDIRPLUS entry with attributes and handle.
const MIN_ENTRY_PLUS: usize = MIN_ENTRY + 88 + 28;
/// Fixed part of a successful reply: status, post_op_attr, verifier,
/// end-of-list marker and eof flag.
const REPLY_OVERHEAD: usize = 4 + 88 + 8 + 4 + 4;

/// The cookie verifier of a directory: "NF" and its generation.
pub(crate) fn cookie_verifier(dir: &Attr) -> [u8; 8] {
    (0x4e46_u64 << 48 | u64::from(dir.generation)).to_be_bytes()
}

/// Entries the core should return for a budget of `bytes`.
fn page_entries(bytes: u32, min_entry: usize) -> usize {
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    (bytes.saturating_sub(REPLY_OVERHEAD) / min_entry).clamp(1, MAX_PAGE_ENTRIES)
}

/// Reads a page after checking the cookie verifier.
fn page(
    call: &Call<'_>,
    t: &Target<'_>,
    cookie: u64,
    verf: [u8; 8],
    max_entries: usize,
    plus: bool,
) -> Result<ReadDirPage, nfsstat3> {
    if cookie != 0 && verf != cookie_verifier(&t.attr) {
        tracing::debug!(cookie, "cookie verifier mismatch");
        return Err(nfsstat3::NFS3ERR_BAD_COOKIE);
    }
    call.server
        .fs
        .readdir(&t.cred, t.attr.ino, cookie, max_entries, plus)
        .map_err(|e| nfsstat(&e))
}

/// READDIR: names and file ids, within `count` bytes of reply.
pub(super) fn readdir(call: &Call<'_>, args: &mut XdrReader<'_>, out: &mut Vec<u8>) -> ProcResult {
    let dir = fh(args)?;
    let cookie = args.u64()?;
    let verf: cookieverf3 = args.fixed_type()?;
    let count = args.u32()?;
    let t = match call.target(dir, Intent::Read) {
        Ok(t) => t,
        Err(stat) => return reply(out, &READDIR3res::Err((stat, READDIR3resfail::default()))),
    };
    let fail = |stat| {
        READDIR3res::Err((
            stat,
            READDIR3resfail {
                dir_attributes: call.post_op(t.attr.ino),
            },
        ))
    };
    let p = match page(
        call,
        &t,
        cookie,
        verf.0,
        page_entries(count, MIN_ENTRY),
        false,
    ) {
        Ok(p) => p,
        Err(stat) => return reply(out, &fail(stat)),
    };
    let budget = usize::try_from(count).unwrap_or(usize::MAX);
    let mut used = REPLY_OVERHEAD;
    let mut entries = Vec::with_capacity(p.entries.len());
    for e in &p.entries {
        let entry = entry3 {
            fileid: e.ino,
            name: filename3(Opaque::borrowed(&e.name)),
            cookie: e.cookie,
        };
        let size = 4 + entry.packed_size();
        if used + size > budget {
            break;
        }
        used += size;
        entries.push(entry);
    }
    if entries.is_empty() && !p.entries.is_empty() {
        return reply(out, &fail(nfsstat3::NFS3ERR_TOOSMALL));
    }
    let eof = p.eof && entries.len() == p.entries.len();
    reply(
        out,
        &READDIR3res::Ok(READDIR3resok {
            dir_attributes: post(&p.dir),
            cookieverf: cookieverf3(cookie_verifier(&p.dir)),
            reply: dirlist3 {
                entries: List(entries),
                eof,
            },
        }),
    )
}

/// READDIRPLUS: entries with attributes and handles, within `maxcount`
/// bytes of reply. `dircount` is not used to cut pages short (as the Linux
/// server does): `maxcount` bounds the reply, which is what matters.
pub(super) fn readdirplus(
    call: &Call<'_>,
    args: &mut XdrReader<'_>,
    out: &mut Vec<u8>,
) -> ProcResult {
    let dir = fh(args)?;
    let cookie = args.u64()?;
    let verf: cookieverf3 = args.fixed_type()?;
    let _dircount = args.u32()?;
    let maxcount = args.u32()?;
    let t = match call.target(dir, Intent::Read) {
        Ok(t) => t,
        Err(stat) => {
            return reply(
                out,
                &READDIRPLUS3res::Err((stat, READDIRPLUS3resfail::default())),
            );
        }
    };
    let fail = |stat| {
        READDIRPLUS3res::Err((
            stat,
            READDIRPLUS3resfail {
                dir_attributes: call.post_op(t.attr.ino),
            },
        ))
    };
    let p = match page(
        call,
        &t,
        cookie,
        verf.0,
        page_entries(maxcount, MIN_ENTRY_PLUS),
        true,
    ) {
        Ok(p) => p,
        Err(stat) => return reply(out, &fail(stat)),
    };
    let budget = usize::try_from(maxcount).unwrap_or(usize::MAX);
    let mut used = REPLY_OVERHEAD;
    let mut entries = Vec::with_capacity(p.entries.len());
    for e in &p.entries {
        let (name_attributes, name_handle) = match &e.attr {
            Some(a) => (post(a), post_fh(a)),
            None => (Nfs3Option::None, Nfs3Option::None),
        };
        let entry = entryplus3 {
            fileid: e.ino,
            name: filename3(Opaque::borrowed(&e.name)),
            cookie: e.cookie,
            name_attributes,
            name_handle,
        };
        let size = 4 + entry.packed_size();
        if used + size > budget {
            break;
        }
        used += size;
        entries.push(entry);
    }
    if entries.is_empty() && !p.entries.is_empty() {
        return reply(out, &fail(nfsstat3::NFS3ERR_TOOSMALL));
    }
    let eof = p.eof && entries.len() == p.entries.len();
    reply(
        out,
        &READDIRPLUS3res::Ok(READDIRPLUS3resok {
            dir_attributes: post(&p.dir),
            cookieverf: cookieverf3(cookie_verifier(&p.dir)),
            reply: dirlistplus3 {
                entries: List(entries),
                eof,
            },
        }),
    )
}
