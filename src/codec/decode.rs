//! The decoder: reads one MessagePack document with an explicit work stack
//! (the Rust stack stays flat at any depth) and builds the objects.
//!
//! Hostile input is expected: every length is checked against the bytes
//! that remain before anything is allocated for it, nesting is capped at
//! `MAX_DEPTH`, and nothing is imported or called but the constructors of
//! the stdlib value types and the classes registered by name.
//!
//! Containers and registered instances are numbered as the encoder numbers
//! them: mutable ones (list, dict, set, bytearray, instances) as soon as
//! they are made, empty, so that their own items can refer back to them;
//! immutable ones (tuple, frozenset, NamedTuple) once complete.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use rmp::Marker;

use super::ext::{self, Kind, MAX_DEPTH};
use super::reader::{Fault, FaultKind, Reader, Res};
use super::strings::{give_back_cache, new_bytes, new_str, take_cache, KeyCache, MAX_CACHED_KEY};
use super::{scalars, MsgpackCodec};

/// What an immutable container becomes once its items are gathered.
enum Gathered<'py> {
    Tuple,
    FrozenSet,
    /// A registered NamedTuple class.
    NamedTuple(Bound<'py, PyAny>),
}

enum Frame<'py> {
    List {
        list: Bound<'py, PyAny>,
        remaining: usize,
    },
    Map {
        dict: Bound<'py, PyAny>,
        remaining: usize,
        /// The key read, waiting for its value.
        key: Option<Bound<'py, PyAny>>,
    },
    Set {
        set: Bound<'py, PyAny>,
        remaining: usize,
        /// Where the ext payload holding the items ends.
        end: usize,
    },
    /// A tuple, frozenset or NamedTuple: items on the value stack from `start`.
    Gather {
        kind: Gathered<'py>,
        start: usize,
        remaining: usize,
        end: usize,
    },
    /// A registered instance, made by `cls.__new__(cls)`, filled field by field.
    Object {
        obj: Bound<'py, PyAny>,
        /// The registered field names: the only attributes a payload may set.
        fields: Bound<'py, PyTuple>,
        remaining: usize,
        /// The field read, waiting for its value.
        field: Option<Bound<'py, PyAny>>,
        end: usize,
    },
}

enum Step<'py> {
    Value(Bound<'py, PyAny>),
    Push(Frame<'py>),
}

struct Decoder<'a, 'py> {
    py: Python<'py>,
    codec: &'a MsgpackCodec,
    r: Reader<'a>,
    /// Containers and instances by number, for back-references.
    refs: Vec<Bound<'py, PyAny>>,
    /// Items of the immutable containers being gathered.
    values: Vec<Bound<'py, PyAny>>,
    keys: KeyCache,
    /// List slots that may still be made ahead of their items. Every item
    /// takes at least a byte, so a document can fill at most as many slots
    /// as it has bytes: lists nested in lists, each announcing 2**32-1
    /// items, cannot reserve more than that between them.
    slots_budget: usize,
}

pub fn unpackb<'py>(
    codec: &MsgpackCodec,
    py: Python<'py>,
    data: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let mut dec = Decoder {
        py,
        codec,
        r: Reader::new(data),
        refs: Vec::new(),
        values: Vec::new(),
        keys: take_cache(),
        slots_budget: data.len(),
    };
    let mut stack = Vec::new();
    let result = dec.run(&mut stack).and_then(|value| {
        if dec.r.at_end() {
            Ok(value)
        } else {
            dec.r.malformed(format!(
                "{} trailing bytes after the document",
                dec.r.remaining()
            ))
        }
    });
    drop(stack);
    give_back_cache(std::mem::take(&mut dec.keys));
    result.map_err(|fault| dec.error(fault))
}

/// Take a new reference returned by the C API, or the exception it set.
#[inline(always)]
fn owned<'py>(py: Python<'py>, ptr: *mut ffi::PyObject) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `ptr` is a new reference or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

