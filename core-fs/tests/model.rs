//! Randomized model test: a seeded sequence of namespace and data
//! operations over a small name space, applied both to core-fs (as root)
//! and to a deliberately simple in-memory model. Every operation must
//! have the same outcome (Ok, or the same error kind) on both, and the
//! whole tree — names, kinds, link counts, `..`, file bytes and which
//! names share an inode — is compared periodically and at the end.
//!
//! A failure prints the seed; `NITROFS_MODEL_SEED=<seed> cargo test -p
//! nitrofs-core-fs --test model random_seed` replays it.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, VecDeque};

// ---------------------------------------------------------------- model

/// Index of a node in the model.
type Id = usize;
/// The model's root directory.
const ROOT: Id = 0;
/// A path from the volume root, one name per component.
type Path = Vec<String>;

#[derive(Debug, Clone)]
enum Node {
    Dir {
        entries: BTreeMap<String, Id>,
        parent: Id,
    },
    File {
        data: Vec<u8>,
    },
}

/// The error kinds the operations of this test can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    Invalid,
    Perm,
}

/// A filesystem as a tree of nodes. Nodes are never freed: an unreachable
/// node is simply never visited again. Link counts are not stored but
/// counted from the tree when compared.
struct Model {
    nodes: Vec<Node>,
}

impl Model {
    fn new() -> Self {
        Self {
            nodes: vec![Node::Dir {
                entries: BTreeMap::new(),
                parent: ROOT,
            }],
        }
    }

    fn is_dir(&self, id: Id) -> bool {
        matches!(self.nodes[id], Node::Dir { .. })
    }

    /// The entries of `id`, or `NotDir`.
    fn entries(&self, id: Id) -> Result<&BTreeMap<String, Id>, Kind> {
        match &self.nodes[id] {
            Node::Dir { entries, .. } => Ok(entries),
            Node::File { .. } => Err(Kind::NotDir),
        }
    }

    fn entries_mut(&mut self, id: Id) -> &mut BTreeMap<String, Id> {
        match &mut self.nodes[id] {
            Node::Dir { entries, .. } => entries,
            Node::File { .. } => unreachable!("checked to be a directory"),
        }
    }

    fn data_mut(&mut self, id: Id) -> Result<&mut Vec<u8>, Kind> {
        match &mut self.nodes[id] {
            Node::File { data } => Ok(data),
            Node::Dir { .. } => Err(Kind::IsDir),
        }
    }

