//! By value: functions, code objects, cells and modules that have no
//! importable name (lambdas, closures, anything defined in `__main__`).
//!
//! Everything here is written with standard opcodes and stdlib callables
//! (`types.FunctionType`, `types.CodeType`, `types.CellType`,
//! `importlib.import_module`, BUILD for attributes), so the payload loads
//! with plain `pickle.loads` where turbodill is not installed.
//!
//! Cycles (a recursive function is in its own globals; a recursive closure
//! is in its own cell) are broken the way cloudpickle does: the function is
//! built around an empty globals dict and empty cells, memoized, and only
//! then are the globals and cells filled, by opcodes that fetch them back
//! from the memo.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PyString, PyTuple};

use crate::engine::frames::{deferred, Frame, ItemsKind, SaveCtx};
use crate::engine::globals::GlobalLocation;
use crate::engine::{Engine, ObjectKey};
use crate::output::opcodes::*;

/// A `frozenset` constant of a code object, pickled with its items sorted
/// so that the payload does not depend on `PYTHONHASHSEED`.
#[pyclass(module = "turbodill._native", frozen)]
pub struct SortedFrozenset {
    items: Py<PyList>,
}

#[pymethods]
impl SortedFrozenset {
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let args = PyTuple::new(py, [self.items.bind(py)])?;
        PyTuple::new(
            py,
            [py.get_type::<PyFrozenSet>().into_any(), args.into_any()],
        )
    }
}

/// Code constants with every frozenset (at any tuple depth) made canonical.
fn canonical_consts<'py>(consts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = consts.py();
    if let Ok(fs) = consts.cast::<PyFrozenSet>() {
        let items = PyList::new(py, super::canonical_order(fs.iter())?)?;
        return Ok(Bound::new(
            py,
            SortedFrozenset {
                items: items.unbind(),
            },
        )?
        .into_any());
    }
    if let Ok(tuple) = consts.cast::<PyTuple>() {
        if tuple
            .iter()
            .any(|c| c.is_instance_of::<PyFrozenSet>() || c.is_instance_of::<PyTuple>())
        {
            let items = tuple
                .iter()
                .map(|c| canonical_consts(&c))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyTuple::new(py, items)?.into_any());
        }
    }
    Ok(consts.clone())
}

/// Names a code object (and the code nested in its constants) may read
/// from its globals, sorted and without repeats.
fn global_names<'py>(code: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    fn collect<'py>(
        code: &Bound<'py, PyAny>,
        names: &mut Vec<Bound<'py, PyString>>,
    ) -> PyResult<()> {
        let py = code.py();
        for name in code
            .getattr(intern!(py, "co_names"))?
            .cast::<PyTuple>()?
            .iter()
        {
            names.push(name.cast_into::<PyString>()?);
        }
        for constant in code
            .getattr(intern!(py, "co_consts"))?
            .cast::<PyTuple>()?
            .iter()
        {
            if constant.get_type().is(py.get_type::<pyo3::types::PyCode>()) {
                collect(&constant, names)?;
            }
        }
        Ok(())
    }
    let mut names = Vec::new();
    collect(code, &mut names)?;
    let mut keyed = names
        .into_iter()
        .map(|n| Ok((n.to_str()?.to_owned(), n)))
        .collect::<PyResult<Vec<_>>>()?;
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    Ok(keyed.into_iter().map(|(_, n)| n).collect())
}

/// The code object's constructor arguments, in `types.CodeType`'s order.
/// CPython 3.11 to 3.13 share this signature; other versions need their own.
fn code_fields(py: Python<'_>) -> [&Bound<'_, PyString>; 18] {
    [
        intern!(py, "co_argcount"),
        intern!(py, "co_posonlyargcount"),
        intern!(py, "co_kwonlyargcount"),
        intern!(py, "co_nlocals"),
        intern!(py, "co_stacksize"),
        intern!(py, "co_flags"),
        intern!(py, "co_code"),
        intern!(py, "co_consts"),
        intern!(py, "co_names"),
        intern!(py, "co_varnames"),
        intern!(py, "co_filename"),
        intern!(py, "co_name"),
        intern!(py, "co_qualname"),
        intern!(py, "co_firstlineno"),
        intern!(py, "co_linetable"),
        intern!(py, "co_exceptiontable"),
        intern!(py, "co_freevars"),
        intern!(py, "co_cellvars"),
    ]
}
const CO_CONSTS: usize = 7;

