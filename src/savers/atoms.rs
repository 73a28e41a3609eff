//! Scalars and byte strings: None/bool/int/float/str/bytes/bytearray,
//! `PickleBuffer`, and persistent ids.

use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::engine::frames::{Frame, SaveCtx};
use crate::engine::memo::Vacancy;
use crate::engine::Engine;
use crate::errors::pickling_error;
use crate::output::opcodes::*;
use crate::pyutil::{int_to_le_bytes, small_long_value};

/// Minimal little-endian two's-complement bytes of `v`, as LONG1 wants them.
fn long_le_bytes(v: i128) -> Vec<u8> {
    if v == 0 {
        return Vec::new();
    }
    let nbits = 128 - v.unsigned_abs().leading_zeros() as usize;
    let mut nbytes = (nbits >> 3) + 1;
    let all = v.to_le_bytes();
    // A negative number may need one byte less: -(2**(8*j-1)) is its own
    // 256's complement.
    if v < 0 && nbytes > 1 && all[nbytes - 1] == 0xff && all[nbytes - 2] & 0x80 != 0 {
        nbytes -= 1;
    }
    all[..nbytes].to_vec()
}

extern "C" {
    // Exported by libpython (Include/cpython/picklebufobject.h), not bound by
    // pyo3-ffi: the view a PickleBuffer holds, valid while it lives.
    fn PyPickleBuffer_GetBuffer(obj: *mut ffi::PyObject) -> *const ffi::Py_buffer;
}

/// The view inside a `PickleBuffer` (no new export is made, as in `_pickle.c`).
struct PickleBufferView<'a>(&'a ffi::Py_buffer);

impl<'a> PickleBufferView<'a> {
    fn get(obj: &'a Bound<'_, PyAny>) -> PyResult<PickleBufferView<'a>> {
        // SAFETY: `obj` is a PickleBuffer (save() checked its exact type); the
        // returned view lives inside it, and `obj` outlives the borrow.
        let view = unsafe { PyPickleBuffer_GetBuffer(obj.as_ptr()) };
        if view.is_null() {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: non-null, and valid for as long as `obj` is borrowed.
        Ok(PickleBufferView(unsafe { &*view }))
    }

    fn is_contiguous(&self) -> bool {
        is_contiguous(self.0)
    }

    fn readonly(&self) -> bool {
        self.0.readonly != 0
    }
}

/// `PyBuffer_IsContiguous`'s order argument: C or Fortran.
#[allow(clippy::cast_possible_wrap, reason = "an ASCII letter fits any c_char")]
const ANY_ORDER: std::os::raw::c_char = b'A' as _;

fn is_contiguous(view: &ffi::Py_buffer) -> bool {
    // SAFETY: `view` is a valid, filled-in buffer view.
    view.suboffsets.is_null() && unsafe { ffi::PyBuffer_IsContiguous(view, ANY_ORDER) } != 0
}

/// RAII export of an object's buffer (a bytearray's, a PickleBuffer's):
/// while it is held, the memory stays put whatever Python code we call
/// meanwhile (a `file.write` resizing the bytearray, releasing the
/// PickleBuffer).
struct BufferView(ffi::Py_buffer);

impl BufferView {
    fn get(obj: &Bound<'_, PyAny>) -> PyResult<BufferView> {
        let mut view = std::mem::MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: `obj` is live; on success CPython fills `view`, which we
        // release exactly once in `Drop`.
        unsafe {
            if ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_FULL_RO) != 0 {
                return Err(PyErr::fetch(obj.py()));
            }
            Ok(BufferView(view.assume_init()))
        }
    }

    fn is_contiguous(&self) -> bool {
        is_contiguous(&self.0)
    }

    fn readonly(&self) -> bool {
        self.0.readonly != 0
    }

    /// The memory, as one slice: for a contiguous view (a bytearray's, or
    /// one checked with `is_contiguous`).
    fn bytes(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: a contiguous buffer of `len` bytes starting at `buf`, kept
        // alive by the view we hold.
        unsafe {
            std::slice::from_raw_parts(self.0.buf as *const u8, crate::sizes::len(self.0.len))
        }
    }
}

impl Drop for BufferView {
    fn drop(&mut self) {
        // SAFETY: obtained from a successful PyObject_GetBuffer.
        unsafe { ffi::PyBuffer_Release(&mut self.0) }
    }
}