    fn add(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Walks `path` from the root, like `lookup_path`.
    fn resolve(&self, path: &[String]) -> Result<Id, Kind> {
        let mut cur = ROOT;
        for name in path {
            cur = *self.entries(cur)?.get(name).ok_or(Kind::NotFound)?;
        }
        Ok(cur)
    }

    /// Whether `id` is `ancestor` or lies below it.
    fn is_within(&self, mut id: Id, ancestor: Id) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            match self.nodes[id] {
                Node::Dir { parent, .. } if id != ROOT => id = parent,
                _ => return false,
            }
        }
    }

    /// Applies `op`. Where POSIX allows several errors, the model reports
    /// the one core-fs checks first; the order is noted per operation.
    fn apply(&mut self, op: &Op) -> Result<(), Kind> {
        match op {
            // parent path, parent is a directory, name free.
            Op::Mkdir(p) => {
                let (parent, name) = split(p);
                let d = self.resolve(parent)?;
                if self.entries(d)?.contains_key(name) {
                    return Err(Kind::Exists);
                }
                let id = self.add(Node::Dir {
                    entries: BTreeMap::new(),
                    parent: d,
                });
                self.entries_mut(d).insert(name.clone(), id);
                Ok(())
            }
            // parent path, parent is a directory; an existing name is an
            // error for GUARDED and for a directory, and a no-op otherwise.
            Op::Create(p, guarded) => {
                let (parent, name) = split(p);
                let d = self.resolve(parent)?;
                match self.entries(d)?.get(name) {
                    Some(&e) if *guarded || self.is_dir(e) => Err(Kind::Exists),
                    Some(_) => Ok(()),
                    None => {
                        let id = self.add(Node::File { data: Vec::new() });
                        self.entries_mut(d).insert(name.clone(), id);
                        Ok(())
                    }
                }
            }
            // path, then not a directory.
            Op::Write(p, offset, len, seed) => {
                let id = self.resolve(p)?;
                let data = self.data_mut(id)?;
                let (start, end) = (*offset as usize, *offset as usize + len);
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[start..end].copy_from_slice(&pattern(*seed, *len));
                Ok(())
            }
            Op::Truncate(p, size) => {
                let id = self.resolve(p)?;
                self.data_mut(id)?.resize(*size as usize, 0);
                Ok(())
            }
            // parent path, parent is a directory, name exists, not a directory.
            Op::Remove(p) => {
                let (parent, name) = split(p);
                let d = self.resolve(parent)?;
                let victim = *self.entries(d)?.get(name).ok_or(Kind::NotFound)?;
                if self.is_dir(victim) {
                    return Err(Kind::IsDir);
                }
                self.entries_mut(d).remove(name);
                Ok(())
            }
            // parent path, parent is a directory, name exists, is a
            // directory, is empty.
            Op::Rmdir(p) => {
                let (parent, name) = split(p);
                let d = self.resolve(parent)?;
                let victim = *self.entries(d)?.get(name).ok_or(Kind::NotFound)?;
                if !self.entries(victim)?.is_empty() {
                    return Err(Kind::NotEmpty);
                }
                self.entries_mut(d).remove(name);
                Ok(())
            }
            // both parent paths, both parents are directories, source
            // exists, a directory is not moved below itself, then the
            // target: the same object is a no-op, else kinds must match
            // and a directory target must be empty.
            Op::Rename(from, to) => {
                let (fp, fname) = split(from);
                let (tp, tname) = split(to);
                let fd = self.resolve(fp)?;
                let td = self.resolve(tp)?;
                self.entries(fd)?;
                self.entries(td)?;
                let src = *self.entries(fd)?.get(fname).ok_or(Kind::NotFound)?;
                let src_dir = self.is_dir(src);
                if src_dir && fd != td && self.is_within(td, src) {
                    return Err(Kind::Invalid);
                }
                if let Some(&dst) = self.entries(td)?.get(tname) {
                    if dst == src {
                        return Ok(());
                    }
                    match (src_dir, self.is_dir(dst)) {
                        (true, false) => return Err(Kind::NotDir),
                        (false, true) => return Err(Kind::IsDir),
                        (true, true) if !self.entries(dst)?.is_empty() => {
                            return Err(Kind::NotEmpty)
                        }
                        _ => {}
                    }
                }
                self.entries_mut(fd).remove(fname);
                self.entries_mut(td).insert(tname.clone(), src);
                if let Node::Dir { parent, .. } = &mut self.nodes[src] {
                    *parent = td;
                }
                Ok(())
            }
            // source path, target parent path, source is not a directory,
            // target parent is a directory, target name free.
            Op::Link(from, to) => {
                let src = self.resolve(from)?;
                let (tp, tname) = split(to);
                let td = self.resolve(tp)?;
                if self.is_dir(src) {
                    return Err(Kind::Perm);
                }
                if self.entries(td)?.contains_key(tname) {
                    return Err(Kind::Exists);
                }
                self.entries_mut(td).insert(tname.clone(), src);
                Ok(())
            }
        }
    }

    /// Every reachable path (without the root) and whether it is a directory.
    fn paths(&self) -> Vec<(Path, bool)> {
        let mut out = Vec::new();
        let mut todo = vec![(ROOT, Vec::new())];
        while let Some((id, path)) = todo.pop() {
            if let Node::Dir { entries, .. } = &self.nodes[id] {
                for (name, &child) in entries {
                    let mut p: Path = path.clone();
                    p.push(name.clone());
                    out.push((p.clone(), self.is_dir(child)));
                    todo.push((child, p));
                }
            }
        }
        out.sort();
        out
    }

    /// Number of names of every reachable file.
    fn link_counts(&self) -> HashMap<Id, u32> {
        let mut counts = HashMap::new();
        let mut todo = vec![ROOT];
        while let Some(id) = todo.pop() {
            if let Node::Dir { entries, .. } = &self.nodes[id] {
                for &child in entries.values() {
                    if self.is_dir(child) {
                        todo.push(child);
                    } else {
                        *counts.entry(child).or_insert(0) += 1;
                    }
                }
            }
        }
        counts
    }
}

fn split(p: &[String]) -> (&[String], &String) {
    let (name, parent) = p.split_last().expect("paths have at least one component");
    (parent, name)
}

