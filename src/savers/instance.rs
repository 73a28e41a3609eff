//! A native fast path for plain instances.
//!
//! For an instance whose class leaves pickling entirely to `object`
//! (`__reduce_ex__`, `__reduce__` and `__getstate__` inherited, no
//! `__getnewargs(_ex)__`), `object.__reduce_ex__(proto >= 2)` would build
//! `(copyreg.__newobj__, (cls,), state, None, None)` and `save_reduce` would
//! write `cls () NEWOBJ MEMOIZE state BUILD`. We write those same bytes
//! directly, without the reduce tuple or the temporary `(dict, slots)` state.
//!
//! The per-type checks mirror `object___reduce_ex__` and
//! `object_getstate_default` of CPython 3.11 to 3.13, which agree on what
//! is checked (3.12 moved weakrefs and dicts into a pre-header, 3.13 keeps
//! dict values inline; `PyObject_GenericGetDict` reads either). Other
//! versions (3.14: `_PyType_Lookup` and the version-tag flag are unverified
//! there) take the general path, with its 100,000-level nesting limit.

use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};

use crate::engine::frames::{Frame, ReduceTail, SaveCtx};
use crate::engine::{Engine, InstanceLayout as Layout, ObjectKey};

#[cfg(all(Py_3_11, not(Py_3_14)))]
extern "C" {
    // Exported by libpython (Include/cpython/object.h), not bound by pyo3-ffi:
    // `name` looked up along the MRO of `tp`, as attribute access does.
    fn _PyType_Lookup(
        tp: *mut pyo3::ffi::PyTypeObject,
        name: *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
}

/// Static (C) types whose instances never take the fast path, by address:
/// such types live as long as the interpreter and cannot change, so the
/// answer holds across dumps (numpy arrays, dtypes, ...).
static STATIC_WITHOUT_LAYOUT: std::sync::Mutex<Option<ahash::AHashSet<usize>>> =
    std::sync::Mutex::new(None);

/// Whether an instance's own `__dict__` holds `__reduce_ex__`, `__reduce__`
/// or `__getstate__`, which getattr (and so pickle) finds before the
/// class's. Attribute names are interned strings, which equal those names
/// only if they are the same objects: their addresses are compared, and only
/// a dict with some other key is asked.
fn shadows_reduction(dict: &Bound<'_, PyDict>) -> PyResult<bool> {
    use pyo3::intern;
    let py = dict.py();
    let names = [
        intern!(py, "__reduce_ex__"),
        intern!(py, "__reduce__"),
        intern!(py, "__getstate__"),
    ];
    let mut pos: pyo3::ffi::Py_ssize_t = 0;
    let mut key = std::ptr::null_mut();
    let mut value = std::ptr::null_mut();
    let mut only_interned_names = true;
    // SAFETY: iterating a live dict; the borrowed keys are only compared and
    // their type and string flags read, which runs no Python code.
    while unsafe { pyo3::ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut key, &mut value) } != 0 {
        if names.iter().any(|name| name.as_ptr() == key) {
            return Ok(true);
        }
        // SAFETY: `key` is a live object, read as a str only if it is one.
        #[cfg(not(Py_3_14))]
        let interned = unsafe {
            pyo3::ffi::PyUnicode_CheckExact(key) != 0
                && (*key.cast::<pyo3::ffi::PyASCIIObject>()).interned() != 0
        };
        #[cfg(Py_3_14)]
        let interned = false;
        if !interned {
            only_interned_names = false;
            break;
        }
    }
    if only_interned_names {
        return Ok(false);
    }
    for name in names {
        if dict.contains(name)? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Layout<'_> {
    fn is_current(&self, tp: &Bound<'_, PyType>) -> bool {
        version_tag(tp) == Some(self.version_tag)
    }
}

/// The version tag of `tp`, when it has a valid one. Up to 3.12 a valid tag
/// is flagged with `Py_TPFLAGS_VALID_VERSION_TAG`; 3.13 no longer sets the
/// flag, and a tag of 0 alone means none (as in every version).
fn version_tag(tp: &Bound<'_, PyType>) -> Option<std::os::raw::c_uint> {
    // SAFETY: reading two fields of a live type object.
    let (flags, tag) = unsafe {
        let t = tp.as_type_ptr();
        ((*t).tp_flags, (*t).tp_version_tag)
    };
    let flagged = cfg!(Py_3_13) || flags & pyo3::ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0;
    (flagged && tag != 0).then_some(tag)
}

impl<'py> Engine<'py> {
    /// The fast-path layout of instances of `tp`, or `None` when they must
    /// go through `__reduce_ex__`. Decided once per type per dump, and again
    /// if the class changes.
    pub fn instance_layout(
        &mut self,
        tp: &Bound<'py, PyType>,
    ) -> PyResult<Option<Rc<Layout<'py>>>> {
        let key = tp.as_ptr() as usize;
        if let Some(known) = self.caches().instance_layouts.get(&key) {
            if known.as_ref().is_none_or(|layout| layout.is_current(tp)) {
                return Ok(known.clone());
            }
        }
        // SAFETY: reading the flags of a live type object.
        let is_static =
            unsafe { (*tp.as_type_ptr()).tp_flags & pyo3::ffi::Py_TPFLAGS_HEAPTYPE == 0 };
        if is_static
            && STATIC_WITHOUT_LAYOUT
                .lock()
                .is_ok_and(|known| known.as_ref().is_some_and(|k| k.contains(&key)))
        {
            self.caches()
                .instance_layouts
                .insert(ObjectKey::new(tp.as_any()), None);
            return Ok(None);
        }
        let layout = self.classify(tp)?.map(Rc::new);
        if is_static && layout.is_none() && self.proto() >= 2 {
            if let Ok(mut known) = STATIC_WITHOUT_LAYOUT.lock() {
                known.get_or_insert_with(Default::default).insert(key);
            }
        }
        self.caches()
            .instance_layouts
            .insert(ObjectKey::new(tp.as_any()), layout.clone());
        Ok(layout)
    }

    /// The layout `instance_layout` gave `tp` earlier in this dump, if any
    /// and if the class has not changed since: a lookup, for the instances
    /// after the first.
    pub fn known_instance_layout(&mut self, tp: &Bound<'py, PyType>) -> Option<Rc<Layout<'py>>> {
        match self.caches().instance_layouts.get(&(tp.as_ptr() as usize)) {
            Some(Some(layout)) if layout.is_current(tp) => Some(layout.clone()),
            _ => None,
        }
    }

    #[cfg(not(all(Py_3_11, not(Py_3_14))))]
    fn classify(&self, _tp: &Bound<'py, PyType>) -> PyResult<Option<Layout<'py>>> {
        Ok(None)
    }

    #[cfg(all(Py_3_11, not(Py_3_14)))]
    fn classify(&self, tp: &Bound<'py, PyType>) -> PyResult<Option<Layout<'py>>> {
        use pyo3::ffi;
        use pyo3::intern;
        const PY_TPFLAGS_MANAGED_DICT: std::os::raw::c_ulong = 1 << 4;
        let ptr_size = crate::sizes::ssize(std::mem::size_of::<*mut ffi::PyObject>());

        let py = self.py();
        if self.proto() < 2 {
            return Ok(None);
        }
        let t = tp.as_type_ptr();
        // SAFETY: `t` is a live type object; we only read its slots.
        let (basicsize, dictoffset, weaklistoffset, flags) = unsafe {
            // PyObject_GenericGetAttr is exported by libpython: one address.
            if (*t).tp_getattro.map(|f| f as usize)
                != Some(ffi::PyObject_GenericGetAttr as *const () as usize)
                || (*t).tp_new.is_none()
                || (*t).tp_itemsize != 0
                || ffi::PyType_IsSubtype(t, &raw mut ffi::PyType_Type) != 0
                || ffi::PyType_IsSubtype(t, &raw mut ffi::PyList_Type) != 0
                || ffi::PyType_IsSubtype(t, &raw mut ffi::PyDict_Type) != 0
            {
                return Ok(None);
            }
            (
                (*t).tp_basicsize,
                (*t).tp_dictoffset,
                (*t).tp_weaklistoffset,
                (*t).tp_flags,
            )
        };
        let st = self.st();
        for (name, default) in [
            (intern!(py, "__reduce_ex__"), &st.object_reduce_ex),
            (intern!(py, "__reduce__"), &st.object_reduce),
            (intern!(py, "__getstate__"), &st.object_getstate),
        ] {
            match tp.getattr_opt(name)? {
                Some(found) if found.is(default.bind(py)) => {}
                _ => return Ok(None),
            }
        }
        for name in [
            intern!(py, "__getnewargs_ex__"),
            intern!(py, "__getnewargs__"),
        ] {
            if tp.getattr_opt(name)?.is_some() {
                return Ok(None);
            }
        }
        let cached = tp
            .getattr(intern!(py, "__dict__"))?
            .get_item(intern!(py, "__slotnames__"))
            .ok();
        let slotnames = match cached {
            Some(names) => names,
            None => st.copyreg_slotnames.bind(py).call1((tp,))?,
        };
        let slotnames = if slotnames.is_none() {
            None
        } else {
            match slotnames.cast_into::<PyList>() {
                // A copy: the names checked below are the names read.
                Ok(list) => Some(list.to_tuple()),
                Err(_) => return Ok(None),
            }
        };
        // A slot read through anything but its own member descriptor (a
        // property of a subclass, say) runs Python code, which could make up
        // a new object at every level of an endless graph: leave such
        // classes to `__reduce_ex__`, whose reductions nest boundedly.
        for name in slotnames.iter().flatten() {
            let Ok(name) = name.cast::<pyo3::types::PyString>() else {
                return Ok(None);
            };
            // SAFETY: `t` and `name` are live; `_PyType_Lookup` returns a
            // borrowed reference or NULL, whose type is read at once.
            let is_member = unsafe {
                let descr = _PyType_Lookup(t, name.as_ptr());
                !descr.is_null() && ffi::Py_TYPE(descr) == &raw mut ffi::PyMemberDescr_Type
            };
            if !is_member {
                return Ok(None);
            }
        }
        // object_getstate_default refuses objects with C-level state it
        // cannot see; leave those to it.
        // SAFETY: reading a field of the static `object` type.
        let mut expected = unsafe { ffi::PyBaseObject_Type.tp_basicsize };
        if dictoffset != 0 && flags & PY_TPFLAGS_MANAGED_DICT == 0 {
            expected += ptr_size;
        }
        // From 3.12 a managed weakref has a negative offset (pre-header).
        if weaklistoffset > 0 {
            expected += ptr_size;
        }
        if let Some(names) = &slotnames {
            expected += ptr_size * crate::sizes::ssize(names.len());
        }
        if basicsize > expected {
            return Ok(None);
        }
        // Taken last: the Python code above may have modified the class
        // (`copyreg._slotnames` caches `__slotnames__` on it).
        // SAFETY: `t` is live; a lookup gives the class a version tag if it
        // has none (only when CPython has run out of tags does it stay
        // without one, and then the fast path is not taken).
        unsafe { _PyType_Lookup(t, intern!(py, "__reduce_ex__").as_ptr()) };
        let Some(version_tag) = version_tag(tp) else {
            return Ok(None);
        };
        Ok(Some(Layout {
            cls: tp.clone().into_any(),
            slotnames: slotnames.filter(|names| !names.is_empty()),
            has_dict: dictoffset != 0,
            version_tag,
        }))
    }

    /// `(module, name)` when the stateless `obj` is a module-level sentinel
    /// (see `turbodill._reducers.sentinels_of`, asked once per class per dump).
    fn sentinel_name(
        &mut self,
        cls: &Bound<'py, PyAny>,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let key = cls.as_ptr() as usize;
        if !self.caches().sentinels.contains_key(&key) {
            let found = self
                .py()
                .import("turbodill._reducers")?
                .getattr("sentinels_of")?
                .call1((cls,))?;
            let mut names = ahash::AHashMap::new();
            for (id, location) in found.cast::<pyo3::types::PyDict>()?.iter() {
                names.insert(id.extract::<usize>()?, location.extract()?);
            }
            self.caches().sentinels.insert(ObjectKey::new(cls), names);
        }
        let Some((module, name)) = self.caches().sentinels[&key]
            .get(&(obj.as_ptr() as usize))
            .cloned()
        else {
            return Ok(None);
        };
        // The index goes by `id()` and outlives the objects it names: the
        // name may have been rebound since, and the object it named freed
        // and its address reused by `obj`. Only the name itself can tell.
        let current = match self.st().sys_modules.bind(self.py()).get_item(&module) {
            Ok(m) => m.getattr_opt(name.cast::<pyo3::types::PyString>()?)?,
            Err(err) if err.is_instance_of::<pyo3::exceptions::PyKeyError>(self.py()) => None,
            Err(err) => return Err(err),
        };
        Ok(current
            .is_some_and(|current| current.is(obj))
            .then_some((module, name)))
    }

    /// Write `obj` as `cls () NEWOBJ` + state. Returns false, having written
    /// nothing, when this instance overrides the defaults in its own dict.
    pub fn save_instance(
        &mut self,
        obj: &Bound<'py, PyAny>,
        layout: &Layout<'py>,
    ) -> PyResult<bool> {
        let py = self.py();
        let dict = if layout.has_dict {
            // SAFETY: `obj` is live and its type has a dict slot;
            // PyObject_GenericGetDict returns a new reference or NULL.
            let dict = unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    pyo3::ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()),
                )?
            };
            let Ok(dict) = dict.cast_into::<PyDict>() else {
                return Ok(false);
            };
            if dict.is_empty() {
                None
            } else if shadows_reduction(&dict)? {
                return Ok(false);
            } else {
                Some(dict.into_any())
            }
        } else {
            None
        };
        let slots = match &layout.slotnames {
            Some(names) => {
                let values = PyDict::new(py);
                for name in names.iter() {
                    if let Some(value) = obj.getattr_opt(name.cast::<pyo3::types::PyString>()?)? {
                        values.set_item(name, value)?;
                    }
                }
                (!values.is_empty()).then_some(values)
            }
            None => None,
        };

        if dict.is_none() && slots.is_none() {
            // A stateless object may be a module-level sentinel, which must
            // stay the same object after loading.
            if let Some((module, name)) = self.sentinel_name(&layout.cls, obj)? {
                self.write_global(obj, module, name)?;
                return Ok(true);
            }
        }
        let depth = self.stack_depth();
        self.save(&layout.cls, SaveCtx::default())?;
        if self.stack_depth() > depth {
            // Saving the class queued work: queue the rest beneath it, the
            // general way (the state tuple is then a real, memoized object).
            let state = match (&dict, &slots) {
                (d, Some(s)) => Some(
                    pyo3::types::PyTuple::new(
                        py,
                        [
                            d.clone().unwrap_or_else(|| py.None().into_bound(py)),
                            s.clone().into_any(),
                        ],
                    )?
                    .into_any(),
                ),
                (d, None) => d.clone(),
            };
            self.enter_reduction()?;
            let tail = ReduceTail {
                obj: Some(obj.clone()),
                listitems: None,
                dictitems: None,
                state,
                state_setter: None,
            };
            let empty = pyo3::types::PyTuple::empty(py).into_any();
            self.park_frames(
                depth,
                [
                    Frame::ReduceTail(tail),
                    Frame::Write(crate::output::opcodes::NEWOBJ),
                    Frame::Save(empty, SaveCtx::default()),
                ],
            );
            return Ok(true);
        }
        self.opcode_boundary()?;
        self.write(&[
            crate::output::opcodes::EMPTY_TUPLE,
            crate::output::opcodes::NEWOBJ,
        ]);
        self.memo_put(obj);
        match slots {
            None => {
                if let Some(dict) = dict {
                    self.push_frame(Frame::Write(crate::output::opcodes::BUILD));
                    self.save(&dict, SaveCtx::STATE)?;
                }
            }
            Some(slots) => {
                use crate::output::opcodes::{BUILD, TUPLE2};
                self.push_frame(Frame::Write(BUILD));
                self.push_frame(Frame::MemoAnonymous);
                self.push_frame(Frame::Write(TUPLE2));
                self.push_frame(Frame::Save(slots.into_any(), SaveCtx::TEMPORARY));
                let dict = dict.unwrap_or_else(|| py.None().into_bound(py));
                self.save(&dict, SaveCtx::STATE)?;
            }
        }
        Ok(true)
    }
}
