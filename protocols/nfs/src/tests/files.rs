//! File and directory operations end to end.

use super::*;

#[tokio::test]
async fn files_are_created_written_read_and_removed() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "hello.txt").await;

    let w = c.write(&f, 0, b"hello ", stable_how::UNSTABLE).await;
    let Nfs3Result::Ok(w) = w else {
        panic!("write failed")
    };
    assert_eq!(w.committed, stable_how::UNSTABLE);
    assert_eq!(w.count, 6);
    assert_eq!(w.verf.0, h.fs.boot_count().to_be_bytes());
    assert!(w.file_wcc.before.is_some() && w.file_wcc.after.is_some());

    let w = c.write(&f, 6, b"world", stable_how::DATA_SYNC).await;
    let Nfs3Result::Ok(w) = w else {
        panic!("write failed")
    };
    assert_eq!(w.committed, stable_how::FILE_SYNC);

    let commit: COMMIT3res = c
        .nfs(
            21,
            &COMMIT3args {
                file: f.clone(),
                offset: 0,
                count: 0,
            },
        )
        .await;
    let Nfs3Result::Ok(commit) = commit else {
        panic!("commit failed")
    };
    assert_eq!(commit.verf.0, h.fs.boot_count().to_be_bytes());

    let Nfs3Result::Ok(r) = c.read(&f, 0, 100).await else {
        panic!("read failed")
    };
    assert_eq!(r.data.as_ref(), b"hello world");
    assert!(r.eof);
    assert_eq!(r.count, 11);
    let Nfs3Result::Ok(r) = c.read(&f, 3, 4).await else {
        panic!("read failed")
    };
    assert_eq!(r.data.as_ref(), b"lo w");
    assert!(!r.eof);

    // GUARDED refuses an existing name; UNCHECKED accepts it.
    let again = c
        .create(&root, "hello.txt", createhow3::GUARDED(sattr3::default()))
        .await;
    assert_eq!(stat_of(&again), nfsstat3::NFS3ERR_EXIST);
    let unchecked = c
        .create(&root, "hello.txt", createhow3::UNCHECKED(sattr3::default()))
        .await;
    assert_eq!(stat_of(&unchecked), nfsstat3::NFS3_OK);
    // EXCLUSIVE is idempotent with the same verifier.
    let v = createverf3([1, 2, 3, 4, 5, 6, 7, 8]);
    let first = c.create(&root, "excl", createhow3::EXCLUSIVE(v)).await;
    let retry = c.create(&root, "excl", createhow3::EXCLUSIVE(v)).await;
    assert_eq!(stat_of(&first), nfsstat3::NFS3_OK);
    assert_eq!(stat_of(&retry), nfsstat3::NFS3_OK);

    let look: LOOKUP3res = c
        .nfs(
            3,
            &LOOKUP3args {
                what: diropargs3 {
                    dir: root.clone(),
                    name: b"hello.txt".as_slice().into(),
                },
            },
        )
        .await;
    let Nfs3Result::Ok(look) = look else {
        panic!("lookup failed")
    };
    assert_eq!(look.object, f);

    let rm: REMOVE3res = c
        .nfs(
            12,
            &REMOVE3args {
                object: diropargs3 {
                    dir: root.clone(),
                    name: b"hello.txt".as_slice().into(),
                },
            },
        )
        .await;
    let Nfs3Result::Ok(rm) = rm else {
        panic!("remove failed")
    };
    assert!(rm.dir_wcc.before.is_some() && rm.dir_wcc.after.is_some());
    assert_eq!(stat_of(&c.getattr(&f).await), nfsstat3::NFS3ERR_STALE);
    let gone: LOOKUP3res = c
        .nfs(
            3,
            &LOOKUP3args {
                what: diropargs3 {
                    dir: root.clone(),
                    name: b"hello.txt".as_slice().into(),
                },
            },
        )
        .await;
    let Nfs3Result::Err((stat, fail)) = gone else {
        panic!("lookup found a removed name")
    };
    assert_eq!(stat, nfsstat3::NFS3ERR_NOENT);
    assert!(fail.dir_attributes.is_some());
}

