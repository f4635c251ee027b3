//! Quotas: directory-tree quotas and per-user / per-group quotas of a
//! volume, on bytes and on inodes, with hard limits that hold exactly
//! under concurrency, the same for NFS, S3 and every other caller.
//!
//! **What counts.** Every object is one inode; regular files count their
//! size in bytes (the logical size, as `ls -l` shows it: a sparse file is
//! charged in full — the chunk engine's allocation is not known exactly
//! at transaction time and would let holes be filled past a limit).
//! Directories, symlinks and special files count no bytes. A tree quota on
//! directory `D` counts everything below `D`, not `D` itself. A file with
//! several hard links is one inode, counted once, in the tree it was
//! created in; LINK into another quota tree and RENAME of such a file to
//! another tree are refused with `CrossDevice` (EXDEV, as XFS project
//! quotas do), so a file's bytes can never escape the tree that holds its
//! names. An S3 upload in flight (a detached file) counts nothing until it
//! is published; the publish is refused with `QuotaExceeded` if it would
//! pass a limit. Unlinking the last name releases the usage at once, even
//! if a client still has the file open (NFSv3 has no open state). Space a
//! snapshot keeps alive is not charged.
//!
//! **Where usage changes.** Every operation charges its quotas inside its
//! own metadata transaction (the counters are read and written there), so
//! parallel writers are serialised by the transaction conflict check and
//! no interleaving can pass a limit. A WRITE first reserves the bytes it
//! will add (in memory, counted by every other charging transaction) and
//! only then writes chunk data: an over-quota WRITE fails before anything
//! is written.
//!
//! **Finding an object's tree quota.** Directories know their parent but
//! files do not (hard links), and the inode record is not the place for
//! quota state. Each inode inside a quota tree has a small membership
//! record (`QUOTA_MEMBER`: quota root and the quota's id) naming the
//! nearest quota root it is charged to; the root directory's own
//! membership names the quota above it, so nested quotas form a chain.
//! A create reads its directory's quota or membership (one or two point
//! reads), a write its file's; inodes outside quota trees have no record,
//! and a volume with no quota at all costs one read of `QUOTA_VOLUME`.
//! Renaming a directory to another quota tree re-points its subtree in the
//! same transaction (up to [`charge::MAX_MOVE_INODES`] inodes, beyond that
//! EXDEV so `mv` copies instead).
//!
//! **Populated trees.** A quota set on a directory or volume that already
//! holds data counts it with a walk in small transactions while requests
//! continue; see [`walk`] for why the count is exact.
//!
//! **Not covered:** restoring a snapshot does not recount the quotas of
//! the volume (remove and set them again); KV spaces have their own
//! capacity in the KV store, which the admin API lists next to quotas.

mod admin;
pub(crate) mod charge;
mod record;
mod walk;

pub use admin::{QuotaInfo, QuotaPhase, QuotaTarget};
pub(crate) use charge::{release, Gate};
pub use record::{QuotaLimits, QuotaUsage};
