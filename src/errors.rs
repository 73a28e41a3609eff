//! Exception types. turbodill raises the stdlib's own `pickle.PicklingError`
//! (so `except pickle.PicklingError` keeps working) and, for objects that
//! cannot be pickled at all, a subclass of it that is also a `TypeError`,
//! which is what the stdlib raises for them.

use pyo3::prelude::*;

pyo3::import_exception!(pickle, PicklingError);

pub fn pickling_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    PicklingError::new_err(msg.into())
}

/// An exception class `turbodill.<name>(pickle.PicklingError, other)`.
fn make_pickling_error_class<'py>(
    py: Python<'py>,
    name: &str,
    other: Bound<'py, pyo3::types::PyType>,
    doc: &str,
) -> PyResult<Py<pyo3::types::PyType>> {
    let bases = (py.get_type::<PicklingError>(), other);
    let namespace = pyo3::types::PyDict::new(py);
    namespace.set_item("__module__", "turbodill")?;
    namespace.set_item("__doc__", doc)?;
    let cls = py
        .get_type::<pyo3::types::PyType>()
        .call1((name, bases, namespace))?;
    Ok(cls.cast_into()?.unbind())
}

/// The class of errors for objects that cannot be pickled at all. It is a
/// `PicklingError`, and a `TypeError` like the one the stdlib raises there.
pub fn make_unpicklable_error(py: Python<'_>) -> PyResult<Py<pyo3::types::PyType>> {
    make_pickling_error_class(
        py,
        "UnpicklableError",
        py.get_type::<pyo3::exceptions::PyTypeError>(),
        "An object of a type that cannot be pickled (a PicklingError and a TypeError).",
    )
}

/// The class of errors for endless recursion in Python code the pickler
/// calls: a `RecursionError`, as the stdlib raises, and a `PicklingError`,
/// as cloudpickle raises.
pub fn make_recursion_error(py: Python<'_>) -> PyResult<Py<pyo3::types::PyType>> {
    make_pickling_error_class(
        py,
        "PicklingRecursionError",
        py.get_type::<pyo3::exceptions::PyRecursionError>(),
        "Endless recursion in Python code called while pickling, such as a \
         __getattribute__ or __reduce__ that calls itself (a PicklingError and a \
         RecursionError).",
    )
}

/// `err` exactly of the builtin type `T`, and its message.
fn exact_with_message<T: pyo3::PyTypeInfo>(py: Python<'_>, err: &PyErr) -> Option<String> {
    if !err.get_type(py).is(py.get_type::<T>()) {
        return None;
    }
    Some(
        err.value(py)
            .str()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

/// `cls(message)`, raised from `err`.
fn reraise_as(
    py: Python<'_>,
    err: PyErr,
    cls: &Bound<'_, pyo3::types::PyType>,
    message: String,
) -> PyErr {
    match cls.call1((message,)) {
        Ok(new) => {
            let new = PyErr::from_value(new);
            new.set_cause(py, Some(err));
            new
        }
        Err(e) => e,
    }
}

/// Re-raise a `RecursionError` from Python code called to pickle an object
/// of type `type_name` as `PicklingRecursionError`, saying so, with the
/// original as its cause.
pub fn as_pickling_recursion(
    py: Python<'_>,
    err: PyErr,
    cls: &Bound<'_, pyo3::types::PyType>,
    type_name: &str,
) -> PyErr {
    match exact_with_message::<pyo3::exceptions::PyRecursionError>(py, &err) {
        Some(message) => {
            let message = format!(
                "cannot pickle '{type_name}' object: endless recursion in Python code called to \
                 pickle it (a __getattribute__, __getattr__, __reduce__ or __getstate__ \
                 that calls itself?): {message}"
            );
            reraise_as(py, err, cls, message)
        }
        None => err,
    }
}

/// Re-raise the stdlib's "cannot pickle 'X' object" TypeError as
/// `UnpicklableError`, keeping its message and chaining the original.
pub fn as_unpicklable(py: Python<'_>, err: PyErr, cls: &Bound<'_, pyo3::types::PyType>) -> PyErr {
    match exact_with_message::<pyo3::exceptions::PyTypeError>(py, &err) {
        Some(message) if message.starts_with("cannot pickle") => reraise_as(py, err, cls, message),
        _ => err,
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
