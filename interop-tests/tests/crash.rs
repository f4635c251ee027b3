//! Crash durability: whatever the server acknowledged as stable (COMMIT reply,
//! FILE_SYNC write, any namespace operation) is there after `kill -9` and a
//! restart on the same data directory, and old file handles still work.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::nfs::*;
use common::{block_on, PatternRng, Server};
use nfs3_client::nfs3_types::nfs3::*;

const LIMIT: Duration = Duration::from_secs(600);

/// Writes `data` to a new file `name` in the export root with `stable` writes of
/// `chunk` bytes; COMMITs when the writes were UNSTABLE. Returns the handle.
async fn write_file(
    c: &mut Client,
    root: &nfs_fh3,
    name: &str,
    data: &[u8],
    chunk: usize,
    stable: stable_how,
) -> nfs_fh3 {
    let fh = create_file(c, root, name, 0o644).await;
    let replies = write_all(c, &fh, 0, data, chunk, stable).await;
    if stable == stable_how::FILE_SYNC {
        for (i, (_, committed)) in replies.iter().enumerate() {
            assert_eq!(
                *committed,
                stable_how::FILE_SYNC,
                "WRITE {i} asked for FILE_SYNC but the reply says {committed}"
            );
        }
    } else {
        let verf = commit(c, &fh).await.expect("COMMIT");
        assert!(
            replies.iter().all(|(v, _)| *v == verf),
            "COMMIT verifier differs from a WRITE verifier within one server life"
        );
    }
    fh
}

/// Writes a file, crashes the server right after the last stable reply,
/// restarts, and checks size and bytes through a fresh MOUNT and the old handle.
fn crash_after_stable_write(stable: stable_how, chunk: usize, len: usize, seed: u64) {
    let mut server = Server::start();
    let data = PatternRng::new(seed).bytes(len);
    let mut held = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        held = Some(write_file(&mut c, &root, "ckpt", &data, chunk, stable).await);
    });
    // The stable reply is in hand: crash now, with no chance to flush anything.
    server.kill9();
    server.restart();
    let held = held.expect("file was written");
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let fh = lookup(&mut c, &root, "ckpt")
            .await
            .expect("the file exists after kill -9");
        assert_eq!(fh, held, "the file handle is the same after the crash");
        let a = getattr(&mut c, &fh).await.expect("GETATTR");
        assert_eq!(a.size, len as u64, "size after kill -9 ({stable} writes)");
        let back = read_all(&mut c, &fh, len).await;
        assert_eq!(back.len(), len);
        if let Some(pos) = back.iter().zip(&data).position(|(a, b)| a != b) {
            panic!("byte {pos} differs after kill -9 ({stable} writes)");
        }
        // The pre-crash handle works on a connection that never MOUNTed.
        let mut raw = connect(&server, 0, 0).await;
        assert_eq!(
            getattr(&mut raw, &held)
                .await
                .expect("GETATTR old handle")
                .size,
            len as u64
        );
    });
}

#[test]
fn committed_unstable_writes_survive_kill_9() {
    // 9 MiB + 123 crosses two 4 MiB chunk boundaries; 256 KiB writes.
    crash_after_stable_write(stable_how::UNSTABLE, 256 * 1024, 9 * 1024 * 1024 + 123, 1);
}

#[test]
fn file_sync_writes_survive_kill_9() {
    crash_after_stable_write(stable_how::FILE_SYNC, 1024 * 1024, 5 * 1024 * 1024 + 77, 2);
}

#[test]
fn small_committed_file_survives_kill_9() {
    // Small enough to live inline in metadata if the server does that.
    crash_after_stable_write(stable_how::UNSTABLE, 4096, 3000, 3);
}

/// What a power loss can do and `kill -9` cannot: lose the bytes of chunk
/// files that only the page cache held. Small COMMITs are made durable by
/// the chunk store's journal, not by fsyncing each chunk file, so removing
/// every chunk file after the crash plays that loss: the restart must
/// replay them, the later, shorter version of a rewritten file included.
#[test]
fn committed_small_files_come_back_from_the_journal_when_their_chunk_files_are_lost() {
    // Kept out of metadata, so their bytes are in chunk files.
    small_files_survive_losing_every_chunk_file("[core]\ninline_max = 0\n");
}

/// Small files kept with their metadata (the default) never needed their
/// chunk files: losing them all loses nothing either.
#[test]
fn committed_inline_files_need_no_chunk_file() {
    small_files_survive_losing_every_chunk_file("");
}

