//! Conversion tests and the decode-robustness test: random and truncated
//! bytes through the call decoder and every procedure's argument decoder.

use super::*;
use crate::export::ExportPolicy;
use crate::server::NfsServer;
use crate::tests::test_fs;
use nfs3_types::nfs3::*;
use nfs3_types::xdr_codec::{Opaque, Pack};
use nitrofs_core_fs::PreAttr;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn sample_attr() -> Attr {
    Attr {
        ino: 77,
        generation: 3,
        volume: 5,
        kind: FileType::CharDevice,
        mode: 0o104_755,
        nlink: 2,
        uid: 10,
        gid: 20,
        size: 1234,
        used: 4096,
        rdev: (8, 1),
        atime: Timestamp::new(1, 2),
        mtime: Timestamp::new(3, 4),
        ctime: Timestamp::new(-5, 6),
    }
}

#[test]
fn fattr_carries_volume_as_fsid_and_inode_as_fileid() {
    let f = fattr(&sample_attr());
    assert_eq!(f.fsid, 5);
    assert_eq!(f.fileid, 77);
    assert_eq!(f.type_, ftype3::NF3CHR);
    assert_eq!(f.mode, 0o4755);
    assert_eq!((f.rdev.specdata1, f.rdev.specdata2), (8, 1));
    assert_eq!((f.mtime.seconds, f.mtime.nseconds), (3, 4));
    // Times before 1970 do not wrap around.
    assert_eq!(f.ctime.seconds, 0);
}

#[test]
fn wcc_reports_before_and_after() {
    let after = sample_attr();
    let w = wcc(&Wcc {
        before: PreAttr {
            size: 1,
            mtime: Timestamp::new(9, 9),
            ctime: Timestamp::new(8, 8),
        },
        after,
    });
    let Nfs3Option::Some(b) = w.before else {
        panic!("no pre-op")
    };
    assert_eq!(b.size, 1);
    assert_eq!(b.mtime.seconds, 9);
    assert!(w.after.is_some());
}

#[test]
fn sattr_maps_every_field() {
    let s = sattr3 {
        mode: Nfs3Option::Some(0o170_644),
        uid: Nfs3Option::Some(1),
        gid: Nfs3Option::None,
        size: Nfs3Option::Some(0),
        atime: set_atime::SET_TO_SERVER_TIME,
        mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 {
            seconds: 100,
            nseconds: 5,
        }),
    };
    let set = set_attr(&s);
    assert_eq!(set.mode, Some(0o644));
    assert_eq!(set.uid, Some(1));
    assert_eq!(set.gid, None);
    assert_eq!(set.size, Some(0));
    assert_eq!(set.atime, SetTime::ServerNow);
    assert_eq!(set.mtime, SetTime::Exact(Timestamp::new(100, 5)));
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Valid argument encodings for every NFS procedure, against `root`.
fn sample_args(root: &nfs_fh3) -> Vec<(u32, Vec<u8>)> {
    fn enc<T: Pack>(v: &T) -> Vec<u8> {
        let mut b = Vec::new();
        v.pack(&mut b).expect("pack");
        b
    }
    let dirop = |name: &'static [u8]| diropargs3 {
        dir: root.clone(),
        name: name.into(),
    };
    vec![
        (
            1,
            enc(&GETATTR3args {
                object: root.clone(),
            }),
        ),
        (
            2,
            enc(&SETATTR3args {
                object: root.clone(),
                new_attributes: sattr3::default(),
                guard: Nfs3Option::Some(nfstime3::default()),
            }),
        ),
        (3, enc(&LOOKUP3args { what: dirop(b"a") })),
        (
            4,
            enc(&ACCESS3args {
                object: root.clone(),
                access: 63,
            }),
        ),
        (
            5,
            enc(&READLINK3args {
                symlink: root.clone(),
            }),
        ),
        (
            6,
            enc(&READ3args {
                file: root.clone(),
                offset: 0,
                count: 10,
            }),
        ),
        (
            7,
            enc(&WRITE3args {
                file: root.clone(),
                offset: 0,
                count: 3,
                stable: stable_how::FILE_SYNC,
                data: Opaque::borrowed(b"abc"),
            }),
        ),
        (
            8,
            enc(&CREATE3args {
                where_: dirop(b"f"),
                how: createhow3::GUARDED(sattr3::default()),
            }),
        ),
        (
            9,
            enc(&MKDIR3args {
                where_: dirop(b"d"),
                attributes: sattr3::default(),
            }),
        ),
        (
            10,
            enc(&SYMLINK3args {
                where_: dirop(b"l"),
                symlink: symlinkdata3 {
                    symlink_attributes: sattr3::default(),
                    symlink_data: b"target".as_slice().into(),
                },
            }),
        ),
        (
            11,
            enc(&MKNOD3args {
                where_: dirop(b"n"),
                what: mknoddata3::NF3CHR(devicedata3 {
                    dev_attributes: sattr3::default(),
                    spec: specdata3 {
                        specdata1: 1,
                        specdata2: 2,
                    },
                }),
            }),
        ),
        (
            12,
            enc(&REMOVE3args {
                object: dirop(b"f"),
            }),
        ),
        (
            13,
            enc(&RMDIR3args {
                object: dirop(b"d"),
            }),
        ),
        (
            14,
            enc(&RENAME3args {
                from: dirop(b"f"),
                to: dirop(b"g"),
            }),
        ),
        (
            15,
            enc(&LINK3args {
                file: root.clone(),
                link: dirop(b"h"),
            }),
        ),
        (
            16,
            enc(&READDIR3args {
                dir: root.clone(),
                cookie: 0,
                cookieverf: cookieverf3::default(),
                count: 4096,
            }),
        ),
        (
            17,
            enc(&READDIRPLUS3args {
                dir: root.clone(),
                cookie: 0,
                cookieverf: cookieverf3::default(),
                dircount: 4096,
                maxcount: 8192,
            }),
        ),
        (
            18,
            enc(&FSSTAT3args {
                fsroot: root.clone(),
            }),
        ),
        (
            19,
            enc(&FSINFO3args {
                fsroot: root.clone(),
            }),
        ),
        (
            20,
            enc(&PATHCONF3args {
                object: root.clone(),
            }),
        ),
        (
            21,
            enc(&COMMIT3args {
                file: root.clone(),
                offset: 0,
                count: 0,
            }),
        ),
    ]
}

