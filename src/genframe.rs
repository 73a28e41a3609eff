//! The frame of a generator, coroutine or async generator, read and written
//! in place. CPython keeps it inside the generator object (`gi_iframe`); its
//! layout is private and changes with each minor version, so it is mirrored
//! here for 3.11, 3.12 and 3.13 (`Include/internal/pycore_frame.h`,
//! `Include/cpython/genobject.h`, `Include/internal/pycore_genobject.h`) and
//! checked against the running interpreter's type sizes before any read or
//! write. Nothing here knows about pickling: `savers::generators` reads a
//! frame with `snapshot`, `turbodill._reconstruct` writes one with
//! `_gen_restore`.

use std::os::raw::{c_char, c_int, c_void};

use pyo3::exceptions::{PyBaseException, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBytes, PyDict, PyFunction, PyInt, PyIterator, PyList, PySet, PyString, PyTuple,
};

/// `_PyInterpreterFrame`, 3.11. (The mirrors name every field, read or
/// not, so that their offsets are CPython's.)
#[cfg(not(Py_3_12))]
#[allow(dead_code)]
#[repr(C)]
struct InterpreterFrame {
    f_func: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    f_code: *mut ffi::PyObject,
    frame_obj: *mut ffi::PyObject,
    previous: *mut c_void,
    /// `prev_instr`: the code unit before the next instruction.
    instr: *mut u16,
    stacktop: c_int,
    is_entry: bool,
    owner: c_char,
    localsplus: [*mut ffi::PyObject; 0],
}

/// `_PyInterpreterFrame`, 3.12 and 3.13 (`f_code` is `f_executable` in 3.13).
#[cfg(Py_3_12)]
#[allow(dead_code)]
#[repr(C)]
struct InterpreterFrame {
    f_code: *mut ffi::PyObject,
    previous: *mut c_void,
    f_func: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    frame_obj: *mut ffi::PyObject,
    /// 3.12 `prev_instr`: the code unit before the next instruction;
    /// 3.13 `instr_ptr`: the next instruction.
    instr: *mut u16,
    stacktop: c_int,
    return_offset: u16,
    owner: c_char,
    localsplus: [*mut ffi::PyObject; 0],
}

/// `PyGenObject`, `PyCoroObject` and `PyAsyncGenObject` (one head, `_PyGenObject_HEAD`).
#[allow(dead_code)]
#[repr(C)]
struct GenObject {
    ob_base: ffi::PyObject,
    #[cfg(not(Py_3_12))]
    gi_code: *mut ffi::PyObject,
    gi_weakreflist: *mut ffi::PyObject,
    gi_name: *mut ffi::PyObject,
    gi_qualname: *mut ffi::PyObject,
    /// `gi_exc_state`: the exception being handled where the frame is suspended.
    exc_value: *mut ffi::PyObject,
    exc_previous: *mut c_void,
    gi_origin_or_finalizer: *mut ffi::PyObject,
    hooks_inited: c_char,
    closed: c_char,
    running_async: c_char,
    frame_state: i8,
    iframe: InterpreterFrame,
}

/// `PyFrameState`.
#[cfg(not(Py_3_13))]
pub mod state {
    pub const CREATED: i8 = -2;
    pub const SUSPENDED: i8 = -1;
    pub const EXECUTING: i8 = 0;

    pub fn is_suspended(state: i8) -> bool {
        state == SUSPENDED
    }

    /// Before 3.13 one state serves every resume point.
    pub fn fits_resume_point(_state: i8, _delegating: bool) -> bool {
        true
    }
}
#[cfg(Py_3_13)]
pub mod state {
    pub const CREATED: i8 = -3;
    pub const SUSPENDED: i8 = -2;
    pub const SUSPENDED_YIELD_FROM: i8 = -1;
    pub const EXECUTING: i8 = 0;

    pub fn is_suspended(state: i8) -> bool {
        state == SUSPENDED || state == SUSPENDED_YIELD_FROM
    }

