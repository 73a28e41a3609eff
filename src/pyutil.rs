//! Small helpers on Python objects that every layer uses: names and reprs
//! for messages, ints as the pickler and the codec write them, error-path
//! segments. Nothing here knows about pickling or the codec.

use std::os::raw::c_long;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};

/// The name of `obj`'s type, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `repr(obj)`, for messages; a placeholder when repr itself fails.
pub fn repr_of(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unrepresentable object>".into())
}

/// `str(obj)`, for messages; a placeholder when str itself fails.
pub fn str_of(obj: &Bound<'_, PyAny>) -> String {
    obj.str()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable object>".into())
}

/// Whether `tp` is `type` or derives from it (a metaclass): a flag check,
/// where `issubclass` would go through `__subclasscheck__`.
pub fn is_metaclass(tp: &Bound<'_, PyType>) -> bool {
    // SAFETY: reading the flags of a live type object.
    unsafe { ffi::PyType_FastSubclass(tp.as_type_ptr(), ffi::Py_TPFLAGS_TYPE_SUBCLASS) != 0 }
}

/// Whether `base` is on `tp`'s MRO (no `__subclasscheck__`). `tp` must be
/// ready (its MRO set).
pub fn derives_from(tp: &Bound<'_, PyType>, base: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: both are live type objects; PyType_IsSubtype reads `tp`'s MRO
    // (or walks `tp_base` when it has none yet).
    unsafe { ffi::PyType_IsSubtype(tp.as_type_ptr(), base) != 0 }
}

const MAX_KEY_REPR: usize = 60;

/// A dict key as an error-path segment: `.name` for an identifier when
/// `as_attribute` (a state dict), else `[repr]`, cut to a readable length.
pub fn key_segment(key: &Bound<'_, PyAny>, as_attribute: bool) -> String {
    if as_attribute {
        if let Ok(s) = key.cast::<PyString>() {
            if let Ok(s) = s.to_str() {
                if !s.is_empty() && s.chars().all(|c| c == '_' || c.is_alphanumeric()) {
                    return format!(".{s}");
                }
            }
        }
    }
    let mut r = key
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    if r.len() > MAX_KEY_REPR {
        let cut = (0..=MAX_KEY_REPR)
            .rev()
            .find(|&i| r.is_char_boundary(i))
            .unwrap_or(0);
        r.truncate(cut);
        r.push('…');
    }
    format!("[{r}]")
}

/// The value of an exact int that fits in an `i64`, or `None`.
///
/// On 3.11 to 3.13 an int of at most two 30-bit digits is read straight
/// from the object, which saves a call per integer on int-heavy data; other
/// versions and larger ints ask `PyLong_AsLongAndOverflow`.
#[inline]
pub fn small_long_value(obj: &Bound<'_, PyAny>) -> Option<i64> {
    #[cfg(all(Py_3_11, not(Py_3_14)))]
    {
        // SAFETY: `obj` is an exact int, so it is a PyLongObject: a header
        // giving the sign and digit count, followed by that many u32 digits
        // of 30 bits. 3.11 (`longintrepr.h`): a PyVarObject whose ob_size
        // is the signed digit count. 3.12 and 3.13: a PyObject followed by
        // `lv_tag`, the digit count shifted left by 3 over two sign bits
        // (0 positive, 1 zero, 2 negative).
        unsafe {
            let header = obj.as_ptr() as *const u8;
            #[cfg(not(Py_3_12))]
            let (negative, ndigits, digits) = {
                let size = (*(header as *const ffi::PyVarObject)).ob_size;
                let digits = header.add(std::mem::size_of::<ffi::PyVarObject>());
                (size < 0, size.unsigned_abs(), digits as *const u32)
            };
            #[cfg(Py_3_12)]
            let (negative, ndigits, digits) = {
                let tag_at = header.add(std::mem::size_of::<ffi::PyObject>());
                let tag = *(tag_at as *const usize);
                let digits = tag_at.add(std::mem::size_of::<usize>());
                (tag & 3 == 2, tag >> 3, digits as *const u32)
            };
            let magnitude = match ndigits {
                0 => Some(0),
                1 => Some(i64::from(*digits)),
                2 => Some(i64::from(*digits) | (i64::from(*digits.add(1)) << 30)),
                _ => None,
            };
            if let Some(v) = magnitude {
                return Some(if negative { -v } else { v });
            }
        }
    }
    let mut overflow = 0;
    // SAFETY: `obj` is an exact int.
    let val: c_long = unsafe { ffi::PyLong_AsLongAndOverflow(obj.as_ptr(), &mut overflow) };
    (overflow == 0).then_some(val as i64)
}

/// Minimal little-endian two's-complement bytes of any int (LONG1/LONG4's
/// payload), through `int.to_bytes`: for ints beyond an i64.
#[cold]
pub fn int_to_le_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let py = obj.py();
    let nbits: usize = obj.call_method0(intern!(py, "bit_length"))?.extract()?;
    let nbytes = (nbits >> 3) + 1;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item(intern!(py, "signed"), true)?;
    let bytes = obj.call_method(
        intern!(py, "to_bytes"),
        (nbytes, intern!(py, "little")),
        Some(&kwargs),
    )?;
    let mut data = bytes.cast::<PyBytes>()?.as_bytes().to_vec();
    let n = data.len();
    if n > 1 && data[n - 1] == 0xff && data[n - 2] & 0x80 != 0 {
        data.pop();
    }
    Ok(data)
}
