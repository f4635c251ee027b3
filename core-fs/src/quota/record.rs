//! The stored quota records (all under the `QUOTA` prefix, see
//! `nitrofs_metadata::keys`) and their versioned encoding.

use crate::record::{decode_versioned, encode_versioned};
use crate::FsResult;
use nitrofs_metadata::{keys, Txn};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Version of every quota record type (each decodes only its own).
const V1: u8 = 1;

/// Hard limits of a quota; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Most bytes (sum of the sizes of regular files).
    pub bytes: Option<u64>,
    /// Most inodes (files, directories, symlinks, special files).
    pub inodes: Option<u64>,
}

/// What a quota counts now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Bytes charged.
    pub bytes: u64,
    /// Inodes charged.
    pub inodes: u64,
}

/// A signed amount of usage. Signed because while a new quota is being
/// counted, releases of already-counted objects may land on the record
/// before the count that includes them does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Count {
    pub bytes: i128,
    pub inodes: i128,
}

impl Count {
    pub(crate) fn new(bytes: u64, inodes: u64) -> Self {
        Self {
            bytes: i128::from(bytes),
            inodes: i128::from(inodes),
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.bytes == 0 && self.inodes == 0
    }

    /// The usage to report (never negative).
    pub(crate) fn usage(&self) -> QuotaUsage {
        let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        QuotaUsage {
            bytes: clamp(self.bytes),
            inodes: clamp(self.inodes),
        }
    }
}

impl std::ops::Add for Count {
    type Output = Count;
    fn add(self, o: Count) -> Count {
        Count {
            bytes: self.bytes + o.bytes,
            inodes: self.inodes + o.inodes,
        }
    }
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        *self = *self + o;
    }
}

impl std::ops::Neg for Count {
    type Output = Count;
    fn neg(self) -> Count {
        Count {
            bytes: -self.bytes,
            inodes: -self.inodes,
        }
    }
}

/// Life cycle of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Counting and enforcing.
    Ready,
    /// Set on a populated tree or volume: existing usage is being counted
    /// (see `walk`); changes are counted and limits enforced meanwhile.
    Counting,
    /// Being removed (tree quotas): no longer counted or enforced; the
    /// membership records that point at it are being cleared.
    Removing,
}

/// One quota (tree, user or group) as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QuotaRecord {
    /// Volume the quota belongs to.
    pub volume: u32,
    /// Random at creation: membership records name a quota by root and id,
    /// so records left from a removed quota never count for a new one.
    pub id: u64,
    /// Hard limits.
    pub limits: QuotaLimits,
    /// Usage counted so far.
    pub usage: Count,
    /// Life cycle.
    pub phase: Phase,
}

/// Progress of counting a new quota's existing usage (`QUOTA_COUNT` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// User and group quotas: inodes below this number are counted (the
    /// scan goes in inode order); `u64::MAX` when the scan is complete.
    pub cursor: u64,
    /// Usage found by the walk so far, added to the quota when it ends.
    pub counted: Count,
    /// User and group quotas: no inode numbered from here on existed when
    /// the quota was made (the inode counter's value then). Such inodes
    /// are charged as they change and the scan stops here, so files
    /// created faster than the scan advances cannot keep it from ending.
    /// `u64::MAX` for a scan begun by a version without the bound.
    pub limit: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            cursor: 0,
            counted: Count::default(),
            limit: u64::MAX,
        }
    }
}

/// [`Progress`] as version 1 stored it (before `limit`).
#[derive(Deserialize)]
struct ProgressV1 {
    cursor: u64,
    counted: Count,
}

/// Version of stored [`Progress`] records since `limit`.
const PROGRESS_V2: u8 = 2;

/// The tree quota an inode is charged to (`QUOTA_MEMBER` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Member {
    /// The quota root directory.
    pub root: u64,
    /// The quota's id when the membership was recorded.
    pub id: u64,
}

/// How many quotas of each kind a volume has (`QUOTA_VOLUME` key): lets
/// every operation on a volume without quotas skip all quota work after
/// one read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VolumeQuotas {
    pub trees: u32,
    pub users: u32,
    pub groups: u32,
}

impl VolumeQuotas {
    pub(crate) fn any(&self) -> bool {
        self.trees + self.users + self.groups > 0
    }
}

fn load<T: DeserializeOwned>(txn: &mut dyn Txn, key: &[u8], what: &str) -> FsResult<Option<T>> {
    match txn.get(key)? {
        Some(b) => Ok(Some(decode_versioned(what, V1, &b)?)),
        None => Ok(None),
    }
}

fn store<T: Serialize>(txn: &mut dyn Txn, key: &[u8], value: &T) -> FsResult<()> {
    txn.put(key, &encode_versioned(V1, value)?)?;
    Ok(())
}

pub(crate) fn load_quota(txn: &mut dyn Txn, key: &[u8]) -> FsResult<Option<QuotaRecord>> {
    load(txn, key, "quota")
}

pub(crate) fn store_quota(txn: &mut dyn Txn, key: &[u8], q: &QuotaRecord) -> FsResult<()> {
    store(txn, key, q)
}

