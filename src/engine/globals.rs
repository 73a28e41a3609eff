//! Objects saved by reference: `module.qualname` as GLOBAL, STACK_GLOBAL or
//! an EXT code, after checking that the name really leads back to the
//! object (`save_global` and `whichmodule` in `_pickle.c`).

use pyo3::exceptions::{PyAttributeError, PyUnicodeEncodeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::frames::SaveCtx;
use super::Engine;
use crate::errors::pickling_error;
use crate::output::opcodes::*;
use crate::pyutil::{repr_of, str_of};

/// Where a global lives: `module_name.global_name`, and the object holding
/// its last component when that is not the module itself.
pub struct GlobalLocation<'py> {
    pub module_name: Bound<'py, PyAny>,
    pub global_name: Bound<'py, PyAny>,
    pub last_name: Bound<'py, PyAny>,
    pub parent: Option<Bound<'py, PyAny>>,
}

/// `getattr` along a dotted path; also returns the parent of the last step.
fn deep_attribute<'py>(
    root: &Bound<'py, PyAny>,
    path: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut parent = root.clone();
    let mut obj = root.clone();
    for name in path.iter() {
        parent = obj;
        obj = parent.getattr(name.cast_into::<PyString>()?)?;
    }
    Ok((obj, parent))
}

impl<'py> Engine<'py> {
    /// Whether `module`, named `name`, is saved by reference: it is the one
    /// imported under its name, and not a module pickled by value.
    pub fn module_by_reference(&self, module: &Bound<'py, PyAny>, name: &str) -> PyResult<bool> {
        let imported = self.st.sys_modules.bind(self.py).get_item(name).ok();
        Ok(imported.is_some_and(|m| m.is(module)) && !self.module_by_value(name)?)
    }

    /// Modules whose objects travel by value: `__main__`, and modules (or
    /// packages) given to `register_pickle_by_value`.
    pub fn module_by_value(&self, module: &str) -> PyResult<bool> {
        if module == "__main__" || module == "__mp_main__" || self.pickles_by_value(module) {
            return Ok(true);
        }
        let registered = self.st().by_value_modules.bind(self.py());
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

    /// The module that holds `obj` under `path`: its `__module__`, else the
    /// first module in `sys.modules` where the path leads to it, else
    /// `__main__`.
    fn which_module(
        &self,
        obj: &Bound<'py, PyAny>,
        path: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        if let Some(name) = obj.getattr_opt(intern!(py, "__module__"))? {
            if !name.is_none() {
                return Ok(name);
            }
        }
        let modules = self.st.sys_modules.bind(py);
        let snapshot: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = match modules.cast::<PyDict>() {
            Ok(d) => d.iter().collect(),
            Err(_) => modules
                .call_method0(intern!(py, "items"))?
                .try_iter()?
                .map(|kv| kv.and_then(|kv| kv.extract()))
                .collect::<PyResult<_>>()?,
        };
        for (name, module) in snapshot {
            if module.is_none()
                || name
                    .cast::<PyString>()
                    .is_ok_and(|s| s.to_cow().is_ok_and(|s| s == "__main__"))
            {
                continue;
            }
            match deep_attribute(&module, path) {
                Ok((candidate, _)) if candidate.is(obj) => return Ok(name),
                Ok(_) => {}
                Err(err) if err.is_instance_of::<PyAttributeError>(py) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(intern!(py, "__main__").clone().into_any())
    }

    /// Find the importable name of `obj`: `name` is the string a
    /// `__reduce__` returned, if any; otherwise the object's `__qualname__`
    /// (or `__name__`). Fails, as the stdlib does, when the name does not
    /// lead back to the object.
    pub fn locate_global(
        &self,
        obj: &Bound<'py, PyAny>,
        name: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<GlobalLocation<'py>> {
        let py = self.py;
        let global_name = match name {
            Some(n) => n.clone(),
            None => match obj.getattr_opt(intern!(py, "__qualname__"))? {
                Some(q) => q,
                None => obj.getattr(intern!(py, "__name__"))?,
            },
        };
        let path = global_name
            .call_method1(intern!(py, "split"), (intern!(py, "."),))?
            .cast_into::<PyList>()?;
        for part in path.iter() {
            if part
                .cast::<PyString>()
                .is_ok_and(|s| s.to_cow().is_ok_and(|s| s == "<locals>"))
            {
                return Err(PyAttributeError::new_err(format!(
                    "Can't pickle local object {}",
                    global_name.repr()?
                )));
            }
        }
        let module_name = self.which_module(obj, &path)?;
        let module_str = module_name.cast::<PyString>().map_err(|_| {
            pickling_error(
                py,
                format!("Can't pickle {}: __module__ is not a string", repr_of(obj)),
            )
        })?;
        let module = py.import(module_str).map_err(|_| {
            pickling_error(
                py,
                format!(
                    "Can't pickle {}: import of module {} failed",
                    repr_of(obj),
                    repr_of(&module_name)
                ),
            )
        })?;
        let last_name = path.get_item(path.len() - 1)?;
        let (found, parent) = deep_attribute(module.as_any(), &path).map_err(|_| {
            pickling_error(
                py,
                format!(
                    "Can't pickle {}: attribute lookup {} on {} failed",
                    repr_of(obj),
                    str_of(&global_name),
                    str_of(&module_name)
                ),
            )
        })?;
        if !found.is(obj) {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: it's not the same object as {}.{}",
                    repr_of(obj),
                    str_of(&module_name),
                    str_of(&global_name)
                ),
            ));
        }
        let parent = (!parent.is(&module)).then_some(parent);
        Ok(GlobalLocation {
            module_name,
            global_name,
            last_name,
            parent,
        })
    }

