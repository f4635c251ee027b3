//! Reusable byte buffers by power-of-two size class: the payloads the KV
//! transport reads from sockets and the chunk reads of the data path land
//! in them, so steady-state traffic neither allocates nor zeroes memory
//! (a fresh multi-MiB buffer is faulted in and zeroed page by page).

use bytes::Bytes;
use parking_lot::Mutex;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// The smallest pooled buffer (smaller payloads still get one of these).
const MIN_CLASS: usize = 12; // 4 KiB
/// Size classes: 4 KiB .. 128 MiB, powers of two.
const CLASSES: usize = 16;

/// Idle bytes the process-wide pool keeps.
const PROCESS_POOL_BYTES: usize = 256 << 20;

/// The process's pool for payloads that no connection owns a pool for:
/// chunk reads and NFS records. A buffer filled by a read need not be
/// zeroed first, and one used over and over is not faulted in again.
pub fn process_pool() -> Arc<BufPool> {
    static POOL: std::sync::OnceLock<Arc<BufPool>> = std::sync::OnceLock::new();
    Arc::clone(POOL.get_or_init(|| BufPool::new(PROCESS_POOL_BYTES)))
}

/// Reusable payload buffers by power-of-two size class. Buffers come back
/// on drop; the pool keeps at most `max_pooled_bytes` idle.
#[derive(Debug)]
pub struct BufPool {
    free: Mutex<PoolState>,
    max_pooled_bytes: usize,
}

#[derive(Debug, Default)]
struct PoolState {
    classes: Vec<Vec<Vec<u8>>>,
    pooled_bytes: usize,
}

fn class_of(len: usize) -> usize {
    let bits = usize::BITS - len.max(1).saturating_sub(1).leading_zeros();
    (bits as usize).saturating_sub(MIN_CLASS).min(CLASSES - 1)
}

impl BufPool {
    /// A pool keeping up to `max_pooled_bytes` of idle buffers.
    pub fn new(max_pooled_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(PoolState {
                classes: (0..CLASSES).map(|_| Vec::new()).collect(),
                pooled_bytes: 0,
            }),
            max_pooled_bytes,
        })
    }

    /// A buffer with `len` usable bytes (contents unspecified).
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let class = class_of(len);
        let cap = (1usize << (class + MIN_CLASS)).max(len);
        let reused = {
            let mut st = self.free.lock();
            let v = st.classes.get_mut(class).and_then(|c| c.pop());
            if let Some(v) = &v {
                st.pooled_bytes -= v.len();
            }
            v
        };
        let mut vec = match reused {
            Some(v) if v.len() >= len => v,
            _ => vec![0u8; cap],
        };
        if vec.len() < len {
            vec.resize(len, 0);
        }
        PooledBuf {
            vec,
            len,
            pool: Some(self.clone()),
        }
    }

    /// Idle bytes currently held.
    pub fn pooled_bytes(&self) -> usize {
        self.free.lock().pooled_bytes
    }

    fn give_back(&self, vec: Vec<u8>) {
        let class = class_of(vec.len());
        // Only exact class sizes go back, so a class never holds odd buffers.
        if vec.len() != 1usize << (class + MIN_CLASS) {
            return;
        }
        let mut st = self.free.lock();
        if st.pooled_bytes + vec.len() > self.max_pooled_bytes {
            return;
        }
        st.pooled_bytes += vec.len();
        if let Some(c) = st.classes.get_mut(class) {
            c.push(vec);
        }
    }
}

/// A payload buffer from a [`BufPool`]; returns to it when dropped.
#[derive(Debug)]
pub struct PooledBuf {
    vec: Vec<u8>,
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl PooledBuf {
    /// An empty buffer that belongs to no pool.
    pub fn empty() -> Self {
        Self {
            vec: Vec::new(),
            len: 0,
            pool: None,
        }
    }

    /// Shortens the usable bytes to `len` (no-op if already shorter): what
    /// a read actually filled.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Turns the buffer into `Bytes`. When the contents fill most of the
    /// buffer it is handed over without a copy, and comes back to the pool
    /// when the last `Bytes` sharing it is dropped (a KV value overwritten
    /// or evicted); otherwise the contents are copied into an exact-size
    /// allocation and the buffer goes back to the pool at once, so a
    /// long-lived value never pins up to twice its size in a rounded-up
    /// pool buffer.
    ///
    /// Coming back matters: a freed multi-MiB buffer is returned to the OS
    /// by the allocator, and the next one is faulted in and zeroed page by
    /// page (perf during 2 MiB batch puts into a memory space:
    /// `clear_page_erms` 77% of the server's samples).
    pub fn into_bytes(self) -> Bytes {
        if self.len < self.vec.len() - self.vec.len() / 8 {
            return Bytes::copy_from_slice(&self.vec[..self.len]);
        }
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec[..self.len]
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.vec[..self.len]
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.vec));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_in_steady_state() {
        let pool = BufPool::new(64 << 20);
        let first = pool.take(100_000);
        let ptr = first.as_ptr();
        assert_eq!(first.len(), 100_000);
        drop(first);
        assert_eq!(pool.pooled_bytes(), 128 * 1024);
        let second = pool.take(70_000);
        assert_eq!(second.as_ptr(), ptr, "same class reuses the buffer");
        assert_eq!(second.len(), 70_000);
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn a_truncated_reused_buffer_shows_only_what_was_filled() {
        let pool = BufPool::new(1 << 20);
        let mut first = pool.take(100_000);
        first.fill(b'a');
        drop(first);
        let mut again = pool.take(100_000);
        again[..4].copy_from_slice(b"tiny");
        again.truncate(4);
        assert_eq!(&again[..], b"tiny");
        assert_eq!(&again.into_bytes()[..], b"tiny");
        let mut full = pool.take(100_000);
        full.truncate(200_000);
        assert_eq!(full.len(), 100_000, "truncate never lengthens");
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_limit() {
        let pool = BufPool::new(8192);
        let a = pool.take(4096);
        let b = pool.take(4096);
        let c = pool.take(4096);
        drop((a, b, c));
        assert_eq!(pool.pooled_bytes(), 8192);
    }

    #[test]
    fn into_bytes_keeps_the_contents() {
        let pool = BufPool::new(1 << 20);
        let mut b = pool.take(5);
        b.copy_from_slice(b"hello");
        assert_eq!(&b.into_bytes()[..], b"hello");
        assert_eq!(
            pool.pooled_bytes(),
            4096,
            "a mostly empty buffer is copied out and reused"
        );
        let mut full = pool.take(8000);
        full.fill(7);
        let ptr = full.as_ptr();
        let bytes = full.into_bytes();
        assert_eq!(bytes.as_ptr(), ptr, "a nearly full buffer is handed over");
        assert!(bytes.iter().all(|&b| b == 7) && bytes.len() == 8000);
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.pooled_bytes(), 4096, "a slice still holds it");
        assert!(part.iter().all(|&b| b == 7));
        drop(part);
        assert_eq!(
            pool.pooled_bytes(),
            4096 + 8192,
            "the handed-over buffer came back with its last handle"
        );
        assert_eq!(pool.take(8000).as_ptr(), ptr, "and is reused");
    }

    #[test]
    fn size_classes_round_up() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(4096), 0);
        assert_eq!(class_of(4097), 1);
        assert_eq!(class_of(128 << 20), 15);
        assert_eq!(class_of(usize::MAX / 2), 15);
    }
}
