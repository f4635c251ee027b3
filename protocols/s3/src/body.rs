//! Moving object bytes between HTTP bodies and files without holding an
//! object in memory.
//!
//! Upload: the request body is gathered into 1 MiB buffers; each buffer is
//! written by a blocking task and MD5-hashed by the shared hashing thread
//! ([`crate::hashing`]) at the same time, while the next one arrives (one
//! buffer in flight). A last buffer too small to share is hashed and
//! written by the blocking task that then publishes the upload. A PUT's
//! file is made when its first buffer is written: a whole body that is
//! one such small last buffer and within `inline_max` (every body up to
//! the default limit, 64 KiB) never needs one, and is published from
//! memory.
//!
//! Download: the file is opened and pinned before the answer, then a task
//! reads 1 MiB pieces into a bounded channel (two pieces ahead) that the
//! response body drains; a client that goes away closes the channel and
//! stops the reads, and one that takes nothing for the stall limit
//! (`[s3] stall_timeout_secs`) is given up on. An upload whose client sends
//! nothing for as long fails in the front (`stall::StallBody`).

use crate::checksum::Expect;
use crate::error::{fs_error, internal};
use crate::hashing::Md5;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use nitrofs_core_fs::{Credentials, DetachedKind, FileSystem, FsError, InodeId, VolumeId};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, StreamingBlob};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// Size of one write or read against the core.
pub const PIECE: usize = 1024 * 1024;

/// Largest single PUT or part (the S3 limit).
pub const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// What an upload wrote.
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// Checksums computed (those the hasher was built for).
    pub checksum: Checksum,
}

struct Hashers {
    md5: Md5,
    others: ChecksumHasher,
}

/// The write and hashing of one buffer, handing the hashers back.
type Flight = tokio::task::JoinHandle<Result<Hashers, S3Error>>;

/// A PUT's or an UploadPart's body and what it must match.
pub struct Upload {
    body: Option<StreamingBlob>,
    /// The length the request announced.
    expected: Option<u64>,
    expect: Expect,
    trailers: Option<TrailingHeaders>,
}

impl Upload {
    /// `content_length` is the request's; `trailers` carry the checksums
    /// of an aws-chunked body's trailer.
    pub fn new(
        body: Option<StreamingBlob>,
        content_length: Option<i64>,
        expect: Expect,
        trailers: Option<TrailingHeaders>,
    ) -> Self {
        Self {
            body,
            expected: content_length.and_then(|n| u64::try_from(n).ok()),
            expect,
            trailers,
        }
    }
}

/// Where an upload's bytes go.
pub enum Target {
    /// This detached file (an upload's part). The caller discards it if
    /// the upload fails.
    File(InodeId),
    /// A new transient detached file of `volume` with `mode`, made only
    /// for a body not published from memory ([`Landed::Memory`]);
    /// discarded here if the upload fails.
    New {
        /// Its volume.
        volume: VolumeId,
        /// Its permission bits.
        mode: u32,
    },
}

/// Where an upload's bytes are when `finish` runs.
pub enum Landed {
    /// In this file.
    File(InodeId),
    /// In memory, the whole body (a [`Target::New`] of at most
    /// `inline_max` bytes, too small for the shared hashing thread):
    /// `finish` publishes it with its metadata in one transaction
    /// ([`FileSystem::publish_new_if`]).
    Memory(Bytes),
}

/// The file a [`Target`] writes into once one is needed.
struct Dest {
    target: Target,
    /// The file made for a [`Target::New`]; shared with [`write_body`],
    /// which discards it if the upload fails, also when the blocking task
    /// that finishes the upload panics.
    made: Arc<parking_lot::Mutex<Option<InodeId>>>,
}

impl Dest {
    /// The file written so far, if any.
    fn file_now(&self) -> Option<InodeId> {
        match self.target {
            Target::File(ino) => Some(ino),
            Target::New { .. } => *self.made.lock(),
        }
    }

