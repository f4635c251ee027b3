//! READDIR / READDIRPLUS: pages of entries with cookies that stay valid
//! for the life of the directory.
//!
//! Every entry gets the directory's next cookie when it is added and keeps
//! it until removed, so a client can resume after any cookie it was given,
//! whatever was added or removed since. `.` and `..` are cookies 1 and 2.

use crate::perm::{self, R};
use crate::record::{self, FIRST_COOKIE};
use crate::types::{DirEntry, FileType, ReadDirPage};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId};
use nitrofs_metadata::{keys, prefix_end};

impl FileSystem {
    /// The `.` (cookie 1) and `..` (cookie 2) entries a page after
    /// `cookie` starts with, at most `max_entries`.
    pub(crate) fn dot_entries(
        &self,
        dir: InodeId,
        parent: InodeId,
        cookie: u64,
        max_entries: usize,
        with_attrs: bool,
    ) -> Vec<DirEntry> {
        let dots: [(u64, &[u8], u64); 2] = [(1, b".", dir), (2, b"..", parent)];
        dots.into_iter()
            .filter(|(c, ..)| cookie < *c)
            .take(max_entries)
            .map(|(c, name, ino)| DirEntry {
                cookie: c,
                name: name.to_vec(),
                ino,
                attr: if with_attrs {
                    self.getattr(ino).ok()
                } else {
                    None
                },
            })
            .collect()
    }

    /// Up to `max_entries` entries after `cookie` (0 = from the start),
    /// with attributes when `with_attrs`.
    pub fn readdir(
        &self,
        cred: &Credentials,
        dir: InodeId,
        cookie: u64,
        max_entries: usize,
        with_attrs: bool,
    ) -> FsResult<ReadDirPage> {
        if dir >= crate::snapshot::LIVE_INO_LIMIT {
            return self.snap_readdir(cred, dir, cookie, max_entries, with_attrs);
        }
        let d = self.read_inode(dir)?;
        if d.kind != FileType::Directory {
            return Err(FsError::NotDir);
        }
        perm::check(&mut self.store_acls(), &d, cred, R)?;
        let max_entries = max_entries.max(1);
        let mut entries = self.dot_entries(d.ino, d.parent, cookie, max_entries, with_attrs);
        let start = keys::dir_cookie(dir, cookie.saturating_add(1).max(FIRST_COOKIE));
        let end = prefix_end(&keys::dir_cookie_prefix(dir));
        let want = max_entries - entries.len();
        // One extra row tells whether this page reaches the end.
        let rows = self.kv.scan(&start, &end, want + 1)?;
        // The dot entries may not all have fit on this page.
        let dots_done = cookie >= 2 || entries.last().is_some_and(|e| e.cookie == 2);
        let eof = rows.len() <= want && dots_done;
        for (k, v) in rows.iter().take(want) {
            let c =
                keys::dir_cookie_of(k).ok_or_else(|| FsError::Io("corrupt cookie key".into()))?;
            let (ino, name) = record::decode_cookie_value(v)?;
            let attr = if with_attrs {
                match self.getattr(ino) {
                    Ok(a) => Some(a),
                    // Removed between the scan and now: skip the entry.
                    Err(FsError::Stale) => continue,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            entries.push(DirEntry {
                cookie: c,
                name: name.to_vec(),
                ino,
                attr,
            });
        }
        Ok(ReadDirPage {
            dir: d.attr(),
            entries,
            eof,
        })
    }
}