    /// 3.13 marks a frame suspended in `yield from`/`await` by its state,
    /// and then reads the subiterator off its stack (`_PyGen_yf`, called by
    /// `close()` and at finalization): the state must be the one its resume
    /// point gives.
    pub fn fits_resume_point(state: i8, delegating: bool) -> bool {
        (state == SUSPENDED_YIELD_FROM) == delegating
    }
}

const SLOT: usize = std::mem::size_of::<*mut ffi::PyObject>();

/// Whether the mirrors above describe this interpreter, or why not.
fn check_layout() -> Result<(), String> {
    if cfg!(Py_3_14) || cfg!(Py_GIL_DISABLED) {
        return Err(
            "generator frames are supported on CPython 3.11, 3.12 and 3.13 \
                    (not free-threaded builds)"
                .into(),
        );
    }
    let head = std::mem::offset_of!(GenObject, iframe)
        + std::mem::offset_of!(InterpreterFrame, localsplus);
    // SAFETY: reading two size fields of static builtin type objects.
    let sizes = unsafe {
        [
            &raw const ffi::PyGen_Type,
            &raw const ffi::PyCoro_Type,
            &raw const ffi::PyAsyncGen_Type,
        ]
        .map(|tp| {
            (
                crate::sizes::len((*tp).tp_basicsize),
                crate::sizes::len((*tp).tp_itemsize),
            )
        })
    };
    if sizes
        .iter()
        .any(|&(basic, item)| basic != head || item != SLOT)
    {
        return Err(format!(
            "this interpreter's generator layout ({sizes:?}) is not the one turbodill \
             was built for (basic size {head}, item size {SLOT})"
        ));
    }
    // SAFETY: as above; a code object's basic size is the offset of its
    // bytecode (`co_code_adaptive`), in 2-byte code units.
    let code_item = unsafe { ffi::PyCode_Type.tp_itemsize };
    if code_item != 2 {
        return Err(format!("unexpected code unit size {code_item}"));
    }
    Ok(())
}

fn is_generator_type(tp: *mut ffi::PyTypeObject) -> bool {
    std::ptr::eq(tp, &raw mut ffi::PyGen_Type)
        || std::ptr::eq(tp, &raw mut ffi::PyCoro_Type)
        || std::ptr::eq(tp, &raw mut ffi::PyAsyncGen_Type)
}

/// Exactly a generator, coroutine or async generator (not a subclass: the
/// types are final).
pub fn is_generator(obj: &Bound<'_, PyAny>) -> bool {
    is_generator_type(obj.get_type().as_type_ptr())
}

/// What a frame of this code holds: how many locals, cells and free
/// variables (`co_nlocalsplus`), which of them are cells or free variables,
/// its stack size, and its instructions (`co_code`, not specialized).
pub struct CodeShape<'py> {
    pub code: Bound<'py, PyAny>,
    pub nlocalsplus: usize,
    pub cell_slots: Vec<usize>,
    pub stacksize: usize,
    pub co_code: Bound<'py, PyBytes>,
}

