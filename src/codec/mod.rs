//! `turbodill.msgpack`'s core: a data-only MessagePack codec. Plain data is
//! plain MessagePack; tuples, sets, big ints, datetimes, Decimal, UUID,
//! registered classes and back-references (shared objects, cycles) are ext
//! types (`ext`, documented in `docs/msgpack-format.md`). `encode` walks the
//! graph, `decode` rebuilds it from hostile-safe input (`reader`, `strings`),
//! `scalars` carries the fixed-layout value types both ways.
//!
//! The Python shim (`python/turbodill/msgpack.py`) owns the exceptions and
//! the class registry, and makes one `MsgpackCodec` around them.

mod decode;
mod encode;
mod ext;
mod output;
mod reader;
mod scalars;
mod strings;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyMemoryError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyType};
use pyo3::PyTraverseError;

/// The registry kinds, for the native module's exports.
pub use ext::{KIND_ENUM, KIND_NAMEDTUPLE, KIND_OBJECT};

use scalars::StdTypes;

/// The codec: `packb`/`unpackb` with the shim's exceptions and registry.
#[pyclass(frozen, module = "turbodill._native")]
pub struct MsgpackCodec {
    encode_error: Py<PyType>,
    decode_error: Py<PyType>,
    /// `{class: (name, kind, field names)}`, kept up to date by `register`.
    by_type: Py<PyDict>,
    /// `{name: (class, kind, field names)}`.
    by_name: Py<PyDict>,
    types: StdTypes,
    /// `object.__setattr__`, which fills registered instances (frozen ones too).
    object_setattr: Py<PyAny>,
}

#[pymethods]
impl MsgpackCodec {
    #[new]
    fn new(
        py: Python<'_>,
        encode_error: Py<PyType>,
        decode_error: Py<PyType>,
        by_type: Py<PyDict>,
        by_name: Py<PyDict>,
    ) -> PyResult<Self> {
        Ok(MsgpackCodec {
            encode_error,
            decode_error,
            by_type,
            by_name,
            types: StdTypes::import(py)?,
            object_setattr: py
                .get_type::<pyo3::types::PyAny>()
                .getattr("__setattr__")?
                .unbind(),
        })
    }

    /// The references a caller gave (the shim's exceptions and registry,
    /// which cycles may run through); the stdlib types are its modules'.
    /// Frozen, it has no `__clear__`: clearing a registry dict breaks a cycle.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.encode_error)?;
        visit.call(&self.decode_error)?;
        visit.call(&self.by_type)?;
        visit.call(&self.by_name)
    }

    /// Encode `obj` as one MessagePack document.
    fn packb<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        encode::packb(self, obj)
    }

    /// Decode exactly one MessagePack document from a bytes-like object.
    fn unpackb<'py>(&self, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = data.py();
        if let Ok(bytes) = data.cast::<PyBytes>() {
            return decode::unpackb(self, py, bytes.as_bytes());
        }
        // Other buffers are copied: Python code run while decoding (a
        // registered class's) could change them under us.
        let buffer = PyBuffer::<u8>::get(data)?;
        let mut copy = Vec::new();
        if copy.try_reserve_exact(buffer.item_count()).is_err() {
            return Err(PyMemoryError::new_err(format!(
                "out of memory for a copy of the MessagePack input ({} bytes)",
                buffer.item_count()
            )));
        }
        copy.resize(buffer.item_count(), 0);
        buffer.copy_to_slice(py, &mut copy)?;
        decode::unpackb(self, py, &copy)
    }
}
