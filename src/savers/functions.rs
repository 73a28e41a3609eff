//! By value: functions, code objects, cells and modules that have no
//! importable name (lambdas, closures, anything defined in `__main__`).
//!
//! Everything here is written with standard opcodes and stdlib callables
//! (`types.FunctionType`, `types.CodeType`, `types.CellType`, `__import__`
//! and `importlib.import_module`, BUILD for attributes), so the payload loads
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
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PyString, PyTuple, PyType};

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

/// The opcodes of the running interpreter that name a global, with the
/// numbers its `opcode` module gives (they change between versions).
struct GlobalOpcodes {
    extended_arg: u8,
    /// `LOAD_GLOBAL`: its argument shifted right by one is the name's index.
    load_global: u8,
    /// Those whose argument is the name's index: `STORE_GLOBAL`,
    /// `DELETE_GLOBAL`, and the loads that fall back to the globals in class
    /// bodies and annotation scopes (`LOAD_NAME`, `LOAD_FROM_DICT_OR_GLOBALS`).
    by_index: Vec<u8>,
}

static GLOBAL_OPCODES: PyOnceLock<GlobalOpcodes> = PyOnceLock::new();

impl GlobalOpcodes {
    fn get(py: Python<'_>) -> PyResult<&GlobalOpcodes> {
        GLOBAL_OPCODES.get_or_try_init(py, || {
            let opmap = py
                .import("opcode")?
                .getattr("opmap")?
                .cast_into::<PyDict>()?;
            let number = |name: &str| -> PyResult<Option<u8>> {
                opmap.get_item(name)?.map(|n| n.extract()).transpose()
            };
            let required = |name: &str| {
                number(name)?.ok_or_else(|| {
                    pyo3::exceptions::PySystemError::new_err(format!("opcode.opmap has no {name}"))
                })
            };
            let mut by_index = Vec::new();
            for name in [
                "STORE_GLOBAL",
                "DELETE_GLOBAL",
                "LOAD_NAME",
                "LOAD_FROM_DICT_OR_GLOBALS",
            ] {
                by_index.extend(number(name)?);
            }
            Ok(GlobalOpcodes {
                extended_arg: required("EXTENDED_ARG")?,
                load_global: required("LOAD_GLOBAL")?,
                by_index,
            })
        })
    }

    /// The indexes into `co_names` that `bytecode` (a code object's
    /// `co_code`: two bytes per unit, inline caches zeroed) uses as globals.
    fn name_indexes(&self, bytecode: &[u8]) -> Vec<usize> {
        let mut indexes = Vec::new();
        let mut extended: usize = 0;
        for unit in bytecode.chunks_exact(2) {
            let (op, arg) = (unit[0], extended | usize::from(unit[1]));
            if op == self.extended_arg {
                extended = arg << 8;
                continue;
            }
            extended = 0;
            if op == self.load_global {
                indexes.push(arg >> 1);
            } else if self.by_index.contains(&op) {
                indexes.push(arg);
            }
        }
        indexes
    }
}

