//! A minimal PORTMAP v2 (RFC 1833): NULL, and GETPORT answering this
//! server's own port for NFS v3 and MOUNT v3 over TCP, so clients need no
//! rpcbind. Every other procedure is PROC_UNAVAIL.

use crate::rpc::{Fault, Payload, ProcResult};
use crate::server::Call;
use crate::xdr::{pack_into, XdrReader};
use crate::{mount, nfs};
use nfs3_types::portmap::{mapping, IPPROTO_TCP};

/// PORTMAP program number.
pub const PROGRAM: u32 = nfs3_types::portmap::PROGRAM;
/// The one version served.
pub const VERSION: u32 = nfs3_types::portmap::VERSION;

/// Procedure names for logs.
pub const PROC_NAMES: [&str; 6] = [
    "PMAP_NULL",
    "PMAP_SET",
    "PMAP_UNSET",
    "PMAP_GETPORT",
    "PMAP_DUMP",
    "PMAP_CALLIT",
];

/// Runs one PORTMAP procedure.
pub(crate) fn dispatch(
    call: &Call<'_>,
    proc_num: u32,
    args: &mut XdrReader<'_>,
    out: &mut Vec<u8>,
) -> ProcResult {
    match proc_num {
        0 => Ok(Payload::default()),
        3 => {
            let m: mapping = args.fixed_type()?;
            let port = getport(&m, call.local_port);
            tracing::debug!(prog = m.prog, vers = m.vers, prot = m.prot, port, "GETPORT");
            pack_into(out, &port)?;
            Ok(Payload::default())
        }
        _ => Err(Fault::ProcUnavail),
    }
}

/// The port of a program, or 0 if it is not served.
fn getport(m: &mapping, local_port: u16) -> u32 {
    let served = matches!(
        (m.prog, m.vers),
        (nfs::PROGRAM, nfs::VERSION) | (mount::PROGRAM, mount::VERSION)
    );
    if served && m.prot == IPPROTO_TCP {
        u32::from(local_port)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(prog: u32, vers: u32, prot: u32) -> mapping {
        mapping {
            prog,
            vers,
            prot,
            port: 0,
        }
    }

    #[test]
    fn getport_answers_our_port_for_nfs_and_mount_over_tcp_only() {
        assert_eq!(getport(&m(100_003, 3, 6), 2049), 2049);
        assert_eq!(getport(&m(100_005, 3, 6), 2049), 2049);
        assert_eq!(getport(&m(100_003, 3, 17), 2049), 0);
        assert_eq!(getport(&m(100_005, 1, 6), 2049), 0);
        assert_eq!(getport(&m(100_021, 4, 6), 2049), 0);
    }
}
