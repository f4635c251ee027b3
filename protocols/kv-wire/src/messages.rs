//! Request and response headers of every message in [`crate::msg`]. Each
//! has `encode` (into an [`Enc`]) and `decode` (from a [`Dec`], bounded, and
//! requiring the header to end exactly after its last field).

use crate::auth::{MAC_LEN, NONCE_LEN};
use crate::codec::{Dec, DecodeError, Enc};
use crate::routing::Routing;
use crate::{MAX_BATCH, MAX_KEY, MAX_SCAN, MAX_SPACE_NAME};

/// Longest access key accepted in HELLO.
pub const MAX_ACCESS_KEY: usize = 128;

/// HELLO request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The client's protocol version.
    pub version: u16,
    /// Who the client claims to be.
    pub access_key: &'a str,
}

impl<'a> Hello<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u16(self.version).str(self.access_key);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let h = Self {
            version: d.u16()?,
            access_key: d.str("access key", MAX_ACCESS_KEY)?,
        };
        d.end()?;
        Ok(h)
    }
}

/// HELLO response: the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The server's protocol version.
    pub version: u16,
    /// Fresh random bytes to MAC.
    pub nonce: [u8; NONCE_LEN],
}

impl Challenge {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u16(self.version).raw(&self.nonce);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let c = Self {
            version: d.u16()?,
            nonce: d.raw()?,
        };
        d.end()?;
        Ok(c)
    }
}

/// AUTH request: the answer to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `auth::answer(secret, nonce, access_key)`.
    pub mac: [u8; MAC_LEN],
}

impl Auth {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        self.mac.to_vec()
    }
    /// Decodes the header.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let a = Self { mac: d.raw()? };
        d.end()?;
        Ok(a)
    }
}

/// Encodes a routing table as a whole header (AUTH and ROUTING replies).
pub fn encode_routing(r: &Routing) -> Vec<u8> {
    let mut e = Enc::new();
    r.encode(&mut e);
    e.finish()
}

/// Decodes a whole-header routing table.
pub fn decode_routing(b: &[u8]) -> Result<Routing, DecodeError> {
    let mut d = Dec::new(b);
    let r = Routing::decode(&mut d)?;
    d.end()?;
    Ok(r)
}

/// What every data request starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// Version of the routing table the client routed with.
    pub routing_version: u64,
    /// The KV space.
    pub space: &'a str,
}

impl<'a> Target<'a> {
    fn encode(&self, e: &mut Enc) {
        e.u64(self.routing_version).str(self.space);
    }
    fn decode(d: &mut Dec<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            routing_version: d.u64()?,
            space: d.str("space name", MAX_SPACE_NAME)?,
        })
    }
}

/// Whether a put may replace a live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace any existing value.
    Overwrite = 0,
    /// Store only if the key is absent (KV-cache blocks are immutable).
    IfAbsent = 1,
}

impl PutMode {
    fn decode(d: &mut Dec<'_>) -> Result<Self, DecodeError> {
        match d.u8()? {
            0 => Ok(PutMode::Overwrite),
            1 => Ok(PutMode::IfAbsent),
            _ => Err(DecodeError::Invalid("put mode")),
        }
    }
}

/// PUT request; the value is the frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// The key.
    pub key: &'a [u8],
    /// Overwrite or put-if-absent.
    pub mode: PutMode,
}

impl<'a> Put<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.bytes(self.key).u8(self.mode as u8);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let p = Self {
            target: Target::decode(&mut d)?,
            key: d.bytes("key", MAX_KEY)?,
            mode: PutMode::decode(&mut d)?,
        };
        d.end()?;
        Ok(p)
    }
}

/// GET, DELETE and EXISTS request. `max_len` (GET only; 0 elsewhere) is
/// the caller's buffer size: a longer value answers `BufferTooSmall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOp<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// The key.
    pub key: &'a [u8],
    /// Largest value the caller can take.
    pub max_len: u64,
}

impl<'a> KeyOp<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.bytes(self.key).u64(self.max_len);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let k = Self {
            target: Target::decode(&mut d)?,
            key: d.bytes("key", MAX_KEY)?,
            max_len: d.u64()?,
        };
        d.end()?;
        Ok(k)
    }
}

/// Length of a verbs endpoint record (the transport's format, opaque here).
pub const ENDPOINT_LEN: usize = 32;

