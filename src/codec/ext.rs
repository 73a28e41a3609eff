//! The wire vocabulary beyond plain MessagePack: the ext type codes, the
//! kinds of registered classes, and the limits both directions share.
//! `docs/msgpack-format.md` is the reference for every payload below.

use std::io::{self, Write};

use super::encode::EncodeFault;
use super::output::Output;

/// A second occurrence of a container or registered instance: the index
/// (big-endian, 1, 2, 4 or 8 bytes) of its first occurrence.
pub const BACKREF: i8 = 1;
/// Payload: a MessagePack array of the items.
pub const TUPLE: i8 = 2;
pub const SET: i8 = 3;
pub const FROZENSET: i8 = 4;
/// Payload: the raw bytes.
pub const BYTEARRAY: i8 = 5;
/// An int outside `[-2**63, 2**64)`: minimal two's-complement bytes,
/// little-endian (pickle's LONG1 payload).
pub const BIGINT: i8 = 6;
/// Payload: real and imaginary parts, float64 big-endian.
pub const COMPLEX: i8 = 7;
/// Payload: `[year, month, day, hour, minute, second, microsecond, fold, tz]`.
pub const DATETIME: i8 = 8;
/// Payload: `[year, month, day]`.
pub const DATE: i8 = 9;
/// Payload: `[hour, minute, second, microsecond, fold, tz]`.
pub const TIME: i8 = 10;
/// Payload: `[days, seconds, microseconds]`.
pub const TIMEDELTA: i8 = 11;
/// A tzinfo on its own; payload: one tz value (see `scalars::write_tz`).
pub const TZINFO: i8 = 12;
/// Payload: `str(d)` in ASCII.
pub const DECIMAL: i8 = 13;
/// Payload: the 16 bytes of `UUID.bytes`.
pub const UUID: i8 = 14;
/// Payload: `[registered name, member name]`.
pub const ENUM: i8 = 15;
/// A registered dataclass or attrs instance; payload:
/// `[registered name, {field name: value}]`.
pub const OBJECT: i8 = 16;
/// A registered NamedTuple; payload: `[registered name, [values]]`.
pub const NAMEDTUPLE: i8 = 17;
/// A str with lone surrogates, UTF-8 encoded with "surrogatepass".
pub const SURROGATE_STR: i8 = 18;

/// How deep containers may nest (list in dict in tuple ...), in both
/// directions: deeper graphs are an EncodeError, deeper payloads a
/// DecodeError. It bounds the work stacks, never the Rust stack, which
/// stays flat at any depth.
pub const MAX_DEPTH: usize = 100_000;

/// The `kind` item of a registry entry: the numbers
/// `turbodill.msgpack.register` records, which the shim imports from the
/// native module (`_MSGPACK_KIND_OBJECT`, ...).
pub const KIND_OBJECT: u8 = 0;
pub const KIND_NAMEDTUPLE: u8 = 1;
pub const KIND_ENUM: u8 = 2;

/// What `turbodill.msgpack.register` recorded about a class.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A dataclass or attrs class: fields by name.
    Object,
    NamedTuple,
    Enum,
}

impl Kind {
    pub fn from_code(code: u8) -> Option<Kind> {
        match code {
            KIND_OBJECT => Some(Kind::Object),
            KIND_NAMEDTUPLE => Some(Kind::NamedTuple),
            KIND_ENUM => Some(Kind::Enum),
            _ => None,
        }
    }
}

/// Start an ext whose payload length is not known yet (a container's, a
/// datetime's): an ext8 header with a placeholder length. Returns where it
/// starts, for `close_ext`.
#[inline]
pub fn open_ext(out: &mut Output, code: i8) -> io::Result<usize> {
    let at = out.len();
    out.write_all(&[0xc7, 0, code.to_be_bytes()[0]])?;
    Ok(at)
}

/// Fill in the length of the ext opened at `at`. A payload that outgrew
/// ext8 widens the header to ext16/ext32, which moves the payload once
/// (small payloads, the common case, cost nothing).
pub fn close_ext(out: &mut Output, at: usize) -> Result<(), EncodeFault> {
    let len = out.len() - at - 3;
    let code = out.as_slice()[at + 2];
    if let Ok(len) = u8::try_from(len) {
        out.as_mut_slice()[at + 1] = len;
        return Ok(());
    }
    let header: Vec<u8> = if let Ok(len) = u16::try_from(len) {
        [&[0xc8][..], &len.to_be_bytes(), &[code]].concat()
    } else if let Ok(len) = u32::try_from(len) {
        [&[0xc9][..], &len.to_be_bytes(), &[code]].concat()
    } else {
        return Err(EncodeFault::Refused(format!(
            "an ext payload of {len} bytes is over MessagePack's 4 GiB limit"
        )));
    };
    out.room_for(header.len() - 3)?.splice(at..at + 3, header);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_ext_widens_the_header() {
        for (len, header) in [
            (3usize, vec![0xc7, 3, 2]),
            (300, vec![0xc8, 1, 44, 2]),
            (70_000, vec![0xc9, 0, 1, 0x11, 0x70, 2]),
        ] {
            let mut out = Output::from_vec(vec![0xc0]);
            let at = open_ext(&mut out, TUPLE).unwrap();
            out.write_all(&vec![7u8; len]).unwrap();
            assert!(close_ext(&mut out, at).is_ok());
            let bytes = out.as_slice();
            assert_eq!(&bytes[1..1 + header.len()], &header[..]);
            assert_eq!(bytes.len(), 1 + header.len() + len);
            assert!(bytes[1 + header.len()..].iter().all(|&b| b == 7));
        }
    }
}