#[tokio::test]
async fn one_mebibyte_writes_and_reads_round_trip() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "big").await;
    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    let w = c.write(&f, 0, &data, stable_how::FILE_SYNC).await;
    assert_eq!(stat_of(&w), nfsstat3::NFS3_OK);
    let w = c
        .write(&f, data.len() as u64, &data[..3], stable_how::FILE_SYNC)
        .await;
    assert_eq!(stat_of(&w), nfsstat3::NFS3_OK);
    let Nfs3Result::Ok(r) = c.read(&f, 0, 1024 * 1024).await else {
        panic!("read failed")
    };
    assert_eq!(r.data.len(), data.len());
    assert!(r.data.as_ref() == data.as_slice());
    assert!(!r.eof);
    // Odd-length tail: padding must keep the stream aligned.
    let Nfs3Result::Ok(r) = c.read(&f, 1024 * 1024, 100).await else {
        panic!("read failed")
    };
    assert_eq!(r.data.as_ref(), &data[..3]);
    assert!(r.eof);
    // More than rtmax is clamped to 1 MiB.
    let Nfs3Result::Ok(r) = c.read(&f, 0, 4 * 1024 * 1024).await else {
        panic!("read failed")
    };
    assert_eq!(r.count, 1024 * 1024);
}

/// Collects every entry through READDIR pages of `count` bytes.
async fn list_dir(c: &mut Client, dir: &nfs_fh3, count: u32) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut cookie = 0;
    let mut verf = cookieverf3::default();
    let mut pages = 0;
    loop {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf: verf,
            count,
        };
        let mut buf = Vec::new();
        args.pack(&mut buf).expect("pack");
        let Answer::Accepted(0, body) = c.raw_call(PROGRAM, 3, 16, &buf).await else {
            panic!("readdir refused");
        };
        assert!(
            body.len() <= count as usize,
            "reply of {} bytes over budget {count}",
            body.len()
        );
        let (res, _) = READDIR3res::unpack(&mut &body[..]).expect("decode");
        let Nfs3Result::Ok(ok) = res else {
            panic!("readdir failed")
        };
        pages += 1;
        verf = ok.cookieverf;
        for e in &ok.reply.entries.0 {
            names.push(String::from_utf8(e.name.0.to_vec()).expect("utf8"));
            cookie = e.cookie;
        }
        if ok.reply.eof {
            return (names, pages);
        }
        assert!(!ok.reply.entries.0.is_empty(), "empty page without eof");
    }
}

#[tokio::test]
async fn readdir_pages_respect_the_byte_budget_and_the_cookie_verifier() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    for i in 0..60 {
        c.create_file(&root, &format!("file-number-{i:03}")).await;
    }
    let (names, pages) = list_dir(&mut c, &root, 1024).await;
    assert!(pages > 2, "only {pages} pages");
    let mut want: Vec<String> = (0..60).map(|i| format!("file-number-{i:03}")).collect();
    want.push(".".into());
    want.push("..".into());
    let mut got = names.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let (all, pages) = list_dir(&mut c, &root, 64 * 1024).await;
    assert_eq!(pages, 1);
    assert_eq!(all.len(), 62);

    // Resuming with another directory's verifier is refused.
    let args = READDIR3args {
        dir: root.clone(),
        cookie: 3,
        cookieverf: cookieverf3([9; 8]),
        count: 4096,
    };
    let res: READDIR3res = c.nfs(16, &args).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_BAD_COOKIE);

    // A budget too small for one entry.
    let args = READDIR3args {
        dir: root.clone(),
        cookie: 0,
        cookieverf: cookieverf3::default(),
        count: 120,
    };
    let res: READDIR3res = c.nfs(16, &args).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_TOOSMALL);

    // READDIRPLUS: attributes and handles that work.
    let args = READDIRPLUS3args {
        dir: root.clone(),
        cookie: 0,
        cookieverf: cookieverf3::default(),
        dircount: 8192,
        maxcount: 4096,
    };
    let mut buf = Vec::new();
    args.pack(&mut buf).expect("pack");
    let Answer::Accepted(0, body) = c.raw_call(PROGRAM, 3, 17, &buf).await else {
        panic!("readdirplus refused");
    };
    assert!(body.len() <= 4096);
    let (res, _) = READDIRPLUS3res::unpack(&mut &body[..]).expect("decode");
    let Nfs3Result::Ok(ok) = res else {
        panic!("readdirplus failed")
    };
    assert!(!ok.reply.eof);
    let entry = ok
        .reply
        .entries
        .0
        .iter()
        .find(|e| e.name.0.starts_with(b"file-number"))
        .expect("a file entry");
    let Nfs3Option::Some(fh) = &entry.name_handle else {
        panic!("no handle")
    };
    let Nfs3Result::Ok(attr) = c.getattr(fh).await else {
        panic!("handle does not resolve")
    };
    assert_eq!(attr.obj_attributes.fileid, entry.fileid);
}

