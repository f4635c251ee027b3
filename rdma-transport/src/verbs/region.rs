//! Registered memory: buffers pinned and registered with the device once,
//! then reused from a per-size-class free list (registration costs a
//! syscall and page pinning, far too much per KV block).

use super::device::{PdHandle, VerbsContext};
use super::{ffi, RemoteBuf, VerbsError};
use parking_lot::Mutex;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The smallest registration: 4 KiB (one page).
const MIN_CLASS: u32 = 12;
/// The largest region: 2 GiB (an sge length is a u32; keep well inside).
const MAX_CLASS: u32 = 31;

/// The size class (power of two exponent) of a `len`-byte region.
pub(super) fn class_of(len: usize) -> Option<u32> {
    let cap = len.max(1).checked_next_power_of_two()?;
    let class = cap.trailing_zeros().max(MIN_CLASS);
    (class <= MAX_CLASS).then_some(class)
}

/// One registered buffer (`ibv_mr`), deregistered on drop.
pub(super) struct MrHandle {
    raw: *mut ffi::ibv_mr,
    buf: ManuallyDrop<Box<[u8]>>,
    pub(super) lkey: u32,
    pub(super) rkey: u32,
    _pd: Arc<PdHandle>,
}

// SAFETY: the MR pointer is only passed to libibverbs (thread-safe), and the
// buffer is a plain heap allocation owned by this handle.
unsafe impl Send for MrHandle {}
// SAFETY: `&MrHandle` gives read access to the buffer only.
unsafe impl Sync for MrHandle {}

