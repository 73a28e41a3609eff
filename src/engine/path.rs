//! Where an error happened: `obj['config'].handlers[2]`, built from the
//! frames still on the work stack when a save fails.

use pyo3::prelude::*;

use super::frames::{
    DictFrame, Frame, FrozenSetFrame, ItemsFrame, ItemsKind, ListFrame, SetFrame, TupleFrame,
};
use super::Engine;
use crate::pyutil::key_segment;

/// The path segment a container frame adds while it saves its children
/// (`None` before it has started on its first).
pub trait Segment {
    fn segment(&self) -> Option<String>;
}

impl Segment for ListFrame<'_> {
    fn segment(&self) -> Option<String> {
        (self.next > 0).then(|| format!("[{}]", self.next - 1))
    }
}

impl Segment for TupleFrame<'_> {
    fn segment(&self) -> Option<String> {
        (self.next > 0).then(|| format!("[{}]", self.next - 1))
    }
}

impl Segment for DictFrame<'_> {
    fn segment(&self) -> Option<String> {
        self.key.as_ref().map(|k| key_segment(k, self.is_state))
    }
}

impl Segment for ItemsFrame<'_> {
    fn segment(&self) -> Option<String> {
        match (self.kind, &self.key) {
            (ItemsKind::Dict, Some(k)) => Some(key_segment(k, false)),
            _ => (self.index > 0).then(|| format!("[{}]", self.index - 1)),
        }
    }
}

impl Segment for SetFrame<'_> {
    fn segment(&self) -> Option<String> {
        (self.in_batch > 0).then(|| "{…}".into())
    }
}

impl Segment for FrozenSetFrame<'_> {
    fn segment(&self) -> Option<String> {
        Some("{…}".into())
    }
}

fn segment(frame: &Frame<'_>) -> Option<String> {
    match frame {
        // A frame that has not started on its first item is still pending
        // (a reduce pushes its list items and dict items frames together).
        Frame::List(f) => f.segment(),
        Frame::Tuple(f) => f.segment(),
        Frame::Dict(f) => f.segment(),
        Frame::Items(f) => f.segment(),
        Frame::Set(f) => f.segment(),
        Frame::FrozenSet(f) => f.segment(),
        Frame::Save(..)
        | Frame::Write(_)
        | Frame::MemoAnonymous
        | Frame::ReduceTail(_)
        | Frame::LeaveReduction
        | Frame::FastLeave(_)
        | Frame::Deferred(_) => None,
    }
}

/// Segments shown at each end of a path too deep to show whole (an endless
/// graph fails a hundred thousand levels down).
const PATH_ENDS: usize = 20;

/// The path of the object being saved, from the frames in progress: those
/// parked on the stack, then (while tracing) those being stepped in hand.
pub fn current_path(engine: &Engine<'_>) -> String {
    let segments: Vec<String> = engine
        .stack
        .iter()
        .filter_map(segment)
        .chain(engine.traced_segments.iter().flatten().cloned())
        .collect();
    let elided = segments.len().saturating_sub(2 * PATH_ENDS);
    if elided == 0 {
        return format!("obj{}", segments.concat());
    }
    let (head, rest) = segments.split_at(PATH_ENDS);
    let tail = &rest[elided..];
    format!("obj{}…({elided} levels)…{}", head.concat(), tail.concat())
}

/// Add the graph path to an error as a note (PEP 678), keeping its type and
/// message so callers that catch specific exceptions still do.
pub fn annotate(engine: &mut Engine<'_>, err: PyErr) -> PyErr {
    let path = current_path(engine);
    engine.stack.clear();
    if path != "obj" {
        let py = engine.py;
        let note = format!("when pickling {path}");
        // A failure to attach the note must not mask the real error.
        let _ = err.value(py).call_method1("add_note", (note,));
    }
    err
}
