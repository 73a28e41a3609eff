//! Layer 3: what to write for each type. `save()` dispatches on the exact
//! type pointer, most frequent first, the way `_pickle.c`'s `save()` does;
//! `step()` advances a container frame by as many items as it can.

pub mod atoms;
pub mod classes;
pub mod containers;
pub mod descriptors;
pub mod functions;
pub mod generators;
pub mod instance;
pub mod weakrefs;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::engine::frames::{Frame, SaveCtx};

/// `items` in a canonical order: by type name, then repr.
pub fn canonical_order<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let mut keyed = items
        .map(|item| {
            Ok((
                (crate::pyutil::type_name(&item), item.repr()?.to_string()),
                item,
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, item)| item).collect())
}

/// Whether `tp` was made by a class statement or `type(...)` (a heap type),
/// not defined in C.
pub fn is_heap_type(tp: &Bound<'_, pyo3::types::PyType>) -> bool {
    // SAFETY: reading the flags of a live type object.
    unsafe { (*tp.as_type_ptr()).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE != 0 }
}

use crate::engine::{Dispatch, Engine, ObjectKey};

/// The savers as the engine calls them (see `engine::Dispatch`); the
/// pickler and the session give these to each engine they build.
pub fn dispatch<'py>() -> Dispatch<'py> {
    Dispatch {
        save: Engine::save,
        step_container: Engine::step_container,
    }
}

impl<'py> Engine<'py> {
    pub fn save(&mut self, obj: &Bound<'py, PyAny>, ctx: SaveCtx) -> PyResult<()> {
        self.opcode_boundary()?;
        if !ctx.is_pid && self.hooks().persistent_id.is_some() && self.save_persistent_id(obj)? {
            return Ok(());
        }
        // Dispatch on the exact type pointer: the savers below may run Python
        // code, and each keeps its own unsafe reads to itself.
        let ptr = obj.as_ptr();
        let tp = obj.get_type_ptr();
        if obj.is_none() {
            self.write_byte(crate::output::opcodes::NONE);
            return Ok(());
        }
        // SAFETY: the addresses of the two bool singletons; nothing is read.
        let (true_ptr, false_ptr) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
        if ptr == true_ptr || ptr == false_ptr {
            self.save_bool(ptr == true_ptr);
            return Ok(());
        }
        if tp == &raw mut ffi::PyLong_Type {
            return self.save_long(obj);
        }
        if tp == &raw mut ffi::PyFloat_Type {
            return self.save_float(obj);
        }
        let vacancy = match self.memo_lookup(obj) {
            Ok(idx) => {
                self.memo_get(idx);
                return Ok(());
            }
            Err(vacancy) => vacancy,
        };
        if tp == &raw mut ffi::PyUnicode_Type {
            return self.save_str(obj, vacancy);
        }
        if tp == &raw mut ffi::PyBytes_Type {
            return self.save_bytes(obj);
        }
        if let Some(pid) = self.pinned_persistent_id(obj) {
            let pid = pyo3::types::PyString::new(self.py(), pid);
            return self.write_persistent_id(pid.as_any());
        }
        if tp == &raw mut ffi::PyDict_Type {
            return self.save_dict(obj, ctx);
        }
        if tp == &raw mut ffi::PyList_Type {
            return self.save_list(obj);
        }
        if tp == &raw mut ffi::PyTuple_Type {
            return self.save_tuple(obj);
        }
        if tp == &raw mut ffi::PySet_Type {
            return self.save_set(obj);
        }
        if tp == &raw mut ffi::PyFrozenSet_Type {
            return self.save_frozenset(obj);
        }
        if tp == &raw mut ffi::PyByteArray_Type {
            return self.save_bytearray(obj);
        }
        if tp == self.st().picklebuffer_type.as_ptr().cast() {
            return self.save_picklebuffer(obj);
        }
        self.save_reducible(obj)
            .map_err(|err| self.recursion_in_python_code(err, obj))
    }

