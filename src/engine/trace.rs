//! `turbodill.detect.trace`: while it is on, every object the savers reduce
//! is reported to a Python sink as `sink(path, obj, how, reduction)`, with
//! its path in the graph and the way it is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use pyo3::prelude::*;

use super::Engine;

static ON: AtomicBool = AtomicBool::new(false);
static SINK: RwLock<Option<Py<PyAny>>> = RwLock::new(None);

/// Whether a sink is set (one relaxed load: the savers ask for every object).
#[inline]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Set the sink, or remove it with `None` (`turbodill.detect.trace`).
#[pyfunction]
pub fn _set_trace_sink(sink: Option<Py<PyAny>>) {
    let on = sink.is_some();
    if let Ok(mut slot) = SINK.write() {
        *slot = sink;
        ON.store(on, Ordering::Relaxed);
    }
}

impl<'py> Engine<'py> {
    /// Report `obj`, written as `how` (with the reduction, when there is one).
    pub fn trace(
        &self,
        obj: &Bound<'py, PyAny>,
        how: &str,
        reduction: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        if !is_on() {
            return Ok(());
        }
        let py = self.py;
        let sink = match SINK.read() {
            Ok(slot) => slot.as_ref().map(|s| s.clone_ref(py)),
            Err(_) => None,
        };
        if let Some(sink) = sink {
            let path = super::path::current_path(self);
            sink.call1(py, (path, obj, how, reduction))?;
        }
        Ok(())
    }
}
