//! The tree walk in S3 key order.
//!
//! S3 lists keys in byte order of the whole key; the namespace stores one
//! directory's names in byte order. A subdirectory `d` holds the keys
//! `d/…`, so among its siblings it sorts as `d/`: after `d-x` and `d.txt`
//! (`-` and `.` are below `/`) and before `d0`. The walk reads each
//! directory in name order with `list_by_name` (a page at a time, never
//! the whole directory) and *defers* a subdirectory until the siblings
//! that sort before `d/` have been produced. Deferred directories form a
//! stack whose top always sorts first: a directory deferred while `d` is
//! waiting is named `d` + a byte below `/`, so its keys come before `d/`.
//!
//! An empty directory (one the walk finds nothing in) yields the key `d/`,
//! a directory marker. With delimiter `/`, subdirectories of the listed
//! directory are not entered: each yields the common prefix `d/`.
//!
//! A walk can start after any key, so pages resume from an opaque token:
//! the frames along the key's path are rebuilt, each positioned after the
//! key's component, and each gets the deferred directories that still sort
//! after the key (names that are prefixes of the component followed by a
//! byte below `/`; at most one lookup per such byte).
//!
//! Entries that are not regular files or directories, or whose names are
//! not UTF-8 (S3 keys are UTF-8), are skipped. A subdirectory the caller
//! may not read is skipped; the listed directory itself answers
//! AccessDenied.

use crate::error::fs_error;
use nitrofs_core_fs::{
    Attr, Credentials, DirEntry, FileSystem, FileType, FsError, InodeId, NAME_MAX,
};
use s3s::S3Result;
use std::cmp::Ordering;
use std::collections::VecDeque;

/// One thing a walk yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A regular file: key and attributes.
    Object(Vec<u8>, Attr),
    /// An empty directory: key `…/` and the directory's attributes.
    Marker(Vec<u8>, Attr),
    /// A subdirectory rolled up under the delimiter `/`: `…/`.
    Prefix(Vec<u8>),
}

impl Item {
    /// The key (or common prefix).
    pub fn key(&self) -> &[u8] {
        match self {
            Item::Object(k, _) | Item::Marker(k, _) | Item::Prefix(k) => k,
        }
    }
}

struct Frame {
    ino: InodeId,
    attr: Attr,
    /// Key prefix of this directory's entries (`""` or `a/b/`).
    prefix: Vec<u8>,
    /// Entries must start with this (only the listed directory has one).
    filter: Vec<u8>,
    /// `list_by_name` resumes after this name.
    cursor: Vec<u8>,
    buf: VecDeque<DirEntry>,
    more: bool,
    /// Subdirectories waiting for their turn; the top sorts first.
    deferred: Vec<(Vec<u8>, Attr)>,
    /// Whether anything was (or, for a resumed frame, may have been) yielded.
    emitted: bool,
    /// Whether an empty frame yields its own marker.
    marker_ok: bool,
}

/// A walk over one directory tree in S3 key order.
pub struct Walk<'a> {
    fs: &'a FileSystem,
    cred: &'a Credentials,
    frames: Vec<Frame>,
    /// Roll subdirectories of the listed directory up into prefixes.
    rollup: bool,
    page: usize,
}

