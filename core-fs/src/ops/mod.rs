//! One file per operation family. Each public method is one metadata
//! transaction (plus chunk I/O ordered around it).

pub(crate) mod acl;
pub(crate) mod alloc;
pub(crate) mod attr;
pub(crate) mod create;
pub(crate) mod gc;
pub(crate) mod io;
pub(crate) mod lookup;
pub mod object;
pub(crate) mod open;
pub mod pinned;
pub(crate) mod readdir;
pub(crate) mod remove;
pub(crate) mod rename;
pub(crate) mod volume;
pub mod xattr;
