//! ONC-RPC record marking over TCP (RFC 5531 §11): a record is one or more
//! fragments, each preceded by a 4-byte header holding its length and a
//! last-fragment flag.
//!
//! Records are bounded: a peer announcing more than [`MAX_RECORD`] bytes is
//! cut off before any of it is buffered.

use crate::rpc::Payload;
use bytes::{Bytes, BytesMut};
use nitrofs_common::stall::StallGuard;
use nitrofs_core_fs::{FileRange, ReadPiece};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// Largest record accepted: a 1 MiB WRITE with generous room for the RPC
/// and NFS headers (the budget is 1.5 MiB plus 4 KiB).
pub const MAX_RECORD: usize = 1024 * 1024 + 512 * 1024 + 4096;

/// Records from this size on (WRITE payloads) are read into pooled
/// buffers: a fresh zeroed MiB per WRITE was ~8% of the server's CPU
/// during checkpoint writes (perf: `memset`, `clear_page_erms`).
const POOLED_RECORD: usize = 64 * 1024;

const LAST_FRAGMENT: u32 = 0x8000_0000;
const LENGTH_MASK: u32 = 0x7fff_ffff;

/// Why a record could not be read; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The socket failed or closed in the middle of a record.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The record would exceed the limit.
    #[error("record of at least {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// Whether `buf` (a connection's read buffer) begins with a whole
/// record in one fragment, so the next [`read_record`] needs no read from
/// the socket.
pub fn whole_record_buffered(buf: &[u8]) -> bool {
    let Some(header) = buf.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) else {
        return false;
    };
    let word = u32::from_be_bytes(header);
    word & LAST_FRAGMENT != 0 && buf.len() - 4 >= (word & LENGTH_MASK) as usize
}

/// Reads one complete record. `Ok(None)` is a clean end of stream at a
/// record boundary.
pub async fn read_record<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Bytes>, RecordError> {
    let mut record = BytesMut::new();
    let mut first = true;
    loop {
        let mut header = [0u8; 4];
        if first {
            // Distinguish a clean close before a record from a cut one.
            let n = r.read(&mut header).await?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(rest) = header.get_mut(n..) {
                r.read_exact(rest).await?;
            }
            first = false;
        } else {
            r.read_exact(&mut header).await?;
        }
        let word = u32::from_be_bytes(header);
        let len = (word & LENGTH_MASK) as usize;
        let total = record.len().saturating_add(len);
        if total > max {
            return Err(RecordError::TooLarge(total));
        }
        if record.is_empty() && word & LAST_FRAGMENT != 0 && len >= POOLED_RECORD {
            // The whole record in this fragment (a WRITE's payload): read
            // into a reused buffer (no zeroing, no fresh pages) that the
            // WRITE hands on without a copy and that returns to the pool
            // when the call is done with it.
            let mut buf = nitrofs_common::buf::process_pool().take(len);
            r.read_exact(&mut buf).await?;
            return Ok(Some(Bytes::from_owner(buf)));
        }
        let start = record.len();
        record.resize(total, 0);
        if let Some(dst) = record.get_mut(start..) {
            r.read_exact(dst).await?;
        }
        if word & LAST_FRAGMENT != 0 {
            return Ok(Some(record.freeze()));
        }
    }
}

/// Writes one reply record to a connection: `head`, then the payload,
/// whose file ranges go from the page cache to the socket with
/// `sendfile(2)` while `zero_copy` is on (the buffered bytes before them
/// are flushed first). During an 8-reader NFS read-back the two copies this
/// saves were 29% of the machine's CPU samples (`_copy_to_iter` for the
/// read, `_copy_from_iter` for the send; perf record -a).
pub async fn write_reply(
    w: &mut ReplyOut,
    head: &[u8],
    data: &Payload,
    zero_copy: &AtomicBool,
) -> std::io::Result<()> {
    w.write_all(&marker(head.len(), data.len())?).await?;
    w.write_all(head).await?;
    for piece in data.pieces() {
        match piece {
            ReadPiece::Bytes(b) => w.write_all(b).await?,
            ReadPiece::File(r) => {
                w.flush().await?;
                send_range(w, r, zero_copy).await?;
            }
        }
    }
    w.write_all(pad(data.len())).await
}

/// Largest piece the copying way reads at a time.
const COPY_PIECE: usize = 256 * 1024;

/// A connection's reply stream: buffered, and failing a write that waits
/// longer than the server's stall limit for a client that reads nothing.
pub type ReplyOut = BufWriter<StallGuard<OwnedWriteHalf>>;