/// RDMA_CONNECT request (the client's verbs endpoint record) and reply (the
/// server's). The record's contents are the transport's business
/// (`nitrofs_rdma_transport::verbs::Endpoint`); this only checks its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdmaConnect {
    /// The encoded endpoint record.
    pub endpoint: [u8; ENDPOINT_LEN],
}

impl RdmaConnect {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        self.endpoint.to_vec()
    }
    /// Decodes the header.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let c = Self { endpoint: d.raw()? };
        d.end()?;
        Ok(c)
    }
}

/// A registered buffer of the client, as a one-sided transfer of the server
/// addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteBuf {
    /// Virtual address of its first byte in the client's process.
    pub addr: u64,
    /// Usable bytes from `addr`.
    pub len: u32,
    /// Remote key of the client's memory registration.
    pub rkey: u32,
}

impl RemoteBuf {
    fn encode(&self, e: &mut Enc) {
        e.u64(self.addr).u32(self.len).u32(self.rkey);
    }
    fn decode(d: &mut Dec<'_>) -> Result<Self, DecodeError> {
        let b = Self {
            addr: d.u64()?,
            len: d.u32()?,
            rkey: d.u32()?,
        };
        if b.addr.checked_add(u64::from(b.len)).is_none() {
            return Err(DecodeError::Invalid("remote buffer range"));
        }
        Ok(b)
    }
}

/// GET_REMOTE request: the server RDMA-WRITEs the value to the start of
/// `buf` and answers its length (a u64 header, no payload); a value longer
/// than `buf.len` answers `BufferTooSmall` with the length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRemote<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// The key.
    pub key: &'a [u8],
    /// Where the value goes (its length is the largest value accepted).
    pub buf: RemoteBuf,
}

impl<'a> GetRemote<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.bytes(self.key);
        self.buf.encode(&mut e);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let g = Self {
            target: Target::decode(&mut d)?,
            key: d.bytes("key", MAX_KEY)?,
            buf: RemoteBuf::decode(&mut d)?,
        };
        d.end()?;
        Ok(g)
    }
}

/// PUT_REMOTE request: the value is the `buf.len` bytes at `buf`, which the
/// server RDMA-READs; answered like PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRemote<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// The key.
    pub key: &'a [u8],
    /// Overwrite or put-if-absent.
    pub mode: PutMode,
    /// Where the value is (exactly `buf.len` bytes).
    pub buf: RemoteBuf,
}

impl<'a> PutRemote<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.bytes(self.key).u8(self.mode as u8);
        self.buf.encode(&mut e);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let p = Self {
            target: Target::decode(&mut d)?,
            key: d.bytes("key", MAX_KEY)?,
            mode: PutMode::decode(&mut d)?,
            buf: RemoteBuf::decode(&mut d)?,
        };
        d.end()?;
        Ok(p)
    }
}

/// BATCH_GET, BATCH_EXISTS, BATCH_DELETE and PREFIX_MATCH request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// The keys, in the caller's order.
    pub keys: Vec<&'a [u8]>,
}

impl<'a> Keys<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.u32(self.keys.len() as u32);
        for k in &self.keys {
            e.bytes(k);
        }
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let target = Target::decode(&mut d)?;
        let n = d.count("batch", MAX_BATCH, 4)?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(d.bytes("key", MAX_KEY)?);
        }
        d.end()?;
        Ok(Self { target, keys })
    }
}

/// BATCH_PUT request: keys and value lengths; the values are the frame
/// payload, concatenated in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPut<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// Overwrite or put-if-absent, for every item.
    pub mode: PutMode,
    /// `(key, value length)` pairs.
    pub items: Vec<(&'a [u8], u64)>,
}

impl<'a> BatchPut<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.u8(self.mode as u8).u32(self.items.len() as u32);
        for (k, len) in &self.items {
            e.bytes(k).u64(*len);
        }
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let target = Target::decode(&mut d)?;
        let mode = PutMode::decode(&mut d)?;
        let n = d.count("batch", MAX_BATCH, 12)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push((d.bytes("key", MAX_KEY)?, d.u64()?));
        }
        d.end()?;
        Ok(Self {
            target,
            mode,
            items,
        })
    }
}