    /// The file to write into, made now if it was not yet: on the
    /// executor when the records it reads are in memory.
    async fn file(&mut self, fs: &Arc<FileSystem>, cred: &Credentials) -> S3Result<InodeId> {
        if let Some(ino) = self.file_now() {
            return Ok(ino);
        }
        let Target::New { volume, mode } = self.target else {
            return Err(internal("an upload with no file to write"));
        };
        let cred = cred.clone();
        let ino = crate::ns::quick(fs, move |fs| make_transient(fs, &cred, volume, mode)).await?;
        *self.made.lock() = Some(ino);
        Ok(ino)
    }

    /// Writes the body's last piece (blocking) and says where the body
    /// is: a whole body within `inline_max` that no file was made for
    /// stays in memory.
    fn land_last(
        &mut self,
        fs: &FileSystem,
        cred: &Credentials,
        last: Option<(u64, Bytes)>,
    ) -> S3Result<Landed> {
        let Some((offset, data)) = last else {
            // An empty body, or one whose pieces were all written.
            return Ok(self
                .file_now()
                .map_or(Landed::Memory(Bytes::new()), Landed::File));
        };
        let ino = match (self.file_now(), &self.target) {
            (Some(ino), _) => ino,
            (None, _) if data.len() as u64 <= u64::from(fs.inline_max()) => {
                return Ok(Landed::Memory(data));
            }
            (None, &Target::New { volume, mode }) => {
                let ino = make_transient(fs, cred, volume, mode)?;
                *self.made.lock() = Some(ino);
                ino
            }
            (None, Target::File(_)) => return Err(internal("an upload with no file to write")),
        };
        fs.write(cred, ino, offset, &data, false)
            .map_err(fs_error)?;
        Ok(Landed::File(ino))
    }
}

fn make_transient(
    fs: &FileSystem,
    cred: &Credentials,
    volume: VolumeId,
    mode: u32,
) -> S3Result<InodeId> {
    fs.create_detached(cred, volume, mode, DetachedKind::Transient)
        .map(|a| a.ino)
        .map_err(fs_error)
}

/// Streams an upload's body into its [`Target`] from offset 0, hashing as
/// it goes, checks what was written against what the request asked for
/// (with the checksums of its trailer), then runs `finish` on the blocking
/// pool with where the bytes are, what was written and the checksums
/// verified (it publishes). A body that ends before its announced length
/// or runs past it is `IncompleteBody`.
///
/// A last piece too small for the shared hashing thread is written by the
/// task that runs `finish`: a small PUT hops to the blocking pool once,
/// not once to write and again to publish. A whole body that small and
/// within `inline_max` is not written at all: `finish` gets it in memory.
pub async fn write_body<T, F>(
    fs: &Arc<FileSystem>,
    cred: &Credentials,
    target: Target,
    upload: Upload,
    finish: F,
) -> S3Result<T>
where
    T: Send + 'static,
    F: FnOnce(&FileSystem, Landed, Written, Checksum) -> S3Result<T> + Send + 'static,
{
    let Upload {
        body,
        expected,
        expect,
        trailers,
    } = upload;
    if expected.is_some_and(|n| n > MAX_PUT) {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.",
        ));
    }
    let mut hashers = Some(Hashers {
        md5: Md5::new(),
        others: expect.hasher(),
    });
    let made = Arc::new(parking_lot::Mutex::new(None));
    let mut dest = Dest {
        target,
        made: Arc::clone(&made),
    };
    let mut flight: Option<Flight> = None;
    let input = Input { body, expected };
    let streamed = stream_in(fs, cred, &mut dest, input, &mut flight, &mut hashers).await;
    let tail = match streamed {
        Ok(tail) => tail,
        Err(e) => {
            // Never leave a write running against a file being discarded.
            if let Some(f) = flight.take() {
                let _ = f.await;
            }
            discard_made(fs, &made).await;
            return Err(e);
        }
    };
    let shared = Arc::clone(fs);
    let cred = cred.clone();
    let finished = tokio::task::spawn_blocking(move || {
        let fs = &*shared;
        let Tail {
            hashers: Hashers {
                mut md5,
                mut others,
            },
            last,
            size,
        } = tail;
        if let Some((_, data)) = &last {
            md5.update(data);
            others.update(data);
        }
        let landed = dest.land_last(fs, &cred, last)?;
        let written = Written {
            size,
            md5: md5.finalize(),
            checksum: others.finalize(),
        };
        // The body has ended: its trailer, if any, has arrived.
        let trailer = trailers.as_ref().and_then(|t| t.take());
        let verified = expect.verify(&written.md5, &written.checksum, trailer.as_ref())?;
        finish(fs, landed, written, verified)
    })
    .await
    .map_err(internal)
    .flatten();
    if finished.is_err() {
        discard_made(fs, &made).await;
    }
    finished
}

