//! The native KV protocol on the wire, shared by the server (`nitrofs-kv`)
//! and the client (`nitrofs-kv-client`).
//!
//! It owns the numbered message ids ([`msg`], stable and never reused), the
//! status codes ([`Status`]), the encoding of every request and response
//! header ([`messages`]), the authentication handshake's MAC ([`auth`]) and
//! the routing table that maps `(space, key)` to a data node ([`routing`]).
//! Frames, buffers and sockets are the transport's (`nitrofs-rdma-transport`);
//! storage is the server's. This crate does no I/O.
//!
//! A session: `HELLO(access key)` → nonce; `AUTH(HMAC-SHA256(secret,
//! context ‖ nonce ‖ access key))` → routing table; then data requests, each
//! naming the routing version it was routed with. Values travel as frame
//! payload, never inside headers — or, when both ends have RDMA verbs, by a
//! one-sided transfer the server issues: `RDMA_CONNECT` (after AUTH) pairs a
//! queue pair with the session, then `GET_REMOTE` / `PUT_REMOTE` name a
//! registered buffer of the client ([`messages::RemoteBuf`]) that the server
//! RDMA-WRITEs the value into or RDMA-READs it from. A server without verbs
//! answers those three with [`Status::NotSupported`] and the client uses
//! GET / PUT instead.

pub mod auth;
pub mod codec;
pub mod messages;
pub mod routing;

pub use codec::{Dec, DecodeError, Enc};
pub use routing::{key_hash, Node, Routing};

/// Protocol version spoken by this crate (sent in HELLO).
pub const PROTOCOL_VERSION: u16 = 1;

/// Numbered message ids. A number, once released, keeps its meaning for
/// ever; retired messages leave a gap.
pub mod msg {
    /// Start a session: access key in, challenge nonce out.
    pub const HELLO: u16 = 1;
    /// Prove the secret: MAC in, routing table out.
    pub const AUTH: u16 = 2;
    /// Fetch the current routing table (after a StaleRouting reply).
    pub const ROUTING: u16 = 3;
    /// Pair an RDMA queue pair with the session: the client's verbs
    /// endpoint record in, the server's out (`NotSupported` without verbs).
    pub const RDMA_CONNECT: u16 = 4;
    /// Store one value (payload), overwriting or only if absent.
    pub const PUT: u16 = 10;
    /// Read one value into the response payload.
    pub const GET: u16 = 11;
    /// Remove one key.
    pub const DELETE: u16 = 12;
    /// Whether one key exists.
    pub const EXISTS: u16 = 13;
    /// Read one value by RDMA WRITE into the client's registered buffer;
    /// the response carries only the length.
    pub const GET_REMOTE: u16 = 16;
    /// Store one value the server RDMA-READs from the client's registered
    /// buffer; answered like PUT.
    pub const PUT_REMOTE: u16 = 17;
    /// Store N values (concatenated payload) in one round trip.
    pub const BATCH_PUT: u16 = 20;
    /// Read N values in one round trip.
    pub const BATCH_GET: u16 = 21;
    /// Which of N keys exist.
    pub const BATCH_EXISTS: u16 = 22;
    /// Remove N keys.
    pub const BATCH_DELETE: u16 = 23;
    /// Length of the longest leading run of keys that exist.
    pub const PREFIX_MATCH: u16 = 24;
    /// List keys by prefix, one page at a time.
    pub const SCAN: u16 = 30;
    /// A space's configuration and counters.
    pub const STAT: u16 = 31;
}