impl<'py> Engine<'py> {
    /// Call `persistent_id(obj)`; when it gives an id, write it and report
    /// that `obj` is done.
    pub fn save_persistent_id(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        let hook = self.hooks().persistent_id.as_ref().expect("caller checked");
        let pid = hook.call1((obj,))?;
        if pid.is_none() {
            return Ok(false);
        }
        self.write_persistent_id(&pid)?;
        Ok(true)
    }

    /// Write `pid` as a persistent id (BINPERSID, or PERSID's text line at
    /// protocol 0).
    pub fn write_persistent_id(&mut self, pid: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.is_binary() {
            // A persistent id is saved inside the object it stands for, and
            // `persistent_id` may make a new one for each of its parts.
            self.enter_reduction()?;
            self.queue([Frame::Write(BINPERSID), Frame::LeaveReduction]);
            self.save(pid, SaveCtx::PID)?;
        } else {
            let text = pid.str()?;
            let text = text.to_str()?;
            if !text.is_ascii() {
                return Err(pickling_error(
                    self.py(),
                    "persistent IDs in protocol 0 must be ASCII strings",
                ));
            }
            self.write_byte(PERSID);
            self.write(text.as_bytes());
            self.write_byte(b'\n');
        }
        Ok(())
    }

    #[inline]
    pub fn save_bool(&mut self, value: bool) {
        if self.proto() >= 2 {
            self.write_byte(if value { NEWTRUE } else { NEWFALSE });
        } else {
            self.write(if value { b"I01\n" } else { b"I00\n" });
        }
    }