/// Removes the detached file an upload made, if it made one (logged,
/// never fails): the upload failed, so it was never published.
async fn discard_made(fs: &Arc<FileSystem>, made: &parking_lot::Mutex<Option<InodeId>>) {
    let made = made.lock().take();
    if let Some(ino) = made {
        discard_file(fs, ino).await;
    }
}

/// Removes the detached file of a failed upload (logged, never fails).
pub(crate) async fn discard_file(fs: &Arc<FileSystem>, ino: InodeId) {
    let r = crate::ns::blocking(fs, move |fs| fs.discard_detached(ino).map_err(fs_error)).await;
    if let Err(e) = r {
        tracing::warn!(ino, error = %e, "could not discard a failed upload; it is collected at the next start");
    }
}

/// A body streamed in but for its last piece when that one is small:
/// the hashers have seen everything before it.
struct Tail {
    hashers: Hashers,
    /// The last piece and its offset, not yet hashed or written.
    last: Option<(u64, Bytes)>,
    /// The body's length.
    size: u64,
}

/// A request body as [`stream_in`] reads it.
struct Input {
    body: Option<StreamingBlob>,
    /// The length the request announced.
    expected: Option<u64>,
}

async fn stream_in(
    fs: &Arc<FileSystem>,
    cred: &Credentials,
    dest: &mut Dest,
    input: Input,
    flight: &mut Option<Flight>,
    hashers: &mut Option<Hashers>,
) -> S3Result<Tail> {
    let Input { body, expected } = input;
    // No more than the body needs: a fresh 1 MiB buffer per small PUT
    // was memory the allocator handed back to the kernel and faulted in
    // (zeroed) again for the next one, a tenth of the server's CPU time.
    let piece_for = |received: u64| {
        expected.map_or(PIECE, |n| {
            usize::try_from(n.saturating_sub(received)).map_or(PIECE, |left| left.min(PIECE))
        })
    };
    let mut buf = BytesMut::with_capacity(piece_for(0));
    let mut offset = 0u64;
    let mut received = 0u64;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(body_error)?;
            received += chunk.len() as u64;
            if received > expected.unwrap_or(MAX_PUT) {
                return Err(too_long(expected));
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= PIECE {
                let data = buf.split().freeze();
                buf.reserve(piece_for(received));
                let len = data.len() as u64;
                let h = land(flight, hashers).await?;
                let ino = dest.file(fs, cred).await?;
                *flight = Some(launch(fs, cred, ino, offset, data, h));
                offset += len;
            }
        }
    }
    if let Some(n) = expected {
        if received != n {
            return Err(S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            ));
        }
    }
    let mut last = None;
    if !buf.is_empty() {
        let data = buf.split().freeze();
        if Md5::shares(data.len()) {
            let h = land(flight, hashers).await?;
            let ino = dest.file(fs, cred).await?;
            *flight = Some(launch(fs, cred, ino, offset, data, h));
        } else {
            last = Some((offset, data));
        }
    }
    Ok(Tail {
        hashers: land(flight, hashers).await?,
        last,
        size: received,
    })
}