    /// A RecursionError from Python code called to pickle `obj` (a
    /// `__getattribute__` that calls itself...) as `PicklingRecursionError`.
    /// Past its own reduction limit the pickler raises a plain
    /// RecursionError, as the stdlib does at its recursion limit.
    fn recursion_in_python_code(&self, err: PyErr, obj: &Bound<'py, PyAny>) -> PyErr {
        if self.reduction_limit_reached() {
            return err;
        }
        let cls = self.st().recursion_error.bind(self.py());
        let type_name = crate::pyutil::type_name(obj);
        crate::errors::as_pickling_recursion(self.py(), err, cls, &type_name)
    }

    /// Begin a container's frame. Small nests of containers are stepped right
    /// away, inside one another, which saves pushing and popping the frame;
    /// past `MAX_INLINE_DEPTH` levels the frame goes on the heap stack, so
    /// the Rust stack stays bounded whatever the depth of the graph.
    #[inline]
    pub fn start(&mut self, frame: Frame<'py>) -> PyResult<()> {
        const MAX_INLINE_DEPTH: u32 = 8;
        if !self.enter_inline_step(MAX_INLINE_DEPTH) {
            self.reserve_stack()?;
            self.push_frame(frame);
            return Ok(());
        }
        let result = self.step_container(frame);
        self.leave_inline_step();
        result
    }

    /// Advance a container's frame (the engine steps its own frames).
    pub fn step_container(&mut self, frame: Frame<'py>) -> PyResult<()> {
        match frame {
            Frame::List(f) => self.step_list(f),
            Frame::Dict(f) => self.step_dict(f),
            Frame::Items(f) => self.step_items(f),
            Frame::Set(f) => self.step_set(f),
            Frame::Tuple(f) => self.step_tuple(f),
            Frame::FrozenSet(f) => self.step_frozenset(f),
            other => self.step(other),
        }
    }
}

/// How the instance fast path is named in a trace.
const INSTANCE_PATH: &str = "instance: cls() NEWOBJ, state BUILD";

impl<'py> Engine<'py> {
    /// Everything that is not a builtin scalar or container: the
    /// `reducer_override` hook, classes and functions by reference, dispatch
    /// tables, then `__reduce_ex__` / `__reduce__`.
    fn save_reducible(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        if let Some(hook) = &self.hooks().reducer_override {
            let reduce_value = hook.call1((obj,))?;
            if !reduce_value.is(py.NotImplemented()) {
                self.trace(obj, "reducer_override", Some(&reduce_value))?;
                return self.save_reduce_value(obj, &reduce_value);
            }
        }
        let tp = obj.get_type();
        let tp_ptr = tp.as_type_ptr();
        if tp_ptr == &raw mut ffi::PyType_Type {
            return self.save_type(obj);
        }
        if tp_ptr == &raw mut ffi::PyFunction_Type {
            if crate::engine::trace::is_on() {
                let how = match self.reference_location(obj)? {
                    Some(_) => "function by reference",
                    None => "function by value",
                };
                self.trace(obj, how, None)?;
            }
            return self.save_function(obj);
        }
        let reduce_func = match &self.hooks().dispatch_table {
            Some(table) => match table.get_item(&tp) {
                Ok(f) => Some(f),
                Err(err) if err.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => None,
                Err(err) => return Err(err),
            },
            None => self.st().copyreg_dispatch_table.bind(py).get_item(&tp)?,
        };
        let reduce_value = if let Some(f) = reduce_func {
            f.call1((obj,))?
        } else if !crate::engine::type_is_ready(&tp) {
            // Attribute lookup finds nothing on such a type: no `__reduce_ex__`.
            return Err(self.no_reduction(obj)?);
        } else if let Some(layout) = self.known_instance_layout(&tp) {
            // An earlier instance of this class took the instance path in
            // this dump: every check below was false for its type.
            self.trace(obj, INSTANCE_PATH, None)?;
            if self.save_instance(obj, &layout)? {
                return Ok(());
            }
            return self.save_own_reduction(obj, &tp);
        } else if crate::pyutil::is_metaclass(&tp) {
            return self.save_class(obj);
        } else if tp_ptr == &raw mut ffi::PyCode_Type {
            self.trace(obj, "code object by value", None)?;
            return self.save_code(obj);
        } else if tp_ptr == &raw mut ffi::PyCell_Type {
            self.trace(obj, "cell by value", None)?;
            return self.save_cell(obj);
        } else if crate::genframe::is_generator(obj) {
            return self.save_generator(obj);
        } else if crate::pyutil::derives_from(&tp, &raw mut ffi::PyModule_Type) {
            self.trace(obj, "module", None)?;
            return self.save_module(obj);
        } else if (tp.is(self.st().method_type.bind(py)) && self.save_method_by_value(obj)?)
            || self.save_descriptor(obj)?
            || self.save_proxy_to_memoized(obj)?
        {
            return Ok(());
        } else {
            if let Some(reducer) = self.long_tail_reducer(&tp)? {
                let reduce_value = reducer.call1((obj, self.fmode()))?;
                self.trace(obj, "turbodill reducer", Some(&reduce_value))?;
                return self.save_reduce_value(obj, &reduce_value);
            }
            if self.hooks().reducer_override.is_none() && self.hooks().persistent_id.is_none() {
                if let Some(layout) = self.instance_layout(&tp)? {
                    self.trace(obj, INSTANCE_PATH, None)?;
                    if self.save_instance(obj, &layout)? {
                        return Ok(());
                    }
                }
            }
            return self.save_own_reduction(obj, &tp);
        };
        self.trace(obj, "dispatch table", Some(&reduce_value))?;
        self.save_reduce_value(obj, &reduce_value)
    }

