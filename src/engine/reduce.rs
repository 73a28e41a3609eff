//! The reduce protocol's second half, `save_reduce`: given
//! `(callable, args, state, listitems, dictitems, state_setter)`, write
//! REDUCE / NEWOBJ / NEWOBJ_EX, then memoize, then items and state.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::frames::{Frame, ItemsKind, ReduceTail, SaveCtx};
use super::Engine;
use crate::errors::pickling_error;
use crate::output::opcodes::*;
use crate::pyutil::type_name;

/// How deeply reductions (and persistent ids) may nest. What a reduction
/// brings, its arguments, items and state, is saved inside it, and there a
/// graph may never end: an object reachable from its own `__reduce__`
/// arguments is reduced again and again (it is memoized only after them),
/// and a `__reduce__`, `__getstate__` or `persistent_id` may make a new
/// object at every level. The stdlib stops at its recursion limit (about a
/// thousand levels of anything); we stop here, and let plain containers and
/// natively written plain instances (`savers::instance`), whose parts exist
/// before the dump, nest without limit.
const MAX_OPEN_REDUCTIONS: usize = 100_000;

impl<'py> Engine<'py> {
    /// Count a reduction whose parts are about to be saved. It is closed by
    /// its `ReduceTail` or, when it has items or state, by the
    /// `Frame::LeaveReduction` queued beneath them.
    pub fn enter_reduction(&mut self) -> PyResult<()> {
        if self.open_reductions >= MAX_OPEN_REDUCTIONS {
            return Err(pyo3::exceptions::PyRecursionError::new_err(format!(
                "maximum reduction depth ({MAX_OPEN_REDUCTIONS}) exceeded while pickling an object: \
                 is an object reachable from its own __reduce__ arguments, or does a __reduce__, \
                 __getstate__ or persistent_id make a new object at every level?"
            )));
        }
        self.open_reductions += 1;
        Ok(())
    }

    /// Whether the last failure was this limit (see `enter_reduction`).
    pub fn reduction_limit_reached(&self) -> bool {
        self.open_reductions >= MAX_OPEN_REDUCTIONS
    }

    /// `obj` is the object being reduced (memoized after its constructor
    /// call), or `None` for a call the pickler makes up itself.
    pub fn save_reduce(
        &mut self,
        reduce_value: &Bound<'py, PyTuple>,
        obj: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let py = self.py;
        let size = reduce_value.len();
        if !(2..=6).contains(&size) {
            return Err(pickling_error(
                py,
                "tuple returned by __reduce__ must contain 2 through 6 elements",
            ));
        }
        let item = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
            if i < size {
                let v = reduce_value.get_item(i)?;
                Ok((!v.is_none()).then_some(v))
            } else {
                Ok(None)
            }
        };
        let callable = reduce_value.get_item(0)?;
        let argtup = reduce_value.get_item(1)?;
        let state = item(2)?;
        let listitems = item(3)?;
        let dictitems = item(4)?;
        let state_setter = item(5)?;

        if !callable.is_callable() {
            return Err(pickling_error(
                py,
                "first item of the tuple returned by __reduce__ must be callable",
            ));
        }
        let Ok(argtup) = argtup.cast_into::<PyTuple>() else {
            return Err(pickling_error(
                py,
                "second item of the tuple returned by __reduce__ must be a tuple",
            ));
        };
        for (items, nth) in [(&listitems, "fourth"), (&dictitems, "fifth")] {
            if let Some(it) = items {
                // SAFETY: `it` is a live object; PyIter_Check only reads its type.
                if unsafe { pyo3::ffi::PyIter_Check(it.as_ptr()) } == 0 {
                    return Err(pickling_error(
                        py,
                        format!(
                            "{nth} element of the tuple returned by __reduce__ must be an iterator, not {}",
                            type_name(it)
                        ),
                    ));
                }
            }
        }
        if let Some(setter) = &state_setter {
            if !setter.is_callable() {
                return Err(pickling_error(
                    py,
                    format!(
                        "sixth element of the tuple returned by __reduce__ must be a function, not {}",
                        type_name(setter)
                    ),
                ));
            }
        }

        let (mut use_newobj, mut use_newobj_ex) = (false, false);
        if self.proto >= 2 {
            if let Some(name) = callable.getattr_opt(pyo3::intern!(py, "__name__"))? {
                if let Ok(name) = name.cast::<pyo3::types::PyString>() {
                    let name = name.to_cow()?;
                    use_newobj_ex = name == "__newobj_ex__";
                    use_newobj = name == "__newobj__";
                }
            }
        }

