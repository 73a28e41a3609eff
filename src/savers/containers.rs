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
fn dict_next<'py>(dict: &Bound<'py, PyDict>, pos: &mut ffi::Py_ssize_t) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
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
        Some((Bound::from_borrowed_ptr(py, key), Bound::from_borrowed_ptr(py, value)))
    }
}

fn check_dict_size(dict: &Bound<'_, PyDict>, size: isize) -> PyResult<()> {
    if dict.len() as isize != size {
        return Err(PyRuntimeError::new_err("dictionary changed size during iteration"));
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

impl<'py> Engine<'py> {
    /// Save `child` on behalf of the frame that `frame` rebuilds. Returns
    /// true when the child pushed work of its own: the frame then waits
    /// beneath it. On error the frame is put back so the error path can
    /// name where the failure happened.
    #[inline]
    fn save_child(&mut self, child: &Bound<'py, PyAny>, frame: impl FnOnce() -> Frame<'py>) -> PyResult<bool> {
        let depth = self.stack.len();
        match self.save(child, SaveCtx::default()) {
            Ok(()) => Ok(self.suspend_if_pushed(depth, frame)),
            Err(err) => {
                self.stack.truncate(depth);
                self.stack.push(frame());
                Err(err)
            }
        }
    }

    /// Save a key and its value for the frame that `frame` rebuilds.
    #[inline]
    fn save_pair(
        &mut self,
        key: &Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        frame: impl Fn() -> Frame<'py>,
    ) -> PyResult<bool> {
        let depth = self.stack.len();
        if let Err(err) = self.save(key, SaveCtx::default()) {
            self.stack.truncate(depth);
            self.stack.push(frame());
            return Err(err);
        }
        if self.stack.len() > depth {
            self.stack.splice(depth..depth, [frame(), Frame::Save(value, SaveCtx::default())]);
            return Ok(true);
        }
        self.save_child(&value, frame)
    }

    // ---- list --------------------------------------------------------------

    pub fn save_list(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.fast {
            self.fast_enter(obj)?;
        }
        if self.bin {
            self.out.write_byte(EMPTY_LIST);
        } else {
            self.out.write(&[MARK, LIST]);
        }
        self.memo_put(obj);
        // SAFETY: save() dispatched here on the exact list type.
        let list = unsafe { obj.cast_unchecked::<PyList>() };
        let len = list.len();
        if len == 0 {
            return Ok(());
        }
        if !self.bin {
            let iter = obj.try_iter()?.into_any();
            self.push_items(iter, ItemsKind::List);
            return Ok(());
        }
        let single = len == 1;
        if !single {
            self.out.write_byte(MARK);
        }
        self.stack.push(Frame::List(ListFrame { list: list.clone(), next: 0, in_batch: 0, single }));
        Ok(())
    }

    pub fn step_list(&mut self, mut f: ListFrame<'py>) -> PyResult<()> {
        loop {
            let size = f.list.len();
            if f.single && f.next == 1 {
                self.out.write_byte(APPEND);
                return Ok(());
            }
            if !f.single && (f.in_batch == BATCHSIZE || f.next >= size) {
                self.out.write_byte(APPENDS);
                if f.next >= size {
                    return Ok(());
                }
                self.out.write_byte(MARK);
                f.in_batch = 0;
            }
            let item = f.list.get_item(f.next)?;
            f.next += 1;
            f.in_batch += 1;
            let suspended = self.save_child(&item, || {
                Frame::List(ListFrame { list: f.list.clone(), next: f.next, in_batch: f.in_batch, single: f.single })
            })?;
            if suspended {
                return Ok(());
            }
        }
    }

    // ---- dict --------------------------------------------------------------

    pub fn save_dict(&mut self, obj: &Bound<'py, PyAny>, ctx: SaveCtx) -> PyResult<()> {
        if self.fast {
            self.fast_enter(obj)?;
        }
        if self.bin {
            self.out.write_byte(EMPTY_DICT);
        } else {
            self.out.write(&[MARK, DICT]);
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
        if !self.bin {
            let iter = dict.call_method0(pyo3::intern!(self.py, "items"))?.try_iter()?.into_any();
            self.push_items(iter, ItemsKind::Dict);
            return Ok(());
        }
        let single = size == 1;
        if !single {
            self.out.write_byte(MARK);
        }
        self.stack.push(Frame::Dict(Box::new(DictFrame {
            dict: dict.clone(),
            pos: 0,
            size: size as isize,
            in_batch: 0,
            key: None,
            is_state: ctx.is_state,
            single,
        })));
        Ok(())
    }

    pub fn step_dict(&mut self, mut f: Box<DictFrame<'py>>) -> PyResult<()> {
        loop {
            if f.single {
                if f.in_batch == 1 {
                    self.out.write_byte(SETITEM);
                    return Ok(());
                }
            } else if f.in_batch == BATCHSIZE {
                self.out.write_byte(SETITEMS);
                check_dict_size(&f.dict, f.size)?;
                self.out.write_byte(MARK);
                f.in_batch = 0;
            }
            let Some((key, value)) = dict_next(&f.dict, &mut f.pos) else {
                if f.single {
                    // Emptied while its only key was being saved.
                    return check_dict_size(&f.dict, f.size);
                }
                self.out.write_byte(SETITEMS);
                return check_dict_size(&f.dict, f.size);
            };
            f.in_batch += 1;
            f.key = Some(key.clone());
            let suspended = self.save_pair(&key, value, || {
                Frame::Dict(Box::new(DictFrame {
                    dict: f.dict.clone(),
                    key: f.key.clone(),
                    pos: f.pos,
                    size: f.size,
                    in_batch: f.in_batch,
                    is_state: f.is_state,
                    single: f.single,
                }))
            })?;
            if suspended {
                return Ok(());
            }
        }
    }

    // ---- items from an iterator ---------------------------------------------

    pub fn push_items(&mut self, iter: Bound<'py, PyAny>, kind: ItemsKind) {
        self.stack.push(Frame::Items(Box::new(ItemsFrame {
            iter,
            kind,
            phase: ItemsPhase::Start,
            pending: None,
            in_batch: 0,
            index: 0,
            key: None,
        })));
    }

    /// Save one item of an items frame: a value, or a `(key, value)` pair.
    fn save_iter_item(&mut self, f: &mut ItemsFrame<'py>, item: Bound<'py, PyAny>) -> PyResult<bool> {
        f.index += 1;
        let rebuild = |f: &ItemsFrame<'py>| {
            Frame::Items(Box::new(ItemsFrame {
                iter: f.iter.clone(),
                pending: f.pending.clone(),
                key: f.key.clone(),
                ..*f
            }))
        };
        match f.kind {
            ItemsKind::List => self.save_child(&item, || rebuild(f)),
            ItemsKind::Dict => {
                let pair = match item.cast::<PyTuple>() {
                    Ok(t) if t.len() == 2 => t,
                    _ => return Err(PyTypeError::new_err("dict items iterator must return 2-tuples")),
                };
                let key = pair.get_item(0)?;
                let value = pair.get_item(1)?;
                f.key = Some(key.clone());
                self.save_pair(&key, value, || rebuild(f))
            }
        }
    }

    pub fn step_items(&mut self, mut f: Box<ItemsFrame<'py>>) -> PyResult<()> {
        let (one, many) = match f.kind {
            ItemsKind::List => (APPEND, APPENDS),
            ItemsKind::Dict => (SETITEM, SETITEMS),
        };
        loop {
            let suspended = match f.phase {
                // Protocol 0 has no MARK batches: one item, one opcode.
                _ if !self.bin => {
                    if f.phase == ItemsPhase::Single {
                        self.out.write_byte(one);
                    }
                    match next_item(&f.iter)? {
                        None => return Ok(()),
                        Some(item) => {
                            f.phase = ItemsPhase::Single;
                            self.save_iter_item(&mut f, item)?
                        }
                    }
                }
                ItemsPhase::Start => {
                    let Some(first) = next_item(&f.iter)? else { return Ok(()) };
                    match next_item(&f.iter)? {
                        None => f.phase = ItemsPhase::Single,
                        Some(second) => {
                            self.out.write_byte(MARK);
                            f.pending = Some(second);
                            f.in_batch = 1;
                            f.phase = ItemsPhase::Batch;
                        }
                    }
                    self.save_iter_item(&mut f, first)?
                }
                ItemsPhase::Single => {
                    self.out.write_byte(one);
                    return Ok(());
                }
                ItemsPhase::Batch => {
                    if let Some(item) = f.pending.take() {
                        f.in_batch += 1;
                        self.save_iter_item(&mut f, item)?
                    } else if f.in_batch == BATCHSIZE {
                        self.out.write_byte(many);
                        f.phase = ItemsPhase::Start;
                        false
                    } else {
                        match next_item(&f.iter)? {
                            None => {
                                self.out.write_byte(many);
                                return Ok(());
                            }
                            Some(item) => {
                                f.pending = Some(item);
                                false
                            }
                        }
                    }
                }
            };
            if suspended {
                return Ok(());
            }
        }
    }

    // ---- tuple -------------------------------------------------------------

    pub fn save_tuple(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        // SAFETY: save() dispatched here on the exact tuple type.
        let tuple = unsafe { obj.cast_unchecked::<PyTuple>() };
        let len = tuple.len();
        if len == 0 {
            if self.bin {
                self.out.write_byte(EMPTY_TUPLE);
            } else {
                self.out.write(&[MARK, TUPLE]);
            }
            return Ok(());
        }
        if !(len <= 3 && self.proto >= 2) {
            self.out.write_byte(MARK);
        }
        self.stack.push(Frame::Tuple(TupleFrame { tuple: tuple.clone(), next: 0 }));
        Ok(())
    }

    pub fn step_tuple(&mut self, mut f: TupleFrame<'py>) -> PyResult<()> {
        let len = f.tuple.len();
        while f.next < len {
            let item = f.tuple.get_item(f.next)?;
            f.next += 1;
            if self.save_child(&item, || Frame::Tuple(TupleFrame { tuple: f.tuple.clone(), ..f }))? {
                return Ok(());
            }
        }
        let short_form = len <= 3 && self.proto >= 2;
        if let Some(idx) = self.memo.get(f.tuple.as_any()) {
            // The tuple is recursive: its elements already put it in the
            // memo. Drop what we pushed and fetch it from there.
            if short_form {
                self.out.write(&vec![POP; len]);
            } else if self.bin {
                self.out.write_byte(POP_MARK);
            } else {
                self.out.write(&vec![POP; len + 1]);
            }
            self.memo_get(idx);
            return Ok(());
        }
        self.out.write_byte(if short_form { LEN_TO_TUPLE_OP[len] } else { TUPLE });
        self.memo_put(f.tuple.as_any());
        Ok(())
    }

    // ---- set and frozenset -------------------------------------------------

    /// Below protocol 4 sets have no opcodes: `set([items])` via REDUCE.
    fn save_set_by_reduce(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        let items = PyList::new(self.py, obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
        let args = PyTuple::new(self.py, [items])?;
        let reduce_value = PyTuple::new(self.py, [obj.get_type().into_any(), args.into_any()])?;
        self.save_reduce(&reduce_value, Some(obj))
    }

    pub fn save_set(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto < 4 {
            return self.save_set_by_reduce(obj);
        }
        if self.fast {
            self.fast_enter(obj)?;
        }
        self.out.write_byte(EMPTY_SET);
        self.memo_put(obj);
        let size = obj.len()?;
        if size == 0 {
            return Ok(());
        }
        self.out.write_byte(MARK);
        let iter = obj.try_iter()?.into_any();
        self.stack.push(Frame::Set(Box::new(SetFrame { set: obj.clone(), iter, size: size as isize, in_batch: 0 })));
        Ok(())
    }

    pub fn step_set(&mut self, mut f: Box<SetFrame<'py>>) -> PyResult<()> {
        loop {
            if f.in_batch == BATCHSIZE {
                self.out.write_byte(ADDITEMS);
                self.check_set_size(&f)?;
                self.out.write_byte(MARK);
                f.in_batch = 0;
            }
            let Some(item) = next_item(&f.iter)? else {
                self.out.write_byte(ADDITEMS);
                return self.check_set_size(&f);
            };
            f.in_batch += 1;
            let suspended = self.save_child(&item, || {
                Frame::Set(Box::new(SetFrame { set: f.set.clone(), iter: f.iter.clone(), ..*f }))
            })?;
            if suspended {
                return Ok(());
            }
        }
    }

    fn check_set_size(&self, f: &SetFrame<'py>) -> PyResult<()> {
        if f.set.len()? as isize != f.size {
            return Err(PyRuntimeError::new_err("set changed size during iteration"));
        }
        Ok(())
    }

    pub fn save_frozenset(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto < 4 {
            return self.save_set_by_reduce(obj);
        }
        self.out.write_byte(MARK);
        let iter = obj.try_iter()?.into_any();
        self.stack.push(Frame::FrozenSet(Box::new(FrozenSetFrame { obj: obj.clone(), iter })));
        Ok(())
    }

    pub fn step_frozenset(&mut self, f: Box<FrozenSetFrame<'py>>) -> PyResult<()> {
        while let Some(item) = next_item(&f.iter)? {
            let suspended = self.save_child(&item, || {
                Frame::FrozenSet(Box::new(FrozenSetFrame { obj: f.obj.clone(), iter: f.iter.clone() }))
            })?;
            if suspended {
                return Ok(());
            }
        }
        if let Some(idx) = self.memo.get(&f.obj) {
            // Recursive through its items: drop them, fetch the memoized one.
            self.out.write_byte(POP_MARK);
            self.memo_get(idx);
            return Ok(());
        }
        self.out.write_byte(FROZENSET);
        self.memo_put(&f.obj);
        Ok(())
    }
}