fn small_files_survive_losing_every_chunk_file(config: &str) {
    let mut server = Server::start_with_config(config);
    let files: Vec<(String, Vec<u8>)> = (0..20u64)
        .map(|i| {
            (
                format!("small-{i}"),
                PatternRng::new(100 + i).bytes(1000 + 777 * i as usize),
            )
        })
        .collect();
    let rewritten = PatternRng::new(99).bytes(300);
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (name, data) in &files {
            write_file(&mut c, &root, name, data, 4096, stable_how::UNSTABLE).await;
        }
        // The first file cut to nothing and written again, shorter.
        let fh = lookup(&mut c, &root, &files[0].0).await.expect("LOOKUP");
        set_size(&mut c, &fh, 0).await;
        write_all(&mut c, &fh, 0, &rewritten, 4096, stable_how::UNSTABLE).await;
        commit(&mut c, &fh).await.expect("COMMIT");
    });
    server.kill9();
    let chunks = server.data_dir().join("chunks");
    let mut lost = 0;
    for entry in std::fs::read_dir(&chunks).expect("chunk dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            lost += std::fs::read_dir(&path).expect("shard").count();
            std::fs::remove_dir_all(&path).expect("remove shard");
        }
    }
    if config.is_empty() {
        assert_eq!(lost, 0, "inline files made {lost} chunk files");
    } else {
        assert!(lost >= files.len(), "{lost} chunk files removed");
    }
    server.restart();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (i, (name, data)) in files.iter().enumerate() {
            let want = if i == 0 { &rewritten } else { data };
            let fh = lookup(&mut c, &root, name).await.expect("LOOKUP");
            let back = read_all(&mut c, &fh, want.len() + 10).await;
            assert_eq!(back.len(), want.len(), "{name}: length after the loss");
            assert!(back == *want, "{name}: bytes differ after the loss");
        }
    });
}

/// A small journal (`[core] chunk_journal_bytes`) fills many times over:
/// the server checkpoints and reuses it while files keep coming, it never
/// grows past its size, and every committed file survives `kill -9`.
#[test]
fn a_small_chunk_journal_wraps_and_checkpoints_without_losing_a_commit() {
    let journal_bytes = 1u64 << 20;
    let mut server = Server::start_with_config(&format!(
        "[core]\nchunk_journal_bytes = {journal_bytes}\ninline_max = 0\n"
    ));
    // 5 MiB of 16 KiB files: five times the journal.
    let files: Vec<(String, Vec<u8>)> = (0..320u64)
        .map(|i| (format!("wrap-{i}"), PatternRng::new(500 + i).bytes(16384)))
        .collect();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (name, data) in &files {
            write_file(&mut c, &root, name, data, 16384, stable_how::UNSTABLE).await;
        }
    });
    server.kill9();
    // The journal's newer header (two slots at 0 and 512: magic, generation,
    // start position, start sequence, area size, CRC) names where the live
    // records start: past three times the area, the server wrapped and
    // checkpointed at least three times.
    let journal = std::fs::read(server.data_dir().join("chunks").join("journal")).expect("journal");
    assert!(
        journal.len() as u64 <= journal_bytes,
        "the journal grew to {} bytes",
        journal.len()
    );
    let word = |at: usize| u64::from_le_bytes(journal[at..at + 8].try_into().expect("8 bytes"));
    let (start, area) = [0usize, 512]
        .into_iter()
        .filter(|&slot| &journal[slot..slot + 8] == b"NFSJRNL1")
        .max_by_key(|&slot| word(slot + 8))
        .map(|slot| (word(slot + 16), word(slot + 32)))
        .expect("a journal header");
    assert!(area <= journal_bytes, "area {area}");
    assert!(
        start > 3 * area,
        "live records start at {start}: the journal never went round"
    );
    server.restart();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (name, data) in &files {
            let fh = lookup(&mut c, &root, name).await.expect("LOOKUP");
            let back = read_all(&mut c, &fh, data.len() + 10).await;
            assert!(back == *data, "{name}: bytes differ after kill -9");
        }
    });
}

/// What we compare across the crash for each path.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Snapshot {
    kind: ftype3,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    nlink: u32,
    fileid: u64,
    mtime: nfstime3,
}

fn snap(a: &fattr3) -> Snapshot {
    Snapshot {
        kind: a.type_,
        mode: a.mode & 0o7777,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        nlink: a.nlink,
        fileid: a.fileid,
        mtime: a.mtime,
    }
}

fn owned(mode: u32, uid: u32, gid: u32) -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(mode),
        uid: Nfs3Option::Some(uid),
        gid: Nfs3Option::Some(gid),
        ..Default::default()
    }
}