        self.enter_reduction()?;
        let tail = Frame::ReduceTail(ReduceTail {
            obj: obj.cloned(),
            listitems,
            dictitems,
            state,
            state_setter,
        });
        // Frames run last-pushed first: push the tail, then the opcode, then
        // the operands in reverse.
        if use_newobj_ex {
            if argtup.len() != 3 {
                return Err(pickling_error(
                    py,
                    format!(
                        "length of the NEWOBJ_EX argument tuple must be exactly 3, not {}",
                        argtup.len()
                    ),
                ));
            }
            let cls = argtup.get_item(0)?;
            let args = argtup.get_item(1)?;
            let kwargs = argtup.get_item(2)?;
            if !cls.is_instance_of::<PyType>() {
                return Err(pickling_error(
                    py,
                    format!(
                        "first item from NEWOBJ_EX argument tuple must be a class, not {}",
                        type_name(&cls)
                    ),
                ));
            }
            let Ok(args) = args.cast_into::<PyTuple>() else {
                return Err(pickling_error(
                    py,
                    format!(
                        "second item from NEWOBJ_EX argument tuple must be a tuple, not {}",
                        type_name(&argtup.get_item(1)?)
                    ),
                ));
            };
            let Ok(kwargs) = kwargs.cast_into::<PyDict>() else {
                return Err(pickling_error(
                    py,
                    format!(
                        "third item from NEWOBJ_EX argument tuple must be a dict, not {}",
                        type_name(&argtup.get_item(2)?)
                    ),
                ));
            };
            self.stack.push(tail);
            if self.proto >= 4 {
                self.stack.push(Frame::Write(NEWOBJ_EX));
                self.stack
                    .push(Frame::Save(kwargs.into_any(), SaveCtx::default()));
                self.stack
                    .push(Frame::Save(args.into_any(), SaveCtx::default()));
                self.stack.push(Frame::Save(cls, SaveCtx::default()));
            } else {
                // functools.partial(cls.__new__, cls, *args, **kwargs)()
                let mut partial_args = vec![cls.getattr(pyo3::intern!(py, "__new__"))?, cls];
                partial_args.extend(args.iter());
                let callable = self
                    .st
                    .partial
                    .bind(py)
                    .call(PyTuple::new(py, partial_args)?, Some(&kwargs))?;
                self.stack.push(Frame::Write(REDUCE));
                self.stack.push(Frame::Save(
                    PyTuple::empty(py).into_any(),
                    SaveCtx::default(),
                ));
                self.stack.push(Frame::Save(callable, SaveCtx::default()));
            }
        } else if use_newobj {
            if argtup.is_empty() {
                return Err(pickling_error(py, "__newobj__ arglist is empty"));
            }
            let cls = argtup.get_item(0)?;
            if !cls.is_instance_of::<PyType>() {
                return Err(pickling_error(
                    py,
                    "args[0] from __newobj__ args is not a type",
                ));
            }
            if let Some(obj) = obj {
                let obj_class = obj.getattr(pyo3::intern!(py, "__class__"))?;
                if !obj_class.is(&cls) {
                    return Err(pickling_error(
                        py,
                        "args[0] from __newobj__ args has the wrong class",
                    ));
                }
            }
            let newargs = argtup.get_slice(1, argtup.len());
            self.stack.push(tail);
            self.stack.push(Frame::Write(NEWOBJ));
            self.stack
                .push(Frame::Save(newargs.into_any(), SaveCtx::default()));
            self.stack.push(Frame::Save(cls, SaveCtx::default()));
        } else {
            self.stack.push(tail);
            self.stack.push(Frame::Write(REDUCE));
            self.stack
                .push(Frame::Save(argtup.into_any(), SaveCtx::default()));
            self.stack.push(Frame::Save(callable, SaveCtx::default()));
        }
        Ok(())
    }

    /// After the constructor call: a recursive object is fetched back from
    /// the memo; otherwise memoize it and queue items and state.
    pub fn step_reduce_tail(&mut self, t: ReduceTail<'py>) -> PyResult<()> {
        if let Some(obj) = &t.obj {
            if let Some(idx) = self.memo_index_of(obj) {
                self.open_reductions -= 1;
                self.out.write_byte(POP);
                self.memo_get(idx);
                return Ok(());
            }
            self.memo_put(obj);
        }
        // The reduction stays open while its items and state are saved; most
        // have neither, and close here without a frame of their own.
        if t.state.is_some() || t.listitems.is_some() || t.dictitems.is_some() {
            self.stack.push(Frame::LeaveReduction);
        } else {
            self.open_reductions -= 1;
        }
        self.push_state(t.obj, t.state, t.state_setter);
        if let Some(items) = t.dictitems {
            self.push_items(items, ItemsKind::Dict);
        }
        if let Some(items) = t.listitems {
            self.push_items(items, ItemsKind::List);
        }
        Ok(())
    }

    /// Queue the state of `obj`: BUILD, or a call to `state_setter(obj, state)`
    /// whose result is popped.
    pub fn push_state(
        &mut self,
        obj: Option<Bound<'py, PyAny>>,
        state: Option<Bound<'py, PyAny>>,
        state_setter: Option<Bound<'py, PyAny>>,
    ) {
        let Some(state) = state else { return };
        match state_setter {
            Some(setter) => {
                // obj is only None for calls the pickler makes up, which
                // carry no state; saving None keeps the stack shape anyway.
                let target = obj.unwrap_or_else(|| self.py.None().into_bound(self.py));
                for op in [POP, REDUCE, TUPLE2] {
                    self.stack.push(Frame::Write(op));
                }
                self.stack.push(Frame::Save(state, SaveCtx::STATE));
                self.stack.push(Frame::Save(target, SaveCtx::default()));
                self.stack.push(Frame::Save(setter, SaveCtx::default()));
            }
            None => {
                self.stack.push(Frame::Write(BUILD));
                self.stack.push(Frame::Save(state, SaveCtx::STATE));
            }
        }
    }
}
