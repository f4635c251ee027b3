//! The verbs backend: one-sided RDMA READ / WRITE over reliable-connected
//! (RC) queue pairs, on memory registered with the device.
//!
//! - [`probe`] says whether a usable device exists (what
//!   [`crate::select_backend`] asks);
//! - [`VerbsContext`] owns an opened device, its protection domain, one
//!   completion queue and a cache of registered buffers
//!   ([`RegisteredRegion`], handed out by size class and reused);
//! - [`VerbsContext::prepare`] creates a queue pair ([`PreparedQp`]) whose
//!   [`Endpoint`] (32 bytes) the protocol sends to the peer in its own
//!   messages; [`PreparedQp::complete`] with the peer's endpoint makes it a
//!   connected [`VerbsQueuePair`];
//! - [`connect`] does both over an already-connected TCP stream (both sides
//!   call it);
//! - [`VerbsQueuePair::write_remote`] / [`VerbsQueuePair::read_remote`] move
//!   bytes between a local region and a peer's [`RemoteBuf`], waiting for the
//!   completion by polling the CQ.
//!
//! All FFI goes through `ibverbs-sys` and lives in this module: each verbs
//! object has an owner that releases it on drop, and owners hold their
//! parents (`Arc`), so a device outlives its PD, a PD its MRs and QPs.
//! Nothing here knows about frames or messages; a protocol exchanges
//! [`RemoteBuf`]s in its own headers.

#![allow(unsafe_code)]

mod device;
mod endpoint;
mod qp;
mod region;

pub use device::VerbsContext;
pub use endpoint::{Endpoint, ENDPOINT_LEN};
pub use qp::{connect, PreparedQp, VerbsQueuePair};
pub use region::RegisteredRegion;

use crate::TransportError;
use ibverbs_sys as ffi;

pub use crate::buf::RemoteBuf;

/// Why the verbs backend cannot be used on this machine.
#[derive(Debug, thiserror::Error)]
pub enum VerbsUnavailable {
    /// libibverbs lists no device.
    #[error("no RDMA device found")]
    NoDevices,
    /// Listing devices failed (ENOSYS: no kernel RDMA support).
    #[error("cannot list RDMA devices: {0}")]
    Os(std::io::Error),
    /// Devices exist but none could be opened with an active port.
    #[error("RDMA device {device} unusable: {reason}")]
    OpenFailed {
        /// The last device tried.
        device: String,
        /// What went wrong with it.
        reason: std::io::Error,
    },
}

/// Errors of registration, connection set-up and transfers.
#[derive(Debug, thiserror::Error)]
pub enum VerbsError {
    /// A verbs call or the set-up socket failed.
    #[error("verbs I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The caller asked for something impossible (bad range, region too
    /// small, region of another context); nothing was posted.
    #[error("invalid transfer: {0}")]
    Invalid(String),
    /// The peer's set-up record was malformed.
    #[error("bad endpoint record: {0}")]
    Protocol(String),
    /// The work request completed with an error status.
    #[error("work request failed: {status_text} (status {status}, vendor error {vendor_err:#x})")]
    Completion {
        /// `ibv_wc_status` of the completion.
        status: u32,
        /// Its text from libibverbs.
        status_text: String,
        /// The device's own code.
        vendor_err: u32,
    },
    /// No completion within the queue pair's timeout; the queue pair is
    /// broken afterwards.
    #[error("rdma transfer timed out")]
    TimedOut,
    /// The queue pair is in the error state (after a failure or timeout).
    #[error("queue pair closed: {0}")]
    Closed(String),
}

impl From<VerbsError> for TransportError {
    fn from(e: VerbsError) -> Self {
        match e {
            VerbsError::Io(e) => TransportError::Io(e),
            VerbsError::Invalid(m) => TransportError::Protocol(m),
            VerbsError::Protocol(m) => TransportError::Protocol(m),
            VerbsError::TimedOut => TransportError::TimedOut,
            e @ (VerbsError::Completion { .. } | VerbsError::Closed(_)) => {
                TransportError::Closed(e.to_string())
            }
        }
    }
}