impl<'py> CodeShape<'py> {
    /// Locals come first (`co_varnames`), then the cells that are not also
    /// arguments or locals, then the free variables: a cell that is also a
    /// local shares its slot.
    pub fn of(code: Bound<'py, PyAny>) -> PyResult<Self> {
        let py = code.py();
        let names = |attr: &Bound<'py, PyString>| -> PyResult<Vec<String>> {
            code.getattr(attr)?
                .cast::<PyTuple>()?
                .iter()
                .map(|n| n.extract::<String>())
                .collect()
        };
        let varnames = names(intern!(py, "co_varnames"))?;
        let cellvars = names(intern!(py, "co_cellvars"))?;
        let freevars = names(intern!(py, "co_freevars"))?;
        let mut cell_slots: Vec<usize> = varnames
            .iter()
            .enumerate()
            .filter(|(_, n)| cellvars.contains(n))
            .map(|(i, _)| i)
            .collect();
        let mut n = varnames.len();
        for cell in &cellvars {
            if !varnames.contains(cell) {
                cell_slots.push(n);
                n += 1;
            }
        }
        cell_slots.extend(n..n + freevars.len());
        n += freevars.len();
        let stacksize = code.getattr(intern!(py, "co_stacksize"))?.extract()?;
        let co_code = code
            .getattr(intern!(py, "co_code"))?
            .cast_into::<PyBytes>()?;
        Ok(CodeShape {
            code,
            nlocalsplus: n,
            cell_slots,
            stacksize,
            co_code,
        })
    }

    fn code_units(&self) -> usize {
        self.co_code.as_bytes().len() / 2
    }

    /// Whether `lasti` (the frame's instruction field as an index into the
    /// code) is where a suspended frame stops, 3.11/3.12's `prev_instr` on
    /// a YIELD_VALUE, 3.13's `instr_ptr` just after one: `None` if not,
    /// else whether it stops inside `yield from` / `await` (the RESUME
    /// after the YIELD_VALUE says so), where the stack's top is the
    /// subiterator CPython reads as `gi_yieldfrom`.
    pub fn resume_point(&self, lasti: usize, ops: &Opcodes) -> Option<bool> {
        let code = self.co_code.as_bytes();
        let at = if cfg!(Py_3_13) {
            lasti.checked_sub(1)?
        } else {
            lasti
        };
        if *code.get(2 * at)? != ops.yield_value || *code.get(2 * at + 2)? != ops.resume {
            return None;
        }
        Some(code[2 * at + 3] & 3 >= 2)
    }
}

/// The opcodes a suspended frame stops at, from the `opcode` module.
pub struct Opcodes {
    pub yield_value: u8,
    pub resume: u8,
}

static OPCODES: pyo3::sync::PyOnceLock<Opcodes> = pyo3::sync::PyOnceLock::new();

impl Opcodes {
    pub fn get(py: Python<'_>) -> PyResult<&Opcodes> {
        OPCODES.get_or_try_init(py, || {
            let opmap = py.import("opcode")?.getattr("opmap")?;
            Ok(Opcodes {
                yield_value: opmap.get_item("YIELD_VALUE")?.extract()?,
                resume: opmap.get_item("RESUME")?.extract()?,
            })
        })
    }
}

/// A frame as read off a generator.
pub struct Snapshot<'py> {
    pub frame_state: i8,
    /// The frame's function (`f_func` / `f_funcobj`); `None` once finished.
    pub func: Option<Bound<'py, PyAny>>,
    pub lasti: usize,
    /// Locals, cells, free variables, then the value stack; `None` is an
    /// empty (NULL) slot.
    pub slots: Vec<Option<Bound<'py, PyAny>>>,
    pub exc_value: Option<Bound<'py, PyAny>>,
    /// An async generator inside an `await` of its own (set only for
    /// async generators; other generators leave the field unused).
    pub running_async: bool,
}

/// The generator's code object, by its Python attribute.
pub fn code_of<'py>(gen: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = gen.py();
    // SAFETY: `gen` is live; comparing its type pointer reads no mutable state.
    let tp = unsafe { ffi::Py_TYPE(gen.as_ptr()) };
    let attr = if std::ptr::eq(tp, &raw mut ffi::PyCoro_Type) {
        intern!(py, "cr_code")
    } else if std::ptr::eq(tp, &raw mut ffi::PyAsyncGen_Type) {
        intern!(py, "ag_code")
    } else {
        intern!(py, "gi_code")
    };
    gen.getattr(attr)
}

/// Checks shared by reading and writing: the layout, the type, the code
/// the frame runs, and the frame's size. Returns the generator's struct.
fn checked_frame<'py>(
    gen: &Bound<'py, PyAny>,
    shape: &CodeShape<'py>,
) -> Result<*mut GenObject, String> {
    check_layout()?;
    if !is_generator(gen) {
        return Err("not a generator, coroutine or async generator".into());
    }
    let raw = gen.as_ptr().cast::<GenObject>();
    let size: usize = gen
        .call_method0("__sizeof__")
        .and_then(|s| s.extract())
        .map_err(|e| e.to_string())?;
    // SAFETY: the type is exactly one of the three generator types, whose
    // basic size was checked against `GenObject` above.
    let basic = crate::sizes::len(unsafe { (*ffi::Py_TYPE(gen.as_ptr())).tp_basicsize });
    let capacity = size.saturating_sub(basic) / SLOT;
    if capacity != shape.nlocalsplus + shape.stacksize {
        return Err(format!(
            "its frame has {capacity} slots where its code needs {} locals and {} stack",
            shape.nlocalsplus, shape.stacksize
        ));
    }
    Ok(raw)
}

