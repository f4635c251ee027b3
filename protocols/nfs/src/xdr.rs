//! Bounded XDR decoding of bytes from the network, and reply packing.
//!
//! `nfs3_types` decodes variable-length opaques by allocating the length the
//! peer claims before reading it, so a 4-byte lie can ask for gigabytes.
//! Every argument that carries an opaque or an array is therefore read here,
//! from a record already held in memory: a length is checked against the
//! bytes actually left (and the protocol maximum) before anything is copied,
//! and a short or malformed buffer is an error value, never a panic.
//! Fixed-size `nfs3_types` values (which allocate nothing) are decoded with
//! their own `Unpack` through this reader's `Read` impl.

use nfs3_types::xdr_codec::{Pack, Unpack};

/// The arguments could not be decoded (answered with GARBAGE_ARGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed XDR")]
pub struct Garbage;

/// Result of decoding network bytes.
pub type XdrResult<T> = Result<T, Garbage>;

/// A cursor over one received record.
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes the next `n` bytes.
    fn take(&mut self, n: usize) -> XdrResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Garbage)?;
        let s = self.buf.get(self.pos..end).ok_or(Garbage)?;
        self.pos = end;
        Ok(s)
    }

    /// Skips the zero padding after `len` bytes of opaque data.
    fn skip_padding(&mut self, len: usize) -> XdrResult<()> {
        let pad = (4 - len % 4) % 4;
        self.take(pad).map(|_| ())
    }

    /// An unsigned 32-bit integer.
    pub fn u32(&mut self) -> XdrResult<u32> {
        let s = self.take(4)?;
        let a: [u8; 4] = s.try_into().map_err(|_| Garbage)?;
        Ok(u32::from_be_bytes(a))
    }

    /// An unsigned 64-bit integer.
    pub fn u64(&mut self) -> XdrResult<u64> {
        let s = self.take(8)?;
        let a: [u8; 8] = s.try_into().map_err(|_| Garbage)?;
        Ok(u64::from_be_bytes(a))
    }

    /// Variable-length opaque data of at most `max` bytes, borrowed.
    pub fn opaque(&mut self, max: usize) -> XdrResult<&'a [u8]> {
        let len = usize::try_from(self.u32()?).map_err(|_| Garbage)?;
        if len > max || len > self.remaining() {
            return Err(Garbage);
        }
        let s = self.take(len)?;
        self.skip_padding(len)?;
        Ok(s)
    }

    /// A variable-length array of u32 with at most `max` elements.
    pub fn u32_array(&mut self, max: usize) -> XdrResult<Vec<u32>> {
        let n = usize::try_from(self.u32()?).map_err(|_| Garbage)?;
        if n > max || n.saturating_mul(4) > self.remaining() {
            return Err(Garbage);
        }
        (0..n).map(|_| self.u32()).collect()
    }

    /// A value whose `nfs3_types` decoder allocates nothing (fixed-size
    /// structs and enums).
    pub fn fixed_type<T: Unpack>(&mut self) -> XdrResult<T> {
        T::unpack(self).map(|(v, _)| v).map_err(|_| Garbage)
    }
}

impl std::io::Read for XdrReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Appends `value` to `out` in XDR. Packing into a `Vec` cannot fail
/// except for objects over 4 GiB, which no reply of ours contains.
pub fn pack_into<T: Pack>(out: &mut Vec<u8>, value: &T) -> Result<(), PackError> {
    value.pack(out).map(|_| ()).map_err(|_| PackError)
}

/// A reply could not be encoded (answered with SYSTEM_ERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("reply could not be encoded")]
pub struct PackError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_longer_than_the_buffer_is_garbage_not_an_allocation() {
        // Claims 4 GiB - 1 bytes follow.
        let buf = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(XdrReader::new(&buf).opaque(usize::MAX), Err(Garbage));
    }

    #[test]
    fn opaque_over_its_protocol_maximum_is_garbage() {
        let mut buf = vec![0, 0, 0, 8];
        buf.extend_from_slice(&[7; 8]);
        assert_eq!(XdrReader::new(&buf).opaque(4), Err(Garbage));
        assert_eq!(XdrReader::new(&buf).opaque(8), Ok(&[7u8; 8][..]));
    }

    #[test]
    fn opaque_padding_is_consumed() {
        let buf = [0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 5];
        let mut r = XdrReader::new(&buf);
        assert_eq!(r.opaque(10), Ok(&[9u8][..]));
        assert_eq!(r.u32(), Ok(5));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn missing_padding_is_garbage() {
        let buf = [0, 0, 0, 1, 9];
        assert_eq!(XdrReader::new(&buf).opaque(10), Err(Garbage));
    }

    #[test]
    fn array_count_beyond_the_buffer_is_garbage() {
        let buf = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        assert_eq!(XdrReader::new(&buf).u32_array(usize::MAX), Err(Garbage));
    }
}
