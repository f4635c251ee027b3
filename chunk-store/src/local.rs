//! The local chunk engine: one file per chunk under
//! `<root>/<ino % 256 as 2 hex>/<ino as 16 hex>/<index as 16 hex>`.
//!
//! Files are written in place with positional I/O and are sparse, so a
//! small file costs one small chunk file and a hole costs nothing. New
//! files and directories, and removed chunks, are made durable (directory
//! fsync) by `sync`.

use crate::{ChunkError, ChunkId, ChunkResult, ChunkStore, SpaceStats};
use bytes::{Bytes, BytesMut};
use nitrofs_common::crashsafe;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many chunk files are kept open between calls.
const OPEN_FILE_CACHE: usize = 512;

/// Chunks stored as files in a local directory.
pub struct LocalChunkStore {
    root: PathBuf,
    open: Mutex<HashMap<ChunkId, Arc<File>>>,
    /// Chunks written since their last sync, per inode; the bool records
    /// whether the chunk file (or its directory) was created, so the
    /// directory must be fsynced too.
    dirty: Mutex<HashMap<u64, HashMap<u64, bool>>>,
}

impl LocalChunkStore {
    /// Opens (creating if missing) a chunk store rooted at `root`.
    pub fn open(root: &Path) -> ChunkResult<Self> {
        crashsafe::create_dir_all_durable(root).map_err(ChunkError::from_io)?;
        Ok(Self {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashMap::new()),
        })
    }

    fn inode_dir(&self, ino: u64) -> PathBuf {
        self.root
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}"))
    }

    fn chunk_path(&self, id: ChunkId) -> PathBuf {
        self.inode_dir(id.ino).join(format!("{:016x}", id.index))
    }

    fn cached(&self, id: ChunkId) -> Option<Arc<File>> {
        self.open.lock().get(&id).cloned()
    }

    fn remember(&self, id: ChunkId, f: Arc<File>) {
        let mut open = self.open.lock();
        if open.len() >= OPEN_FILE_CACHE {
            // Drop an arbitrary half: cheap, and hot files are reopened.
            let victims: Vec<ChunkId> = open.keys().take(OPEN_FILE_CACHE / 2).copied().collect();
            for v in victims {
                open.remove(&v);
            }
        }
        open.insert(id, f);
    }

    fn forget_inode(&self, ino: u64, from_index: u64) {
        self.open
            .lock()
            .retain(|id, _| !(id.ino == ino && id.index >= from_index));
    }

    /// Opens an existing chunk for reading, or `None` for a hole.
    fn open_existing(&self, id: ChunkId) -> ChunkResult<Option<Arc<File>>> {
        if let Some(f) = self.cached(id) {
            return Ok(Some(f));
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.chunk_path(id))
        {
            Ok(f) => {
                let f = Arc::new(f);
                self.remember(id, f.clone());
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChunkError::from_io(e)),
        }
    }

    /// Opens a chunk for writing, creating file and directories as needed.
    /// Returns the file and whether anything was created.
    fn open_for_write(&self, id: ChunkId) -> ChunkResult<(Arc<File>, bool)> {
        if let Some(f) = self.open_existing(id)? {
            return Ok((f, false));
        }
        let dir = self.inode_dir(id.ino);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(ChunkError::from_io)?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.chunk_path(id))
            .map_err(ChunkError::from_io)?;
        let f = Arc::new(f);
        self.remember(id, f.clone());
        Ok((f, true))
    }
}

fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl ChunkStore for LocalChunkStore {
    fn read(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Bytes> {
        let Some(f) = self.open_existing(id)? else {
            return Ok(Bytes::new());
        };
        let mut buf = BytesMut::zeroed(len);
        let n = read_full_at(&f, &mut buf, offset).map_err(ChunkError::from_io)?;
        buf.truncate(n);
        Ok(buf.freeze())
    }

    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()> {
        let (f, created) = self.open_for_write(id)?;
        f.write_all_at(data, offset).map_err(ChunkError::from_io)?;
        let mut dirty = self.dirty.lock();
        let entry = dirty
            .entry(id.ino)
            .or_default()
            .entry(id.index)
            .or_insert(false);
        *entry |= created;
        Ok(())
    }

    fn truncate(&self, id: ChunkId, len: u64) -> ChunkResult<()> {
        if let Some(f) = self.open_existing(id)? {
            f.set_len(len).map_err(ChunkError::from_io)?;
            self.dirty
                .lock()
                .entry(id.ino)
                .or_default()
                .entry(id.index)
                .or_insert(false);
        }
        Ok(())
    }

    fn remove_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        self.forget_inode(ino, from_index);
        if let Some(d) = self.dirty.lock().get_mut(&ino) {
            d.retain(|idx, _| *idx < from_index);
        }
        let dir = self.inode_dir(ino);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ChunkError::from_io(e)),
        };
        let mut remaining = 0usize;
        for entry in entries {
            let entry = entry.map_err(ChunkError::from_io)?;
            let name = entry.file_name();
            let index = name.to_str().and_then(|n| u64::from_str_radix(n, 16).ok());
            match index {
                Some(i) if i >= from_index => match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ChunkError::from_io(e)),
                },
                _ => remaining += 1,
            }
        }
        if remaining == 0 {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::from_io(e)),
            }
            self.dirty.lock().remove(&ino);
        }
        Ok(())
    }

    fn remove(&self, id: ChunkId) -> ChunkResult<()> {
        self.open.lock().remove(&id);
        match fs::remove_file(self.chunk_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ChunkError::from_io(e)),
        }
        // `true`: the directory's entry list changed, so `sync` fsyncs it
        // (and `sync` skips the file itself, which is gone).
        self.dirty
            .lock()
            .entry(id.ino)
            .or_default()
            .insert(id.index, true);
        Ok(())
    }

    fn indexes(&self, ino: u64) -> ChunkResult<Vec<u64>> {
        let entries = match fs::read_dir(self.inode_dir(ino)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ChunkError::from_io(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ChunkError::from_io)?;
            if let Some(index) = entry
                .file_name()
                .to_str()
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                out.push(index);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn sync(&self, ino: u64) -> ChunkResult<()> {
        let Some(chunks) = self.dirty.lock().remove(&ino) else {
            return Ok(());
        };
        let mut created_any = false;
        for (index, created) in &chunks {
            let id = ChunkId { ino, index: *index };
            if let Some(f) = self.open_existing(id)? {
                f.sync_data().map_err(ChunkError::from_io)?;
            }
            created_any |= created;
        }
        if created_any {
            let dir = self.inode_dir(ino);
            match crashsafe::fsync_dir(&dir) {
                Ok(()) => {}
                // Removed meanwhile by `remove_from`: nothing left to sync
                // in it; its parent still is.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::from_io(e)),
            }
            if let Some(parent) = dir.parent() {
                crashsafe::fsync_dir(parent).map_err(ChunkError::from_io)?;
            }
        }
        Ok(())
    }

    fn sync_all(&self) -> ChunkResult<()> {
        let inodes: Vec<u64> = self.dirty.lock().keys().copied().collect();
        for ino in inodes {
            self.sync(ino)?;
        }
        Ok(())
    }

    fn inodes(&self) -> ChunkResult<Vec<u64>> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.root).map_err(ChunkError::from_io)? {
            let shard = shard.map_err(ChunkError::from_io)?;
            if !shard.file_type().map_err(ChunkError::from_io)?.is_dir() {
                continue;
            }
            for d in fs::read_dir(shard.path()).map_err(ChunkError::from_io)? {
                let d = d.map_err(ChunkError::from_io)?;
                if let Some(ino) = d
                    .file_name()
                    .to_str()
                    .and_then(|n| u64::from_str_radix(n, 16).ok())
                {
                    out.push(ino);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn space(&self) -> ChunkResult<SpaceStats> {
        let st = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| ChunkError::from_io(io::Error::from(e)))?;
        let frag = st.fragment_size() as u64;
        Ok(SpaceStats {
            total_bytes: st.blocks() as u64 * frag,
            free_bytes: st.blocks_free() as u64 * frag,
            avail_bytes: st.blocks_available() as u64 * frag,
            total_files: st.files() as u64,
            free_files: st.files_free() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalChunkStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = LocalChunkStore::open(&dir.path().join("chunks")).expect("open");
        (dir, s)
    }

    #[test]
    fn unwritten_chunk_reads_empty_and_written_bytes_read_back() {
        let (_d, s) = store();
        let id = ChunkId { ino: 5, index: 2 };
        assert!(s.read(id, 0, 10).expect("read").is_empty());
        s.write(id, 3, b"hello").expect("write");
        assert_eq!(&s.read(id, 0, 16).expect("read")[..], b"\0\0\0hello");
        assert_eq!(&s.read(id, 4, 2).expect("read")[..], b"el");
        s.sync(5).expect("sync");
    }

    #[test]
    fn truncate_and_remove_from_drop_data() {
        let (_d, s) = store();
        for index in 0..4 {
            s.write(ChunkId { ino: 9, index }, 0, b"abcdef")
                .expect("write");
        }
        s.truncate(ChunkId { ino: 9, index: 1 }, 2)
            .expect("truncate");
        assert_eq!(
            &s.read(ChunkId { ino: 9, index: 1 }, 0, 10).expect("read")[..],
            b"ab"
        );
        s.remove_from(9, 2).expect("remove");
        assert!(s
            .read(ChunkId { ino: 9, index: 3 }, 0, 10)
            .expect("read")
            .is_empty());
        assert_eq!(s.inodes().expect("inodes"), vec![9]);
        s.remove_from(9, 0).expect("remove all");
        assert!(s.inodes().expect("inodes").is_empty());
    }

    #[test]
    fn remove_deletes_one_chunk_and_sync_makes_it_durable() {
        let (_d, s) = store();
        for index in [7, 2, 40] {
            s.write(ChunkId { ino: 3, index }, 0, b"data")
                .expect("write");
        }
        s.sync(3).expect("sync");
        // Cache the open file, then remove: the read must not see it.
        assert_eq!(
            &s.read(ChunkId { ino: 3, index: 7 }, 0, 4).expect("read")[..],
            b"data"
        );
        s.remove(ChunkId { ino: 3, index: 7 }).expect("remove");
        assert!(s
            .dirty
            .lock()
            .get(&3)
            .is_some_and(|d| d.get(&7) == Some(&true)));
        s.sync(3).expect("sync after remove");
        assert!(s.dirty.lock().get(&3).is_none());
        assert!(s
            .read(ChunkId { ino: 3, index: 7 }, 0, 4)
            .expect("read")
            .is_empty());
        assert_eq!(s.indexes(3).expect("indexes"), vec![2, 40]);
        // Absent chunk, absent inode: both fine, nothing to sync.
        s.remove(ChunkId { ino: 3, index: 7 })
            .expect("remove again");
        s.remove(ChunkId { ino: 99, index: 0 })
            .expect("remove absent");
        assert!(s.dirty.lock().get(&99).is_none());
    }

    #[test]
    fn indexes_are_sorted_and_ignore_foreign_names() {
        let (_d, s) = store();
        assert!(s.indexes(8).expect("no inode").is_empty());
        for index in [300, 1, 0x1_0000_0000] {
            s.write(ChunkId { ino: 8, index }, 0, b"x").expect("write");
        }
        fs::write(s.inode_dir(8).join("not-a-chunk"), b"").expect("foreign file");
        assert_eq!(s.indexes(8).expect("indexes"), vec![1, 300, 0x1_0000_0000]);
    }

    #[test]
    fn sync_tolerates_a_directory_removed_after_a_remove() {
        let (_d, s) = store();
        s.write(ChunkId { ino: 4, index: 0 }, 0, b"x")
            .expect("write");
        s.write(ChunkId { ino: 4, index: 1 }, 0, b"y")
            .expect("write");
        s.sync(4).expect("sync");
        s.remove(ChunkId { ino: 4, index: 0 }).expect("remove");
        // Another caller empties the inode and its directory goes away.
        fs::remove_file(s.chunk_path(ChunkId { ino: 4, index: 1 })).expect("rm");
        fs::remove_dir(s.inode_dir(4)).expect("rmdir");
        s.sync(4).expect("sync of a vanished directory");
    }

    #[test]
    fn space_reports_a_real_device() {
        let (_d, s) = store();
        let sp = s.space().expect("space");
        assert!(sp.total_bytes > 0 && sp.free_bytes <= sp.total_bytes);
    }
}
