//! The output buffer and protocol-4 framing, as `_pickle.c` does it.
//!
//! It knows bytes and nothing else of Python: the buffer is a `bytes` object
//! filled in place (see `bytes_buffer`). Frames are opened lazily by the first write after a commit and
//! closed at opcode boundaries once they reach `FRAME_SIZE_TARGET`; payloads of
//! that size or more are written outside any frame.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::bytes_buffer::BytesBuffer;
use super::opcodes::FRAME;

pub const FRAME_SIZE_TARGET: usize = 64 * 1024;
const FRAME_SIZE_MIN: usize = 4;
const FRAME_HEADER_SIZE: usize = 9;

pub struct Writer<'py> {
    buf: BytesBuffer<'py>,
    framing: bool,
    /// Offset of the reserved 9-byte header of the open frame.
    frame_start: Option<usize>,
}

impl<'py> Writer<'py> {
    pub fn new(py: Python<'py>) -> Self {
        Writer {
            buf: BytesBuffer::new(py),
            framing: false,
            frame_start: None,
        }
    }

    pub fn set_framing(&mut self, on: bool) {
        self.framing = on;
    }

    #[inline]
    fn open_frame_if_needed(&mut self) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.buf.len());
            self.buf.extend(&[0xFE; FRAME_HEADER_SIZE]);
        }
    }

    #[inline]
    pub fn write(&mut self, data: &[u8]) {
        self.open_frame_if_needed();
        self.buf.extend(data);
    }

    #[inline]
    pub fn write_byte(&mut self, b: u8) {
        self.open_frame_if_needed();
        self.buf.push(b);
    }

    /// Opcode with a little-endian length field of `width` bytes.
    #[inline]
    pub fn write_op_len(&mut self, op: u8, len: u64, width: usize) {
        self.open_frame_if_needed();
        self.buf.reserve(1 + width);
        self.buf.push(op);
        self.buf.extend(&len.to_le_bytes()[..width]);
    }

    /// Close the open frame: fill in its header, or drop the header when the
    /// frame is too small to be worth one.
    pub fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        if self.buf.is_lost() {
            return;
        }
        let frame_len = self.buf.len() - start - FRAME_HEADER_SIZE;
        if frame_len >= FRAME_SIZE_MIN {
            let header = &mut self.buf.as_mut_slice()[start..start + FRAME_HEADER_SIZE];
            header[0] = FRAME;
            header[1..].copy_from_slice(&(frame_len as u64).to_le_bytes());
        } else {
            self.buf.remove(start, start + FRAME_HEADER_SIZE);
        }
    }

    /// Called before each object is saved. Returns true when a frame was
    /// committed, i.e. when the buffer may be flushed to a file.
    #[inline]
    pub fn opcode_boundary(&mut self) -> bool {
        match self.frame_start {
            Some(start) if self.buf.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET => {
                self.commit_frame();
                true
            }
            _ => false,
        }
    }

    /// True when a payload of `len` bytes goes outside any frame.
    #[inline]
    pub fn bypasses_frame(len: usize) -> bool {
        len >= FRAME_SIZE_TARGET
    }

    /// Write a header and a payload. A large payload is written unframed:
    /// the open frame is committed first and the next write opens a new one.
    pub fn write_payload(&mut self, header: &[u8], data: &[u8]) {
        if Self::bypasses_frame(data.len()) {
            self.write_unframed_header(header);
            self.buf.extend(data);
        } else {
            self.write(header);
            self.write(data);
        }
    }

    /// Commit the open frame and write `header` outside any frame; the caller
    /// then streams the payload (to the buffer or straight to a file).
    pub fn write_unframed_header(&mut self, header: &[u8]) {
        self.commit_frame();
        self.buf.extend(header);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[cfg(test)]
    pub fn as_slice(&self) -> &[u8] {
        self.buf.as_slice()
    }

    /// The bytes written so far as a `bytes` object; the writer starts over.
    /// Called with no frame open (after `commit_frame`).
    /// Drop everything written so far (a failed dump whose writer is
    /// reused for the next one).
    pub fn discard(&mut self) {
        self.frame_start = None;
        self.framing = false;
        self.buf.clear();
    }

    /// Whether memory ran out for the output (see `BytesBuffer`).
    pub fn is_lost(&self) -> bool {
        self.buf.is_lost()
    }

    pub fn take_bytes(&mut self) -> PyResult<Bound<'py, PyBytes>> {
        debug_assert!(self.frame_start.is_none());
        self.buf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_writer(f: impl FnOnce(Writer<'_>)) {
        Python::initialize();
        Python::attach(|py| f(Writer::new(py)));
    }

    #[test]
    fn small_frames_lose_their_header() {
        with_writer(|mut w| {
            w.set_framing(true);
            w.write(b"ab");
            w.commit_frame();
            assert_eq!(w.as_slice(), b"ab");
        });
    }

    #[test]
    fn frames_get_a_length_header() {
        with_writer(|mut w| {
            w.set_framing(true);
            w.write(b"abcd");
            w.commit_frame();
            assert_eq!(w.as_slice(), b"\x95\x04\0\0\0\0\0\0\0abcd");
        });
    }

    #[test]
    fn boundary_commits_only_full_frames() {
        with_writer(|mut w| {
            w.set_framing(true);
            w.write(&vec![1u8; FRAME_SIZE_TARGET - 1]);
            assert!(!w.opcode_boundary());
            w.write_byte(2);
            assert!(w.opcode_boundary());
            assert_eq!(w.as_slice()[0], FRAME);
            assert_eq!(w.len(), FRAME_SIZE_TARGET + 9);
        });
    }

    #[test]
    fn large_payloads_bypass_frames() {
        with_writer(|mut w| {
            w.set_framing(true);
            w.write(b"xyzw");
            let big = vec![7u8; FRAME_SIZE_TARGET];
            w.write_payload(b"H", &big);
            w.write(b"tail");
            w.commit_frame();
            let out = w.as_slice();
            assert_eq!(&out[..13], b"\x95\x04\0\0\0\0\0\0\0xyzw");
            assert_eq!(out[13], b'H');
            assert_eq!(&out[14 + big.len()..], b"\x95\x04\0\0\0\0\0\0\0tail");
        });
    }

    #[test]
    fn no_framing_below_protocol_4() {
        with_writer(|mut w| {
            w.write(b"abcdef");
            w.commit_frame();
            assert_eq!(w.as_slice(), b"abcdef");
        });
    }

    #[test]
    fn length_fields_are_little_endian() {
        with_writer(|mut w| {
            w.write_op_len(b'X', 0x0102_0304, 4);
            assert_eq!(w.as_slice(), b"X\x04\x03\x02\x01");
        });
    }
}
