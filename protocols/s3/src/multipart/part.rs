//! UploadPart and UploadPartCopy: each part streams (or is copied) into
//! its own detached file, then is recorded in the manifest.

use super::*;

impl NitroS3 {
    pub(crate) async fn upload_part_impl(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let cred = self.cred(&req)?;
        let S3Request {
            input,
            headers,
            trailing_headers,
            ..
        } = req;
        check_part_number(input.part_number)?;
        let expect = Expect::from_request(
            &headers,
            input.content_md5.as_ref(),
            checksum_of(
                input.checksum_crc32,
                input.checksum_crc32c,
                input.checksum_crc64nvme,
                input.checksum_sha1,
                input.checksum_sha256,
            ),
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        )?;
        let (bucket, key, id) = (input.bucket, input.key, input.upload_id);
        let c2 = cred.clone();
        let id2 = id.clone();
        let (manifest, ino) = ns::blocking(&self.fs, move |fs| {
            let up = load(fs, &bucket, &id2, &key)?;
            let part = fs
                .create_detached(
                    &c2,
                    up.vol.id,
                    0o600,
                    DetachedKind::Upload(id2.as_bytes().to_vec()),
                )
                .map_err(fs_error)?;
            Ok((up.manifest, part.ino))
        })
        .await?;
        let n = input.part_number;
        let c2 = cred.clone();
        let upload = body::Upload::new(input.body, input.content_length, expect, trailing_headers);
        let result = body::write_body(
            &self.fs,
            &cred,
            body::Target::File(ino),
            upload,
            move |fs, _, w, verified| {
                let rec = PartRecord {
                    ino,
                    md5: meta::hex(&w.md5),
                    size: w.size,
                    modified: now_pair(),
                    checksum: part_checksums(&verified),
                };
                record_part(fs, &c2, manifest, n, &rec)?;
                Ok((rec.md5, verified))
            },
        )
        .await;
        let (etag, c) = match result {
            Ok(x) => x,
            Err(e) => {
                body::discard_file(&self.fs, ino).await;
                return Err(e);
            }
        };
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..UploadPartOutput::default()
        }))
    }

    pub(crate) async fn upload_part_copy_impl(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        check_part_number(input.part_number)?;
        let n = input.part_number;
        let range = match &input.copy_source_range {
            Some(r) => Some(parse_copy_range(r)?),
            None => None,
        };
        let c2 = cred.clone();
        let (ino, rec) = ns::blocking(&self.fs, move |fs| {
            let src = source(
                fs,
                &c2,
                &input.copy_source,
                SourceConditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )?;
            let (start, end) = match range {
                None => (0, src.found.size),
                Some((a, b)) if a <= b && b < src.found.size => (a, b + 1),
                Some(_) => {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!(
                            "Range specified is not valid for source object of size: {}",
                            src.found.size
                        ),
                    ))
                }
            };
            let up = load(fs, &input.bucket, &input.upload_id, &input.key)?;
            let part = fs
                .create_detached(
                    &c2,
                    up.vol.id,
                    0o600,
                    DetachedKind::Upload(input.upload_id.as_bytes().to_vec()),
                )
                .map_err(fs_error)?;
            let r = body::copy_range(
                fs,
                &c2,
                src.found.attr.ino,
                start,
                end,
                part.ino,
                Expect::default().hasher(),
            )
            .and_then(|w| {
                let rec = PartRecord {
                    ino: part.ino,
                    md5: meta::hex(&w.md5),
                    size: w.size,
                    modified: now_pair(),
                    checksum: BTreeMap::new(),
                };
                record_part(fs, &c2, up.manifest, n, &rec)?;
                Ok(rec)
            });
            match r {
                Ok(rec) => Ok((part.ino, rec)),
                Err(e) => {
                    let _ = fs.discard_detached(part.ino);
                    Err(e)
                }
            }
        })
        .await?;
        let _ = ino;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(rec.md5)),
                last_modified: Some(time_of(rec.modified)),
                ..CopyPartResult::default()
            }),
            ..UploadPartCopyOutput::default()
        }))
    }
}

/// Parses `x-amz-copy-source-range: bytes=first-last`.
fn parse_copy_range(r: &str) -> S3Result<(u64, u64)> {
    let bad = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last",
        )
    };
    let (a, b) = r
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let a = a.trim().parse::<u64>().map_err(|_| bad())?;
    let b = b.trim().parse::<u64>().map_err(|_| bad())?;
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges_parse_inclusive_bounds() {
        assert_eq!(parse_copy_range("bytes=0-9").unwrap(), (0, 9));
        assert!(parse_copy_range("bytes=-9").is_err());
        assert!(parse_copy_range("0-9").is_err());
    }
}
