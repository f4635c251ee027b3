//! MD5 of uploaded bytes, for ETags, hashed for many uploads at once.
//!
//! S3 names an object's ETag, and each multipart part's, by the MD5 of its
//! bytes, and clients check it (s3cmd and rclone compare it with their own
//! MD5), so every byte PUT is hashed. MD5 is one long dependency chain: a
//! stream cannot be hashed faster than about 500 MiB/s on a core here, and
//! during an 8-writer multipart upload (`s5cmd`, 8 × 256 MiB) `md5` was 24%
//! of all the machine's CPU samples (`perf record -a`), more than the rest of
//! the server's user time together. What helps is running several streams'
//! chains side by side in SIMD lanes ([`lanes`]), as MinIO's md5-simd does:
//! uploads hand the whole 64-byte blocks of each 1 MiB piece to a hashing
//! thread ([`engine`]) that advances up to eight of them together, while the
//! piece is written. Pieces under 64 KiB, and the bytes at either end of a
//! piece that do not fill a block, are hashed where they are.

mod engine;
mod lanes;

use bytes::Bytes;

/// Smallest run of whole blocks worth sending to the hashing thread.
const SHARED_MIN: usize = 64 * 1024;

const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// A running MD5 (RFC 1321).
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// Bytes taken in so far.
    len: u64,
    /// Bytes after the last whole block.
    tail: [u8; 64],
    tail_len: usize,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub fn new() -> Self {
        Md5 {
            state: INIT,
            len: 0,
            tail: [0; 64],
            tail_len: 0,
        }
    }

    /// Hashes `data` on this thread.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.begin(data);
        let whole = rest.len() / 64 * 64;
        self.compress(&rest[..whole]);
        self.keep_tail(&rest[whole..]);
    }

    /// Whether [`Md5::update_shared`] would hand a piece of `len` bytes
    /// (or most of it) to the hashing thread.
    pub fn shares(len: usize) -> bool {
        len >= SHARED_MIN + 64
    }

    /// Hashes `data` on the shared hashing thread, in lanes beside other
    /// uploads' pieces; small pieces are hashed here.
    pub async fn update_shared(mut self, data: Bytes) -> Self {
        let head = data.len() - self.begin(&data).len();
        let whole = (data.len() - head) / 64 * 64;
        if whole >= SHARED_MIN {
            self.state = engine::hash(self.state, data.slice(head..head + whole)).await;
        } else {
            self.compress(&data[head..head + whole]);
        }
        self.keep_tail(&data[head + whole..]);
        self
    }

    /// The digest: pads the message and runs the last block(s).
    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut last = [0u8; 128];
        last[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        last[self.tail_len] = 0x80;
        let end = if self.tail_len < 56 { 64 } else { 128 };
        last[end - 8..end].copy_from_slice(&bits.to_le_bytes());
        self.compress(&last[..end]);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Counts `data` and completes a partly filled block from its start;
    /// returns what is left of it.
    fn begin<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.tail_len == 0 {
            return data;
        }
        let take = (64 - self.tail_len).min(data.len());
        self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
        self.tail_len += take;
        if self.tail_len == 64 {
            let block = self.tail;
            self.compress(&block);
            self.tail_len = 0;
        }
        &data[take..]
    }

    /// Keeps `rest` (less than a block, and the tail is empty) for later.
    fn keep_tail(&mut self, rest: &[u8]) {
        debug_assert!(rest.len() < 64 && (self.tail_len == 0 || rest.is_empty()));
        self.tail[self.tail_len..self.tail_len + rest.len()].copy_from_slice(rest);
        self.tail_len += rest.len();
    }

    fn compress(&mut self, whole: &[u8]) {
        compress_scalar(&mut self.state, whole);
    }
}

/// The compression function over whole blocks, one stream.
fn compress_scalar(state: &mut [u32; 4], whole: &[u8]) {
    let (blocks, rest) = whole.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    md5::block_api::compress(state, blocks);
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn bytes(seed: u32, n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    }

    #[test]
    fn rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            let mut h = Md5::new();
            h.update(input.as_bytes());
            assert_eq!(hex(h.finalize()), want, "{input:?}");
        }
    }

    #[test]
    fn any_split_of_the_input_gives_the_digest_of_the_whole() {
        let data = bytes(1, 300_000);
        for len in [55, 56, 63, 64, 65, 119, 120, 128, 4095, 300_000] {
            let want: [u8; 16] = md5::Md5::digest(&data[..len]).into();
            for step in [1, 7, 63, 64, 65, 1000, 70_000] {
                let mut h = Md5::new();
                for piece in data[..len].chunks(step) {
                    h.update(piece);
                }
                assert_eq!(h.finalize(), want, "{len} bytes in pieces of {step}");
            }
        }
    }

    #[tokio::test]
    async fn shared_hashing_of_concurrent_uploads_matches_a_plain_digest() {
        // Sixteen uploads at once, more than one batch of lanes, of
        // different lengths and piece sizes (some not whole blocks, some
        // under SHARED_MIN), each mixing shared and local updates.
        let uploads: Vec<Vec<u8>> = (0..16u32)
            .map(|i| bytes(i * 104_729, 200_000 + i as usize * 37_013))
            .collect();
        let tasks: Vec<_> = uploads
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let data = Bytes::from(data.clone());
                tokio::spawn(async move {
                    let piece = [SHARED_MIN + 1, 100_003, 65_536, 1 << 20][i % 4];
                    let mut h = Md5::new();
                    let mut at = 0;
                    while at < data.len() {
                        let end = (at + piece).min(data.len());
                        if i % 5 == 4 && at == 0 {
                            h.update(&data[at..end]);
                        } else {
                            h = h.update_shared(data.slice(at..end)).await;
                        }
                        at = end;
                    }
                    h.finalize()
                })
            })
            .collect();
        for (task, data) in tasks.into_iter().zip(&uploads) {
            let want: [u8; 16] = md5::Md5::digest(data).into();
            assert_eq!(task.await.unwrap(), want, "{} bytes", data.len());
        }
    }
}