/// Function attributes restored by BUILD (`setattr`) once the function is
/// memoized, so they may refer back to it.
fn function_attributes(py: Python<'_>) -> [&Bound<'_, PyString>; 6] {
    [
        intern!(py, "__annotations__"),
        intern!(py, "__defaults__"),
        intern!(py, "__doc__"),
        intern!(py, "__kwdefaults__"),
        intern!(py, "__module__"),
        intern!(py, "__qualname__"),
    ]
}

type Cells<'py> = Rc<RefCell<Vec<Bound<'py, PyAny>>>>;

impl<'py> Engine<'py> {
    /// Where `obj` (a function or class) is found when it is saved by
    /// reference: its name leads back to it from a module other than
    /// `__main__` that is not registered to be pickled by value. `None` when
    /// it goes by value.
    pub fn reference_location(
        &self,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<Option<GlobalLocation<'py>>> {
        let py = self.py;
        // Cheap refusals first: most objects that go by value are lambdas,
        // locals or from __main__, and a failed lookup costs an exception.
        if let Some(module) = obj.getattr_opt(intern!(py, "__module__"))? {
            if let Ok(module) = module.cast::<PyString>() {
                // A module missing from sys.modules was made at run time
                // (types.ModuleType) or dropped: by value, as cloudpickle
                // does, rather than a failing import per object.
                if self.module_by_value(&module.to_cow()?)?
                    || !self.st.sys_modules.bind(py).contains(module)?
                {
                    return Ok(None);
                }
            }
        }
        if let Some(qualname) = obj.getattr_opt(intern!(py, "__qualname__"))? {
            if let Ok(qualname) = qualname.cast::<PyString>() {
                if qualname.to_cow()?.contains('<') {
                    return Ok(None);
                }
            }
        }
        let Ok(location) = self.locate_global(obj, None) else {
            return Ok(None);
        };
        let module = location
            .module_name
            .cast::<PyString>()?
            .to_cow()?
            .into_owned();
        Ok((!self.module_by_value(&module)?).then_some(location))
    }

    /// Modules whose objects travel by value: `__main__`, and modules (or
    /// packages) given to `register_pickle_by_value`.
    pub fn module_by_value(&self, module: &str) -> PyResult<bool> {
        if module == "__main__"
            || module == "__mp_main__"
            || self.session.as_ref().is_some_and(|s| s.name == module)
        {
            return Ok(true);
        }
        let registered = self.st.by_value_modules.bind(self.py);
        if registered.is_empty() {
            return Ok(false);
        }
        let mut prefix = module;
        loop {
            if registered.contains(prefix)? {
                return Ok(true);
            }
            match prefix.rfind('.') {
                Some(dot) => prefix = &prefix[..dot],
                None => return Ok(false),
            }
        }
    }

    pub fn save_function(&mut self, func: &Bound<'py, PyAny>) -> PyResult<()> {
        match self.reference_location(func)? {
            Some(location) => self.save_located_global(func, location),
            None => self.save_function_by_value(func),
        }
    }

    /// `types.FunctionType(code, globals, name, None, closure)`, memoized,
    /// then its attributes, globals and cells.
    fn save_function_by_value(&mut self, func: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let code = func.getattr(intern!(py, "__code__"))?;
        let globals = func
            .getattr(intern!(py, "__globals__"))?
            .cast_into::<PyDict>()?;
        let name = func.getattr(intern!(py, "__name__"))?;
        let closure = func.getattr(intern!(py, "__closure__"))?;
        let function_type = py.get_type::<pyo3::types::PyFunction>().into_any();
        let cells: Cells<'py> = Rc::default();
        let (g, c, f) = (globals.clone(), cells.clone(), func.clone());
        self.queue([
            Frame::Save(function_type, SaveCtx::default()),
            Frame::Write(MARK),
            Frame::Save(code.clone(), SaveCtx::default()),
            deferred(move |e| e.save_globals_skeleton(&g)),
            Frame::Save(name, SaveCtx::default()),
            Frame::Write(NONE),
            deferred(move |e| e.save_closure_skeleton(closure, c)),
            Frame::Write(TUPLE),
            Frame::Write(REDUCE),
            deferred(move |e| e.finish_function(f, code, globals, cells)),
        ]);
        Ok(())
    }

