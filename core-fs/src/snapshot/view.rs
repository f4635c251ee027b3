//! Reading a snapshot: the `.snapshot` directory of a volume root and
//! the read-only tree under `.snapshot/<name>/`.
//!
//! An object inside snapshot `epoch` has inode number `vino(epoch, ino)`.
//! Each record it reads comes from the oldest `HISTORY` at or after the
//! snapshot that holds it, else from the live volume; inodes at or above
//! the snapshot's high-water mark did not exist then. Namespace reads of
//! one call go through one metadata transaction (a consistent view).

use super::admin::decode_location;
use super::state::{
    decode_history, split_ino, vino, SnapState, SnapshotRecord, SNAPDIR_EPOCH, SNAPSHOT_DIR,
};
use crate::acl::{self, Acl, AclKind, AclSource};
use crate::perm::{self, R};
use crate::record::{self, DentryRecord, InodeRecord, FIRST_COOKIE};
use crate::types::{access, Attr, DirEntry, FileType, ReadDirPage, ReadResult};
use crate::{FileSystem, FsError, FsResult};
use bytes::{Bytes, BytesMut};
use nitrofs_chunk_store::ChunkId;
use nitrofs_common::Credentials;
use nitrofs_metadata::{keys, prefix_end, KvPair, Txn};
use std::collections::BTreeSet;

/// One snapshot, as its readers need it.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub epoch: u64,
    pub next_inode: u64,
    /// Snapshot epochs at or after this one, oldest first: where the
    /// records it saw may have been kept.
    pub later: Vec<u64>,
    /// The volume's root inode.
    pub root: u64,
}

/// ACL records as a snapshot saw them. Snapshots never change, so each
/// read may use a transaction of its own.
struct ViewAcls<'a> {
    fs: &'a FileSystem,
    v: &'a View,
}

impl AclSource for ViewAcls<'_> {
    fn acl_record(&mut self, ino: u64, kind: AclKind) -> FsResult<Option<Vec<u8>>> {
        let mut txn = self.fs.kv.begin();
        self.fs.view_get(txn.as_mut(), self.v, &kind.key(ino), ino)
    }
}

fn not_found_is_stale(e: FsError) -> FsError {
    match e {
        FsError::NotFound => FsError::Stale,
        e => e,
    }
}

