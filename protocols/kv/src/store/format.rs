//! The on-disk record of one value: one chunk per value.
//!
//! ```text
//! offset size
//!      0    4  magic b"NKV1"
//!      4    2  version (1)
//!      6    2  flags (none defined; a set bit means a newer writer)
//!      8    4  key_len
//!     12    8  value_len
//!     20    8  expires_at_ms (Unix millis, 0 = never)
//!     28    4  value_crc32c (over the value)
//!     32    4  header_crc32c (over these 36 bytes with this field zeroed,
//!              then the key)
//!     36       key, then value
//! ```
//!
//! All integers little-endian. Recovery reads only the header and key; the
//! value's checksum is verified when it is read.

use crc_fast::{CrcAlgorithm, Digest};

/// The record's magic bytes.
pub(crate) const MAGIC: [u8; 4] = *b"NKV1";
/// The version this build writes and reads.
pub(crate) const VERSION: u16 = 1;
/// Bytes of the fixed header.
pub(crate) const HEADER_LEN: usize = 36;
/// Where `header_crc32c` sits in the header.
const HEADER_CRC_AT: usize = 32;

/// CRC-32C (Castagnoli) of `data`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// The fixed header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// Length of the key that follows the header.
    pub key_len: u32,
    /// Length of the value that follows the key.
    pub value_len: u64,
    /// Expiry in Unix millis, 0 = never.
    pub expires_at_ms: u64,
    /// CRC-32C of the value.
    pub value_crc: u32,
}

/// Why a header was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Torn or damaged: the record is garbage and may be removed.
    Invalid(String),
    /// Written by a newer build: leave it alone.
    Unsupported(String),
}

impl RecordHeader {
    /// Offset of the value within the record.
    pub fn value_offset(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.key_len)
    }

    /// Total bytes of the record.
    pub fn record_len(&self) -> u64 {
        self.value_offset().saturating_add(self.value_len)
    }

    /// The header followed by `key`, checksummed: the first write of a
    /// record (the value is written after it, without a copy).
    pub fn encode_with_key(&self, key: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER_LEN + key.len());
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.extend_from_slice(&self.key_len.to_le_bytes());
        buf.extend_from_slice(&self.value_len.to_le_bytes());
        buf.extend_from_slice(&self.expires_at_ms.to_le_bytes());
        buf.extend_from_slice(&self.value_crc.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        let crc = header_crc(&buf, key);
        buf[HEADER_CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(key);
        buf
    }

    /// Parses the fixed header (`raw` is at least [`HEADER_LEN`] bytes).
    /// The checksum needs the key too: check it with [`Self::verify`].
    pub fn decode(raw: &[u8]) -> Result<RecordHeader, DecodeError> {
        let Some(h) = raw.get(..HEADER_LEN) else {
            return Err(DecodeError::Invalid(format!(
                "header of {} bytes, need {HEADER_LEN}",
                raw.len()
            )));
        };
        if h[0..4] != MAGIC {
            return Err(DecodeError::Invalid("bad magic".into()));
        }
        let version = u16::from_le_bytes([h[4], h[5]]);
        if version != VERSION {
            return Err(DecodeError::Unsupported(format!(
                "record version {version}, this build reads {VERSION}"
            )));
        }
        let flags = u16::from_le_bytes([h[6], h[7]]);
        if flags != 0 {
            return Err(DecodeError::Unsupported(format!(
                "record flags {flags:#x} unknown"
            )));
        }
        Ok(RecordHeader {
            key_len: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            value_len: le_u64(&h[12..20]),
            expires_at_ms: le_u64(&h[20..28]),
            value_crc: u32::from_le_bytes([h[28], h[29], h[30], h[31]]),
        })
    }

    /// Checks the header checksum of `raw` (the header bytes as read) over
    /// the header and `key`.
    pub fn verify(raw: &[u8], key: &[u8]) -> bool {
        let Some(h) = raw.get(..HEADER_LEN) else {
            return false;
        };
        let mut zeroed = [0u8; HEADER_LEN];
        zeroed.copy_from_slice(h);
        let stored = u32::from_le_bytes([h[32], h[33], h[34], h[35]]);
        zeroed[HEADER_CRC_AT..].fill(0);
        header_crc(&zeroed, key) == stored
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// CRC-32C over a header (checksum field zeroed) then the key.
fn header_crc(header: &[u8], key: &[u8]) -> u32 {
    let mut d = Digest::new(CrcAlgorithm::Crc32Iscsi);
    d.update(&header[..HEADER_LEN]);
    d.update(key);
    // A CRC-32 digest's value fits in the low 32 bits.
    d.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordHeader {
        RecordHeader {
            key_len: 3,
            value_len: 5,
            expires_at_ms: 1_700_000_000_000,
            value_crc: crc32c(b"value"),
        }
    }

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let mut d = Digest::new(CrcAlgorithm::Crc32Iscsi);
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize() as u32, 0xe306_9283);
    }

    #[test]
    fn header_roundtrips_and_verifies_with_its_key() {
        let raw = header().encode_with_key(b"key");
        assert_eq!(raw.len(), HEADER_LEN + 3);
        assert_eq!(&raw[HEADER_LEN..], b"key");
        assert_eq!(RecordHeader::decode(&raw), Ok(header()));
        assert!(RecordHeader::verify(&raw, b"key"));
        assert!(!RecordHeader::verify(&raw, b"kez"));
        assert_eq!(header().value_offset(), 39);
        assert_eq!(header().record_len(), 44);
    }

    /// The layout is a stored format: pin it byte for byte.
    #[test]
    fn version_1_layout_is_stable() {
        let h = RecordHeader {
            key_len: 1,
            value_len: 2,
            expires_at_ms: 0,
            value_crc: 0x0403_0201,
        };
        let raw = h.encode_with_key(b"k");
        let fixture: [u8; 32] = [
            b'N', b'K', b'V', b'1', 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 1, 2, 3, 4,
        ];
        assert_eq!(raw[..32], fixture);
        let mut zeroed = raw[..HEADER_LEN].to_vec();
        zeroed[32..].fill(0);
        zeroed.push(b'k');
        assert_eq!(raw[32..36], crc32c(&zeroed).to_le_bytes());
    }

    #[test]
    fn damaged_headers_are_rejected() {
        let raw = header().encode_with_key(b"key");
        assert!(matches!(
            RecordHeader::decode(&raw[..10]),
            Err(DecodeError::Invalid(_))
        ));
        let mut bad = raw.clone();
        bad[0] = b'X';
        assert!(matches!(
            RecordHeader::decode(&bad),
            Err(DecodeError::Invalid(_))
        ));
        let mut flipped = raw.clone();
        flipped[14] ^= 1; // value_len
        assert!(RecordHeader::decode(&flipped).is_ok());
        assert!(!RecordHeader::verify(&flipped, b"key"));
        let mut newer = raw.clone();
        newer[4] = 2;
        assert!(matches!(
            RecordHeader::decode(&newer),
            Err(DecodeError::Unsupported(_))
        ));
        let mut flagged = raw;
        flagged[6] = 1;
        assert!(matches!(
            RecordHeader::decode(&flagged),
            Err(DecodeError::Unsupported(_))
        ));
    }
}