/// SCAN request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
    /// Only keys starting with this.
    pub prefix: &'a [u8],
    /// Continue after this key (the last key of the previous page).
    pub start_after: Option<&'a [u8]>,
    /// Most keys in the page.
    pub limit: u32,
}

impl<'a> Scan<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.bytes(self.prefix);
        match self.start_after {
            Some(k) => e.u8(1).bytes(k),
            None => e.u8(0),
        };
        e.u32(self.limit);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let target = Target::decode(&mut d)?;
        let prefix = d.bytes("prefix", MAX_KEY)?;
        let start_after = if d.bool()? {
            Some(d.bytes("start_after", MAX_KEY)?)
        } else {
            None
        };
        let limit = d.u32()?;
        if limit == 0 || limit > MAX_SCAN {
            return Err(DecodeError::Invalid("scan limit"));
        }
        d.end()?;
        Ok(Self {
            target,
            prefix,
            start_after,
            limit,
        })
    }
}

/// STAT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatReq<'a> {
    /// Space and routing version.
    pub target: Target<'a>,
}

impl<'a> StatReq<'a> {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        self.target.encode(&mut e);
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let target = Target::decode(&mut d)?;
        d.end()?;
        Ok(Self { target })
    }
}

/// Encodes a single u64 (GET reply: the value length).
pub fn encode_u64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Decodes a header holding a single u64.
pub fn decode_u64(b: &[u8]) -> Result<u64, DecodeError> {
    let mut d = Dec::new(b);
    let v = d.u64()?;
    d.end()?;
    Ok(v)
}

/// Encodes a list of small numbers (batch statuses, booleans) as u16s.
pub fn encode_u16s(v: &[u16]) -> Vec<u8> {
    let mut e = Enc::new();
    e.u32(v.len() as u32);
    for x in v {
        e.u16(*x);
    }
    e.finish()
}

/// Decodes a list written by [`encode_u16s`].
pub fn decode_u16s(b: &[u8]) -> Result<Vec<u16>, DecodeError> {
    let mut d = Dec::new(b);
    let n = d.count("list", MAX_BATCH, 2)?;
    let v = (0..n).map(|_| d.u16()).collect::<Result<Vec<_>, _>>()?;
    d.end()?;
    Ok(v)
}

/// BATCH_GET reply: per key its status and value length; the payload holds
/// the `Ok` values back to back in key order.
pub fn encode_batch_get(items: &[(u16, u64)]) -> Vec<u8> {
    let mut e = Enc::new();
    e.u32(items.len() as u32);
    for (s, len) in items {
        e.u16(*s).u64(*len);
    }
    e.finish()
}

/// Decodes a BATCH_GET reply header.
pub fn decode_batch_get(b: &[u8]) -> Result<Vec<(u16, u64)>, DecodeError> {
    let mut d = Dec::new(b);
    let n = d.count("batch", MAX_BATCH, 10)?;
    let v = (0..n)
        .map(|_| Ok((d.u16()?, d.u64()?)))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    d.end()?;
    Ok(v)
}

/// SCAN reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// `(key, value length)` in byte order of keys.
    pub entries: Vec<(Vec<u8>, u64)>,
    /// Whether more keys follow (ask again with `start_after` = last key).
    pub more: bool,
}

impl ScanPage {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u8(u8::from(self.more)).u32(self.entries.len() as u32);
        for (k, len) in &self.entries {
            e.bytes(k).u64(*len);
        }
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let more = d.bool()?;
        let n = d.count("scan", MAX_SCAN as usize, 12)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push((d.bytes("key", MAX_KEY)?.to_vec(), d.u64()?));
        }
        d.end()?;
        Ok(Self { entries, more })
    }
}

/// STAT reply: a space's settings and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpaceStat {
    /// Capacity in bytes (keys + values).
    pub capacity: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Live keys.
    pub keys: u64,
    /// Lookups that found a value.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Values evicted for capacity.
    pub evictions: u64,
    /// Values dropped because their TTL passed.
    pub expirations: u64,
    /// Values stored.
    pub puts: u64,
    /// Keys deleted.
    pub deletes: u64,
    /// Time to live in seconds (0: none).
    pub ttl_secs: u64,
    /// `true` if values survive restart.
    pub durable: bool,
}

