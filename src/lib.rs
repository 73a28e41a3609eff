//! turbodill's native core. This file only wires the module together; the
//! layers are `output` (bytes and framing), `engine` (memo, work stack,
//! reduce protocol, globals), `savers` (per-type writers) and `pickler` and
//! `session` (the Python-facing API, which build engines with the savers'
//! `Dispatch`); `inspect` walks pickles without running them; `pyutil`
//! holds the helpers every layer shares.

// The engine, the codec and the caches rely on the GIL (borrowed references
// read before any Python code can run, per-interpreter state without locks).
#[cfg(Py_GIL_DISABLED)]
compile_error!("turbodill does not support free-threaded CPython builds");

mod codec;
mod engine;
mod errors;
mod genframe;
mod inspect;
mod output;
mod pickler;
mod pyutil;
mod savers;
mod session;
mod sizes;
mod utf8;

#[pyo3::pymodule(gil_used = true)]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let state = crate::engine::PyState::get(m.py())?;
        m.add("UnpicklableError", state.unpicklable_error.bind(m.py()))?;
        m.add("PicklingRecursionError", state.recursion_error.bind(m.py()))?;
        m.add("settings", state.settings.bind(m.py()))?;
        m.add("_by_value_modules", state.by_value_modules.bind(m.py()))
    }

    #[pymodule_export]
    use crate::pickler::{dump, dumps, MemoProxy, Pickler};

    #[pymodule_export]
    use crate::savers::_forget_type_caches;

    #[pymodule_export]
    use crate::engine::trace::_set_trace_sink;

    #[pymodule_export]
    use crate::genframe::_gen_restore;

    #[pymodule_export]
    use crate::session::{
        _session_header_size, _session_pack_header, _session_pickle_entries, _session_read_header,
    };

    #[pymodule_export]
    const _SESSION_PREFIX_SIZE: usize = crate::session::SESSION_PREFIX_SIZE;

    #[pymodule_export]
    const _SESSION_MODULE_PID: &str = crate::session::MODULE_PID;

    #[pymodule_export]
    const _SESSION_NAMESPACE_PID: &str = crate::session::NAMESPACE_PID;

    #[pymodule_export]
    use crate::codec::MsgpackCodec;

    #[pymodule_export]
    const _MSGPACK_KIND_OBJECT: u8 = crate::codec::KIND_OBJECT;

    #[pymodule_export]
    const _MSGPACK_KIND_NAMEDTUPLE: u8 = crate::codec::KIND_NAMEDTUPLE;

    #[pymodule_export]
    const _MSGPACK_KIND_ENUM: u8 = crate::codec::KIND_ENUM;

    #[pymodule_export]
    use crate::inspect::inspect_opcodes;

    #[pymodule_export]
    use crate::errors::InspectError;

    #[pymodule_export]
    const HIGHEST_PROTOCOL: u8 = crate::output::opcodes::HIGHEST_PROTOCOL;

    #[pymodule_export]
    #[allow(non_upper_case_globals)]
    const __version__: &str = env!("CARGO_PKG_VERSION");
}