/// The accept_stat of a reply, or None for a denied one.
fn accept_stat(reply: &[u8]) -> Option<u32> {
    let word = |at: usize| u32::from_be_bytes(reply[at..at + 4].try_into().expect("word"));
    (word(8) == 0).then(|| word(20))
}

#[test]
fn truncated_and_random_input_never_panics() {
    let (_dir, fs) = test_fs();
    let root_attr = fs
        .getattr(fs.volume("default").expect("vol").root)
        .expect("root");
    let root = crate::handle::FileHandle::of(&root_attr).to_nfs();
    let server = NfsServer::new(fs, Arc::new(ExportPolicy::default()));
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let cred = crate::rpc::tests::sys_cred(0, 0, vec![1, 2]);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    // Whole records of random bytes, and random bytes after a valid
    // header: any program, any procedure.
    for i in 0..3000 {
        let len = (rng.next() % 200) as usize;
        let _ = server.handle_record(peer, 2049, &rng.bytes(len));
        let prog = [100_003, 100_005, 100_000, 7][i % 4];
        let proc_num = (rng.next() % 24) as u32;
        let mut rec = crate::rpc::tests::call(
            i as u32,
            prog,
            if prog == 100_000 { 2 } else { 3 },
            proc_num,
            cred.borrow(),
        );
        rec.extend(rng.bytes(len));
        let reply = server
            .handle_record(peer, 2049, &rec)
            .expect("a call gets a reply");
        assert_eq!(&reply.head[..4], &(i as u32).to_be_bytes());
    }

    // Every prefix of every procedure's valid arguments decodes to a
    // result or GARBAGE_ARGS; random corruption of them never panics.
    for (proc_num, args) in sample_args(&root) {
        let header = crate::rpc::tests::call(proc_num, 100_003, 3, proc_num, cred.borrow());
        for cut in 0..=args.len() {
            let mut rec = header.clone();
            rec.extend_from_slice(&args[..cut]);
            let reply = server.handle_record(peer, 2049, &rec).expect("reply");
            let stat = accept_stat(&reply.head);
            if cut == args.len() {
                assert_eq!(stat, Some(0), "proc {proc_num} with whole args");
            } else {
                assert!(
                    matches!(stat, Some(0) | Some(4)),
                    "proc {proc_num} cut {cut}: {stat:?}"
                );
            }
        }
        for _ in 0..200 {
            let mut bad = args.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % bad.len();
                bad[at] = rng.next() as u8;
            }
            let mut rec = header.clone();
            rec.extend_from_slice(&bad);
            let _ = server.handle_record(peer, 2049, &rec);
        }
    }

    // The same for MOUNT and PORTMAP arguments.
    let mut mnt = Vec::new();
    nfs3_types::mount::dirpath(Opaque::borrowed(b"/default/x/y"))
        .pack(&mut mnt)
        .expect("pack");
    let mut getport = Vec::new();
    nfs3_types::portmap::mapping {
        prog: 100_003,
        vers: 3,
        prot: 6,
        port: 0,
    }
    .pack(&mut getport)
    .expect("pack");
    for (prog, vers, proc_num, args) in [
        (100_005, 3, 1, mnt.clone()),
        (100_005, 3, 3, mnt),
        (100_000, 2, 3, getport),
    ] {
        let header = crate::rpc::tests::call(1, prog, vers, proc_num, cred.borrow());
        for cut in 0..=args.len() {
            let mut rec = header.clone();
            rec.extend_from_slice(&args[..cut]);
            let stat = accept_stat(&server.handle_record(peer, 2049, &rec).expect("reply").head);
            assert!(
                matches!(stat, Some(0) | Some(4)),
                "prog {prog} proc {proc_num} cut {cut}"
            );
        }
    }
}

