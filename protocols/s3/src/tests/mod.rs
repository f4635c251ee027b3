//! Crate-level tests: the S3 operations called through the `s3s::S3`
//! trait (as s3s calls them after authenticating) over a real FileSystem
//! on MemKv and a LocalChunkStore in a temporary directory. End-to-end
//! tests with real clients over HTTP live in interop-tests/.

mod buckets;
mod http;
mod listing;
mod multipart;
mod objects;
mod public;

use crate::{Identities, NitroS3};
use bytes::Bytes;
use futures::StreamExt;
use nitrofs_chunk_store::LocalChunkStore;
use nitrofs_core_fs::{Credentials, FileSystem, FsOptions};
use nitrofs_metadata::MemKv;
use s3s::dto::StreamingBlob;
use s3s::{S3Request, S3Result};
use std::sync::Arc;

/// Access key of the root identity in tests.
pub const ROOT: &str = "ROOTKEY";
/// Access key of an ordinary user (uid 1000, gid 1000).
pub const ALICE: &str = "ALICEKEY";
/// Access key of another user (uid 1001, gid 1001).
pub const BOB: &str = "BOBKEY";

pub struct Harness {
    pub _tmp: tempfile::TempDir,
    pub kv: Arc<MemKv>,
    pub chunks: Arc<LocalChunkStore>,
    pub fs: Arc<FileSystem>,
    pub s3: NitroS3,
    pub ids: Arc<Identities>,
}

impl Harness {
    pub fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let kv = Arc::new(MemKv::new());
        let chunks = Arc::new(LocalChunkStore::open(&tmp.path().join("chunks")).unwrap());
        let fs =
            Arc::new(FileSystem::open(kv.clone(), chunks.clone(), FsOptions::default()).unwrap());
        let ids = Arc::new(Identities::in_memory());
        ids.ensure_root(Some((ROOT.into(), "rootsecret".into())))
            .unwrap();
        ids.insert_for_tests("alice", ALICE, Credentials::new(1000, 1000));
        ids.insert_for_tests("bob", BOB, Credentials::new(1001, 1001));
        let s3 = NitroS3::new(fs.clone(), ids.clone(), "us-east-1".into());
        Harness {
            _tmp: tmp,
            kv,
            chunks,
            fs,
            s3,
            ids,
        }
    }

    /// The filesystem reopened on the same engines (a server restart).
    pub fn restart(&mut self) {
        let fs = Arc::new(
            FileSystem::open(self.kv.clone(), self.chunks.clone(), FsOptions::default()).unwrap(),
        );
        self.fs = fs.clone();
        self.s3 = NitroS3::new(fs, self.ids.clone(), "us-east-1".into());
    }

    /// Lets every identity create objects at the top of `default`.
    pub fn open_root(&self) {
        let set = nitrofs_core_fs::SetAttr {
            mode: Some(0o777),
            ..Default::default()
        };
        self.fs
            .setattr(&Credentials::root(), self.root(), &set, None)
            .unwrap();
    }

    /// The root directory of the `default` bucket.
    pub fn root(&self) -> u64 {
        self.fs.volume("default").unwrap().root
    }
}

/// A request as s3s hands it over after checking the signature of `key`.
pub fn req<T>(input: T, key: &str) -> S3Request<T> {
    S3Request {
        input,
        method: hyper::Method::GET,
        uri: hyper::Uri::from_static("/"),
        headers: hyper::HeaderMap::new(),
        extensions: hyper::http::Extensions::new(),
        credentials: Some(s3s::auth::Credentials {
            access_key: key.to_string(),
            secret_key: "unused".into(),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// A request body.
pub fn blob(data: impl Into<Bytes>) -> Option<StreamingBlob> {
    let data: Bytes = data.into();
    Some(StreamingBlob::wrap(futures::stream::iter(vec![Ok::<
        _,
        std::io::Error,
    >(data)])))
}

/// A request body in many small pieces.
pub fn blob_pieces(data: &[u8], piece: usize) -> Option<StreamingBlob> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Some(StreamingBlob::wrap(futures::stream::iter(pieces)))
}

/// Reads a response body.
pub async fn read_all(body: Option<StreamingBlob>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut b) = body {
        while let Some(chunk) = b.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
    }
    out
}

/// The S3 error code of a result.
pub fn code<T>(r: S3Result<T>) -> String {
    match r {
        Ok(_) => "OK".to_string(),
        Err(e) => e.code().as_str().to_string(),
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    use s3s::crypto::Checksum as _;
    crate::meta::hex(&s3s::crypto::Md5::checksum(data))
}
