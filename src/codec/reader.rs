//! The input cursor: bounds-checked reads of MessagePack headers and
//! scalars, shared by the decoder and the fixed-layout ext payloads.
//! Nothing here allocates from a length field: a length is checked against
//! the bytes that remain before anything is taken.

use pyo3::PyErr;
use rmp::Marker;

/// Why decoding stopped: malformed input (becomes a `DecodeError` saying
/// where), or a Python exception raised while building an object.
pub enum FaultKind {
    Malformed { pos: usize, what: String },
    Python(PyErr),
}

/// A boxed `FaultKind`: one word, so that the `Result`s of the hot path
/// stay small (a `PyErr` alone is several).
pub struct Fault(pub Box<FaultKind>);

impl Fault {
    #[cold]
    pub fn malformed(pos: usize, what: impl Into<String>) -> Fault {
        Fault(Box::new(FaultKind::Malformed {
            pos,
            what: what.into(),
        }))
    }
}

impl From<PyErr> for Fault {
    #[cold]
    fn from(err: PyErr) -> Self {
        Fault(Box::new(FaultKind::Python(err)))
    }
}

pub type Res<T> = Result<T, Fault>;

pub struct Reader<'a> {
    data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    #[cold]
    pub fn malformed<T>(&self, what: impl Into<String>) -> Res<T> {
        Err(Fault::malformed(self.pos, what))
    }

    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    #[inline(always)]
    pub fn byte(&mut self) -> Res<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.malformed("truncated input"),
        }
    }

    #[inline(always)]
    pub fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if n > self.remaining() {
            return self.malformed(format!(
                "truncated input: {n} bytes announced, {} left",
                self.remaining()
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    #[inline(always)]
    pub fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("took N bytes"))
    }

    /// The length that follows a 1-, 2- or 4-byte length marker.
    #[inline(always)]
    pub fn len8(&mut self) -> Res<usize> {
        Ok(self.byte()? as usize)
    }

    #[inline(always)]
    pub fn len16(&mut self) -> Res<usize> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }

    #[inline(always)]
    pub fn len32(&mut self) -> Res<usize> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    /// An ext header after its marker: `(type, payload length)`.
    pub fn ext_header(&mut self, marker: Marker) -> Res<(i8, usize)> {
        let len = match marker {
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            Marker::Ext8 => self.len8()?,
            Marker::Ext16 => self.len16()?,
            Marker::Ext32 => self.len32()?,
            _ => unreachable!("not an ext marker"),
        };
        let code = i8::from_be_bytes([self.byte()?]);
        if len > self.remaining() {
            return self.malformed(format!(
                "truncated input: ext payload of {len} bytes, {} left",
                self.remaining()
            ));
        }
        Ok((code, len))
    }

    /// An integer that must fit in an i64 (inside fixed-layout payloads).
    pub fn int(&mut self) -> Res<i64> {
        let at = self.pos;
        let value = match Marker::from_u8(self.byte()?) {
            Marker::FixPos(v) => i64::from(v),
            Marker::FixNeg(v) => i64::from(v),
            Marker::U8 => i64::from(self.byte()?),
            Marker::U16 => i64::from(u16::from_be_bytes(self.array()?)),
            Marker::U32 => i64::from(u32::from_be_bytes(self.array()?)),
            Marker::U64 => i64::try_from(u64::from_be_bytes(self.array()?))
                .or_else(|_| self.malformed("integer out of range"))?,
            Marker::I8 => i64::from(i8::from_be_bytes(self.array()?)),
            Marker::I16 => i64::from(i16::from_be_bytes(self.array()?)),
            Marker::I32 => i64::from(i32::from_be_bytes(self.array()?)),
            Marker::I64 => i64::from_be_bytes(self.array()?),
            _ => {
                self.pos = at;
                return self.malformed("expected an integer");
            }
        };
        Ok(value)
    }

    /// An integer field that must lie in `T`'s range.
    pub fn int_in<T: TryFrom<i64>>(&mut self, what: &str) -> Res<T> {
        let value = self.int()?;
        T::try_from(value).or_else(|_| self.malformed(format!("{what} out of range: {value}")))
    }

    pub fn bool(&mut self) -> Res<bool> {
        match Marker::from_u8(self.byte()?) {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            _ => self.malformed("expected a bool"),
        }
    }

    /// The length of a str whose marker is `marker`, or `None` if it is no
    /// str marker.
    #[inline(always)]
    pub fn str_len(&mut self, marker: Marker) -> Res<Option<usize>> {
        Ok(Some(match marker {
            Marker::FixStr(n) => n as usize,
            Marker::Str8 => self.len8()?,
            Marker::Str16 => self.len16()?,
            Marker::Str32 => self.len32()?,
            _ => return Ok(None),
        }))
    }

    /// A str, as UTF-8 text.
    pub fn str(&mut self) -> Res<&'a str> {
        let marker = Marker::from_u8(self.byte()?);
        let Some(len) = self.str_len(marker)? else {
            self.pos -= 1;
            return self.malformed("expected a str");
        };
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).or_else(|_| self.malformed("invalid UTF-8 in str"))
    }

    /// The count of an array header (any array marker).
    pub fn array_len(&mut self) -> Res<usize> {
        match Marker::from_u8(self.byte()?) {
            Marker::FixArray(n) => Ok(n as usize),
            Marker::Array16 => self.len16(),
            Marker::Array32 => self.len32(),
            _ => {
                self.pos -= 1;
                self.malformed("expected an array")
            }
        }
    }

    /// An array header that must announce exactly `n` items.
    pub fn array_of(&mut self, n: usize, what: &str) -> Res<()> {
        let len = self.array_len()?;
        if len != n {
            return self.malformed(format!("{what}: expected {n} items, found {len}"));
        }
        Ok(())
    }

    pub fn map_len(&mut self) -> Res<usize> {
        match Marker::from_u8(self.byte()?) {
            Marker::FixMap(n) => Ok(n as usize),
            Marker::Map16 => self.len16(),
            Marker::Map32 => self.len32(),
            _ => {
                self.pos -= 1;
                self.malformed("expected a map")
            }
        }
    }

    /// The marker of the next value, without consuming it.
    pub fn peek_marker(&self) -> Res<Marker> {
        match self.data.get(self.pos) {
            Some(&b) => Ok(Marker::from_u8(b)),
            None => self.malformed("truncated input"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed<T>(r: Res<T>) -> bool {
        matches!(r, Err(Fault(kind)) if matches!(*kind, FaultKind::Malformed { .. }))
    }

    #[test]
    fn lengths_are_checked_before_taking() {
        // An ext32 header announcing 2**32-1 bytes with 1 byte left.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x02, 0x00]);
        assert!(malformed(r.ext_header(Marker::Ext32)));
        let mut r = Reader::new(&[1, 2]);
        assert!(malformed(r.take(3)));
        assert_eq!(r.take(2).ok(), Some(&[1u8, 2][..]));
        assert!(r.at_end());
    }

    #[test]
    fn ints_and_strs() {
        let mut r = Reader::new(&[
            0x05, 0xff, 0xd1, 0xff, 0x00, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(r.int().ok(), Some(5));
        assert_eq!(r.int().ok(), Some(-1));
        assert_eq!(r.int().ok(), Some(-256));
        assert!(malformed(r.int())); // 2**63 does not fit
        let mut r = Reader::new(&[0xa2, b'h', b'i', 0xa1, 0xff]);
        assert_eq!(r.str().ok(), Some("hi"));
        assert!(malformed(r.str()));
    }
}