fn name(s: &'static str) -> filename3<'static> {
    s.as_bytes().into()
}

fn at(dir: &nfs_fh3, s: &'static str) -> diropargs3<'static> {
    diropargs3 {
        dir: dir.clone(),
        name: name(s),
    }
}

#[tokio::test]
async fn namespace_operations_report_wcc_and_posix_errors() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;

    // MKDIR, then RMDIR refuses a non-empty directory.
    let mk = c.mkdir(&root, "d").await;
    let Nfs3Result::Ok(mk) = mk else {
        panic!("mkdir failed")
    };
    let d = mk.obj.unwrap();
    assert!(mk.dir_wcc.before.is_some() && mk.dir_wcc.after.is_some());
    let f = c.create_file(&d, "f").await;
    let rm: RMDIR3res = c
        .nfs(
            13,
            &RMDIR3args {
                object: at(&root, "d"),
            },
        )
        .await;
    let Nfs3Result::Err((stat, fail)) = rm else {
        panic!("removed a non-empty directory")
    };
    assert_eq!(stat, nfsstat3::NFS3ERR_NOTEMPTY);
    assert!(fail.dir_wcc.before.is_none() && fail.dir_wcc.after.is_some());

    // SYMLINK / READLINK.
    let sl: SYMLINK3res = c
        .nfs(
            10,
            &SYMLINK3args {
                where_: at(&root, "link"),
                symlink: symlinkdata3 {
                    symlink_attributes: sattr3::default(),
                    symlink_data: b"d/f".as_slice().into(),
                },
            },
        )
        .await;
    let Nfs3Result::Ok(sl) = sl else {
        panic!("symlink failed")
    };
    let rl: READLINK3res = c
        .nfs(
            5,
            &READLINK3args {
                symlink: sl.obj.unwrap(),
            },
        )
        .await;
    let Nfs3Result::Ok(rl) = rl else {
        panic!("readlink failed")
    };
    assert_eq!(rl.data.0.as_ref(), b"d/f");

    // LINK raises nlink; RENAME replaces a target.
    let ln: LINK3res = c
        .nfs(
            15,
            &LINK3args {
                file: f.clone(),
                link: at(&root, "hard"),
            },
        )
        .await;
    let Nfs3Result::Ok(ln) = ln else {
        panic!("link failed")
    };
    let Nfs3Option::Some(fa) = ln.file_attributes else {
        panic!("no attributes")
    };
    assert_eq!(fa.nlink, 2);
    let other = c.create_file(&root, "other").await;
    let mv: RENAME3res = c
        .nfs(
            14,
            &RENAME3args {
                from: at(&root, "hard"),
                to: at(&root, "other"),
            },
        )
        .await;
    let Nfs3Result::Ok(mv) = mv else {
        panic!("rename failed")
    };
    assert!(mv.fromdir_wcc.after.is_some() && mv.todir_wcc.after.is_some());
    assert_eq!(stat_of(&c.getattr(&other).await), nfsstat3::NFS3ERR_STALE);

    // MKNOD: a FIFO works or is cleanly unsupported; a regular file is BADTYPE.
    let fifo: MKNOD3res = c
        .nfs(
            11,
            &MKNOD3args {
                where_: at(&root, "fifo"),
                what: mknoddata3::NF3FIFO(sattr3::default()),
            },
        )
        .await;
    assert!(matches!(
        stat_of(&fifo),
        nfsstat3::NFS3_OK | nfsstat3::NFS3ERR_NOTSUPP
    ));
    let mut args = Vec::new();
    at(&root, "reg").pack(&mut args).expect("pack");
    args.extend_from_slice(&1u32.to_be_bytes());
    let Answer::Accepted(0, body) = c.raw_call(PROGRAM, 3, 11, &args).await else {
        panic!("mknod refused");
    };
    assert_eq!(
        &body[..4],
        &(nfsstat3::NFS3ERR_BADTYPE as u32).to_be_bytes()
    );

    // SETATTR: truncate, and a stale ctime guard is NOT_SYNC.
    c.write(&f, 0, b"0123456789", stable_how::FILE_SYNC).await;
    let Nfs3Result::Ok(before) = c.getattr(&f).await else {
        panic!("getattr failed")
    };
    let truncate = sattr3 {
        size: Nfs3Option::Some(4),
        ..sattr3::default()
    };
    let guarded = |guard| SETATTR3args {
        object: f.clone(),
        new_attributes: truncate.clone(),
        guard,
    };
    let wrong = nfstime3 {
        seconds: 1,
        nseconds: 0,
    };
    let res: SETATTR3res = c.nfs(2, &guarded(Nfs3Option::Some(wrong))).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_NOT_SYNC);
    let res: SETATTR3res = c
        .nfs(2, &guarded(Nfs3Option::Some(before.obj_attributes.ctime)))
        .await;
    let Nfs3Result::Ok(res) = res else {
        panic!("setattr failed")
    };
    let Nfs3Option::Some(pre) = res.obj_wcc.before else {
        panic!("no pre-op")
    };
    assert_eq!(pre.size, 10);
    let Nfs3Option::Some(post) = res.obj_wcc.after else {
        panic!("no post-op")
    };
    assert_eq!(post.size, 4);

    // FSINFO, PATHCONF and FSSTAT answer for the root.
    let info: FSINFO3res = c
        .nfs(
            19,
            &FSINFO3args {
                fsroot: root.clone(),
            },
        )
        .await;
    let Nfs3Result::Ok(info) = info else {
        panic!("fsinfo failed")
    };
    assert_eq!(
        (info.rtmax, info.wtmax, info.dtpref),
        (1 << 20, 1 << 20, 64 * 1024)
    );
    assert_eq!(
        info.time_delta,
        nfstime3 {
            seconds: 0,
            nseconds: 1
        }
    );
    assert_eq!(
        info.properties,
        FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME
    );
    let pc: PATHCONF3res = c
        .nfs(
            20,
            &PATHCONF3args {
                object: root.clone(),
            },
        )
        .await;
    let Nfs3Result::Ok(pc) = pc else {
        panic!("pathconf failed")
    };
    assert_eq!(pc.name_max, 255);
    assert!(pc.no_trunc && pc.chown_restricted && pc.case_preserving && !pc.case_insensitive);
    let st: FSSTAT3res = c
        .nfs(
            18,
            &FSSTAT3args {
                fsroot: root.clone(),
            },
        )
        .await;
    let Nfs3Result::Ok(st) = st else {
        panic!("fsstat failed")
    };
    assert!(st.tbytes >= st.fbytes);
}