// ---------------------------------------------------------------- ops

#[derive(Debug, Clone)]
enum Op {
    Mkdir(Path),
    /// Path, and GUARDED (true) or UNCHECKED (false).
    Create(Path, bool),
    /// Path, offset, length, pattern seed.
    Write(Path, u64, usize, u8),
    Truncate(Path, u64),
    Remove(Path),
    Rmdir(Path),
    Rename(Path, Path),
    Link(Path, Path),
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
/// Entries are made at most this deep (root = 0).
const MAX_DEPTH: usize = 3;

fn random_name(rng: &mut StdRng) -> String {
    NAMES[rng.gen_range(0..NAMES.len())].to_string()
}

/// A path that may or may not exist: mostly a new name in an existing
/// directory, sometimes a random path (whose parents may be missing or
/// files).
fn new_path(rng: &mut StdRng, model: &Model) -> Path {
    if rng.gen_bool(0.85) {
        let mut dirs: Vec<Path> = vec![Vec::new()];
        dirs.extend(
            model
                .paths()
                .into_iter()
                .filter(|(p, is_dir)| *is_dir && p.len() < MAX_DEPTH)
                .map(|(p, _)| p),
        );
        let mut p = dirs[rng.gen_range(0..dirs.len())].clone();
        p.push(random_name(rng));
        p
    } else {
        (0..rng.gen_range(1..=MAX_DEPTH))
            .map(|_| random_name(rng))
            .collect()
    }
}

/// Mostly an existing path, else any path.
fn existing_path(rng: &mut StdRng, model: &Model) -> Path {
    let all = model.paths();
    if !all.is_empty() && rng.gen_bool(0.85) {
        all[rng.gen_range(0..all.len())].0.clone()
    } else {
        new_path(rng, model)
    }
}

/// Mostly an existing regular file, else any path.
fn file_path(rng: &mut StdRng, model: &Model) -> Path {
    let files: Vec<Path> = model
        .paths()
        .into_iter()
        .filter(|(_, d)| !d)
        .map(|(p, _)| p)
        .collect();
    if !files.is_empty() && rng.gen_bool(0.75) {
        files[rng.gen_range(0..files.len())].clone()
    } else {
        existing_path(rng, model)
    }
}

fn random_op(rng: &mut StdRng, model: &Model) -> Op {
    let chunk = u64::from(CHUNK);
    match rng.gen_range(0..100) {
        0..=11 => Op::Mkdir(new_path(rng, model)),
        12..=26 => Op::Create(new_path(rng, model), rng.gen_bool(0.5)),
        27..=41 => {
            let offset = rng.gen_range(0..2 * chunk + 5_000);
            let len = if rng.gen_bool(0.1) {
                rng.gen_range(1..=80_000)
            } else {
                rng.gen_range(1..=6_000)
            };
            Op::Write(file_path(rng, model), offset, len, rng.gen())
        }
        42..=47 => Op::Truncate(file_path(rng, model), rng.gen_range(0..2 * chunk + 5_000)),
        48..=57 => Op::Remove(existing_path(rng, model)),
        58..=65 => Op::Rmdir(existing_path(rng, model)),
        66..=87 => {
            let from = existing_path(rng, model);
            let to = if rng.gen_bool(0.5) {
                existing_path(rng, model)
            } else {
                new_path(rng, model)
            };
            Op::Rename(from, to)
        }
        _ => Op::Link(file_path(rng, model), new_path(rng, model)),
    }
}

// ---------------------------------------------------------------- core-fs side

/// Applies `op` to core-fs as root, resolving paths with `lookup_path`.
fn apply_real(fs: &FileSystem, root: InodeId, op: &Op) -> FsResult<()> {
    let cred = root_cred();
    let resolve = |p: &[String]| fs.lookup_path(&cred, root, &p.join("/")).map(|a| a.ino);
    match op {
        Op::Mkdir(p) => {
            let (parent, name) = split(p);
            fs.mkdir(
                &cred,
                resolve(parent)?,
                name.as_bytes(),
                &SetAttr::default(),
            )
            .map(drop)
        }
        Op::Create(p, guarded) => {
            let (parent, name) = split(p);
            let how = if *guarded {
                CreateHow::Guarded(SetAttr::default())
            } else {
                CreateHow::Unchecked(SetAttr::default())
            };
            fs.create(&cred, resolve(parent)?, name.as_bytes(), &how)
                .map(drop)
        }
        Op::Write(p, offset, len, seed) => fs
            .write(&cred, resolve(p)?, *offset, &pattern(*seed, *len), false)
            .map(drop),
        Op::Truncate(p, size) => {
            let set = SetAttr {
                size: Some(*size),
                ..SetAttr::default()
            };
            fs.setattr(&cred, resolve(p)?, &set, None).map(drop)
        }
        Op::Remove(p) => {
            let (parent, name) = split(p);
            fs.remove(&cred, resolve(parent)?, name.as_bytes())
                .map(drop)
        }
        Op::Rmdir(p) => {
            let (parent, name) = split(p);
            fs.rmdir(&cred, resolve(parent)?, name.as_bytes()).map(drop)
        }
        Op::Rename(from, to) => {
            let (fp, fname) = split(from);
            let (tp, tname) = split(to);
            let fd = resolve(fp)?;
            let td = resolve(tp)?;
            fs.rename(&cred, fd, fname.as_bytes(), td, tname.as_bytes())
                .map(drop)
        }
        Op::Link(from, to) => {
            let src = resolve(from)?;
            let (tp, tname) = split(to);
            fs.link(&cred, src, resolve(tp)?, tname.as_bytes())
                .map(drop)
        }
    }
}

/// The model's view of a core-fs error; anything else is a failure.
fn kind_of(e: &FsError) -> Option<Kind> {
    Some(match e {
        FsError::NotFound => Kind::NotFound,
        FsError::Exists => Kind::Exists,
        FsError::NotDir => Kind::NotDir,
        FsError::IsDir => Kind::IsDir,
        FsError::NotEmpty => Kind::NotEmpty,
        FsError::Invalid(_) => Kind::Invalid,
        FsError::Perm => Kind::Perm,
        _ => return None,
    })
}

// ---------------------------------------------------------------- comparison

/// Compares the whole reachable tree of the model with core-fs.
struct Compare<'a> {
    fs: &'a FileSystem,
    model: &'a Model,
    links: HashMap<Id, u32>,
    /// Model node → core-fs inode, and back: must be a bijection.
    to_real: HashMap<Id, InodeId>,
    to_model: HashMap<InodeId, Id>,
}