impl MrHandle {
    fn register(pd: &Arc<PdHandle>, cap: usize) -> Result<Self, VerbsError> {
        let mut buf = vec![0u8; cap].into_boxed_slice();
        let access = ffi::ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
            | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
            | ffi::ibv_access_flags::IBV_ACCESS_REMOTE_READ;
        let access = i32::try_from(access.0).map_err(|_| VerbsError::Invalid("access".into()))?;
        // SAFETY: `pd.raw` is a live PD and `buf` is `cap` bytes that stay
        // allocated (and at the same address) until the MR is deregistered:
        // Drop deregisters before freeing, and never frees if that fails.
        let raw = unsafe { ffi::ibv_reg_mr(pd.raw, buf.as_mut_ptr().cast(), cap, access) };
        if raw.is_null() {
            return Err(VerbsError::Io(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is the non-null MR just returned; its keys are plain
        // fields, read once.
        let (lkey, rkey) = unsafe { ((*raw).lkey, (*raw).rkey) };
        Ok(Self {
            raw,
            buf: ManuallyDrop::new(buf),
            lkey,
            rkey,
            _pd: pd.clone(),
        })
    }

    pub(super) fn addr(&self) -> u64 {
        self.buf.as_ptr() as u64
    }
}

impl Drop for MrHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` was registered by us and is deregistered once.
        let rc = unsafe { ffi::ibv_dereg_mr(self.raw) };
        if rc == 0 {
            // SAFETY: `buf` is dropped exactly once, here, after the device
            // lost access to it.
            unsafe { ManuallyDrop::drop(&mut self.buf) };
        } else {
            // The device may still reach the memory: leak it rather than
            // hand it back to the allocator.
            tracing::error!(
                "ibv_dereg_mr failed ({rc}); leaking {} bytes",
                self.buf.len()
            );
        }
    }
}

/// Idle registrations by size class, bounded in bytes.
pub(super) struct RegionCache {
    free: Mutex<(Vec<Vec<MrHandle>>, usize)>,
    max_bytes: usize,
}

impl RegionCache {
    pub(super) fn new(max_bytes: usize) -> Self {
        let classes = (0..=MAX_CLASS).map(|_| Vec::new()).collect();
        Self {
            free: Mutex::new((classes, 0)),
            max_bytes,
        }
    }

    fn take(&self, class: u32) -> Option<MrHandle> {
        let mut g = self.free.lock();
        let (classes, bytes) = &mut *g;
        let mr = classes.get_mut(class as usize)?.pop()?;
        *bytes -= mr.buf.len();
        Some(mr)
    }

    fn give_back(&self, class: u32, mr: MrHandle) {
        let rejected = {
            let mut g = self.free.lock();
            let (classes, bytes) = &mut *g;
            match classes.get_mut(class as usize) {
                Some(c) if *bytes + mr.buf.len() <= self.max_bytes => {
                    *bytes += mr.buf.len();
                    c.push(mr);
                    None
                }
                _ => Some(mr),
            }
        };
        // Over budget: deregistered here, outside the lock.
        drop(rejected);
    }
}

/// A registered buffer of `len` usable bytes: the local side of a transfer
/// and, through [`RegisteredRegion::remote`], a target for the peer's.
/// Its registration goes back to the context's cache on drop (contents are
/// not cleared; a reused region holds stale bytes).
pub struct RegisteredRegion {
    mr: Option<MrHandle>,
    class: u32,
    len: usize,
    len32: u32,
    /// Set when a transfer on it was abandoned without a completion: the
    /// device may still touch it, so it is deregistered, never reused.
    tainted: AtomicBool,
    ctx: Arc<VerbsContext>,
}

impl std::fmt::Debug for RegisteredRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredRegion")
            .field("len", &self.len)
            .field("remote", &self.remote())
            .finish()
    }
}

impl VerbsContext {
    /// A registered buffer of `len` bytes (local write, remote read and
    /// write), reused from the cache when one of its size class is idle.
    pub fn register(self: &Arc<Self>, len: usize) -> Result<RegisteredRegion, VerbsError> {
        let class = class_of(len)
            .ok_or_else(|| VerbsError::Invalid(format!("cannot register {len} bytes")))?;
        let len32 = u32::try_from(len)
            .map_err(|_| VerbsError::Invalid(format!("cannot register {len} bytes")))?;
        let mr = match self.cache.take(class) {
            Some(mr) => mr,
            None => MrHandle::register(&self.pd, 1usize << class)?,
        };
        Ok(RegisteredRegion {
            mr: Some(mr),
            class,
            len,
            len32,
            tainted: AtomicBool::new(false),
            ctx: self.clone(),
        })
    }
}

impl RegisteredRegion {
    /// How the peer addresses this region.
    pub fn remote(&self) -> RemoteBuf {
        RemoteBuf {
            addr: self.mr.as_ref().map_or(0, MrHandle::addr),
            len: self.len32,
            rkey: self.mr.as_ref().map_or(0, |m| m.rkey),
        }
    }

    pub(super) fn lkey(&self) -> u32 {
        self.mr.as_ref().map_or(0, |m| m.lkey)
    }

    pub(super) fn context(&self) -> &Arc<VerbsContext> {
        &self.ctx
    }

    pub(super) fn taint(&self) {
        self.tainted.store(true, Ordering::SeqCst);
    }
}

impl Deref for RegisteredRegion {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.mr {
            Some(m) => &m.buf[..self.len],
            None => &[],
        }
    }
}

impl DerefMut for RegisteredRegion {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        match &mut self.mr {
            Some(m) => &mut m.buf[..len],
            None => &mut [],
        }
    }
}

impl Drop for RegisteredRegion {
    fn drop(&mut self) {
        if let Some(mr) = self.mr.take() {
            if !self.tainted.load(Ordering::SeqCst) {
                self.ctx.cache.give_back(self.class, mr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_to_a_page_and_stop_at_two_gib() {
        assert_eq!(class_of(0), Some(12));
        assert_eq!(class_of(4096), Some(12));
        assert_eq!(class_of(4097), Some(13));
        assert_eq!(class_of(64 << 10), Some(16));
        assert_eq!(class_of((4 << 20) + 1), Some(23));
        assert_eq!(class_of(1 << 31), Some(31));
        assert_eq!(class_of((1 << 31) + 1), None);
        assert_eq!(class_of(usize::MAX), None);
    }
}