#[test]
fn an_opaque_claiming_gigabytes_is_garbage_not_an_allocation() {
    let (_dir, fs) = test_fs();
    let server = NfsServer::new(fs, Arc::new(ExportPolicy::default()));
    let cred = crate::rpc::tests::sys_cred(0, 0, vec![]);
    let mut rec = crate::rpc::tests::call(1, 100_003, 3, 7, cred.borrow());
    // WRITE: a handle of 17 bytes, then a data length of 4 GiB - 1.
    rec.extend_from_slice(&[0, 0, 0, 17]);
    rec.extend_from_slice(&[1; 20]);
    rec.extend_from_slice(&[0; 12]);
    rec.extend_from_slice(&[0, 0, 0, 0]);
    rec.extend_from_slice(&[0xff; 4]);
    let reply = server
        .handle_record(IpAddr::V4(Ipv4Addr::LOCALHOST), 2049, &rec)
        .expect("reply");
    assert_eq!(accept_stat(&reply.head), Some(4));
}

#[test]
fn small_reads_are_copied_and_large_ones_sent_from_the_page_cache() {
    use nitrofs_core_fs::ReadPiece;
    let (_dir, fs) = test_fs();
    let root = fs.volume("default").expect("vol").root;
    let cred = nitrofs_core_fs::Credentials::root();
    let how = nitrofs_core_fs::CreateHow::Unchecked(nitrofs_core_fs::SetAttr::default());
    let (attr, _) = fs.create(&cred, root, b"f", &how).expect("create");
    let big = io::ZERO_COPY_MIN as usize + 4096;
    fs.write(&cred, attr.ino, 0, &vec![7u8; big], true)
        .expect("write");
    let file = crate::handle::FileHandle::of(&attr).to_nfs();
    let server = NfsServer::new(fs, Arc::new(ExportPolicy::default()));
    let rpc_cred = crate::rpc::tests::sys_cred(0, 0, vec![]);
    let read = |offset: u64, count: u32| {
        let mut rec = crate::rpc::tests::call(1, 100_003, 3, 6, rpc_cred.borrow());
        READ3args {
            file: file.clone(),
            offset,
            count,
        }
        .pack(&mut rec)
        .expect("pack");
        let reply = server
            .handle_record(IpAddr::V4(Ipv4Addr::LOCALHOST), 2049, &rec)
            .expect("reply");
        assert_eq!(accept_stat(&reply.head), Some(0));
        let pieces = reply.data.pieces();
        let files = pieces
            .iter()
            .filter(|p| matches!(p, ReadPiece::File(_)))
            .count();
        (reply.data.len(), files)
    };
    // A 16 KiB read, a large count past the end that finds 4 KiB, and
    // the limit itself: one byte short of it copies, all of it goes as
    // ranges.
    let min = io::ZERO_COPY_MIN as u32;
    assert_eq!(read(0, 16384), (16384, 0));
    assert_eq!(read(io::ZERO_COPY_MIN, 1 << 20), (4096, 0));
    assert_eq!(read(0, min - 1), (min as usize - 1, 0));
    let (len, files) = read(4096, min);
    assert_eq!(len, min as usize);
    assert!(files > 0, "a read of exactly the limit sends file ranges");
    // The whole file: its chunk's range goes with sendfile.
    let (len, files) = read(0, 1 << 20);
    assert_eq!(len, big);
    assert!(files > 0, "a {big}-byte read sends file ranges");
}
