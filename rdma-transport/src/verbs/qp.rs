//! RC queue pairs: set-up (in two steps, or over a TCP stream), then
//! one-sided RDMA WRITE and READ, each a signaled work request whose
//! completion is polled from the context's CQ.

use super::device::{Completions, CqHandle, PdHandle, VerbsContext, GID_INDEX, PORT};
use super::endpoint::{Endpoint, ENDPOINT_LEN};
use super::region::RegisteredRegion;
use super::{ffi, RemoteBuf, VerbsError};
use parking_lot::Mutex;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Work requests one queue pair may have outstanding.
const SEND_DEPTH: u32 = 256;
/// Bound on the endpoint exchange.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one transfer's completion.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dropped transfer waits (blocking) for its completion before
/// the queue pair is forced into the error state, and again after.
const DROP_GRACE: Duration = Duration::from_millis(100);
/// Sent by each side once its QP is ready to send, so neither writes to a
/// QP that cannot receive yet.
const READY: u8 = 0x5a;
const MAX_24: u32 = 0x00ff_ffff;

/// A reliable-connected queue pair, destroyed on drop.
struct QpHandle {
    raw: *mut ffi::ibv_qp,
    _pd: Arc<PdHandle>,
    _cq: Arc<CqHandle>,
}

// SAFETY: the pointer is only passed to libibverbs, whose QP verbs
// (modify, post_send) are thread-safe.
unsafe impl Send for QpHandle {}
// SAFETY: as above.
unsafe impl Sync for QpHandle {}

