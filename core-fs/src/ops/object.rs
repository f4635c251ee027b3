//! Whole-object operations for the S3 front end: files that are written
//! before they have a name ("detached"), published atomically under a
//! path, concatenated without copying (multipart), and listed by name.
//!
//! A detached file is an inode with no links and a `PENDING` record that
//! says who keeps it alive: a transient one (a PUT in flight) is deleted at
//! the next start if it was never published; an upload's parts live until
//! the upload completes or is aborted.

use super::create::NewNode;
use super::lookup::{is_dot, validate_name};
use super::remove::drop_link;
use crate::perm::{self, R, X};
use crate::record::{self, InodeRecord, Segment};
use crate::types::{Attr, DirEntry, FileType, SetAttr, MODE_MASK};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp, VolumeId};
use nitrofs_metadata::{keys, prefix_end, Txn};

/// Extended attribute that marks a directory created implicitly by
/// [`FileSystem::publish`] (a missing parent of an object's path). Front
/// ends may remove such a directory once it is empty again, as S3 clients
/// expect a prefix to vanish with its last object; directories made
/// explicitly (NFS MKDIR, an S3 `dir/` marker) never carry it.
pub const IMPLICIT_DIR_XATTR: &[u8] = b"user.nitrofs.implicit";

/// What [`FileSystem::publish_if`] requires of the final name, checked
/// inside the publishing transaction (so a conditional PUT is atomic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishIf {
    /// Replace whatever is there.
    Always,
    /// Only if the name does not exist (`If-None-Match: *`).
    Absent,
    /// Only if the name still holds this inode, unchanged since `ctime`
    /// (`If-Match` after the caller checked the ETag).
    Unchanged {
        /// The inode the caller checked.
        ino: InodeId,
        /// Its ctime when checked.
        ctime: Timestamp,
    },
}

/// Who keeps a detached file alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetachedKind {
    /// A PUT in progress: deleted at the next start if never published.
    Transient,
    /// A part (or manifest) of the multipart upload with this id.
    Upload(Vec<u8>),
}

impl DetachedKind {
    fn encode(&self) -> Vec<u8> {
        match self {
            DetachedKind::Transient => vec![0],
            DetachedKind::Upload(id) => {
                let mut v = vec![1];
                v.extend_from_slice(id);
                v
            }
        }
    }
}

/// Removes the `PENDING` record of `ino` (and its upload index entry).
fn forget_pending(txn: &mut dyn Txn, ino: u64) -> FsResult<()> {
    if let Some(tag) = txn.get(&keys::pending(ino))? {
        if let Some((1, id)) = tag.split_first() {
            if let Some(k) = keys::upload_index(id, ino) {
                txn.delete(&k)?;
            }
        }
    }
    txn.delete(&keys::pending(ino))?;
    Ok(())
}

fn require_detached(txn: &mut dyn Txn, ino: u64) -> FsResult<InodeRecord> {
    if txn.get(&keys::pending(ino))?.is_none() {
        return Err(FsError::Invalid("not a detached file"));
    }
    record::load_inode(txn, ino)
}