    /// Save `obj` by reference (see `locate_global`). Objects the stdlib
    /// cannot locate but that have a known stable name (`types.CodeType`,
    /// whose `__qualname__` is `code`) are written under that name.
    pub fn save_global(
        &mut self,
        obj: &Bound<'py, PyAny>,
        name: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        // Known names first: they are what the stdlib would write where it
        // can, and spare a failing lookup (an exception) where it cannot.
        if name.is_none() {
            if let Some((module, name)) = self.known_name(obj)? {
                return self.write_global(obj, module, name);
            }
        }
        let location = self.locate_global(obj, name)?;
        self.save_located_global(obj, location)
    }

    /// `obj`'s entry in `known_names`, found by identity: a dict lookup
    /// would hash `obj`, which runs its metaclass's `__hash__` (raising, for
    /// one that defines `__eq__` alone), where the stdlib hashes nothing.
    pub fn known_name(
        &self,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        for (known, name) in self.st.known_names.bind(self.py).iter() {
            if known.is(obj) {
                return Ok(Some(name.extract()?));
            }
        }
        Ok(None)
    }

    /// The second half of `save_global`, for a location already found.
    pub fn save_located_global(
        &mut self,
        obj: &Bound<'py, PyAny>,
        location: GlobalLocation<'py>,
    ) -> PyResult<()> {
        let py = self.py;
        let GlobalLocation {
            module_name,
            global_name,
            last_name,
            parent,
        } = location;

        if self.proto >= 2 {
            let registry = self.st.extension_registry.bind(py);
            if !registry.is_empty() {
                let key = PyTuple::new(py, [&module_name, &global_name])?;
                if let Some(code) = registry.get_item(key)? {
                    return self.write_extension_code(obj, &code);
                }
            }
        }
        match parent {
            Some(_) if self.proto < 4 && cfg!(Py_3_13) => {
                self.write_dotted_global(obj, module_name, global_name)
            }
            Some(parent) if self.proto < 4 => {
                // A nested attribute (up to 3.12): getattr(parent, name) via
                // REDUCE. The reduce tail memoizes `obj` once the call is
                // written.
                let args = PyTuple::new(py, [parent, last_name])?;
                let reduce_value =
                    PyTuple::new(py, [self.st.getattr.bind(py).clone(), args.into_any()])?;
                self.save_reduce(&reduce_value, Some(obj))
            }
            Some(_) => self.write_global(obj, module_name, global_name),
            None => self.write_global(obj, module_name, last_name),
        }
    }

    /// A dotted name below protocol 4, as 3.13's `save_global` writes it:
    /// `getattr(getattr(module.first, a), b)`, where only the builtin
    /// `getattr`, the attribute names and `obj` itself are memoized (the
    /// parents and argument tuples are not). The module's extension binary
    /// is built for one minor version, so the compile-time gate is the
    /// runtime version.
    fn write_dotted_global(
        &mut self,
        obj: &Bound<'py, PyAny>,
        module_name: Bound<'py, PyAny>,
        global_name: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        use super::frames::{deferred, Frame};
        let py = self.py;
        let path = global_name
            .call_method1(intern!(py, "split"), (intern!(py, "."),))?
            .cast_into::<PyList>()?;
        let first = path.get_item(0)?;
        let attributes: Vec<_> = path.iter().skip(1).collect();
        let getattr = self.st.getattr.bind(py).clone().into_any();
        let proto = self.proto;
        // Queued, not written at once: `save` may itself queue work (a
        // reducer_override for `getattr`, say).
        let mut frames = Vec::with_capacity(4 * attributes.len() + 2);
        for _ in &attributes {
            frames.push(Frame::Save(getattr.clone(), SaveCtx::default()));
            if proto < 2 {
                frames.push(Frame::Write(MARK));
            }
        }
        frames.push(deferred(move |engine| {
            engine.write_global_opcode(module_name, first)
        }));
        for attribute in attributes {
            frames.push(Frame::Save(attribute, SaveCtx::default()));
            frames.push(Frame::Write(if proto < 2 { TUPLE } else { TUPLE2 }));
            frames.push(Frame::Write(REDUCE));
        }
        let obj = obj.clone();
        frames.push(deferred(move |engine| {
            engine.memo_put_found_by_name(&obj);
            Ok(())
        }));
        self.queue(frames);
        Ok(())
    }

