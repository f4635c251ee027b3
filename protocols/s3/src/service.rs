//! The `s3s::S3` trait: one line per operation, each handled in the file
//! of its family (bucket, object, copy, list, multipart, acl). Operations
//! not listed here answer `NotImplemented` (s3s's default).

use crate::NitroS3;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

#[async_trait::async_trait]
impl S3 for NitroS3 {
    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListBuckets"))]
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.list_buckets_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CreateBucket"))]
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.create_bucket_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "HeadBucket"))]
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.head_bucket_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteBucket"))]
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketLocation"))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.get_bucket_location_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObject"))]
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.put_object_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObject"))]
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "HeadObject"))]
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head_object_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteObject"))]
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_object_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteObjects"))]
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        crate::xmlcheck::refuse_marked(&req.extensions)?;
        self.delete_objects_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CopyObject"))]
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy_object_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListObjects"))]
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_objects_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListObjectsV2"))]
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_objects_v2_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CreateMultipartUpload"))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_multipart_upload_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "UploadPart"))]
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.upload_part_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "UploadPartCopy"))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.upload_part_copy_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CompleteMultipartUpload"))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        crate::xmlcheck::refuse_marked(&req.extensions)?;
        self.complete_multipart_upload_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "AbortMultipartUpload"))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListParts"))]
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.list_parts_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListMultipartUploads"))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectAcl"))]
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.get_object_acl_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectAcl"))]
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.put_object_acl_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketAcl"))]
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.get_bucket_acl_impl(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketAcl"))]
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.put_bucket_acl_impl(req).await
    }
}
