//! Edge cases of the NFSv3 surface: name limits, wrong object types, EOF,
//! timestamps and WCC data, MKNOD, and what FSINFO/FSSTAT/PATHCONF claim.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::nfs::*;
use common::{block_on, PatternRng, Server};
use nfs3_client::nfs3_types::nfs3::*;

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn names_up_to_255_bytes_work_and_longer_or_invalid_names_are_refused() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let n255 = "n".repeat(255);
        let n256 = "n".repeat(256);
        let fh = create_file(&mut c, &root, &n255, 0o644).await;
        assert_eq!(lookup(&mut c, &root, &n255).await, Ok(fh));
        assert_eq!(
            create(&mut c, &root, &n256, createhow3::GUARDED(mode_attr(0o644)))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_NAMETOOLONG),
            "CREATE of a 256-byte name"
        );
        assert_eq!(
            lookup(&mut c, &root, &n256).await.err(),
            Some(nfsstat3::NFS3ERR_NAMETOOLONG),
            "LOOKUP of a 256-byte name"
        );
        assert_eq!(
            try_mkdir(&mut c, &root, &n256, mode_attr(0o755))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_NAMETOOLONG),
            "MKDIR of a 256-byte name"
        );
        for bad in [".", "..", "", "a/b"] {
            let r = create(&mut c, &root, bad, createhow3::GUARDED(mode_attr(0o644))).await;
            assert!(r.is_err(), "CREATE {bad:?} must fail, got {r:?}");
        }
        let r = try_mkdir(&mut c, &root, "x/y", mode_attr(0o755)).await;
        assert!(
            r.is_err(),
            "MKDIR with a slash in the name must fail, got {r:?}"
        );
        let names = list_names(&mut c, &root).await;
        assert_eq!(names, vec![n255], "only the valid name was created");
    });
}

#[test]
fn operations_on_the_wrong_object_type_fail_with_the_posix_error() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "file", 0o644).await;
        let d = mkdir(&mut c, &root, "dir", 0o755).await;
        create_file(&mut c, &d, "child", 0o644).await;

        assert_eq!(
            lookup(&mut c, &f, "x").await.err(),
            Some(nfsstat3::NFS3ERR_NOTDIR),
            "LOOKUP in a file"
        );
        assert_eq!(
            create(&mut c, &f, "x", createhow3::GUARDED(mode_attr(0o644)))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_NOTDIR),
            "CREATE in a file"
        );
        let rm = c
            .rmdir(&RMDIR3args {
                object: diropargs3 {
                    dir: root.clone(),
                    name: b"file".as_slice().into(),
                },
            })
            .await
            .expect("RMDIR transport");
        assert!(
            matches!(rm, Nfs3Result::Err((nfsstat3::NFS3ERR_NOTDIR, _))),
            "RMDIR of a file: {rm:?}"
        );
        let rm = c
            .rmdir(&RMDIR3args {
                object: diropargs3 {
                    dir: root.clone(),
                    name: b"dir".as_slice().into(),
                },
            })
            .await
            .expect("RMDIR transport");
        assert!(
            matches!(rm, Nfs3Result::Err((nfsstat3::NFS3ERR_NOTEMPTY, _))),
            "RMDIR of a non-empty directory: {rm:?}"
        );
        let r = remove(&mut c, &root, "dir").await;
        assert!(r.is_err(), "REMOVE of a directory must fail, got {r:?}");
        assert_eq!(
            read(&mut c, &d, 0, 10).await.err(),
            Some(nfsstat3::NFS3ERR_ISDIR),
            "READ of a directory"
        );
        let w = write(&mut c, &d, 0, b"x", stable_how::FILE_SYNC).await;
        assert!(
            matches!(
                w.as_ref().err(),
                Some(nfsstat3::NFS3ERR_ISDIR) | Some(nfsstat3::NFS3ERR_INVAL)
            ),
            "WRITE to a directory: {:?}",
            w.err()
        );
        assert_eq!(
            readlink(&mut c, &f).await.err(),
            Some(nfsstat3::NFS3ERR_INVAL),
            "READLINK of a regular file"
        );
        assert_eq!(
            remove(&mut c, &root, "missing").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT)
        );
        assert_eq!(
            getattr(&mut c, &nfs_fh3::default()).await.err(),
            Some(nfsstat3::NFS3ERR_BADHANDLE),
            "an empty file handle is a bad handle"
        );
        let junk = nfs_fh3 {
            data: vec![0x5a; 32].into(),
        };
        let r = getattr(&mut c, &junk).await;
        assert!(
            matches!(
                r.as_ref().err(),
                Some(nfsstat3::NFS3ERR_BADHANDLE) | Some(nfsstat3::NFS3ERR_STALE)
            ),
            "a forged handle is BADHANDLE or STALE, got {r:?}"
        );
    });
}

