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

pub struct BytesBuffer<'py> {
    py: Python<'py>,
    /// The bytes object (one owned reference, never shared until `finish`),
    /// or null before the first write.
    obj: *mut ffi::PyObject,
    data: *mut u8,
    len: usize,
    cap: usize,
}

impl<'py> BytesBuffer<'py> {
    pub fn new(py: Python<'py>) -> Self {
        BytesBuffer {
            py,
            obj: std::ptr::null_mut(),
            data: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, needed: usize) {
        let growth = if self.cap < (1 << 20) {
            self.cap
        } else {
            self.cap / 2
        };
        let new_cap = needed.max(self.cap + growth).max(INITIAL_CAPACITY);
        // SAFETY: `obj` is null or a bytes object we alone reference, so it
        // may be resized in place; a new one is made when there is none.
        unsafe {
            if self.obj.is_null() {
                self.obj =
                    ffi::PyBytes_FromStringAndSize(std::ptr::null(), new_cap as ffi::Py_ssize_t);
            } else if _PyBytes_Resize(&mut self.obj, new_cap as ffi::Py_ssize_t) != 0 {
                self.obj = std::ptr::null_mut();
            }
            if self.obj.is_null() {
                ffi::PyErr_Clear();
                panic!("out of memory: cannot grow the pickle output to {new_cap} bytes");
            }
            self.data = ffi::PyBytes_AS_STRING(self.obj) as *mut u8;
        }
        self.cap = new_cap;
    }

    #[inline]
    pub fn reserve(&mut self, additional: usize) {
        if self.len + additional > self.cap {
            self.grow(self.len + additional);
        }
    }

    #[inline]
    pub fn extend(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        // SAFETY: `reserve` made room for `bytes.len()` more bytes after `len`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(self.len), bytes.len())
        };
        self.len += bytes.len();
    }

    #[inline]
    pub fn push(&mut self, byte: u8) {
        self.reserve(1);
        // SAFETY: `reserve` made room for one more byte.
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

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as above, and we hold `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }

    /// Remove `start..end`, moving what follows down.
    pub fn remove(&mut self, start: usize, end: usize) {
        assert!(start <= end && end <= self.len);
        let tail = self.len - end;
        // SAFETY: both ranges lie within the initialized `len` bytes.
        unsafe { std::ptr::copy(self.data.add(end), self.data.add(start), tail) };
        self.len -= end - start;
    }

    /// The contents as a `bytes` object, trimmed in place; the buffer starts
    /// over empty.
    pub fn finish(&mut self) -> Bound<'py, PyBytes> {
        if self.obj.is_null() {
            return PyBytes::new(self.py, b"");
        }
        // SAFETY: we hold the only reference to `obj`; shrinking never needs
        // more memory, but a failure is still handled by `from_owned_ptr_or_err`.
        unsafe {
            let mut obj = std::mem::replace(&mut self.obj, std::ptr::null_mut());
            if _PyBytes_Resize(&mut obj, self.len as ffi::Py_ssize_t) != 0 {
                obj = std::ptr::null_mut();
            }
            self.data = std::ptr::null_mut();
            self.len = 0;
            self.cap = 0;
            match Bound::from_owned_ptr_or_err(self.py, obj) {
                Ok(bytes) => bytes.cast_into_unchecked(),
                Err(_) => panic!("out of memory: cannot trim the pickle output"),
            }
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
