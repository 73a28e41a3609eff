//! Classes by value: those defined in `__main__`, inside functions, or in
//! modules registered to be pickled by value.
//!
//! A class is written as `turbodill._reconstruct.make_class(metaclass, name,
//! bases, key, namespace)` (or `make_enum`), memoized, then given the rest of
//! its attributes by `class_setstate` (the reduce protocol's state setter),
//! so methods and attributes may refer back to the class. `key` is derived
//! from the class definition, deterministically, so the same class pickled
//! in several payloads (from any process) loads as one class.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

use pyo3::sync::PyOnceLock;

use super::imported_once;
use crate::engine::Engine;

/// Attributes that the class machinery makes itself.
const MADE_BY_TYPE: &[&str] = &[
    "__dict__",
    "__weakref__",
    "_abc_impl",
    "__orig_bases__",
    "__parameters__",
];

/// 64-bit FNV-1a: small, stable across processes and platforms.
struct Digest(u64);

impl Digest {
    fn new() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain([0xffu8].iter()) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn feed_str(&mut self, obj: &Bound<'_, PyAny>) {
        let text = obj.str().map(|s| s.to_string()).unwrap_or_default();
        self.feed(text.as_bytes());
    }
}

/// Feed what defines `value` (not where it lives in memory).
fn describe(digest: &mut Digest, value: &Bound<'_, PyAny>, depth: u32) -> PyResult<()> {
    let py = value.py();
    digest.feed(crate::pyutil::type_name(value).as_bytes());
    if depth > 4 {
        return Ok(());
    }
    if value.get_type().is(py.get_type::<pyo3::types::PyCode>()) {
        for field in [
            "co_code",
            "co_names",
            "co_varnames",
            "co_filename",
            "co_firstlineno",
        ] {
            digest.feed_str(&value.getattr(field)?);
        }
        for constant in value.getattr("co_consts")?.cast::<PyTuple>()?.iter() {
            describe(digest, &constant, depth + 1)?;
        }
        return Ok(());
    }
    for inner in ["__code__", "__func__", "fget", "fset", "fdel"] {
        if let Some(inner) = value.getattr_opt(inner)? {
            if !inner.is_none() {
                describe(digest, &inner, depth + 1)?;
            }
        }
    }
    if value.is_none()
        || value.is_instance_of::<PyString>()
        || value.is_instance_of::<pyo3::types::PyInt>()
        || value.is_instance_of::<pyo3::types::PyFloat>()
        || value.is_instance_of::<pyo3::types::PyBytes>()
    {
        digest.feed(value.repr()?.to_str()?.as_bytes());
    } else if let Ok(items) = value.cast::<PyTuple>() {
        for item in items.iter() {
            describe(digest, &item, depth + 1)?;
        }
    }
    Ok(())
}

impl<'py> Engine<'py> {
    /// A class: by reference when importable (or a builtin with a known
    /// name), by value otherwise.
    pub fn save_class(&mut self, cls: &Bound<'py, PyAny>) -> PyResult<()> {
        let is_heap_type = cls.cast::<PyType>().is_ok_and(|t| {
            // SAFETY: reading the flags of a live type object.
            unsafe { (*t.as_type_ptr()).tp_flags & pyo3::ffi::Py_TPFLAGS_HEAPTYPE != 0 }
        });
        if !is_heap_type || self.known_name(cls)?.is_some() {
            self.trace(cls, "class by reference", None)?;
            return self.save_global(cls, None);
        }
        if let Some(location) = self.reference_location(cls)? {
            self.trace(cls, "class by reference", None)?;
            return self.save_located_global(cls, location);
        }
        if self.byref() {
            if let Ok(location) = self.locate_global(cls, None) {
                self.trace(cls, "class by reference (byref)", None)?;
                return self.save_located_global(cls, location);
            }
        }
        self.trace(cls, "class by value", None)?;
        self.save_class_by_value(cls)
    }

