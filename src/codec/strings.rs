//! Making str and bytes objects: an ASCII fast path, and a cache of
//! dict keys. The same short keys repeat through a document (and from one
//! document to the next); handing out the str made last time saves making
//! it and, since a str keeps its hash, hashing it again on insertion (the
//! technique of orjson and ormsgpack).

use std::cell::RefCell;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Keys longer than this are made afresh each time.
pub const MAX_CACHED_KEY: usize = 64;
const SLOTS: usize = 1024;

/// A new str from UTF-8 bytes; `None` when they are not valid UTF-8.
#[inline]
pub fn new_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    if bytes.is_ascii() {
        return new_ascii_str(py, bytes).map(Some);
    }
    // SAFETY: decodes `bytes` (valid for its length) into a new str, or
    // returns null with a UnicodeDecodeError set, which we clear.
    unsafe {
        let obj = ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            crate::sizes::ssize(bytes.len()),
            std::ptr::null(),
        );
        if obj.is_null() {
            return match PyErr::take(py) {
                Some(err) if err.is_instance_of::<pyo3::exceptions::PyUnicodeDecodeError>(py) => {
                    Ok(None)
                }
                Some(err) => Err(err),
                None => Err(pyo3::exceptions::PySystemError::new_err(
                    "str decoding failed without an exception",
                )),
            };
        }
        Ok(Some(Bound::from_owned_ptr(py, obj)))
    }
}

/// A new bytes object holding a copy of `data`; a MemoryError when there
/// is no room for it.
pub fn new_bytes<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    // SAFETY: copies `data` (valid for its length) into a new bytes object,
    // or returns null with a MemoryError set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), crate::sizes::ssize(data.len())),
        )
        .map(|obj| obj.cast_into_unchecked())
    }
}

#[inline]
fn new_ascii_str<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyUnicode_New(n, 127) makes a compact ASCII str whose n
    // bytes of data (plus a terminating NUL it wrote) we own until we hand
    // the object out; we fill them with ASCII bytes, as its kind requires.
    unsafe {
        let obj = Bound::from_owned_ptr_or_err(
            py,
            ffi::PyUnicode_New(crate::sizes::ssize(bytes.len()), 127),
        )?;
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            ffi::PyUnicode_DATA(obj.as_ptr()) as *mut u8,
            bytes.len(),
        );
        Ok(obj)
    }
}

#[derive(Default)]
pub struct KeyCache {
    /// `(hash of the bytes, the str)`, empty until first used.
    slots: Vec<Option<(u64, Py<PyAny>)>>,
}

/// A quick hash of a short key (FxHash's step over 8-byte words): keys only
/// pick a slot, and a hit is confirmed by comparing the bytes.
#[inline(always)]
fn key_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        h = step(h, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    step(h, u64::from_le_bytes(tail))
}

thread_local! {
    static CACHE: RefCell<KeyCache> = RefCell::default();
}

/// The thread's key cache (a decode nested inside another gets an empty one).
pub fn take_cache() -> KeyCache {
    CACHE.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

pub fn give_back_cache(cache: KeyCache) {
    CACHE.with(|c| *c.borrow_mut() = cache);
}

impl KeyCache {
    /// The str for an ASCII key of at most `MAX_CACHED_KEY` bytes.
    #[inline]
    pub fn ascii_key<'py>(&mut self, py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        debug_assert!(bytes.is_ascii() && bytes.len() <= MAX_CACHED_KEY);
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let hash = key_hash(bytes);
        let slot = &mut self.slots[(hash >> 32) as usize % SLOTS];
        if let Some((cached_hash, key)) = slot {
            // SAFETY: every cached key is a compact ASCII str made by
            // `new_ascii_str`: its length in code points is its length in
            // bytes, stored inline, and it lives while the cache holds it.
            let cached = unsafe {
                let ptr = key.as_ptr();
                std::slice::from_raw_parts(
                    ffi::PyUnicode_DATA(ptr) as *const u8,
                    crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr)),
                )
            };
            if *cached_hash == hash && cached == bytes {
                return Ok(key.bind(py).clone());
            }
        }
        let key = new_ascii_str(py, bytes)?;
        *slot = Some((hash, key.clone().unbind()));
        Ok(key)
    }
}
