//! Charging: the hooks every namespace and data operation calls inside its
//! own transaction, the reservations that let a WRITE refuse before it
//! writes chunk data, and FSSTAT under a quota root.

use super::record::{
    load_member, load_progress, load_quota, load_volume, store_member, store_progress, store_quota,
    Count, Member, Phase, VolumeQuotas,
};
use crate::record::{self, InodeRecord};
use crate::types::{Attr, FileType, FsStat};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_metadata::{keys, prefix_end, Txn};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Longest chain of membership records followed before giving up (a
/// guard against corrupt records; real chains are as long as the nesting
/// of quota roots).
const MAX_HOPS: usize = 256;

/// Most inodes a RENAME of a directory between quota trees walks inside
/// its transaction to move their usage; a larger tree gets `CrossDevice`
/// (EXDEV / NFS3ERR_XDEV), on which `mv` copies and deletes instead.
pub(crate) const MAX_MOVE_INODES: usize = 10_000;

/// In-process quota state: bytes reserved by writes whose chunk data is
/// being written, and the lock that lets one counting walk run at a time.
#[derive(Default)]
pub(crate) struct Gate {
    /// Quota record key → bytes reserved by writes in flight.
    pending: Mutex<HashMap<Vec<u8>, u64>>,
    /// Held for the whole of a counting or removal walk.
    pub(crate) walk: Mutex<()>,
}

impl Gate {
    fn pending(&self, key: &[u8]) -> u64 {
        self.pending.lock().get(key).copied().unwrap_or(0)
    }
}

/// Bytes a WRITE holds against its quotas from before its chunk data is
/// written until its metadata transaction has committed (released on drop).
pub(crate) struct Reservation<'a> {
    gate: &'a Gate,
    keys: Vec<Vec<u8>>,
    bytes: u64,
}

impl Reservation<'_> {
    fn holds(&self, key: &[u8]) -> u64 {
        if self.keys.iter().any(|k| k == key) {
            self.bytes
        } else {
            0
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut pending = self.gate.pending.lock();
        for k in &self.keys {
            if let Some(v) = pending.get_mut(k) {
                *v = v.saturating_sub(self.bytes);
                if *v == 0 {
                    pending.remove(k);
                }
            }
        }
    }
}

/// What an inode counts: every object one inode, regular files their size
/// in bytes. A detached file (S3 upload in flight, no name yet) counts
/// nothing until it is published.
pub(crate) fn footprint(rec: &InodeRecord) -> Count {
    match rec.kind {
        FileType::Directory => Count::new(0, 1),
        _ if rec.nlink == 0 => Count::default(),
        FileType::Regular => Count::new(rec.size, 1),
        _ => Count::new(0, 1),
    }
}

/// The volume's quota counts, or `None` when it has no quota at all.
pub(crate) fn volume_quotas(txn: &mut dyn Txn, volume: u32) -> FsResult<Option<VolumeQuotas>> {
    let v = load_volume(txn, volume)?;
    Ok(v.any().then_some(v))
}

/// The live tree quota a membership record leads to: the record's quota if
/// it still exists with the same id and is not being removed, else the
/// quota its root directory is itself charged to, and so on up.
pub(crate) fn resolve(txn: &mut dyn Txn, start: Option<Member>) -> FsResult<Option<Member>> {
    let mut cur = start;
    for _ in 0..MAX_HOPS {
        let Some(m) = cur else { return Ok(None) };
        match load_quota(txn, &keys::quota_tree(m.root))? {
            Some(q) if q.id == m.id && q.phase != Phase::Removing => return Ok(Some(m)),
            _ => cur = load_member(txn, m.root)?,
        }
    }
    Ok(None)
}

/// The tree quota charged for objects placed in directory `dir`: its own
/// quota if it is a (live) quota root, else the one it is charged to.
pub(crate) fn nearest_of_dir(txn: &mut dyn Txn, dir: u64) -> FsResult<Option<Member>> {
    if let Some(q) = load_quota(txn, &keys::quota_tree(dir))? {
        if q.phase != Phase::Removing {
            return Ok(Some(Member {
                root: dir,
                id: q.id,
            }));
        }
    }
    let m = load_member(txn, dir)?;
    resolve(txn, m)
}

