//! Lengths between Rust (`usize`) and CPython (`Py_ssize_t`). Both sides keep
//! the lengths of real objects within `isize::MAX` (Rust's allocations,
//! CPython's objects), so these conversions never clamp a real length; a
//! value out of range clamps rather than wraps.

use pyo3::ffi::Py_ssize_t;

/// A Rust length or index as CPython takes it.
#[inline]
pub fn ssize(n: usize) -> Py_ssize_t {
    Py_ssize_t::try_from(n).unwrap_or(Py_ssize_t::MAX)
}

/// A length CPython returned (never negative for a live object).
#[inline]
pub fn len(n: Py_ssize_t) -> usize {
    usize::try_from(n).unwrap_or(0)
}
