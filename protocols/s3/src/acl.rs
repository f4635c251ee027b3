//! S3 ACLs mapped onto POSIX permissions.
//!
//! There is one permission model, POSIX mode bits and POSIX.1e ACLs
//! checked by core-fs for every request with the identity's uid, gid and
//! groups; S3 ACLs are a view of the mode and a way to change it:
//!
//! | S3 | POSIX |
//! |---|---|
//! | owner (`CanonicalUser`, id = uid as decimal) with `FULL_CONTROL` | the file's (or bucket root directory's) owner |
//! | group grant (`CanonicalUser`, id `gid:<gid>`) `READ` / `WRITE` | group `r` / `w` bits |
//! | `AllUsers` (or `AuthenticatedUsers`) `READ` / `WRITE` | other `r` / `w` bits — "all users" are all identities of this server; unsigned requests also get them (as `nobody`) for reads in a public bucket only |
//!
//! A bucket is public-read (unsigned reads allowed, see [`crate::public`])
//! after the canned ACL `public-read` or `public-read-write`; other canned
//! ACLs, and ACL documents without an `AllUsers` `READ` grant, make it
//! private again. GetBucketAcl shows `AllUsers` `READ` while it is public.
//!
//! Canned ACLs set the mode (objects / buckets): `private` 0600 / 0700,
//! `public-read` and `authenticated-read` 0644 / 0755, `public-read-write`
//! 0666 / 0777, `bucket-owner-read` 0640 / 0750,
//! `bucket-owner-full-control` 0660 / 0770. Without an ACL a new object is
//! 0644 and a new directory 0755, as a client with umask 022 creates them
//! over NFS. Only the owner (or root) may change an ACL (chmod rules).
//! Grants to other specific users are refused with `NotImplemented`: they
//! are POSIX ACL entries (`nitrofs admin acl`). On an object that has an
//! ACL the group bits are its mask, so a canned ACL changes the mask, as
//! chmod does.

use nitrofs_core_fs::Attr;
use s3s::dto::{AccessControlPolicy, Grant, Grantee, Owner, Permission, Type};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Mode of a new object without an ACL.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a new directory without an ACL.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTH_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The owner of an object or bucket as S3 shows it.
pub fn owner(uid: u32) -> Owner {
    Owner {
        id: Some(uid.to_string()),
        display_name: Some(if uid == 0 {
            "root".to_string()
        } else {
            format!("uid {uid}")
        }),
    }
}

/// The mode for a canned ACL (`dir` for buckets and directory markers).
pub fn canned_mode(acl: Option<&str>, dir: bool) -> S3Result<u32> {
    let (file, directory) = match acl {
        None => (DEFAULT_FILE_MODE, DEFAULT_DIR_MODE),
        Some("private") => (0o600, 0o700),
        Some("public-read" | "authenticated-read") => (0o644, 0o755),
        Some("public-read-write") => (0o666, 0o777),
        Some("bucket-owner-read") => (0o640, 0o750),
        Some("bucket-owner-full-control") => (0o660, 0o770),
        Some(_) => {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Unsupported canned ACL",
            ))
        }
    };
    Ok(if dir { directory } else { file })
}

fn grant(grantee: Grantee, permission: &'static str) -> Grant {
    Grant {
        grantee: Some(grantee),
        permission: Some(Permission::from_static(permission)),
    }
}

fn user(id: String, name: String) -> Grantee {
    Grantee {
        display_name: Some(name),
        email_address: None,
        id: Some(id),
        type_: Type::from_static(Type::CANONICAL_USER),
        uri: None,
    }
}

fn group(uri: &str) -> Grantee {
    Grantee {
        display_name: None,
        email_address: None,
        id: None,
        type_: Type::from_static(Type::GROUP),
        uri: Some(uri.to_string()),
    }
}

/// The ACL of a file or directory, derived from its mode.
pub fn policy(attr: &Attr) -> AccessControlPolicy {
    let o = owner(attr.uid);
    let mut grants = vec![grant(
        user(
            attr.uid.to_string(),
            o.display_name.clone().unwrap_or_default(),
        ),
        Permission::FULL_CONTROL,
    )];
    let gid = || user(format!("gid:{}", attr.gid), format!("gid {}", attr.gid));
    if attr.mode & 0o040 != 0 {
        grants.push(grant(gid(), Permission::READ));
    }
    if attr.mode & 0o020 != 0 {
        grants.push(grant(gid(), Permission::WRITE));
    }
    if attr.mode & 0o004 != 0 {
        grants.push(grant(group(ALL_USERS), Permission::READ));
    }
    if attr.mode & 0o002 != 0 {
        grants.push(grant(group(ALL_USERS), Permission::WRITE));
    }
    AccessControlPolicy {
        grants: Some(grants),
        owner: Some(o),
    }
}

