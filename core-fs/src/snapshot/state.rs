//! Snapshot records, the per-volume snapshot state and the inode numbers
//! of objects seen inside a snapshot.

use crate::record::{decode_versioned, encode_versioned};
use crate::{FsError, FsResult};
use nitrofs_common::Timestamp;
use nitrofs_metadata::{keys, Txn};
use serde::{Deserialize, Serialize};

/// Live inode numbers stay below 2^44; above, the top 20 bits name the
/// snapshot epoch an object is seen in (NFS file handles and fileids of
/// snapshot objects differ from live ones and survive restarts).
pub(crate) const EPOCH_SHIFT: u32 = 44;
/// First inode number that is not a live inode.
pub(crate) const LIVE_INO_LIMIT: u64 = 1 << EPOCH_SHIFT;
/// The epoch value naming a volume's `.snapshot` directory.
pub(crate) const SNAPDIR_EPOCH: u64 = (1 << (64 - EPOCH_SHIFT)) - 1;
/// Name of the virtual directory holding a volume's snapshots.
pub const SNAPSHOT_DIR: &[u8] = b".snapshot";

const SNAPSHOT_V1: u8 = 1;
const STATE_V1: u8 = 1;

/// The inode number of live inode `ino` seen in snapshot `epoch`.
pub(crate) fn vino(epoch: u64, ino: u64) -> u64 {
    (epoch << EPOCH_SHIFT) | ino
}

/// Splits an inode number into (snapshot epoch, live inode); epoch 0 is
/// the live volume.
pub(crate) fn split_ino(ino: u64) -> (u64, u64) {
    (ino >> EPOCH_SHIFT, ino & (LIVE_INO_LIMIT - 1))
}

/// Where a snapshot's copy of chunks of data inode `ino` lives: the chunk
/// store names it like an object inside the snapshot.
pub(crate) fn chunk_home(epoch: u64, ino: u64) -> u64 {
    vino(epoch, ino)
}

/// A snapshot as stored under `SNAPSHOT ‖ volume ‖ name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRecord {
    /// Name (unique in the volume).
    pub name: String,
    /// Epoch: the history of changes after the snapshot is kept under it.
    pub epoch: u64,
    /// Creation time.
    pub created: Timestamp,
    /// Inode allocator high-water mark when taken: every inode at or above
    /// it was created later and is not in the snapshot.
    pub next_inode: u64,
    /// Being deleted: hidden, its history is being merged or freed.
    pub deleting: bool,
}

impl SnapshotRecord {
    pub(crate) fn encode(&self) -> FsResult<Vec<u8>> {
        encode_versioned(SNAPSHOT_V1, self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> FsResult<Self> {
        decode_versioned("snapshot", SNAPSHOT_V1, bytes)
    }
}

/// One snapshot as every write transaction needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapInfo {
    pub epoch: u64,
    pub next_inode: u64,
    pub deleting: bool,
}

/// A volume's snapshots, oldest first, under `SNAP_STATE ‖ volume`.
/// Every write transaction reads it, so taking a snapshot (which writes
/// it) orders itself against every concurrent change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapState {
    pub snaps: Vec<SnapInfo>,
    /// A restore is rolling the volume back: writes are refused.
    pub restoring: bool,
}

impl SnapState {
    pub(crate) fn load(txn: &mut dyn Txn, volume: u32) -> FsResult<Self> {
        Self::decode(txn.get(&keys::snap_state(volume))?.as_deref())
    }

    /// Decodes the stored state (`None`: the volume has no snapshots).
    pub(crate) fn decode(bytes: Option<&[u8]>) -> FsResult<Self> {
        match bytes {
            Some(b) => decode_versioned("snapshot state", STATE_V1, b),
            None => Ok(Self::default()),
        }
    }

    pub(crate) fn store(&self, txn: &mut dyn Txn, volume: u32) -> FsResult<()> {
        if self.snaps.is_empty() && !self.restoring {
            txn.delete(&keys::snap_state(volume))?;
        } else {
            txn.put(
                &keys::snap_state(volume),
                &encode_versioned(STATE_V1, self)?,
            )?;
        }
        Ok(())
    }

