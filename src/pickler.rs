//! The Python-facing pickler: `Pickler` (subclassable, like `_pickle.Pickler`),
//! and the module-level `dump` / `dumps`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use pyo3::PyTraverseError;

use crate::engine::memo::Memo;
use crate::engine::{Engine, Hooks, Options, PyState};
use crate::errors::pickling_error;
use crate::output::opcodes::HIGHEST_PROTOCOL;

/// `turbodill.settings` as last read, with the dict's version tag (which
/// CPython changes on every change to the dict): reading the dict on each
/// call cost more than a whole small dump.
#[derive(Clone, Copy)]
struct SettingsSnapshot {
    version: u64,
    protocol: i64,
    byref: bool,
    fmode: u8,
}

thread_local! {
    static SETTINGS: std::cell::Cell<Option<SettingsSnapshot>> = const { std::cell::Cell::new(None) };
}

fn read_settings(settings: &Bound<'_, PyDict>) -> PyResult<SettingsSnapshot> {
    let py = settings.py();
    // SAFETY: `settings` is a dict; on 3.11 its object starts with the
    // PyDictObject header, whose `ma_version_tag` we only read.
    #[cfg(not(Py_3_12))]
    let version =
        unsafe { (*(settings.as_ptr() as *const pyo3::ffi::PyDictObject)).ma_version_tag };
    #[cfg(Py_3_12)]
    let version = 0; // no version tag to trust: read every time
    if let Some(snapshot) = SETTINGS
        .with(|s| s.get())
        .filter(|s| version != 0 && s.version == version)
    {
        return Ok(snapshot);
    }
    let snapshot = SettingsSnapshot {
        version,
        protocol: setting(settings, intern!(py, "protocol"), None, 4)?,
        byref: setting(settings, intern!(py, "byref"), None, false)?,
        fmode: setting(settings, intern!(py, "fmode"), None, 0)?,
    };
    SETTINGS.with(|s| s.set(Some(snapshot)));
    Ok(snapshot)
}

/// Resolve the `protocol` argument as the stdlib does: None is the default
/// (`turbodill.settings['protocol']`, the stdlib's unless changed), a
/// negative number is the highest.
fn resolve_protocol(default: i64, protocol: Option<i64>) -> PyResult<u8> {
    match protocol.unwrap_or(default) {
        p if p < 0 => Ok(HIGHEST_PROTOCOL),
        p => u8::try_from(p)
            .ok()
            .filter(|&p| p <= HIGHEST_PROTOCOL)
            .ok_or_else(|| {
                PyValueError::new_err(format!("pickle protocol must be <= {HIGHEST_PROTOCOL}"))
            }),
    }
}

/// One of `turbodill.settings`, or `default` when it was deleted.
fn setting<'py, T: for<'a> FromPyObject<'a, 'py>>(
    settings: &Bound<'py, PyDict>,
    name: &Bound<'py, pyo3::types::PyString>,
    given: Option<T>,
    default: T,
) -> PyResult<T> {
    if let Some(value) = given {
        return Ok(value);
    }
    match settings.get_item(name)? {
        Some(value) => value.extract().map_err(Into::into),
        None => Ok(default),
    }
}

/// The options of one dump, from its arguments and `turbodill.settings`.
#[allow(clippy::too_many_arguments)]
fn resolve_options(
    py: Python<'_>,
    protocol: Option<i64>,
    byref: Option<bool>,
    fmode: Option<u8>,
    fix_imports: bool,
    deterministic: bool,
    buffer_callback: &Option<Bound<'_, PyAny>>,
) -> PyResult<Options> {
    let settings = read_settings(PyState::get(py)?.settings.bind(py))?;
    let protocol = resolve_protocol(settings.protocol, protocol)?;
    check_buffer_callback(protocol, buffer_callback)?;
    Ok(Options {
        protocol,
        fix_imports,
        fast: false,
        byref: byref.unwrap_or(settings.byref),
        fmode: fmode.unwrap_or(settings.fmode),
        deterministic,
    })
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

/// The arguments `dump` and `dumps` share.
struct DumpArgs<'py> {
    protocol: Option<i64>,
    byref: Option<bool>,
    fmode: Option<u8>,
    /// Accepted for dill: functions always carry exactly the globals they use.
    #[allow(dead_code)]
    recurse: Option<bool>,
    fix_imports: bool,
    buffer_callback: Option<Bound<'py, PyAny>>,
    deterministic: bool,
}