/// Keys of the tree quota records charged along with `start`: it, the
/// quota its root is charged to, and so on up.
fn chain(txn: &mut dyn Txn, start: Option<Member>) -> FsResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut cur = start;
    while let Some(m) = cur {
        if out.len() >= MAX_HOPS {
            break;
        }
        out.push(keys::quota_tree(m.root));
        let up = load_member(txn, m.root)?;
        cur = resolve(txn, up)?;
    }
    Ok(out)
}

/// Whether the user or group quota `key` charges inode `ino` now: a ready
/// quota charges everything; one still counting only inodes its scan has
/// passed and inodes made after the quota (numbered from its limit on);
/// the scan counts the rest as it reaches them. A new inode the
/// scan has not passed "touches" the progress record, so a scan batch that
/// began before it was created (and cannot see it) retries.
fn owner_charges(txn: &mut dyn Txn, key: &[u8], ino: u64, creating: bool) -> FsResult<bool> {
    let Some(q) = load_quota(txn, key)? else {
        return Ok(false);
    };
    match q.phase {
        Phase::Ready => Ok(true),
        Phase::Removing => Ok(false),
        Phase::Counting => {
            let p = load_progress(txn, key)?;
            if ino < p.cursor || ino >= p.limit {
                return Ok(true);
            }
            if creating {
                store_progress(txn, key, &p)?;
            }
            Ok(false)
        }
    }
}

/// Usage changes of one operation, per quota record, applied at the end
/// so that a change moving usage between two quotas that share an
/// ancestor leaves the ancestor alone.
#[derive(Default)]
pub(crate) struct Ledger {
    entries: Vec<(Vec<u8>, Count)>,
    /// Chains already computed in this operation.
    chains: HashMap<Option<Member>, Vec<Vec<u8>>>,
}

impl Ledger {
    fn add(&mut self, key: &[u8], c: Count) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v += c,
            None => self.entries.push((key.to_vec(), c)),
        }
    }

    /// Adds `c` to every tree quota charged at `place`.
    pub(crate) fn tree(
        &mut self,
        txn: &mut dyn Txn,
        place: Option<Member>,
        c: Count,
    ) -> FsResult<()> {
        if place.is_none() || c.is_zero() {
            return Ok(());
        }
        let keys = match self.chains.get(&place) {
            Some(k) => k.clone(),
            None => {
                let k = chain(txn, place)?;
                self.chains.insert(place, k.clone());
                k
            }
        };
        for k in keys {
            self.add(&k, c);
        }
        Ok(())
    }

    /// Adds `c` to the user and group quotas of `rec` that charge it.
    fn owners(
        &mut self,
        txn: &mut dyn Txn,
        vq: &VolumeQuotas,
        rec: &InodeRecord,
        c: Count,
        creating: bool,
    ) -> FsResult<()> {
        for (n, kind, id) in [
            (vq.users, keys::QUOTA_USER, rec.uid),
            (vq.groups, keys::QUOTA_GROUP, rec.gid),
        ] {
            if n == 0 {
                continue;
            }
            let key = keys::quota_owner(kind, rec.volume, id);
            if owner_charges(txn, &key, rec.ino, creating)? && !c.is_zero() {
                self.add(&key, c);
            }
        }
        Ok(())
    }

    /// Applies the changes. A quota that grows past a hard limit (counting
    /// bytes other writes have reserved) fails the whole operation with
    /// `QuotaExceeded`; shrinking is always allowed, even over a limit.
    /// `gate` may be `None` only for changes that never add usage.
    pub(crate) fn commit(
        self,
        txn: &mut dyn Txn,
        gate: Option<&Gate>,
        own: Option<&Reservation<'_>>,
    ) -> FsResult<()> {
        for (key, delta) in self.entries {
            if delta.is_zero() {
                continue;
            }
            let Some(mut q) = load_quota(txn, &key)? else {
                continue;
            };
            q.usage += delta;
            if delta.bytes > 0 {
                if let Some(limit) = q.limits.bytes {
                    let others = gate
                        .map_or(0, |g| g.pending(&key))
                        .saturating_sub(own.map_or(0, |r| r.holds(&key)));
                    if q.usage.bytes + i128::from(others) > i128::from(limit) {
                        return Err(FsError::QuotaExceeded);
                    }
                }
            }
            if delta.inodes > 0 {
                if let Some(limit) = q.limits.inodes {
                    if q.usage.inodes > i128::from(limit) {
                        return Err(FsError::QuotaExceeded);
                    }
                }
            }
            store_quota(txn, &key, &q)?;
        }
        Ok(())
    }
}

