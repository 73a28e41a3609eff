//! The session file's header: `MAGIC`, the header's length (u32, little
//! endian), then the header as a MessagePack map; the entries' pickles follow,
//! in the order and with the sizes the header lists.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::{Deserialize, Serialize};

/// Starts every session file. The `\r\n` catches a file mangled by a
/// text-mode transfer, as PNG's signature does.
const MAGIC: &[u8; 8] = b"TDSESS\r\n";
/// A header is a few hundred bytes per thousand entries; anything claiming
/// more than this is corrupt, and is refused before it is read.
const MAX_HEADER_SIZE: u32 = 1 << 30;

#[derive(Serialize, Deserialize, FromPyObject, IntoPyObject)]
#[pyo3(from_item_all)]
pub struct EntryInfo {
    name: String,
    /// The value's type, `module.qualname` (builtins without a module).
    #[pyo3(item("type"))]
    r#type: String,
    /// `value` (pickled), `module` (imported on load) or `import` (a name
    /// re-imported from another module on load).
    kind: String,
    /// Size of the entry's pickle in bytes.
    size: u64,
}

#[derive(Serialize, Deserialize, FromPyObject, IntoPyObject)]
#[pyo3(from_item_all)]
pub struct SkippedInfo {
    name: String,
    #[pyo3(item("type"))]
    r#type: String,
    reason: String,
}

/// Unknown keys are ignored when reading, so a later minor addition does
/// not need a new `format`.
#[derive(Serialize, Deserialize, FromPyObject, IntoPyObject)]
#[pyo3(from_item_all)]
pub struct SessionHeader {
    format: u32,
    /// `(major, minor, micro)` of the interpreter that wrote the session.
    python: (u32, u32, u32),
    implementation: String,
    turbodill: String,
    module: String,
    /// Seconds since the epoch.
    created: f64,
    protocol: u8,
    entries: Vec<EntryInfo>,
    skipped: Vec<SkippedInfo>,
}

/// The start of a session file for `header` (a dict with the fields of
/// `SessionHeader`).
#[pyfunction]
pub fn _session_pack_header<'py>(
    py: Python<'py>,
    header: SessionHeader,
) -> PyResult<Bound<'py, PyBytes>> {
    let body = rmp_serde::to_vec_named(&header)
        .map_err(|e| PyValueError::new_err(format!("session header: {e}")))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n <= MAX_HEADER_SIZE);
    let len = len.ok_or_else(|| PyValueError::new_err("session header too large"))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(PyBytes::new(py, &out))
}

/// How many bytes start a session file before the header itself.
pub const SESSION_PREFIX_SIZE: usize = MAGIC.len() + 4;

/// From the first `SESSION_PREFIX_SIZE` bytes of a file, the size of the
/// whole prefix and header, to read before `_session_read_header`.
#[pyfunction]
pub fn _session_header_size(prefix: &[u8]) -> PyResult<usize> {
    let rest = prefix
        .strip_prefix(MAGIC)
        .ok_or_else(|| invalid("bad signature"))?;
    let len = rest
        .first_chunk::<4>()
        .map(|len| u32::from_le_bytes(*len))
        .ok_or_else(|| invalid("truncated header"))?;
    if len > MAX_HEADER_SIZE {
        return Err(invalid("header size out of range"));
    }
    Ok(SESSION_PREFIX_SIZE + len as usize)
}

/// The header of a session from its prefix and header bytes (exactly
/// `_session_header_size` of them). Raises ValueError for anything that is
/// not a session header this version can read; nothing is unpickled.
#[pyfunction]
pub fn _session_read_header(data: &[u8]) -> PyResult<SessionHeader> {
    let size = _session_header_size(data)?;
    if data.len() != size {
        return Err(invalid("truncated header"));
    }
    rmp_serde::from_slice(&data[SESSION_PREFIX_SIZE..])
        .map_err(|e| invalid(&format!("corrupt header ({e})")))
}

fn invalid(why: &str) -> PyErr {
    PyValueError::new_err(format!("not a turbodill session file: {why}"))
}