/// A pointer to the first code unit of `code`'s bytecode.
fn code_start(code: &Bound<'_, PyAny>) -> *mut u16 {
    // SAFETY: a code object's basic size is the offset of its inline
    // bytecode (`co_code_adaptive`), checked to be in 2-byte units.
    unsafe {
        let offset = crate::sizes::len(ffi::PyCode_Type.tp_basicsize);
        code.as_ptr().cast::<u8>().add(offset).cast::<u16>()
    }
}

/// Read a generator's frame. `Err` says, in words, why it cannot be read.
pub fn snapshot<'py>(gen: &Bound<'py, PyAny>) -> Result<Snapshot<'py>, String> {
    let py = gen.py();
    let code = code_of(gen).map_err(|e| e.to_string())?;
    let shape = CodeShape::of(code).map_err(|e| e.to_string())?;
    let raw = checked_frame(gen, &shape)?;
    // SAFETY: `raw` is a live generator of the checked layout. The reads
    // below stay within its frame (stacktop checked against the capacity),
    // and every pointer kept is turned into a new strong reference before
    // any Python code can run.
    unsafe {
        let frame_state = (*raw).frame_state;
        let running_async = std::ptr::eq(ffi::Py_TYPE(gen.as_ptr()), &raw mut ffi::PyAsyncGen_Type)
            && (*raw).running_async != 0;
        let exc_value = Bound::from_borrowed_ptr_or_opt(py, (*raw).exc_value);
        if frame_state >= state::EXECUTING {
            return Ok(Snapshot {
                frame_state,
                func: None,
                lasti: 0,
                slots: Vec::new(),
                exc_value,
                running_async,
            });
        }
        let frame = &raw mut (*raw).iframe;
        if (*frame).f_code != shape.code.as_ptr() {
            return Err("its frame runs another code object than its gi_code".into());
        }
        let stacktop = usize::try_from((*frame).stacktop).unwrap_or(usize::MAX);
        if stacktop < shape.nlocalsplus || stacktop > shape.nlocalsplus + shape.stacksize {
            return Err(format!("its frame's stack top {stacktop} is out of range"));
        }
        let start = code_start(&shape.code);
        let lasti = (*frame).instr.offset_from(start);
        let lasti = usize::try_from(lasti)
            .ok()
            .filter(|&i| i < shape.code_units())
            .ok_or_else(|| format!("its instruction offset {lasti} is outside its code"))?;
        let func = Bound::from_borrowed_ptr_or_opt(py, (*frame).f_func)
            .ok_or("its frame has no function")?;
        let locals = (&raw mut (*frame).localsplus).cast::<*mut ffi::PyObject>();
        let slots = (0..stacktop)
            .map(|i| Bound::from_borrowed_ptr_or_opt(py, *locals.add(i)))
            .collect();
        Ok(Snapshot {
            frame_state,
            func: Some(func),
            lasti,
            slots,
            exc_value,
            running_async,
        })
    }
}

fn refuse(msg: impl Into<String>) -> PyErr {
    crate::errors::UnpicklingError::new_err(msg.into())
}