/// Names a code object (and the code nested in its constants) reads,
/// writes or deletes as globals, sorted and without repeats. Attribute
/// names, which share `co_names`, are not globals (`sys.exit` does not
/// use a global `exit`).
fn global_names<'py>(code: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    fn collect<'py>(
        code: &Bound<'py, PyAny>,
        opcodes: &GlobalOpcodes,
        names: &mut Vec<Bound<'py, PyString>>,
    ) -> PyResult<()> {
        let py = code.py();
        let fields = code_object_fields(py)?;
        let co_names = fields.get(code, CO_NAMES)?.cast_into::<PyTuple>()?;
        let bytecode = fields.get(code, CO_CODE)?.cast_into::<PyBytes>()?;
        for index in opcodes.name_indexes(bytecode.as_bytes()) {
            // An index past the names would be a malformed code object:
            // it names nothing.
            if let Ok(name) = co_names.get_item(index) {
                names.push(name.cast_into::<PyString>()?);
            }
        }
        for constant in fields.get(code, CO_CONSTS)?.cast::<PyTuple>()?.iter() {
            if constant.get_type().is(py.get_type::<pyo3::types::PyCode>()) {
                collect(&constant, opcodes, names)?;
            }
        }
        Ok(())
    }
    let mut names = Vec::new();
    collect(code, GlobalOpcodes::get(code.py())?, &mut names)?;
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
fn code_fields(py: Python<'_>) -> [&Bound<'_, PyString>; CO_FIELDS] {
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
const CO_FIELDS: usize = 18;
const CO_CODE: usize = 6;
const CO_CONSTS: usize = 7;
const CO_NAMES: usize = 8;
const CO_VARNAMES: usize = 9;
const CO_FILENAME: usize = 10;
const CO_NAME: usize = 11;
const CO_QUALNAME: usize = 12;
const CO_LINETABLE: usize = 14;
const CO_EXCEPTIONTABLE: usize = 15;
const CO_FREEVARS: usize = 16;
const CO_CELLVARS: usize = 17;

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
const ATTR_ANNOTATIONS: usize = 0;
const ATTR_DEFAULTS: usize = 1;
const ATTR_DOC: usize = 2;
const ATTR_KWDEFAULTS: usize = 3;
const ATTR_MODULE: usize = 4;
const ATTR_QUALNAME: usize = 5;

type Cells<'py> = Rc<RefCell<Vec<Bound<'py, PyAny>>>>;

/// A code object's constructor argument, by how `save_code` writes it.
enum CodeArg<'py> {
    Value(Bound<'py, PyAny>),
    /// Bytecode, line or exception table: bytes, not memoized.
    Bytes(Bound<'py, PyBytes>),
    /// Names (exact str copies), as a tuple that is not memoized.
    Names(Vec<Bound<'py, PyAny>>),
}

/// Attribute reads of exact functions and code objects through the data
/// descriptors their type defines, found once per process and called
/// directly. On an exact instance of a type whose `__getattribute__` is
/// the generic one, a data descriptor of the type is what getattr returns,
/// whatever the instance holds; calling it skips getattr's lookup through
/// the type on every read (a quarter of the time of a batch of distinct
/// lambdas, with some 40 reads per function). Any other object or name is
/// read with getattr.
struct DirectFields {
    tp: *mut pyo3::ffi::PyTypeObject,
    /// The names, by the index the callers use, each with its descriptor
    /// when it has a suitable one.
    fields: Vec<(Py<PyString>, Option<Py<PyAny>>)>,
}

// SAFETY: `tp` is the address of a static type object (FunctionType or
// CodeType), only compared, never dereferenced without the GIL.
unsafe impl Send for DirectFields {}
// SAFETY: as above.
unsafe impl Sync for DirectFields {}

impl DirectFields {
    fn find(tp: &Bound<'_, PyType>, names: &[&Bound<'_, PyString>]) -> PyResult<Self> {
        let tp_ptr = tp.as_type_ptr();
        // SAFETY: reading a slot of a live static type object.
        let getattro = unsafe { (*tp_ptr).tp_getattro };
        // A false "no" only means reading through getattr.
        let generic = getattro.is_some_and(|f| {
            std::ptr::fn_addr_eq(
                f,
                pyo3::ffi::PyObject_GenericGetAttr as pyo3::ffi::getattrofunc,
            )
        });
        let own = tp.getattr(intern!(tp.py(), "__dict__"))?;
        let fields = names
            .iter()
            .map(|&name| {
                let descr = own.get_item(name).ok().filter(|descr| {
                    // SAFETY: reading the slots of a live type object.
                    let is_data_descriptor = unsafe {
                        let descr_tp = pyo3::ffi::Py_TYPE(descr.as_ptr());
                        (*descr_tp).tp_descr_get.is_some() && (*descr_tp).tp_descr_set.is_some()
                    };
                    generic && is_data_descriptor
                });
                (name.clone().unbind(), descr.map(Bound::unbind))
            })
            .collect();
        Ok(DirectFields { tp: tp_ptr, fields })
    }

    /// `getattr(obj, name)` of the `field`th name, or `None` for an
    /// AttributeError.
    #[inline]
    fn get_opt<'py>(
        &self,
        obj: &Bound<'py, PyAny>,
        field: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = obj.py();
        let (name, descr) = &self.fields[field];
        let descr = descr.as_ref().filter(|_| obj.get_type_ptr() == self.tp);
        let Some(descr) = descr else {
            return obj.getattr_opt(name.bind(py));
        };
        // SAFETY: `descr`'s type has a `tp_descr_get` (checked in `find`),
        // called with live objects; it returns a new reference or NULL with
        // an exception set.
        unsafe {
            let get = (*pyo3::ffi::Py_TYPE(descr.as_ptr()))
                .tp_descr_get
                .expect("checked in DirectFields::find");
            let value = get(descr.as_ptr(), obj.as_ptr(), self.tp.cast());
            if value.is_null() {
                return attribute_error_as_none(py);
            }
            Ok(Some(Bound::from_owned_ptr(py, value)))
        }
    }

    fn get<'py>(&self, obj: &Bound<'py, PyAny>, field: usize) -> PyResult<Bound<'py, PyAny>> {
        match self.get_opt(obj, field)? {
            Some(value) => Ok(value),
            // getattr again, for its AttributeError.
            None => obj.getattr(self.fields[field].0.bind(obj.py())),
        }
    }
}

