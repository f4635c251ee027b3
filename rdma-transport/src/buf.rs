//! Buffers that payloads land in: a pool so that steady-state traffic
//! allocates nothing, and registered memory regions for caller-owned
//! destinations (the buffer a one-sided GET writes into).

pub use nitrofs_common::buf::{BufPool, PooledBuf};
use std::ops::{Deref, DerefMut};

/// A peer's registered buffer, as a one-sided transfer addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteBuf {
    /// Virtual address of the first byte in the peer's process.
    pub addr: u64,
    /// Bytes usable from `addr`.
    pub len: u32,
    /// The remote key of the peer's memory region.
    pub rkey: u32,
}

/// Caller-owned memory a transfer lands in or is taken from: the
/// destination of a one-sided read (a GET's value lands here with no copy)
/// or the source of a one-sided write. It is moved into the operation and
/// handed back with its result, as a posted buffer is owned by the NIC until
/// completion.
///
/// Either plain memory ([`MemoryRegion::new`]), which only the TCP backend
/// can fill (it reads the socket straight into it), or, with the `rdma`
/// feature, memory registered with a verbs device
/// (`MemoryRegion::registered`), which a peer can also reach with RDMA
/// READ / WRITE through [`MemoryRegion::remote`]. Both work over TCP.
#[derive(Debug)]
pub struct MemoryRegion {
    backing: Backing,
    id: u32,
}

#[derive(Debug)]
enum Backing {
    Plain(Vec<u8>),
    #[cfg(feature = "rdma")]
    Registered(crate::verbs::RegisteredRegion),
}

fn next_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl MemoryRegion {
    /// A plain region of `len` zeroed bytes.
    pub fn new(len: usize) -> Self {
        Self {
            backing: Backing::Plain(vec![0u8; len]),
            id: next_id(),
        }
    }

    /// A region over verbs-registered memory (its contents are whatever the
    /// registration held: reused registrations are not cleared).
    #[cfg(feature = "rdma")]
    pub fn registered(region: crate::verbs::RegisteredRegion) -> Self {
        Self {
            backing: Backing::Registered(region),
            id: next_id(),
        }
    }

    /// The registered buffer, if the region is one.
    #[cfg(feature = "rdma")]
    pub fn as_registered(&self) -> Option<&crate::verbs::RegisteredRegion> {
        match &self.backing {
            Backing::Registered(r) => Some(r),
            Backing::Plain(_) => None,
        }
    }

    /// The registered buffer, mutably, if the region is one.
    #[cfg(feature = "rdma")]
    pub fn as_registered_mut(&mut self) -> Option<&mut crate::verbs::RegisteredRegion> {
        match &mut self.backing {
            Backing::Registered(r) => Some(r),
            Backing::Plain(_) => None,
        }
    }

    /// How a peer addresses the region with a one-sided transfer: `None`
    /// for plain memory (only the TCP backend can fill it).
    pub fn remote(&self) -> Option<RemoteBuf> {
        match &self.backing {
            Backing::Plain(_) => None,
            #[cfg(feature = "rdma")]
            Backing::Registered(r) => Some(r.remote()),
        }
    }

    /// Whether the region is registered with a verbs device.
    pub fn is_registered(&self) -> bool {
        self.remote().is_some()
    }

    /// The region's id: unique in the process, kept when it is handed back.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.deref().len()
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(feature = "rdma")]
impl From<crate::verbs::RegisteredRegion> for MemoryRegion {
    fn from(region: crate::verbs::RegisteredRegion) -> Self {
        Self::registered(region)
    }
}

impl Deref for MemoryRegion {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.backing {
            Backing::Plain(v) => v,
            #[cfg(feature = "rdma")]
            Backing::Registered(r) => r,
        }
    }
}

impl DerefMut for MemoryRegion {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.backing {
            Backing::Plain(v) => v,
            #[cfg(feature = "rdma")]
            Backing::Registered(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_regions_have_no_remote_address_and_distinct_ids() {
        let mut a = MemoryRegion::new(10);
        let b = MemoryRegion::new(0);
        assert_eq!(a.remote(), None);
        assert!(!a.is_registered());
        assert_eq!(a.len(), 10);
        assert!(b.is_empty());
        assert_ne!(a.id(), b.id());
        a[9] = 3;
        assert_eq!(a[9], 3);
        assert!(a.iter().take(9).all(|&x| x == 0));
    }
}
