//! Measures taking a snapshot of a volume holding N files, side by side
//! for several N, on the real engines (RocksDB metadata, local chunks) in
//! a temporary directory.
//!
//! ```sh
//! cargo run -p nitrofs-core-fs --example snapshot_create -- 1000 200000
//! ```
//!
//! For each N it creates N empty files in directories of 1,000 (with 8
//! threads), then takes 5 snapshots and prints the median and maximum time
//! of one `create_snapshot`, and the RocksDB directory size before and after.

use nitrofs_chunk_store::LocalChunkStore;
use nitrofs_core_fs::{CreateHow, Credentials, FileSystem, FsOptions, SetAttr, DEFAULT_VOLUME};
use nitrofs_metadata::RocksKv;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PER_DIR: usize = 1000;
const THREADS: usize = 8;
const SNAPSHOTS: usize = 5;

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn run(files: usize) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let meta = tmp.path().join("meta");
    let kv = Arc::new(RocksKv::open(&meta)?);
    let chunks = Arc::new(LocalChunkStore::open(&tmp.path().join("chunks"))?);
    let fs = Arc::new(FileSystem::open(kv, chunks, FsOptions::default())?);
    let root = fs.volume(DEFAULT_VOLUME)?.root;
    let cred = Credentials::root();
    let dirs = files.div_ceil(PER_DIR);
    let mut inos = Vec::with_capacity(dirs);
    for d in 0..dirs {
        let name = format!("d{d:05}");
        inos.push(
            fs.mkdir(&cred, root, name.as_bytes(), &SetAttr::default())?
                .0
                .ino,
        );
    }
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let fs = fs.clone();
                let inos = &inos;
                let cred = cred.clone();
                s.spawn(move || -> Result<(), String> {
                    for i in (t..files).step_by(THREADS) {
                        let name = format!("f{i:07}");
                        let how = CreateHow::Guarded(SetAttr::default());
                        fs.create(&cred, inos[i / PER_DIR], name.as_bytes(), &how)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "creator panicked".to_string())??;
        }
        Ok(())
    })?;
    let populate = started.elapsed();
    let before = dir_size(&meta);
    let mut times: Vec<Duration> = (0..SNAPSHOTS)
        .map(|i| {
            let t = Instant::now();
            fs.create_snapshot(DEFAULT_VOLUME, &format!("s{i}"))
                .map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    times.sort();
    let after = dir_size(&meta);
    println!(
        "files={files:>7} populate={:>7.1}s snapshot_median={:>8.3}ms snapshot_max={:>8.3}ms meta_bytes_before={before} meta_bytes_after={after}",
        populate.as_secs_f64(),
        times[SNAPSHOTS / 2].as_secs_f64() * 1e3,
        times[SNAPSHOTS - 1].as_secs_f64() * 1e3,
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1000, 200_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n)?;
    }
    Ok(())
}
