//! The record two sides exchange to connect their RC queue pairs.
//!
//! ```text
//! offset size field
//!      0    4 magic "NVE1"
//!      4    1 version (1)
//!      5    1 path MTU (ibv_mtu: 1 = 256 B .. 5 = 4096 B)
//!      6    2 LID (0 on RoCE)
//!      8    4 queue pair number (24 bits)
//!     12    4 initial packet sequence number (24 bits)
//!     16   16 GID (big-endian, as libibverbs holds it)
//! ```
//! Integers little-endian. Anything else is refused.

use super::VerbsError;

/// Length of an encoded [`Endpoint`].
pub const ENDPOINT_LEN: usize = 32;
const MAGIC: [u8; 4] = *b"NVE1";
const VERSION: u8 = 1;
const MAX_24: u32 = 0x00ff_ffff;

/// One side of an RC connection: what the peer needs to address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Largest path MTU this side supports (`ibv_mtu`, 1..=5).
    pub mtu: u8,
    /// Local identifier of the port (InfiniBand; 0 on RoCE).
    pub lid: u16,
    /// Queue pair number.
    pub qp_num: u32,
    /// First packet sequence number this side sends.
    pub psn: u32,
    /// Global identifier of the port (needed on RoCE).
    pub gid: [u8; 16],
}

impl Endpoint {
    /// The 32-byte wire form.
    pub fn encode(&self) -> [u8; ENDPOINT_LEN] {
        let mut b = [0u8; ENDPOINT_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.mtu;
        b[6..8].copy_from_slice(&self.lid.to_le_bytes());
        b[8..12].copy_from_slice(&self.qp_num.to_le_bytes());
        b[12..16].copy_from_slice(&self.psn.to_le_bytes());
        b[16..32].copy_from_slice(&self.gid);
        b
    }

    /// Decodes and validates a record.
    pub fn decode(b: &[u8]) -> Result<Self, VerbsError> {
        let b: &[u8; ENDPOINT_LEN] = b.try_into().map_err(|_| {
            VerbsError::Protocol(format!("{} bytes, expected {ENDPOINT_LEN}", b.len()))
        })?;
        if b[0..4] != MAGIC {
            return Err(VerbsError::Protocol("bad magic".into()));
        }
        if b[4] != VERSION {
            return Err(VerbsError::Protocol(format!(
                "unsupported version {}",
                b[4]
            )));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[16..32]);
        let e = Endpoint {
            mtu: b[5],
            lid: u16::from_le_bytes([b[6], b[7]]),
            qp_num: u32_at(8),
            psn: u32_at(12),
            gid,
        };
        if !(1..=5).contains(&e.mtu) {
            return Err(VerbsError::Protocol(format!("bad path MTU {}", e.mtu)));
        }
        if e.qp_num > MAX_24 || e.psn > MAX_24 {
            return Err(VerbsError::Protocol("QP number or PSN over 24 bits".into()));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Endpoint {
        Endpoint {
            mtu: 5,
            lid: 0x1234,
            qp_num: 0x00ab_cdef,
            psn: 0x0012_3456,
            gid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        }
    }

    #[test]
    fn endpoint_roundtrips() {
        let e = sample();
        let b = e.encode();
        assert_eq!(b.len(), ENDPOINT_LEN);
        assert_eq!(&b[0..4], b"NVE1");
        assert_eq!(Endpoint::decode(&b).ok(), Some(e));
    }

    #[test]
    fn bad_magic_version_and_fields_are_refused() {
        let good = sample().encode();
        for (i, v) in [
            (0usize, b'X'),
            (3, b'2'),
            (4, 2),
            (5, 0),
            (5, 6),
            (11, 1),
            (15, 1),
        ] {
            let mut b = good;
            b[i] = v;
            assert!(
                matches!(Endpoint::decode(&b), Err(VerbsError::Protocol(_))),
                "byte {i} = {v}"
            );
        }
    }

    #[test]
    fn short_or_long_input_is_refused() {
        let good = sample().encode();
        for len in [0, 4, ENDPOINT_LEN - 1] {
            assert!(Endpoint::decode(&good[..len]).is_err(), "{len} bytes");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert!(Endpoint::decode(&long).is_err());
    }
}
