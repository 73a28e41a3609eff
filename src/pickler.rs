//! The Python-facing pickler: `Pickler` (subclassable, like `_pickle.Pickler`),
//! and the module-level `dump` / `dumps`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::engine::memo::Memo;
use crate::engine::{Engine, Hooks, Options, PyState};
use crate::errors::pickling_error;

pub const HIGHEST_PROTOCOL: u8 = 5;

/// Resolve the `protocol` argument as the stdlib does: None is the default,
/// a negative number is the highest.
fn resolve_protocol(py: Python<'_>, protocol: Option<i64>) -> PyResult<u8> {
    match protocol {
        None => Ok(PyState::get(py)?.default_protocol),
        Some(p) if p < 0 => Ok(HIGHEST_PROTOCOL),
        Some(p) if p > HIGHEST_PROTOCOL as i64 => {
            Err(PyValueError::new_err(format!("pickle protocol must be <= {HIGHEST_PROTOCOL}")))
        }
        Some(p) => Ok(p as u8),
    }
}

fn check_buffer_callback(protocol: u8, callback: &Option<Bound<'_, PyAny>>) -> PyResult<()> {
    if callback.as_ref().is_some_and(|c| !c.is_none()) && protocol < 5 {
        return Err(PyValueError::new_err("buffer_callback needs protocol >= 5"));
    }
    Ok(())
}

fn some_unless_none(obj: Option<Bound<'_, PyAny>>) -> Option<Bound<'_, PyAny>> {
    obj.filter(|o| !o.is_none())
}

/// Pickle `obj` to bytes.
#[pyfunction]
#[pyo3(signature = (obj, protocol=None, *, fix_imports=true, buffer_callback=None))]
pub fn dumps<'py>(
    obj: &Bound<'py, PyAny>,
    protocol: Option<i64>,
    fix_imports: bool,
    buffer_callback: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = obj.py();
    let protocol = resolve_protocol(py, protocol)?;
    check_buffer_callback(protocol, &buffer_callback)?;
    let hooks = Hooks { buffer_callback: some_unless_none(buffer_callback), ..Default::default() };
    let opts = Options { protocol, fix_imports, fast: false };
    let mut engine = Engine::new(py, opts, hooks, None, None)?;
    engine.dump(obj)?;
    Ok(engine.into_bytes())
}

fn file_write<'py>(file: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    file.getattr_opt(intern!(file.py(), "write"))?
        .ok_or_else(|| PyTypeError::new_err("file must have a 'write' attribute"))
}

/// Pickle `obj` to an open binary file.
#[pyfunction]
#[pyo3(signature = (obj, file, protocol=None, *, fix_imports=true, buffer_callback=None))]
pub fn dump<'py>(
    obj: &Bound<'py, PyAny>,
    file: &Bound<'py, PyAny>,
    protocol: Option<i64>,
    fix_imports: bool,
    buffer_callback: Option<Bound<'py, PyAny>>,
) -> PyResult<()> {
    let py = obj.py();
    let protocol = resolve_protocol(py, protocol)?;
    check_buffer_callback(protocol, &buffer_callback)?;
    let write = file_write(file)?;
    let hooks = Hooks { buffer_callback: some_unless_none(buffer_callback), ..Default::default() };
    let opts = Options { protocol, fix_imports, fast: false };
    Engine::new(py, opts, hooks, None, Some(write))?.dump(obj)
}

/// A pickler writing to a file, with the stdlib's hooks: subclasses may
/// define `persistent_id` and `reducer_override` (the base class defines
/// neither, as `_pickle.Pickler` does not, so mixins can supply them) and set
/// `dispatch_table` on the class or the instance.
#[pyclass(subclass, dict, weakref, module = "turbodill", name = "Pickler")]
pub struct Pickler {
    write: Option<Py<PyAny>>,
    protocol: u8,
    fix_imports: bool,
    buffer_callback: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    fast: bool,
    memo: Memo,
}

