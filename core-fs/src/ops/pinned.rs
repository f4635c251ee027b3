//! Reads that keep the bytes they started on. An S3 GET sends an object
//! in many pieces; a PUT that replaces the object (or a DELETE) meanwhile
//! must not cut that answer short, since S3 clients expect the object they
//! were promised in the headers, whole. [`FileSystem::open_read`] takes the
//! file's record and pins its data inodes: while a pin is held, deleting
//! their chunks waits, and the last reader to finish runs it. A crash in
//! between leaves the GC record to the collector at the next start.

use super::io::data_file;
use crate::perm::{self, R};
use crate::record::InodeRecord;
use crate::types::Attr;
use crate::{FileSystem, FsError, FsResult};
use bytes::Bytes;
use nitrofs_common::{Credentials, InodeId};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Data inodes being read, with how many readers each and whether its
/// chunks are to be deleted once the last one is done.
#[derive(Default)]
pub(crate) struct ReadPins {
    pins: Mutex<HashMap<u64, Pin>>,
}

#[derive(Default)]
struct Pin {
    readers: usize,
    delete_after: bool,
}

impl ReadPins {
    fn pin(&self, data: &[u64]) {
        let mut pins = self.pins.lock();
        for ino in data {
            pins.entry(*ino).or_default().readers += 1;
        }
    }

    /// Drops one reader of each of `data`; returns those whose chunks
    /// must now be deleted.
    fn unpin(&self, data: &[u64]) -> Vec<u64> {
        let mut pins = self.pins.lock();
        let mut due = Vec::new();
        for ino in data {
            let Some(pin) = pins.get_mut(ino) else {
                continue;
            };
            pin.readers = pin.readers.saturating_sub(1);
            if pin.readers == 0 {
                if pin.delete_after {
                    due.push(*ino);
                }
                pins.remove(ino);
            }
        }
        due
    }

    /// Whether `ino` is being read; if so, its chunk deletion is left to
    /// its last reader.
    pub(crate) fn defer_deletion(&self, ino: u64) -> bool {
        match self.pins.lock().get_mut(&ino) {
            Some(pin) => {
                pin.delete_after = true;
                true
            }
            None => false,
        }
    }
}

/// A file opened for reading by [`FileSystem::open_read`]: its bytes as
/// they were when opened, even if its name is given to another file or
/// removed meanwhile. Changes to the file itself are not held back: an
/// NFS WRITE shows, and a read past a new, shorter end fails (as reading
/// the file by number would), rather than returning the cut bytes as
/// zeros. Dropping it lets a deletion that waited for it run.
pub struct PinnedRead {
    fs: Arc<FileSystem>,
    source: Source,
}

enum Source {
    /// A live file: its record and pinned data inodes, and its inline
    /// bytes as they were at the open (at most the inline limit; a later
    /// replacement deletes them at once). Past them, up to the size, the
    /// file reads as zeros.
    Live {
        rec: InodeRecord,
        data: Vec<u64>,
        inline: Option<Bytes>,
    },
    /// A file inside a snapshot, whose data stays until the snapshot is
    /// deleted: read through the snapshot's view.
    Snapshot {
        cred: Credentials,
        ino: InodeId,
        attr: Attr,
    },
}