#[test]
fn reads_at_and_past_eof_are_short_and_flag_eof() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "f", 0o644).await;
        let data = PatternRng::new(3).bytes(10_000);
        write_all(&mut c, &f, 0, &data, IO_SIZE, stable_how::FILE_SYNC).await;

        let (got, eof) = read(&mut c, &f, 9_000, 4096)
            .await
            .expect("READ across EOF");
        assert_eq!(got, &data[9_000..], "a read across EOF is short");
        assert!(eof, "a read that reaches EOF says so");
        let (got, eof) = read(&mut c, &f, 10_000, 4096).await.expect("READ at EOF");
        assert!(got.is_empty() && eof, "a read at EOF is empty with eof");
        let (got, eof) = read(&mut c, &f, 1 << 40, 4096)
            .await
            .expect("READ far past EOF");
        assert!(
            got.is_empty() && eof,
            "a read far past EOF is empty with eof"
        );
        let (got, eof) = read(&mut c, &f, 0, 100).await.expect("READ inside");
        assert_eq!((got.as_slice(), eof), (&data[..100], false));
        let (got, _) = read(&mut c, &f, 0, 0).await.expect("READ of 0 bytes");
        assert!(got.is_empty());
    });
}

#[test]
fn fsinfo_fsstat_and_pathconf_report_usable_numbers() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let info = match c
            .fsinfo(&FSINFO3args {
                fsroot: root.clone(),
            })
            .await
            .expect("FSINFO transport")
        {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("FSINFO: {e}"),
        };
        assert!(info.rtmax >= 1 << 20, "rtmax {} < 1 MiB", info.rtmax);
        assert!(info.wtmax >= 1 << 20, "wtmax {} < 1 MiB", info.wtmax);
        assert!(info.rtpref > 0 && info.rtpref <= info.rtmax);
        assert!(info.wtpref > 0 && info.wtpref <= info.wtmax);
        assert!(info.dtpref > 0);
        assert!(
            info.maxfilesize >= 1 << 40,
            "maxfilesize {}",
            info.maxfilesize
        );
        for (bit, what) in [
            (FSF3_LINK, "LINK"),
            (FSF3_SYMLINK, "SYMLINK"),
            (FSF3_HOMOGENEOUS, "HOMOGENEOUS"),
            (FSF3_CANSETTIME, "CANSETTIME"),
        ] {
            assert!(info.properties & bit != 0, "FSINFO properties lack {what}");
        }

        // A 1 MiB READ returns 1 MiB in one reply.
        let f = create_file(&mut c, &root, "mib", 0o644).await;
        let data = PatternRng::new(4).bytes(2 << 20);
        write_all(&mut c, &f, 0, &data, 1 << 20, stable_how::FILE_SYNC).await;
        let (got, eof) = read(&mut c, &f, 0, 1 << 20).await.expect("1 MiB READ");
        assert_eq!(got.len(), 1 << 20, "a 1 MiB READ is answered in full");
        assert!(!eof);
        assert_eq!(got, &data[..1 << 20]);

        let stat = match c
            .fsstat(&FSSTAT3args {
                fsroot: root.clone(),
            })
            .await
            .expect("FSSTAT transport")
        {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("FSSTAT: {e}"),
        };
        assert!(stat.tbytes > 0, "FSSTAT total bytes is zero");
        assert!(
            stat.fbytes <= stat.tbytes && stat.abytes <= stat.fbytes,
            "{stat:?}"
        );
        assert!(
            stat.ffiles <= stat.tfiles && stat.afiles <= stat.ffiles,
            "{stat:?}"
        );

        let pc = match c
            .pathconf(&PATHCONF3args {
                object: root.clone(),
            })
            .await
            .expect("PATHCONF transport")
        {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("PATHCONF: {e}"),
        };
        assert_eq!(pc.name_max, 255);
        assert!(pc.no_trunc, "names are refused, not truncated");
        assert!(pc.case_preserving && !pc.case_insensitive);
        assert!(pc.linkmax >= 2);
    });
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32
}