    /// Write `module.name` (STACK_GLOBAL, or GLOBAL below protocol 4) and
    /// memoize `obj` as its value.
    pub fn write_global(
        &mut self,
        obj: &Bound<'py, PyAny>,
        module_name: Bound<'py, PyAny>,
        name: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        self.write_global_name(module_name, name)?;
        self.memo_put_found_by_name(obj);
        Ok(())
    }

    /// Write `module.name` (STACK_GLOBAL, or GLOBAL below protocol 4),
    /// memoizing nothing.
    pub fn write_global_name(
        &mut self,
        module_name: Bound<'py, PyAny>,
        name: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        if self.proto >= 4 {
            self.save_dispatched(&module_name, SaveCtx::default())?;
            self.save_dispatched(&name, SaveCtx::default())?;
            self.out.write_byte(STACK_GLOBAL);
            Ok(())
        } else {
            self.write_global_opcode(module_name, name)
        }
    }

    fn write_extension_code(
        &mut self,
        obj: &Bound<'py, PyAny>,
        code: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = self.py;
        // 3.13 reads the code as a C long (TypeError, OverflowError) and
        // raises RuntimeError out of range; before, PicklingError for both.
        if !cfg!(Py_3_13) && !code.is_instance_of::<pyo3::types::PyInt>() {
            return Err(pickling_error(
                py,
                format!(
                    "Can't pickle {}: extension code {} isn't an integer",
                    repr_of(obj),
                    repr_of(code)
                ),
            ));
        }
        let code: std::os::raw::c_long = code.extract()?;
        if code <= 0 || code > 0x7fff_ffff {
            let message = format!("extension code {code} is out of range");
            return Err(if cfg!(Py_3_13) {
                pyo3::exceptions::PyRuntimeError::new_err(message)
            } else {
                pickling_error(py, format!("Can't pickle {}: {message}", repr_of(obj)))
            });
        }
        if code <= 0xff {
            self.out.write(&[EXT1, code.to_le_bytes()[0]]);
        } else if code <= 0xffff {
            self.out.write_op_len(EXT2, code.unsigned_abs(), 2);
        } else {
            self.out.write_op_len(EXT4, code.unsigned_abs(), 4);
        }
        Ok(())
    }

    fn write_global_opcode(
        &mut self,
        mut module_name: Bound<'py, PyAny>,
        mut global_name: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = self.py;
        if self.proto < 3 && self.fix_imports {
            let key = PyTuple::new(py, [&module_name, &global_name])?;
            if let Some(mapped) = self.st.name_mapping_3to2.bind(py).get_item(key)? {
                let mapped = mapped.cast_into::<PyTuple>()?;
                module_name = mapped.get_item(0)?;
                global_name = mapped.get_item(1)?;
            } else if let Some(mapped) = self
                .st
                .import_mapping_3to2
                .bind(py)
                .get_item(&module_name)?
            {
                module_name = mapped;
            }
        }
        let encoding = if self.proto == 3 { "utf-8" } else { "ascii" };
        let encode = |s: &Bound<'py, PyAny>, what: &str| -> PyResult<Vec<u8>> {
            match s.call_method1(intern!(py, "encode"), (encoding,)) {
                Ok(b) => Ok(b.extract()?),
                Err(err) if err.is_instance_of::<PyUnicodeEncodeError>(py) => Err(pickling_error(
                    py,
                    format!(
                        "can't pickle {what} identifier '{}' using pickle protocol {}",
                        str_of(s),
                        self.proto
                    ),
                )),
                Err(err) => Err(err),
            }
        };
        let module_bytes = encode(&module_name, "module")?;
        let name_bytes = encode(&global_name, "global")?;
        self.out.write_byte(GLOBAL);
        self.out.write(&module_bytes);
        self.out.write_byte(b'\n');
        self.out.write(&name_bytes);
        self.out.write_byte(b'\n');
        Ok(())
    }
}