const FN_CODE: usize = 0;
const FN_GLOBALS: usize = 1;
const FN_NAME: usize = 2;
const FN_CLOSURE: usize = 3;
/// Where `function_attributes` start.
const FN_ATTRIBUTES: usize = 4;

/// A field of an exact function's struct that getattr would fill in when it
/// is empty: `__dict__` and `__annotations__` make an empty dict. `None` for
/// an empty field; getattr's value for anything but a dict (the compiler
/// leaves annotations as a tuple of names and values, which getattr turns
/// into the dict), and on 3.14 (whose `__annotations__` may call
/// `__annotate__`).
fn function_struct_field<'py>(
    func: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    field: fn(&pyo3::ffi::PyFunctionObject) -> *mut pyo3::ffi::PyObject,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let exact = func.get_type_ptr() == &raw mut pyo3::ffi::PyFunction_Type;
    if cfg!(Py_3_14) || !exact {
        return func.getattr_opt(name);
    }
    // SAFETY: `func` is a live exact function, whose struct pyo3-ffi mirrors
    // for this version; the field is a borrowed reference or NULL.
    let value = field(unsafe { &*func.as_ptr().cast::<pyo3::ffi::PyFunctionObject>() });
    // SAFETY: a borrowed reference from a live object, or NULL.
    match unsafe { Bound::from_borrowed_ptr_or_opt(func.py(), value) } {
        Some(value) if !value.is_exact_instance_of::<PyDict>() => func.getattr_opt(name),
        value => Ok(value),
    }
}

/// The exception a failed read set: `None` for an AttributeError.
#[cold]
fn attribute_error_as_none(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let err = PyErr::fetch(py);
    if err.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) {
        return Ok(None);
    }
    Err(err)
}