impl<'py> DumpArgs<'py> {
    fn engine(
        self,
        py: Python<'py>,
        file_write: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Engine<'py>> {
        let opts = resolve_options(
            py,
            self.protocol,
            self.byref,
            self.fmode,
            self.fix_imports,
            self.deterministic,
            &self.buffer_callback,
        )?;
        let hooks = Hooks {
            buffer_callback: some_unless_none(self.buffer_callback),
            ..Default::default()
        };
        Engine::new(py, opts, hooks, None, file_write, crate::savers::dispatch())
    }

    /// The pickle of `obj` as bytes (for a signed `dump`).
    fn dump_to_bytes(self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let mut engine = self.engine(obj.py(), None)?;
        engine.dump(obj)?;
        engine.into_bytes()
    }
}

/// The signed envelope of a payload (`turbodill._signing.sign`, the
/// stdlib's hmac), for a dump given `key=`; unsigned dumps never get here.
#[cold]
#[inline(never)]
fn signed<'py>(
    payload: &Bound<'py, PyBytes>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let sign = payload.py().import("turbodill._signing")?.getattr("sign")?;
    Ok(sign.call1((payload, key))?.cast_into()?)
}

/// Pickle `obj` to bytes. `byref`, `fmode` and `recurse` are dill's (see
/// `turbodill.settings`); `deterministic=True` also orders sets; `key`
/// (bytes or str) signs the payload (see `turbodill._signing`).
#[pyfunction]
#[pyo3(signature = (obj, protocol=None, byref=None, fmode=None, recurse=None, *, fix_imports=true, buffer_callback=None, deterministic=false, key=None))]
#[allow(clippy::too_many_arguments)]
pub fn dumps<'py>(
    obj: &Bound<'py, PyAny>,
    protocol: Option<i64>,
    byref: Option<bool>,
    fmode: Option<u8>,
    recurse: Option<bool>,
    fix_imports: bool,
    buffer_callback: Option<Bound<'py, PyAny>>,
    deterministic: bool,
    key: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let args = DumpArgs {
        protocol,
        byref,
        fmode,
        recurse,
        fix_imports,
        buffer_callback,
        deterministic,
    };
    // Not `dump_to_bytes`: inline here, the unsigned path measures ~5 ns faster.
    let mut engine = args.engine(obj.py(), None)?;
    engine.dump(obj)?;
    let payload = engine.into_bytes()?;
    match key {
        None => Ok(payload),
        Some(key) => signed(&payload, key),
    }
}

fn file_write<'py>(file: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    file.getattr_opt(intern!(file.py(), "write"))?
        .ok_or_else(|| PyTypeError::new_err("file must have a 'write' attribute"))
}

/// Pickle `obj` to an open binary file (arguments as for `dumps`). A signed
/// dump is made in memory, then written in one piece.
#[pyfunction]
#[pyo3(signature = (obj, file, protocol=None, byref=None, fmode=None, recurse=None, *, fix_imports=true, buffer_callback=None, deterministic=false, key=None))]
#[allow(clippy::too_many_arguments)]
pub fn dump<'py>(
    obj: &Bound<'py, PyAny>,
    file: &Bound<'py, PyAny>,
    protocol: Option<i64>,
    byref: Option<bool>,
    fmode: Option<u8>,
    recurse: Option<bool>,
    fix_imports: bool,
    buffer_callback: Option<Bound<'py, PyAny>>,
    deterministic: bool,
    key: Option<&Bound<'py, PyAny>>,
) -> PyResult<()> {
    let args = DumpArgs {
        protocol,
        byref,
        fmode,
        recurse,
        fix_imports,
        buffer_callback,
        deterministic,
    };
    let write = file_write(file)?;
    if let Some(key) = key {
        write.call1((signed(&args.dump_to_bytes(obj)?, key)?,))?;
        return Ok(());
    }
    args.engine(obj.py(), Some(write))?.dump(obj)
}

