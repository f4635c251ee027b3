//! Snapshots: epoch-versioned metadata with copy-on-write history.
//!
//! A snapshot is a record and a new epoch: creating one writes three keys
//! whatever the size of the volume. Changes after it keep the old records
//! in `HISTORY` ([`CowTxn`]) and copy a chunk before its first overwrite
//! (`data`); reading a snapshot ([`view`]) takes each record from the
//! oldest history at or after the snapshot, else from the live volume.

pub(crate) mod admin;
mod clone;
mod cow;
mod data;
pub(crate) mod state;
mod view;

pub use admin::Snapshot;
pub(crate) use cow::CowTxn;
pub(crate) use data::chunks_unseen;
pub(crate) use state::LIVE_INO_LIMIT;
pub use state::SNAPSHOT_DIR;