    /// The identity key of a class pickled by value: a digest of its module,
    /// name, bases and attributes (functions by their code), taken the first
    /// time the class is pickled (or as it was loaded) and kept for the life
    /// of the class, so the same class keeps its key when it changes.
    fn class_key(
        &self,
        cls: &Bound<'py, PyAny>,
        reconstruct: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = reconstruct.getattr("_class_keys")?;
        if let Some(key) = keys
            .call_method1("get", (cls,))
            .ok()
            .filter(|k| !k.is_none())
        {
            return Ok(key);
        }
        // A factory called twice makes two classes with one definition: the
        // second takes the next free key, so that a payload loaded in this
        // process gives back the very class that was pickled.
        let classes = reconstruct.getattr("_classes")?;
        let digest = self.definition_digest(cls)?;
        let mut key = digest.clone().into_pyobject(self.py())?.into_any();
        for n in 2.. {
            let holder = classes.call_method1("setdefault", (&key, cls))?;
            if holder.is(cls) {
                break;
            }
            key = format!("{digest}~{n}").into_pyobject(self.py())?.into_any();
        }
        keys.set_item(cls, &key)?;
        Ok(key)
    }

    fn definition_digest(&self, cls: &Bound<'py, PyAny>) -> PyResult<String> {
        let py = self.py();
        let mut digest = Digest::new();
        for attr in ["__module__", "__qualname__"] {
            digest.feed_str(&cls.getattr(attr)?);
        }
        digest.feed_str(&cls.get_type().getattr(intern!(py, "__qualname__"))?);
        for base in cls
            .getattr(intern!(py, "__bases__"))?
            .cast::<PyTuple>()?
            .iter()
        {
            digest.feed_str(&base.getattr(intern!(py, "__qualname__"))?);
        }
        for (name, value) in sorted_class_dict(cls)? {
            digest.feed(name.as_bytes());
            describe(&mut digest, &value, 0)?;
        }
        let name: String = cls.getattr(intern!(py, "__qualname__"))?.extract()?;
        Ok(format!("{name}-{:016x}", digest.0))
    }