impl FileSystem {
    /// Entries of `dir` with names after `after` in byte order (not `.` or
    /// `..`), at most `limit`, with attributes; and whether more follow.
    pub fn list_by_name(
        &self,
        cred: &Credentials,
        dir: InodeId,
        after: &[u8],
        limit: usize,
    ) -> FsResult<(Vec<DirEntry>, bool)> {
        if dir >= crate::snapshot::LIVE_INO_LIMIT {
            return self.snap_list_by_name(cred, dir, after, limit);
        }
        let d = self.read_inode(dir)?;
        if d.kind != FileType::Directory {
            return Err(FsError::NotDir);
        }
        perm::check(&mut self.store_acls(), &d, cred, R | X)?;
        let mut start = keys::dentry(dir, after);
        if !after.is_empty() {
            start.push(0); // strictly after
        }
        let end = prefix_end(&keys::dentry_prefix(dir));
        let plen = keys::dentry_prefix(dir).len();
        let limit = limit.max(1);
        let rows = self.kv.scan(&start, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (k, v) in rows.into_iter().take(limit) {
            let entry = record::DentryRecord::decode(&v)?;
            match self.getattr(entry.ino) {
                Ok(attr) => out.push(DirEntry {
                    cookie: entry.cookie,
                    name: k[plen..].to_vec(),
                    ino: entry.ino,
                    attr: Some(attr),
                }),
                Err(FsError::Stale) => {} // removed since the scan
                Err(e) => return Err(e),
            }
        }
        Ok((out, more))
    }

    /// A new regular file with no name, owned by `cred`, in `volume`.
    pub fn create_detached(
        &self,
        cred: &Credentials,
        volume: VolumeId,
        mode: u32,
        kind: DetachedKind,
    ) -> FsResult<Attr> {
        let vol = self.volume_by_id(volume)?;
        let ino = self.alloc_inode()?;
        let now = Timestamp::now();
        let mut rec = self.new_record(
            ino,
            vol.id,
            FileType::Regular,
            mode & MODE_MASK,
            cred.uid,
            cred.gid,
            now,
        );
        rec.nlink = 0;
        let tag = kind.encode();
        let index = match &kind {
            DetachedKind::Transient => None,
            DetachedKind::Upload(id) => {
                Some(keys::upload_index(id, ino).ok_or(FsError::Invalid("upload id too long"))?)
            }
        };
        self.transact(false, |txn| -> FsResult<()> {
            txn.put(&keys::pending(ino), &tag)?;
            if let Some(k) = &index {
                txn.put(k, &[])?;
            }
            record::put_inode(txn, &rec)
        })?;
        Ok(rec.attr())
    }

    /// Deletes a detached file and its data.
    pub fn discard_detached(&self, ino: InodeId) -> FsResult<()> {
        let now = Timestamp::now();
        let gc = self.transact(true, |txn| -> FsResult<Vec<u64>> {
            let mut rec = require_detached(txn, ino)?;
            forget_pending(txn, ino)?;
            drop_link(txn, &mut rec, now)
        })?;
        for d in gc {
            self.delete_chunks(d);
        }
        Ok(())
    }

    /// Detached files that belong to upload `upload`.
    pub fn detached_of_upload(&self, upload: &[u8]) -> FsResult<Vec<InodeId>> {
        let Some(prefix) = keys::upload_index_prefix(upload) else {
            return Ok(Vec::new());
        };
        Ok(self
            .kv
            .scan(&prefix, &prefix_end(&prefix), usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| keys::upload_index_ino(&k))
            .collect())
    }

    /// Deletes every transient detached file (PUTs a crash interrupted).
    pub(crate) fn discard_transient(&self) -> FsResult<()> {
        let prefix = keys::pending_prefix();
        let transient = DetachedKind::Transient.encode();
        for (k, v) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
            if v == transient {
                if let Some(ino) = keys::ino_of(&k) {
                    self.discard_detached(ino)?;
                }
            }
        }
        Ok(())
    }

    /// Makes detached file `target` consist of the bytes of `parts`, in
    /// order, without copying: each part's data inode becomes a segment of
    /// the target, and the parts stop existing as files.
    pub fn concat_detached(
        &self,
        cred: &Credentials,
        target: InodeId,
        parts: &[InodeId],
    ) -> FsResult<Attr> {
        if parts.is_empty() {
            return Err(FsError::Invalid("no parts"));
        }
        // A segment is a data inode's chunks: a part whose bytes are
        // inline (a small last part) moves them there first.
        for &p in parts {
            let _guard = self.lock_inode(p);
            let rec = self.read_inode(p)?;
            if rec.inline {
                self.move_inline_to_chunks(&rec)?;
            }
        }
        let now = Timestamp::now();
        self.transact(false, |txn| -> FsResult<Attr> {
            let mut t = require_detached(txn, target)?;
            perm::check_owner(&t, cred)?;
            if t.size != 0 || !t.segments.is_empty() {
                return Err(FsError::Invalid("concatenation target is not empty"));
            }
            let mut segments = Vec::new();
            let mut size = 0u64;
            for &p in parts {
                if p == target {
                    return Err(FsError::Invalid("a part cannot be the target"));
                }
                let part = require_detached(txn, p)?;
                if part.inline {
                    return Err(FsError::Invalid(
                        "a part was written during the concatenation",
                    ));
                }
                if part.volume != t.volume {
                    return Err(FsError::CrossDevice);
                }
                perm::check_owner(&part, cred)?;
                if part.segments.is_empty() {
                    segments.push(Segment {
                        ino: part.ino,
                        len: part.size,
                        chunk_size: part.chunk_size,
                    });
                } else {
                    // A part that is itself a concatenation: take its
                    // segments, closing the open-ended last one.
                    let mut rest = part.size;
                    let n = part.segments.len();
                    for (i, s) in part.segments.iter().enumerate() {
                        let len = if i + 1 == n { rest } else { s.len.min(rest) };
                        rest -= len;
                        segments.push(Segment { len, ..*s });
                    }
                    txn.put(&keys::gc(part.ino), &[])?;
                }
                size += part.size;
                forget_pending(txn, p)?;
                txn.delete(&keys::inode(p))?;
            }
            for s in &segments {
                txn.put(&keys::data_owner(s.ino), &target.to_be_bytes())?;
            }
            t.segments = segments;
            if t.inline {
                txn.delete(&keys::inline(target))?;
            }
            t.inline = false;
            t.size = size;
            t.mtime = now;
            t.ctime = now;
            record::put_inode(txn, &t)?;
            Ok(t.attr())
        })
    }

