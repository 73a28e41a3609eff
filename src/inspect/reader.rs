//! A cursor over the payload that reads opcode arguments the way `_pickle.c`
//! reads them, and never trusts a length: a length field is checked against
//! the bytes that remain before anything is read or allocated.

use super::WalkError;

pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes (`n` as read from a length field, so any size).
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], WalkError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => {
                let start = self.pos;
                self.pos += n;
                Ok(&self.data[start..self.pos])
            }
            _ => Err(WalkError::Truncated),
        }
    }

    /// Where the next `n` bytes start, skipping them (string arguments are
    /// kept as spans of the payload, not copied).
    pub fn skip(&mut self, n: u64) -> Result<usize, WalkError> {
        let start = self.pos;
        self.take(n)?;
        Ok(start)
    }

    pub fn u8(&mut self) -> Result<u8, WalkError> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian unsigned integer of `width` bytes (1, 2, 4 or 8).
    /// A 4-byte little-endian signed argument (`_pickle.c`'s `calc_binint`).
    pub fn int4(&mut self) -> Result<i32, WalkError> {
        let bytes = self.take(4)?;
        Ok(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A 1- or 2-byte unsigned argument, widened.
    pub fn small_uint(&mut self, width: usize) -> Result<u16, WalkError> {
        Ok(u16::try_from(self.uint(width.min(2))?).unwrap_or(u16::MAX))
    }

    pub fn uint(&mut self, width: usize) -> Result<u64, WalkError> {
        let bytes = self.take(width as u64)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A text argument: the bytes up to the next newline, without it (the
    /// newline is consumed). `_pickle.c` fails when there is none.
    pub fn line(&mut self) -> Result<&'a [u8], WalkError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(WalkError::Truncated)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_beyond_the_input_are_truncation_not_allocation() {
        let mut r = Reader::new(b"abc");
        assert!(matches!(r.take(1 << 60), Err(WalkError::Truncated)));
        assert!(matches!(r.take(u64::MAX), Err(WalkError::Truncated)));
        assert_eq!(r.take(3).unwrap(), b"abc");
        assert!(matches!(r.u8(), Err(WalkError::Truncated)));
    }

    #[test]
    fn integers_are_little_endian_and_lines_drop_the_newline() {
        let mut r = Reader::new(b"\x01\x02\x03\x04mod\nname\nx");
        assert_eq!(r.uint(4).unwrap(), 0x0403_0201);
        assert_eq!(r.line().unwrap(), b"mod");
        assert_eq!(r.line().unwrap(), b"name");
        assert!(matches!(r.line(), Err(WalkError::Truncated)));
        assert_eq!(r.remaining(), 1);
    }
}
