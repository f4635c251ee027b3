//! Shared fixture of the core-fs integration tests: a [`FileSystem`] on
//! either metadata backend (in-memory or RocksDB in a temporary directory)
//! with its chunks in a [`LocalChunkStore`] in the same directory, plus
//! small helpers that keep the tests readable.
//!
//! Every semantics test runs once per backend through `both_backends!`;
//! test files declare this module with `#[macro_use] mod common;`.

#![allow(dead_code)]

use nitrofs_chunk_store::LocalChunkStore;
use nitrofs_core_fs::*;
use nitrofs_metadata::{MemKv, MetaKv, RocksKv};
use std::path::PathBuf;
use std::sync::Arc;
use tempfile::TempDir;

/// Which metadata engine a fixture runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `nitrofs_metadata::MemKv`.
    Mem,
    /// `nitrofs_metadata::RocksKv` in the fixture's temporary directory.
    Rocks,
}

/// A filesystem on a fresh store.
pub struct Fixture {
    /// The backend under test.
    pub backend: Backend,
    /// The filesystem (shared, as servers hold it).
    pub fs: Arc<FileSystem>,
    /// The chunk engine the filesystem writes to (for checking freed chunks).
    pub chunks: Arc<LocalChunkStore>,
    /// Kept so that a restart of a `Mem` fixture finds the same metadata.
    mem: Option<Arc<MemKv>>,
    /// Holds the RocksDB and chunk directories; deleted on drop.
    dir: TempDir,
}

/// Test chunk size: small, so that crossing chunk boundaries is cheap.
pub const CHUNK: u32 = 64 * 1024;

/// Options every fixture uses unless a test asks otherwise.
pub fn small_chunks() -> FsOptions {
    FsOptions {
        chunk_size: CHUNK,
        ..FsOptions::default()
    }
}

impl Fixture {
    /// A fresh filesystem with 64 KiB chunks.
    pub fn new(backend: Backend) -> Self {
        Self::with_options(backend, small_chunks())
    }

    /// A fresh filesystem with `opts`.
    pub fn with_options(backend: Backend, opts: FsOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mem = match backend {
            Backend::Mem => Some(Arc::new(MemKv::new())),
            Backend::Rocks => None,
        };
        let chunks =
            Arc::new(LocalChunkStore::open(&dir.path().join("chunks")).expect("chunk store"));
        let fs = open_fs(backend, &mem, &dir.path().join("meta"), &chunks, opts);
        Self {
            backend,
            fs,
            chunks,
            mem,
            dir,
        }
    }

    /// Stops the filesystem and opens it again on the same metadata and
    /// chunks: for RocksDB the database is closed and reopened from disk.
    pub fn restart(self, opts: FsOptions) -> Self {
        let Self {
            backend,
            fs,
            chunks,
            mem,
            dir,
        } = self;
        // The fixture must hold the only reference, so RocksDB closes here
        // (a reader or a queued deletion still holding one would keep it).
        match Arc::try_unwrap(fs) {
            Ok(fs) => drop(fs),
            Err(_) => panic!("the filesystem is still shared at restart"),
        }
        drop(chunks);
        let chunks =
            Arc::new(LocalChunkStore::open(&dir.path().join("chunks")).expect("chunk store"));
        let fs = open_fs(backend, &mem, &dir.path().join("meta"), &chunks, opts);
        Self {
            backend,
            fs,
            chunks,
            mem,
            dir,
        }
    }

    /// Where the fixture keeps its files.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The `default` volume.
    pub fn volume(&self) -> Volume {
        self.fs.volume(DEFAULT_VOLUME).expect("default volume")
    }

    /// Root directory of the `default` volume.
    pub fn root(&self) -> InodeId {
        self.volume().root
    }

    /// Creates a regular file as root (GUARDED).
    pub fn file(&self, dir: InodeId, name: &str) -> Attr {
        self.file_as(&root_cred(), dir, name)
    }

    /// Creates a regular file as `cred` (GUARDED).
    pub fn file_as(&self, cred: &Credentials, dir: InodeId, name: &str) -> Attr {
        self.fs
            .create(
                cred,
                dir,
                name.as_bytes(),
                &CreateHow::Guarded(SetAttr::default()),
            )
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
            .0
    }

    /// Creates a directory as root.
    pub fn dir(&self, dir: InodeId, name: &str) -> Attr {
        self.dir_as(&root_cred(), dir, name)
    }

    /// Creates a directory as `cred`.
    pub fn dir_as(&self, cred: &Credentials, dir: InodeId, name: &str) -> Attr {
        self.fs
            .mkdir(cred, dir, name.as_bytes(), &SetAttr::default())
            .unwrap_or_else(|e| panic!("mkdir {name}: {e:?}"))
            .0
    }

    /// Creates a directory as root with `mode`, owner and group.
    pub fn dir_with(&self, dir: InodeId, name: &str, mode: u32, uid: u32, gid: u32) -> Attr {
        let a = self.dir(dir, name);
        self.chown_chmod(a.ino, mode, uid, gid)
    }

    /// Creates a file as root with `mode`, owner and group.
    pub fn file_with(&self, dir: InodeId, name: &str, mode: u32, uid: u32, gid: u32) -> Attr {
        let a = self.file(dir, name);
        self.chown_chmod(a.ino, mode, uid, gid)
    }