    /// The function's globals start as an empty dict (one per module dict,
    /// shared by all functions from that module) and are filled later.
    /// It starts with `__name__`, which `types.FunctionType` reads to set
    /// the function's `__module__`, and `__builtins__`, the `builtins`
    /// module by reference: C code that imports (`PyImport_Import`, as
    /// `datetime.strptime` and numpy's methods do) looks it up in the
    /// calling function's globals.
    fn save_globals_skeleton(&mut self, globals: &Bound<'py, PyDict>) -> PyResult<()> {
        if self.is_session_namespace(globals.as_any()) {
            return self.save(globals.as_any(), SaveCtx::default());
        }
        if let Some(idx) = self.memo.get(globals.as_any()) {
            self.memo_get(idx);
            return Ok(());
        }
        if self.bin {
            self.out.write_byte(EMPTY_DICT);
        } else {
            self.out.write(&[MARK, DICT]);
        }
        self.memo_put(globals.as_any());
        let py = self.py;
        let mut frames = Vec::with_capacity(6);
        if let Some(name) = globals.get_item(intern!(py, "__name__"))? {
            frames.extend([
                Frame::Save(
                    intern!(py, "__name__").clone().into_any(),
                    SaveCtx::default(),
                ),
                Frame::Save(name, SaveCtx::default()),
                Frame::Write(SETITEM),
            ]);
        }
        frames.extend([
            Frame::Save(
                intern!(py, "__builtins__").clone().into_any(),
                SaveCtx::default(),
            ),
            Frame::Save(
                self.st.builtins_module.bind(py).clone().into_any(),
                SaveCtx::default(),
            ),
            Frame::Write(SETITEM),
        ]);
        self.queue(frames);
        Ok(())
    }

    /// The closure as a tuple of cells; new cells are made empty and
    /// recorded in `fill` to receive their contents later.
    fn save_closure_skeleton(
        &mut self,
        closure: Bound<'py, PyAny>,
        fill: Cells<'py>,
    ) -> PyResult<()> {
        if closure.is_none() {
            self.out.write_byte(NONE);
            return Ok(());
        }
        if let Some(idx) = self.memo.get(&closure) {
            self.memo_get(idx);
            return Ok(());
        }
        let cells: Vec<Bound<'py, PyAny>> = closure.cast::<PyTuple>()?.iter().collect();
        let mut frames = vec![Frame::Write(MARK)];
        for cell in cells {
            let fill = fill.clone();
            frames.push(deferred(move |e| {
                if let Some(idx) = e.memo.get(&cell) {
                    e.memo_get(idx);
                    return Ok(());
                }
                e.queue([
                    Frame::Save(cell.get_type().into_any(), SaveCtx::default()),
                    Frame::Write(EMPTY_TUPLE),
                    Frame::Write(REDUCE),
                    deferred(move |e| {
                        e.memo_put(&cell);
                        fill.borrow_mut().push(cell);
                        Ok(())
                    }),
                ]);
                Ok(())
            }));
        }
        frames.push(Frame::Write(TUPLE));
        frames.push(deferred(move |e| {
            e.memo_put(&closure);
            Ok(())
        }));
        self.queue(frames);
        Ok(())
    }

