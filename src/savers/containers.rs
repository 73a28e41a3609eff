//! list, dict, tuple, set, frozenset, and the batching of items from
//! iterators (`batch_list` / `batch_dict` in `_pickle.c`).

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::engine::frames::*;
use crate::engine::{Engine, BATCHSIZE};
use crate::output::opcodes::*;

/// The next `(key, value)` of a dict walk, as owned references.
#[inline]
fn dict_next<'py>(
    dict: &Bound<'py, PyDict>,
    pos: &mut ffi::Py_ssize_t,
) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut key = std::ptr::null_mut();
    let mut value = std::ptr::null_mut();
    // SAFETY: PyDict_Next bounds-checks `pos` against the dict's current
    // entries, so a dict mutated between calls is still read safely. The
    // borrowed key and value are increfed before any Python code can run.
    unsafe {
        if ffi::PyDict_Next(dict.as_ptr(), pos, &mut key, &mut value) == 0 {
            return None;
        }
        let py = dict.py();
        Some((
            Bound::from_borrowed_ptr(py, key),
            Bound::from_borrowed_ptr(py, value),
        ))
    }
}

fn check_dict_size(dict: &Bound<'_, PyDict>, size: isize) -> PyResult<()> {
    if crate::sizes::ssize(dict.len()) != size {
        return Err(PyRuntimeError::new_err(
            "dictionary changed size during iteration",
        ));
    }
    Ok(())
}

fn next_item<'py>(iter: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    // SAFETY: `iter` is an iterator (checked by the caller that built the
    // frame); PyIter_Next returns a new reference or NULL.
    unsafe {
        let item = ffi::PyIter_Next(iter.as_ptr());
        if item.is_null() {
            return match PyErr::take(iter.py()) {
                Some(err) => Err(err),
                None => Ok(None),
            };
        }
        Ok(Some(Bound::from_owned_ptr(iter.py(), item)))
    }
}

/// Save a frame's children with `$save`. When they are done, the step goes
/// on to the next ones; when they pushed work of their own, the frame is put
/// back on the stack beneath that work, to resume once it is done, and the
/// step returns. On error the frame goes there too, so the error path (read
/// off the stack) names where the failure happened.
macro_rules! save_children_or_park {
    ($engine:expr, $save:expr, $frame:expr, $in_hand:expr) => {{
        let depth = $engine.stack_depth();
        // While tracing, the frame in hand tells the trace where it is.
        let traced = crate::engine::trace::is_on();
        if traced {
            let segment = crate::engine::path::Segment::segment($in_hand);
            $engine.enter_traced_segment(segment);
        }
        let result = $save;
        if traced {
            $engine.leave_traced_segment();
        }
        if !result.as_ref().is_ok_and(|pushed| !pushed) {
            $engine.park_frame(depth, $frame);
            result?;
            return Ok(());
        }
    }};
}

/// `save_unshared_str(item)`: whether it wrote the item. On error the
/// frame goes back on the stack first, so the error path names it.
macro_rules! unshared_str_or_park {
    ($engine:expr, $item:expr, $frame:expr) => {
        match $engine.save_unshared_str($item) {
            Ok(written) => written,
            Err(err) => {
                $engine.push_frame($frame);
                return Err(err);
            }
        }
    };
}

impl<'py> Engine<'py> {
    /// Save the children of a frame (one value, or a key and its value).
    /// Ok(true) means they pushed work of their own: the frame must wait
    /// beneath it (see `park`). A value whose key pushed work is queued.
    #[inline]
    fn save_children(
        &mut self,
        first: &Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    ) -> PyResult<bool> {
        let depth = self.stack_depth();
        self.save(first, SaveCtx::default())?;
        if let Some(value) = value {
            if self.stack_depth() > depth {
                self.park_frame(depth, Frame::Save(value, SaveCtx::default()));
                return Ok(true);
            }
            self.save(&value, SaveCtx::default())?;
        }
        Ok(self.stack_depth() > depth)
    }

    // ---- list --------------------------------------------------------------

    pub fn save_list(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.in_fast_mode() {
            self.fast_enter(obj)?;
        }
        if self.is_binary() {
            self.write_byte(EMPTY_LIST);
        } else {
            self.write(&[MARK, LIST]);
        }
        self.memo_put(obj);
        // SAFETY: save() dispatched here on the exact list type.
        let list = unsafe { obj.cast_unchecked::<PyList>() };
        let len = list.len();
        if len == 0 {
            return Ok(());
        }
        if !self.is_binary() {
            let iter = obj.try_iter()?.into_any();
            self.push_items(iter, ItemsKind::List);
            return Ok(());
        }
        self.memo_expect_entries(len);
        let single = len == 1;
        if !single {
            self.write_byte(MARK);
        }
        self.start(Frame::List(ListFrame {
            list: list.clone(),
            next: 0,
            in_batch: 0,
            single,
        }))
    }