    #[inline]
    pub fn save_long(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let value = small_long_value(obj);
        if let Some(val) = value.filter(|v| (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(v))
        {
            if !self.is_binary() {
                self.write(format!("{}{val}\n", INT as char).as_bytes());
            } else if (0..=0xff).contains(&val) {
                self.write(&[BININT1, val.to_le_bytes()[0]]);
            } else if (0..=0xffff).contains(&val) {
                let b = val.to_le_bytes();
                self.write(&[BININT2, b[0], b[1]]);
            } else {
                let b = val.to_le_bytes();
                self.write(&[BININT, b[0], b[1], b[2], b[3]]);
            }
            return Ok(());
        }
        if self.proto() < 2 {
            let repr = obj.repr()?;
            self.write_byte(LONG);
            self.write(repr.to_str()?.as_bytes());
            self.write(b"L\n");
            return Ok(());
        }
        let data = match value {
            Some(val) => long_le_bytes(i128::from(val)),
            None => int_to_le_bytes(obj)?,
        };
        if data.len() < 256 {
            self.write(&[LONG1, data.len().to_le_bytes()[0]]);
        } else {
            if data.len() > 0x7fff_ffff {
                return Err(PyOverflowError::new_err("int too large to pickle"));
            }
            self.write_op_len(LONG4, data.len() as u64, 4);
        }
        self.write(&data);
        Ok(())
    }

    #[inline]
    pub fn save_float(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        // SAFETY: `obj` is an exact float.
        let x = unsafe { ffi::PyFloat_AS_DOUBLE(obj.as_ptr()) };
        if self.is_binary() {
            let b = x.to_be_bytes();
            self.write(&[BINFLOAT, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        } else {
            let repr = obj.repr()?;
            self.write_byte(FLOAT);
            self.write(repr.to_str()?.as_bytes());
            self.write_byte(b'\n');
        }
        Ok(())
    }

    /// `vacancy`: from the memo lookup that did not find `obj`.
    pub fn save_str(&mut self, obj: &Bound<'py, PyAny>, vacancy: Vacancy) -> PyResult<()> {
        if self.is_binary() {
            self.write_binary_str(obj)?;
        } else {
            // The code points themselves (a Rust str could not hold lone
            // surrogates), read in the string's own storage width.
            // SAFETY: `obj` is an exact str, made ready; its data holds
            // `len` units of `kind` bytes and lives while we hold `obj`.
            let escaped = unsafe {
                let ptr = obj.as_ptr();
                if ffi::PyUnicode_READY(ptr) != 0 {
                    return Err(PyErr::fetch(self.py()));
                }
                let len = crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr));
                let data = ffi::PyUnicode_DATA(ptr);
                match ffi::PyUnicode_KIND(ptr) {
                    ffi::PyUnicode_1BYTE_KIND => raw_unicode_escape(
                        std::slice::from_raw_parts(data as *const u8, len)
                            .iter()
                            .map(|&c| u32::from(c)),
                    ),
                    ffi::PyUnicode_2BYTE_KIND => raw_unicode_escape(
                        std::slice::from_raw_parts(data as *const u16, len)
                            .iter()
                            .map(|&c| u32::from(c)),
                    ),
                    _ => raw_unicode_escape(
                        std::slice::from_raw_parts(data as *const u32, len)
                            .iter()
                            .copied(),
                    ),
                }
            };
            self.write_byte(UNICODE);
            self.write(&escaped);
            self.write_byte(b'\n');
        }
        self.memo_put_vacant(obj, vacancy);
        Ok(())
    }

    /// A str that only the container being stepped refers to (`item` being
    /// the step's own reference) can be neither in the memo already nor met
    /// again later in the graph. So it takes its memo index (the same
    /// MEMOIZE/BINPUT bytes) without an entry in the memo table, whose random
    /// access is most of the cost of a list of distinct strings. Ok(false):
    /// not such a str, save it the ordinary way.
    #[inline]
    pub fn save_unshared_str(&mut self, item: &Bound<'py, PyAny>) -> PyResult<bool> {
        let ptr = item.as_ptr();
        // SAFETY: reading the type and reference count of an object we hold.
        let unshared = |ptr| unsafe {
            ffi::Py_TYPE(ptr) == &raw mut ffi::PyUnicode_Type && ffi::Py_REFCNT(ptr) == 2
        };
        if !self.is_binary() || self.hooks().persistent_id.is_some() || !unshared(ptr) {
            return Ok(false);
        }
        self.opcode_boundary()?;
        // A frame flushed to a file ran Python code, which may have taken a
        // reference to the string.
        if !unshared(ptr) {
            return Ok(false);
        }
        self.write_binary_str(item)?;
        self.memo_put_anonymous();
        Ok(true)
    }

    /// BINUNICODE and its kin: the str's UTF-8, lone surrogates written as
    /// "surrogatepass" writes them (as `_pickle.c` does).
    fn write_binary_str(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let ptr = obj.as_ptr();
        // SAFETY: `obj` is an exact str, which we hold while the slice lives.
        // A compact ASCII string's characters are its UTF-8 bytes, stored
        // inline after the header.
        if unsafe { ffi::PyUnicode_IS_COMPACT_ASCII(ptr) } != 0 {
            // SAFETY: as above.
            let ascii = unsafe {
                std::slice::from_raw_parts(
                    ffi::PyUnicode_DATA(ptr) as *const u8,
                    crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr)),
                )
            };
            return self.write_str_payload(ascii, None);
        }
        // Encoded here rather than through PyUnicode_AsUTF8AndSize, which
        // would keep a UTF-8 copy of every string alive on the string.
        let mut utf8 = self.take_utf8_scratch();
        utf8.clear();
        // SAFETY: `obj` is an exact str, made ready; its data holds `len`
        // units of `kind` bytes and lives while we hold `obj`.
        unsafe {
            if ffi::PyUnicode_READY(ptr) != 0 {
                self.keep_utf8_scratch(utf8);
                return Err(PyErr::fetch(self.py()));
            }
            let len = crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr));
            let data = ffi::PyUnicode_DATA(ptr);
            match ffi::PyUnicode_KIND(ptr) {
                ffi::PyUnicode_1BYTE_KIND => {
                    let units = std::slice::from_raw_parts(data as *const u8, len);
                    push_utf8(&mut utf8, units.iter().map(|&c| u32::from(c)), len * 2)
                }
                ffi::PyUnicode_2BYTE_KIND => {
                    let units = std::slice::from_raw_parts(data as *const u16, len);
                    push_utf8(&mut utf8, units.iter().map(|&c| u32::from(c)), len * 3)
                }
                _ => {
                    let units = std::slice::from_raw_parts(data as *const u32, len);
                    push_utf8(&mut utf8, units.iter().copied(), len * 4)
                }
            }
        }
        let result = self.write_str_payload(&utf8, None);
        self.keep_utf8_scratch(utf8);
        result
    }

    fn write_str_payload(
        &mut self,
        data: &[u8],
        payload: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let size = data.len();
        let mut header = [0u8; 9];
        let hlen = if size <= 0xff && self.proto() >= 4 {
            header[0] = SHORT_BINUNICODE;
            header[1] = size.to_le_bytes()[0];
            2
        } else if size <= 0xffff_ffff {
            header[0] = BINUNICODE;
            header[1..5].copy_from_slice(&size.to_le_bytes()[..4]);
            5
        } else if self.proto() >= 4 {
            header[0] = BINUNICODE8;
            header[1..9].copy_from_slice(&(size as u64).to_le_bytes());
            9
        } else {
            return Err(PyOverflowError::new_err(
                "serializing a string larger than 4 GiB requires pickle protocol 4 or higher",
            ));
        };
        self.write_payload(&header[..hlen], data, payload)
    }

    pub fn save_bytes(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        if self.proto() < 3 {
            // No bytes opcode: pickle as codecs.encode(latin1 text, 'latin1'),
            // which also loads as a str under Python 2.
            let bytes = obj.cast::<PyBytes>()?;
            let reduce_value = if bytes.as_bytes().is_empty() {
                PyTuple::new(
                    py,
                    [obj.get_type().into_any(), PyTuple::empty(py).into_any()],
                )?
            } else {
                let text = obj.call_method1(intern!(py, "decode"), (intern!(py, "latin1"),))?;
                let args = PyTuple::new(py, [text, intern!(py, "latin1").clone().into_any()])?;
                PyTuple::new(
                    py,
                    [self.st().codecs_encode.bind(py).clone(), args.into_any()],
                )?
            };
            return self.save_reduce(&reduce_value, Some(obj));
        }
        let data = obj.cast::<PyBytes>()?.as_bytes();
        self.save_bytes_data(obj, data)
    }

    fn save_bytes_data(&mut self, obj: &Bound<'py, PyAny>, data: &[u8]) -> PyResult<()> {
        let mut header = [0u8; 9];
        let hlen = self.bytes_header(&mut header, data.len())?;
        self.write_payload(&header[..hlen], data, Some(obj))?;
        self.memo_put(obj);
        Ok(())
    }

    /// The opcode and length of `size` bytes, in `header`; its length.
    fn bytes_header(&self, header: &mut [u8; 9], size: usize) -> PyResult<usize> {
        Ok(if size <= 0xff {
            header[0] = SHORT_BINBYTES;
            header[1] = size.to_le_bytes()[0];
            2
        } else if size <= 0xffff_ffff {
            header[0] = BINBYTES;
            header[1..5].copy_from_slice(&size.to_le_bytes()[..4]);
            5
        } else if self.proto() >= 4 {
            header[0] = BINBYTES8;
            header[1..9].copy_from_slice(&(size as u64).to_le_bytes());
            9
        } else {
            return Err(PyOverflowError::new_err(
                "serializing a bytes object larger than 4 GiB requires pickle protocol 4 or higher",
            ));
        })
    }

    /// Bytes whose identity nothing in the payload depends on (a code
    /// object's bytecode and tables), written without a memo entry; from
    /// protocol 3, which has bytes opcodes, and with no persistent_id hook.
    pub fn save_unmemoized_bytes(&mut self, bytes: &Bound<'py, PyBytes>) -> PyResult<()> {
        self.opcode_boundary()?;
        let data = bytes.as_bytes();
        let mut header = [0u8; 9];
        let hlen = self.bytes_header(&mut header, data.len())?;
        self.write_payload(&header[..hlen], data, Some(bytes.as_any()))
    }

    fn save_bytearray_data(&mut self, obj: &Bound<'py, PyAny>, data: &[u8]) -> PyResult<()> {
        let mut header = [0u8; 9];
        header[0] = BYTEARRAY8;
        header[1..9].copy_from_slice(&(data.len() as u64).to_le_bytes());
        self.write_payload(&header, data, Some(obj))?;
        self.memo_put(obj);
        Ok(())
    }

    pub fn save_bytearray(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        if self.proto() < 5 {
            let cls = obj.get_type().into_any();
            let args = if obj.len()? == 0 {
                PyTuple::empty(py)
            } else {
                // A fresh bytes object, as PyBytes_FromObject makes: the
                // stdlib memoizes it, and a shared 1-byte singleton (what
                // PyBytes::new would give) would turn repeats into memo hits.
                let data = obj.cast::<pyo3::types::PyByteArray>()?.to_vec();
                let bytes = PyBytes::new_with(py, data.len(), |buf| {
                    buf.copy_from_slice(&data);
                    Ok(())
                })?;
                PyTuple::new(py, [bytes])?
            };
            let reduce_value = PyTuple::new(py, [cls, args.into_any()])?;
            return self.save_reduce(&reduce_value, Some(obj));
        }
        let view = BufferView::get(obj)?;
        self.save_bytearray_data(obj, view.bytes())
    }

    pub fn save_picklebuffer(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto() < 5 {
            // The C pickler's message, whose typo 3.13 fixed.
            let message = if cfg!(Py_3_13) {
                "PickleBuffer can only be pickled with protocol >= 5"
            } else {
                "PickleBuffer can only pickled with protocol >= 5"
            };
            return Err(pickling_error(self.py(), message));
        }
        let readonly = {
            let view = PickleBufferView::get(obj)?;
            if !view.is_contiguous() {
                return Err(pickling_error(
                    self.py(),
                    "PickleBuffer can not be pickled when pointing to a non-contiguous buffer",
                ));
            }
            view.readonly()
        };
        let in_band = match &self.hooks().buffer_callback {
            Some(callback) => callback.call1((obj,))?.is_truthy()?,
            None => true,
        };
        if !in_band {
            self.write_byte(NEXT_BUFFER);
            if readonly {
                self.write_byte(READONLY_BUFFER);
            }
            return Ok(());
        }
        // The callback may have released the buffer, whose memory may be
        // gone with it (`_pickle.c` reads the old view, freed or not). An
        // export of our own, which fails once the buffer is released, keeps
        // the memory alive while `file.write` runs, whatever it releases.
        let view = BufferView::get(obj)?;
        if !view.is_contiguous() {
            return Err(pickling_error(
                self.py(),
                "PickleBuffer can not be pickled when pointing to a non-contiguous buffer",
            ));
        }
        if view.readonly() {
            self.save_bytes_data(obj, view.bytes())
        } else {
            self.save_bytearray_data(obj, view.bytes())
        }
    }
}

