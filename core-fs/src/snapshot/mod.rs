//! Snapshots: epoch-versioned metadata with copy-on-write history.
//!
//! Every write transaction of core-fs runs through [`CowTxn`], which keeps
//! the record a snapshot needs before the first change after it.

mod cow;

pub(crate) use cow::CowTxn;