/// The ACL of a bucket: its root directory's, plus `AllUsers` `READ` when
/// it is public (see [`crate::public`]).
pub fn bucket_policy(attr: &Attr, public: bool) -> AccessControlPolicy {
    let mut p = policy(attr);
    if public && !grants_all_users_read(&p) {
        p.grants
            .get_or_insert_with(Vec::new)
            .push(grant(group(ALL_USERS), Permission::READ));
    }
    p
}

/// Whether an ACL lets `AllUsers` read.
fn grants_all_users_read(p: &AccessControlPolicy) -> bool {
    p.grants.iter().flatten().any(|g| {
        g.grantee.as_ref().and_then(|x| x.uri.as_deref()) == Some(ALL_USERS)
            && matches!(
                g.permission.as_ref().map(|p| p.as_str()),
                Some(Permission::READ | Permission::FULL_CONTROL)
            )
    })
}

/// The mode an ACL document asks for, keeping the owner's bits of `attr`
/// (and the execute bits of directories).
pub fn mode_from_policy(p: &AccessControlPolicy, attr: &Attr, dir: bool) -> S3Result<u32> {
    let mut mode = attr.mode & 0o700;
    for g in p.grants.iter().flatten() {
        let Some(grantee) = &g.grantee else { continue };
        let perm = g
            .permission
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or_default();
        let (read, write) = match perm {
            Permission::READ => (true, false),
            Permission::WRITE => (false, true),
            Permission::FULL_CONTROL => (true, true),
            Permission::READ_ACP | Permission::WRITE_ACP => continue,
            _ => {
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedACLError,
                    "Unknown permission in the ACL",
                ))
            }
        };
        let x = if dir { 0o1 } else { 0 };
        let bits = (u32::from(read) * 0o4) | (u32::from(write) * 0o2);
        let bits = if bits & 0o4 != 0 { bits | x } else { bits };
        if let Some(uri) = &grantee.uri {
            if uri == ALL_USERS || uri == AUTH_USERS {
                mode |= bits;
                continue;
            }
        }
        match grantee.id.as_deref() {
            Some(id) if id == attr.uid.to_string() => {}
            Some(id) if id == format!("gid:{}", attr.gid) => mode |= bits << 3,
            _ => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "Grants to other users or groups need POSIX ACL entries, which are not supported yet; \
                     grant to the owner, the file's group (gid:<gid>) or AllUsers",
                ))
            }
        }
    }
    Ok(mode)
}

/// Refuses `x-amz-grant-*` headers (no mapping onto mode bits yet).
pub fn refuse_grant_headers(any: bool) -> S3Result<()> {
    if any {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "x-amz-grant-* headers are not supported; use a canned ACL or an ACL document",
        ));
    }
    Ok(())
}

impl crate::NitroS3 {
    pub(crate) async fn get_object_acl_impl(
        &self,
        req: s3s::S3Request<s3s::dto::GetObjectAclInput>,
    ) -> S3Result<s3s::S3Response<s3s::dto::GetObjectAclOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = crate::key::parse_key(&input.key).map_err(crate::error::key_error)?;
        let attr = crate::ns::blocking(&self.fs, move |fs| {
            let vol = crate::ns::volume(fs, &input.bucket)?;
            Ok(crate::object::find(fs, &cred, vol.root, &key)?.attr)
        })
        .await?;
        let p = policy(&attr);
        Ok(s3s::S3Response::new(s3s::dto::GetObjectAclOutput {
            grants: p.grants,
            owner: p.owner,
            request_charged: None,
        }))
    }

    pub(crate) async fn put_object_acl_impl(
        &self,
        req: s3s::S3Request<s3s::dto::PutObjectAclInput>,
    ) -> S3Result<s3s::S3Response<s3s::dto::PutObjectAclOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let key = crate::key::parse_key(&input.key).map_err(crate::error::key_error)?;
        let canned = input.acl.map(|a| a.as_str().to_string());
        let doc = input.access_control_policy;
        crate::ns::blocking(&self.fs, move |fs| {
            let vol = crate::ns::volume(fs, &input.bucket)?;
            let attr = crate::ns::object(fs, &cred, vol.root, &key)?;
            chmod_for_acl(fs, &cred, &attr, canned.as_deref(), doc.as_ref(), key.dir)
        })
        .await?;
        Ok(s3s::S3Response::new(s3s::dto::PutObjectAclOutput::default()))
    }

    pub(crate) async fn get_bucket_acl_impl(
        &self,
        req: s3s::S3Request<s3s::dto::GetBucketAclInput>,
    ) -> S3Result<s3s::S3Response<s3s::dto::GetBucketAclOutput>> {
        let _ = self.cred(&req)?;
        let bucket = req.input.bucket;
        let (attr, public) = crate::ns::blocking(&self.fs, move |fs| {
            let vol = crate::ns::volume(fs, &bucket)?;
            let attr = fs.getattr(vol.root).map_err(crate::error::fs_error)?;
            let public = crate::public::is_public(fs, vol.root).map_err(crate::error::fs_error)?;
            Ok((attr, public))
        })
        .await?;
        let p = bucket_policy(&attr, public);
        Ok(s3s::S3Response::new(s3s::dto::GetBucketAclOutput {
            grants: p.grants,
            owner: p.owner,
        }))
    }

    pub(crate) async fn put_bucket_acl_impl(
        &self,
        req: s3s::S3Request<s3s::dto::PutBucketAclInput>,
    ) -> S3Result<s3s::S3Response<s3s::dto::PutBucketAclOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let canned = input.acl.map(|a| a.as_str().to_string());
        let doc = input.access_control_policy;
        crate::ns::blocking(&self.fs, move |fs| {
            let vol = crate::ns::volume(fs, &input.bucket)?;
            let attr = fs.getattr(vol.root).map_err(crate::error::fs_error)?;
            chmod_for_acl(fs, &cred, &attr, canned.as_deref(), doc.as_ref(), true)?;
            // The mode changed, so the caller is the owner (or root): the
            // public flag follows the ACL (see `crate::public`).
            let public = match (canned.as_deref(), doc.as_ref()) {
                (Some(c), _) => Some(crate::public::canned_is_public(c)),
                (None, Some(d)) if !grants_all_users_read(d) => Some(false),
                (None, _) => None,
            };
            if let Some(public) = public {
                crate::public::set_public(fs, &cred, vol.root, public)
                    .map_err(crate::error::fs_error)?;
            }
            Ok(())
        })
        .await?;
        Ok(s3s::S3Response::new(s3s::dto::PutBucketAclOutput::default()))
    }
}