/// What a saved slot must hold, as `turbodill._generators` computes it from
/// the code (the same bits): what the eval loop relies on, unchecked, when
/// the frame resumes.
mod need {
    pub const MAY_BE_EMPTY: u32 = 1 << 0;
    pub const ITERATOR: u32 = 1 << 1;
    pub const LIST: u32 = 1 << 2;
    pub const DICT: u32 = 1 << 3;
    pub const SET: u32 = 1 << 4;
    pub const TUPLE: u32 = 1 << 5;
    pub const STR: u32 = 1 << 6;
    pub const EXCEPTION: u32 = 1 << 7;
    pub const EXCEPTION_OR_NONE: u32 = 1 << 8;
    pub const LASTI: u32 = 1 << 9;
    pub const KWNAMES: u32 = 1 << 10;
    pub const EXCEPTION_LIST: u32 = 1 << 11;
    pub const FUNCTION: u32 = 1 << 12;
}

fn is_exception_or_none(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none() || obj.is_instance_of::<PyBaseException>()
}

/// The requirements a slot can have, in words.
const NEEDS: [(u32, &str); 12] = [
    (need::ITERATOR, "an iterator"),
    (need::LIST, "a list"),
    (need::DICT, "a dict"),
    (need::SET, "a set"),
    (need::TUPLE, "a tuple"),
    (need::STR, "a str"),
    (need::EXCEPTION, "an exception instance"),
    (need::EXCEPTION_OR_NONE, "None or an exception instance"),
    (need::LASTI, "an int offset inside the code"),
    (need::KWNAMES, "a tuple of strs"),
    (need::EXCEPTION_LIST, "a list of exceptions or None"),
    (need::FUNCTION, "a function"),
];

/// Whether `obj` meets the requirement `bit` (one of `NEEDS`).
fn holds(obj: &Bound<'_, PyAny>, bit: u32, code_units: usize) -> bool {
    match bit {
        need::ITERATOR => obj.is_instance_of::<PyIterator>(),
        need::LIST => obj.is_exact_instance_of::<PyList>(),
        need::DICT => obj.is_exact_instance_of::<PyDict>(),
        need::SET => obj.is_exact_instance_of::<PySet>(),
        need::TUPLE => obj.is_exact_instance_of::<PyTuple>(),
        need::STR => obj.is_instance_of::<PyString>(),
        need::EXCEPTION => obj.is_instance_of::<PyBaseException>(),
        need::EXCEPTION_OR_NONE => is_exception_or_none(obj),
        need::LASTI => {
            obj.is_exact_instance_of::<PyInt>()
                && obj
                    .extract::<usize>()
                    .is_ok_and(|offset| offset < code_units)
        }
        need::KWNAMES => {
            obj.is_exact_instance_of::<PyTuple>()
                && obj.try_iter().is_ok_and(|mut names| {
                    names.all(|n| n.is_ok_and(|n| n.is_exact_instance_of::<PyString>()))
                })
        }
        need::EXCEPTION_LIST => obj.cast::<PyList>().is_ok_and(|list| {
            obj.is_exact_instance_of::<PyList>() && list.iter().all(|e| is_exception_or_none(&e))
        }),
        need::FUNCTION => obj.is_exact_instance_of::<PyFunction>(),
        _ => false,
    }
}

/// The first requirement in `bits` that `obj` does not meet, in words.
fn unmet(obj: &Bound<'_, PyAny>, bits: u32, code_units: usize) -> Option<&'static str> {
    NEEDS
        .iter()
        .find(|&&(bit, _)| bits & bit != 0 && !holds(obj, bit, code_units))
        .map(|&(_, what)| what)
}

/// What a saved slot (`mark == 0`: empty) lacks of `bits`, in words.
fn slot_unmet(
    slot: &Bound<'_, PyAny>,
    mark: u8,
    bits: u32,
    code_units: usize,
) -> Option<&'static str> {
    if mark == 0 {
        (bits & need::MAY_BE_EMPTY == 0).then_some("a value")
    } else {
        unmet(slot, bits, code_units)
    }
}

/// What a saved slot holds, for a refusal: its type's name, or nothing.
fn described(slot: &Bound<'_, PyAny>, mark: u8) -> String {
    if mark == 0 {
        return "nothing".to_owned();
    }
    slot.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// `turbodill._generators.resume_requirements`, imported once: the model
/// of what a frame must hold at each resume point lives beside the other
/// load-side checks in Python (it reads the code with `dis`); it is fetched
/// here, not passed in, so no caller of `_gen_restore` can hand it a wrong one.
fn resume_requirements<'py>(
    code: &Bound<'py, PyAny>,
    lasti: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    static MODEL: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let py = code.py();
    MODEL
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("turbodill._generators")?
                    .getattr("resume_requirements")?
                    .unbind(),
            )
        })?
        .bind(py)
        .call1((code, lasti))
}

