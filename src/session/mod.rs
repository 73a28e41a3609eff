//! The session container: a module's namespace saved as one small header
//! and one pickle per entry (see `docs/architecture.md`, "Sessions").
//!
//! The entries are pickled by one engine whose memo carries over from entry
//! to entry, so objects shared between variables stay shared (the loader
//! reads the entries with one unpickler, whose memo carries over too). An
//! entry that fails is dropped whole: its output and its memo entries are
//! forgotten, so no later entry refers back to an object the file lacks.
//! Memo indices are explicit (PUT, not MEMOIZE) so that an entry that fails
//! to *load* does not shift the indices of the entries after it.
//! The header is MessagePack and can be read without unpickling anything.

mod entries;
mod header;

/// The persistent ids of the module a session saves and of its namespace,
/// which the session loader resolves to those it loads into
/// (`turbodill.session` imports them from the native module).
pub const MODULE_PID: &str = "turbodill.session:module";
pub const NAMESPACE_PID: &str = "turbodill.session:namespace";

pub use entries::_session_pickle_entries;
pub use header::{
    _session_header_size, _session_pack_header, _session_read_header, SESSION_PREFIX_SIZE,
};
