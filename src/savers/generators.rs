//! Suspended generators, coroutines and async generators, by value: the
//! frame read off the object (`genframe::snapshot`) and written as
//!
//! ```text
//! _reconstruct.make_generator(func, code_digest, python_version)   # memoized
//! _reconstruct.restore_generator(gen, (format, frame_state, lasti,
//!                                      slots, present, exc_value, name, qualname))
//! ```
//!
//! `make_generator` calls the function for a fresh, not started generator
//! (a frame of the right size), memoized before its state so the frame may
//! refer back to it; `restore_generator` checks the state against the code
//! and fills the frame. The function goes by the usual function saver (by
//! reference when importable: the digest then makes sure its code is the
//! one the frame ran). A finished generator has no frame left:
//! `make_finished_generator(code, name, qualname)`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::engine::Engine;
use crate::genframe;

/// The version of the state tuple `restore_generator` reads.
const STATE_FORMAT: u8 = 1;

impl<'py> Engine<'py> {
    pub fn save_generator(&mut self, gen: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        let unpicklable = |why: String| -> PyErr {
            let qualname = gen
                .getattr(intern!(py, "__qualname__"))
                .map(|q| q.to_string())
                .unwrap_or_default();
            let kind = crate::pyutil::type_name(gen);
            PyErr::from_type(
                self.st().unpicklable_error.bind(py).clone(),
                format!("cannot pickle {kind} {qualname:?}: {why}"),
            )
        };
        let snapshot = genframe::snapshot(gen).map_err(unpicklable)?;
        let reconstruct = py.import(intern!(py, "turbodill._reconstruct"))?;
        let name = gen.getattr(intern!(py, "__name__"))?;
        let qualname = gen.getattr(intern!(py, "__qualname__"))?;
        if snapshot.frame_state == genframe::state::EXECUTING {
            return Err(unpicklable(
                "it is running (pickled from inside its own frame, or from code it called)".into(),
            ));
        }
        if snapshot.running_async {
            return Err(unpicklable(
                "it is suspended inside an await of its own; the asend()/athrow() awaitable \
                 driving it is not captured"
                    .into(),
            ));
        }
        let Some(func) = snapshot.func else {
            let code = genframe::code_of(gen)?;
            let args = PyTuple::new(py, [code, name, qualname])?;
            let reduce_value = PyTuple::new(
                py,
                [
                    reconstruct.getattr(intern!(py, "make_finished_generator"))?,
                    args.into_any(),
                ],
            )?;
            return self.save_reduce(&reduce_value, Some(gen));
        };
        let code = genframe::code_of(gen)?;
        if !func.getattr(intern!(py, "__code__"))?.is(&code) {
            return Err(unpicklable(
                "its function's __code__ was replaced after the generator was made".into(),
            ));
        }
        let digest = py
            .import(intern!(py, "turbodill._generators"))?
            .call_method1(intern!(py, "code_digest"), (&code,))?;
        let version = py
            .import(intern!(py, "sys"))?
            .getattr(intern!(py, "version_info"))?
            .get_item(pyo3::types::PySlice::new(py, 0, 2, 1))?;
        let present: Vec<u8> = snapshot
            .slots
            .iter()
            .map(|s| u8::from(s.is_some()))
            .collect();
        let slots = PyList::new(
            py,
            snapshot
                .slots
                .into_iter()
                .map(|s| s.unwrap_or_else(|| py.None().into_bound(py))),
        )?;
        let none = || py.None().into_bound(py);
        let state = PyTuple::new(
            py,
            [
                STATE_FORMAT.into_pyobject(py)?.into_any(),
                snapshot.frame_state.into_pyobject(py)?.into_any(),
                snapshot.lasti.into_pyobject(py)?.into_any(),
                slots.into_any(),
                PyBytes::new(py, &present).into_any(),
                snapshot.exc_value.unwrap_or_else(none),
                name,
                qualname,
            ],
        )?;
        let args = PyTuple::new(py, [func, digest, version])?;
        let reduce_value = PyTuple::new(
            py,
            [
                reconstruct.getattr(intern!(py, "make_generator"))?,
                args.into_any(),
                state.into_any(),
                none(),
                none(),
                reconstruct.getattr(intern!(py, "restore_generator"))?,
            ],
        )?;
        self.save_reduce(&reduce_value, Some(gen))
    }
}