/// Refuse a frame whose values the code at its resume point would trust
/// wrongly: each stack slot against what the code needs there, the locals
/// it reads unchecked (3.12+) set, the exception being handled an
/// exception. `stack` is empty for a generator that has not started.
fn check_values(
    gen: &Bound<'_, PyAny>,
    shape: &CodeShape<'_>,
    lasti: Option<usize>,
    slots: &[Bound<'_, PyAny>],
    present: &[u8],
    exc_value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let qualname = gen
        .getattr(intern!(gen.py(), "__qualname__"))
        .map_or_else(|_| "?".to_owned(), |q| q.to_string());
    let model = resume_requirements(&shape.code, lasti)?;
    if model.is_none() {
        return Err(refuse(format!(
            "generator {qualname}: offset {} is not a yield of its code",
            lasti.unwrap_or(0)
        )));
    }
    if let Ok(why) = model.cast::<PyString>() {
        return Err(refuse(format!("generator {qualname}: {why}")));
    }
    let (stack, locals): (Vec<u32>, Vec<(usize, u32)>) = model.extract()?;
    let depth = slots.len() - shape.nlocalsplus;
    if depth != stack.len() {
        return Err(refuse(format!(
            "generator {qualname}: a stack of {depth} where its code has {} there",
            stack.len()
        )));
    }
    let units = shape.code_units();
    for (k, &bits) in stack.iter().enumerate() {
        let i = shape.nlocalsplus + k;
        if let Some(what) = slot_unmet(&slots[i], present[i], bits, units) {
            return Err(refuse(format!(
                "generator {qualname}: stack slot {k} needs {what}, not {}",
                described(&slots[i], present[i])
            )));
        }
    }
    for &(i, bits) in &locals {
        let Some(&mark) = present.get(i) else {
            return Err(refuse(format!(
                "generator {qualname}: its code has no local {i}"
            )));
        };
        if let Some(what) = slot_unmet(&slots[i], mark, bits, units) {
            let name = shape
                .code
                .getattr(intern!(gen.py(), "co_varnames"))
                .and_then(|names| names.get_item(i))
                .map_or_else(|_| i.to_string(), |n| n.to_string());
            return Err(refuse(format!(
                "generator {qualname}: local {name} needs {what} where its code reads it \
                 without a check, not {}",
                described(&slots[i], mark)
            )));
        }
    }
    if exc_value.is_some_and(|e| !is_exception_or_none(e)) {
        return Err(refuse(format!(
            "generator {qualname}: the exception it handles must be None or an exception instance"
        )));
    }
    Ok(())
}

/// Fill a fresh (not started) generator's frame with a saved one: its
/// locals, cells, free variables and value stack (`slots`, where
/// `present[i] == 0` marks an empty slot), its instruction (`lasti`, as read
/// by `snapshot`), its state and the exception it was handling. Everything
/// is checked before the frame is touched: the layout, that `gen` has not
/// started, the slot count against the code, the cells, the state, that
/// `lasti` is a point where a frame of this code can be suspended, and
/// each value against what the code trusts it to be there (`check_values`):
/// no argument resumes into a crash.
#[pyfunction]
pub fn _gen_restore<'py>(
    gen: &Bound<'py, PyAny>,
    frame_state: i8,
    lasti: usize,
    slots: &Bound<'py, PyList>,
    present: &[u8],
    exc_value: Option<Bound<'py, PyAny>>,
) -> PyResult<()> {
    let py = gen.py();
    let shape = CodeShape::of(code_of(gen)?)?;
    let raw = checked_frame(gen, &shape).map_err(PyValueError::new_err)?;
    // SAFETY: `raw` is a live generator of the checked layout.
    if unsafe { (*raw).frame_state } != state::CREATED {
        return Err(refuse("the generator to restore has already started"));
    }
    let slots: Vec<Bound<'py, PyAny>> = slots.iter().collect();
    let n = slots.len();
    let Ok(top) = c_int::try_from(n) else {
        return Err(refuse("too many generator slots"));
    };
    if present.len() != n {
        return Err(refuse(
            "generator slots and their presence marks differ in length",
        ));
    }
    if n < shape.nlocalsplus || n > shape.nlocalsplus + shape.stacksize {
        return Err(refuse(format!(
            "a generator frame of {n} slots does not fit its code ({} locals, stack of {})",
            shape.nlocalsplus, shape.stacksize
        )));
    }
    for &i in &shape.cell_slots {
        // SAFETY: comparing a live object's type pointer with a static type.
        let is_cell = present[i] != 0
            && unsafe { ffi::Py_TYPE(slots[i].as_ptr()) } == &raw mut ffi::PyCell_Type;
        if !is_cell {
            return Err(refuse(format!("generator slot {i} must hold a cell")));
        }
    }
    let suspended = state::is_suspended(frame_state);
    if frame_state != state::CREATED && !suspended {
        return Err(refuse(format!(
            "generator frame state {frame_state} cannot be restored"
        )));
    }
    if lasti >= shape.code_units() {
        return Err(refuse(format!(
            "instruction offset {lasti} is outside the code"
        )));
    }
    if suspended {
        let Some(delegating) = shape.resume_point(lasti, Opcodes::get(py)?) else {
            return Err(refuse(format!(
                "instruction offset {lasti} is not a point where the generator can be suspended"
            )));
        };
        if !state::fits_resume_point(frame_state, delegating) {
            return Err(refuse(format!(
                "generator frame state {frame_state} does not fit its resume point at offset {lasti}"
            )));
        }
        if delegating && (n == shape.nlocalsplus || present[n - 1] == 0) {
            return Err(refuse(
                "a generator suspended in `yield from` or `await` needs its subiterator on the stack",
            ));
        }
    }
    check_values(
        gen,
        &shape,
        suspended.then_some(lasti),
        &slots,
        present,
        exc_value.as_ref(),
    )?;
    // SAFETY: `raw` is a live generator of the checked layout whose frame
    // holds `nlocalsplus + stacksize` slots, and `n` is within that. A
    // generator that has not started has `stacktop == nlocalsplus`, so the
    // slots below it are its only initialized ones. Each slot written gets a
    // new strong reference (or NULL); the references it held are released
    // only once the frame is consistent, since releasing may run code.
    unsafe {
        let frame = &raw mut (*raw).iframe;
        if (*frame).f_code != shape.code.as_ptr() {
            return Err(PyValueError::new_err(
                "the generator's frame runs another code object",
            ));
        }
        let old_top = usize::try_from((*frame).stacktop).unwrap_or(0);
        // Checked again: the Python code `check_values` ran may have
        // started it.
        if old_top != shape.nlocalsplus || (*raw).frame_state != state::CREATED {
            return Err(PyValueError::new_err(
                "the generator's frame has a stack already",
            ));
        }
        let locals = (&raw mut (*frame).localsplus).cast::<*mut ffi::PyObject>();
        let mut released = Vec::with_capacity(old_top + 1);
        for (i, (item, &mark)) in slots.iter().zip(present).enumerate() {
            if i < old_top {
                released.push(*locals.add(i));
            }
            *locals.add(i) = if mark != 0 {
                item.clone().into_ptr()
            } else {
                std::ptr::null_mut()
            };
        }
        (*frame).stacktop = top;
        if suspended {
            let start = code_start(&shape.code);
            (*frame).instr = start.add(lasti);
        }
        (*raw).frame_state = frame_state;
        released.push((*raw).exc_value);
        (*raw).exc_value = exc_value.map_or(std::ptr::null_mut(), Bound::into_ptr);
        for old in released {
            ffi::Py_XDECREF(old);
        }
    }
    Ok(())
}
