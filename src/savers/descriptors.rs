//! Descriptors the stdlib refuses but that rebuild from their parts:
//! `staticmethod`, `classmethod`, `property`, and the C-level descriptors
//! found in a class's `__dict__`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::engine::frames::{deferred, Frame, SaveCtx};
use crate::engine::Engine;
use crate::output::opcodes::{MARK, REDUCE, TUPLE};

/// Types whose instances live in a class `__dict__` and are fetched back
/// from there: `vars(cls)[name]`.
const CLASS_DICT_DESCRIPTORS: &[&str] = &["ClassMethodDescriptorType", "GetSetDescriptorType", "MemberDescriptorType"];

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
        } else {
            let types = py.import("types")?;
            for name in CLASS_DICT_DESCRIPTORS {
                if tp.is(&types.getattr(*name)?) {
                    self.save_class_dict_entry(obj)?;
                    return Ok(true);
                }
            }
            return Ok(false);
        };
        let reduce_value = PyTuple::new(py, [tp.into_any(), args.into_any()])?;
        self.save_reduce(&reduce_value, Some(obj))?;
        Ok(true)
    }

    /// `operator.getitem(getattr(cls, '__dict__'), name)`, memoized as `obj`.
    fn save_class_dict_entry(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let owner = obj.getattr(intern!(py, "__objclass__"))?;
        let name = obj.getattr(intern!(py, "__name__"))?;
        let getitem = py.import("operator")?.getattr("getitem")?;
        let getattr = self.st.getattr.bind(py).clone();
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