    /// Sets owner, group and then mode, as root.
    pub fn chown_chmod(&self, ino: InodeId, mode: u32, uid: u32, gid: u32) -> Attr {
        let owner = SetAttr {
            uid: Some(uid),
            gid: Some(gid),
            ..SetAttr::default()
        };
        self.fs
            .setattr(&root_cred(), ino, &owner, None)
            .expect("chown");
        let m = SetAttr {
            mode: Some(mode),
            ..SetAttr::default()
        };
        self.fs
            .setattr(&root_cred(), ino, &m, None)
            .expect("chmod")
            .after
    }

    /// Looks a name up as root.
    pub fn lookup(&self, dir: InodeId, name: &str) -> FsResult<Attr> {
        self.fs.lookup(&root_cred(), dir, name.as_bytes())
    }

    /// Attributes of a live inode.
    pub fn attr(&self, ino: InodeId) -> Attr {
        self.fs
            .getattr(ino)
            .unwrap_or_else(|e| panic!("getattr {ino}: {e:?}"))
    }

    /// Writes `data` at `offset` as root (unstable).
    pub fn write(&self, ino: InodeId, offset: u64, data: &[u8]) -> Wcc {
        self.fs
            .write(&root_cred(), ino, offset, data, false)
            .expect("write")
    }

    /// The whole content of a file, read as root in pieces.
    pub fn read_all(&self, ino: InodeId) -> Vec<u8> {
        read_all_as(&self.fs, &root_cred(), ino)
    }

    /// Every entry of `dir` except `.` and `..` as (name, ino, cookie),
    /// read as root in pages of `page` entries.
    pub fn list(&self, dir: InodeId, page: usize) -> Vec<(String, InodeId, u64)> {
        list_dir(&self.fs, dir, page)
    }

    /// The names in `dir` (without `.` and `..`), sorted.
    pub fn names(&self, dir: InodeId) -> Vec<String> {
        let mut n: Vec<String> = self
            .list(dir, 1000)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        n.sort();
        n
    }
}

fn open_fs(
    backend: Backend,
    mem: &Option<Arc<MemKv>>,
    meta_dir: &std::path::Path,
    chunks: &Arc<LocalChunkStore>,
    opts: FsOptions,
) -> Arc<FileSystem> {
    let kv: Arc<dyn MetaKv> = match (backend, mem) {
        (Backend::Mem, Some(m)) => m.clone(),
        _ => Arc::new(RocksKv::open(meta_dir).expect("open rocksdb")),
    };
    Arc::new(FileSystem::open(kv, chunks.clone(), opts).expect("open filesystem"))
}

/// Every entry of `dir` except `.` and `..`, as root, in cookie order.
pub fn list_dir(fs: &FileSystem, dir: InodeId, page: usize) -> Vec<(String, InodeId, u64)> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let p = fs
            .readdir(&root_cred(), dir, cookie, page, false)
            .expect("readdir");
        for e in &p.entries {
            cookie = e.cookie;
            if e.name != b"." && e.name != b".." {
                out.push((
                    String::from_utf8_lossy(&e.name).into_owned(),
                    e.ino,
                    e.cookie,
                ));
            }
        }
        if p.eof {
            return out;
        }
        assert!(
            !p.entries.is_empty(),
            "readdir returned an empty page without eof"
        );
    }
}

/// The whole content of a file, read as `cred`.
pub fn read_all_as(fs: &FileSystem, cred: &Credentials, ino: InodeId) -> Vec<u8> {
    let size = fs.getattr(ino).expect("getattr").size;
    let mut out = Vec::with_capacity(size as usize);
    loop {
        let r = fs.read(cred, ino, out.len() as u64, 100_000).expect("read");
        out.extend_from_slice(&r.data);
        if r.eof {
            break;
        }
        assert!(!r.data.is_empty(), "read returned no data before eof");
    }
    assert_eq!(out.len() as u64, size, "bytes read differ from size");
    out
}

/// The superuser.
pub fn root_cred() -> Credentials {
    Credentials::root()
}

/// An unprivileged user whose primary group equals its uid.
pub fn user(uid: u32) -> Credentials {
    Credentials::new(uid, uid)
}

/// An unprivileged user with supplementary groups.
pub fn user_in(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
    Credentials {
        uid,
        gid,
        groups: groups.to_vec(),
    }
}

/// Deterministic, position-dependent bytes that differ per `seed`.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(u32::from(seed))
                .wrapping_add((i >> 8) as u32) as u8
        })
        .collect()
}

/// Waits long enough that the next `Timestamp::now()` is later.
pub fn tick() {
    std::thread::sleep(std::time::Duration::from_millis(3));
}

/// Asserts that an expression fails with an error matching a pattern.
#[allow(unused_macros)]
macro_rules! assert_err {
    ($e:expr, $p:pat $(,)?) => {
        match $e {
            Err($p) => {}
            other => panic!(
                "{} = {:?}, expected Err({})",
                stringify!($e),
                other,
                stringify!($p)
            ),
        }
    };
}

/// Defines each test once per backend: `name::mem` and `name::rocks`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($( $(#[$meta:meta])* fn $name:ident($fx:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn body($fx: &$crate::common::Fixture) $body

                #[test]
                fn mem() {
                    body(&$crate::common::Fixture::new($crate::common::Backend::Mem));
                }

                #[test]
                fn rocks() {
                    body(&$crate::common::Fixture::new($crate::common::Backend::Rocks));
                }
            }
        )*
    };
}