/// Releases the usage of an object whose last link is gone (REMOVE,
/// RMDIR, a RENAME or PUT replacing it). Its bytes are released now,
/// even if a client still has it open: NFSv3 has no open state. A
/// removed directory takes its own tree quota with it.
pub(crate) fn release(txn: &mut dyn Txn, victim: &InodeRecord) -> FsResult<()> {
    let Some(mut vq) = volume_quotas(txn, victim.volume)? else {
        return Ok(());
    };
    let m = load_member(txn, victim.ino)?;
    let c = -footprint(victim);
    let mut ledger = Ledger::default();
    if vq.trees > 0 {
        let place = resolve(txn, m)?;
        ledger.tree(txn, place, c)?;
    }
    ledger.owners(txn, &vq, victim, c, false)?;
    ledger.commit(txn, None, None)?;
    if m.is_some() {
        store_member(txn, victim.ino, None)?;
    }
    if victim.kind == FileType::Directory {
        let key = keys::quota_tree(victim.ino);
        if load_quota(txn, &key)?.is_some() {
            txn.delete(&key)?;
            txn.delete(&keys::quota_count(&key))?;
            vq.trees = vq.trees.saturating_sub(1);
            super::record::store_volume(txn, victim.volume, &vq)?;
        }
    }
    Ok(())
}

impl FileSystem {
    /// Charges a new object `child`, placed in directory `dir`, to its
    /// quotas, and records its tree membership. Called by every create
    /// (CREATE, MKDIR, SYMLINK, MKNOD, S3 directories) and by S3 publish
    /// (a detached file getting its name, with all its bytes).
    pub(crate) fn quota_on_create(
        &self,
        txn: &mut dyn Txn,
        dir: u64,
        child: &InodeRecord,
    ) -> FsResult<()> {
        let Some(vq) = volume_quotas(txn, child.volume)? else {
            return Ok(());
        };
        let place = if vq.trees > 0 {
            nearest_of_dir(txn, dir)?
        } else {
            None
        };
        let c = footprint(child);
        let mut ledger = Ledger::default();
        ledger.tree(txn, place, c)?;
        ledger.owners(txn, &vq, child, c, true)?;
        ledger.commit(txn, Some(&self.quota_gate), None)?;
        if place.is_some() {
            store_member(txn, child.ino, place)?;
        }
        Ok(())
    }

    /// Moves usage for a change of one inode's size, owner or group
    /// (WRITE, SETATTR, truncation at CREATE). `own` is the calling write's
    /// reservation.
    pub(crate) fn quota_on_update(
        &self,
        txn: &mut dyn Txn,
        before: &InodeRecord,
        after: &InodeRecord,
        own: Option<&Reservation<'_>>,
    ) -> FsResult<()> {
        let (fb, fa) = (footprint(before), footprint(after));
        if fb == fa && before.uid == after.uid && before.gid == after.gid {
            return Ok(());
        }
        let Some(vq) = volume_quotas(txn, after.volume)? else {
            return Ok(());
        };
        let mut ledger = Ledger::default();
        if vq.trees > 0 && fb != fa {
            let m = load_member(txn, after.ino)?;
            let place = resolve(txn, m)?;
            ledger.tree(txn, place, fa + -fb)?;
        }
        ledger.owners(txn, &vq, before, -fb, false)?;
        ledger.owners(txn, &vq, after, fa, false)?;
        ledger.commit(txn, Some(&self.quota_gate), own)
    }