/// Outcome of a request (the frame's status field). Stable numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The key does not exist (or has expired).
    NotFound = 1,
    /// Put-if-absent found a live value; nothing changed.
    Exists = 2,
    /// The space cannot hold the value even after eviction.
    NoSpace = 3,
    /// The value exceeds the 64 MiB limit.
    TooLarge = 4,
    /// The value is longer than the caller's buffer; the header carries its length.
    BufferTooSmall = 5,
    /// No space of that name.
    NoSuchSpace = 6,
    /// The session has not authenticated (or the credentials were wrong).
    Unauthenticated = 7,
    /// The identity may not do this in this space.
    AccessDenied = 8,
    /// The request was routed with an old routing table; refresh and retry.
    StaleRouting = 9,
    /// The request header is malformed or a field is out of range.
    BadRequest = 10,
    /// The message id is not known to this server.
    UnknownMessage = 11,
    /// The server is overloaded; retry later.
    Busy = 12,
    /// The server failed (disk error…); details are in its log.
    Internal = 13,
    /// A batch item not processed because the response was full; ask again.
    NotSent = 14,
    /// The key is empty or longer than the limit.
    KeyTooLong = 15,
    /// The server (or this session) cannot do what was asked, e.g. one-sided
    /// RDMA transfers without verbs or after its queue pair failed; nothing
    /// changed, use the two-sided message instead.
    NotSupported = 16,
}

impl Status {
    /// Decodes a status number; unknown numbers are `None`.
    pub fn from_u16(v: u16) -> Option<Self> {
        use Status::*;
        Some(match v {
            0 => Ok,
            1 => NotFound,
            2 => Exists,
            3 => NoSpace,
            4 => TooLarge,
            5 => BufferTooSmall,
            6 => NoSuchSpace,
            7 => Unauthenticated,
            8 => AccessDenied,
            9 => StaleRouting,
            10 => BadRequest,
            11 => UnknownMessage,
            12 => Busy,
            13 => Internal,
            14 => NotSent,
            15 => KeyTooLong,
            16 => NotSupported,
            _ => return None,
        })
    }

    /// Whether the same request may succeed if simply sent again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Status::Busy | Status::StaleRouting | Status::NotSent)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Ok => "ok",
            Status::NotFound => "not found",
            Status::Exists => "key exists",
            Status::NoSpace => "no space in the KV space",
            Status::TooLarge => "value too large (limit 64 MiB)",
            Status::BufferTooSmall => "value larger than the buffer",
            Status::NoSuchSpace => "no such KV space",
            Status::Unauthenticated => "not authenticated",
            Status::AccessDenied => "access denied",
            Status::StaleRouting => "stale routing table",
            Status::BadRequest => "malformed request",
            Status::UnknownMessage => "unknown message",
            Status::Busy => "server busy",
            Status::Internal => "internal server error",
            Status::NotSent => "not sent (response full)",
            Status::KeyTooLong => "key empty or too long",
            Status::NotSupported => "not supported by the server or session",
        };
        f.write_str(s)
    }
}

/// Largest value a space stores.
pub const MAX_VALUE: u64 = 64 * 1024 * 1024;
/// Longest key.
pub const MAX_KEY: usize = 1024;
/// Most keys in one batch request.
pub const MAX_BATCH: usize = 4096;
/// Most keys in one scan page.
pub const MAX_SCAN: u32 = 10_000;
/// Longest space name.
pub const MAX_SPACE_NAME: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_roundtrip_and_display_in_one_line() {
        for v in 0..=16u16 {
            let s = Status::from_u16(v).expect("known status");
            assert_eq!(s as u16, v);
            let text = s.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{v}: {text:?}");
        }
        assert_eq!(Status::from_u16(17), None);
        assert_eq!(Status::NotSupported as u16, 16);
        assert!(!Status::NotSupported.is_retryable());
    }

    #[test]
    fn message_ids_are_distinct_and_stable() {
        let ids = [
            msg::HELLO,
            msg::AUTH,
            msg::ROUTING,
            msg::RDMA_CONNECT,
            msg::PUT,
            msg::GET,
            msg::DELETE,
            msg::EXISTS,
            msg::GET_REMOTE,
            msg::PUT_REMOTE,
            msg::BATCH_PUT,
            msg::BATCH_GET,
            msg::BATCH_EXISTS,
            msg::BATCH_DELETE,
            msg::PREFIX_MATCH,
            msg::SCAN,
            msg::STAT,
        ];
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert_eq!(
            (msg::RDMA_CONNECT, msg::GET_REMOTE, msg::PUT_REMOTE),
            (4, 16, 17)
        );
    }
}
