//! The frame every message travels in, whatever the backend.
//!
//! ```text
//! offset size field
//!      0    4 magic "NTF1"
//!      4    1 version (1)
//!      5    1 kind: 1 request, 2 response
//!      6    2 message id (the protocol's numbered message, see its wire module)
//!      8    2 status (responses; 0 in requests)
//!     10    2 reserved (0)
//!     12    8 request id (chosen by the caller, echoed in the response)
//!     20    4 header length (a small encoded struct: keys, parameters)
//!     24    4 payload length (bulk bytes: values, read straight into a buffer)
//! ```
//! All integers little-endian. A frame whose magic, version, kind or lengths
//! are wrong is a protocol violation: the connection is closed, nothing else.

use crate::TransportError;

/// Length of the fixed frame header.
pub const FRAME_LEN: usize = 28;
/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"NTF1";
/// The frame format version.
pub const VERSION: u8 = 1;

/// Whether a frame asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A request from a client.
    Request = 1,
    /// The answer to the request with the same id.
    Response = 2,
}

/// The decoded fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Request or response.
    pub kind: FrameKind,
    /// The protocol's message id.
    pub msg: u16,
    /// Outcome (responses).
    pub status: u16,
    /// Correlates a response with its request.
    pub req_id: u64,
    /// Bytes of the encoded header that follow.
    pub header_len: u32,
    /// Bytes of payload after the header.
    pub payload_len: u32,
}

/// Size limits a peer must respect; larger claims close the connection
/// before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded header.
    pub max_header: u32,
    /// Largest payload of one frame.
    pub max_payload: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header: 1024 * 1024,
            max_payload: 128 * 1024 * 1024,
        }
    }
}

impl FrameHeader {
    /// Encodes the header into its 28 bytes.
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[6..8].copy_from_slice(&self.msg.to_le_bytes());
        b[8..10].copy_from_slice(&self.status.to_le_bytes());
        b[12..20].copy_from_slice(&self.req_id.to_le_bytes());
        b[20..24].copy_from_slice(&self.header_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
        b
    }

    /// Decodes and validates a frame header against `limits`.
    pub fn decode(b: &[u8; FRAME_LEN], limits: &Limits) -> Result<Self, TransportError> {
        if b[0..4] != MAGIC {
            return Err(TransportError::Protocol("bad frame magic".into()));
        }
        if b[4] != VERSION {
            return Err(TransportError::Protocol(format!(
                "unsupported frame version {}",
                b[4]
            )));
        }
        let kind = match b[5] {
            1 => FrameKind::Request,
            2 => FrameKind::Response,
            k => return Err(TransportError::Protocol(format!("bad frame kind {k}"))),
        };
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[12..20]);
        let h = FrameHeader {
            kind,
            msg: u16_at(6),
            status: u16_at(8),
            req_id: u64::from_le_bytes(id),
            header_len: u32_at(20),
            payload_len: u32_at(24),
        };
        if h.header_len > limits.max_header {
            return Err(TransportError::Protocol(format!(
                "frame header of {} bytes exceeds the limit of {}",
                h.header_len, limits.max_header
            )));
        }
        if h.payload_len > limits.max_payload {
            return Err(TransportError::Protocol(format!(
                "frame payload of {} bytes exceeds the limit of {}",
                h.payload_len, limits.max_payload
            )));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader {
            kind: FrameKind::Response,
            msg: 0x1234,
            status: 7,
            req_id: u64::MAX - 3,
            header_len: 99,
            payload_len: 4096,
        }
    }

    #[test]
    fn header_roundtrips() {
        let h = sample();
        assert_eq!(
            FrameHeader::decode(&h.encode(), &Limits::default()).ok(),
            Some(h)
        );
    }

    #[test]
    fn every_corrupted_fixed_field_is_rejected() {
        let good = sample().encode();
        for (i, v) in [(0usize, b'X'), (4, 9), (5, 0), (5, 3)] {
            let mut b = good;
            b[i] = v;
            assert!(
                FrameHeader::decode(&b, &Limits::default()).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn lengths_over_the_limits_are_rejected_before_allocation() {
        let limits = Limits {
            max_header: 64,
            max_payload: 1024,
        };
        let mut h = sample();
        h.header_len = 65;
        h.payload_len = 0;
        assert!(FrameHeader::decode(&h.encode(), &limits).is_err());
        h.header_len = 64;
        h.payload_len = 1025;
        assert!(FrameHeader::decode(&h.encode(), &limits).is_err());
        h.payload_len = 1024;
        assert!(FrameHeader::decode(&h.encode(), &limits).is_ok());
    }
}
