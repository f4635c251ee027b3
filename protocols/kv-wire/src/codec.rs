//! Little-endian header encoding with bounded decoding: every length is
//! checked against what is left and against a caller's maximum before
//! anything is allocated or sliced.

/// Why a header did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header ended before the field.
    #[error("header truncated at byte {0}")]
    Truncated(usize),
    /// A length field exceeds its limit.
    #[error("{field} of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Claimed length.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// Bytes left over after the last field.
    #[error("{0} unexpected trailing bytes")]
    Trailing(usize),
    /// A field holds a value it cannot have.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends fields to a header.
#[derive(Debug, Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// An empty header.
    pub fn new() -> Self {
        Self(Vec::with_capacity(64))
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Appends a u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a length-prefixed (u32) byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Lengths are bounded by the frame header limit, far below u32::MAX.
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// Appends fixed bytes without a length.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// The encoded header.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields from a header.
#[derive(Debug)]
pub struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    /// Starts reading `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// Reads a u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// Reads a u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads a bool (0 or 1).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("boolean")),
        }
    }
    /// Reads a length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len)
    }
    /// Reads a length-prefixed UTF-8 string of at most `max` bytes.
    pub fn str(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(field, max)?).map_err(|_| DecodeError::Invalid(field))
    }
    /// Reads `N` fixed bytes.
    pub fn raw<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.array()
    }
    /// Reads a count of at most `max` items, each at least `min_item` bytes,
    /// so a lying count cannot make the caller reserve memory.
    pub fn count(
        &mut self,
        field: &'static str,
        max: usize,
        min_item: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let left = self.b.len() - self.pos;
        if n > max || n.saturating_mul(min_item) > left {
            return Err(DecodeError::TooLong {
                field,
                len: n,
                max: max.min(left / min_item.max(1)),
            });
        }
        Ok(n)
    }
    /// Fails if bytes remain.
    pub fn end(&self) -> Result<(), DecodeError> {
        match self.b.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_roundtrip() {
        let mut e = Enc::new();
        e.u8(7)
            .u16(65535)
            .u32(1 << 31)
            .u64(u64::MAX)
            .bytes(b"key")
            .str("space");
        let b = e.finish();
        let mut d = Dec::new(&b);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.u16(), Ok(65535));
        assert_eq!(d.u32(), Ok(1 << 31));
        assert_eq!(d.u64(), Ok(u64::MAX));
        assert_eq!(d.bytes("k", 10), Ok(&b"key"[..]));
        assert_eq!(d.str("s", 10), Ok("space"));
        assert_eq!(d.end(), Ok(()));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut e = Enc::new();
        e.u64(1).bytes(b"abcdef").u32(9);
        let b = e.finish();
        for cut in 0..b.len() {
            let mut d = Dec::new(&b[..cut]);
            let r = (|| {
                d.u64()?;
                d.bytes("k", 100)?;
                d.u32()
            })();
            assert!(r.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn lying_lengths_and_counts_are_rejected() {
        let mut e = Enc::new();
        e.u32(u32::MAX);
        let b = e.finish();
        assert!(matches!(
            Dec::new(&b).bytes("k", 1024),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(Dec::new(&b).count("keys", 4096, 4).is_err());
        let mut e = Enc::new();
        e.u32(3).u32(0);
        let b = e.finish();
        assert!(
            Dec::new(&b).count("keys", 4096, 4).is_err(),
            "3 items of 4 bytes need 12"
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let b = [1u8, 2, 3];
        let mut d = Dec::new(&b);
        assert_eq!(d.u8(), Ok(1));
        assert_eq!(d.end(), Err(DecodeError::Trailing(2)));
    }
}
