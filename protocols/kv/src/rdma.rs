//! One-sided transfers of KV values over RDMA verbs (the `rdma` feature).
//!
//! RDMA_CONNECT gives a session a reliable-connected queue pair with its
//! client: the server creates one, connects it to the client's endpoint
//! record (ready to send) and only then answers with its own record, so the
//! client may complete its side and ask for transfers. Only the server
//! issues one-sided operations:
//! - GET_REMOTE copies the stored value into a registered buffer of the
//!   server and RDMA-WRITEs it into the client's buffer; the answer (the
//!   value's length) is sent after the write completed, so the bytes are in
//!   place when the client sees it;
//! - PUT_REMOTE RDMA-READs the value from the client's buffer into a
//!   registered buffer and stores a copy, answering like PUT.
//!
//! Any verbs failure answers `NotSupported` (nothing was stored, the
//! client's buffer may hold partial bytes) and a broken queue pair is
//! forgotten, so the client falls back to GET / PUT on this connection.

use crate::service::{ok, on_space, reply, status_of, store_mode, KvService, Session};
use crate::store::{PutMode, PutOutcome, Space};
use bytes::Bytes;
use nitrofs_kv_wire::messages as m;
use nitrofs_kv_wire::Status;
use nitrofs_rdma_transport::verbs::{Endpoint, VerbsError, VerbsQueuePair};
use nitrofs_rdma_transport::{Outgoing, RemoteBuf};
use std::sync::Arc;

fn remote_of(b: &m::RemoteBuf) -> RemoteBuf {
    RemoteBuf {
        addr: b.addr,
        len: b.len,
        rkey: b.rkey,
    }
}

/// RDMA_CONNECT: creates and connects the session's queue pair; answers the
/// server's endpoint record.
pub(crate) fn connect(
    svc: &KvService,
    session: &Session,
    req: &m::RdmaConnect,
) -> Result<Outgoing, Status> {
    let Some(ctx) = svc.verbs.as_ref() else {
        return Err(Status::NotSupported);
    };
    let peer = Endpoint::decode(&req.endpoint).map_err(|_| Status::BadRequest)?;
    let set_up_failed = |e: VerbsError| {
        tracing::warn!(peer = %session.peer, "rdma queue pair set-up failed: {e}");
        Status::NotSupported
    };
    let prepared = ctx.prepare().map_err(set_up_failed)?;
    let local = prepared.endpoint();
    // Ready to send before the client learns our endpoint (module docs).
    let qp = prepared.complete(&peer).map_err(set_up_failed)?;
    // A second RDMA_CONNECT replaces the first queue pair; transfers still
    // running on the old one hold it until they finish.
    *session.qp.lock() = Some(Arc::new(qp));
    tracing::debug!(peer = %session.peer, qp_num = local.qp_num, "kv session connected its rdma queue pair");
    Ok(ok(
        m::RdmaConnect {
            endpoint: local.encode(),
        }
        .encode(),
        Vec::new(),
    ))
}

/// The session's usable queue pair, if any.
fn session_qp(session: &Session) -> Option<Arc<VerbsQueuePair>> {
    session
        .qp
        .lock()
        .as_ref()
        .filter(|q| !q.is_closed())
        .cloned()
}

/// A transfer failed: answer `NotSupported` (the client retries over TCP)
/// and forget the queue pair if it broke.
fn transfer_failed(session: &Session, qp: &Arc<VerbsQueuePair>, e: VerbsError) -> Status {
    tracing::warn!(peer = %session.peer, "rdma transfer failed: {e}");
    if qp.is_closed() {
        let mut slot = session.qp.lock();
        if slot.as_ref().is_some_and(|q| Arc::ptr_eq(q, qp)) {
            *slot = None;
        }
    }
    Status::NotSupported
}

fn too_small(len: u64) -> Outgoing {
    Outgoing {
        status: Status::BufferTooSmall as u16,
        header: m::encode_u64(len),
        payload: Vec::new(),
    }
}

/// GET_REMOTE after its checks: RDMA WRITE of the value into the client's
/// buffer, then its length.
pub(crate) async fn get(
    svc: &KvService,
    session: &Session,
    space: Arc<Space>,
    g: &m::GetRemote<'_>,
) -> Result<Outgoing, Status> {
    let Some(qp) = session_qp(session) else {
        return Err(Status::NotSupported);
    };
    let max = u64::from(g.buf.len);
    if let Some(len) = space.value_len(g.key).filter(|&l| l > max) {
        return Ok(too_small(len));
    }
    let key = Bytes::copy_from_slice(g.key);
    let Some(value) = on_space(&space, move |s| s.get(&key))
        .await?
        .map_err(|e| status_of(&e))?
    else {
        return Err(Status::NotFound);
    };
    let len = value.len() as u64;
    // The value may have been replaced by a longer one meanwhile.
    if len > max {
        return Ok(too_small(len));
    }
    if !value.is_empty() {
        let mut src = qp.context().register(value.len()).map_err(|e| {
            tracing::warn!("cannot register {len} bytes for an rdma write: {e}");
            Status::NotSupported
        })?;
        src.copy_from_slice(&value);
        qp.write_remote(&src, 0..value.len(), remote_of(&g.buf))
            .await
            .map_err(|e| transfer_failed(session, &qp, e))?;
    }
    svc.metrics.bytes_out.add(len);
    Ok(ok(m::encode_u64(len), Vec::new()))
}

/// PUT_REMOTE after its checks (and the size limit): RDMA READ of the value
/// from the client's buffer, then a PUT of it.
pub(crate) async fn put(
    svc: &KvService,
    session: &Session,
    space: Arc<Space>,
    p: &m::PutRemote<'_>,
) -> Result<Outgoing, Status> {
    let Some(qp) = session_qp(session) else {
        return Err(Status::NotSupported);
    };
    let mode = store_mode(p.mode);
    // KV-cache blocks are immutable: skip the transfer of a block already held.
    if mode == PutMode::IfAbsent && space.exists(p.key) {
        return Ok(reply(Status::Exists));
    }
    let len = p.buf.len as usize;
    let value = if len == 0 {
        Bytes::new()
    } else {
        let mut dst = qp.context().register(len).map_err(|e| {
            tracing::warn!("cannot register {len} bytes for an rdma read: {e}");
            Status::NotSupported
        })?;
        qp.read_remote(&mut dst, 0..len, remote_of(&p.buf))
            .await
            .map_err(|e| transfer_failed(session, &qp, e))?;
        // The registration goes back to the cache; the store keeps a copy.
        Bytes::copy_from_slice(&dst)
    };
    svc.metrics.bytes_in.add(len as u64);
    let key = Bytes::copy_from_slice(p.key);
    let outcome = on_space(&space, move |s| s.put(&key, value, mode)).await?;
    match outcome.map_err(|e| status_of(&e))? {
        PutOutcome::Stored => Ok(reply(Status::Ok)),
        PutOutcome::Exists => Ok(reply(Status::Exists)),
    }
}