impl SpaceStat {
    /// Encodes the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::new();
        for v in [
            self.capacity,
            self.bytes,
            self.keys,
            self.hits,
            self.misses,
            self.evictions,
            self.expirations,
            self.puts,
            self.deletes,
            self.ttl_secs,
        ] {
            e.u64(v);
        }
        e.u8(u8::from(self.durable));
        e.finish()
    }
    /// Decodes the header.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Dec::new(b);
        let s = Self {
            capacity: d.u64()?,
            bytes: d.u64()?,
            keys: d.u64()?,
            hits: d.u64()?,
            misses: d.u64()?,
            evictions: d.u64()?,
            expirations: d.u64()?,
            puts: d.u64()?,
            deletes: d.u64()?,
            ttl_secs: d.u64()?,
            durable: d.bool()?,
        };
        d.end()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Target<'static> = Target {
        routing_version: 3,
        space: "cache",
    };

    #[test]
    fn every_request_roundtrips() {
        let p = Put {
            target: T,
            key: b"k",
            mode: PutMode::IfAbsent,
        };
        assert_eq!(Put::decode(&p.encode()), Ok(p.clone()));
        let k = KeyOp {
            target: T,
            key: b"key",
            max_len: 99,
        };
        assert_eq!(KeyOp::decode(&k.encode()), Ok(k.clone()));
        let ks = Keys {
            target: T,
            keys: vec![b"a", b"bb", b""],
        };
        assert_eq!(Keys::decode(&ks.encode()), Ok(ks.clone()));
        let bp = BatchPut {
            target: T,
            mode: PutMode::Overwrite,
            items: vec![(b"a", 1), (b"b", 2)],
        };
        assert_eq!(BatchPut::decode(&bp.encode()), Ok(bp.clone()));
        let s = Scan {
            target: T,
            prefix: b"p/",
            start_after: Some(b"p/1"),
            limit: 10,
        };
        assert_eq!(Scan::decode(&s.encode()), Ok(s.clone()));
        let h = Hello {
            version: 1,
            access_key: "AK",
        };
        assert_eq!(Hello::decode(&h.encode()), Ok(h.clone()));
        let a = Auth { mac: [5; 32] };
        assert_eq!(Auth::decode(&a.encode()), Ok(a.clone()));
        let st = StatReq { target: T };
        assert_eq!(StatReq::decode(&st.encode()), Ok(st.clone()));
        let rc = RdmaConnect {
            endpoint: [3; ENDPOINT_LEN],
        };
        assert_eq!(RdmaConnect::decode(&rc.encode()), Ok(rc.clone()));
        let g = GetRemote {
            target: T,
            key: b"block",
            buf: BUF,
        };
        assert_eq!(GetRemote::decode(&g.encode()), Ok(g.clone()));
        let p = PutRemote {
            target: T,
            key: b"block",
            mode: PutMode::IfAbsent,
            buf: BUF,
        };
        assert_eq!(PutRemote::decode(&p.encode()), Ok(p.clone()));
    }

    const BUF: RemoteBuf = RemoteBuf {
        addr: 0x7f00_dead_0000,
        len: 4 << 20,
        rkey: 0x1234_5678,
    };

    #[test]
    fn remote_headers_lay_out_the_buffer_last() {
        let g = GetRemote {
            target: T,
            key: b"k",
            buf: BUF,
        }
        .encode();
        let tail = &g[g.len() - 16..];
        assert_eq!(&tail[0..8], &BUF.addr.to_le_bytes());
        assert_eq!(&tail[8..12], &BUF.len.to_le_bytes());
        assert_eq!(&tail[12..16], &BUF.rkey.to_le_bytes());
        let p = PutRemote {
            target: T,
            key: b"k",
            mode: PutMode::Overwrite,
            buf: BUF,
        }
        .encode();
        assert_eq!(p[p.len() - 17], PutMode::Overwrite as u8);
        assert_eq!(&p[p.len() - 16..], tail);
    }

    #[test]
    fn truncated_or_padded_remote_headers_are_rejected() {
        let g = GetRemote {
            target: T,
            key: b"key",
            buf: BUF,
        }
        .encode();
        for cut in 0..g.len() {
            assert!(GetRemote::decode(&g[..cut]).is_err(), "get cut {cut}");
        }
        let mut padded = g.clone();
        padded.push(0);
        assert_eq!(GetRemote::decode(&padded), Err(DecodeError::Trailing(1)));
        let p = PutRemote {
            target: T,
            key: b"key",
            mode: PutMode::IfAbsent,
            buf: BUF,
        }
        .encode();
        for cut in 0..p.len() {
            assert!(PutRemote::decode(&p[..cut]).is_err(), "put cut {cut}");
        }
        let mut padded = p.clone();
        padded.push(0);
        assert_eq!(PutRemote::decode(&padded), Err(DecodeError::Trailing(1)));
        let rc = RdmaConnect {
            endpoint: [1; ENDPOINT_LEN],
        }
        .encode();
        for len in [0, 4, ENDPOINT_LEN - 1] {
            assert!(RdmaConnect::decode(&rc[..len]).is_err(), "{len} bytes");
        }
        let mut long = rc.clone();
        long.push(0);
        assert_eq!(RdmaConnect::decode(&long), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn bad_remote_fields_are_rejected() {
        let wrapping = RemoteBuf {
            addr: u64::MAX - 10,
            len: 11,
            rkey: 1,
        };
        let g = GetRemote {
            target: T,
            key: b"k",
            buf: wrapping,
        };
        assert_eq!(
            GetRemote::decode(&g.encode()),
            Err(DecodeError::Invalid("remote buffer range"))
        );
        let edge = RemoteBuf {
            len: 10,
            ..wrapping
        };
        let g = GetRemote {
            target: T,
            key: b"k",
            buf: edge,
        };
        assert!(
            GetRemote::decode(&g.encode()).is_ok(),
            "ends at the last byte"
        );
        let mut p = PutRemote {
            target: T,
            key: b"k",
            mode: PutMode::IfAbsent,
            buf: BUF,
        }
        .encode();
        let mode_at = p.len() - 17;
        p[mode_at] = 2;
        assert_eq!(PutRemote::decode(&p), Err(DecodeError::Invalid("put mode")));
        let long = vec![b'x'; MAX_KEY + 1];
        let g = GetRemote {
            target: T,
            key: &long,
            buf: BUF,
        };
        assert!(matches!(
            GetRemote::decode(&g.encode()),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn every_reply_roundtrips() {
        let c = Challenge {
            version: 1,
            nonce: [9; 32],
        };
        assert_eq!(Challenge::decode(&c.encode()), Ok(c));
        assert_eq!(decode_u64(&encode_u64(77)), Ok(77));
        assert_eq!(decode_u16s(&encode_u16s(&[0, 2, 14])), Ok(vec![0, 2, 14]));
        assert_eq!(
            decode_batch_get(&encode_batch_get(&[(0, 5), (1, 0)])),
            Ok(vec![(0, 5), (1, 0)])
        );
        let page = ScanPage {
            entries: vec![(b"a".to_vec(), 3)],
            more: true,
        };
        assert_eq!(ScanPage::decode(&page.encode()), Ok(page));
        let s = SpaceStat {
            capacity: 1,
            bytes: 2,
            keys: 3,
            durable: true,
            ..Default::default()
        };
        assert_eq!(SpaceStat::decode(&s.encode()), Ok(s));
    }

    #[test]
    fn truncated_or_padded_headers_are_rejected() {
        let k = KeyOp {
            target: T,
            key: b"key",
            max_len: 99,
        }
        .encode();
        for cut in 0..k.len() {
            assert!(KeyOp::decode(&k[..cut]).is_err(), "cut {cut}");
        }
        let mut padded = k.clone();
        padded.push(0);
        assert_eq!(KeyOp::decode(&padded), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn out_of_range_fields_are_rejected() {
        let mut p = Put {
            target: T,
            key: b"k",
            mode: PutMode::IfAbsent,
        }
        .encode();
        let last = p.len() - 1;
        p[last] = 2;
        assert_eq!(Put::decode(&p), Err(DecodeError::Invalid("put mode")));
        let s = Scan {
            target: T,
            prefix: b"",
            start_after: None,
            limit: MAX_SCAN + 1,
        };
        assert!(Scan::decode(&s.encode()).is_err());
        let long = vec![b'x'; MAX_KEY + 1];
        let k = KeyOp {
            target: T,
            key: &long,
            max_len: 0,
        };
        assert!(matches!(
            KeyOp::decode(&k.encode()),
            Err(DecodeError::TooLong { .. })
        ));
    }
}