/// The quota record of `quota_key`, decoded from a scanned value.
pub(crate) fn decode_quota(bytes: &[u8]) -> FsResult<QuotaRecord> {
    decode_versioned("quota", V1, bytes)
}

pub(crate) fn load_progress(txn: &mut dyn Txn, quota_key: &[u8]) -> FsResult<Progress> {
    let Some(b) = txn.get(&keys::quota_count(quota_key))? else {
        return Ok(Progress::default());
    };
    if b.first() == Some(&V1) {
        let old: ProgressV1 = decode_versioned("quota progress", V1, &b)?;
        return Ok(Progress {
            cursor: old.cursor,
            counted: old.counted,
            limit: u64::MAX,
        });
    }
    decode_versioned("quota progress", PROGRESS_V2, &b)
}

pub(crate) fn store_progress(txn: &mut dyn Txn, quota_key: &[u8], p: &Progress) -> FsResult<()> {
    txn.put(
        &keys::quota_count(quota_key),
        &encode_versioned(PROGRESS_V2, p)?,
    )?;
    Ok(())
}

pub(crate) fn load_member(txn: &mut dyn Txn, ino: u64) -> FsResult<Option<Member>> {
    load(txn, &keys::quota_member(ino), "quota membership")
}

/// Records (or, with `None`, forgets) the tree quota `ino` is charged to.
pub(crate) fn store_member(txn: &mut dyn Txn, ino: u64, m: Option<Member>) -> FsResult<()> {
    match m {
        Some(m) => store(txn, &keys::quota_member(ino), &m),
        None => Ok(txn.delete(&keys::quota_member(ino))?),
    }
}

pub(crate) fn load_volume(txn: &mut dyn Txn, volume: u32) -> FsResult<VolumeQuotas> {
    Ok(load(txn, &keys::quota_volume(volume), "volume quotas")?.unwrap_or_default())
}

pub(crate) fn store_volume(txn: &mut dyn Txn, volume: u32, v: &VolumeQuotas) -> FsResult<()> {
    if v.any() {
        store(txn, &keys::quota_volume(volume), v)
    } else {
        Ok(txn.delete(&keys::quota_volume(volume))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_written_before_the_limit_reads_as_unbounded_and_new_progress_round_trips() {
        #[derive(Serialize)]
        struct Old {
            cursor: u64,
            counted: Count,
        }
        let kv = nitrofs_metadata::MemKv::new();
        let key = b"q";
        let counted = Count {
            bytes: 7,
            inodes: 2,
        };
        let mut txn = nitrofs_metadata::MetaKv::begin(&kv);
        txn.put(
            &keys::quota_count(key),
            &encode_versioned(
                V1,
                &Old {
                    cursor: 40,
                    counted,
                },
            )
            .expect("encode"),
        )
        .expect("put");
        let p = load_progress(txn.as_mut(), key).expect("load");
        assert_eq!((p.cursor, p.counted, p.limit), (40, counted, u64::MAX));
        let new = Progress {
            cursor: 5,
            counted,
            limit: 1000,
        };
        store_progress(txn.as_mut(), key, &new).expect("store");
        assert_eq!(load_progress(txn.as_mut(), key).expect("load"), new);
        assert_eq!(
            load_progress(txn.as_mut(), b"none").expect("load").limit,
            u64::MAX
        );
    }

    #[test]
    fn quota_record_round_trips_with_negative_usage_and_open_limits() {
        let q = QuotaRecord {
            volume: 3,
            id: 99,
            limits: QuotaLimits {
                bytes: Some(1 << 40),
                inodes: None,
            },
            usage: Count {
                bytes: -5,
                inodes: i128::from(u64::MAX) * 3,
            },
            phase: Phase::Counting,
        };
        let b = encode_versioned(V1, &q).expect("encode");
        assert_eq!(b[0], V1);
        assert_eq!(decode_quota(&b).expect("decode"), q);
        assert!(decode_quota(&[2, 0]).is_err(), "unknown version");
        assert!(decode_quota(&[V1, 1]).is_err(), "truncated");
        assert_eq!(
            q.usage.usage(),
            QuotaUsage {
                bytes: 0,
                inodes: u64::MAX
            }
        );
    }

    #[test]
    fn quota_keys_of_each_kind_stay_apart() {
        let tree = keys::quota_tree(7);
        let user = keys::quota_owner(keys::QUOTA_USER, 1, 7);
        let group = keys::quota_owner(keys::QUOTA_GROUP, 1, 7);
        let member = keys::quota_member(7);
        let all = [
            keys::quota_volume(1),
            tree.clone(),
            user.clone(),
            group,
            member,
            keys::quota_count(&tree),
            keys::quota_count(&user),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a[0], keys::QUOTA);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(tree.starts_with(&keys::quota_tree_prefix()));
        assert!(user.starts_with(&keys::quota_owner_prefix(keys::QUOTA_USER, 1)));
        assert_eq!(keys::quota_count(&tree)[1], keys::QUOTA_COUNT);
    }
}