impl FileSystem {
    /// Opens regular file `ino` for reading (needs read permission). Fails
    /// with `NotFound` or `Stale` if the file is gone by the time its data
    /// is pinned.
    pub fn open_read(fs: &Arc<Self>, cred: &Credentials, ino: InodeId) -> FsResult<PinnedRead> {
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            let attr = fs.getattr(ino)?;
            // The view checks type and permission at each read.
            fs.snap_read(cred, ino, 0, 0)?;
            return Ok(PinnedRead {
                fs: Arc::clone(fs),
                source: Source::Snapshot {
                    cred: cred.clone(),
                    ino,
                    attr,
                },
            });
        }
        let rec = fs.read_inode(ino)?;
        data_file(&rec)?;
        perm::check_data(&mut fs.store_acls(), &rec, cred, R)?;
        let data = rec.data_inodes();
        fs.read_pins.pin(&data);
        let mut pinned = PinnedRead {
            fs: Arc::clone(fs),
            source: Source::Live {
                rec,
                data,
                inline: None,
            },
        };
        // Pinned, then looked at again: a deletion that ran before the pin
        // had already removed the record (it deletes chunks only after its
        // commit), so a record still there with the same data is safe.
        if let Source::Live { rec, data, inline } = &mut pinned.source {
            if &fs.read_inode(ino)?.data_inodes() != data {
                return Err(FsError::Stale);
            }
            if rec.inline {
                // None: no bytes yet, or moved to chunks since `rec` was
                // read; each read then goes through `gather`, which knows.
                *inline = fs.read_inline(rec)?;
            }
            fs.touch_atime(rec)?;
        }
        Ok(pinned)
    }
}

impl std::fmt::Debug for PinnedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attr = self.attr();
        f.debug_struct("PinnedRead")
            .field("ino", &attr.ino)
            .field("size", &attr.size)
            .finish()
    }
}

impl PinnedRead {
    /// The file's attributes when it was opened.
    pub fn attr(&self) -> Attr {
        match &self.source {
            Source::Live { rec, .. } => rec.attr(),
            Source::Snapshot { attr, .. } => attr.clone(),
        }
    }

    /// Up to `count` bytes at `offset` (fewer at the end of the file).
    /// Holes read as zeros.
    pub fn read(&self, offset: u64, count: u32) -> FsResult<Bytes> {
        let (rec, data) = match &self.source {
            Source::Live { rec, data, inline } => {
                if let Some(bytes) = inline {
                    if offset >= rec.size {
                        return Ok(Bytes::new());
                    }
                    let n = u64::from(count).min(rec.size - offset);
                    return Ok(super::io::padded_range(bytes, offset, n));
                }
                (rec, data)
            }
            Source::Snapshot { cred, ino, .. } => {
                return Ok(self.fs.snap_read(cred, *ino, offset, count)?.data);
            }
        };
        if offset >= rec.size {
            return Ok(Bytes::new());
        }
        let end = rec.size.min(offset.saturating_add(u64::from(count)));
        let pieces = self.fs.gather(rec, offset, end - offset, false)?;
        // Truncation cuts a file's chunks in place (no deletion waits for
        // it), so the gathered bytes may hold zeros for a cut tail. A file
        // still there must still reach `end`; one that is gone (replaced,
        // removed) had its chunks kept by the pin.
        match self.fs.read_inode(rec.ino) {
            Ok(now) if now.size < end || &now.data_inodes() != data => {
                return Err(FsError::Io(format!(
                    "inode {}: truncated or rewritten while it was read",
                    rec.ino
                )));
            }
            Ok(_) | Err(FsError::Stale | FsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        Ok(super::io::joined(pieces))
    }

    /// Ends the read on this thread, which then deletes the chunks that
    /// waited for it (it may wait for the disk; inside
    /// [`nitrofs_metadata::deferring_sync`] they are left to the collector
    /// at the next start, as every deletion there is). Dropping a reader
    /// does the same on a pool thread.
    pub fn close(mut self) {
        for ino in self.unpin() {
            self.fs.delete_chunks(ino);
        }
    }

    /// Drops this reader's pins (once); the data inodes whose deletion is
    /// now due.
    fn unpin(&mut self) -> Vec<u64> {
        match &mut self.source {
            Source::Live { data, .. } => self.fs.read_pins.unpin(&std::mem::take(data)),
            Source::Snapshot { .. } => Vec::new(),
        }
    }
}

impl Drop for PinnedRead {
    fn drop(&mut self) {
        let due = self.unpin();
        if due.is_empty() {
            return;
        }
        // Deleting chunks waits for the disk, and a reader may be dropped
        // on an async executor: a pool thread does it.
        let fs = Arc::clone(&self.fs);
        let _ = nitrofs_common::beside::run(move || {
            for ino in due {
                fs.delete_chunks(ino);
            }
        });
    }
}