    /// The function is on the unpickler's stack: memoize it, set its
    /// attributes, then fill the globals it uses and its new cells.
    fn finish_function(
        &mut self,
        func: Bound<'py, PyAny>,
        code: Bound<'py, PyAny>,
        globals: Bound<'py, PyDict>,
        cells: Cells<'py>,
    ) -> PyResult<()> {
        let py = self.py;
        self.memo_put(&func);
        let attributes = self.changed_function_attributes(&func, &code, &globals)?;
        let dict = func.getattr(intern!(py, "__dict__"))?;
        let has_dict = dict.len()? > 0;

        let used = PyDict::new(py);
        // A session's namespace is restored entry by entry, not from here.
        let names = if self.is_session_namespace(globals.as_any()) {
            Vec::new()
        } else {
            self.global_names_of(&code)?
        };
        for name in names {
            // The skeleton has `__builtins__` already: the stdlib's, never
            // a copy of the namespace the function happened to get.
            if name.to_cow()? == "__builtins__" {
                continue;
            }
            if let Some(value) = globals.get_item(&name)? {
                used.set_item(name, value)?;
            }
        }
        let mut frames = Vec::new();
        if has_dict || !attributes.is_empty() {
            let dict = if has_dict {
                dict
            } else {
                py.None().into_bound(py)
            };
            let state = PyTuple::new(py, [dict, attributes.into_any()])?;
            frames.extend([
                Frame::Save(state.into_any(), SaveCtx::default()),
                Frame::Write(BUILD),
            ]);
        }
        if !used.is_empty() {
            frames.push(deferred(move |e| {
                e.memo_get_existing(globals.as_any())?;
                let items = used
                    .call_method0(intern!(e.py, "items"))?
                    .try_iter()?
                    .into_any();
                e.queue([Frame::Write(POP)]);
                e.push_items(items, ItemsKind::Dict);
                Ok(())
            }));
        }
        for cell in cells.borrow().iter() {
            let cell = cell.clone();
            frames.push(deferred(move |e| {
                let Ok(contents) = cell.getattr(intern!(e.py, "cell_contents")) else {
                    return Ok(()); // an empty cell stays empty
                };
                e.memo_get_existing(&cell)?;
                let slots = PyDict::new(e.py);
                slots.set_item(intern!(e.py, "cell_contents"), contents)?;
                let state = PyTuple::new(e.py, [e.py.None().into_bound(e.py), slots.into_any()])?;
                e.queue([
                    Frame::Save(state.into_any(), SaveCtx::default()),
                    Frame::Write(BUILD),
                    Frame::Write(POP),
                ]);
                Ok(())
            }));
        }
        self.queue(frames);
        Ok(())
    }

    /// The attributes `types.FunctionType(code, globals, name)` would not
    /// give the function by itself: defaults, annotations, a changed
    /// `__doc__`, `__qualname__` or `__module__`.
    fn changed_function_attributes(
        &self,
        func: &Bound<'py, PyAny>,
        code: &Bound<'py, PyAny>,
        globals: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let changed = PyDict::new(py);
        let consts = code.getattr(intern!(py, "co_consts"))?;
        let first_const = consts
            .cast::<PyTuple>()?
            .iter()
            .next()
            .filter(|c| c.is_instance_of::<PyString>());
        let made_doc = first_const.unwrap_or_else(|| py.None().into_bound(py));
        let made_module = globals
            .get_item(intern!(py, "__name__"))?
            .unwrap_or_else(|| py.None().into_bound(py));
        let [annotations, defaults, doc, kwdefaults, module, qualname] = function_attributes(py);
        for (name, made) in [
            (annotations, None),
            (defaults, None),
            (kwdefaults, None),
            (doc, Some(made_doc)),
            (module, Some(made_module)),
            (qualname, Some(code.getattr(intern!(py, "co_qualname"))?)),
        ] {
            let Some(value) = func.getattr_opt(name)? else {
                continue;
            };
            let unchanged = match &made {
                Some(made) => value.is(made) || value.eq(made)?,
                None => value.is_none() || value.is_instance_of::<PyDict>() && value.len()? == 0,
            };
            if !unchanged {
                changed.set_item(name, value)?;
            }
        }
        Ok(changed)
    }