    pub fn step_list(&mut self, mut f: ListFrame<'py>) -> PyResult<()> {
        loop {
            let size = f.list.len();
            if f.single && f.next == 1 {
                self.write_byte(APPEND);
                return Ok(());
            }
            if !f.single && (f.in_batch == BATCHSIZE || f.next >= size) {
                self.write_byte(APPENDS);
                if f.next >= size {
                    return Ok(());
                }
                self.write_byte(MARK);
                f.in_batch = 0;
            }
            if f.next >= size {
                // Only a one-item list emptied before its item was read.
                return Err(PyRuntimeError::new_err(
                    "list changed size during iteration",
                ));
            }
            // SAFETY: `next < size` was checked just above with no Python code
            // run since; the borrowed item is increfed at once.
            let item = unsafe {
                Bound::from_borrowed_ptr(
                    self.py(),
                    ffi::PyList_GET_ITEM(f.list.as_ptr(), crate::sizes::ssize(f.next)),
                )
            };
            f.next += 1;
            f.in_batch += 1;
            if unshared_str_or_park!(self, &item, Frame::List(f)) {
                continue;
            }
            save_children_or_park!(self, self.save_children(&item, None), Frame::List(f), &f);
        }
    }

    // ---- dict --------------------------------------------------------------

    pub fn save_dict(&mut self, obj: &Bound<'py, PyAny>, ctx: SaveCtx) -> PyResult<()> {
        if self.in_fast_mode() {
            self.fast_enter(obj)?;
        }
        if self.is_binary() {
            self.write_byte(EMPTY_DICT);
        } else {
            self.write(&[MARK, DICT]);
        }
        if ctx.is_temporary {
            self.memo_put_anonymous();
        } else {
            self.memo_put(obj);
        }
        // SAFETY: save() dispatched here on the exact dict type.
        let dict = unsafe { obj.cast_unchecked::<PyDict>() };
        let size = dict.len();
        if size == 0 {
            return Ok(());
        }
        if !self.is_binary() {
            let iter = dict
                .call_method0(pyo3::intern!(self.py(), "items"))?
                .try_iter()?
                .into_any();
            self.push_items(iter, ItemsKind::Dict);
            return Ok(());
        }
        self.memo_expect_entries(size.saturating_mul(2));
        let single = size == 1;
        if !single {
            self.write_byte(MARK);
        }
        self.start(Frame::Dict(DictFrame {
            dict: dict.clone(),
            pos: 0,
            size: crate::sizes::ssize(size),
            in_batch: 0,
            key: None,
            is_state: ctx.is_state,
            single,
        }))
    }

    pub fn step_dict(&mut self, mut f: DictFrame<'py>) -> PyResult<()> {
        loop {
            if f.single {
                if f.in_batch == 1 {
                    self.write_byte(SETITEM);
                    return Ok(());
                }
            } else if f.in_batch == BATCHSIZE {
                self.write_byte(SETITEMS);
                check_dict_size(&f.dict, f.size)?;
                self.write_byte(MARK);
                f.in_batch = 0;
            }
            let Some((key, value)) = dict_next(&f.dict, &mut f.pos) else {
                if f.single {
                    // Emptied while its only key was being saved.
                    return check_dict_size(&f.dict, f.size);
                }
                self.write_byte(SETITEMS);
                return check_dict_size(&f.dict, f.size);
            };
            f.in_batch += 1;
            // The key is checked before the frame takes its own reference.
            let key_written = unshared_str_or_park!(
                self,
                &key,
                Frame::Dict(DictFrame {
                    key: Some(key.clone()),
                    ..f
                })
            );
            f.key = Some(key.clone());
            if !key_written {
                save_children_or_park!(
                    self,
                    self.save_children(&key, Some(value)),
                    Frame::Dict(f),
                    &f
                );
            } else if !unshared_str_or_park!(self, &value, Frame::Dict(f)) {
                save_children_or_park!(self, self.save_children(&value, None), Frame::Dict(f), &f);
            }
        }
    }

    // ---- items from an iterator ---------------------------------------------

    pub fn push_items(&mut self, iter: Bound<'py, PyAny>, kind: ItemsKind) {
        self.push_frame(Frame::Items(ItemsFrame {
            iter,
            kind,
            phase: ItemsPhase::Start,
            pending: None,
            in_batch: 0,
            index: 0,
            key: None,
        }));
    }