const TREE: [&str; 9] = [
    "tree",
    "tree/a",
    "tree/a/b",
    "tree/a/f1",
    "tree/a/b/f2",
    "tree/empty",
    "tree/link",
    "tree/f1-hardlink",
    "tree/renamed",
];

#[test]
fn directory_tree_and_attributes_survive_kill_9() {
    let mut server = Server::start();
    let f1_data = PatternRng::new(10).bytes(1000);
    let f2_data = PatternRng::new(20).bytes(70_000);
    let mut before = Vec::new();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let tree = mkdir(&mut c, &root, "tree", 0o755).await;
        let a = try_mkdir(&mut c, &tree, "a", owned(0o750, 1000, 1000))
            .await
            .expect("MKDIR tree/a");
        let b = try_mkdir(&mut c, &a, "b", owned(0o700, 1001, 1002))
            .await
            .expect("MKDIR tree/a/b");
        let f1 = create(
            &mut c,
            &a,
            "f1",
            createhow3::GUARDED(owned(0o640, 1000, 1000)),
        )
        .await
        .expect("CREATE tree/a/f1");
        write_all(&mut c, &f1, 0, &f1_data, 4096, stable_how::FILE_SYNC).await;
        let f2 = create(
            &mut c,
            &b,
            "f2",
            createhow3::GUARDED(owned(0o600, 1001, 1002)),
        )
        .await
        .expect("CREATE tree/a/b/f2");
        write_all(&mut c, &f2, 0, &f2_data, 32 * 1024, stable_how::UNSTABLE).await;
        commit(&mut c, &f2).await.expect("COMMIT f2");
        create_file(&mut c, &tree, "empty", 0o444).await;
        symlink(&mut c, &tree, "link", "a/f1").await;
        link(&mut c, &f1, &tree, "f1-hardlink")
            .await
            .expect("LINK tree/f1-hardlink");
        create_file(&mut c, &tree, "to-rename", 0o604).await;
        rename(&mut c, &tree, "to-rename", &tree, "renamed")
            .await
            .expect("RENAME");
        create_file(&mut c, &tree, "removed", 0o644).await;
        remove(&mut c, &tree, "removed").await.expect("REMOVE");
        // A metadata-only change after creation.
        setattr(&mut c, &a, mode_attr(0o751))
            .await
            .expect("SETATTR tree/a mode");

        for p in TREE {
            let fh = lookup_path(&mut c, &root, p)
                .await
                .unwrap_or_else(|e| panic!("LOOKUP {p}: {e}"));
            let attrs = getattr(&mut c, &fh).await.expect("GETATTR");
            before.push((p, fh, snap(&attrs)));
        }
    });
    assert_eq!(before[1].2.mode, 0o751, "setup: SETATTR mode applied");
    assert_eq!(before[3].2.nlink, 2, "setup: f1 has two names");

    server.kill9();
    server.restart();

    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        for (p, fh, want) in &before {
            let now_fh = lookup_path(&mut c, &root, p)
                .await
                .unwrap_or_else(|e| panic!("{p} is missing after kill -9: {e}"));
            assert_eq!(&now_fh, fh, "{p}: same handle after the crash");
            let got = snap(&getattr(&mut c, &now_fh).await.expect("GETATTR"));
            assert_eq!(&got, want, "{p}: attributes after kill -9");
        }
        for gone in ["tree/removed", "tree/to-rename"] {
            assert_eq!(
                lookup_path(&mut c, &root, gone).await.err(),
                Some(nfsstat3::NFS3ERR_NOENT),
                "{gone} must stay gone after kill -9"
            );
        }
        let tree = lookup(&mut c, &root, "tree").await.expect("tree");
        assert_eq!(
            list_names(&mut c, &tree).await,
            vec!["a", "empty", "f1-hardlink", "link", "renamed"],
            "tree's entries after kill -9"
        );
        let f1 = lookup_path(&mut c, &root, "tree/a/f1").await.expect("f1");
        assert_eq!(read_all(&mut c, &f1, f1_data.len()).await, f1_data);
        let f2 = lookup_path(&mut c, &root, "tree/a/b/f2").await.expect("f2");
        assert_eq!(read_all(&mut c, &f2, f2_data.len()).await, f2_data);
        let link = lookup_path(&mut c, &root, "tree/link").await.expect("link");
        assert_eq!(readlink(&mut c, &link).await, Ok(b"a/f1".to_vec()));
    });
}

