//! Reusable read buffers.
//!
//! A chunk read needs an initialized buffer (the std read API fills a
//! `&mut [u8]`), and zeroing a fresh MiB for every read was ~15% of the
//! server's CPU during S3 downloads (perf: `__memset_avx2_unaligned_erms`,
//! next to the two copies the kernel makes). Buffers of 64 KiB to 8 MiB are
//! zeroed once, when first made; a read hands one out inside the `Bytes`
//! it returns, and the buffer comes back here when the last handle to
//! those bytes is dropped (after the reply went out). Only the bytes the
//! read filled are ever visible, never what an earlier read left behind.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The smallest pooled buffer, as a power of two (64 KiB); smaller reads
/// zero a buffer of their own, which costs little.
const MIN_SHIFT: u32 = 16;
/// The largest pooled buffer, as a power of two (8 MiB).
const MAX_SHIFT: u32 = 23;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;

/// Idle buffers by size class, up to a byte limit in all.
pub(crate) struct ReadBufs {
    classes: [Mutex<Vec<Vec<u8>>>; CLASSES],
    idle_bytes: AtomicUsize,
    limit: usize,
}

/// Idle read buffers kept for reuse in the whole process (every chunk
/// store shares them: a server may open one store per KV space).
const SHARED_IDLE_LIMIT: usize = 64 << 20;

impl ReadBufs {
    /// The process's pool.
    pub(crate) fn shared() -> Arc<Self> {
        static SHARED: std::sync::OnceLock<Arc<ReadBufs>> = std::sync::OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| ReadBufs::new(SHARED_IDLE_LIMIT)))
    }

    /// A pool keeping at most `limit` bytes of idle buffers.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            classes: std::array::from_fn(|_| Mutex::new(Vec::new())),
            idle_bytes: AtomicUsize::new(0),
            limit,
        })
    }

    /// A buffer of at least `len` initialized bytes, or `None` for a length
    /// this pool does not serve.
    pub(crate) fn take(self: &Arc<Self>, len: usize) -> Option<ReadBuf> {
        let class = class_of(len)?;
        let reused = self.classes[class].lock().pop();
        let buf = match reused {
            Some(b) => {
                self.idle_bytes.fetch_sub(b.len(), Ordering::Relaxed);
                b
            }
            None => vec![0; 1 << (class as u32 + MIN_SHIFT)],
        };
        Some(ReadBuf {
            buf,
            filled: 0,
            home: Arc::clone(self),
        })
    }

    fn give_back(&self, buf: Vec<u8>) {
        let Some(class) = class_of(buf.len()).filter(|&c| buf.len() == 1 << (c as u32 + MIN_SHIFT))
        else {
            return;
        };
        let size = buf.len();
        if self.idle_bytes.fetch_add(size, Ordering::Relaxed) + size > self.limit {
            self.idle_bytes.fetch_sub(size, Ordering::Relaxed);
            return;
        }
        self.classes[class].lock().push(buf);
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle_bytes.load(Ordering::Relaxed)
    }
}

/// The size class serving `len` bytes.
fn class_of(len: usize) -> Option<usize> {
    if len < 1 << MIN_SHIFT {
        return None;
    }
    let shift = len.checked_next_power_of_two()?.trailing_zeros();
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

/// A pooled buffer; as bytes, only the part a read filled.
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    filled: usize,
    home: Arc<ReadBufs>,
}

impl ReadBuf {
    /// The first `len` bytes, to be read into (`len` at most what
    /// [`ReadBufs::take`] was asked for).
    pub(crate) fn space(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(self.buf.len());
        &mut self.buf[..len]
    }

    /// Marks the first `n` bytes as the content.
    pub(crate) fn set_filled(&mut self, n: usize) {
        self.filled = n.min(self.buf.len());
    }
}

impl AsRef<[u8]> for ReadBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn buffers_come_back_when_the_last_handle_is_dropped_and_show_only_what_was_filled() {
        let pool = ReadBufs::new(4 << 20);
        let mut b = pool.take(100_000).expect("served");
        b.space(100_000)[..5].copy_from_slice(b"first");
        b.set_filled(5);
        let bytes = Bytes::from_owner(b);
        let part = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(pool.idle(), 0, "a slice still holds it");
        assert_eq!(&part[..], b"ir");
        drop(part);
        assert_eq!(pool.idle(), 128 << 10);
        // Reused: the old content is there but not visible.
        let mut again = pool.take(70_000).expect("served");
        assert_eq!(pool.idle(), 0);
        again.set_filled(2);
        assert_eq!(Bytes::from_owner(again).as_ref(), b"fi");
    }

    #[test]
    fn small_and_huge_reads_are_not_pooled_and_the_limit_holds() {
        let pool = ReadBufs::new(1 << 20);
        assert!(pool.take(1000).is_none());
        assert!(pool.take((8 << 20) + 1).is_none());
        let a = pool.take(1 << 20).expect("1 MiB");
        let b = pool.take(1 << 20).expect("1 MiB");
        drop(a);
        drop(b);
        assert_eq!(pool.idle(), 1 << 20, "the second is freed, not kept");
        assert_eq!(class_of(1 << 16), Some(0));
        assert_eq!(class_of((1 << 16) + 1), Some(1));
        assert_eq!(class_of(8 << 20), Some(CLASSES - 1));
    }
}