fn too_long(expected: Option<u64>) -> S3Error {
    match expected {
        Some(_) => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            "The request body is longer than its Content-Length.",
        ),
        None => S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size.",
        ),
    }
}

/// Waits for the write in flight (if any) and returns the hashers.
async fn land(flight: &mut Option<Flight>, idle: &mut Option<Hashers>) -> S3Result<Hashers> {
    if let Some(f) = flight.take() {
        return f.await.map_err(internal)?;
    }
    idle.take().ok_or_else(|| internal("upload hashers lost"))
}

/// Writes a piece on the blocking pool while the shared hashing thread
/// hashes it (every piece but a small last one is large enough).
fn launch(
    fs: &Arc<FileSystem>,
    cred: &Credentials,
    ino: InodeId,
    offset: u64,
    data: Bytes,
    h: Hashers,
) -> Flight {
    let Hashers { md5, mut others } = h;
    let fs = Arc::clone(fs);
    let cred = cred.clone();
    // The blocking part: the other checksums and the write.
    let write = move |piece: &[u8]| {
        others.update(piece);
        fs.write(&cred, ino, offset, piece, false)
            .map_err(fs_error)?;
        Ok::<_, S3Error>(others)
    };
    let piece = data.clone();
    let write = tokio::task::spawn_blocking(move || write(&piece));
    tokio::spawn(async move {
        let (md5, written) = tokio::join!(md5.update_shared(data), write);
        let others = written.map_err(internal)??;
        Ok(Hashers { md5, others })
    })
}

/// Maps an error from the request body stream. s3s's payload checks
/// (x-amz-content-sha256, aws-chunked signatures) fail inside the body
/// stream with error types it does not export, so they are told apart by
/// their messages.
fn body_error(e: s3s::StdError) -> S3Error {
    let e = match e.downcast::<S3Error>() {
        Ok(s3) => return *s3,
        Err(e) => e,
    };
    let text = e.to_string();
    tracing::debug!(error = %text, "request body failed");
    if text.contains("Sha256Mismatch") {
        let mut err = S3Error::with_message(
            crate::error::custom("XAmzContentSHA256Mismatch"),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(hyper::StatusCode::BAD_REQUEST);
        return err;
    }
    if text.contains("SignatureMismatch") {
        return S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.",
        );
    }
    if text.contains("FormatError") || text.contains("TooLarge") || text.contains("TooMany") {
        return S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!("The aws-chunked request body is malformed: {text}"),
        );
    }
    S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )
}

/// Copies `[start, end)` of file `src` into file `dst` at offset 0
/// (blocking; for CopyObject and UploadPartCopy). Returns what was written.
pub fn copy_range(
    fs: &FileSystem,
    cred: &Credentials,
    src: InodeId,
    start: u64,
    end: u64,
    dst: InodeId,
    mut others: ChecksumHasher,
) -> S3Result<Written> {
    let mut md5 = Md5::new();
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(PIECE as u64) as u32;
        let r = fs.read(cred, src, pos, n).map_err(fs_error)?;
        if r.data.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "The source object changed during the copy.",
            ));
        }
        md5.update(&r.data);
        others.update(&r.data);
        fs.write(cred, dst, pos - start, &r.data, false)
            .map_err(fs_error)?;
        pos += r.data.len() as u64;
    }
    Ok(Written {
        size: end - start,
        md5: md5.finalize(),
        checksum: others.finalize(),
    })
}

/// Ranges this long or shorter are read in one piece before the answer
/// ([`read_small`]), as NFS answers small READs.
pub const SMALL_READ: u64 = 64 * 1024;