    /// `global_names(code)`, once per code object per dump (functions made
    /// by one `def` or `lambda` share their code).
    fn global_names_of(&mut self, code: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
        let key = code.as_ptr() as usize;
        if let Some(names) = self.caches().code_global_names.get(&key) {
            return Ok(names.clone());
        }
        let names = global_names(code)?;
        self.caches()
            .code_global_names
            .insert(ObjectKey::new(code), names.clone());
        Ok(names)
    }

    /// A code object: `types.CodeType(*fields)`.
    /// Written as `CodeType (fields...) REDUCE` directly rather than through
    /// `save_reduce`: code objects are the bulk of what a batch of distinct
    /// lambdas costs, and they need none of its checks.
    pub fn save_code(&mut self, code: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let mut args = Vec::with_capacity(18);
        for (i, field) in code_fields(py).into_iter().enumerate() {
            let value = code.getattr(field)?;
            args.push(if i == CO_CONSTS {
                canonical_consts(&value)?
            } else {
                value
            });
        }
        let args = PyTuple::new(py, args)?.into_any();
        let code = code.clone();
        self.queue([
            Frame::Save(code.get_type().into_any(), SaveCtx::default()),
            Frame::Save(args, SaveCtx::default()),
            Frame::Write(REDUCE),
            deferred(move |e| {
                e.memo_put(&code);
                Ok(())
            }),
        ]);
        Ok(())
    }

    /// A cell on its own: made empty, memoized, then filled (so it may
    /// contain itself).
    pub fn save_cell(&mut self, cell: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let state = match cell.getattr(intern!(py, "cell_contents")) {
            Ok(contents) => {
                let slots = PyDict::new(py);
                slots.set_item(intern!(py, "cell_contents"), contents)?;
                Some(PyTuple::new(py, [py.None().into_bound(py), slots.into_any()])?.into_any())
            }
            Err(_) => None,
        };
        let args = PyTuple::empty(py);
        let reduce_value = PyTuple::new(
            py,
            [
                cell.get_type().into_any(),
                args.into_any(),
                state.unwrap_or_else(|| py.None().into_bound(py)),
            ],
        )?;
        self.save_reduce(&reduce_value, Some(cell))
    }

    /// Modules: importable ones by reference, `importlib.import_module(name)`;
    /// others (dynamic, `__main__`, registered by value) as a new module
    /// whose namespace is restored by BUILD.
    pub fn save_module(&mut self, module: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let name = module.getattr(intern!(py, "__name__"))?;
        let name_str = name.cast::<PyString>()?.to_cow()?.into_owned();
        if self.session.as_ref().is_some_and(|s| s.module.is(module)) {
            return self.write_persistent_id(
                PyString::new(py, crate::engine::SESSION_MODULE_PID).as_any(),
            );
        }
        let imported = self.st.sys_modules.bind(py).get_item(&name).ok();
        if imported.is_some_and(|m| m.is(module)) && !self.module_by_value(&name_str)? {
            let import_module = py.import("importlib")?.getattr("import_module")?;
            let args = PyTuple::new(py, [name])?;
            let reduce_value = PyTuple::new(py, [import_module, args.into_any()])?;
            return self.save_reduce(&reduce_value, Some(module));
        }
        // A copy, not a walk: hashing a key for a new dict may run Python
        // code that changes the module's namespace under the walk.
        let namespace = module
            .getattr(intern!(py, "__dict__"))?
            .cast::<PyDict>()?
            .copy()?;
        // Its `__builtins__` (usually the builtins' namespace dict, which
        // would go by value) is kept, as the `builtins` module by reference.
        if namespace.contains(intern!(py, "__builtins__"))? {
            namespace.set_item(
                intern!(py, "__builtins__"),
                self.st.builtins_module.bind(py),
            )?;
        }
        let args = PyTuple::new(py, [name])?;
        let reduce_value = PyTuple::new(
            py,
            [
                module.get_type().into_any(),
                args.into_any(),
                namespace.into_any(),
            ],
        )?;
        self.save_reduce(&reduce_value, Some(module))
    }
}