impl Compare<'_> {
    fn run(fs: &FileSystem, model: &Model, root: InodeId) -> Result<(), String> {
        let mut c = Compare {
            fs,
            model,
            links: model.link_counts(),
            to_real: HashMap::new(),
            to_model: HashMap::new(),
        };
        c.node(ROOT, root, "/")
    }

    fn node(&mut self, id: Id, ino: InodeId, path: &str) -> Result<(), String> {
        if let Some(&known) = self.to_real.get(&id) {
            return if known == ino {
                Ok(()) // another name of a file already compared
            } else {
                Err(format!(
                    "{path}: model node {id} is inode {known} elsewhere but {ino} here"
                ))
            };
        }
        if let Some(&other) = self.to_model.get(&ino) {
            return Err(format!(
                "{path}: inode {ino} is reached by two different model nodes {other} and {id}"
            ));
        }
        self.to_real.insert(id, ino);
        self.to_model.insert(ino, id);
        let attr = self
            .fs
            .getattr(ino)
            .map_err(|e| format!("{path}: getattr: {e:?}"))?;
        match &self.model.nodes[id] {
            Node::Dir { entries, parent } => {
                if attr.kind != FileType::Directory {
                    return Err(format!(
                        "{path}: expected a directory, core-fs has {:?}",
                        attr.kind
                    ));
                }
                let subdirs = entries.values().filter(|c| self.model.is_dir(**c)).count() as u32;
                if attr.nlink != 2 + subdirs {
                    return Err(format!(
                        "{path}: nlink {} but {} subdirectories",
                        attr.nlink, subdirs
                    ));
                }
                let dotdot = self
                    .fs
                    .lookup(&root_cred(), ino, b"..")
                    .map_err(|e| format!("{path}: lookup ..: {e:?}"))?;
                if Some(&dotdot.ino) != self.to_real.get(parent) {
                    return Err(format!(
                        "{path}: '..' is inode {} but the parent is {:?}",
                        dotdot.ino,
                        self.to_real.get(parent)
                    ));
                }
                let listing = list_dir(self.fs, ino, 3);
                let mut real: BTreeMap<String, InodeId> = BTreeMap::new();
                for (name, child, _) in &listing {
                    if real.insert(name.clone(), *child).is_some() {
                        return Err(format!("{path}: readdir lists {name} twice"));
                    }
                }
                let model_names: Vec<&String> = entries.keys().collect();
                let real_names: Vec<&String> = real.keys().collect();
                if model_names != real_names {
                    return Err(format!(
                        "{path}: model has {model_names:?}, readdir has {real_names:?}"
                    ));
                }
                for (name, &child) in entries {
                    let child_ino = real[name];
                    let looked_up = self
                        .fs
                        .lookup(&root_cred(), ino, name.as_bytes())
                        .map_err(|e| format!("{path}{name}: lookup: {e:?}"))?;
                    if looked_up.ino != child_ino {
                        return Err(format!(
                            "{path}{name}: readdir says {child_ino}, lookup says {}",
                            looked_up.ino
                        ));
                    }
                    self.node(child, child_ino, &format!("{path}{name}/"))?;
                }
                Ok(())
            }
            Node::File { data } => {
                if attr.kind != FileType::Regular {
                    return Err(format!(
                        "{path}: expected a file, core-fs has {:?}",
                        attr.kind
                    ));
                }
                let names = self.links.get(&id).copied().unwrap_or(0);
                if attr.nlink != names {
                    return Err(format!("{path}: nlink {} but {} names", attr.nlink, names));
                }
                if attr.size != data.len() as u64 {
                    return Err(format!(
                        "{path}: size {} but model has {}",
                        attr.size,
                        data.len()
                    ));
                }
                let got = read_all_as(self.fs, &root_cred(), ino);
                if got != *data {
                    let first = got.iter().zip(data.iter()).position(|(a, b)| a != b);
                    return Err(format!(
                        "{path}: contents differ (first difference at {first:?})"
                    ));
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------- driver

/// Runs `ops` random operations from `seed` on a fresh fixture and
/// compares with the model; restarts the filesystem at the end and
/// compares once more.
fn run(backend: Backend, seed: u64, ops: usize) {
    let fx = Fixture::new(backend);
    let mut model = Model::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let fail = |step: usize, what: String, recent: &VecDeque<String>| -> ! {
        let history: Vec<&String> = recent.iter().collect();
        panic!(
            "model test failed: backend {backend:?}, seed {seed}, step {step}: {what}\nlast operations:\n{}",
            history.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
        )
    };
    let root = fx.root();
    for step in 0..ops {
        let op = random_op(&mut rng, &model);
        let expected = model.apply(&op);
        let got = apply_real(&fx.fs, root, &op);
        let got_kind = match &got {
            Ok(()) => Ok(()),
            Err(e) => match kind_of(e) {
                Some(k) => Err(k),
                None => fail(step, format!("{op:?}: unexpected error {e:?}"), &recent),
            },
        };
        recent.push_back(format!("#{step} {op:?} -> {got_kind:?}"));
        if recent.len() > 25 {
            recent.pop_front();
        }
        let name = op_name(&op);
        let entry = counts.entry(name).or_default();
        if expected.is_ok() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if got_kind != expected {
            fail(
                step,
                format!("{op:?}: core-fs gave {got:?}, the model expects {expected:?}"),
                &recent,
            );
        }
        if step % 100 == 99 {
            if let Err(e) = Compare::run(&fx.fs, &model, root) {
                fail(step, format!("tree differs: {e}"), &recent);
            }
        }
    }
    if let Err(e) = Compare::run(&fx.fs, &model, root) {
        fail(ops, format!("tree differs at the end: {e}"), &recent);
    }
    // The run must exercise success and failure of the interesting calls.
    for name in [
        "mkdir", "create", "write", "rename", "link", "remove", "rmdir",
    ] {
        let (ok, err) = counts.get(name).copied().unwrap_or_default();
        assert!(
            ok > 0,
            "seed {seed}: no successful {name} in {ops} operations: {counts:?}"
        );
        assert!(
            err > 0 || name == "write",
            "seed {seed}: no failing {name}: {counts:?}"
        );
    }
    let fx = fx.restart(small_chunks());
    if let Err(e) = Compare::run(&fx.fs, &model, fx.root()) {
        fail(ops, format!("tree differs after a restart: {e}"), &recent);
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Mkdir(_) => "mkdir",
        Op::Create(..) => "create",
        Op::Write(..) => "write",
        Op::Truncate(..) => "truncate",
        Op::Remove(_) => "remove",
        Op::Rmdir(_) => "rmdir",
        Op::Rename(..) => "rename",
        Op::Link(..) => "link",
    }
}

const OPS: usize = 2000;

#[test]
fn model_agrees_with_core_fs_seed_1() {
    run(Backend::Mem, 1, OPS);
}

#[test]
fn model_agrees_with_core_fs_seed_2() {
    run(Backend::Mem, 2, OPS);
}

#[test]
fn model_agrees_with_core_fs_seed_3() {
    run(Backend::Mem, 3, OPS);
}

#[test]
fn model_agrees_with_core_fs_seed_0xc0ffee() {
    run(Backend::Mem, 0xc0ffee, OPS);
}

#[test]
fn model_agrees_with_core_fs_on_rocksdb() {
    run(Backend::Rocks, 7, OPS / 2);
}

/// A new seed every run (printed, and in every failure message), or the
/// one given in `NITROFS_MODEL_SEED`.
#[test]
fn model_agrees_with_core_fs_random_seed() {
    let seed = match std::env::var("NITROFS_MODEL_SEED") {
        Ok(s) => s.parse().expect("NITROFS_MODEL_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    };
    eprintln!("model test seed: {seed} (replay with NITROFS_MODEL_SEED={seed})");
    run(Backend::Mem, seed, OPS);
}

#[test]
fn the_model_itself_follows_posix_on_a_hand_written_sequence() {
    let p = |s: &str| -> Path { s.split('/').map(str::to_string).collect() };
    let mut m = Model::new();
    assert_eq!(m.apply(&Op::Mkdir(p("a"))), Ok(()));
    assert_eq!(m.apply(&Op::Mkdir(p("a"))), Err(Kind::Exists));
    assert_eq!(m.apply(&Op::Create(p("a/f"), true)), Ok(()));
    assert_eq!(m.apply(&Op::Create(p("a/f"), false)), Ok(()));
    assert_eq!(m.apply(&Op::Create(p("a/f/x"), true)), Err(Kind::NotDir));
    assert_eq!(m.apply(&Op::Create(p("z/f"), true)), Err(Kind::NotFound));
    assert_eq!(m.apply(&Op::Link(p("a/f"), p("g"))), Ok(()));
    assert_eq!(m.apply(&Op::Link(p("a"), p("h"))), Err(Kind::Perm));
    assert_eq!(
        m.link_counts().values().copied().collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(
        m.apply(&Op::Rename(p("a/f"), p("g"))),
        Ok(()),
        "two names of one file"
    );
    assert!(m.resolve(&p("a/f")).is_ok());
    assert_eq!(m.apply(&Op::Mkdir(p("a/b"))), Ok(()));
    assert_eq!(m.apply(&Op::Rename(p("a"), p("a/b/c"))), Err(Kind::Invalid));
    assert_eq!(m.apply(&Op::Rename(p("a/b"), p("g"))), Err(Kind::NotDir));
    assert_eq!(m.apply(&Op::Rename(p("g"), p("a/b"))), Err(Kind::IsDir));
    assert_eq!(m.apply(&Op::Mkdir(p("e"))), Ok(()));
    assert_eq!(m.apply(&Op::Rename(p("e"), p("a"))), Err(Kind::NotEmpty));
    assert_eq!(m.apply(&Op::Rename(p("a/b"), p("e"))), Ok(()));
    assert_eq!(m.resolve(&p("a/b")), Err(Kind::NotFound));
    assert_eq!(m.apply(&Op::Rmdir(p("a"))), Err(Kind::NotEmpty));
    assert_eq!(m.apply(&Op::Rmdir(p("g"))), Err(Kind::NotDir));
    assert_eq!(m.apply(&Op::Remove(p("e"))), Err(Kind::IsDir));
    assert_eq!(m.apply(&Op::Write(p("g"), 3, 2, 0)), Ok(()));
    let g = m.resolve(&p("g")).expect("g");
    assert_eq!(
        m.data_mut(g).expect("file").clone(),
        [&[0u8, 0, 0][..], &pattern(0, 2)].concat()
    );
    assert_eq!(m.apply(&Op::Truncate(p("a/f"), 1)), Ok(()));
    assert_eq!(
        m.data_mut(g).expect("file").len(),
        1,
        "a/f and g are one file"
    );
}