#[tokio::test]
async fn handles_survive_a_restart_and_the_write_verifier_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Arc::new(nitrofs_metadata::MemKv::new());
    let open = |kv: Arc<nitrofs_metadata::MemKv>| {
        let chunks = nitrofs_chunk_store::LocalChunkStore::open(&dir.path().join("chunks"))
            .expect("chunk store");
        Arc::new(FileSystem::open(kv, Arc::new(chunks), FsOptions::default()).expect("open"))
    };
    let first = open(kv.clone());
    let h1 = start_on(
        tempfile::tempdir().expect("tempdir"),
        first,
        ExportPolicy::default(),
    )
    .await;
    let mut c = Client::connect(h1.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "kept").await;
    let Nfs3Result::Ok(w1) = c.write(&f, 0, b"data", stable_how::FILE_SYNC).await else {
        panic!("write failed");
    };

    let second = open(kv);
    let h2 = start_on(
        tempfile::tempdir().expect("tempdir"),
        second,
        ExportPolicy::default(),
    )
    .await;
    let mut c = Client::connect(h2.addr).await;
    let Nfs3Result::Ok(r) = c.read(&f, 0, 10).await else {
        panic!("old handle failed")
    };
    assert_eq!(r.data.as_ref(), b"data");
    let Nfs3Result::Ok(w2) = c.write(&f, 0, b"more", stable_how::UNSTABLE).await else {
        panic!("write failed");
    };
    assert_ne!(w1.verf, w2.verf);
}