#[test]
fn timestamps_and_wcc_data_follow_the_writes() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "t", 0o644).await;
        let old = nfstime3 {
            seconds: 1_000_000_000,
            nseconds: 5,
        };
        setattr(
            &mut c,
            &f,
            sattr3 {
                atime: set_atime::SET_TO_CLIENT_TIME(old),
                mtime: set_mtime::SET_TO_CLIENT_TIME(old),
                ..Default::default()
            },
        )
        .await
        .expect("SETATTR client times");
        let a = getattr(&mut c, &f).await.expect("GETATTR");
        assert_eq!(
            (a.atime, a.mtime),
            (old, old),
            "client-set times are kept exactly"
        );
        assert!(
            a.ctime.seconds + 5 >= now_secs(),
            "SETATTR moves ctime to now"
        );

        // WRITE: WCC before matches the previous attributes, after shows the new size.
        let before = getattr(&mut c, &f).await.expect("GETATTR");
        let res = c
            .write(&WRITE3args {
                file: f.clone(),
                offset: 0,
                count: 100,
                stable: stable_how::FILE_SYNC,
                data: vec![7u8; 100].into(),
            })
            .await
            .expect("WRITE transport");
        let ok = match res {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("WRITE: {e}"),
        };
        match ok.file_wcc.before {
            Nfs3Option::Some(w) => {
                assert_eq!((w.size, w.mtime, w.ctime), (0, before.mtime, before.ctime));
            }
            Nfs3Option::None => panic!("WRITE reply lacks pre-operation WCC attributes"),
        }
        let after = match ok.file_wcc.after {
            Nfs3Option::Some(a) => a,
            Nfs3Option::None => panic!("WRITE reply lacks post-operation attributes"),
        };
        assert_eq!(after.size, 100);
        assert!(
            after.mtime.seconds + 5 >= now_secs(),
            "WRITE moves mtime to now"
        );
        let g = getattr(&mut c, &f).await.expect("GETATTR");
        assert_eq!(
            (g.size, g.mtime),
            (100, after.mtime),
            "GETATTR agrees with WCC"
        );

        // SET_TO_SERVER_TIME.
        setattr(
            &mut c,
            &f,
            sattr3 {
                mtime: set_mtime::SET_TO_SERVER_TIME,
                ..Default::default()
            },
        )
        .await
        .expect("SETATTR server time");
        let m = getattr(&mut c, &f).await.expect("GETATTR").mtime.seconds;
        assert!(m.abs_diff(now_secs()) <= 5, "server time mtime {m} vs now");

        // A guarded SETATTR with the wrong ctime is refused and changes nothing.
        let res = c
            .setattr(&SETATTR3args {
                object: f.clone(),
                new_attributes: mode_attr(0o600),
                guard: Nfs3Option::Some(nfstime3 {
                    seconds: 1,
                    nseconds: 0,
                }),
            })
            .await
            .expect("SETATTR transport");
        assert!(
            matches!(res, Nfs3Result::Err((nfsstat3::NFS3ERR_NOT_SYNC, _))),
            "guard mismatch: {res:?}"
        );
        let cur = getattr(&mut c, &f).await.expect("GETATTR");
        assert_eq!(cur.mode & 0o7777, 0o644);
        let res = c
            .setattr(&SETATTR3args {
                object: f.clone(),
                new_attributes: mode_attr(0o600),
                guard: Nfs3Option::Some(cur.ctime),
            })
            .await
            .expect("SETATTR transport");
        assert!(matches!(res, Nfs3Result::Ok(_)), "guard match: {res:?}");
        assert_eq!(
            getattr(&mut c, &f).await.expect("GETATTR").mode & 0o7777,
            0o600
        );

        // Directory mtime moves when an entry is added, and CREATE carries dir WCC.
        let dir_before = getattr(&mut c, &root).await.expect("GETATTR root");
        let res = c
            .create(&CREATE3args {
                where_: diropargs3 {
                    dir: root.clone(),
                    name: b"second".as_slice().into(),
                },
                how: createhow3::GUARDED(mode_attr(0o644)),
            })
            .await
            .expect("CREATE transport");
        let ok = match res {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("CREATE: {e}"),
        };
        match (ok.dir_wcc.before, ok.dir_wcc.after) {
            (Nfs3Option::Some(b), Nfs3Option::Some(a)) => {
                assert_eq!(b.mtime, dir_before.mtime, "dir WCC before = last GETATTR");
                assert_eq!(a.fileid, dir_before.fileid);
            }
            other => panic!("CREATE reply lacks directory WCC data: {other:?}"),
        }
        let dir_after = getattr(&mut c, &root).await.expect("GETATTR root");
        assert!(
            (dir_after.mtime.seconds, dir_after.mtime.nseconds)
                >= (dir_before.mtime.seconds, dir_before.mtime.nseconds),
            "directory mtime never goes backwards"
        );
        assert!(
            dir_after.ctime != dir_before.ctime || dir_after.mtime != dir_before.mtime,
            "adding an entry changes the directory's times"
        );
    });
}

