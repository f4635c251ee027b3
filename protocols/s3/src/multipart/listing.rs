//! ListParts and ListMultipartUploads.

use super::*;

impl NitroS3 {
    pub(crate) async fn list_parts_impl(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input.part_number_marker.unwrap_or(0);
        let (b, k, id) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let (up_uid, info_algo, parts) = ns::blocking(&self.fs, move |fs| {
            let up = load(fs, &b, &id, &k)?;
            let m = read_manifest(fs, &cred, &up)?;
            Ok((up.entry.uid, m.info.algo, m.parts))
        })
        .await?;
        let mut out = Vec::new();
        let mut truncated = false;
        for (n, rec) in parts.range(marker.saturating_add(1)..) {
            if out.len() == max {
                truncated = true;
                break;
            }
            let mut c = Checksum::default();
            for (a, v) in &rec.checksum {
                if let Some(a) = Algo::parse(a) {
                    a.set(&mut c, Some(v.clone()));
                }
            }
            out.push(Part {
                part_number: Some(*n),
                e_tag: Some(ETag::Strong(rec.md5.clone())),
                size: i64::try_from(rec.size).ok(),
                last_modified: Some(time_of(rec.modified)),
                checksum_crc32: c.checksum_crc32,
                checksum_crc32c: c.checksum_crc32c,
                checksum_crc64nvme: c.checksum_crc64nvme,
                checksum_sha1: c.checksum_sha1,
                checksum_sha256: c.checksum_sha256,
            });
        }
        let next = out.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            parts: Some(out),
            owner: Some(acl::owner(up_uid)),
            initiator: Some(Initiator {
                id: Some(up_uid.to_string()),
                display_name: acl::owner(up_uid).display_name,
            }),
            checksum_algorithm: info_algo.map(ChecksumAlgorithm::from),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..ListPartsOutput::default()
        }))
    }

    pub(crate) async fn list_multipart_uploads_impl(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let bucket = input.bucket.clone();
        let mut all = ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            let (_, granted) = fs.access(&cred, vol.root, access::READ).map_err(fs_error)?;
            if granted & access::READ == 0 {
                return Err(fs_error(FsError::Access));
            }
            let x = fs
                .list_xattrs(&Credentials::root(), vol.root)
                .map_err(fs_error)?;
            let mut out = Vec::new();
            for (name, value) in x {
                let Some(id) = name.strip_prefix(INDEX_PREFIX.as_bytes()) else {
                    continue;
                };
                let (Ok(id), Ok(e)) = (
                    String::from_utf8(id.to_vec()),
                    serde_json::from_slice::<IndexEntry>(&value),
                ) else {
                    continue;
                };
                out.push((e.key.clone(), e.initiated, id, e.uid));
            }
            Ok(out)
        })
        .await?;
        all.sort();
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone();
        let mut uploads = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        for (key, initiated, id, uid) in all {
            if !key.starts_with(&prefix) {
                continue;
            }
            let after_marker = match &id_marker {
                Some(m) if !key_marker.is_empty() => {
                    key > key_marker || (key == key_marker && id.as_str() > m.as_str())
                }
                _ => key_marker.is_empty() || key > key_marker,
            };
            if !after_marker {
                continue;
            }
            if let Some(d) = input.delimiter.as_deref().filter(|d| !d.is_empty()) {
                if let Some(i) = key[prefix.len()..].find(d) {
                    let cp = key[..prefix.len() + i + d.len()].to_string();
                    if prefixes.last() != Some(&cp) {
                        if uploads.len() + prefixes.len() == max {
                            truncated = true;
                            break;
                        }
                        prefixes.push(cp);
                    }
                    continue;
                }
            }
            if uploads.len() + prefixes.len() == max {
                truncated = true;
                break;
            }
            last = Some((key.clone(), id.clone()));
            uploads.push(MultipartUpload {
                key: Some(key),
                upload_id: Some(id),
                initiated: Some(time_of(initiated)),
                initiator: Some(Initiator {
                    id: Some(uid.to_string()),
                    display_name: acl::owner(uid).display_name,
                }),
                owner: Some(acl::owner(uid)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..MultipartUpload::default()
            });
        }
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            next_key_marker: truncated
                .then(|| last.as_ref().map(|l| l.0.clone()))
                .flatten(),
            next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(uploads),
            common_prefixes: (!prefixes.is_empty()).then(|| {
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix { prefix: Some(p) })
                    .collect()
            }),
            encoding_type: input.encoding_type,
            request_charged: None,
        }))
    }
}