extern "C" {
    // Exported by libpython (Include/cpython/dictobject.h), not bound by
    // pyo3-ffi: a new empty dict with room for `minused` entries.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

#[inline(always)]
fn new_int(py: Python<'_>, value: i64) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: makes a new int from a plain value.
    owned(py, unsafe { ffi::PyLong_FromLongLong(value) })
}

#[inline(always)]
fn new_float(py: Python<'_>, value: f64) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: makes a new float from a plain value.
    owned(py, unsafe { ffi::PyFloat_FromDouble(value) })
}

/// Append to a list made by `new_list`, filling the room it was made with
/// before growing it.
#[inline(always)]
fn list_push(list: &Bound<'_, PyAny>, item: Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: `list` is an exact list. Slots below `allocated` and at or
    // past its size are free (null), so storing the item there and growing
    // the size by one keeps the list valid; its size is re-read each time,
    // in case Python code (a registered class's) appended to it meanwhile.
    unsafe {
        let ptr = list.as_ptr();
        let size = ffi::Py_SIZE(ptr);
        if size < (*(ptr as *mut ffi::PyListObject)).allocated {
            ffi::PyList_SET_ITEM(ptr, size, item.into_ptr());
            (*(ptr as *mut ffi::PyVarObject)).ob_size = size + 1;
            return Ok(());
        }
        if ffi::PyList_Append(ptr, item.as_ptr()) != 0 {
            return Err(PyErr::fetch(list.py()));
        }
    }
    Ok(())
}

/// An empty list with room for `capacity` items.
fn new_list(py: Python<'_>, capacity: usize) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: PyList_New only allocates.
    let list = owned(py, unsafe {
        ffi::PyList_New(crate::sizes::ssize(capacity))
    })?;
    // SAFETY: a list we just made with `capacity` null slots: a size of 0
    // makes it a valid empty list that owns room for `capacity` items.
    unsafe { (*(list.as_ptr() as *mut ffi::PyVarObject)).ob_size = 0 };
    Ok(list)
}

impl<'a, 'py> Decoder<'a, 'py> {
    fn run(&mut self, stack: &mut Vec<Frame<'py>>) -> Res<Bound<'py, PyAny>> {
        loop {
            let step = match stack.last_mut() {
                Some(Frame::Map { key: None, .. }) => self.read_value(true)?,
                Some(Frame::Object {
                    field: field @ None,
                    fields,
                    ..
                }) => {
                    *field = Some(self.read_field(fields)?);
                    continue;
                }
                _ => self.read_value(false)?,
            };
            let mut value = match step {
                Step::Value(value) => value,
                Step::Push(frame) => {
                    if stack.len() >= MAX_DEPTH {
                        return self.r.malformed(format!(
                            "containers nested deeper than {MAX_DEPTH} levels"
                        ));
                    }
                    stack.push(frame);
                    continue;
                }
            };
            // Hand the value to the container it belongs to; a container it
            // completes is handed on to its own, and so on.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(value);
                };
                let remaining = match top {
                    Frame::List { list, remaining } => {
                        list_push(list, value)?;
                        remaining
                    }
                    Frame::Map {
                        dict,
                        remaining,
                        key,
                    } => match key.take() {
                        None => {
                            *key = Some(value);
                            break;
                        }
                        Some(k) => {
                            // SAFETY: `dict` is an exact dict; the call takes
                            // its own references to key and value.
                            if unsafe {
                                ffi::PyDict_SetItem(dict.as_ptr(), k.as_ptr(), value.as_ptr())
                            } != 0
                            {
                                return Err(PyErr::fetch(self.py).into());
                            }
                            remaining
                        }
                    },
                    Frame::Set { set, remaining, .. } => {
                        // SAFETY: `set` is an exact set; the call takes its
                        // own reference.
                        if unsafe { ffi::PySet_Add(set.as_ptr(), value.as_ptr()) } != 0 {
                            return Err(PyErr::fetch(self.py).into());
                        }
                        remaining
                    }
                    Frame::Gather { remaining, .. } => {
                        self.values.push(value);
                        remaining
                    }
                    Frame::Object {
                        obj,
                        remaining,
                        field,
                        ..
                    } => {
                        let name = field.take().expect("a field name precedes its value");
                        self.codec
                            .object_setattr
                            .bind(self.py)
                            .call1((&*obj, name, value))?;
                        remaining
                    }
                };
                *remaining -= 1;
                if *remaining > 0 {
                    break;
                }
                let done = stack.pop().expect("a frame was on top");
                value = self.finish(done)?;
            }
        }
    }

    #[inline(always)]
    fn read_value(&mut self, as_key: bool) -> Res<Step<'py>> {
        let py = self.py;
        let marker = Marker::from_u8(self.r.byte()?);
        let obj = match marker {
            Marker::FixPos(v) => new_int(py, i64::from(v))?,
            Marker::FixNeg(v) => new_int(py, i64::from(v))?,
            Marker::FixStr(n) => return self.read_str(n as usize, as_key),
            Marker::FixMap(n) => return self.start_map(n as usize),
            Marker::FixArray(n) => return self.start_list(n as usize),
            Marker::Null => py.None().into_bound(py),
            Marker::True => pyo3::types::PyBool::new(py, true).to_owned().into_any(),
            Marker::False => pyo3::types::PyBool::new(py, false).to_owned().into_any(),
            Marker::F64 => new_float(py, f64::from_be_bytes(self.r.array()?))?,
            Marker::F32 => new_float(py, f64::from(f32::from_be_bytes(self.r.array()?)))?,
            Marker::U8 => new_int(py, i64::from(self.r.byte()?))?,
            Marker::U16 => new_int(py, i64::from(u16::from_be_bytes(self.r.array()?)))?,
            Marker::U32 => new_int(py, i64::from(u32::from_be_bytes(self.r.array()?)))?,
            Marker::U64 => {
                // SAFETY: makes a new int from a plain value (or returns
                // null with an exception set, which `owned` turns into an error).
                owned(py, unsafe {
                    ffi::PyLong_FromUnsignedLongLong(u64::from_be_bytes(self.r.array()?))
                })?
            }
            Marker::I8 => new_int(py, i64::from(i8::from_be_bytes(self.r.array()?)))?,
            Marker::I16 => new_int(py, i64::from(i16::from_be_bytes(self.r.array()?)))?,
            Marker::I32 => new_int(py, i64::from(i32::from_be_bytes(self.r.array()?)))?,
            Marker::I64 => new_int(py, i64::from_be_bytes(self.r.array()?))?,
            Marker::Str8 => {
                let len = self.r.len8()?;
                return self.read_str(len, as_key);
            }
            Marker::Str16 => {
                let len = self.r.len16()?;
                return self.read_str(len, as_key);
            }
            Marker::Str32 => {
                let len = self.r.len32()?;
                return self.read_str(len, as_key);
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = match marker {
                    Marker::Bin8 => self.r.len8()?,
                    Marker::Bin16 => self.r.len16()?,
                    _ => self.r.len32()?,
                };
                new_bytes(py, self.r.take(len)?)?.into_any()
            }
            Marker::Array16 => {
                let len = self.r.len16()?;
                return self.start_list(len);
            }
            Marker::Array32 => {
                let len = self.r.len32()?;
                return self.start_list(len);
            }
            Marker::Map16 => {
                let len = self.r.len16()?;
                return self.start_map(len);
            }
            Marker::Map32 => {
                let len = self.r.len32()?;
                return self.start_map(len);
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => return self.read_ext(marker),
            Marker::Reserved => {
                self.r.pos -= 1;
                return self.r.malformed("0xc1 is not a MessagePack type");
            }
        };
        Ok(Step::Value(obj))
    }

    #[inline(always)]
    fn read_str(&mut self, len: usize, as_key: bool) -> Res<Step<'py>> {
        let at = self.r.pos;
        let bytes = self.r.take(len)?;
        if as_key && len <= MAX_CACHED_KEY && bytes.is_ascii() {
            return Ok(Step::Value(self.keys.ascii_key(self.py, bytes)?));
        }
        match new_str(self.py, bytes)? {
            Some(s) => Ok(Step::Value(s)),
            None => Err(Fault::malformed(at, "invalid UTF-8 in str")),
        }
    }

    fn start_list(&mut self, len: usize) -> Res<Step<'py>> {
        // Never make room for more items than the input could still hold.
        let room = len.min(self.r.remaining()).min(self.slots_budget);
        self.slots_budget -= room;
        let list = new_list(self.py, room)?;
        self.refs.push(list.clone());
        if len == 0 {
            return Ok(Step::Value(list));
        }
        Ok(Step::Push(Frame::List {
            list,
            remaining: len,
        }))
    }

    fn start_map(&mut self, len: usize) -> Res<Step<'py>> {
        // Sized for its entries up front (each takes at least 2 bytes),
        // within the same budget as list slots.
        let room = len.min(self.r.remaining() / 2).min(self.slots_budget);
        self.slots_budget -= room;
        // SAFETY: makes a new dict.
        let dict = owned(self.py, unsafe {
            _PyDict_NewPresized(crate::sizes::ssize(room))
        })?;
        self.refs.push(dict.clone());
        if len == 0 {
            return Ok(Step::Value(dict));
        }
        Ok(Step::Push(Frame::Map {
            dict,
            remaining: len,
            key: None,
        }))
    }

    fn read_ext(&mut self, marker: Marker) -> Res<Step<'py>> {
        let py = self.py;
        let at = self.r.pos - 1;
        let (code, len) = self.r.ext_header(marker)?;
        let end = self.r.pos + len;
        let step = match code {
            ext::BACKREF => {
                let index = match *self.r.take(len)? {
                    [a] => u64::from(a),
                    [a, b] => u64::from(u16::from_be_bytes([a, b])),
                    [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
                    [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
                    _ => {
                        return Err(Fault::malformed(
                            at,
                            format!("back-reference of {len} bytes"),
                        ))
                    }
                };
                match usize::try_from(index).ok().and_then(|i| self.refs.get(i)) {
                    Some(obj) => Step::Value(obj.clone()),
                    None => {
                        return Err(Fault::malformed(
                            at,
                            format!(
                                "back-reference {index} out of range ({} objects so far)",
                                self.refs.len()
                            ),
                        ))
                    }
                }
            }
            ext::TUPLE => {
                let n = self.r.array_len()?;
                self.start_gather(Gathered::Tuple, n, end)?
            }
            ext::FROZENSET => {
                let n = self.r.array_len()?;
                self.start_gather(Gathered::FrozenSet, n, end)?
            }
            ext::SET => {
                let n = self.r.array_len()?;
                // SAFETY: makes a new, empty set.
                let set = owned(py, unsafe { ffi::PySet_New(std::ptr::null_mut()) })?;
                self.refs.push(set.clone());
                self.start_or_finish(
                    Frame::Set {
                        set,
                        remaining: n,
                        end,
                    },
                    n,
                )?
            }
            ext::BYTEARRAY => {
                let data = self.r.take(len)?;
                // SAFETY: copies `data` (valid for its length) into a new bytearray.
                let obj = owned(py, unsafe {
                    ffi::PyByteArray_FromStringAndSize(
                        data.as_ptr().cast(),
                        crate::sizes::ssize(data.len()),
                    )
                })?;
                self.refs.push(obj.clone());
                Step::Value(obj)
            }
            ext::ENUM => {
                self.r.array_of(2, "enum member")?;
                let (cls, _) = self.registered(Kind::Enum)?;
                let member = self.r.str()?;
                self.check_end(end)?;
                Step::Value(cls.get_item(member)?)
            }
            ext::OBJECT => {
                self.r.array_of(2, "registered instance")?;
                let (cls, fields) = self.registered(Kind::Object)?;
                let n = self.r.map_len()?;
                // Made as pickle makes it: `__new__` without `__init__`.
                let obj = cls.call_method1(intern!(py, "__new__"), (&cls,))?;
                self.refs.push(obj.clone());
                self.start_or_finish(
                    Frame::Object {
                        obj,
                        fields,
                        remaining: n,
                        field: None,
                        end,
                    },
                    n,
                )?
            }
            ext::NAMEDTUPLE => {
                self.r.array_of(2, "NamedTuple")?;
                let (cls, _) = self.registered(Kind::NamedTuple)?;
                let n = self.r.array_len()?;
                self.start_gather(Gathered::NamedTuple(cls), n, end)?
            }
            _ => {
                let payload = self.r.take(len)?;
                match scalars::read(py, code, payload, &self.codec.types) {
                    Ok(Some(value)) => Step::Value(value),
                    Ok(None) => {
                        return Err(Fault::malformed(at, format!("unknown ext type {code}")))
                    }
                    // Positions inside the payload are relative to it.
                    Err(Fault(fault)) => match *fault {
                        FaultKind::Malformed { pos, what } => {
                            return Err(Fault::malformed(
                                end - len + pos,
                                format!("{what} (ext type {code})"),
                            ))
                        }
                        python => return Err(Fault(Box::new(python))),
                    },
                }
            }
        };
        Ok(step)
    }

    fn start_gather(&mut self, kind: Gathered<'py>, n: usize, end: usize) -> Res<Step<'py>> {
        let frame = Frame::Gather {
            kind,
            start: self.values.len(),
            remaining: n,
            end,
        };
        self.start_or_finish(frame, n)
    }

    /// A container with no items is complete at once.
    fn start_or_finish(&mut self, frame: Frame<'py>, n: usize) -> Res<Step<'py>> {
        if n == 0 {
            return Ok(Step::Value(self.finish(frame)?));
        }
        Ok(Step::Push(frame))
    }

    fn check_end(&self, end: usize) -> Res<()> {
        if self.r.pos != end {
            return self.r.malformed(format!(
                "ext payload ends at byte {end}, its content at {}",
                self.r.pos
            ));
        }
        Ok(())
    }

    /// The registered class whose name comes next, which must be of `kind`,
    /// with its field names.
    fn registered(&mut self, kind: Kind) -> Res<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let at = self.r.pos;
        let name = self.r.str()?;
        let entry = self.codec.by_name.bind(self.py).get_item(name)?;
        let shown: String = name.chars().take(100).collect();
        let Some(entry) = entry else {
            return Err(Fault::malformed(
                at,
                format!("unknown registered name {shown:?}"),
            ));
        };
        let entry = entry.cast_into::<PyTuple>().map_err(PyErr::from)?;
        let found = Kind::from_code(entry.get_item(1)?.extract()?);
        if found != Some(kind) {
            return Err(Fault::malformed(
                at,
                format!("registered name {shown:?} is not of the kind the payload says ({kind:?})"),
            ));
        }
        Ok((
            entry.get_item(0)?,
            entry
                .get_item(2)?
                .cast_into::<PyTuple>()
                .map_err(PyErr::from)?,
        ))
    }

    /// A field name of a registered instance: one of its registered fields.
    fn read_field(&mut self, fields: &Bound<'py, PyTuple>) -> Res<Bound<'py, PyAny>> {
        let at = self.r.pos;
        let name = self.r.str()?;
        for field in fields.iter() {
            if field.cast::<PyString>().map_err(PyErr::from)?.to_str()? == name {
                return Ok(field);
            }
        }
        let shown: String = name.chars().take(100).collect();
        Err(Fault::malformed(
            at,
            format!("{shown:?} is not a registered field"),
        ))
    }

    /// A container's items are all read: build it (if immutable), check
    /// that its ext payload was exactly used up.
    fn finish(&mut self, frame: Frame<'py>) -> Res<Bound<'py, PyAny>> {
        let py = self.py;
        let (value, end) = match frame {
            Frame::List { list, .. } => (list, None),
            Frame::Map { dict, .. } => (dict, None),
            Frame::Set { set, end, .. } => (set, Some(end)),
            Frame::Object { obj, end, .. } => (obj, Some(end)),
            Frame::Gather {
                kind, start, end, ..
            } => {
                let items = self.values.drain(start..);
                let value = match kind {
                    Gathered::FrozenSet => {
                        // SAFETY: a brand-new frozenset may be filled with
                        // PySet_Add before anyone else sees it (the C API's
                        // own rule); the call takes its own reference.
                        let set = owned(py, unsafe { ffi::PyFrozenSet_New(std::ptr::null_mut()) })?;
                        for item in items {
                            // SAFETY: as above.
                            if unsafe { ffi::PySet_Add(set.as_ptr(), item.as_ptr()) } != 0 {
                                return Err(PyErr::fetch(py).into());
                            }
                        }
                        set
                    }
                    Gathered::Tuple => new_tuple(py, items)?,
                    Gathered::NamedTuple(cls) => {
                        let items = new_tuple(py, items)?;
                        cls.call_method1(intern!(py, "_make"), (items,))?
                    }
                };
                self.refs.push(value.clone());
                (value, Some(end))
            }
        };
        if let Some(end) = end {
            self.check_end(end)?;
        }
        Ok(value)
    }

    fn error(&self, fault: Fault) -> PyErr {
        let py = self.py;
        let decode_error = self.codec.decode_error.bind(py);
        match *fault.0 {
            FaultKind::Malformed { pos, what } => {
                PyErr::from_type(decode_error.clone(), format!("{what} at byte {pos}"))
            }
            FaultKind::Python(err) => {
                // Errors from building objects (an unhashable key, a bad
                // Decimal, a class's `__new__`) are the payload's fault too;
                // BaseExceptions such as KeyboardInterrupt pass through, and
                // so does running out of memory.
                if err.is_instance(py, decode_error)
                    || !err.is_instance_of::<pyo3::exceptions::PyException>(py)
                    || err.is_instance_of::<pyo3::exceptions::PyMemoryError>(py)
                {
                    return err;
                }
                let wrapped = PyErr::from_type(
                    decode_error.clone(),
                    format!(
                        "cannot build an object from the payload (near byte {}): {err}",
                        self.r.pos
                    ),
                );
                wrapped.set_cause(py, Some(err));
                wrapped
            }
        }
    }
}

/// A tuple of the gathered items.
fn new_tuple<'py>(
    py: Python<'py>,
    items: std::vec::Drain<'_, Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: a new tuple of `len` null slots, each filled exactly once with
    // a reference we give up, before the tuple is handed to anyone.
    unsafe {
        let tuple = owned(py, ffi::PyTuple_New(crate::sizes::ssize(items.len())))?;
        for (i, item) in items.enumerate() {
            ffi::PyTuple_SET_ITEM(tuple.as_ptr(), crate::sizes::ssize(i), item.into_ptr());
        }
        Ok(tuple)
    }
}
