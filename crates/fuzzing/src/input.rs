//! Reading a fuzz input as a script: a cursor that hands out bytes, integers and slices and
//! runs dry instead of failing, and its counterpart for writing seed scripts.
//!
//! Integers are big-endian. A read past the end yields `None`; targets stop at the first `None`,
//! so every byte string is a valid script (a truncated one just ends early).

/// A cursor over a fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        let s = self.bytes(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        let s = self.bytes(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// Exactly `n` bytes, or `None` (consuming nothing) if fewer remain.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn up_to(&mut self, n: usize) -> &'a [u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = &self.data[self.pos..end];
        self.pos = end;
        s
    }

    /// A length byte followed by that many bytes (fewer at the end of the input).
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        Some(self.up_to(usize::from(n)))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }
}

/// Builds a script byte by byte (for seed corpora and tests); the inverse of [`Input`].
#[derive(Debug, Clone, Default)]
pub struct ScriptWriter {
    bytes: Vec<u8>,
}

impl ScriptWriter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }
    /// Writes `op` + length byte + bytes for each piece of at most 255 bytes of `b`.
    pub fn chunks(&mut self, op: u8, b: &[u8]) -> &mut Self {
        for piece in b.chunks(255) {
            self.u8(op);
            // chunks(255): the length always fits.
            self.u8(u8::try_from(piece.len()).unwrap_or(u8::MAX));
            self.raw(piece);
        }
        self
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn finish(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_run_dry_without_consuming() {
        let mut i = Input::new(&[1, 2, 3]);
        assert_eq!(i.u16(), Some(0x0102));
        assert_eq!(i.u16(), None);
        assert_eq!(i.u8(), Some(3));
        assert_eq!(i.u8(), None);
        assert!(i.is_empty());
    }

    #[test]
    fn chunk_is_length_prefixed_and_truncates_at_end() {
        let mut i = Input::new(&[2, 9, 8, 5, 1]);
        assert_eq!(i.chunk(), Some(&[9, 8][..]));
        assert_eq!(i.chunk(), Some(&[1][..]));
        assert_eq!(i.chunk(), None);
    }

    #[test]
    fn writer_chunks_split_long_slices() {
        let data = vec![7u8; 300];
        let s = ScriptWriter::new().chunks(4, &data).finish();
        let mut i = Input::new(&s);
        assert_eq!(i.u8(), Some(4));
        assert_eq!(i.chunk().map(<[u8]>::len), Some(255));
        assert_eq!(i.u8(), Some(4));
        assert_eq!(i.chunk().map(<[u8]>::len), Some(45));
        assert!(i.is_empty());
    }
}