impl QpHandle {
    fn create(ctx: &VerbsContext) -> io::Result<Self> {
        let cq = ctx.completions.cq.clone();
        let mut init = ffi::ibv_qp_init_attr {
            send_cq: cq.raw,
            recv_cq: cq.raw,
            cap: ffi::ibv_qp_cap {
                max_send_wr: SEND_DEPTH,
                max_recv_wr: 1,
                max_send_sge: 1,
                max_recv_sge: 1,
                max_inline_data: 0,
            },
            qp_type: ffi::ibv_qp_type::IBV_QPT_RC,
            sq_sig_all: 0,
            ..Default::default()
        };
        // SAFETY: the PD and CQ are live (we keep Arcs to them for the QP's
        // life) and `init` is a valid attribute block.
        let raw = unsafe { ffi::ibv_create_qp(ctx.pd.raw, &mut init) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            raw,
            _pd: ctx.pd.clone(),
            _cq: cq,
        })
    }

    fn qp_num(&self) -> u32 {
        // SAFETY: `raw` is a live QP; qp_num is a plain field set at creation.
        unsafe { (*self.raw).qp_num }
    }

    fn modify(&self, attr: &mut ffi::ibv_qp_attr, mask: ffi::ibv_qp_attr_mask) -> io::Result<()> {
        let mask = i32::try_from(mask.0).map_err(|_| io::Error::other("bad QP attribute mask"))?;
        // SAFETY: `raw` is a live QP and `attr` a valid attribute block for
        // the fields named in `mask`.
        let rc = unsafe { ffi::ibv_modify_qp(self.raw, attr, mask) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
}

impl Drop for QpHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` was created by us and is destroyed once. Transfers
        // borrow the VerbsQueuePair, so none is in flight here.
        let rc = unsafe { ffi::ibv_destroy_qp(self.raw) };
        if rc != 0 {
            tracing::warn!("ibv_destroy_qp failed: {rc}");
        }
    }
}

/// A connected RC queue pair for one-sided transfers with one peer.
pub struct VerbsQueuePair {
    ctx: Arc<VerbsContext>,
    qp: QpHandle,
    peer: Endpoint,
    slots: tokio::sync::Semaphore,
    broken: Mutex<Option<String>>,
    timeout: Duration,
}

impl std::fmt::Debug for VerbsQueuePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerbsQueuePair")
            .field("qp_num", &self.qp.qp_num())
            .field("peer_qp_num", &self.peer.qp_num)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A queue pair created and moved to INIT, waiting for its peer's
/// [`Endpoint`]. Set-up in two steps lets the endpoints ride in whatever
/// messages a protocol already exchanges: send [`PreparedQp::endpoint`] to
/// the peer, get its endpoint back, then [`PreparedQp::complete`].
///
/// Only a side that has completed may be the target of the peer's one-sided
/// transfers, so the protocol must order it: e.g. the responder completes
/// before it answers with its endpoint, and the requester completes before
/// it asks for a transfer.
pub struct PreparedQp {
    ctx: Arc<VerbsContext>,
    qp: QpHandle,
    local: Endpoint,
}

impl std::fmt::Debug for PreparedQp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedQp")
            .field("local", &self.local)
            .finish()
    }
}

impl VerbsContext {
    /// Creates an RC queue pair, moves it to INIT and picks its first packet
    /// sequence number: the first half of a connection.
    pub fn prepare(self: &Arc<Self>) -> Result<PreparedQp, VerbsError> {
        let qp = QpHandle::create(self)?;
        let dev = &self.pd.dev;
        let local = Endpoint {
            mtu: dev.active_mtu,
            lid: dev.lid,
            qp_num: qp.qp_num(),
            psn: random_psn(),
            gid: dev.gid,
        };
        to_init(&qp)?;
        Ok(PreparedQp {
            ctx: self.clone(),
            qp,
            local,
        })
    }
}

impl PreparedQp {
    /// What the peer needs to connect to this queue pair (send it
    /// [`Endpoint::encode`]d).
    pub fn endpoint(&self) -> Endpoint {
        self.local
    }

    /// Connects to `remote` (the peer's endpoint): moves the queue pair to
    /// ready-to-receive and ready-to-send. From here the peer may target
    /// this side's registered memory and this side may issue transfers.
    pub fn complete(self, remote: &Endpoint) -> Result<VerbsQueuePair, VerbsError> {
        let Self { ctx, qp, local } = self;
        to_rtr(&qp, &ctx, &local, remote)?;
        to_rts(&qp, &ctx, &local)?;
        Ok(VerbsQueuePair {
            ctx,
            qp,
            peer: *remote,
            slots: tokio::sync::Semaphore::new(SEND_DEPTH as usize),
            broken: Mutex::new(None),
            timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// Creates a queue pair and connects it with the peer at the other end of
/// `stream` (which calls this too): both send their [`Endpoint`], move the
/// QP to ready-to-send and confirm it with one byte. Built on
/// [`VerbsContext::prepare`] and [`PreparedQp::complete`].
pub async fn connect(
    ctx: &Arc<VerbsContext>,
    stream: &mut TcpStream,
) -> Result<VerbsQueuePair, VerbsError> {
    let prepared = ctx.prepare()?;
    let local = prepared.endpoint();
    let peer = within(HANDSHAKE_TIMEOUT, async {
        stream.write_all(&local.encode()).await?;
        let mut b = [0u8; ENDPOINT_LEN];
        stream.read_exact(&mut b).await?;
        Endpoint::decode(&b)
    })
    .await?;
    let qp = prepared.complete(&peer)?;
    within(HANDSHAKE_TIMEOUT, async {
        stream.write_all(&[READY]).await?;
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await?;
        if b[0] == READY {
            Ok(())
        } else {
            Err(VerbsError::Protocol(
                "peer did not confirm its queue pair".into(),
            ))
        }
    })
    .await?;
    Ok(qp)
}

async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, VerbsError>>,
) -> Result<T, VerbsError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| VerbsError::TimedOut)?
}

fn random_psn() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h as u32) & MAX_24
}

fn to_init(qp: &QpHandle) -> io::Result<()> {
    let access = ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
        | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
        | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_READ;
    let mut attr = ffi::ibv_qp_attr {
        qp_state: ffi::ibv_qp_state::IBV_QPS_INIT,
        pkey_index: 0,
        port_num: PORT,
        qp_access_flags: access.0,
        ..Default::default()
    };
    use ffi::ibv_qp_attr_mask as M;
    qp.modify(
        &mut attr,
        M::IBV_QP_STATE | M::IBV_QP_PKEY_INDEX | M::IBV_QP_PORT | M::IBV_QP_ACCESS_FLAGS,
    )
}

fn to_rtr(qp: &QpHandle, ctx: &VerbsContext, local: &Endpoint, peer: &Endpoint) -> io::Result<()> {
    let dev = &ctx.pd.dev;
    let mut attr = ffi::ibv_qp_attr {
        qp_state: ffi::ibv_qp_state::IBV_QPS_RTR,
        path_mtu: u32::from(local.mtu.min(peer.mtu)),
        dest_qp_num: peer.qp_num,
        rq_psn: peer.psn,
        max_dest_rd_atomic: dev.max_rd_atomic,
        min_rnr_timer: 12,
        ..Default::default()
    };
    attr.ah_attr.dlid = peer.lid;
    attr.ah_attr.port_num = PORT;
    // RoCE has no LIDs: route by GID.
    if dev.ethernet || peer.lid == 0 {
        attr.ah_attr.is_global = 1;
        attr.ah_attr.grh.dgid = ffi::ibv_gid { raw: peer.gid };
        attr.ah_attr.grh.sgid_index = GID_INDEX;
        attr.ah_attr.grh.hop_limit = 64;
    }
    use ffi::ibv_qp_attr_mask as M;
    qp.modify(
        &mut attr,
        M::IBV_QP_STATE
            | M::IBV_QP_AV
            | M::IBV_QP_PATH_MTU
            | M::IBV_QP_DEST_QPN
            | M::IBV_QP_RQ_PSN
            | M::IBV_QP_MAX_DEST_RD_ATOMIC
            | M::IBV_QP_MIN_RNR_TIMER,
    )
}

fn to_rts(qp: &QpHandle, ctx: &VerbsContext, local: &Endpoint) -> io::Result<()> {
    let mut attr = ffi::ibv_qp_attr {
        qp_state: ffi::ibv_qp_state::IBV_QPS_RTS,
        sq_psn: local.psn,
        timeout: 14,
        retry_cnt: 7,
        rnr_retry: 7,
        max_rd_atomic: ctx.pd.dev.max_rd_atomic,
        ..Default::default()
    };
    use ffi::ibv_qp_attr_mask as M;
    qp.modify(
        &mut attr,
        M::IBV_QP_STATE
            | M::IBV_QP_SQ_PSN
            | M::IBV_QP_TIMEOUT
            | M::IBV_QP_RETRY_CNT
            | M::IBV_QP_RNR_RETRY
            | M::IBV_QP_MAX_QP_RD_ATOMIC,
    )
}

/// Checks a transfer of `range` of a `local_len`-byte region to or from
/// `remote`; its length as the work request carries it.
pub(super) fn check_transfer(
    local_len: usize,
    range: &Range<usize>,
    remote: &RemoteBuf,
) -> Result<u32, VerbsError> {
    if range.start > range.end || range.end > local_len {
        return Err(VerbsError::Invalid(format!(
            "range {range:?} is outside the {local_len}-byte local region"
        )));
    }
    let len = range.end - range.start;
    let len32 = u32::try_from(len)
        .map_err(|_| VerbsError::Invalid(format!("{len} bytes is too long for one transfer")))?;
    if len32 > remote.len {
        return Err(VerbsError::Invalid(format!(
            "{len} bytes do not fit the {}-byte remote buffer",
            remote.len
        )));
    }
    if remote.addr.checked_add(u64::from(len32)).is_none() {
        return Err(VerbsError::Invalid("remote address range wraps".into()));
    }
    Ok(len32)
}

impl VerbsQueuePair {
    /// The same queue pair with another bound on each transfer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The peer's endpoint.
    pub fn peer(&self) -> Endpoint {
        self.peer
    }

    /// The device context the queue pair (and the regions it may use as its
    /// local side) belongs to.
    pub fn context(&self) -> &Arc<VerbsContext> {
        &self.ctx
    }

    /// Whether the queue pair is in the error state (reconnect to go on).
    pub fn is_closed(&self) -> bool {
        self.broken.lock().is_some()
    }

    /// RDMA WRITE: copies `local[range]` to the start of `remote`.
    pub async fn write_remote(
        &self,
        local: &RegisteredRegion,
        range: Range<usize>,
        remote: RemoteBuf,
    ) -> Result<(), VerbsError> {
        self.transfer(ffi::ibv_wr_opcode::IBV_WR_RDMA_WRITE, local, range, remote)
            .await
    }

    /// RDMA READ: fills `local[range]` from the start of `remote`.
    pub async fn read_remote(
        &self,
        local: &mut RegisteredRegion,
        range: Range<usize>,
        remote: RemoteBuf,
    ) -> Result<(), VerbsError> {
        // The device writes through the region's registration; holding the
        // `&mut` for the whole transfer keeps everyone else off the bytes.
        self.transfer(ffi::ibv_wr_opcode::IBV_WR_RDMA_READ, local, range, remote)
            .await
    }

    async fn transfer(
        &self,
        opcode: ffi::ibv_wr_opcode::Type,
        local: &RegisteredRegion,
        range: Range<usize>,
        remote: RemoteBuf,
    ) -> Result<(), VerbsError> {
        let len = check_transfer(local.len(), &range, &remote)?;
        if !Arc::ptr_eq(local.context(), &self.ctx) {
            return Err(VerbsError::Invalid(
                "the region is registered with another device context".into(),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        self.check_open()?;
        let closed = |_| VerbsError::Closed("semaphore closed".into());
        let _qp_slot = self.slots.acquire().await.map_err(closed)?;
        let comps: &Completions = &self.ctx.completions;
        let _cq_slot = comps.slots.acquire().await.map_err(closed)?;
        self.check_open()?;
        let wr_id = comps.next_wr_id();
        let sge = ffi::ibv_sge {
            addr: local.remote().addr + range.start as u64,
            length: len,
            lkey: local.lkey(),
        };
        self.post(opcode, wr_id, sge, remote)?;
        // From here the device owns `local[range]` until the completion.
        let mut in_flight = InFlight {
            qp: self,
            wr_id,
            region: local,
            settled: false,
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(outcome) = comps.try_take(wr_id)? {
                in_flight.settled = true;
                if let Err(e) = &outcome {
                    self.fail(&e.to_string());
                }
                return outcome;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail("a transfer timed out");
                return Err(VerbsError::TimedOut);
            }
            tokio::task::yield_now().await;
        }
    }

    fn post(
        &self,
        opcode: ffi::ibv_wr_opcode::Type,
        wr_id: u64,
        mut sge: ffi::ibv_sge,
        remote: RemoteBuf,
    ) -> Result<(), VerbsError> {
        let mut wr = ffi::ibv_send_wr {
            wr_id,
            next: std::ptr::null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
            opcode,
            send_flags: ffi::ibv_send_flags::IBV_SEND_SIGNALED.0,
            ..Default::default()
        };
        wr.wr.rdma = ffi::ibv_send_wr__bindgen_ty_2__bindgen_ty_1 {
            remote_addr: remote.addr,
            rkey: remote.rkey,
        };
        let mut bad: *mut ffi::ibv_send_wr = std::ptr::null_mut();
        // SAFETY: `qp.raw` is a live QP whose context's ops table is filled
        // in by the provider (the inline ibv_post_send of verbs.h does this).
        let post = unsafe { (*(*self.qp.raw).context).ops.post_send };
        let Some(post) = post else {
            return Err(VerbsError::Io(io::Error::other(
                "provider has no post_send",
            )));
        };
        // SAFETY: `wr` and `sge` outlive the call (the provider copies them
        // into the send queue); the sge names registered memory of this PD
        // (checked by the caller), which stays registered until the
        // completion is reaped or the region is tainted.
        let rc = unsafe { post(self.qp.raw, &mut wr, &mut bad) };
        if rc != 0 {
            return Err(VerbsError::Io(io::Error::from_raw_os_error(rc)));
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), VerbsError> {
        match &*self.broken.lock() {
            Some(why) => Err(VerbsError::Closed(why.clone())),
            None => Ok(()),
        }
    }

    /// Moves the QP to the error state: outstanding work requests are
    /// flushed (completed with an error) and no new one is accepted.
    fn fail(&self, why: &str) {
        {
            let mut broken = self.broken.lock();
            if broken.is_some() {
                return;
            }
            *broken = Some(why.to_string());
        }
        tracing::warn!(qp_num = self.qp.qp_num(), "rdma queue pair failed: {why}");
        let mut attr = ffi::ibv_qp_attr {
            qp_state: ffi::ibv_qp_state::IBV_QPS_ERR,
            ..Default::default()
        };
        if let Err(e) = self
            .qp
            .modify(&mut attr, ffi::ibv_qp_attr_mask::IBV_QP_STATE)
        {
            tracing::warn!("moving the queue pair to the error state failed: {e}");
        }
    }
}

/// A posted work request. If the transfer ends without its completion
/// (timeout, poll error, or the future dropped), the device may still be
/// using the region: wait a little, then flush the QP and wait again, and
/// if the completion still has not come, taint the region so it is
/// deregistered instead of reused.
struct InFlight<'a> {
    qp: &'a VerbsQueuePair,
    wr_id: u64,
    region: &'a RegisteredRegion,
    settled: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let comps = &self.qp.ctx.completions;
        if comps.wait_blocking(self.wr_id, DROP_GRACE) {
            return;
        }
        self.qp
            .fail("a transfer was abandoned before its completion");
        if comps.wait_blocking(self.wr_id, DROP_GRACE) {
            return;
        }
        self.region.taint();
        comps.abandon(self.wr_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(len: u32) -> RemoteBuf {
        RemoteBuf {
            addr: 0x1000,
            len,
            rkey: 7,
        }
    }

    #[test]
    fn transfers_are_checked_before_posting() {
        assert_eq!(check_transfer(100, &(10..60), &remote(50)).ok(), Some(50));
        assert_eq!(check_transfer(100, &(0..0), &remote(0)).ok(), Some(0));
        // Past the local region, reversed, or longer than the remote buffer.
        assert!(check_transfer(100, &(50..101), &remote(1000)).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 60..10;
        assert!(check_transfer(100, &reversed, &remote(1000)).is_err());
        assert!(check_transfer(100, &(0..51), &remote(50)).is_err());
        let wrapping = RemoteBuf {
            addr: u64::MAX - 10,
            ..remote(100)
        };
        assert!(check_transfer(100, &(0..20), &wrapping).is_err());
    }
}