    /// Makes detached file `ino` visible as `root/path…` in one durable
    /// transaction, creating missing directories and replacing an existing
    /// file at the final name; its extended attributes become `xattrs`.
    pub fn publish(
        &self,
        cred: &Credentials,
        ino: InodeId,
        root: InodeId,
        path: &[Vec<u8>],
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> FsResult<Attr> {
        self.publish_if(cred, ino, root, path, xattrs, PublishIf::Always)
    }

    /// [`FileSystem::publish`] with a precondition on the final name,
    /// checked in the same transaction; `GuardFailed` when it does not hold.
    pub fn publish_if(
        &self,
        cred: &Credentials,
        ino: InodeId,
        root: InodeId,
        path: &[Vec<u8>],
        xattrs: &[(Vec<u8>, Vec<u8>)],
        cond: PublishIf,
    ) -> FsResult<Attr> {
        let place = self.place(root, path)?;
        for data in self.read_inode(ino)?.data_inodes() {
            self.chunks.sync(data)?;
        }
        self.publish_at(cred, &place, xattrs, cond, Timestamp::now(), |txn| {
            let rec = require_detached(txn, ino)?;
            let xp = keys::xattr_prefix(ino);
            for (k, _) in txn.scan(&xp, &prefix_end(&xp), usize::MAX)? {
                txn.delete(&k)?;
            }
            forget_pending(txn, ino)?;
            Ok(rec)
        })
    }

    /// A new regular file of `volume` holding `data`, made visible as
    /// `root/path…` as [`FileSystem::publish_if`] would publish it, but in
    /// one durable transaction where a detached file takes three (its
    /// creation, the write, the publish): `data` is kept inline, so it is
    /// at most [`FileSystem::inline_max`] bytes. Its extended attributes
    /// are `xattrs` applied to its attributes (an ETag records the size
    /// and mtime it describes).
    #[allow(clippy::too_many_arguments)]
    pub fn publish_new_if(
        &self,
        cred: &Credentials,
        volume: VolumeId,
        root: InodeId,
        path: &[Vec<u8>],
        mode: u32,
        data: &[u8],
        xattrs: impl FnOnce(&Attr) -> Vec<(Vec<u8>, Vec<u8>)>,
        cond: PublishIf,
    ) -> FsResult<Attr> {
        if data.len() as u64 > u64::from(self.opts.inline_max) {
            return Err(FsError::Invalid("too large to publish from memory"));
        }
        let place = self.place(root, path)?;
        let ino = self.alloc_inode()?;
        let now = Timestamp::now();
        let mut fresh = self.new_record(
            ino,
            volume,
            FileType::Regular,
            mode & MODE_MASK,
            cred.uid,
            cred.gid,
            now,
        );
        fresh.size = data.len() as u64;
        let xattrs = xattrs(&fresh.attr());
        self.publish_at(cred, &place, &xattrs, cond, now, |txn| {
            if !data.is_empty() {
                txn.put(&keys::inline(ino), data)?;
            }
            Ok(fresh.clone())
        })
    }

    /// Where `root/path…` names an object: its final name and its
    /// directories, with inode numbers for those a publish may create.
    /// Refuses `.`, `..`, bad names and paths into `.snapshot/`.
    fn place<'p>(&self, root: InodeId, path: &'p [Vec<u8>]) -> FsResult<Place<'p>> {
        let Some((name, dirs)) = path.split_last() else {
            return Err(FsError::Invalid("empty object path"));
        };
        for comp in path {
            if is_dot(comp) {
                return Err(FsError::Invalid("'.' or '..' in an object path"));
            }
            validate_name(comp)?;
        }
        if path[0] == crate::snapshot::SNAPSHOT_DIR {
            // Under the volume root's `.snapshot/` are read-only snapshots.
            let r = self.read_inode(root)?;
            if r.parent == r.ino {
                return Err(FsError::ReadOnly);
            }
        }
        Ok(Place {
            root,
            dirs,
            name,
            new_dirs: (0..dirs.len())
                .map(|_| self.alloc_inode())
                .collect::<FsResult<_>>()?,
        })
    }

    /// Names the file `prepare` readies inside one durable transaction at
    /// `place` ([`FileSystem::link_object`]), then deletes the data of the
    /// file it replaced.
    fn publish_at(
        &self,
        cred: &Credentials,
        place: &Place<'_>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        cond: PublishIf,
        now: Timestamp,
        mut prepare: impl FnMut(&mut dyn Txn) -> FsResult<InodeRecord>,
    ) -> FsResult<Attr> {
        let (attr, gc) = self.transact(true, |txn| {
            let mut rec = prepare(txn)?;
            let gc = self.link_object(txn, cred, &mut rec, place, xattrs, cond, now)?;
            Ok::<_, FsError>((rec.attr(), gc))
        })?;
        for d in gc {
            self.delete_chunks(d);
        }
        Ok(attr)
    }

    /// Names file `rec` (not yet named anywhere) at `place` inside `txn`: creates
    /// missing directories, checks `cond`, replaces a file already there,
    /// gives it `xattrs` and its directory's default ACL, and charges it
    /// to quotas. Returns data inodes to delete (the replaced file's).
    #[allow(clippy::too_many_arguments)]
    fn link_object(
        &self,
        txn: &mut dyn Txn,
        cred: &Credentials,
        rec: &mut InodeRecord,
        place: &Place<'_>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        cond: PublishIf,
        now: Timestamp,
    ) -> FsResult<Vec<u64>> {
        let mut dir = record::load_inode(txn, place.root)?;
        if dir.volume != rec.volume {
            return Err(FsError::CrossDevice);
        }
        for (comp, new_ino) in place.dirs.iter().zip(&place.new_dirs) {
            perm::check_search(txn, &dir, cred)?;
            dir = match record::get_dentry(txn, dir.ino, comp)? {
                Some(e) if e.kind == FileType::Directory => record::load_inode(txn, e.ino)?,
                Some(_) => return Err(FsError::NotDir),
                None => self.mkdir_in_txn(txn, cred, &mut dir, comp, *new_ino, now)?,
            };
        }
        perm::check_modify_dir(txn, &dir, cred)?;
        let name = place.name;
        let existing = record::get_dentry(txn, dir.ino, name)?;
        match (cond, &existing) {
            (PublishIf::Always, _) | (PublishIf::Absent, None) => {}
            (PublishIf::Unchanged { ino: want, ctime }, Some(e)) if e.ino == want => {
                if record::load_inode(txn, want)?.ctime != ctime {
                    return Err(FsError::GuardFailed);
                }
            }
            _ => return Err(FsError::GuardFailed),
        }
        let mut gc = Vec::new();
        if let Some(old) = existing {
            let mut victim = record::load_inode(txn, old.ino)?;
            if victim.kind == FileType::Directory {
                return Err(FsError::IsDir);
            }
            perm::check_sticky(&dir, &victim, cred)?;
            record::remove_dentry(txn, &mut dir, name, &old)?;
            gc = drop_link(txn, &mut victim, now)?;
        }
        record::add_dentry(txn, &mut dir, name, rec.ino, FileType::Regular)?;
        dir.mtime = now;
        dir.ctime = now;
        record::put_inode(txn, &dir)?;
        for (k, v) in xattrs {
            txn.put(&keys::xattr(rec.ino, k), v)?;
        }
        // Named now: it inherits its directory's default ACL, as a file
        // created there over NFS would.
        crate::acl::inherit(txn, &dir, rec)?;
        rec.nlink = 1;
        rec.ctime = now;
        // Named now: its bytes start counting against quotas.
        self.quota_on_create(txn, dir.ino, rec)?;
        record::put_inode(txn, rec)?;
        Ok(gc)
    }

    /// Creates directory `name` in `parent` inside `txn` (for publish).
    fn mkdir_in_txn(
        &self,
        txn: &mut dyn Txn,
        cred: &Credentials,
        parent: &mut InodeRecord,
        name: &[u8],
        ino: u64,
        now: Timestamp,
    ) -> FsResult<InodeRecord> {
        perm::check_modify_dir(txn, parent, cred)?;
        let set = SetAttr::default();
        let d = self.add_child(txn, parent, cred, name, ino, &NewNode::directory(&set), now)?;
        txn.put(&keys::xattr(ino, IMPLICIT_DIR_XATTR), b"1")?;
        Ok(d)
    }
}

/// Where a publish names its file: `root/dirs…/name`, with inode numbers
/// for the directories it may create.
struct Place<'p> {
    root: InodeId,
    dirs: &'p [Vec<u8>],
    name: &'p [u8],
    new_dirs: Vec<u64>,
}
