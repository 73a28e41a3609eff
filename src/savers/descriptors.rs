//! Descriptors the stdlib refuses but that rebuild from their parts:
//! `staticmethod`, `classmethod`, `property`, and the C-level descriptors
//! found in a class's `__dict__`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::engine::frames::{deferred, Frame, SaveCtx};
use crate::engine::Engine;
use crate::output::opcodes::{MARK, REDUCE, TUPLE};

impl<'py> Engine<'py> {
    /// Save `obj` if it is one of these descriptors; report whether it was.
    pub fn save_descriptor(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        let py = self.py();
        let st = self.st();
        let tp = obj.get_type();
        let args = if tp.is(st.staticmethod_type.bind(py)) || tp.is(st.classmethod_type.bind(py)) {
            PyTuple::new(py, [obj.getattr(intern!(py, "__func__"))?])?
        } else if tp.is(st.property_type.bind(py)) {
            let parts = [
                intern!(py, "fget"),
                intern!(py, "fset"),
                intern!(py, "fdel"),
                intern!(py, "__doc__"),
            ]
            .map(|name| obj.getattr(name));
            let [fget, fset, fdel, doc] = parts;
            PyTuple::new(py, [fget?, fset?, fdel?, doc?])?
        } else if st
            .class_dict_descriptor_types
            .iter()
            .any(|t| tp.is(t.bind(py)))
        {
            self.trace(obj, "descriptor from its class's __dict__", None)?;
            self.save_class_dict_entry(obj)?;
            return Ok(true);
        } else {
            return Ok(false);
        };
        let reduce_value = PyTuple::new(py, [tp.into_any(), args.into_any()])?;
        self.trace(obj, "descriptor", Some(reduce_value.as_any()))?;
        self.save_reduce(&reduce_value, Some(obj))?;
        Ok(true)
    }

    /// `operator.getitem(getattr(cls, '__dict__'), name)`, memoized as `obj`.
    fn save_class_dict_entry(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        let owner = obj.getattr(intern!(py, "__objclass__"))?;
        let name = obj.getattr(intern!(py, "__name__"))?;
        let getitem = py.import("operator")?.getattr("getitem")?;
        let getattr = self.st().getattr.bind(py).clone();
        let dunder_dict = intern!(py, "__dict__").clone().into_any();
        let target = obj.clone();
        let save = |o: Bound<'py, PyAny>| Frame::Save(o, SaveCtx::default());
        self.queue([
            save(getitem),
            Frame::Write(MARK),
            save(getattr),
            Frame::Write(MARK),
            save(owner),
            save(dunder_dict),
            Frame::Write(TUPLE),
            Frame::Write(REDUCE),
            save(name),
            Frame::Write(TUPLE),
            Frame::Write(REDUCE),
            deferred(move |e| {
                e.memo_put(&target);
                Ok(())
            }),
        ]);
        Ok(())
    }
}
