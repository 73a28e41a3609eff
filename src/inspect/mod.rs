//! Inspection without execution: a static walk over a pickle's opcodes that
//! reports every global it would import and everything it would call,
//! running none of it. `turbodill._inspect` builds the public report from
//! the dict `inspect_opcodes` returns; restricted loading judges it before
//! the C unpickler sees a byte.
//!
//! `reader` reads opcode arguments within the input's bounds, `walk` runs
//! the symbolic machine, `facts` holds what it found.

mod facts;
mod reader;
mod walk;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::InspectError;
use facts::{Callee, Facts, GlobalRef};

#[derive(Debug)]
pub enum WalkError {
    /// A length or a line runs past the end of the input.
    Truncated,
    /// Input `_pickle.c` would reject (or that the walk cannot follow).
    Malformed(String),
    OutOfMemory,
}

/// Room for one more item, as a MemoryError rather than an abort.
fn grow<T>(items: &mut Vec<T>) -> Result<(), WalkError> {
    items.try_reserve(1).map_err(|_| WalkError::OutOfMemory)
}

/// Walk the first pickle in `data` (any bytes-like object), executing
/// nothing; a dict of what the walk found (see `turbodill._inspect`).
#[pyfunction]
pub fn inspect_opcodes<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = data.py();
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return report(py, bytes.as_bytes());
    }
    let buffer = PyBuffer::<u8>::get(data)?;
    match buffer.as_slice_ptr() {
        // SAFETY: the buffer is C-contiguous and stays exported (alive and
        // unmoved) while `buffer` lives; the walk runs no Python code, so
        // nothing writes to it meanwhile.
        Some(slice) => report(py, unsafe { slice.as_ref() }),
        None => report(py, &buffer.to_vec(py)?),
    }
}

fn report<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    match walk::walk(data) {
        Ok(facts) => to_dict(py, facts, data.len()),
        Err((error, offset)) => Err(to_pyerr(py, error, offset)),
    }
}

fn to_pyerr(py: Python<'_>, error: WalkError, offset: usize) -> PyErr {
    let (message, truncated) = match error {
        WalkError::OutOfMemory => return pyo3::exceptions::PyMemoryError::new_err(()),
        WalkError::Truncated => ("pickle data was truncated".to_owned(), true),
        WalkError::Malformed(message) => (message, false),
    };
    let err = InspectError::new_err(format!("{message} (opcode at offset {offset})"));
    let value = err.value(py);
    match value
        .setattr("offset", offset)
        .and_then(|_| value.setattr("truncated", truncated))
    {
        Ok(()) => err,
        Err(e) => e,
    }
}

fn to_dict(py: Python<'_>, facts: Facts, len: usize) -> PyResult<Bound<'_, PyDict>> {
    let globals = PyList::empty(py);
    for (global, count) in &facts.globals.entries {
        match global {
            GlobalRef::Named { module, name } => globals.append(("global", module, name, count))?,
            GlobalRef::Extension(code) => globals.append(("extension", code, py.None(), count))?,
            GlobalRef::Attribute { base, name } => {
                globals.append(("attribute", base, name, count))?
            }
        }
    }
    let calls = PyList::empty(py);
    for (callee, count) in &facts.calls.entries {
        match *callee {
            Callee::Call(global) => calls.append(("call", global, py.None(), count))?,
            Callee::Instance(maker, method) => calls.append(("instance", maker, method, count))?,
            Callee::Global(global, method) => calls.append(("global", global, method, count))?,
        }
    }
    let out = PyDict::new(py);
    out.set_item("size", facts.size)?;
    out.set_item("trailing", len - facts.size)?;
    out.set_item("proto", facts.proto)?;
    out.set_item("opcode_protocol", facts.opcode_protocol)?;
    out.set_item("opcodes", facts.opcodes)?;
    out.set_item("frames", facts.frames)?;
    out.set_item("globals", globals)?;
    out.set_item("calls", calls)?;
    out.set_item("dynamic_globals", facts.dynamic_globals)?;
    out.set_item("persistent_ids", facts.persistent_ids)?;
    out.set_item("buffers", facts.buffers)?;
    out.set_item("memo_size", facts.memo_size)?;
    out.set_item("tuple_depth", facts.tuple_depth)?;
    Ok(out)
}