impl FileSystem {
    /// The snapshot with `epoch`, from the cache or the metadata.
    fn snapshot_by_epoch(&self, epoch: u64) -> FsResult<(u32, SnapshotRecord)> {
        if let Some(hit) = self.snap_cache.lock().get(&epoch) {
            return Ok(hit.clone());
        }
        let p = vec![keys::SNAPSHOT];
        let mut found = None;
        let mut cache = std::collections::HashMap::new();
        for (k, v) in self.kv.scan(&p, &prefix_end(&p), usize::MAX)? {
            let vol: [u8; 4] = k
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| FsError::Io("corrupt snapshot key".into()))?;
            let rec = SnapshotRecord::decode(&v)?;
            let entry = (u32::from_be_bytes(vol), rec);
            if entry.1.epoch == epoch {
                found = Some(entry.clone());
            }
            cache.insert(entry.1.epoch, entry);
        }
        *self.snap_cache.lock() = cache;
        found.ok_or(FsError::NotFound)
    }

    /// The view of snapshot `epoch` (stale when it is gone).
    pub(crate) fn view(&self, epoch: u64) -> FsResult<View> {
        let (volume, rec) = self.snapshot_by_epoch(epoch).map_err(not_found_is_stale)?;
        if rec.deleting {
            return Err(FsError::Stale);
        }
        let state = self.snap_state(volume)?;
        let root = self.volume_by_id(volume).map_err(not_found_is_stale)?.root;
        Ok(view_of(&rec, &state, root))
    }

    /// Reads `key` (owned by inode `owner`) as snapshot `v` saw it.
    fn view_get(
        &self,
        txn: &mut dyn Txn,
        v: &View,
        key: &[u8],
        owner: u64,
    ) -> FsResult<Option<Vec<u8>>> {
        if owner >= v.next_inode {
            return Ok(None);
        }
        for epoch in &v.later {
            if let Some(h) = txn.get(&keys::history(*epoch, key))? {
                return Ok(decode_history(&h)?.map(<[u8]>::to_vec));
            }
        }
        Ok(txn.get(key)?)
    }

    /// Reads ACLs as snapshot `v` saw them, for permission checks.
    fn view_acls<'a>(&'a self, v: &'a View) -> ViewAcls<'a> {
        ViewAcls { fs: self, v }
    }

    /// The ACL of `kind` on a snapshot object, as the snapshot saw it
    /// (an access ACL with the object's mode applied).
    pub(crate) fn snap_acl(&self, ino: u64, kind: AclKind) -> FsResult<Option<Acl>> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            return Ok(None);
        }
        let v = self.view(epoch)?;
        let rec = {
            let mut txn = self.kv.begin();
            self.view_inode(txn.as_mut(), &v, live)?
        };
        let mut src = self.view_acls(&v);
        match kind {
            AclKind::Access => acl::load_access(&mut src, &rec),
            AclKind::Default => acl::load(&mut src, live, kind),
        }
    }

    fn view_inode(&self, txn: &mut dyn Txn, v: &View, ino: u64) -> FsResult<InodeRecord> {
        match self.view_get(txn, v, &keys::inode(ino), ino)? {
            Some(b) => InodeRecord::decode(&b),
            None => Err(FsError::Stale),
        }
    }

    /// Attributes of a snapshot object: its own inode number, and no
    /// write bits a client could be misled by are removed (writes fail
    /// with a read-only error instead).
    fn view_attr(&self, v: &View, rec: &InodeRecord) -> Attr {
        let mut a = rec.attr();
        a.ino = vino(v.epoch, rec.ino);
        a
    }

    /// The `.snapshot` directory of the volume whose root is `root`.
    pub(crate) fn snapdir_attr(&self, root: &InodeRecord) -> Attr {
        let mut a = root.attr();
        a.ino = vino(SNAPDIR_EPOCH, root.ino);
        a.mode = 0o555;
        a.nlink = 2;
        a
    }

    fn live_root(&self, root: u64) -> FsResult<InodeRecord> {
        let r = self.read_inode(root)?;
        if r.kind != FileType::Directory || r.parent != r.ino {
            return Err(FsError::Stale);
        }
        Ok(r)
    }

    /// `getattr` of an inode number above the live range.
    pub(crate) fn snap_getattr(&self, ino: u64) -> FsResult<Attr> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            return Ok(self.snapdir_attr(&self.live_root(live)?));
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let rec = self.view_inode(txn.as_mut(), &v, live)?;
        Ok(self.view_attr(&v, &rec))
    }

    /// Whether `name` in live directory `dir` is the `.snapshot` entry.
    pub(crate) fn is_snapdir_name(dir: &InodeRecord, name: &[u8]) -> bool {
        name == SNAPSHOT_DIR && dir.kind == FileType::Directory && dir.parent == dir.ino
    }

    /// `lookup` in a directory above the live range.
    pub(crate) fn snap_lookup(&self, cred: &Credentials, dir: u64, name: &[u8]) -> FsResult<Attr> {
        let (epoch, live) = split_ino(dir);
        if epoch == SNAPDIR_EPOCH {
            let root = self.live_root(live)?;
            perm::check_search(&mut self.store_acls(), &root, cred)?;
            return match name {
                b"." => Ok(self.snapdir_attr(&root)),
                b".." => Ok(root.attr()),
                _ => {
                    let name = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
                    let key = keys::snapshot(root.volume, name);
                    let rec = match self.kv.get(&key)? {
                        Some(b) => SnapshotRecord::decode(&b)?,
                        None => return Err(FsError::NotFound),
                    };
                    if rec.deleting {
                        return Err(FsError::NotFound);
                    }
                    self.snap_getattr(vino(rec.epoch, root.ino))
                }
            };
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let d = self.view_inode(txn.as_mut(), &v, live)?;
        perm::check_search(&mut self.view_acls(&v), &d, cred)?;
        match name {
            b"." => return Ok(self.view_attr(&v, &d)),
            b".." => {
                if d.ino == v.root {
                    return Ok(self.snapdir_attr(&self.live_root(v.root)?));
                }
                let p = self.view_inode(txn.as_mut(), &v, d.parent)?;
                return Ok(self.view_attr(&v, &p));
            }
            _ => {}
        }
        super::super::ops::lookup::validate_name(name)?;
        let entry = match self.view_get(txn.as_mut(), &v, &keys::dentry(live, name), live)? {
            Some(b) => DentryRecord::decode(&b)?,
            None => return Err(FsError::NotFound),
        };
        let child = self
            .view_inode(txn.as_mut(), &v, entry.ino)
            .map_err(|e| match e {
                FsError::Stale => FsError::NotFound,
                e => e,
            })?;
        Ok(self.view_attr(&v, &child))
    }

    /// Checks a file handle naming a snapshot object.
    pub(crate) fn snap_resolve(&self, volume: u32, ino: u64, generation: u32) -> FsResult<Attr> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            let root = self.live_root(live)?;
            if root.volume != volume || root.generation != generation {
                return Err(FsError::Stale);
            }
            return Ok(self.snapdir_attr(&root));
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let rec = self.view_inode(txn.as_mut(), &v, live)?;
        if rec.generation != generation || rec.volume != volume {
            return Err(FsError::Stale);
        }
        Ok(self.view_attr(&v, &rec))
    }

    /// NFS ACCESS on a snapshot object: what reading allows, never more.
    pub(crate) fn snap_access(
        &self,
        cred: &Credentials,
        ino: u64,
        want: u32,
    ) -> FsResult<(Attr, u32)> {
        let read_only = access::READ | access::LOOKUP | access::EXECUTE;
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            let root = self.live_root(live)?;
            let granted = perm::access_mask(&mut self.store_acls(), &root, cred, want)? & read_only;
            return Ok((self.snapdir_attr(&root), granted));
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let rec = self.view_inode(txn.as_mut(), &v, live)?;
        let granted = perm::access_mask(&mut self.view_acls(&v), &rec, cred, want)? & read_only;
        Ok((self.view_attr(&v, &rec), granted))
    }

    /// READLINK inside a snapshot.
    pub(crate) fn snap_readlink(&self, ino: u64) -> FsResult<(Attr, Vec<u8>)> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            return Err(FsError::Invalid("not a symbolic link"));
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let rec = self.view_inode(txn.as_mut(), &v, live)?;
        match (&rec.kind, &rec.target) {
            (FileType::Symlink, Some(t)) => Ok((self.view_attr(&v, &rec), t.clone())),
            _ => Err(FsError::Invalid("not a symbolic link")),
        }
    }

    /// READ inside a snapshot.
    pub(crate) fn snap_read(
        &self,
        cred: &Credentials,
        ino: u64,
        offset: u64,
        count: u32,
    ) -> FsResult<ReadResult> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            return Err(FsError::IsDir);
        }
        let v = self.view(epoch)?;
        let rec = {
            let mut txn = self.kv.begin();
            self.view_inode(txn.as_mut(), &v, live)?
        };
        crate::ops::io::data_file(&rec)?;
        perm::check_data(&mut self.view_acls(&v), &rec, cred, R)?;
        let attr = self.view_attr(&v, &rec);
        if offset >= rec.size {
            return Ok(ReadResult {
                attr,
                data: Bytes::new(),
                eof: true,
            });
        }
        let end = rec.size.min(offset.saturating_add(u64::from(count)));
        if rec.inline {
            let bytes = {
                let mut txn = self.kv.begin();
                self.view_get(txn.as_mut(), &v, &keys::inline(live), live)?
            };
            return Ok(ReadResult {
                attr,
                data: crate::ops::io::padded_range(
                    &Bytes::from(bytes.unwrap_or_default()),
                    offset,
                    end - offset,
                ),
                eof: end >= rec.size,
            });
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (data_ino, cs, ext_off, ext_len) in crate::ops::io::extents(&rec, offset, end - offset)
        {
            for (index, within, n) in crate::ops::io::pieces(cs, ext_off, ext_len) {
                let got = self.snap_chunk_read(&v, data_ino, index, within, n as usize)?;
                let start = out.len();
                out.extend_from_slice(&got);
                out.resize(start + n as usize, 0);
            }
        }
        Ok(ReadResult {
            attr,
            data: out.freeze(),
            eof: end >= rec.size,
        })
    }

    /// Up to `limit` records with keys in `prefix` (owned by `owner`) from
    /// `start` on, as snapshot `v` saw them, in key order; and whether
    /// more follow. Candidates come from the live records and from every
    /// history that may hold records removed since; each resolves to what
    /// the snapshot saw, or nothing.
    fn view_scan(
        &self,
        txn: &mut dyn Txn,
        v: &View,
        prefix: &[u8],
        start: &[u8],
        owner: u64,
        limit: usize,
    ) -> FsResult<(Vec<KvPair>, bool)> {
        let mut out = Vec::new();
        if owner >= v.next_inode {
            return Ok((out, false));
        }
        let limit = limit.max(1);
        let mut cursor = start.to_vec();
        loop {
            let mut cands = BTreeSet::new();
            // Past the horizon a source has rows this round did not read.
            let mut horizon: Option<Vec<u8>> = None;
            let sources = std::iter::once(None).chain(v.later.iter().map(Some));
            for epoch in sources {
                let (from, to, skip) = match epoch {
                    None => (cursor.clone(), prefix_end(prefix), 0),
                    Some(e) => (
                        keys::history(*e, &cursor),
                        prefix_end(&keys::history(*e, prefix)),
                        keys::history_prefix(*e).len(),
                    ),
                };
                let rows = txn.scan(&from, &to, limit + 1)?;
                let full = rows.len() > limit;
                let mut last = None;
                for (k, _) in rows {
                    let key = k[skip..].to_vec();
                    last = Some(key.clone());
                    cands.insert(key);
                }
                if full {
                    if let Some(l) = last {
                        horizon = Some(match horizon {
                            Some(h) if h < l => h,
                            _ => l,
                        });
                    }
                }
            }
            for key in cands {
                if horizon.as_ref().is_some_and(|h| &key > h) {
                    break;
                }
                if let Some(val) = self.view_get(txn, v, &key, owner)? {
                    if out.len() == limit {
                        return Ok((out, true));
                    }
                    out.push((key, val));
                }
            }
            match horizon {
                None => return Ok((out, false)),
                Some(mut h) => {
                    h.push(0);
                    cursor = h;
                }
            }
        }
    }

    /// S3 listing (entries by name) inside a snapshot.
    pub(crate) fn snap_list_by_name(
        &self,
        cred: &Credentials,
        dir: u64,
        after: &[u8],
        limit: usize,
    ) -> FsResult<(Vec<DirEntry>, bool)> {
        let (epoch, live) = split_ino(dir);
        if epoch == SNAPDIR_EPOCH {
            return Err(FsError::NotSupported);
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let txn = txn.as_mut();
        let d = self.view_inode(txn, &v, live)?;
        if d.kind != FileType::Directory {
            return Err(FsError::NotDir);
        }
        perm::check(&mut self.view_acls(&v), &d, cred, R | perm::X)?;
        let prefix = keys::dentry_prefix(live);
        let mut start = keys::dentry(live, after);
        if !after.is_empty() {
            start.push(0);
        }
        let (rows, more) = self.view_scan(txn, &v, &prefix, &start, live, limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, val) in rows {
            let entry = DentryRecord::decode(&val)?;
            match self.view_inode(txn, &v, entry.ino) {
                Ok(r) => out.push(DirEntry {
                    cookie: entry.cookie,
                    name: k[prefix.len()..].to_vec(),
                    ino: vino(v.epoch, entry.ino),
                    attr: Some(self.view_attr(&v, &r)),
                }),
                Err(FsError::Stale) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, more))
    }

    /// Extended attributes of a snapshot object: one (`Some(name)`) or all.
    pub(crate) fn snap_xattrs(
        &self,
        cred: &Credentials,
        ino: u64,
        name: Option<&[u8]>,
    ) -> FsResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let (epoch, live) = split_ino(ino);
        if epoch == SNAPDIR_EPOCH {
            return Ok(Vec::new());
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let txn = txn.as_mut();
        let rec = self.view_inode(txn, &v, live)?;
        perm::check_data(&mut self.view_acls(&v), &rec, cred, R)?;
        let prefix = keys::xattr_prefix(live);
        if let Some(n) = name {
            let val = self.view_get(txn, &v, &keys::xattr(live, n), live)?;
            return Ok(val.map(|val| (n.to_vec(), val)).into_iter().collect());
        }
        let (rows, _) = self.view_scan(txn, &v, &prefix, &prefix, live, usize::MAX - 1)?;
        Ok(rows
            .into_iter()
            .map(|(k, val)| (k[prefix.len()..].to_vec(), val))
            .collect())
    }

    /// Reads part of a chunk as snapshot `v` saw it. Holds the inode's
    /// lock, which copy-on-write also holds from the copy to its record,
    /// so a live write can never slip in between the check and the read.
    fn snap_chunk_read(
        &self,
        v: &View,
        ino: u64,
        index: u64,
        within: u64,
        n: usize,
    ) -> FsResult<Bytes> {
        let _guard = self.lock_inode(ino);
        match self.snap_chunk_source(v, ino, index)? {
            None => Ok(Bytes::new()),
            Some(id) => Ok(self.chunks.read(id, within, n)?),
        }
    }

    /// Where chunk `index` of data inode `ino` is as snapshot `v` saw it
    /// (`None`: a hole). The caller holds the inode's lock.
    fn snap_chunk_source(&self, v: &View, ino: u64, index: u64) -> FsResult<Option<ChunkId>> {
        let original = keys::chunk_history(ino, index);
        for epoch in &v.later {
            if let Some(h) = self.kv.get(&keys::history(*epoch, &original))? {
                return Ok(decode_location(&h)?.map(|(home, _)| ChunkId { ino: home, index }));
            }
        }
        Ok(Some(ChunkId { ino, index }))
    }

    /// Makes the chunks of live file `dst` (same chunk size, no segments)
    /// share the chunks snapshot file `src` (an inode number inside a
    /// snapshot) shows: no bytes are copied. False when the layouts
    /// differ and the caller must copy.
    pub(crate) fn share_snapshot_data(&self, src: u64, dst: u64) -> FsResult<bool> {
        let (epoch, live) = split_ino(src);
        let v = self.view(epoch)?;
        let rec = {
            let mut txn = self.kv.begin();
            self.view_inode(txn.as_mut(), &v, live)?
        };
        let cs = u64::from(rec.chunk_size);
        if rec.inline || !rec.segments.is_empty() || rec.chunk_size != self.chunk_size() || cs == 0
        {
            return Ok(false);
        }
        // The shared chunks are `dst`'s bytes from now on.
        {
            let _guard = self.lock_inode(dst);
            let d = self.read_inode(dst)?;
            if d.inline {
                self.move_inline_to_chunks(&d)?;
            }
        }
        for index in 0..rec.size.div_ceil(cs) {
            let _guard = self.lock_inode(live);
            if let Some(from) = self.snap_chunk_source(&v, live, index)? {
                self.chunks
                    .share(from, ChunkId { ino: dst, index }, cs as usize)?;
            }
        }
        self.chunks.sync(dst)?;
        Ok(true)
    }

    /// READDIR inside a snapshot or of a `.snapshot` directory.
    pub(crate) fn snap_readdir(
        &self,
        cred: &Credentials,
        dir: u64,
        cookie: u64,
        max_entries: usize,
        with_attrs: bool,
    ) -> FsResult<ReadDirPage> {
        let max_entries = max_entries.max(1);
        let (epoch, live) = split_ino(dir);
        if epoch == SNAPDIR_EPOCH {
            return self.snapdir_readdir(cred, live, cookie, max_entries, with_attrs);
        }
        let v = self.view(epoch)?;
        let mut txn = self.kv.begin();
        let txn = txn.as_mut();
        let d = self.view_inode(txn, &v, live)?;
        if d.kind != FileType::Directory {
            return Err(FsError::NotDir);
        }
        perm::check(&mut self.view_acls(&v), &d, cred, R)?;
        let parent = if d.ino == v.root {
            vino(SNAPDIR_EPOCH, v.root)
        } else {
            vino(v.epoch, d.parent)
        };
        let me = vino(v.epoch, d.ino);
        let mut entries = self.dot_entries(me, parent, cookie, max_entries, with_attrs);
        let want = max_entries - entries.len();
        let start = keys::dir_cookie(live, cookie.saturating_add(1).max(FIRST_COOKIE));
        let prefix = keys::dir_cookie_prefix(live);
        let (rows, more) = self.view_scan(txn, &v, &prefix, &start, live, want)?;
        let mut found = Vec::with_capacity(rows.len());
        for (k, val) in rows {
            let c =
                keys::dir_cookie_of(&k).ok_or_else(|| FsError::Io("corrupt cookie key".into()))?;
            let (ino, name) = record::decode_cookie_value(&val)?;
            found.push((c, ino, name.to_vec()));
        }
        for (c, ino, name) in found {
            let attr = if with_attrs {
                match self.view_inode(txn, &v, ino) {
                    Ok(r) => Some(self.view_attr(&v, &r)),
                    Err(FsError::Stale) => continue,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            entries.push(DirEntry {
                cookie: c,
                name,
                ino: vino(v.epoch, ino),
                attr,
            });
        }
        let dots_done = cookie >= 2 || entries.iter().any(|e| e.cookie == 2);
        Ok(ReadDirPage {
            dir: self.view_attr(&v, &d),
            entries,
            eof: !more && dots_done,
        })
    }

    /// The `.snapshot` directory lists the volume's snapshots in creation
    /// order; an entry's cookie is its epoch + 2 (stable for its life).
    fn snapdir_readdir(
        &self,
        cred: &Credentials,
        root: u64,
        cookie: u64,
        max_entries: usize,
        with_attrs: bool,
    ) -> FsResult<ReadDirPage> {
        let r = self.live_root(root)?;
        perm::check(&mut self.store_acls(), &r, cred, R)?;
        let me = self.snapdir_attr(&r);
        let mut entries = self.dot_entries(me.ino, r.ino, cookie, max_entries, with_attrs);
        let snaps = self.snapshot_records(r.volume)?;
        let mut more = false;
        for s in snaps.iter().filter(|s| !s.deleting && s.epoch + 2 > cookie) {
            if entries.len() == max_entries {
                more = true;
                break;
            }
            let ino = vino(s.epoch, r.ino);
            let attr = if with_attrs {
                self.snap_getattr(ino).ok()
            } else {
                None
            };
            entries.push(DirEntry {
                cookie: s.epoch + 2,
                name: s.name.as_bytes().to_vec(),
                ino,
                attr,
            });
        }
        let dots_done = cookie >= 2 || entries.iter().any(|e| e.cookie == 2);
        Ok(ReadDirPage {
            dir: me,
            entries,
            eof: !more && dots_done,
        })
    }
}

fn view_of(rec: &SnapshotRecord, state: &SnapState, root: u64) -> View {
    View {
        epoch: rec.epoch,
        next_inode: rec.next_inode,
        later: state
            .snaps
            .iter()
            .filter(|s| s.epoch >= rec.epoch)
            .map(|s| s.epoch)
            .collect(),
        root,
    }
}