    /// `obj.__reduce_ex__(proto)`, or `obj.__reduce__()`, saved.
    fn save_own_reduction(
        &mut self,
        obj: &Bound<'py, PyAny>,
        tp: &Bound<'py, pyo3::types::PyType>,
    ) -> PyResult<()> {
        let py = self.py();
        let own = if let Some(f) = obj.getattr_opt(pyo3::intern!(py, "__reduce_ex__"))? {
            f.call1((self.proto(),)).map_err(|e| {
                crate::errors::as_unpicklable(py, e, self.st().unpicklable_error.bind(py))
            })?
        } else if let Some(f) = obj.getattr_opt(pyo3::intern!(py, "__reduce__"))? {
            f.call0()?
        } else {
            return Err(self.no_reduction(obj)?);
        };
        let own = self.set_state_directly(tp, own)?;
        self.trace(obj, "__reduce_ex__", Some(&own))?;
        self.save_reduce_value(obj, &own)
    }

    /// An object's own reduction, given a state setter that fills its
    /// `__dict__` directly when loading it with BUILD would consult its
    /// class's `__getattr__` (the unpickler looks `__setstate__` up on the
    /// half-built instance: a `__getattr__` delegating to an attribute not
    /// yet set recurses). Decided by `_reducers.state_setter_for`, once per
    /// class per dump; only classes with a custom `tp_getattro` are asked.
    fn set_state_directly(
        &mut self,
        tp: &Bound<'py, pyo3::types::PyType>,
        reduce_value: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py();
        // SAFETY: reading a slot of a live type object.
        let generic_getattr = unsafe {
            (*tp.as_type_ptr()).tp_getattro.map(|f| f as usize)
                == Some(ffi::PyObject_GenericGetAttr as *const () as usize)
        };
        let Ok(reduction) = reduce_value.cast::<pyo3::types::PyTuple>() else {
            return Ok(reduce_value);
        };
        let len = reduction.len();
        if generic_getattr
            || !(3..=6).contains(&len)
            || reduction.get_item(2)?.is_none()
            || (len == 6 && !reduction.get_item(5)?.is_none())
        {
            return Ok(reduce_value);
        }
        let key = tp.as_ptr() as usize;
        let setter = match self.caches().direct_state_setters.get(&key) {
            Some(known) => known.clone(),
            None => {
                let by_value = self.reference_location(tp.as_any())?.is_none();
                let setter = py
                    .import("turbodill._reducers")?
                    .getattr("state_setter_for")?
                    .call1((tp, by_value))?;
                let setter = (!setter.is_none()).then_some(setter);
                self.caches()
                    .direct_state_setters
                    .insert(ObjectKey::new(tp.as_any()), setter.clone());
                setter
            }
        };
        let Some(setter) = setter else {
            return Ok(reduce_value);
        };
        let mut items: Vec<Bound<'py, PyAny>> = reduction.iter().collect();
        items.resize(5, py.None().into_bound(py));
        items.truncate(5);
        items.push(setter);
        Ok(pyo3::types::PyTuple::new(py, items)?.into_any())
    }