/// Applies a canned ACL or an ACL document as a chmod (owner or root only,
/// as core-fs enforces).
fn chmod_for_acl(
    fs: &nitrofs_core_fs::FileSystem,
    cred: &nitrofs_core_fs::Credentials,
    attr: &Attr,
    canned: Option<&str>,
    doc: Option<&AccessControlPolicy>,
    dir: bool,
) -> S3Result<()> {
    let mode = match (canned, doc) {
        (Some(c), None) => canned_mode(Some(c), dir)?,
        (None, Some(d)) => mode_from_policy(d, attr, dir)?,
        (Some(_), Some(_)) => {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "Specify either a canned ACL or an ACL document, not both",
            ))
        }
        (None, None) => {
            return Err(S3Error::with_message(
                S3ErrorCode::MissingSecurityHeader,
                "Your request was missing a required header: x-amz-acl or an ACL document",
            ))
        }
    };
    let set = nitrofs_core_fs::SetAttr {
        mode: Some(mode | (attr.mode & !0o777)),
        ..nitrofs_core_fs::SetAttr::default()
    };
    fs.setattr(cred, attr.ino, &set, None)
        .map_err(crate::error::fs_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrofs_core_fs::{FileType, Timestamp};

    fn attr(mode: u32) -> Attr {
        Attr {
            ino: 1,
            generation: 1,
            volume: 1,
            kind: FileType::Regular,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 0,
            used: 0,
            rdev: (0, 0),
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
        }
    }

    #[test]
    fn canned_acls_map_to_modes() {
        assert_eq!(canned_mode(Some("private"), false).unwrap(), 0o600);
        assert_eq!(canned_mode(Some("private"), true).unwrap(), 0o700);
        assert_eq!(canned_mode(Some("public-read"), false).unwrap(), 0o644);
        assert_eq!(canned_mode(None, false).unwrap(), 0o644);
        assert!(canned_mode(Some("bogus"), false).is_err());
    }

    #[test]
    fn the_acl_of_a_private_file_is_owner_full_control_only() {
        let p = policy(&attr(0o600));
        let grants = p.grants.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(
            grants[0].permission.as_ref().unwrap().as_str(),
            "FULL_CONTROL"
        );
        assert_eq!(p.owner.unwrap().id.as_deref(), Some("1000"));
    }

    #[test]
    fn other_read_shows_as_all_users_read_and_round_trips() {
        let a = attr(0o644);
        let p = policy(&a);
        assert!(p.grants.as_ref().unwrap().iter().any(|g| {
            g.grantee.as_ref().and_then(|x| x.uri.as_deref()) == Some(ALL_USERS)
                && g.permission.as_ref().map(|p| p.as_str()) == Some("READ")
        }));
        assert_eq!(mode_from_policy(&p, &a, false).unwrap(), 0o644);
    }

    #[test]
    fn grants_to_strangers_are_not_supported() {
        let a = attr(0o600);
        let p = AccessControlPolicy {
            grants: Some(vec![grant(
                user("4242".into(), "x".into()),
                Permission::READ,
            )]),
            owner: None,
        };
        assert!(mode_from_policy(&p, &a, false).is_err());
    }
}