/// The UTF-8 of `code_points` onto `out`, with room for `max_len` bytes
/// reserved at once.
#[inline]
fn push_utf8(out: &mut Vec<u8>, code_points: impl Iterator<Item = u32>, max_len: usize) {
    out.reserve(max_len);
    for c in code_points {
        crate::utf8::push(out, c);
    }
}

/// Protocol 0's UNICODE payload: raw-unicode-escape, plus escapes for the
/// characters that would break the line-based format.
fn raw_unicode_escape(code_points: impl Iterator<Item = u32>) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escape = |out: &mut Vec<u8>, tag: u8, c: u32, digits: u32| {
        out.extend_from_slice(&[b'\\', tag]);
        out.extend(
            (0..digits)
                .rev()
                .map(|d| HEX[(c >> (4 * d)) as usize & 0xf]),
        );
    };
    let mut out = Vec::new();
    for c in code_points {
        if c >= 0x10000 {
            escape(&mut out, b'U', c, 8);
        } else if c >= 256 || matches!(c, 0x5c | 0 | 0x0a | 0x0d | 0x1a) {
            escape(&mut out, b'u', c, 4);
        } else {
            out.push(c.to_le_bytes()[0]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bytes_match_cpython() {
        assert_eq!(long_le_bytes(0), b"");
        assert_eq!(long_le_bytes(255), [0xff, 0x00]);
        assert_eq!(long_le_bytes(-1), [0xff]);
        assert_eq!(long_le_bytes(-128), [0x80]);
        assert_eq!(long_le_bytes(-129), [0x7f, 0xff]);
        assert_eq!(long_le_bytes(1 << 31), [0, 0, 0, 0x80, 0]);
        assert_eq!(
            long_le_bytes(i128::from(i64::MIN)),
            [0, 0, 0, 0, 0, 0, 0, 0x80]
        );
    }

    #[test]
    fn protocol_0_escapes() {
        let esc = |s: &str| raw_unicode_escape(s.chars().map(|c| c as u32));
        assert_eq!(esc("a\\b\n"), b"a\\u005cb\\u000a");
        assert_eq!(esc("\u{e9}\u{20ac}\u{1f600}"), b"\xe9\\u20ac\\U0001f600");
        assert_eq!(raw_unicode_escape([0xd800u32].into_iter()), b"\\ud800");
    }
}