/// Sends `r`. `sendfile` may wait for the disk when the bytes are not
/// cached, so it runs on the blocking pool, against a duplicate of the
/// socket's descriptor, and waits there while the socket is full.
///
/// If `sendfile` fails for the file's sake (a disk error, a file system
/// without it), the rest goes the copying way and `zero_copy` is turned
/// off, so that later READs read their bytes before answering and report a
/// disk error as NFS3ERR_IO; if the copy fails too, the error closes the
/// connection (the header is out) and the client's retry gets that
/// NFS3ERR_IO.
///
/// The record's length is already on the wire: if the file has been cut
/// short since the READ took the range, zeros stand in for the bytes it no
/// longer has (what a read would find had the file been cut and extended
/// again); closing the connection instead would lose the other calls in
/// flight on it.
async fn send_range(
    w: &mut ReplyOut,
    r: &FileRange,
    zero_copy: &AtomicBool,
) -> std::io::Result<()> {
    let mut done = 0usize;
    if zero_copy.load(Ordering::Relaxed) {
        let out = sock(w).as_fd().try_clone_to_owned()?;
        // The same limit as the socket's other writes.
        let stall = w.get_ref().limit();
        let range = r.clone();
        let (sent, res) = tokio::task::spawn_blocking(move || range.send_all(&out, 0, stall))
            .await
            .map_err(std::io::Error::other)?;
        done = sent;
        if let Err(e) = res {
            if e.kind() == std::io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
                // `send_all`'s wait for room ran out (a socket's own
                // ETIMEDOUT carries its errno): the client took nothing.
                return Err(nitrofs_common::stall::gave_up_after(stall));
            }
            if connection_gone(&e) {
                return Err(e);
            }
            tracing::warn!(error = %e, "sendfile failed; NFS READ copies its bytes from now on");
            zero_copy.store(false, Ordering::Relaxed);
        } else if done < r.len() {
            return zero_fill(w, r.len() - done).await;
        }
    }
    while done < r.len() {
        let range = r.clone();
        let n = (r.len() - done).min(COPY_PIECE);
        let piece = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            let got = range.read_at(&mut buf, done)?;
            buf.truncate(got);
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(std::io::Error::other)?
        .inspect_err(|e| tracing::warn!(error = %e, "reading a chunk for a READ reply failed"))?;
        if piece.is_empty() {
            return zero_fill(w, r.len() - done).await;
        }
        w.write_all(&piece).await?;
        done += piece.len();
    }
    Ok(())
}

/// Whether a send failed because of the connection (not the file).
fn connection_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | TimedOut
    )
}

async fn zero_fill(w: &mut ReplyOut, mut n: usize) -> std::io::Result<()> {
    let zeros = [0u8; 4096];
    while n > 0 {
        let k = n.min(zeros.len());
        w.write_all(&zeros[..k]).await?;
        n -= k;
    }
    Ok(())
}

/// The connection's socket under its writer.
fn sock(w: &ReplyOut) -> &TcpStream {
    w.get_ref().get_ref().as_ref()
}

/// The fragment header of a whole record: `head` bytes, then `data` bytes
/// and their padding.
fn marker(head: usize, data: usize) -> std::io::Result<[u8; 4]> {
    let word = u32::try_from(head + data + pad(data).len())
        .ok()
        .filter(|l| *l <= LENGTH_MASK)
        .ok_or_else(|| std::io::Error::other("reply too large for one fragment"))?;
    Ok((word | LAST_FRAGMENT).to_be_bytes())
}