/// The name of the first device that opens with an active port.
pub fn probe() -> Result<String, VerbsUnavailable> {
    let list = device::DeviceList::get().map_err(VerbsUnavailable::Os)?;
    let mut last = None;
    for dev in list.iter() {
        let name = dev.name();
        match device::DeviceHandle::open(&dev) {
            Ok(_opened) => return Ok(name),
            Err(reason) => {
                last = Some(VerbsUnavailable::OpenFailed {
                    device: name,
                    reason,
                })
            }
        }
    }
    Err(last.unwrap_or(VerbsUnavailable::NoDevices))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{select_backend, BackendKind};

    /// The device, or `None` after printing why the test is skipped.
    fn device_or_skip(test: &str) -> Option<std::sync::Arc<VerbsContext>> {
        match VerbsContext::open_first() {
            Ok(ctx) => Some(ctx),
            Err(why) => {
                println!("{test}: skipped, no RDMA device ({why})");
                None
            }
        }
    }

    #[test]
    fn probe_explains_a_missing_device_in_one_line() {
        match probe() {
            Ok(name) => println!("rdma device {name} present; nothing to check"),
            Err(why) => {
                let text = why.to_string();
                assert!(!text.is_empty());
                assert!(!text.contains('\n'), "{text:?}");
                assert!(
                    VerbsContext::open_first().is_err(),
                    "open agrees with probe"
                );
            }
        }
    }

    #[test]
    fn select_backend_falls_back_to_tcp_without_a_device() {
        let expected = if probe().is_ok() {
            BackendKind::Verbs
        } else {
            BackendKind::Tcp
        };
        assert_eq!(select_backend("test"), expected);
    }

    #[test]
    fn os_error_display_is_one_line() {
        let e = VerbsUnavailable::Os(std::io::Error::from_raw_os_error(38));
        let text = e.to_string();
        assert!(text.starts_with("cannot list RDMA devices"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn verbs_errors_map_to_retryable_transport_errors() {
        assert!(TransportError::from(VerbsError::TimedOut).is_retryable());
        assert!(TransportError::from(VerbsError::Closed("x".into())).is_retryable());
        assert!(!TransportError::from(VerbsError::Invalid("x".into())).is_retryable());
    }

    #[test]
    fn registered_regions_are_reused_by_size_class() {
        let Some(ctx) = device_or_skip("registered_regions_are_reused_by_size_class") else {
            return;
        };
        let mut a = ctx.register(100_000).expect("register");
        assert_eq!(a.len(), 100_000);
        a[0] = 7;
        let remote = a.remote();
        assert_eq!(remote.len, 100_000);
        drop(a);
        let b = ctx.register(70_000).expect("register again");
        assert_eq!(
            b.remote().addr,
            remote.addr,
            "same class reuses the registration"
        );
        assert_eq!(b.remote().rkey, remote.rkey);
    }

    #[tokio::test]
    async fn loopback_write_then_read_moves_the_bytes() {
        let Some(ctx) = device_or_skip("loopback_write_then_read_moves_the_bytes") else {
            return;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server_ctx = ctx.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            connect(&server_ctx, &mut s).await
        });
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let qp = connect(&ctx, &mut stream).await.expect("client qp");
        let _peer_qp = server.await.expect("join").expect("server qp");

        let target = ctx.register(1 << 20).expect("target");
        let mut src = ctx.register(1 << 20).expect("src");
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        qp.write_remote(&src, 0..src.len(), target.remote())
            .await
            .expect("write");
        assert_eq!(&target[..], &src[..]);
        let mut back = ctx.register(4096).expect("back");
        let mut remote = target.remote();
        remote.addr += 1000;
        remote.len -= 1000;
        qp.read_remote(&mut back, 0..4096, remote)
            .await
            .expect("read");
        assert_eq!(&back[..], &src[1000..5096]);
        // Too long for the remote buffer: refused before posting.
        let small = RemoteBuf {
            len: 10,
            ..target.remote()
        };
        assert!(matches!(
            qp.write_remote(&src, 0..11, small).await,
            Err(VerbsError::Invalid(_))
        ));
    }

    #[test]
    fn two_step_set_up_connects_and_memory_regions_expose_their_registration() {
        let Some(ctx) =
            device_or_skip("two_step_set_up_connects_and_memory_regions_expose_their_registration")
        else {
            return;
        };
        let a = ctx.prepare().expect("prepare a");
        let b = ctx.prepare().expect("prepare b");
        let (ea, eb) = (a.endpoint(), b.endpoint());
        assert_eq!(Endpoint::decode(&ea.encode()).ok(), Some(ea));
        // The responder completes first, as a protocol would order it.
        let qb = b.complete(&ea).expect("complete b");
        let qa = a.complete(&eb).expect("complete a");
        assert_eq!(qa.peer(), eb);
        assert_eq!(qb.peer(), ea);
        let region = crate::MemoryRegion::from(ctx.register(8192).expect("register"));
        let remote = region.remote().expect("registered regions have a remote");
        assert_eq!(remote.len, 8192);
        assert_eq!(region.len(), 8192);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut src = ctx.register(8192).expect("src");
        src.fill(0xa5);
        rt.block_on(qa.write_remote(&src, 0..8192, remote))
            .expect("write");
        assert!(region.iter().all(|&x| x == 0xa5));
    }
}