/// The hook `name` of `pickler`, unless it is the base class's own method
/// (then calling it for every object would only say "no"), as `_pickle.c`
/// skips its default `persistent_id`.
fn overridden_hook<'py>(
    pickler: &Bound<'py, Pickler>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(hook) = pickler.getattr_opt(name)? else {
        return Ok(None);
    };
    let py = pickler.py();
    let base = py.get_type::<Pickler>().getattr_opt(name)?;
    let inherited = match base {
        Some(base) => {
            pickler.get_type().getattr(name)?.is(&base)
                && !pickler
                    .getattr(intern!(py, "__dict__"))?
                    .cast_into::<PyDict>()?
                    .contains(name)?
        }
        None => false,
    };
    Ok((!inherited).then_some(hook))
}

/// A pickler writing to a file, with the stdlib's hooks: subclasses may
/// define `persistent_id` and `reducer_override` and set `dispatch_table` on
/// the class or the instance. As `_pickle.Pickler` of the same version, the
/// base class defines no `reducer_override` (so mixins can supply it) and,
/// from 3.13, a `persistent_id` returning None that subclasses may call
/// through `super()` (before 3.13 it has none).
///
/// No Python code runs while its Rust state is borrowed: the methods work out
/// what they need first, swap it in under a short borrow, and drop what they
/// replaced (whose `__del__` may use the pickler) after the borrow ends.
#[pyclass(subclass, dict, weakref, module = "turbodill", name = "Pickler")]
pub struct Pickler {
    write: Option<Py<PyAny>>,
    options: Options,
    buffer_callback: Option<Py<PyAny>>,
    memo: Memo,
}

/// What a `Pickler` gives up when its state is replaced, dropped once the
/// borrow is over.
type Replaced = (Option<Py<PyAny>>, Option<Py<PyAny>>, Memo);