    /// LINK: a file is charged once, to the tree it lives in, so a second
    /// name in another quota tree is refused with `CrossDevice` (as XFS
    /// project quotas do); `ln` reports EXDEV and `cp` can copy instead.
    pub(crate) fn quota_check_link(
        &self,
        txn: &mut dyn Txn,
        file: &InodeRecord,
        dir: u64,
    ) -> FsResult<()> {
        match volume_quotas(txn, file.volume)? {
            Some(vq) if vq.trees > 0 => {
                let m = load_member(txn, file.ino)?;
                if resolve(txn, m)? != nearest_of_dir(txn, dir)? {
                    return Err(FsError::CrossDevice);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// RENAME of `item` into directory `to_dir`: when its tree quota
    /// changes, its usage (for a directory, that of its whole subtree)
    /// moves from the old quotas to the new ones, refused with
    /// `QuotaExceeded` if a new one would exceed its limit. Refused with
    /// `CrossDevice` (so `mv` copies instead): a file with several links
    /// (its other names stay in the old tree), a directory tree of more
    /// than [`MAX_MOVE_INODES`] inodes, or one holding a quota that is
    /// still being counted or removed.
    pub(crate) fn quota_on_move(
        &self,
        txn: &mut dyn Txn,
        item: &InodeRecord,
        to_dir: u64,
    ) -> FsResult<()> {
        let Some(vq) = volume_quotas(txn, item.volume)? else {
            return Ok(());
        };
        if vq.trees == 0 {
            return Ok(());
        }
        let dst = nearest_of_dir(txn, to_dir)?;
        if load_member(txn, item.ino)? == dst {
            return Ok(());
        }
        let mut ledger = Ledger::default();
        let mut queue = vec![];
        let mut seen = 0usize;
        self.move_one(txn, &mut ledger, item, dst, &mut queue)?;
        while let Some(dir) = queue.pop() {
            let prefix = keys::dentry_prefix(dir);
            let rows = txn.scan(&prefix, &prefix_end(&prefix), MAX_MOVE_INODES + 1)?;
            for (_, v) in rows {
                seen += 1;
                if seen > MAX_MOVE_INODES {
                    return Err(FsError::CrossDevice);
                }
                let entry = record::DentryRecord::decode(&v)?;
                let Some(child) = record::get_inode(txn, entry.ino)? else {
                    continue;
                };
                self.move_one(txn, &mut ledger, &child, dst, &mut queue)?;
            }
        }
        ledger.commit(txn, Some(&self.quota_gate), None)
    }

    /// Moves one inode's charge to tree quota `dst`; queues a plain
    /// directory so its entries move too.
    fn move_one(
        &self,
        txn: &mut dyn Txn,
        ledger: &mut Ledger,
        rec: &InodeRecord,
        dst: Option<Member>,
        queue: &mut Vec<u64>,
    ) -> FsResult<()> {
        let m = load_member(txn, rec.ino)?;
        let mut amount = footprint(rec);
        if rec.kind == FileType::Directory {
            match load_quota(txn, &keys::quota_tree(rec.ino))? {
                Some(q) if q.phase == Phase::Ready => amount += q.usage,
                Some(_) => return Err(FsError::CrossDevice),
                None => queue.push(rec.ino),
            }
        }
        if m == dst {
            return Ok(());
        }
        let src = resolve(txn, m)?;
        if rec.kind != FileType::Directory && rec.nlink > 1 && src != dst {
            return Err(FsError::CrossDevice);
        }
        if src != dst {
            ledger.tree(txn, src, -amount)?;
            ledger.tree(txn, dst, amount)?;
        }
        store_member(txn, rec.ino, dst)
    }

    /// Reserves the bytes a WRITE of `rec` will add (`growth`) against
    /// every quota that charges it, before any chunk data is written:
    /// `QuotaExceeded` here means nothing was written. The transaction
    /// that commits the write checks again, counting the reservations of
    /// other writes in flight, so parallel writers cannot pass a limit.
    pub(crate) fn quota_reserve(
        &self,
        rec: &InodeRecord,
        growth: u64,
    ) -> FsResult<Option<Reservation<'_>>> {
        if growth == 0 || rec.nlink == 0 || rec.kind != FileType::Regular {
            return Ok(None);
        }
        if !self.has_quotas(rec.volume)? {
            return Ok(None);
        }
        let mut txn = self.kv.begin(); // read-only view, never committed
        let txn = txn.as_mut();
        let Some(vq) = volume_quotas(txn, rec.volume)? else {
            return Ok(None);
        };
        let mut keys_held = Vec::new();
        if vq.trees > 0 {
            let m = load_member(txn, rec.ino)?;
            let place = resolve(txn, m)?;
            keys_held.extend(chain(txn, place)?);
        }
        for (n, kind, id) in [
            (vq.users, keys::QUOTA_USER, rec.uid),
            (vq.groups, keys::QUOTA_GROUP, rec.gid),
        ] {
            let key = keys::quota_owner(kind, rec.volume, id);
            if n > 0 && owner_charges(txn, &key, rec.ino, false)? {
                keys_held.push(key);
            }
        }
        let mut records = Vec::with_capacity(keys_held.len());
        for k in &keys_held {
            records.push(load_quota(txn, k)?);
        }
        let mut pending = self.quota_gate.pending.lock();
        for (k, q) in keys_held.iter().zip(&records) {
            let Some(limit) = q.as_ref().and_then(|q| q.limits.bytes) else {
                continue;
            };
            let used = q.as_ref().map_or(0, |q| q.usage.bytes);
            let held = i128::from(pending.get(k).copied().unwrap_or(0));
            if used + held + i128::from(growth) > i128::from(limit) {
                return Err(FsError::QuotaExceeded);
            }
        }
        for k in &keys_held {
            *pending.entry(k.clone()).or_insert(0) += growth;
        }
        Ok(Some(Reservation {
            gate: &self.quota_gate,
            keys: keys_held,
            bytes: growth,
        }))
    }

    /// FSSTAT of `rec` as `df` should show it: under a tree quota with
    /// limits, the nearest limit is the size and what is left of every
    /// limit above it (and of the device) is free.
    pub(crate) fn quota_fsstat(&self, rec: &Attr, mut st: FsStat) -> FsResult<FsStat> {
        if !self.has_quotas(rec.volume)? {
            return Ok(st);
        }
        let mut txn = self.kv.begin(); // read-only view, never committed
        let txn = txn.as_mut();
        match volume_quotas(txn, rec.volume)? {
            Some(vq) if vq.trees > 0 => {}
            _ => return Ok(st),
        }
        let place = if rec.kind == FileType::Directory {
            nearest_of_dir(txn, rec.ino)?
        } else {
            let m = load_member(txn, rec.ino)?;
            resolve(txn, m)?
        };
        let (mut sized_bytes, mut sized_files) = (false, false);
        for key in chain(txn, place)? {
            let Some(q) = load_quota(txn, &key)? else {
                continue;
            };
            let used = q.usage.usage();
            if let Some(limit) = q.limits.bytes {
                let free = limit.saturating_sub(used.bytes);
                if !sized_bytes {
                    st.total_bytes = limit;
                    sized_bytes = true;
                }
                st.free_bytes = st.free_bytes.min(free);
                st.avail_bytes = st.avail_bytes.min(free);
            }
            if let Some(limit) = q.limits.inodes {
                let free = limit.saturating_sub(used.inodes);
                if !sized_files {
                    st.total_files = limit;
                    sized_files = true;
                }
                st.free_files = st.free_files.min(free);
                st.avail_files = st.avail_files.min(free);
            }
        }
        Ok(st)
    }
}

impl FileSystem {
    /// Whether volume `volume` has any quota (one point read, outside any
    /// transaction: for the paths that look before they change anything).
    fn has_quotas(&self, volume: u32) -> FsResult<bool> {
        Ok(self.kv.get(&keys::quota_volume(volume))?.is_some())
    }

    /// Whether changing `before` into `after` would pass a quota now,
    /// without changing anything: for checks that must come before chunk
    /// data changes (a SETATTR that both truncates and changes the owner).
    /// The transaction of the change checks again.
    pub(crate) fn quota_precheck(&self, before: &InodeRecord, after: &InodeRecord) -> FsResult<()> {
        if !self.has_quotas(after.volume)? {
            return Ok(());
        }
        let mut txn = self.kv.begin(); // a scratch view, never committed
        self.quota_on_update(txn.as_mut(), before, after, None)
    }
}