#[test]
fn kill_9_amid_uncommitted_writes_keeps_the_committed_prefix_and_never_invents_bytes() {
    const PIECE: usize = 256 * 1024;
    const COMMITTED: usize = 16 * 1024 * 1024;
    const TOTAL: usize = 32 * 1024 * 1024;
    let mut server = Server::start();
    let data = std::sync::Arc::new(PatternRng::new(77).bytes(TOTAL));
    let mut fh = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "partial", 0o644).await;
        fh = Some(f.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let port = server.nfs_port;
        let data2 = data.clone();
        let writer = tokio::spawn(async move {
            let mut c = connect_port(port, 0, 0).await;
            for (i, piece) in data2.chunks(PIECE).enumerate() {
                let off = (i * PIECE) as u64;
                let res = c
                    .write(&WRITE3args {
                        file: f.clone(),
                        offset: off,
                        count: piece.len() as u32,
                        stable: stable_how::UNSTABLE,
                        data: piece.to_vec().into(),
                    })
                    .await;
                match res {
                    Ok(Nfs3Result::Ok(ok)) => assert_eq!(ok.count as usize, piece.len()),
                    Ok(Nfs3Result::Err((e, _))) => panic!("WRITE at {off}: {e}"),
                    Err(_) => return, // the server was killed
                }
                if (i + 1) * PIECE == COMMITTED {
                    match c
                        .commit(&COMMIT3args {
                            file: f.clone(),
                            offset: 0,
                            count: 0,
                        })
                        .await
                    {
                        Ok(Nfs3Result::Ok(_)) => {}
                        other => panic!("COMMIT of the first 16 MiB: {other:?}"),
                    }
                }
                if tx.send((i + 1) * PIECE).is_err() {
                    return;
                }
            }
        });
        // Crash once the prefix is committed and more unstable data is flowing.
        let mut written = 0;
        for _ in 0..TOTAL / PIECE {
            match rx.recv().await {
                Some(n) => written = n,
                None => break,
            }
            if written >= COMMITTED + 8 * PIECE {
                break;
            }
        }
        assert!(
            written >= COMMITTED,
            "the writer stopped early at {written}"
        );
        server.kill9();
        writer.await.expect("writer task");
    });
    server.restart();
    let fh = fh.expect("file created");
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let a = getattr(&mut c, &fh).await.expect("GETATTR after kill -9");
        let size = a.size as usize;
        assert!(
            (COMMITTED..=TOTAL).contains(&size),
            "size {size} after kill -9: at least the committed 16 MiB, at most what was sent"
        );
        let back = read_all(&mut c, &fh, TOTAL).await;
        assert_eq!(back.len(), size, "READ returns exactly the file size");
        if let Some(pos) = back[..COMMITTED]
            .iter()
            .zip(&data[..COMMITTED])
            .position(|(a, b)| a != b)
        {
            panic!("committed byte {pos} differs after kill -9");
        }
        if let Some(pos) = (COMMITTED..size).find(|&i| back[i] != data[i] && back[i] != 0) {
            panic!(
                "uncommitted byte {pos} is {:#x}: neither the written {:#x} nor zero",
                back[pos], data[pos]
            );
        }
    });
}

/// What one churning client knows was acknowledged.
#[derive(Default)]
struct ChurnModel {
    /// name -> exists, for every acknowledged operation.
    names: BTreeMap<String, bool>,
    /// Names touched by the operation in flight when the server died.
    uncertain: Vec<String>,
}

