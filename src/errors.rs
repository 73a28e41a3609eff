//! Exception types. turbodill raises the stdlib's own `pickle.PicklingError`
//! (so `except pickle.PicklingError` keeps working) and, for objects that
//! cannot be pickled at all, a subclass of it that is also a `TypeError`,
//! which is what the stdlib raises for them.

use pyo3::prelude::*;

pyo3::import_exception!(pickle, PicklingError);

pub fn pickling_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    PicklingError::new_err(msg.into())
}

/// The class of errors for objects that cannot be pickled at all. It is a
/// `PicklingError`, and a `TypeError` like the one the stdlib raises there.
pub fn make_unpicklable_error(py: Python<'_>) -> PyResult<Py<pyo3::types::PyType>> {
    let bases = (
        py.get_type::<PicklingError>(),
        py.get_type::<pyo3::exceptions::PyTypeError>(),
    );
    let namespace = pyo3::types::PyDict::new(py);
    namespace.set_item("__module__", "turbodill")?;
    namespace.set_item(
        "__doc__",
        "An object of a type that cannot be pickled (a PicklingError and a TypeError).",
    )?;
    let cls = py
        .get_type::<pyo3::types::PyType>()
        .call1(("UnpicklableError", bases, namespace))?;
    Ok(cls.cast_into()?.unbind())
}

/// Re-raise the stdlib's "cannot pickle 'X' object" TypeError as
/// `UnpicklableError`, keeping its message and chaining the original.
pub fn as_unpicklable(py: Python<'_>, err: PyErr, cls: &Bound<'_, pyo3::types::PyType>) -> PyErr {
    if !err
        .get_type(py)
        .is(py.get_type::<pyo3::exceptions::PyTypeError>())
    {
        return err;
    }
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if !message.starts_with("cannot pickle") {
        return err;
    }
    match cls.call1((message,)) {
        Ok(new) => {
            let new = PyErr::from_value(new);
            new.set_cause(py, Some(err));
            new
        }
        Err(e) => e,
    }
}

pyo3::import_exception!(pickle, UnpicklingError);

pyo3::create_exception!(
    turbodill,
    InspectError,
    UnpicklingError,
    "A payload the static opcode walk cannot read: malformed, truncated, or \
     a pickle the C unpickler would reject. `offset` is the opcode's position; \
     `truncated` says whether more input could complete it."
);
