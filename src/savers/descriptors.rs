//! Descriptors the stdlib refuses but that rebuild from their parts:
//! `staticmethod`, `classmethod`, `property`, `types.MappingProxyType`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::engine::Engine;

impl<'py> Engine<'py> {
    /// Save `obj` if it is one of these descriptors; report whether it was.
    pub fn save_descriptor(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        let py = self.py;
        let builtins = py.import("builtins")?;
        let tp = obj.get_type();
        let args = if tp.is(&builtins.getattr("staticmethod")?) || tp.is(&builtins.getattr("classmethod")?) {
            PyTuple::new(py, [obj.getattr(intern!(py, "__func__"))?])?
        } else if tp.is(&builtins.getattr("property")?) {
            let parts = ["fget", "fset", "fdel", "__doc__"].map(|name| obj.getattr(name));
            let [fget, fset, fdel, doc] = parts;
            PyTuple::new(py, [fget?, fset?, fdel?, doc?])?
        } else if tp.is(&py.import("types")?.getattr("MappingProxyType")?) {
            // The proxy's own mapping is not reachable from Python; a copy
            // keeps the contents (and the proxy stays read-only).
            let copy = PyDict::new(py);
            copy.update(obj.cast()?)?;
            PyTuple::new(py, [copy])?
        } else {
            return Ok(false);
        };
        let reduce_value = PyTuple::new(py, [tp.into_any(), args.into_any()])?;
        self.save_reduce(&reduce_value, Some(obj))?;
        Ok(true)
    }
}
