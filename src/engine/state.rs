//! Python objects the pickler consults, looked up once per interpreter
//! (what `_pickle.c` keeps in its module state).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

pub struct PyState {
    pub copyreg_dispatch_table: Py<PyDict>,
    pub extension_registry: Py<PyDict>,
    /// `_compat_pickle.REVERSE_NAME_MAPPING` / `REVERSE_IMPORT_MAPPING`,
    /// used by `fix_imports` below protocol 3.
    pub name_mapping_3to2: Py<PyDict>,
    pub import_mapping_3to2: Py<PyDict>,
    pub codecs_encode: Py<PyAny>,
    pub partial: Py<PyAny>,
    pub getattr: Py<PyAny>,
    pub copyreg_slotnames: Py<PyAny>,
    pub sys_modules: Py<PyAny>,
    /// The `builtins` module, which by-value functions and modules get as
    /// their `__builtins__` (C code that imports looks it up there).
    pub builtins_module: Py<PyModule>,
    pub picklebuffer_type: Py<PyType>,
    /// `object.__reduce_ex__` and friends, to recognise instances whose
    /// pickling is entirely object's default behaviour.
    pub object_reduce: Py<PyAny>,
    pub object_reduce_ex: Py<PyAny>,
    pub object_getstate: Py<PyAny>,
    /// `turbodill.UnpicklableError(pickle.PicklingError, TypeError)`.
    pub unpicklable_error: Py<PyType>,
    /// `turbodill.PicklingRecursionError(pickle.PicklingError, RecursionError)`.
    pub recursion_error: Py<PyType>,
    /// Objects without a locatable `__qualname__` but with a stable public
    /// name: `{types.CodeType: ('types', 'CodeType'), ...}`.
    pub known_names: Py<PyDict>,
    /// `turbodill.register_pickle_by_value`'s module names.
    pub by_value_modules: Py<pyo3::types::PySet>,
    /// Types with a saver of their own (see `savers::descriptors`).
    pub staticmethod_type: Py<PyType>,
    pub classmethod_type: Py<PyType>,
    pub property_type: Py<PyType>,
    /// `types.MethodType`: bound methods (see `savers::functions`).
    pub method_type: Py<PyType>,
    /// Descriptors fetched back from their class's `__dict__`.
    pub class_dict_descriptor_types: [Py<PyType>; 3],
    /// `turbodill.settings`, dill's defaults for `protocol`, `byref`,
    /// `fmode`, `recurse` and `ignore`.
    pub settings: Py<PyDict>,
}

static STATE: PyOnceLock<PyState> = PyOnceLock::new();

impl PyState {
    pub fn get(py: Python<'_>) -> PyResult<&PyState> {
        STATE.get_or_try_init(py, || Self::load(py))
    }

    fn load(py: Python<'_>) -> PyResult<PyState> {
        let copyreg = py.import("copyreg")?;
        let compat = py.import("_compat_pickle")?;
        let object_dict = py.get_type::<pyo3::types::PyAny>().getattr("__dict__")?;
        let object_attr = |name: &str| object_dict.get_item(name).map(Bound::unbind);
        Ok(PyState {
            copyreg_dispatch_table: copyreg.getattr("dispatch_table")?.cast_into()?.unbind(),
            extension_registry: copyreg
                .getattr("_extension_registry")?
                .cast_into()?
                .unbind(),
            name_mapping_3to2: compat
                .getattr("REVERSE_NAME_MAPPING")?
                .cast_into()?
                .unbind(),
            import_mapping_3to2: compat
                .getattr("REVERSE_IMPORT_MAPPING")?
                .cast_into()?
                .unbind(),
            codecs_encode: py.import("codecs")?.getattr("encode")?.unbind(),
            partial: py.import("functools")?.getattr("partial")?.unbind(),
            getattr: py.import("builtins")?.getattr("getattr")?.unbind(),
            copyreg_slotnames: copyreg.getattr("_slotnames")?.unbind(),
            sys_modules: py.import("sys")?.getattr("modules")?.unbind(),
            builtins_module: py.import("builtins")?.unbind(),
            picklebuffer_type: py
                .import("pickle")?
                .getattr("PickleBuffer")?
                .cast_into()?
                .unbind(),
            object_reduce: object_attr("__reduce__")?,
            object_reduce_ex: object_attr("__reduce_ex__")?,
            object_getstate: object_attr("__getstate__")?,
            known_names: known_names(py)?,
            by_value_modules: pyo3::types::PySet::empty(py)?.unbind(),
            staticmethod_type: builtins_type(py, "staticmethod")?,
            classmethod_type: builtins_type(py, "classmethod")?,
            property_type: builtins_type(py, "property")?,
            method_type: types_type(py, "MethodType")?,
            class_dict_descriptor_types: [
                types_type(py, "ClassMethodDescriptorType")?,
                types_type(py, "GetSetDescriptorType")?,
                types_type(py, "MemberDescriptorType")?,
            ],
            unpicklable_error: crate::errors::make_unpicklable_error(py)?,
            recursion_error: crate::errors::make_recursion_error(py)?,
            settings: default_settings(py)?,
        })
    }
}

/// Stable public names for types whose own `__qualname__` does not lead back
/// to them (`types.CodeType.__qualname__` is `code`, not importable from
/// `builtins`). Payloads name them this way so that they load with plain
/// `pickle.loads`. (The stdlib can pickle only GenericAlias and UnionType of
/// these, and under these very names.)
const KNOWN_NAMES: &[(&str, &str)] = &[
    ("types", "CodeType"),
    ("types", "FunctionType"),
    ("types", "CellType"),
    ("types", "MethodType"),
    ("types", "ModuleType"),
    ("types", "MappingProxyType"),
    ("types", "BuiltinFunctionType"),
    ("types", "WrapperDescriptorType"),
    ("types", "MethodDescriptorType"),
    ("types", "ClassMethodDescriptorType"),
    ("types", "GetSetDescriptorType"),
    ("types", "MemberDescriptorType"),
    ("types", "MethodWrapperType"),
    ("types", "GenericAlias"),
    ("types", "UnionType"),
];

fn known_names(py: Python<'_>) -> PyResult<Py<PyDict>> {
    let names = PyDict::new(py);
    for (module, name) in KNOWN_NAMES {
        if let Ok(obj) = py.import(*module).and_then(|m| m.getattr(*name)) {
            names.set_item(obj, (*module, *name))?;
        }
    }
    Ok(names.unbind())
}

fn builtins_type(py: Python<'_>, name: &str) -> PyResult<Py<PyType>> {
    Ok(py.import("builtins")?.getattr(name)?.cast_into()?.unbind())
}

fn types_type(py: Python<'_>, name: &str) -> PyResult<Py<PyType>> {
    Ok(py.import("types")?.getattr(name)?.cast_into()?.unbind())
}

fn default_settings(py: Python<'_>) -> PyResult<Py<PyDict>> {
    let settings = PyDict::new(py);
    settings.set_item(
        "protocol",
        py.import("pickle")?.getattr("DEFAULT_PROTOCOL")?,
    )?;
    settings.set_item("byref", false)?;
    settings.set_item("fmode", 0)?;
    settings.set_item("recurse", false)?;
    settings.set_item("ignore", false)?;
    Ok(settings.unbind())
}