/// `[start, end)` of file `ino`, read at once: on the executor when every
/// byte is in memory (the page cache) and the blocking pool otherwise,
/// with no reading task and channel behind the body. `None` if the file
/// is gone (the object was deleted or replaced since it was looked up).
pub async fn read_small(
    fs: &Arc<FileSystem>,
    cred: &Credentials,
    ino: InodeId,
    start: u64,
    end: u64,
) -> S3Result<Option<StreamingBlob>> {
    let n = u32::try_from(end - start).map_err(internal)?;
    let cred = cred.clone();
    let read = move |fs: &FileSystem| match fs.read(&cred, ino, start, n) {
        Ok(r) => Ok(Some(r.data)),
        Err(FsError::Stale | FsError::NotFound) => Ok(None),
        Err(e) => Err(fs_error(e)),
    };
    // Where reads cannot be answered from memory, every attempt would miss.
    let data = if fs.reads_cached() {
        crate::ns::quick(fs, read).await?
    } else {
        crate::ns::blocking(fs, read).await?
    };
    let Some(data) = data else {
        return Ok(None);
    };
    if data.len() != n as usize {
        return Err(internal(format!(
            "inode {ino}: {} bytes read of {n}: the object was truncated while it was read",
            data.len()
        )));
    }
    Ok(Some(StreamingBlob::from(s3s::Body::from(data))))
}

/// The default of how long (`[s3] stall_timeout_secs`) an upload's client
/// may send nothing and a GET's client may take nothing. A GET's body
/// then gives up: the reading task ends and lets go of the file it pinned
/// (whose bytes are kept, even if the object was replaced or deleted, only
/// while the client reads), and the body ends short of its Content-Length,
/// so hyper aborts the connection once what was already queued has gone
/// out, or once its write has waited as long again for a client that
/// takes nothing (`nitrofs_common::stall::StallGuard`).
pub const DEFAULT_STALL: Duration = Duration::from_secs(300);

/// A response body streaming `[start, end)` of file `ino`, opened before
/// the answer so a PUT or DELETE of the key meanwhile does not cut it
/// short: the bytes it sends are those of the file it opened
/// ([`nitrofs_core_fs::PinnedRead`]). `None` if the file is gone or no
/// longer `size` bytes long (the object was replaced since it was looked
/// up).
#[allow(clippy::too_many_arguments)]
pub async fn open_body(
    fs: &Arc<FileSystem>,
    cred: &Credentials,
    ino: InodeId,
    size: u64,
    start: u64,
    end: u64,
    stall: Duration,
) -> S3Result<Option<StreamingBlob>> {
    let (shared, cred) = (Arc::clone(fs), cred.clone());
    let opened = crate::ns::quick(fs, move |_| {
        match FileSystem::open_read(&shared, &cred, ino) {
            Ok(p) if p.attr().size == size => Ok(Some(p)),
            Ok(_) | Err(FsError::Stale | FsError::NotFound) => Ok(None),
            Err(e) => Err(fs_error(e)),
        }
    })
    .await?;
    let Some(file) = opened else {
        return Ok(None);
    };
    let file = Arc::new(file);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(PIECE as u64) as u32;
            let f = Arc::clone(&file);
            let got = tokio::task::spawn_blocking(move || f.read(pos, n)).await;
            let piece = match got {
                Ok(Ok(data)) if !data.is_empty() => Ok(data),
                Ok(Ok(_)) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object was truncated while it was read",
                )),
                Ok(Err(e)) => Err(std::io::Error::other(e.to_string())),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let failed = piece.is_err();
            if let Ok(p) = &piece {
                pos += p.len() as u64;
            }
            match tokio::time::timeout(stall, tx.send(piece)).await {
                Ok(Ok(())) if !failed => {}
                // The client is gone, or the read failed.
                Ok(_) => break,
                Err(_) => {
                    tracing::info!(
                        ino,
                        "GET body given up: its client took nothing for {stall:?}"
                    );
                    break;
                }
            }
        }
    });
    Ok(Some(StreamingBlob::new(FileBody {
        rx,
        remaining: (end - start) as usize,
    })))
}

struct FileBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    remaining: usize,
}

impl futures::Stream for FileBody {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len());
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ByteStream for FileBody {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}