#[test]
fn kill_9_amid_namespace_churn_leaves_a_consistent_tree_with_every_acknowledged_change() {
    let mut server = Server::start();
    let tasks = 4usize;
    let models: Vec<Arc<Mutex<ChurnModel>>> = (0..tasks).map(|_| Arc::default()).collect();
    let mut dir = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let d = mkdir(&mut c, &root, "churn", 0o777).await;
        dir = Some(d.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut handles = Vec::new();
        for (k, model) in models.iter().enumerate() {
            let (d, tx, model, port) = (d.clone(), tx.clone(), model.clone(), server.nfs_port);
            handles.push(tokio::spawn(async move {
                let mut c = connect_port(port, 0, 0).await;
                for i in 0..5000 {
                    let n = format!("t{k}-{i:04}");
                    let mut ops: Vec<(Vec<(String, bool)>, Op)> =
                        vec![(vec![(n.clone(), true)], Op::Create(n.clone()))];
                    if i % 3 == 0 {
                        let l = format!("{n}-l");
                        ops.push((vec![(l.clone(), true)], Op::Link(n.clone(), l)));
                    }
                    let mut cur = n.clone();
                    if i % 5 == 0 {
                        let r = format!("{n}-r");
                        ops.push((
                            vec![(cur.clone(), false), (r.clone(), true)],
                            Op::Rename(cur.clone(), r.clone()),
                        ));
                        cur = r;
                    }
                    if i % 7 == 0 {
                        ops.push((vec![(cur.clone(), false)], Op::Remove(cur.clone())));
                    }
                    for (effects, op) in ops {
                        model.lock().expect("model").uncertain =
                            effects.iter().map(|(n, _)| n.clone()).collect();
                        match op.run(&mut c, &d).await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => panic!("client {k}: {op:?}: {e}"),
                            None => return, // the server was killed
                        }
                        let mut m = model.lock().expect("model");
                        m.uncertain.clear();
                        m.names.extend(effects);
                        drop(m);
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        drop(tx);
        for _ in 0..300 {
            if rx.recv().await.is_none() {
                break;
            }
        }
        server.kill9();
        for h in handles {
            h.await.expect("churn task");
        }
    });
    server.restart();
    let dir = dir.expect("dir made");
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let (entries, _, _) = readdirplus_all(&mut c, &dir, 8192, 65536).await;
        let mut names_per_inode: BTreeMap<u64, usize> = BTreeMap::new();
        for e in &entries {
            let fh = lookup(&mut c, &dir, &e.name)
                .await
                .unwrap_or_else(|err| panic!("listed entry {} cannot be looked up: {err}", e.name));
            let a = getattr(&mut c, &fh)
                .await
                .unwrap_or_else(|err| panic!("listed entry {} is dangling: {err}", e.name));
            assert_eq!(a.fileid, e.fileid, "{}: READDIR and GETATTR agree", e.name);
            *names_per_inode.entry(a.fileid).or_default() += 1;
        }
        for e in &entries {
            let fh = lookup(&mut c, &dir, &e.name).await.expect("LOOKUP");
            let a = getattr(&mut c, &fh).await.expect("GETATTR");
            assert_eq!(
                a.nlink as usize, names_per_inode[&a.fileid],
                "{}: nlink equals the names that point at it",
                e.name
            );
        }
        let listed: std::collections::BTreeSet<&str> =
            entries.iter().map(|e| e.name.as_str()).collect();
        let mut checked = 0;
        for (k, model) in models.iter().enumerate() {
            let m = model.lock().expect("model");
            for (name, exists) in &m.names {
                if m.uncertain.contains(name) {
                    continue;
                }
                assert_eq!(
                    listed.contains(name.as_str()),
                    *exists,
                    "client {k}: acknowledged state of {name} lost by kill -9"
                );
                checked += 1;
            }
        }
        assert!(checked >= 100, "only {checked} acknowledged names to check");
    });
}

#[derive(Debug)]
enum Op {
    Create(String),
    Link(String, String),
    Rename(String, String),
    Remove(String),
}

impl Op {
    /// Runs the operation; `None` when the connection died (server killed).
    async fn run(&self, c: &mut Client, dir: &nfs_fh3) -> Option<Result<(), nfsstat3>> {
        let name = |n: &str| diropargs3 {
            dir: dir.clone(),
            name: n.as_bytes().to_vec().into(),
        };
        Some(match self {
            Op::Create(n) => match c
                .create(&CREATE3args {
                    where_: name(n),
                    how: createhow3::GUARDED(mode_attr(0o644)),
                })
                .await
                .ok()?
            {
                Nfs3Result::Ok(_) => Ok(()),
                Nfs3Result::Err((e, _)) => Err(e),
            },
            Op::Link(from, to) => {
                let fh = match c.lookup(&LOOKUP3args { what: name(from) }).await.ok()? {
                    Nfs3Result::Ok(ok) => ok.object,
                    Nfs3Result::Err((e, _)) => return Some(Err(e)),
                };
                match c
                    .link(&LINK3args {
                        file: fh,
                        link: name(to),
                    })
                    .await
                    .ok()?
                {
                    Nfs3Result::Ok(_) => Ok(()),
                    Nfs3Result::Err((e, _)) => Err(e),
                }
            }
            Op::Rename(from, to) => match c
                .rename(&RENAME3args {
                    from: name(from),
                    to: name(to),
                })
                .await
                .ok()?
            {
                Nfs3Result::Ok(_) => Ok(()),
                Nfs3Result::Err((e, _)) => Err(e),
            },
            Op::Remove(n) => match c.remove(&REMOVE3args { object: name(n) }).await.ok()? {
                Nfs3Result::Ok(_) => Ok(()),
                Nfs3Result::Err((e, _)) => Err(e),
            },
        })
    }
}