    /// The children of one item of an items frame: a value, or the key and
    /// value of a `(key, value)` pair.
    fn item_children(
        f: &mut ItemsFrame<'py>,
        item: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
        f.index += 1;
        match f.kind {
            ItemsKind::List => Ok((item, None)),
            ItemsKind::Dict => {
                let pair = match item.cast::<PyTuple>() {
                    Ok(t) if t.len() == 2 => t,
                    _ => {
                        return Err(PyTypeError::new_err(
                            "dict items iterator must return 2-tuples",
                        ))
                    }
                };
                let key = pair.get_item(0)?;
                f.key = Some(key.clone());
                Ok((key, Some(pair.get_item(1)?)))
            }
        }
    }

    pub fn step_items(&mut self, mut f: ItemsFrame<'py>) -> PyResult<()> {
        let (one, many) = match f.kind {
            ItemsKind::List => (APPEND, APPENDS),
            ItemsKind::Dict => (SETITEM, SETITEMS),
        };
        loop {
            let item = match f.phase {
                // Protocol 0 has no MARK batches: one item, one opcode.
                _ if !self.is_binary() => {
                    if f.phase == ItemsPhase::Single {
                        self.write_byte(one);
                    }
                    let Some(item) = next_item(&f.iter)? else {
                        return Ok(());
                    };
                    f.phase = ItemsPhase::Single;
                    item
                }
                ItemsPhase::Start => {
                    let Some(first) = next_item(&f.iter)? else {
                        return Ok(());
                    };
                    match next_item(&f.iter)? {
                        None => f.phase = ItemsPhase::Single,
                        Some(second) => {
                            self.write_byte(MARK);
                            f.pending = Some(second);
                            f.in_batch = 1;
                            f.phase = ItemsPhase::Batch;
                        }
                    }
                    first
                }
                ItemsPhase::Single => {
                    self.write_byte(one);
                    return Ok(());
                }
                ItemsPhase::Batch => {
                    if let Some(item) = f.pending.take() {
                        f.in_batch += 1;
                        item
                    } else if f.in_batch == BATCHSIZE {
                        self.write_byte(many);
                        f.phase = ItemsPhase::Start;
                        continue;
                    } else {
                        match next_item(&f.iter)? {
                            None => {
                                self.write_byte(many);
                                return Ok(());
                            }
                            Some(item) => {
                                f.pending = Some(item);
                                continue;
                            }
                        }
                    }
                }
            };
            let children = Self::item_children(&mut f, item);
            save_children_or_park!(
                self,
                children.and_then(|(first, value)| self.save_children(&first, value)),
                Frame::Items(f),
                &f
            );
        }
    }

    // ---- tuple -------------------------------------------------------------

    pub fn save_tuple(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        // SAFETY: save() dispatched here on the exact tuple type.
        let tuple = unsafe { obj.cast_unchecked::<PyTuple>() };
        let len = tuple.len();
        if len == 0 {
            if self.is_binary() {
                self.write_byte(EMPTY_TUPLE);
            } else {
                self.write(&[MARK, TUPLE]);
            }
            return Ok(());
        }
        if !(len <= 3 && self.proto() >= 2) {
            self.write_byte(MARK);
        }
        self.start(Frame::Tuple(TupleFrame {
            tuple: tuple.clone(),
            next: 0,
        }))
    }