    /// The snapshot new changes are preserved for: the newest one not
    /// being deleted.
    pub(crate) fn target(&self) -> Option<SnapInfo> {
        self.snaps.iter().rev().find(|s| !s.deleting).copied()
    }

    /// Epochs newer than `epoch`, oldest first (their history may hold
    /// what `epoch` saw).
    pub(crate) fn newer_than(&self, epoch: u64) -> impl Iterator<Item = &SnapInfo> {
        self.snaps.iter().filter(move |s| s.epoch > epoch)
    }

    pub(crate) fn get(&self, epoch: u64) -> Option<SnapInfo> {
        self.snaps.iter().find(|s| s.epoch == epoch).copied()
    }
}

/// Moves the history of `original` kept by the first of `newer` (epochs
/// of snapshots being deleted, oldest first) that has one to `epoch`:
/// with none of its own, `epoch` saw the same. True when one moved.
pub(crate) fn take_over(
    txn: &mut dyn Txn,
    newer: impl IntoIterator<Item = u64>,
    epoch: u64,
    original: &[u8],
) -> nitrofs_metadata::KvResult<bool> {
    for e in newer {
        let nk = keys::history(e, original);
        if let Some(v) = txn.get(&nk)? {
            txn.put(&keys::history(epoch, original), &v)?;
            txn.delete(&nk)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Encodes a history value: the record as it was, or its absence.
pub(crate) fn encode_history(old: Option<&[u8]>) -> Vec<u8> {
    match old {
        None => vec![0],
        Some(v) => {
            let mut out = Vec::with_capacity(1 + v.len());
            out.push(1);
            out.extend_from_slice(v);
            out
        }
    }
}

/// Decodes a history value.
pub(crate) fn decode_history(v: &[u8]) -> FsResult<Option<&[u8]>> {
    match v.split_first() {
        Some((0, _)) => Ok(None),
        Some((1, rest)) => Ok(Some(rest)),
        _ => Err(FsError::Io("corrupt snapshot history record".into())),
    }
}

/// The live inode that owns a volume record (whose volume decides whether
/// it is preserved), or `None` for keys outside any volume's namespace.
pub(crate) fn owner_of(key: &[u8]) -> Option<u64> {
    match key.first()? {
        &keys::INODE
        | &keys::DENTRY
        | &keys::DIR_COOKIE
        | &keys::XATTR
        | &keys::ACL
        | &keys::INLINE => keys::ino_of(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_inode_numbers_split_back() {
        assert_eq!(split_ino(vino(7, 12345)), (7, 12345));
        assert_eq!(split_ino(12345), (0, 12345));
        assert_eq!(split_ino(vino(SNAPDIR_EPOCH, 3)), (SNAPDIR_EPOCH, 3));
    }

    #[test]
    fn history_values_round_trip_and_reject_garbage() {
        assert_eq!(decode_history(&encode_history(None)).expect("absent"), None);
        assert_eq!(
            decode_history(&encode_history(Some(b"abc"))).expect("value"),
            Some(&b"abc"[..])
        );
        assert!(decode_history(&[]).is_err());
        assert!(decode_history(&[9]).is_err());
    }

    #[test]
    fn only_namespace_records_have_owners() {
        assert_eq!(owner_of(&keys::inode(5)), Some(5));
        assert_eq!(owner_of(&keys::dentry(6, b"x")), Some(6));
        assert_eq!(owner_of(&keys::dir_cookie(7, 3)), Some(7));
        assert_eq!(owner_of(&keys::xattr(8, b"user.a")), Some(8));
        assert_eq!(owner_of(&keys::acl(9, 1)), Some(9));
        assert_eq!(owner_of(&keys::inline(10)), Some(10));
        assert_eq!(owner_of(&keys::gc(9)), None);
        assert_eq!(owner_of(&keys::volume("v")), None);
    }
}