/// Compares `a + "/"` with `b` (plus `/` when `b_dir`).
fn cmp_keys(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> Ordering {
    let slash: &[u8] = b"/";
    let a_tail = if a_dir { slash } else { &[] };
    let b_tail = if b_dir { slash } else { &[] };
    a.iter().chain(a_tail).cmp(b.iter().chain(b_tail))
}

/// The `after` position from which `list_by_name` returns the first name
/// that starts with `filter`, or `None` if no name can.
fn seek_before(filter: &[u8]) -> Option<Vec<u8>> {
    let Some((&last, head)) = filter.split_last() else {
        return Some(Vec::new());
    };
    if filter.len() > NAME_MAX {
        return None;
    }
    if last == 0 {
        return Some(head.to_vec());
    }
    let mut after = head.to_vec();
    after.push(last - 1);
    after.resize(NAME_MAX, 0xff);
    Some(after)
}

impl<'a> Walk<'a> {
    /// A walk of the directory `dir` whose keys start with `prefix`
    /// (ending in `/`, or empty for the bucket root), yielding only entries
    /// whose names start with `filter`, after the key `start` (exclusive)
    /// when given. `rollup` turns the subdirectories of `dir` into
    /// common prefixes (delimiter `/`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fs: &'a FileSystem,
        cred: &'a Credentials,
        dir: Attr,
        prefix: Vec<u8>,
        filter: Vec<u8>,
        start: Option<&[u8]>,
        rollup: bool,
        page: usize,
    ) -> S3Result<Walk<'a>> {
        let mut w = Walk {
            fs,
            cred,
            frames: Vec::new(),
            rollup,
            page: page.clamp(2, 1000),
        };
        let Some(seek) = seek_before(&filter) else {
            return Ok(w);
        };
        let top = Frame {
            ino: dir.ino,
            attr: dir,
            marker_ok: filter.is_empty() && !prefix.is_empty(),
            prefix,
            filter,
            cursor: seek,
            buf: VecDeque::new(),
            more: true,
            deferred: Vec::new(),
            emitted: false,
        };
        match start {
            None => w.frames.push(top),
            Some(s) => {
                if let Some(rest) = s.strip_prefix(top.prefix.as_slice()) {
                    if rest < top.filter.as_slice() {
                        w.frames.push(top);
                    } else {
                        let rest = rest.to_vec();
                        w.resume(top, &rest)?;
                    }
                } else if s < top.prefix.as_slice() {
                    w.frames.push(top);
                }
                // Otherwise every key of this walk sorts before `start`.
            }
        }
        Ok(w)
    }

    /// Positions `frame` (and the frames below it) after `rest`, the start
    /// key relative to the frame's prefix.
    fn resume(&mut self, mut frame: Frame, rest: &[u8]) -> S3Result<()> {
        frame.emitted = true;
        match rest.iter().position(|&b| b == b'/') {
            Some(i) => {
                let (c, r) = (&rest[..i], &rest[i + 1..]);
                let mut after = c.to_vec();
                after.push(b'/');
                frame.cursor = frame.cursor.clone().max(after);
                frame.deferred = self.prefix_dirs(&frame, c, false)?;
                let child =
                    if c.starts_with(&frame.filter) && !(self.rollup && self.frames.is_empty()) {
                        self.lookup_dir(&frame, c)?
                    } else {
                        None
                    };
                let prefix = crate::key::join(&frame.prefix, c);
                self.frames.push(frame);
                if let Some(attr) = child {
                    let mut prefix = prefix;
                    prefix.push(b'/');
                    let child = Frame {
                        ino: attr.ino,
                        attr,
                        prefix,
                        filter: Vec::new(),
                        cursor: Vec::new(),
                        buf: VecDeque::new(),
                        more: true,
                        deferred: Vec::new(),
                        emitted: true,
                        marker_ok: true,
                    };
                    return self.resume(child, r);
                }
                Ok(())
            }
            None => {
                frame.cursor = frame.cursor.clone().max(rest.to_vec());
                frame.deferred = self.prefix_dirs(&frame, rest, true)?;
                self.frames.push(frame);
                Ok(())
            }
        }
    }

    /// Directories `d` of `frame` with `d <= name < d/`, smallest key on
    /// top: proper prefixes of `name` followed by a byte below `/`, and
    /// `name` itself when `inclusive`.
    fn prefix_dirs(
        &self,
        frame: &Frame,
        name: &[u8],
        inclusive: bool,
    ) -> S3Result<Vec<(Vec<u8>, Attr)>> {
        let mut out = Vec::new();
        for j in 1..=name.len() {
            let eligible = if j == name.len() {
                inclusive
            } else {
                name[j] < b'/'
            };
            let cand = &name[..j];
            if !eligible || !cand.starts_with(&frame.filter) || std::str::from_utf8(cand).is_err() {
                continue;
            }
            if let Some(attr) = self.lookup_dir(frame, cand)? {
                out.push((cand.to_vec(), attr));
            }
        }
        Ok(out)
    }

    /// The subdirectory `name` of `frame`. `.` and `..` are never
    /// subdirectories here: a start key is client input, and following
    /// them would list a directory under a second name (or its parent).
    fn lookup_dir(&self, frame: &Frame, name: &[u8]) -> S3Result<Option<Attr>> {
        if name.is_empty() || name == b"." || name == b".." || name.len() > NAME_MAX {
            return Ok(None);
        }
        match self.fs.lookup(self.cred, frame.ino, name) {
            Ok(a) if a.kind == FileType::Directory => Ok(Some(a)),
            Ok(_) | Err(FsError::NotFound | FsError::NameTooLong | FsError::Invalid(_)) => Ok(None),
            Err(e) => Err(fs_error(e)),
        }
    }

    /// Reads the next page of the top frame. False when the frame is
    /// unreadable and was dropped.
    fn fill(&mut self) -> S3Result<bool> {
        let depth = self.frames.len();
        let page = self.page;
        let Some(top) = self.frames.last_mut() else {
            return Ok(false);
        };
        match self.fs.list_by_name(self.cred, top.ino, &top.cursor, page) {
            Ok((entries, more)) => {
                if let Some(last) = entries.last() {
                    top.cursor = last.name.clone();
                }
                top.more = more && !entries.is_empty();
                top.buf.extend(entries);
                Ok(true)
            }
            Err(FsError::Access | FsError::Perm | FsError::Stale | FsError::NotFound)
                if depth > 1 =>
            {
                tracing::debug!(
                    dir = top.ino,
                    "listing skips an unreadable or vanished directory"
                );
                self.frames.pop();
                Ok(false)
            }
            Err(e) => Err(fs_error(e)),
        }
    }

    fn mark_emitted(&mut self) {
        for f in &mut self.frames {
            f.emitted = true;
        }
    }

    /// The next key, marker or prefix, in S3 order.
    pub fn next_item(&mut self) -> S3Result<Option<Item>> {
        loop {
            let Some(top) = self.frames.last_mut() else {
                return Ok(None);
            };
            if top.buf.is_empty() && top.more && !self.fill()? {
                continue;
            }
            let Some(top) = self.frames.last_mut() else {
                return Ok(None);
            };
            let take_deferred = match (top.deferred.last(), top.buf.front()) {
                (Some((d, _)), Some(e)) => {
                    let e_dir = e
                        .attr
                        .as_ref()
                        .is_some_and(|a| a.kind == FileType::Directory);
                    cmp_keys(d, true, &e.name, e_dir) == Ordering::Less
                }
                (Some(_), None) => true,
                (None, _) => false,
            };
            if take_deferred {
                let Some((name, attr)) = top.deferred.pop() else {
                    continue;
                };
                let mut prefix = crate::key::join(&top.prefix, &name);
                prefix.push(b'/');
                if self.rollup && self.frames.len() == 1 {
                    self.mark_emitted();
                    return Ok(Some(Item::Prefix(prefix)));
                }
                self.frames.push(Frame {
                    ino: attr.ino,
                    attr,
                    prefix,
                    filter: Vec::new(),
                    cursor: Vec::new(),
                    buf: VecDeque::new(),
                    more: true,
                    deferred: Vec::new(),
                    emitted: false,
                    marker_ok: true,
                });
                continue;
            }
            let Some(entry) = top.buf.pop_front() else {
                // This directory is done.
                let Some(done) = self.frames.pop() else {
                    return Ok(None);
                };
                if !done.emitted && done.marker_ok {
                    self.mark_emitted();
                    return Ok(Some(Item::Marker(done.prefix, done.attr)));
                }
                continue;
            };
            if !entry.name.starts_with(&top.filter) {
                if entry.name.as_slice() > top.filter.as_slice() {
                    // Names are sorted: no later one matches either.
                    top.buf.clear();
                    top.more = false;
                }
                continue;
            }
            let Some(attr) = entry.attr else { continue };
            if std::str::from_utf8(&entry.name).is_err() {
                continue;
            }
            match attr.kind {
                FileType::Regular => {
                    let key = crate::key::join(&top.prefix, &entry.name);
                    self.mark_emitted();
                    return Ok(Some(Item::Object(key, attr)));
                }
                FileType::Directory => top.deferred.push((entry.name, attr)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_sorts_as_its_name_with_a_slash() {
        assert_eq!(cmp_keys(b"a", true, b"a-b", false), Ordering::Greater);
        assert_eq!(cmp_keys(b"a", true, b"a0", false), Ordering::Less);
        assert_eq!(cmp_keys(b"a", true, b"a.txt", false), Ordering::Greater);
        assert_eq!(cmp_keys(b"a", true, b"a", true), Ordering::Equal);
    }

    #[test]
    fn seeking_to_a_filter_lands_just_before_it() {
        assert_eq!(seek_before(b""), Some(vec![]));
        assert_eq!(seek_before(b"a\0"), Some(b"a".to_vec()));
        let s = seek_before(b"jan").unwrap();
        assert!(s.as_slice() < b"jan".as_slice());
        assert!(s.as_slice() > b"jam\xff\xff".as_slice());
        assert_eq!(s.len(), NAME_MAX);
        assert_eq!(seek_before(&[b'x'; 256]), None);
    }
}
