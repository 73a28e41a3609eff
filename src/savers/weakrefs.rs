//! Weak proxies to an object the payload already holds.
//!
//! The stdlib pickles a `weakref.proxy` as a copy of its referent (the proxy
//! forwards `__reduce_ex__`). When the referent is in the payload itself (a
//! Flask app's JSON provider holds `weakref.proxy(app)`), that copy is made
//! while the referent's state is still being written, so it loads with part
//! of it missing. Such a proxy is written as `weakref.proxy(referent)`
//! instead; a proxy to anything else keeps the stdlib's bytes.

use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyWeakrefMethods, PyWeakrefProxy};

use crate::engine::Engine;

impl<'py> Engine<'py> {
    /// Save `obj` if it is a weak proxy whose referent is memoized; report
    /// whether it was.
    pub fn save_proxy_to_memoized(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<bool> {
        let Ok(proxy) = obj.cast::<PyWeakrefProxy>() else {
            return Ok(false);
        };
        let Some(referent) = proxy.upgrade() else {
            return Ok(false);
        };
        if self.memo_index_of(&referent).is_none() {
            return Ok(false);
        }
        let py = self.py();
        let make_proxy = py.import("weakref")?.getattr("proxy")?;
        let args = PyTuple::new(py, [referent])?;
        let reduce_value = PyTuple::new(py, [make_proxy, args.into_any()])?;
        self.save_reduce(&reduce_value, Some(obj))?;
        Ok(true)
    }
}
