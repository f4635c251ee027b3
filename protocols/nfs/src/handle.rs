//! NFS file handles: `version | volume | inode | generation`, 17 bytes,
//! stable across server restarts (no boot time, no server state).
//!
//! The generation makes a handle to a deleted object stale even if its
//! inode number were ever seen again.

use crate::error::nfsstat;
use nfs3_types::nfs3::{nfs_fh3, nfsstat3};
use nfs3_types::xdr_codec::Opaque;
use nitrofs_core_fs::{Attr, FileSystem, InodeId, VolumeId};

/// Format version of the handle layout below. Bump it (and keep decoding
/// the old one) if the layout ever changes.
pub const HANDLE_VERSION: u8 = 1;
/// Encoded handle length.
pub const HANDLE_LEN: usize = 1 + 4 + 8 + 4;

/// What a file handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHandle {
    /// Volume the object lives in.
    pub volume: VolumeId,
    /// Inode number.
    pub ino: InodeId,
    /// Inode generation.
    pub generation: u32,
}

impl FileHandle {
    /// The handle of an object.
    pub fn of(attr: &Attr) -> Self {
        Self {
            volume: attr.volume,
            ino: attr.ino,
            generation: attr.generation,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; HANDLE_LEN] {
        let mut out = [0u8; HANDLE_LEN];
        out[0] = HANDLE_VERSION;
        out[1..5].copy_from_slice(&self.volume.to_be_bytes());
        out[5..13].copy_from_slice(&self.ino.to_be_bytes());
        out[13..17].copy_from_slice(&self.generation.to_be_bytes());
        out
    }

    /// As an NFS `nfs_fh3`.
    pub fn to_nfs(&self) -> nfs_fh3 {
        nfs_fh3 {
            data: Opaque::owned(self.encode().to_vec()),
        }
    }

    /// Parses a handle a client sent; anything but a well-formed current
    /// handle is `NFS3ERR_BADHANDLE`.
    pub fn decode(bytes: &[u8]) -> Result<Self, nfsstat3> {
        let raw: &[u8; HANDLE_LEN] = bytes.try_into().map_err(|_| nfsstat3::NFS3ERR_BADHANDLE)?;
        let [version, v0, v1, v2, v3, i0, i1, i2, i3, i4, i5, i6, i7, g0, g1, g2, g3] = *raw;
        if version != HANDLE_VERSION {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        Ok(Self {
            volume: u32::from_be_bytes([v0, v1, v2, v3]),
            ino: u64::from_be_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
            generation: u32::from_be_bytes([g0, g1, g2, g3]),
        })
    }

    /// The object's current attributes; `NFS3ERR_STALE` if it is gone.
    pub fn resolve(&self, fs: &FileSystem) -> Result<Attr, nfsstat3> {
        fs.resolve_handle(self.volume, self.ino, self.generation)
            .map_err(|e| nfsstat(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trips_through_its_wire_form() {
        let h = FileHandle {
            volume: 7,
            ino: 0x0102_0304_0506_0708,
            generation: 0xdead_beef,
        };
        let wire = h.encode();
        assert_eq!(wire.len(), HANDLE_LEN);
        assert_eq!(wire[0], HANDLE_VERSION);
        assert_eq!(FileHandle::decode(&wire), Ok(h));
        assert_eq!(FileHandle::decode(&h.to_nfs().data), Ok(h));
    }

    #[test]
    fn wrong_length_or_version_is_a_bad_handle() {
        let wire = FileHandle {
            volume: 1,
            ino: 2,
            generation: 3,
        }
        .encode();
        assert_eq!(FileHandle::decode(&[]), Err(nfsstat3::NFS3ERR_BADHANDLE));
        assert_eq!(
            FileHandle::decode(&wire[..16]),
            Err(nfsstat3::NFS3ERR_BADHANDLE)
        );
        let mut long = wire.to_vec();
        long.push(0);
        assert_eq!(FileHandle::decode(&long), Err(nfsstat3::NFS3ERR_BADHANDLE));
        let mut other = wire;
        other[0] = 2;
        assert_eq!(FileHandle::decode(&other), Err(nfsstat3::NFS3ERR_BADHANDLE));
    }

    #[test]
    fn garbage_handles_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..80 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = FileHandle::decode(&bytes);
        }
    }
}
