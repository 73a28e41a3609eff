//! A growable byte buffer that lives inside a Python `bytes` object, as
//! `_pickle.c`'s output buffer does: `dumps` hands the object over when it
//! is done, trimmed in place, instead of copying the whole pickle out of a
//! Rust allocation (which doubled time and peak memory on a 100 MB payload).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

extern "C" {
    // Exported by libpython (Include/cpython/bytesobject.h) but no longer
    // bound by pyo3-ffi. Resizes a bytes object whose only reference the
    // caller holds; on failure it frees the object, sets *obj to NULL and
    // raises MemoryError.
    fn _PyBytes_Resize(
        obj: *mut *mut ffi::PyObject,
        newsize: ffi::Py_ssize_t,
    ) -> std::os::raw::c_int;
}

/// Small enough for CPython's small-object allocator, whose blocks are
/// cheap to make and to trim: most pickles fit.
const INITIAL_CAPACITY: usize = 256;

/// Out of memory, the buffer goes on counting what is written without
/// storing it (`lost`): offsets taken before (a frame's start) stay valid
/// for the writer, and `finish` reports a MemoryError instead of bytes.
pub struct BytesBuffer<'py> {
    py: Python<'py>,
    /// The bytes object (one owned reference, never shared until `finish`),
    /// or null before the first write and once memory ran out.
    obj: *mut ffi::PyObject,
    data: *mut u8,
    len: usize,
    cap: usize,
    /// The size that could not be allocated, once memory ran out.
    lost: Option<usize>,
}

impl<'py> BytesBuffer<'py> {
    pub fn new(py: Python<'py>) -> Self {
        BytesBuffer {
            py,
            obj: std::ptr::null_mut(),
            data: std::ptr::null_mut(),
            len: 0,
            cap: 0,
            lost: None,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether memory ran out: the contents are lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// Make room for `needed` bytes in all; false (and the contents lost)
    /// when memory runs out.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) -> bool {
        if self.lost.is_some() {
            return false;
        }
        let growth = if self.cap < (1 << 20) {
            self.cap
        } else {
            self.cap / 2
        };
        let new_cap = needed
            .max(self.cap.saturating_add(growth))
            .max(INITIAL_CAPACITY);
        let Ok(size) = ffi::Py_ssize_t::try_from(new_cap) else {
            self.lose(new_cap);
            return false;
        };
        // SAFETY: `obj` is null or a bytes object we alone reference, so it
        // may be resized in place; a new one is made when there is none. On
        // failure the object is freed and set to null, with MemoryError set.
        let grown = unsafe {
            if self.obj.is_null() {
                self.obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
            } else if _PyBytes_Resize(&mut self.obj, size) != 0 {
                self.obj = std::ptr::null_mut();
            }
            !self.obj.is_null()
        };
        if !grown {
            // SAFETY: clears the MemoryError just set (`finish` raises one).
            unsafe { ffi::PyErr_Clear() };
            self.lose(new_cap);
            return false;
        }
        // SAFETY: `obj` is a live bytes object of `new_cap` bytes.
        self.data = unsafe { ffi::PyBytes_AS_STRING(self.obj) }
            .cast::<u8>()
            .cast_mut();
        self.cap = new_cap;
        true
    }

    fn lose(&mut self, wanted: usize) {
        if !self.obj.is_null() {
            // SAFETY: we own one reference and hold the GIL (the `'py` token).
            unsafe { ffi::Py_DECREF(self.obj) };
        }
        self.obj = std::ptr::null_mut();
        self.data = std::ptr::null_mut();
        self.cap = 0;
        self.lost = Some(wanted);
    }

    #[inline]
    pub fn reserve(&mut self, additional: usize) {
        if self.len + additional > self.cap {
            self.grow(self.len + additional);
        }
    }

    #[inline]
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.cap && !self.grow(self.len + bytes.len()) {
            self.len += bytes.len(); // counted, not stored (see `lost`)
            return;
        }
        // SAFETY: there is room for `bytes.len()` more bytes after `len`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(self.len), bytes.len())
        };
        self.len += bytes.len();
    }

    #[inline]
    pub fn push(&mut self, byte: u8) {
        if self.len >= self.cap && !self.grow(self.len + 1) {
            self.len += 1; // counted, not stored (see `lost`)
            return;
        }
        // SAFETY: there is room for one more byte.
        unsafe { *self.data.add(self.len) = byte };
        self.len += 1;
    }

    #[cfg(test)]
    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the first `len` bytes of the buffer are initialized.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    /// The contents, for writing in place (empty once lost).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 || self.lost.is_some() {
            return &mut [];
        }
        // SAFETY: as above, and we hold `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }

    /// Remove `start..end`, moving what follows down.
    pub fn remove(&mut self, start: usize, end: usize) {
        assert!(start <= end && end <= self.len);
        if self.lost.is_none() {
            let tail = self.len - end;
            // SAFETY: both ranges lie within the initialized `len` bytes.
            unsafe { std::ptr::copy(self.data.add(end), self.data.add(start), tail) };
        }
        self.len -= end - start;
    }

    /// Empty the buffer, keeping its allocation; a lost buffer starts over.
    pub fn clear(&mut self) {
        self.len = 0;
        self.lost = None;
    }

    /// The contents as a `bytes` object, trimmed in place; the buffer starts
    /// over empty. A MemoryError if memory ran out on the way.
    pub fn finish(&mut self) -> PyResult<Bound<'py, PyBytes>> {
        let len = std::mem::take(&mut self.len);
        if let Some(wanted) = self.lost.take() {
            return Err(pyo3::exceptions::PyMemoryError::new_err(format!(
                "out of memory for the pickle's output ({wanted} bytes)"
            )));
        }
        if self.obj.is_null() {
            return Ok(PyBytes::new(self.py, b""));
        }
        let mut obj = std::mem::replace(&mut self.obj, std::ptr::null_mut());
        self.data = std::ptr::null_mut();
        self.cap = 0;
        // SAFETY: we hold the only reference to `obj`; shrinking it may still
        // fail, which frees it, sets it to null and raises MemoryError.
        unsafe {
            if _PyBytes_Resize(&mut obj, crate::sizes::ssize(len)) != 0 {
                obj = std::ptr::null_mut();
            }
            Ok(Bound::from_owned_ptr_or_err(self.py, obj)?.cast_into_unchecked())
        }
    }
}

impl Drop for BytesBuffer<'_> {
    fn drop(&mut self) {
        if !self.obj.is_null() {
            // SAFETY: we own one reference and hold the GIL (the `'py` token).
            unsafe { ffi::Py_DECREF(self.obj) };
        }
    }
}
