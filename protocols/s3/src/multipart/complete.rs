//! CompleteMultipartUpload: validate the part list, link the parts into
//! one file without a copy, publish it.

use super::*;

impl NitroS3 {
    pub(crate) async fn complete_multipart_upload_impl(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = parse_key(&input.key).map_err(key_error)?;
        let asked: Vec<(i32, String)> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let etag = p
                    .e_tag
                    .map(|e| e.value().trim_matches('"').to_ascii_lowercase());
                (p.part_number.unwrap_or(0), etag.unwrap_or_default())
            })
            .collect();
        if asked.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "You must specify at least one part",
            ));
        }
        let full = checksum_of(
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        );
        let (bucket, key_s, id) = (input.bucket, input.key, input.upload_id);
        let (b2, k2) = (bucket.clone(), key_s.clone());
        let etag = ns::blocking(&self.fs, move |fs| {
            complete(fs, &cred, &b2, &k2, &id, &key, &asked, full)
        })
        .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.clone()),
            key: Some(key_s.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{bucket}/{key_s}")),
            ..CompleteMultipartUploadOutput::default()
        }))
    }
}

/// Validates the parts a client asks to complete with.
pub fn validate_parts(asked: &[(i32, String)], parts: &BTreeMap<i32, PartRecord>) -> S3Result<()> {
    let mut prev = 0;
    for (n, _) in asked {
        if *n <= prev {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ));
        }
        prev = *n;
    }
    for (n, etag) in asked {
        let invalid = || {
            S3Error::with_message(
                S3ErrorCode::InvalidPart,
                format!("One or more of the specified parts could not be found (part {n}). The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."),
            )
        };
        let rec = parts.get(n).ok_or_else(invalid)?;
        if !etag.is_empty() && *etag != rec.md5 {
            return Err(invalid());
        }
    }
    for (i, (n, _)) in asked.iter().enumerate() {
        let small = parts.get(n).is_some_and(|rec| rec.size < MIN_PART);
        if i + 1 < asked.len() && small {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size.",
            ));
        }
    }
    Ok(())
}

/// The checksum of a completed object (see the module note).
fn final_checksum(full: Checksum, algo: Option<&str>, used: &[&PartRecord]) -> Checksum {
    if checksum::ALGOS.into_iter().any(|a| a.get(&full).is_some()) {
        let mut c = full;
        c.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        return c;
    }
    let mut c = Checksum::default();
    let Some(algo) = algo.and_then(Algo::parse) else {
        return c;
    };
    let mut cat = Vec::new();
    for p in used {
        let Some(raw) = p
            .checksum
            .get(algo.name())
            .and_then(|v| base64_simd::STANDARD.decode_to_vec(v).ok())
        else {
            return Checksum::default();
        };
        cat.extend_from_slice(&raw);
    }
    let v = format!("{}-{}", checksum::b64(&algo.digest(&cat)), used.len());
    algo.set(&mut c, Some(v));
    c.checksum_type = Some(ChecksumType::from_static(ChecksumType::COMPOSITE));
    c
}

#[allow(clippy::too_many_arguments)]
fn complete(
    fs: &FileSystem,
    cred: &Credentials,
    bucket: &str,
    key_s: &str,
    id: &str,
    key: &KeyPath,
    asked: &[(i32, String)],
    full: Checksum,
) -> S3Result<String> {
    let up = load(fs, bucket, id, key_s)?;
    let Manifest {
        info,
        meta: meta_x,
        parts,
    } = read_manifest(fs, cred, &up)?;
    validate_parts(asked, &parts)?;
    // Fail before linking the parts if the name cannot be published.
    if let Some(p) = ns::walk(fs, cred, up.vol.root, key.parents())? {
        if p.kind != nitrofs_core_fs::FileType::Directory {
            return Err(fs_error(FsError::NotDir));
        }
    }
    let used: Vec<&PartRecord> = asked.iter().filter_map(|(n, _)| parts.get(n)).collect();
    let mut md5s = Vec::with_capacity(used.len());
    for p in &used {
        md5s.push(
            meta::parse_md5_etag(&p.md5).ok_or_else(|| crate::error::internal("bad part md5"))?,
        );
    }
    let etag = meta::multipart_etag(&md5s);
    let checksum = final_checksum(full, info.algo.as_deref(), &used);
    let target = fs
        .create_detached(cred, up.vol.id, info.mode, DetachedKind::Transient)
        .map_err(fs_error)?;
    let inos: Vec<InodeId> = used.iter().map(|p| p.ino).collect();
    let attr = match fs.concat_detached(cred, target.ino, &inos) {
        Ok(a) => a,
        Err(e) => {
            let _ = fs.discard_detached(target.ino);
            return Err(fs_error(e));
        }
    };
    // Object metadata from the manifest, minus the upload's own records.
    let mut stored = Stored::from_xattrs(&meta_x).meta;
    stored.checksum = checksum;
    let mut x = stored.to_xattrs();
    x.extend(meta::etag_xattrs(&etag, &attr));
    let published = fs.publish(cred, target.ino, up.vol.root, &key.components, &x);
    if let Err(e) = published {
        let _ = fs.discard_detached(target.ino);
        let _ = purge(fs, up.vol.root, id);
        return Err(fs_error(e));
    }
    if let Err(e) = purge(fs, up.vol.root, id) {
        tracing::warn!(upload = id, error = %e, "completed upload left state behind");
    }
    Ok(etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(size: u64, md5: &str) -> PartRecord {
        PartRecord {
            ino: 1,
            md5: md5.into(),
            size,
            modified: (0, 0),
            checksum: BTreeMap::new(),
        }
    }

    #[test]
    fn completion_validates_order_existence_etags_and_sizes() {
        let mut parts = BTreeMap::new();
        parts.insert(1, rec(MIN_PART, "aa"));
        parts.insert(2, rec(10, "bb"));
        parts.insert(3, rec(MIN_PART - 1, "cc"));
        let ok = [(1, "aa".to_string()), (2, "bb".to_string())];
        assert!(validate_parts(&ok, &parts).is_ok());
        let code = |asked: &[(i32, String)]| {
            validate_parts(asked, &parts)
                .unwrap_err()
                .code()
                .as_str()
                .to_string()
        };
        assert_eq!(
            code(&[(2, "bb".into()), (1, "aa".into())]),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(&[(1, "aa".into()), (1, "aa".into())]),
            "InvalidPartOrder"
        );
        assert_eq!(code(&[(1, "aa".into()), (4, "dd".into())]), "InvalidPart");
        assert_eq!(code(&[(1, "zz".into())]), "InvalidPart");
        assert_eq!(
            code(&[(3, "cc".into()), (2, "bb".into())]),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(&[(2, "bb".into()), (3, "cc".into())]),
            "EntityTooSmall"
        );
    }

    #[test]
    fn a_composite_checksum_needs_every_part_and_carries_the_count() {
        let mut a = rec(1, "aa");
        a.checksum
            .insert("CRC32".into(), checksum::b64(&Algo::Crc32.digest(b"a")));
        let mut b = rec(1, "bb");
        b.checksum
            .insert("CRC32".into(), checksum::b64(&Algo::Crc32.digest(b"b")));
        let c = final_checksum(Checksum::default(), Some("CRC32"), &[&a, &b]);
        assert!(c.checksum_crc32.as_deref().unwrap().ends_with("-2"));
        assert_eq!(c.checksum_type.unwrap().as_str(), "COMPOSITE");
        let none = final_checksum(Checksum::default(), Some("CRC32"), &[&a, &rec(1, "cc")]);
        assert!(none.checksum_crc32.is_none());
    }
}
