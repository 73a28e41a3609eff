//! Exception types. turbodill raises the stdlib's own `pickle.PicklingError`
//! (so `except pickle.PicklingError` keeps working) and, for objects that
//! cannot be pickled at all, a subclass of it that is also a `TypeError`,
//! which is what the stdlib raises for them.

use pyo3::prelude::*;

pyo3::import_exception!(pickle, PicklingError);

pub fn pickling_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    PicklingError::new_err(msg.into())
}
