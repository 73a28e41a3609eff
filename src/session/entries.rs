//! Pickling a session's entries with one engine and a memo shared between
//! them; a failed entry is dropped without a trace in the others.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::{MODULE_PID, NAMESPACE_PID};
use crate::engine::memo::Memo;
use crate::engine::{Engine, Hooks, Options};

/// Pickle each value of `entries` (a list of `(name, value)`) as its own
/// pickle, in order, for the namespace of `module`. Returns one item per
/// entry: the pickle's bytes, or the exception that stopped it.
#[pyfunction]
pub fn _session_pickle_entries<'py>(
    module: &Bound<'py, PyAny>,
    entries: &Bound<'py, PyList>,
    protocol: u8,
) -> PyResult<Bound<'py, PyList>> {
    let py = module.py();
    let name = module
        .getattr(pyo3::intern!(py, "__name__"))?
        .extract::<String>()?;
    let namespace = module
        .getattr(pyo3::intern!(py, "__dict__"))?
        .cast_into::<PyDict>()?;
    let opts = Options {
        protocol,
        fix_imports: true,
        ..Default::default()
    };
    let mut engine = Engine::new(
        py,
        opts,
        Hooks::default(),
        Some(Memo::default()),
        None,
        crate::savers::dispatch(),
    )?;
    // The module and its namespace are the loader's: functions saved by
    // value get that namespace as their globals. The module's own functions
    // and classes go by value.
    engine.write_as_persistent_id(module.clone(), MODULE_PID);
    engine.write_as_persistent_id(namespace.into_any(), NAMESPACE_PID);
    engine.pickle_by_value(name);
    engine.memoize_with_explicit_indices();
    let results = PyList::empty(py);
    for entry in entries.iter() {
        let (_, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = entry.extract()?;
        let checkpoint = engine.memo_checkpoint();
        engine.start_entry();
        match engine.dump(&value).and_then(|()| engine.take_output()) {
            Ok(pickle) => results.append(pickle)?,
            Err(err) => {
                engine.discard_failed_dump(checkpoint);
                results.append(err.into_value(py))?;
            }
        }
    }
    Ok(results)
}
