//! ONC-RPC record marking over TCP (RFC 5531 §11): a record is one or more
//! fragments, each preceded by a 4-byte header holding its length and a
//! last-fragment flag.
//!
//! Records are bounded: a peer announcing more than [`MAX_RECORD`] bytes is
//! cut off before any of it is buffered.

use crate::rpc::Payload;
use bytes::{Bytes, BytesMut};
use nitrofs_core_fs::{FileRange, ReadPiece};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter, Interest};
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
/// `sendfile(2)` (the buffered bytes before them are flushed first).
/// During an 8-reader NFS read-back the two copies this saves were 29% of
/// the machine's CPU samples (`_copy_to_iter` for the read,
/// `_copy_from_iter` for the send; perf record -a).
pub async fn write_reply(
    w: &mut BufWriter<OwnedWriteHalf>,
    head: &[u8],
    data: &Payload,
) -> std::io::Result<()> {
    w.write_all(&marker(head.len(), data.len())?).await?;
    w.write_all(head).await?;
    for piece in data.pieces() {
        match piece {
            ReadPiece::Bytes(b) => w.write_all(b).await?,
            ReadPiece::File(r) => {
                w.flush().await?;
                send_file(w, r).await?;
            }
        }
    }
    w.write_all(pad(data.len())).await
}

/// Sends `r` with `sendfile`. The record's length is already on the wire:
/// if the file has shrunk since the read (a truncation racing the READ),
/// zeros stand in for the bytes it no longer has.
async fn send_file(w: &mut BufWriter<OwnedWriteHalf>, r: &FileRange) -> std::io::Result<()> {
    let mut offset = i64::try_from(r.offset).map_err(std::io::Error::other)?;
    let mut left = r.len;
    while left > 0 {
        let sock: &TcpStream = w.get_ref().as_ref();
        sock.writable().await?;
        let sent = sock.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(sock, &*r.file, Some(&mut offset), left)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                let zeros = [0u8; 4096];
                while left > 0 {
                    let n = left.min(zeros.len());
                    w.write_all(&zeros[..n]).await?;
                    left -= n;
                }
            }
            Ok(n) => left -= n.min(left),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
    async fn replies_carry_bytes_and_file_ranges_padded_and_zeros_for_a_shrunk_file() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chunk");
        std::fs::write(&path, b"0123456789").expect("write");
        let file = Arc::new(std::fs::File::open(&path).expect("open"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut got = Vec::new();
            while let Some(rec) = read_record(&mut s, MAX_RECORD).await.expect("read") {
                got.push(rec);
            }
            got
        });
        let (sock, _) = listener.accept().await.expect("accept");
        let (_rd, wr) = sock.into_split();
        let mut w = BufWriter::new(wr);
        let range = |offset, len| {
            ReadPiece::File(FileRange {
                file: Arc::clone(&file),
                offset,
                len,
            })
        };
        let mixed = Payload::new(vec![
            ReadPiece::Bytes(Bytes::from_static(b"ab")),
            range(2, 5),
        ]);
        write_reply(&mut w, b"head", &mixed).await.expect("send");
        // Six bytes from offset 8 of a ten-byte file: as if a truncation
        // came between the READ and the send.
        write_reply(&mut w, b"h2", &Payload::new(vec![range(8, 6)]))
            .await
            .expect("send");
        write_reply(&mut w, b"h3", &Payload::default())
            .await
            .expect("send");
        w.shutdown().await.expect("close");
        let got = reader.await.expect("reader");
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..], b"headab23456\0");
        assert_eq!(&got[1][..], b"h289\0\0\0\0\0\0");
        assert_eq!(&got[2][..], b"h3");
    }
}