#[pymethods]
impl Pickler {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Pickler {
            write: None,
            options: Options::default(),
            buffer_callback: None,
            memo: Memo::default(),
        }
    }

    #[pyo3(signature = (file, protocol=None, fix_imports=true, buffer_callback=None, *, byref=None, fmode=None, recurse=None, deterministic=false))]
    #[allow(clippy::too_many_arguments)]
    fn __init__(
        slf: &Bound<'_, Self>,
        file: &Bound<'_, PyAny>,
        protocol: Option<i64>,
        fix_imports: bool,
        buffer_callback: Option<Bound<'_, PyAny>>,
        byref: Option<bool>,
        fmode: Option<u8>,
        recurse: Option<bool>,
        deterministic: bool,
    ) -> PyResult<()> {
        let py = file.py();
        let _ = recurse;
        let options = resolve_options(
            py,
            protocol,
            byref,
            fmode,
            fix_imports,
            deterministic,
            &buffer_callback,
        )?;
        let write = file_write(file)?.unbind();
        let buffer_callback = some_unless_none(buffer_callback).map(Bound::unbind);
        let replaced: Replaced = {
            let mut me = borrow_mut(slf)?;
            me.options = options;
            (
                me.write.replace(write),
                std::mem::replace(&mut me.buffer_callback, buffer_callback),
                std::mem::take(&mut me.memo),
            )
        };
        drop(replaced);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.write)?;
        visit.call(&self.buffer_callback)?;
        self.memo.traverse(&visit)
    }

    /// Break cycles through the file, the callback and the memo (the
    /// instance `__dict__` is cleared by PyO3).
    fn __clear__(&mut self) {
        self.write = None;
        self.buffer_callback = None;
        self.memo = Memo::default();
    }

    #[getter]
    fn fast(&self) -> bool {
        self.options.fast
    }

    #[setter]
    fn set_fast(&mut self, fast: bool) {
        self.options.fast = fast;
    }

    /// Write a pickle of `obj` to the file.
    fn dump(slf: &Bound<'_, Self>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let (opts, memo, write, buffer_callback) = {
            let mut me = borrow_mut(slf)?;
            let Some(write) = me.write.as_ref().map(|w| w.bind(py).clone()) else {
                drop(me);
                let name = slf.get_type().name()?;
                return Err(pickling_error(
                    py,
                    format!("Pickler.__init__() was not called by {name}.__init__()"),
                ));
            };
            let opts = me.options.clone();
            let callback = me.buffer_callback.as_ref().map(|c| c.bind(py).clone());
            (opts, std::mem::take(&mut me.memo), write, callback)
        };
        let hooks = Hooks {
            persistent_id: overridden_hook(slf, intern!(py, "persistent_id"))?,
            reducer_override: slf.getattr_opt(intern!(py, "reducer_override"))?,
            dispatch_table: slf.getattr_opt(intern!(py, "dispatch_table"))?,
            buffer_callback,
        };
        // The engine runs with no borrow of `self` held, so hooks may use
        // the pickler (read `memo`, set attributes) while it works.
        let mut engine = Engine::new(
            py,
            opts,
            hooks,
            Some(memo),
            Some(write),
            crate::savers::dispatch(),
        )?;
        let result = engine.dump(obj);
        let memo = engine.take_memo();
        drop(engine);
        // A memo a hook set during the dump is replaced by the dump's own.
        let replaced = std::mem::replace(&mut borrow_mut(slf)?.memo, memo);
        drop(replaced);
        result
    }

    /// The default persistent id: none, so `obj` is pickled as usual.
    #[cfg(Py_3_13)]
    fn persistent_id(&self, obj: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
        let _ = obj;
        None
    }

    /// Forget the objects pickled so far.
    fn clear_memo(slf: &Bound<'_, Self>) -> PyResult<()> {
        let replaced = std::mem::take(&mut borrow_mut(slf)?.memo);
        drop(replaced);
        Ok(())
    }

    #[getter]
    fn bin(&self) -> bool {
        self.options.protocol >= 1
    }

    #[getter]
    fn memo(slf: &Bound<'_, Self>) -> MemoProxy {
        MemoProxy {
            pickler: slf.clone().unbind(),
        }
    }

    /// Prime the memo from another pickler's memo (a `MemoProxy`) or from a
    /// dict `{key: (index, obj)}`.
    #[setter]
    fn set_memo(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let entries: Vec<(u32, Bound<'_, PyAny>)> = if let Ok(proxy) = value.cast::<MemoProxy>() {
            let source = proxy.get().pickler.bind(py);
            if source.is(slf) {
                return Ok(());
            }
            let entries = borrow(source)?.memo.entries(py);
            entries
        } else if let Ok(dict) = value.cast::<PyDict>() {
            dict.values()
                .iter()
                .map(|v| v.extract())
                .collect::<PyResult<_>>()?
        } else {
            return Err(PyTypeError::new_err(format!(
                "'memo' attribute must be a PicklerMemoProxy object or dict, not {}",
                value.get_type().name()?
            )));
        };
        let mut memo = Memo::default();
        for (idx, obj) in entries {
            // Indices above this could run the memo's counter past u32.
            if idx > MAX_PRIMED_INDEX {
                return Err(PyValueError::new_err(format!(
                    "memo index {idx} is too large (at most {MAX_PRIMED_INDEX})"
                )));
            }
            memo.insert_at(&obj, idx);
        }
        let replaced = std::mem::replace(&mut borrow_mut(slf)?.memo, memo);
        drop(replaced);
        Ok(())
    }
}

/// The largest memo index a primed memo may hold: from there, the counter
/// has room for more objects than a dump can hold in memory.
const MAX_PRIMED_INDEX: u32 = i32::MAX as u32;

/// The pickler's state, or a RuntimeError (never a panic) if it is in use.
fn borrow<'py>(pickler: &Bound<'py, Pickler>) -> PyResult<PyRef<'py, Pickler>> {
    Ok(pickler.try_borrow()?)
}

fn borrow_mut<'py>(pickler: &Bound<'py, Pickler>) -> PyResult<PyRefMut<'py, Pickler>> {
    Ok(pickler.try_borrow_mut()?)
}

/// The live memo of a `Pickler` (like `_pickle.PicklerMemoProxy`).
#[pyclass(module = "turbodill", name = "PicklerMemoProxy", frozen)]
pub struct MemoProxy {
    pickler: Py<Pickler>,
}

#[pymethods]
impl MemoProxy {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.pickler)
    }

    /// A dict `{id(obj): (index, obj)}`.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let entries = borrow(self.pickler.bind(py))?.memo.entries(py);
        let out = PyDict::new(py);
        for (idx, obj) in entries {
            out.set_item(obj.as_ptr() as usize, (idx, obj))?;
        }
        Ok(out)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        Pickler::clear_memo(self.pickler.bind(py))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(borrow(self.pickler.bind(py))?.memo.len())
    }
}