    /// The error for an object with neither `__reduce_ex__` nor `__reduce__`:
    /// the C pickler's message, as an UnpicklableError (a PicklingError).
    fn no_reduction(&self, obj: &Bound<'py, PyAny>) -> PyResult<PyErr> {
        let message = format!(
            "can't pickle '{}' object: {}",
            crate::pyutil::type_name(obj),
            crate::pyutil::repr_of(obj)
        );
        let err = self
            .st()
            .unpicklable_error
            .bind(self.py())
            .call1((message,))?;
        Ok(PyErr::from_value(err))
    }

    /// A `__reduce__` result: a global name, or a reduce tuple.
    fn save_reduce_value(
        &mut self,
        obj: &Bound<'py, PyAny>,
        reduce_value: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        if reduce_value.is_instance_of::<pyo3::types::PyString>() {
            return self.save_global(obj, Some(reduce_value));
        }
        match reduce_value.cast::<pyo3::types::PyTuple>() {
            Ok(t) => self.save_reduce(t, Some(obj)),
            Err(_) => Err(crate::errors::pickling_error(
                self.py(),
                "__reduce__ must return a string or tuple",
            )),
        }
    }

    /// Classes: by reference, except the types of the singletons None,
    /// Ellipsis and NotImplemented, which have no importable name.
    fn save_type(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        for singleton in [
            py.None().into_bound(py),
            py.Ellipsis().into_bound(py),
            py.NotImplemented().into_bound(py),
        ] {
            if obj.is(singleton.get_type()) {
                let args = pyo3::types::PyTuple::new(py, [singleton])?;
                let reduce_value = pyo3::types::PyTuple::new(
                    py,
                    [
                        py.get_type::<pyo3::types::PyType>().into_any(),
                        args.into_any(),
                    ],
                )?;
                return self.save_reduce(&reduce_value, Some(obj));
            }
        }
        self.save_class(obj)
    }

    /// `turbodill._reducers.reducer_for(tp)`, decided once per type per dump.
    fn long_tail_reducer(
        &mut self,
        tp: &Bound<'py, pyo3::types::PyType>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let key = tp.as_ptr() as usize;
        if let Some(known) = self.caches().long_tail_reducers.get(&key) {
            return Ok(known.clone());
        }
        let py = self.py();
        let cache = REDUCER_CACHE
            .get_or_init(py, || PyDict::new(py).unbind())
            .bind(py);
        let reducer = match cache.get_item(tp)? {
            Some(known) => known,
            None => {
                let reducer_for = REDUCER_FOR
                    .get_or_try_init(py, || {
                        py.import("turbodill._reducers")?
                            .getattr("reducer_for")
                            .map(Bound::unbind)
                    })?
                    .bind(py);
                let reducer = reducer_for.call1((tp,))?;
                if cache.len() >= MAX_CACHED_TYPES {
                    cache.clear();
                }
                cache.set_item(tp, &reducer)?;
                reducer
            }
        };
        let reducer = (!reducer.is_none()).then_some(reducer);
        self.caches()
            .long_tail_reducers
            .insert(ObjectKey::new(tp.as_any()), reducer.clone());
        Ok(reducer)
    }
}

/// `turbodill._reducers.reducer_for`'s answers, kept across dumps: type ->
/// reducer or None. It holds its types; past `MAX_CACHED_TYPES` (classes
/// made on the fly) it starts over.
/// `module`, or its attribute `attr`, imported once per process: importing
/// a module already loaded still takes the import lock and checks its spec
/// (~6,000 instructions each, a tenth of the dump of a small module by
/// value).
pub fn imported_once<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    attr: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = cell.get_or_try_init(py, || {
        let module = py.import(module)?.into_any();
        PyResult::Ok(match attr {
            Some(attr) => module.getattr(attr)?.unbind(),
            None => module.unbind(),
        })
    })?;
    Ok(value.bind(py).clone())
}

static REDUCER_CACHE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
static REDUCER_FOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
const MAX_CACHED_TYPES: usize = 4096;

/// Forget the cached reducers (after a saver is registered).
#[pyfunction]
pub fn _forget_type_caches(py: Python<'_>) {
    if let Some(cache) = REDUCER_CACHE.get(py) {
        cache.bind(py).clear();
    }
}