/// `getattr` for functions (see `DirectFields`).
fn function_fields(py: Python<'_>) -> PyResult<&'static DirectFields> {
    static FIELDS: PyOnceLock<DirectFields> = PyOnceLock::new();
    FIELDS.get_or_try_init(py, || {
        // In the order of the `FN_` indexes.
        let mut names = vec![
            intern!(py, "__code__"),
            intern!(py, "__globals__"),
            intern!(py, "__name__"),
            intern!(py, "__closure__"),
        ];
        names.extend(function_attributes(py));
        DirectFields::find(&py.get_type::<pyo3::types::PyFunction>(), &names)
    })
}

/// `getattr` for code objects (see `DirectFields`).
fn code_object_fields(py: Python<'_>) -> PyResult<&'static DirectFields> {
    static FIELDS: PyOnceLock<DirectFields> = PyOnceLock::new();
    FIELDS.get_or_try_init(py, || {
        DirectFields::find(&py.get_type::<pyo3::types::PyCode>(), &code_fields(py))
    })
}

impl<'py> Engine<'py> {
    /// Where `obj` (a function or class) is found when it is saved by
    /// reference: its name leads back to it from a module other than
    /// `__main__` that is not registered to be pickled by value. `None` when
    /// it goes by value.
    pub fn reference_location(
        &self,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<Option<GlobalLocation<'py>>> {
        let py = self.py();
        // Cheap refusals first: most objects that go by value are lambdas,
        // locals or from __main__, and a failed lookup costs an exception.
        let fields = function_fields(py)?;
        if let Some(module) = fields.get_opt(obj, FN_ATTRIBUTES + ATTR_MODULE)? {
            if let Ok(module) = module.cast::<PyString>() {
                // A module missing from sys.modules was made at run time
                // (types.ModuleType) or dropped: by value, as cloudpickle
                // does, rather than a failing import per object.
                if self.module_by_value(&module.to_cow()?)?
                    || !self.st().sys_modules.bind(py).contains(module)?
                {
                    return Ok(None);
                }
            }
        }
        if let Some(qualname) = fields.get_opt(obj, FN_ATTRIBUTES + ATTR_QUALNAME)? {
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

    pub fn save_function(&mut self, func: &Bound<'py, PyAny>) -> PyResult<()> {
        match self.reference_location(func)? {
            Some(location) => self.save_located_global(func, location),
            None => self.save_function_by_value(func),
        }
    }

    /// `types.FunctionType(code, globals, name, None, closure)`, memoized,
    /// then its attributes, globals and cells.
    fn save_function_by_value(&mut self, func: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        let fields = function_fields(py)?;
        let code = fields.get(func, FN_CODE)?;
        let globals = fields.get(func, FN_GLOBALS)?.cast_into::<PyDict>()?;
        let name = self.name_copy(&fields.get(func, FN_NAME)?)?;
        let closure = fields.get(func, FN_CLOSURE)?;
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
    /// It starts with what the interpreter itself reads there:
    /// - `__name__`, which `types.FunctionType` reads to set the function's
    ///   `__module__`;
    /// - `__package__`, against which relative imports (`from .mod import
    ///   g`) resolve (its module spec's parent if it is unset);
    /// - `__builtins__`, the `builtins` module by reference: C code that
    ///   imports (`PyImport_Import`, as `datetime.strptime` and numpy's
    ///   methods do) looks it up in the calling function's globals.
    fn save_globals_skeleton(&mut self, globals: &Bound<'py, PyDict>) -> PyResult<()> {
        if self.pinned_persistent_id(globals.as_any()).is_some() {
            return self.save(globals.as_any(), SaveCtx::default());
        }
        if let Some(idx) = self.memo_index_of(globals.as_any()) {
            self.memo_get(idx);
            return Ok(());
        }
        if self.is_binary() {
            self.write_byte(EMPTY_DICT);
        } else {
            self.write(&[MARK, DICT]);
        }
        self.memo_put(globals.as_any());
        let py = self.py();
        let mut base = Vec::with_capacity(3);
        if let Some(name) = globals.get_item(intern!(py, "__name__"))? {
            base.push((intern!(py, "__name__"), name));
        }
        let package = match globals.get_item(intern!(py, "__package__"))? {
            Some(package) if !package.is_none() => Some(package),
            _ => match globals.get_item(intern!(py, "__spec__"))? {
                Some(spec) if !spec.is_none() => spec.getattr_opt(intern!(py, "parent"))?,
                _ => None,
            },
        };
        if let Some(package) = package.filter(|p| !p.is_none()) {
            base.push((intern!(py, "__package__"), package));
        }
        base.push((
            intern!(py, "__builtins__"),
            self.st().builtins_module.bind(py).clone().into_any(),
        ));
        let mut frames = Vec::with_capacity(3 * base.len());
        for (key, value) in base {
            frames.extend([
                Frame::Save(key.clone().into_any(), SaveCtx::default()),
                Frame::Save(value, SaveCtx::default()),
                Frame::Write(SETITEM),
            ]);
        }
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
            self.write_byte(NONE);
            return Ok(());
        }
        if let Some(idx) = self.memo_index_of(&closure) {
            self.memo_get(idx);
            return Ok(());
        }
        let cells: Vec<Bound<'py, PyAny>> = closure.cast::<PyTuple>()?.iter().collect();
        let mut frames = vec![Frame::Write(MARK)];
        for cell in cells {
            let fill = fill.clone();
            frames.push(deferred(move |e| {
                if let Some(idx) = e.memo_index_of(&cell) {
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
        let py = self.py();
        self.memo_put(&func);
        let attributes = self.changed_function_attributes(&func, &code, &globals)?;
        let dict = function_struct_field(&func, intern!(py, "__dict__"), |f| f.func_dict)?;
        let dict = match dict {
            Some(dict) if dict.len()? > 0 => Some(dict),
            _ => None,
        };

        let mut used: Option<Bound<'py, PyDict>> = None;
        // Globals the loader resolves (a session's namespace, restored entry
        // by entry) are not written from here.
        let names = if self.pinned_persistent_id(globals.as_any()).is_some() {
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
                used.get_or_insert_with(|| PyDict::new(py))
                    .set_item(self.name_copy(&name)?, value)?;
            }
        }
        let mut frames = Vec::new();
        if dict.is_some() || attributes.is_some() {
            let dict = dict.unwrap_or_else(|| py.None().into_bound(py));
            let attributes = attributes.unwrap_or_else(|| PyDict::new(py));
            let state = PyTuple::new(py, [dict, attributes.into_any()])?;
            frames.extend([
                Frame::Save(state.into_any(), SaveCtx::default()),
                Frame::Write(BUILD),
            ]);
        }
        if let Some(used) = used {
            frames.push(deferred(move |e| {
                e.memo_get_existing(globals.as_any())?;
                let items = used
                    .call_method0(intern!(e.py(), "items"))?
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
                let Ok(contents) = cell.getattr(intern!(e.py(), "cell_contents")) else {
                    return Ok(()); // an empty cell stays empty
                };
                e.memo_get_existing(&cell)?;
                let slots = PyDict::new(e.py());
                slots.set_item(intern!(e.py(), "cell_contents"), contents)?;
                let state =
                    PyTuple::new(e.py(), [e.py().None().into_bound(e.py()), slots.into_any()])?;
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
        &mut self,
        func: &Bound<'py, PyAny>,
        code: &Bound<'py, PyAny>,
        globals: &Bound<'py, PyDict>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let py = self.py();
        let mut changed = None;
        let code_fields = code_object_fields(py)?;
        let consts = code_fields.get(code, CO_CONSTS)?;
        let first_const = consts
            .cast::<PyTuple>()?
            .iter()
            .next()
            .filter(|c| c.is_instance_of::<PyString>());
        let made_doc = first_const.unwrap_or_else(|| py.None().into_bound(py));
        let made_module = globals
            .get_item(intern!(py, "__name__"))?
            .unwrap_or_else(|| py.None().into_bound(py));
        let names = function_attributes(py);
        for (attr, made) in [
            (ATTR_ANNOTATIONS, None),
            (ATTR_DEFAULTS, None),
            (ATTR_KWDEFAULTS, None),
            (ATTR_DOC, Some(made_doc)),
            (ATTR_MODULE, Some(made_module)),
            (ATTR_QUALNAME, Some(code_fields.get(code, CO_QUALNAME)?)),
        ] {
            let name = names[attr];
            let value = if attr == ATTR_ANNOTATIONS {
                function_struct_field(func, name, |f| f.func_annotations)?
            } else {
                function_fields(py)?.get_opt(func, FN_ATTRIBUTES + attr)?
            };
            let Some(value) = value else {
                continue;
            };
            let unchanged = match &made {
                Some(made) => value.is(made) || value.eq(made)?,
                None => value.is_none() || value.is_instance_of::<PyDict>() && value.len()? == 0,
            };
            if unchanged {
                continue;
            }
            let value = if attr == ATTR_QUALNAME {
                self.name_copy(&value)?
            } else {
                value
            };
            changed
                .get_or_insert_with(|| PyDict::new(py))
                .set_item(name, value)?;
        }
        Ok(changed)
    }

    /// A string of a code object (its names, constants, file name) or a
    /// function's name as written: one fresh copy per value, shared by all
    /// such strings of the dump and by nothing else. Which of these strings
    /// are interned, and so one object with an equal string elsewhere (a
    /// class attribute's value, an argument's name), depends on where the
    /// code came from (the compiler interns identifiers; `types.CodeType`
    /// interns some fields, differently per version): with the originals,
    /// the identity memo would make the bytes depend on it.
    fn name_copy(&mut self, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let caches = self.caches();
        if let Some(copy) = caches.name_copies_by_object.get(&(name.as_ptr() as usize)) {
            return Ok(copy.clone().into_any());
        }
        // A name that is not a str, or not valid UTF-8, is written as it is.
        let Some(text) = name.cast::<PyString>().ok().and_then(|s| s.to_str().ok()) else {
            return Ok(name.clone());
        };
        let copy = match caches.name_copies.get(text) {
            Some(copy) => copy.clone(),
            None => {
                let copy = PyString::new(name.py(), text);
                caches.name_copies.insert(text.to_owned(), copy.clone());
                copy
            }
        };
        caches
            .name_copies_by_object
            .insert(ObjectKey::new(name), copy.clone());
        Ok(copy.into_any())
    }

    /// Code constants as written: strings as `name_copy`, and every
    /// frozenset (at any tuple depth) in a canonical order, so that the
    /// payload depends neither on interning nor on `PYTHONHASHSEED`.
    fn code_constants(&mut self, consts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py();
        if consts.is_exact_instance_of::<PyString>() {
            return self.name_copy(consts);
        }
        if let Ok(fs) = consts.cast::<PyFrozenSet>() {
            let items = super::canonical_order(fs.iter())?
                .iter()
                .map(|c| self.code_constants(c))
                .collect::<PyResult<Vec<_>>>()?;
            let items = PyList::new(py, items)?.unbind();
            return Ok(Bound::new(py, SortedFrozenset { items })?.into_any());
        }
        if let Ok(tuple) = consts.cast::<PyTuple>() {
            if tuple.iter().any(|c| {
                c.is_exact_instance_of::<PyString>()
                    || c.is_instance_of::<PyFrozenSet>()
                    || c.is_instance_of::<PyTuple>()
            }) {
                let items = tuple
                    .iter()
                    .map(|c| self.code_constants(&c))
                    .collect::<PyResult<Vec<_>>>()?;
                return Ok(PyTuple::new(py, items)?.into_any());
            }
        }
        Ok(consts.clone())
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

    /// A bound method whose function the stdlib's `getattr(obj,
    /// func.__name__)` would not find again when loading, written as
    /// `types.MethodType(func, obj)`; reports whether it was. That is the
    /// case of a function bound by hand (`f.__get__(obj)`), or attached under
    /// another name (`A.method = lambda self: ...`), or kept in the
    /// instance's own `__dict__` (loading would read it before the instance
    /// has its state), and of a method of a class pickled by value: the class
    /// may load as the one an earlier payload made, whose function shares
    /// that payload's globals, where each payload brings fresh ones.
    pub fn save_method_by_value(&mut self, method: &Bound<'py, PyAny>) -> PyResult<bool> {
        let py = self.py();
        let func = method.getattr(intern!(py, "__func__"))?;
        let target = method.getattr(intern!(py, "__self__"))?;
        if self.found_by_name(&func, &target)? {
            return Ok(false);
        }
        let args = PyTuple::new(py, [func, target])?;
        let reduce_value = PyTuple::new(
            py,
            [
                self.st().method_type.bind(py).clone().into_any(),
                args.into_any(),
            ],
        )?;
        self.save_reduce(&reduce_value, Some(method))?;
        Ok(true)
    }

    /// Whether `getattr(target, func.__name__)`, as loading would call it,
    /// gives back `func` bound to `target` from a class pickled by reference.
    fn found_by_name(
        &self,
        func: &Bound<'py, PyAny>,
        target: &Bound<'py, PyAny>,
    ) -> PyResult<bool> {
        let py = self.py();
        let target_is_class = target.is_instance_of::<PyType>();
        let owner = match target.cast::<PyType>() {
            Ok(cls) => cls.clone(),
            Err(_) => target.get_type(),
        };
        if super::is_heap_type(&owner) && self.reference_location(owner.as_any())?.is_none() {
            return Ok(false);
        }
        let Some(name) = func.getattr_opt(intern!(py, "__name__"))? else {
            return Ok(false);
        };
        let Ok(name) = name.cast_into::<PyString>() else {
            return Ok(false);
        };
        if !target_is_class {
            if let Some(own) = target.getattr_opt(intern!(py, "__dict__"))? {
                if let Ok(own) = own.cast::<PyDict>() {
                    if own.contains(&name)? {
                        return Ok(false);
                    }
                }
            }
        }
        let found = match target.getattr(&name) {
            Ok(found) => found,
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyException>(py) => {
                return Ok(false)
            }
            Err(err) => return Err(err),
        };
        Ok(found
            .getattr_opt(intern!(py, "__func__"))?
            .is_some_and(|f| f.is(func))
            && found
                .getattr_opt(intern!(py, "__self__"))?
                .is_some_and(|s| s.is(target)))
    }

    /// A code object: `types.CodeType(*fields)`.
    /// Written as `CodeType (fields...) REDUCE` directly rather than through
    /// `save_reduce`: code objects are the bulk of what a batch of distinct
    /// lambdas costs, and they need none of its checks.
    pub fn save_code(&mut self, code: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        let mut args = Vec::with_capacity(CO_FIELDS);
        let fields = code_object_fields(py)?;
        // Parts of the code object that nothing can share with the rest of
        // the graph, or whose sharing means nothing (bytes are immutable),
        // are written without memo entries when no persistent_id hook must
        // see them.
        let private_parts = self.proto() >= 3 && self.hooks().persistent_id.is_none();
        for i in 0..CO_FIELDS {
            let value = fields.get(code, i)?;
            args.push(match i {
                CO_CONSTS => CodeArg::Value(self.code_constants(&value)?),
                CO_NAMES | CO_VARNAMES | CO_FREEVARS | CO_CELLVARS => {
                    let names = value
                        .cast::<PyTuple>()?
                        .iter()
                        .map(|name| self.name_copy(&name))
                        .collect::<PyResult<Vec<_>>>()?;
                    // The constructor takes exact str names only: anything
                    // else goes as a tuple the general way (and fails there).
                    if private_parts && names.iter().all(|n| n.is_exact_instance_of::<PyString>()) {
                        CodeArg::Names(names)
                    } else {
                        CodeArg::Value(PyTuple::new(py, names)?.into_any())
                    }
                }
                CO_FILENAME | CO_NAME | CO_QUALNAME => CodeArg::Value(self.name_copy(&value)?),
                CO_CODE | CO_LINETABLE | CO_EXCEPTIONTABLE if private_parts => {
                    match value.cast_into_exact::<PyBytes>() {
                        Ok(bytes) => CodeArg::Bytes(bytes),
                        Err(err) => CodeArg::Value(err.into_inner()),
                    }
                }
                _ => CodeArg::Value(value),
            });
        }
        // The constructor, then the arguments as `save_tuple` writes a tuple
        // of 18 (MARK, items, TUPLE, memoized), without making the tuple, to
        // which nothing can refer back. Written right here while nothing is
        // pushed on the stack (the constructor is memoized after the first
        // code object; a constants tuple is stepped inline); the rest waits
        // beneath whatever one of them pushes.
        let depth = self.stack_depth();
        self.save_code_constructor()?;
        let mut args = args.into_iter();
        let mut rest = Vec::with_capacity(CO_FIELDS + 5);
        if self.stack_depth() == depth {
            self.write_byte(MARK);
            for arg in args.by_ref() {
                match arg {
                    CodeArg::Value(value) => self.save(&value, SaveCtx::default())?,
                    CodeArg::Bytes(bytes) => self.save_unmemoized_bytes(&bytes)?,
                    CodeArg::Names(names) => self.save_unmemoized_tuple(&names)?,
                }
                if self.stack_depth() > depth {
                    break;
                }
            }
            if self.stack_depth() == depth {
                self.write_byte(TUPLE);
                self.memo_put_anonymous();
                self.write_byte(REDUCE);
                self.memo_put(code);
                return Ok(());
            }
        } else {
            rest.push(Frame::Write(MARK));
        }
        let code = code.clone();
        for arg in args {
            let value = match arg {
                CodeArg::Value(value) => value,
                CodeArg::Bytes(bytes) => bytes.into_any(),
                CodeArg::Names(names) => PyTuple::new(py, names)?.into_any(),
            };
            rest.push(Frame::Save(value, SaveCtx::default()));
        }
        rest.extend([
            Frame::Write(TUPLE),
            Frame::MemoAnonymous,
            Frame::Write(REDUCE),
            deferred(move |e| {
                e.memo_put(&code);
                Ok(())
            }),
        ]);
        self.park_frames(depth, rest.into_iter().rev());
        Ok(())
    }

    /// `types.CodeType` as a payload's code objects call it, resolved at load
    /// time: `getattr(CodeType, {TAG: "__call__"}.get(TAG_OF_LOADER, REFUSAL))`
    /// where TAG is `sys.implementation.cache_tag` (`cpython-311`). Bytecode,
    /// exception tables and line tables are formats of one minor version,
    /// which another must not run: there the lookup fails, before any code
    /// object is made, with an AttributeError naming the writing version.
    /// Plain stdlib objects, so the payload still loads without turbodill;
    /// written once per pickle (memoized through a private marker).
    fn save_code_constructor(&mut self) -> PyResult<()> {
        static MARKER: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
        let py = self.py();
        let marker = MARKER
            .get_or_try_init(py, || {
                PyResult::Ok(py.get_type::<pyo3::PyAny>().call0()?.unbind())
            })?
            .bind(py)
            .clone();
        if self.memo_index_of(&marker).is_some() {
            return self.memo_get_existing(&marker);
        }
        static SYS_IMPLEMENTATION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let tag = super::imported_once(py, &SYS_IMPLEMENTATION, "sys", Some("implementation"))?
            .getattr(intern!(py, "cache_tag"))?;
        let versions = PyDict::new(py);
        versions.set_item(&tag, intern!(py, "__call__"))?;
        let refusal = format!(
            "code of {tag} (a by-value function or code object written by that Python \
             version, which loads on that version only)"
        );
        let getattr = self.st().getattr.bind(py).clone();
        let dict_get = py.get_type::<PyDict>().getattr(intern!(py, "get"))?;
        let code_type = py.get_type::<pyo3::types::PyCode>().into_any();
        // Below protocol 2 argument tuples are MARK ... TUPLE.
        let mark: &[u8] = if self.proto() < 2 { &[MARK] } else { &[] };
        let (pair, triple) = if self.proto() < 2 {
            (TUPLE, TUPLE)
        } else {
            (TUPLE2, TUPLE3)
        };
        let mut frames = Vec::with_capacity(20);
        frames.push(Frame::Save(getattr.clone(), SaveCtx::default()));
        frames.extend(mark.iter().map(|&op| Frame::Write(op)));
        frames.push(Frame::Save(code_type, SaveCtx::default()));
        frames.push(Frame::Save(dict_get, SaveCtx::default()));
        frames.extend(mark.iter().map(|&op| Frame::Write(op)));
        frames.push(Frame::Save(versions.into_any(), SaveCtx::default()));
        frames.push(Frame::Save(getattr, SaveCtx::default()));
        frames.extend(mark.iter().map(|&op| Frame::Write(op)));
        frames.push(deferred(|e| {
            let sys = intern!(e.py(), "sys").clone().into_any();
            e.write_global_name(sys, intern!(e.py(), "implementation").clone().into_any())
        }));
        frames.push(Frame::Save(
            intern!(py, "cache_tag").clone().into_any(),
            SaveCtx::default(),
        ));
        frames.extend([Frame::Write(pair), Frame::Write(REDUCE)]);
        frames.push(Frame::Save(
            PyString::new(py, &refusal).into_any(),
            SaveCtx::default(),
        ));
        frames.extend([
            Frame::Write(triple),
            Frame::Write(REDUCE),
            Frame::Write(pair),
            Frame::Write(REDUCE),
        ]);
        frames.push(deferred(move |e| {
            e.memo_put_found_by_name(&marker);
            Ok(())
        }));
        self.queue(frames);
        Ok(())
    }

    /// A cell on its own: made empty, memoized, then filled (so it may
    /// contain itself).
    pub fn save_cell(&mut self, cell: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
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

    /// Modules: importable ones by reference, `builtins.__import__(name)`
    /// for a top-level module (which it returns; a fifth of the cost of
    /// `importlib.import_module` when the module is loaded already, as it
    /// usually is) and `importlib.import_module(name)` for a submodule;
    /// others (dynamic, `__main__`, registered by value) as a new module
    /// whose namespace is restored by BUILD.
    pub fn save_module(&mut self, module: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        let name = module.getattr(intern!(py, "__name__"))?;
        let name_str = name.cast::<PyString>()?.to_cow()?.into_owned();
        if self.module_by_reference(module, &name_str)? {
            static IMPORT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            static IMPORT_MODULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let import = if name_str.contains('.') {
                super::imported_once(py, &IMPORT_MODULE, "importlib", Some("import_module"))?
            } else {
                super::imported_once(py, &IMPORT, "builtins", Some("__import__"))?
            };
            let args = PyTuple::new(py, [name])?;
            let reduce_value = PyTuple::new(py, [import, args.into_any()])?;
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
                self.st().builtins_module.bind(py),
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