#[pymethods]
impl Pickler {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Pickler { write: None, protocol: 0, fix_imports: true, buffer_callback: None, fast: false, memo: Memo::default() }
    }

    #[pyo3(signature = (file, protocol=None, fix_imports=true, buffer_callback=None))]
    fn __init__(
        &mut self,
        file: &Bound<'_, PyAny>,
        protocol: Option<i64>,
        fix_imports: bool,
        buffer_callback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = file.py();
        let protocol = resolve_protocol(py, protocol)?;
        check_buffer_callback(protocol, &buffer_callback)?;
        self.write = Some(file_write(file)?.unbind());
        self.protocol = protocol;
        self.fix_imports = fix_imports;
        self.buffer_callback = some_unless_none(buffer_callback).map(Bound::unbind);
        self.fast = false;
        self.memo.clear();
        Ok(())
    }

    /// Write a pickle of `obj` to the file.
    fn dump(slf: &Bound<'_, Self>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let (opts, memo, write, buffer_callback) = {
            let mut me = slf.borrow_mut();
            let Some(write) = me.write.as_ref().map(|w| w.bind(py).clone()) else {
                let name = slf.get_type().name()?;
                return Err(pickling_error(py, format!("Pickler.__init__() was not called by {name}.__init__()")));
            };
            let opts = Options { protocol: me.protocol, fix_imports: me.fix_imports, fast: me.fast };
            let callback = me.buffer_callback.as_ref().map(|c| c.bind(py).clone());
            (opts, std::mem::take(&mut me.memo), write, callback)
        };
        let hooks = Hooks {
            persistent_id: slf.getattr_opt(intern!(py, "persistent_id"))?,
            reducer_override: slf.getattr_opt(intern!(py, "reducer_override"))?,
            dispatch_table: slf.getattr_opt(intern!(py, "dispatch_table"))?,
            buffer_callback,
        };
        // The engine runs with no borrow of `self` held, so hooks may use
        // the pickler (read `memo`, set attributes) while it works.
        let mut engine = Engine::new(py, opts, hooks, Some(memo), Some(write))?;
        let result = engine.dump(obj);
        slf.borrow_mut().memo = engine.take_memo();
        result
    }

    /// Forget the objects pickled so far.
    fn clear_memo(&mut self) {
        self.memo.clear();
    }

    #[getter]
    fn bin(&self) -> bool {
        self.protocol >= 1
    }

    #[getter]
    fn memo(slf: &Bound<'_, Self>) -> MemoProxy {
        MemoProxy { pickler: slf.clone().unbind() }
    }

    /// Prime the memo from another pickler's memo (a `MemoProxy`) or from a
    /// dict `{key: (index, obj)}`.
    #[setter]
    fn set_memo(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let entries: Vec<(u32, Bound<'_, PyAny>)> = if let Ok(proxy) = value.cast::<MemoProxy>() {
            let source = proxy.get().pickler.bind(py);
            if source.is(value) {
                return Ok(());
            }
            source.borrow().memo.entries(py)
        } else if let Ok(dict) = value.cast::<PyDict>() {
            dict.values().iter().map(|v| v.extract()).collect::<PyResult<_>>()?
        } else {
            return Err(PyTypeError::new_err(format!(
                "'memo' attribute must be a PicklerMemoProxy object or dict, not {}",
                value.get_type().name()?
            )));
        };
        let mut memo = Memo::default();
        for (idx, obj) in entries {
            memo.insert_at(&obj, idx);
        }
        self.memo = memo;
        Ok(())
    }
}

/// The live memo of a `Pickler` (like `_pickle.PicklerMemoProxy`).
#[pyclass(module = "turbodill", name = "PicklerMemoProxy", frozen)]
pub struct MemoProxy {
    pickler: Py<Pickler>,
}

#[pymethods]
impl MemoProxy {
    /// A dict `{id(obj): (index, obj)}`.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (idx, obj) in self.pickler.bind(py).borrow().memo.entries(py) {
            out.set_item(obj.as_ptr() as usize, (idx, obj))?;
        }
        Ok(out)
    }

    fn clear(&self, py: Python<'_>) {
        self.pickler.bind(py).borrow_mut().memo.clear();
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.pickler.bind(py).borrow().memo.len()
    }
}