#[test]
fn mknod_makes_special_files_or_cleanly_says_notsupp() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (n, what, want) in [
            (
                "fifo",
                mknoddata3::NF3FIFO(mode_attr(0o644)),
                ftype3::NF3FIFO,
            ),
            (
                "sock",
                mknoddata3::NF3SOCK(mode_attr(0o644)),
                ftype3::NF3SOCK,
            ),
            (
                "chr",
                mknoddata3::NF3CHR(devicedata3 {
                    dev_attributes: mode_attr(0o600),
                    spec: specdata3 {
                        specdata1: 1,
                        specdata2: 3,
                    },
                }),
                ftype3::NF3CHR,
            ),
        ] {
            let res = c
                .mknod(&MKNOD3args {
                    where_: diropargs3 {
                        dir: root.clone(),
                        name: n.as_bytes().into(),
                    },
                    what,
                })
                .await
                .expect("MKNOD transport");
            match res {
                Nfs3Result::Ok(_) => {
                    let fh = lookup(&mut c, &root, n).await.expect("LOOKUP new node");
                    let a = getattr(&mut c, &fh).await.expect("GETATTR");
                    assert_eq!(a.type_, want, "{n}: MKNOD made the requested type");
                    if want == ftype3::NF3CHR {
                        assert_eq!(
                            (a.rdev.specdata1, a.rdev.specdata2),
                            (1, 3),
                            "device numbers kept"
                        );
                    }
                }
                Nfs3Result::Err((nfsstat3::NFS3ERR_NOTSUPP, _)) => {
                    assert_eq!(
                        lookup(&mut c, &root, n).await.err(),
                        Some(nfsstat3::NFS3ERR_NOENT),
                        "{n}: a refused MKNOD leaves nothing behind"
                    );
                }
                Nfs3Result::Err((e, _)) => panic!("MKNOD {n}: {e} (want OK or NOTSUPP)"),
            }
        }
    });
}

#[test]
fn offsets_past_4_gib_and_sparse_terabyte_files_work() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "sparse", 0o644).await;
        let off = (5u64 << 30) - 2; // straddles the 5 GiB mark
        write(&mut c, &f, off, b"edge", stable_how::FILE_SYNC)
            .await
            .expect("WRITE past 4 GiB");
        assert_eq!(getattr(&mut c, &f).await.expect("GETATTR").size, off + 4);
        let (got, eof) = read(&mut c, &f, off - 4, 12)
            .await
            .expect("READ past 4 GiB");
        assert_eq!(got, b"\0\0\0\0edge", "hole then data");
        assert!(eof);
        let (got, _) = read(&mut c, &f, 1 << 32, 8)
            .await
            .expect("READ in the hole");
        assert_eq!(got, [0u8; 8], "the hole at exactly 4 GiB reads as zeros");

        // A 1 TiB sparse extend and a truncate back to zero are cheap metadata ops.
        let tib = 1u64 << 40;
        set_size(&mut c, &f, tib).await;
        let (got, eof) = read(&mut c, &f, tib - 3, 10).await.expect("READ at 1 TiB");
        assert_eq!((got.as_slice(), eof), (&[0u8; 3][..], true));
        set_size(&mut c, &f, 0).await;
        assert_eq!(getattr(&mut c, &f).await.expect("GETATTR").size, 0);
        let (got, eof) = read(&mut c, &f, 0, 10).await.expect("READ after truncate");
        assert!(got.is_empty() && eof);
    });
}

#[test]
fn offsets_that_overflow_are_refused_without_harm() {
    let mut server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "edge", 0o644).await;
        write(&mut c, &f, 0, b"data", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");
        let r = write(
            &mut c,
            &f,
            u64::MAX - 3,
            b"overflowing",
            stable_how::FILE_SYNC,
        )
        .await;
        assert!(
            matches!(
                r.as_ref().err(),
                Some(nfsstat3::NFS3ERR_FBIG) | Some(nfsstat3::NFS3ERR_INVAL)
            ),
            "WRITE whose end overflows u64: {:?}",
            r.err()
        );
        let r = setattr(
            &mut c,
            &f,
            sattr3 {
                size: Nfs3Option::Some(u64::MAX),
                ..Default::default()
            },
        )
        .await;
        assert!(
            matches!(
                r,
                Err(nfsstat3::NFS3ERR_FBIG) | Err(nfsstat3::NFS3ERR_INVAL)
            ),
            "SETATTR size = u64::MAX: {r:?}"
        );
        let (got, eof) = read(&mut c, &f, u64::MAX - 1, 100)
            .await
            .expect("READ at the end of the offset space");
        assert!(got.is_empty() && eof);
        let res = c
            .commit(&COMMIT3args {
                file: f.clone(),
                offset: u64::MAX - 1,
                count: 100,
            })
            .await
            .expect("COMMIT transport");
        assert!(
            !matches!(res, Nfs3Result::Err((nfsstat3::NFS3ERR_SERVERFAULT, _))),
            "COMMIT with an overflowing range: {res:?}"
        );
        assert_eq!(
            read_all(&mut c, &f, 16).await,
            b"data",
            "the file is untouched"
        );
    });
    server.assert_alive();
}
