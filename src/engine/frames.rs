//! The explicit work stack.
//!
//! `save()` never recurses into a child: a container writes its header and
//! pushes a frame that saves its items one by one. A frame that must wait for
//! a child is inserted *below* the frames the child pushed, so the heap stack
//! grows with the depth of the object graph while the Rust stack does not.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

/// How an object is being saved.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveCtx {
    /// The object is a persistent id: it is not itself passed to
    /// `persistent_id` (its items are).
    pub is_pid: bool,
    /// The object is the state of a reduced object: in error paths its
    /// dict keys read as attributes (`obj.attr` rather than `obj['attr']`).
    pub is_state: bool,
    /// The object is a temporary built by the pickler, which nothing else
    /// can refer to: its memo index is spent (so the bytes match the
    /// stdlib's) but it is not kept alive in the memo.
    pub is_temporary: bool,
}

impl SaveCtx {
    pub const PID: SaveCtx = SaveCtx {
        is_pid: true,
        is_state: false,
        is_temporary: false,
    };
    pub const STATE: SaveCtx = SaveCtx {
        is_pid: false,
        is_state: true,
        is_temporary: false,
    };
    pub const TEMPORARY: SaveCtx = SaveCtx {
        is_pid: false,
        is_state: true,
        is_temporary: true,
    };
}

pub enum Frame<'py> {
    Save(Bound<'py, PyAny>, SaveCtx),
    Write(u8),
    /// Spend a memo index on the temporary just written (see `SaveCtx`).
    MemoAnonymous,
    List(ListFrame<'py>),
    Dict(DictFrame<'py>),
    Items(ItemsFrame<'py>),
    Set(SetFrame<'py>),
    Tuple(TupleFrame<'py>),
    FrozenSet(FrozenSetFrame<'py>),
    ReduceTail(ReduceTail<'py>),
    /// A reduction's parts, queued above this frame, are all saved (see
    /// `reduce::enter_reduction`).
    LeaveReduction,
    /// Fast mode: the container at this address is done.
    FastLeave(usize),
    /// Work a saver queues for later: it runs when the frames above it are
    /// done (e.g. filling a function's globals once the function is memoized).
    Deferred(Deferred<'py>),
}

pub type Deferred<'py> = Box<dyn FnOnce(&mut super::Engine<'py>) -> PyResult<()> + 'py>;

/// A frame that runs `work` when its turn comes.
pub fn deferred<'py>(
    work: impl FnOnce(&mut super::Engine<'py>) -> PyResult<()> + 'py,
) -> Frame<'py> {
    Frame::Deferred(Box::new(work))
}

/// Items of an exact list, batched as MARK ... APPENDS (protocol >= 1).
pub struct ListFrame<'py> {
    pub list: Bound<'py, PyList>,
    pub next: usize,
    pub in_batch: usize,
    /// A one-item list is written as item + APPEND, without MARK.
    pub single: bool,
}

/// Items of an exact dict, batched as MARK ... SETITEMS (protocol >= 1).
pub struct DictFrame<'py> {
    pub dict: Bound<'py, PyDict>,
    pub pos: ffi_pos::Pos,
    pub size: isize,
    pub in_batch: usize,
    /// The key being saved, or whose value is being saved (for error paths).
    pub key: Option<Bound<'py, PyAny>>,
    pub is_state: bool,
    /// A one-item dict is written as key, value, SETITEM, without MARK.
    pub single: bool,
}

pub mod ffi_pos {
    pub type Pos = pyo3::ffi::Py_ssize_t;
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ItemsKind {
    /// Values: APPEND / APPENDS.
    List,
    /// `(key, value)` pairs: SETITEM / SETITEMS.
    Dict,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ItemsPhase {
    /// About to start a batch.
    Start,
    /// A lone item is being saved; APPEND/SETITEM follows.
    Single,
    /// Inside MARK ... APPENDS/SETITEMS.
    Batch,
}

/// Items from an iterator (list/dict subclasses, `__reduce__` list and dict
/// items, protocol 0), batched the way `batch_list`/`batch_dict` do.
pub struct ItemsFrame<'py> {
    pub iter: Bound<'py, PyAny>,
    pub kind: ItemsKind,
    pub phase: ItemsPhase,
    /// The item fetched ahead to tell a lone item from a batch.
    pub pending: Option<Bound<'py, PyAny>>,
    pub in_batch: usize,
    /// Items consumed so far, and the current dict key, for error paths.
    pub index: usize,
    pub key: Option<Bound<'py, PyAny>>,
}

pub struct SetFrame<'py> {
    pub set: Bound<'py, PyAny>,
    pub iter: Bound<'py, PyAny>,
    pub size: isize,
    pub in_batch: usize,
}

pub struct TupleFrame<'py> {
    pub tuple: Bound<'py, PyTuple>,
    pub next: usize,
}

pub struct FrozenSetFrame<'py> {
    pub obj: Bound<'py, PyAny>,
    pub iter: Bound<'py, PyAny>,
}

/// What follows the REDUCE/NEWOBJ of a reduced object: the recursion check,
/// the memo entry, list items, dict items and state.
pub struct ReduceTail<'py> {
    pub obj: Option<Bound<'py, PyAny>>,
    pub listitems: Option<Bound<'py, PyAny>>,
    pub dictitems: Option<Bound<'py, PyAny>>,
    pub state: Option<Bound<'py, PyAny>>,
    pub state_setter: Option<Bound<'py, PyAny>>,
}