/// XDR padding after `len` opaque bytes.
fn pad(len: usize) -> &'static [u8] {
    &[0u8; 3][..(4 - len % 4) % 4]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A loopback connection: the accepting side's reply writer and the
    /// connecting side's stream.
    async fn loopback() -> (ReplyOut, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_rd, wr) = accepted.expect("accept").0.into_split();
        let out = BufWriter::new(StallGuard::new(wr, Duration::from_secs(120)));
        (out, client.expect("connect"))
    }

    fn fragment(data: &[u8], last: bool) -> Vec<u8> {
        let mut word = data.len() as u32;
        if last {
            word |= LAST_FRAGMENT;
        }
        let mut v = word.to_be_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    #[tokio::test]
    async fn a_single_fragment_is_one_record() {
        let wire = fragment(b"abcd", true);
        let mut r = &wire[..];
        let rec = read_record(&mut r, MAX_RECORD).await.expect("read");
        assert_eq!(rec.as_deref(), Some(&b"abcd"[..]));
        assert!(read_record(&mut r, MAX_RECORD)
            .await
            .expect("eof")
            .is_none());
    }

    #[tokio::test]
    async fn fragments_are_joined_until_the_last_flag() {
        let mut wire = fragment(b"ab", false);
        wire.extend(fragment(b"", false));
        wire.extend(fragment(b"cde", true));
        wire.extend(fragment(b"next", true));
        let mut r = &wire[..];
        let one = read_record(&mut r, MAX_RECORD).await.expect("first");
        assert_eq!(one.as_deref(), Some(&b"abcde"[..]));
        let two = read_record(&mut r, MAX_RECORD).await.expect("second");
        assert_eq!(two.as_deref(), Some(&b"next"[..]));
    }

    #[tokio::test]
    async fn an_oversize_fragment_is_refused_before_buffering() {
        // Announces 2 GiB - 1 bytes but sends none of them.
        let wire = (LENGTH_MASK | LAST_FRAGMENT).to_be_bytes();
        let mut r = &wire[..];
        let err = read_record(&mut r, MAX_RECORD)
            .await
            .expect_err("too large");
        assert!(matches!(err, RecordError::TooLarge(_)));
    }

    #[tokio::test]
    async fn fragments_adding_up_past_the_limit_are_refused() {
        let chunk = vec![0u8; 1000];
        let mut wire = Vec::new();
        for _ in 0..5 {
            wire.extend(fragment(&chunk, false));
        }
        let mut r = &wire[..];
        let err = read_record(&mut r, 4500).await.expect_err("too large");
        assert!(matches!(err, RecordError::TooLarge(5000)));
    }

    #[tokio::test]
    async fn a_record_cut_mid_fragment_is_an_error() {
        let mut wire = fragment(b"abcdef", true);
        wire.truncate(7);
        let mut r = &wire[..];
        assert!(read_record(&mut r, MAX_RECORD).await.is_err());
        let mut half_header = &[0x80u8, 0][..];
        assert!(read_record(&mut half_header, MAX_RECORD).await.is_err());
    }

    #[tokio::test]
    async fn replies_carry_bytes_and_file_ranges_padded_and_zeros_for_a_cut_file() {
        use nitrofs_chunk_store::{ChunkId, ChunkStore, LocalChunkStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalChunkStore::open(dir.path()).expect("store");
        let id = ChunkId { ino: 7, index: 0 };
        // Both ways of sending a range: sendfile, and the copying one used
        // after sendfile has failed.
        for zero_copy in [true, false] {
            store.write(id, 0, b"0123456789").expect("write");
            store.truncate(id, 10).expect("truncate");
            let range = |offset, len| {
                let r = store.read_range(id, offset, len).expect("range");
                ReadPiece::File(r.expect("a range of an unshared chunk"))
            };
            let mixed = Payload::new(vec![
                ReadPiece::Bytes(Bytes::from_static(b"ab")),
                range(1, 4),
            ]);
            let cut = Payload::new(vec![range(4, 6)]);
            // The chunk loses its last four bytes after the READ took the
            // range and before the reply is sent.
            store.truncate(id, 6).expect("truncate");
            let (mut w, mut s) = loopback().await;
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(rec) = read_record(&mut s, MAX_RECORD).await.expect("read") {
                    got.push(rec);
                }
                got
            });
            let flag = AtomicBool::new(zero_copy);
            write_reply(&mut w, b"head", &mixed, &flag)
                .await
                .expect("send");
            write_reply(&mut w, b"h2", &cut, &flag).await.expect("send");
            write_reply(&mut w, b"h3", &Payload::default(), &flag)
                .await
                .expect("send");
            w.shutdown().await.expect("close");
            let got = reader.await.expect("reader");
            assert_eq!(got.len(), 3);
            assert_eq!(&got[0][..], b"headab1234\0\0", "zero copy {zero_copy}");
            assert_eq!(&got[1][..], b"h245\0\0\0\0\0\0", "zero copy {zero_copy}");
            assert_eq!(&got[2][..], b"h3");
            assert_eq!(
                flag.load(Ordering::Relaxed),
                zero_copy,
                "no failure turned it off"
            );
        }
    }

    #[tokio::test]
    async fn a_range_larger_than_the_socket_can_hold_arrives_whole() {
        use nitrofs_chunk_store::{ChunkId, ChunkStore, LocalChunkStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalChunkStore::open(dir.path()).expect("store");
        let id = ChunkId { ino: 9, index: 0 };
        let data: Vec<u8> = (0..32u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        store.write(id, 0, &data).expect("write");
        let (mut w, mut s) = loopback().await;
        let reader =
            tokio::spawn(async move { read_record(&mut s, 64 << 20).await.expect("read") });
        let range = store
            .read_range(id, 0, data.len())
            .expect("range")
            .expect("unshared");
        let payload = Payload::new(vec![ReadPiece::File(range)]);
        let flag = AtomicBool::new(true);
        // 32 MiB fill the socket many times over: the send must wait for the
        // reader and go on (a lost wake-up would hang here).
        let sent = tokio::time::timeout(Duration::from_secs(120), async {
            write_reply(&mut w, b"head", &payload, &flag).await?;
            w.shutdown().await
        });
        sent.await.expect("sent in time").expect("send");
        let got = reader.await.expect("reader").expect("a record");
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[..], "the bytes arrive as stored");
        assert!(flag.load(Ordering::Relaxed));
    }
}