    fn save_class_by_value(&mut self, cls: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py();
        static RECONSTRUCT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static RESOLVE_BASES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static ENUM_META: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static ABC_META: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let reconstruct = imported_once(py, &RECONSTRUCT, "turbodill._reconstruct", None)?;
        let dict = cls.getattr(intern!(py, "__dict__"))?;
        // `__orig_bases__` (`Generic[T]`, `TypedDict`...), unless what they
        // resolve to would call for another metaclass than the class's
        // (`typing.NamedTuple`'s makes a new class, refusing `__slots__`):
        // then the real bases, and `__orig_bases__` as an attribute.
        let metaclass = cls.get_type();
        let real_bases = cls.getattr(intern!(py, "__bases__"))?;
        let (bases, orig_bases_attribute) = match dict.get_item(intern!(py, "__orig_bases__")) {
            Ok(orig) => {
                let resolved = imported_once(py, &RESOLVE_BASES, "types", Some("resolve_bases"))?
                    .call1((&orig,))?;
                let mut same_metaclass = true;
                for base in resolved.try_iter()? {
                    same_metaclass &= metaclass.is_subclass(&base?.get_type())?;
                }
                if same_metaclass {
                    (orig, None)
                } else {
                    (real_bases, Some(orig))
                }
            }
            Err(_) => (real_bases, None),
        };
        let metaclass = metaclass.into_any();
        let name = cls.getattr(intern!(py, "__name__"))?;
        let key = self.class_key(cls, &reconstruct)?;

        // Attributes, in a canonical (sorted) order, without those the class
        // machinery makes itself.
        let slot_names: Vec<String> = match dict.get_item(intern!(py, "__slots__")) {
            Ok(slots) if slots.is_instance_of::<PyString>() => vec![slots.extract()?],
            Ok(slots) => slots
                .try_iter()?
                .map(|s| s.and_then(|s| s.extract()))
                .collect::<PyResult<_>>()?,
            Err(_) => Vec::new(),
        };
        let items = sorted_class_dict(cls)?;
        let is_enum = cls.is_instance(&imported_once(py, &ENUM_META, "enum", Some("EnumMeta"))?)?;
        let members = PyDict::new(py);
        // Attributes a member's `__init__` or `__new__` gave it: the members are
        // made before the class has those methods (they come with its state).
        let member_attributes = PyDict::new(py);
        if is_enum {
            for (member_name, member) in cls
                .getattr(intern!(py, "__members__"))?
                .call_method0("items")?
                .try_iter()?
                .map(|kv| kv.and_then(|kv| kv.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()))
                .collect::<PyResult<Vec<_>>>()?
            {
                members.set_item(&member_name, member.getattr(intern!(py, "_value_"))?)?;
                let own = PyDict::new(py);
                let attributes = member.getattr_opt(intern!(py, "__dict__"))?;
                if let Some(Ok(attributes)) = attributes.map(|a| a.cast_into::<PyDict>()) {
                    for (attr, value) in attributes.iter() {
                        let Ok(attr_name) = attr.extract::<String>() else {
                            continue;
                        };
                        if !is_sunder(&attr_name) && !attr_name.starts_with("__") {
                            own.set_item(attr, value)?;
                        }
                    }
                }
                if !own.is_empty() {
                    member_attributes.set_item(member_name, own)?;
                }
            }
        }
        let namespace = PyDict::new(py);
        let state = PyDict::new(py);
        for (attr, value) in items {
            let private_slot = slot_names
                .iter()
                .any(|s| mangled(s, &name.to_string()) == attr);
            if MADE_BY_TYPE.contains(&attr.as_str()) || private_slot {
                continue;
            }
            if is_enum && (members.contains(&attr)? || is_sunder(&attr) && attr != "_missing_") {
                continue;
            }
            if matches!(attr.as_str(), "__slots__" | "__module__" | "__qualname__") {
                namespace.set_item(&attr, value)?;
            } else {
                state.set_item(&attr, value)?;
            }
        }
        if let Some(orig) = orig_bases_attribute {
            state.set_item(intern!(py, "__orig_bases__"), orig)?;
        }
        // A heap type keeps its qualified name outside its `__dict__`: without
        // it a class defined in a function or another class would load with
        // its bare name.
        let qualname = cls.getattr(intern!(py, "__qualname__"))?;
        if !qualname.eq(&name)? {
            namespace.set_item(intern!(py, "__qualname__"), qualname)?;
        }
        if !member_attributes.is_empty() {
            state.set_item("_enum_member_attributes", member_attributes)?;
        }
        if cls.is_instance(&imported_once(py, &ABC_META, "abc", Some("ABCMeta"))?)? {
            let dump = py.import("_abc")?.getattr("_get_dump")?.call1((cls,))?;
            let mut registered = Vec::new();
            for weak in dump.get_item(0)?.try_iter()? {
                let target = weak?.call0()?;
                if !target.is_none() {
                    let order: String = target.getattr(intern!(py, "__qualname__"))?.extract()?;
                    registered.push((order, target));
                }
            }
            if !registered.is_empty() {
                registered.sort_by(|a, b| a.0.cmp(&b.0));
                let registry = PyList::new(py, registered.into_iter().map(|(_, cls)| cls))?;
                state.set_item("_abc_registry", registry)?;
            }
        }

        let args = if is_enum {
            PyTuple::new(
                py,
                [
                    metaclass,
                    name,
                    bases,
                    key,
                    members.into_any(),
                    namespace.into_any(),
                ],
            )?
        } else {
            PyTuple::new(py, [metaclass, name, bases, key, namespace.into_any()])?
        };
        let make = reconstruct.getattr(if is_enum { "make_enum" } else { "make_class" })?;
        let setstate = reconstruct.getattr("class_setstate")?;
        let none = py.None().into_bound(py);
        let reduce_value = PyTuple::new(
            py,
            [
                make,
                args.into_any(),
                state.into_any(),
                none.clone(),
                none,
                setstate,
            ],
        )?;
        self.save_reduce(&reduce_value, Some(cls))
    }
}

/// A class's own attributes, sorted by name (a canonical order).
fn sorted_class_dict<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
    let py = cls.py();
    let mut items: Vec<(String, Bound<'py, PyAny>)> = cls
        .getattr(intern!(py, "__dict__"))?
        .call_method0(intern!(py, "items"))?
        .try_iter()?
        .map(|kv| kv.and_then(|kv| kv.extract()))
        .collect::<PyResult<_>>()?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(items)
}

fn is_sunder(name: &str) -> bool {
    name.len() > 2 && name.starts_with('_') && name.ends_with('_') && !name.starts_with("__")
}

/// The attribute name a `__slots__` entry gets (private names are mangled).
fn mangled(slot: &str, class_name: &str) -> String {
    if slot.starts_with("__") && !slot.ends_with("__") {
        format!("_{}{}", class_name.trim_start_matches('_'), slot)
    } else {
        slot.to_owned()
    }
}