    /// A tuple of str made for the payload (a code object's names), which
    /// nothing can refer to: written as `save_tuple` writes one, without a
    /// memo entry. Saving a str pushes no work, so it is written at once.
    pub fn save_unmemoized_tuple(&mut self, names: &[Bound<'py, PyAny>]) -> PyResult<()> {
        self.opcode_boundary()?;
        let short_form = names.len() <= 3 && self.proto() >= 2;
        if names.is_empty() && self.is_binary() {
            self.write_byte(EMPTY_TUPLE);
            return Ok(());
        }
        if !short_form {
            self.write_byte(MARK);
        }
        for name in names {
            self.save(name, SaveCtx::default())?;
        }
        self.write_byte(if short_form {
            LEN_TO_TUPLE_OP[names.len()]
        } else {
            TUPLE
        });
        Ok(())
    }

    pub fn step_tuple(&mut self, mut f: TupleFrame<'py>) -> PyResult<()> {
        let len = f.tuple.len();
        while f.next < len {
            let item = f.tuple.get_item(f.next)?;
            f.next += 1;
            if unshared_str_or_park!(self, &item, Frame::Tuple(f)) {
                continue;
            }
            save_children_or_park!(self, self.save_children(&item, None), Frame::Tuple(f), &f);
        }
        let short_form = len <= 3 && self.proto() >= 2;
        if let Some(idx) = self.memo_index_of(f.tuple.as_any()) {
            // The tuple is recursive: its elements already put it in the
            // memo. Drop what we pushed and fetch it from there.
            if short_form {
                self.write(&vec![POP; len]);
            } else if self.is_binary() {
                self.write_byte(POP_MARK);
            } else {
                self.write(&vec![POP; len + 1]);
            }
            self.memo_get(idx);
            return Ok(());
        }
        self.write_byte(if short_form {
            LEN_TO_TUPLE_OP[len]
        } else {
            TUPLE
        });
        self.memo_put(f.tuple.as_any());
        Ok(())
    }

    // ---- set and frozenset -------------------------------------------------

    /// Below protocol 4 sets have no opcodes: `set([items])` via REDUCE.
    fn save_set_by_reduce(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let items = PyList::new(
            self.py(),
            self.set_iter(obj)?
                .try_iter()?
                .collect::<PyResult<Vec<_>>>()?,
        )?;
        let args = PyTuple::new(self.py(), [items])?;
        let reduce_value = PyTuple::new(self.py(), [obj.get_type().into_any(), args.into_any()])?;
        self.save_reduce(&reduce_value, Some(obj))
    }

    /// The items of a set in iteration order, or in a canonical order when
    /// pickling deterministically.
    fn set_iter(&self, set: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !self.deterministic() {
            return Ok(set.try_iter()?.into_any());
        }
        let items =
            super::canonical_order(set.try_iter()?.collect::<PyResult<Vec<_>>>()?.into_iter())?;
        Ok(PyList::new(self.py(), items)?.try_iter()?.into_any())
    }

    pub fn save_set(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto() < 4 {
            return self.save_set_by_reduce(obj);
        }
        if self.in_fast_mode() {
            self.fast_enter(obj)?;
        }
        self.write_byte(EMPTY_SET);
        self.memo_put(obj);
        let size = obj.len()?;
        if size == 0 {
            return Ok(());
        }
        self.write_byte(MARK);
        let iter = self.set_iter(obj)?;
        self.start(Frame::Set(SetFrame {
            set: obj.clone(),
            iter,
            size: crate::sizes::ssize(size),
            in_batch: 0,
        }))
    }

    pub fn step_set(&mut self, mut f: SetFrame<'py>) -> PyResult<()> {
        loop {
            if f.in_batch == BATCHSIZE {
                self.write_byte(ADDITEMS);
                self.check_set_size(&f)?;
                self.write_byte(MARK);
                f.in_batch = 0;
            }
            let item = match next_item(&f.iter) {
                Ok(Some(item)) => item,
                Ok(None) => {
                    self.write_byte(ADDITEMS);
                    return self.check_set_size(&f);
                }
                // The set iterator noticed a change of size. Report it in
                // `_pickle.c`'s words ("set changed size during iteration"),
                // which it uses at the end of a batch.
                Err(err) => {
                    self.check_set_size(&f)?;
                    return Err(err);
                }
            };
            f.in_batch += 1;
            save_children_or_park!(self, self.save_children(&item, None), Frame::Set(f), &f);
        }
    }

    fn check_set_size(&self, f: &SetFrame<'py>) -> PyResult<()> {
        if crate::sizes::ssize(f.set.len()?) != f.size {
            return Err(PyRuntimeError::new_err("set changed size during iteration"));
        }
        Ok(())
    }

    pub fn save_frozenset(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto() < 4 {
            return self.save_set_by_reduce(obj);
        }
        self.write_byte(MARK);
        let iter = self.set_iter(obj)?;
        self.start(Frame::FrozenSet(FrozenSetFrame {
            obj: obj.clone(),
            iter,
        }))
    }

    pub fn step_frozenset(&mut self, f: FrozenSetFrame<'py>) -> PyResult<()> {
        while let Some(item) = next_item(&f.iter)? {
            save_children_or_park!(
                self,
                self.save_children(&item, None),
                Frame::FrozenSet(f),
                &f
            );
        }
        if let Some(idx) = self.memo_index_of(&f.obj) {
            // Recursive through its items: drop them, fetch the memoized one.
            self.write_byte(POP_MARK);
            self.memo_get(idx);
            return Ok(());
        }
        self.write_byte(FROZENSET);
        self.memo_put(&f.obj);
        Ok(())
    }
}
