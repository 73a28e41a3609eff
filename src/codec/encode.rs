//! The encoder: walks the object graph with an explicit work stack (the
//! Rust stack stays flat at any depth) and writes MessagePack into one
//! buffer. Dispatch is on the exact type pointer, most frequent types first,
//! and scalars are written straight from the container holding them.
//!
//! Containers and registered instances are numbered in order of first
//! appearance (mutable ones when they start, immutable ones when they are
//! complete, exactly as the decoder numbers them); a second occurrence is
//! written as a BACKREF to that number.

use ahash::AHashSet;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use rmp::encode::{self as write, RmpWrite, ValueWriteError};

use super::ext::{self, close_ext, open_ext, Kind, MAX_DEPTH};
use super::output::Output;
use super::scalars::{self, write_ext};
use super::strings::new_bytes;
use super::MsgpackCodec;
use crate::engine::memo::Memo;
use crate::engine::scratch::{give_back_memo, take_memo};
use crate::pyutil::{key_segment, small_long_value, type_name};

/// Why encoding stopped: the object cannot be represented (an EncodeError
/// whose message gets the path), Python code raised, or the output could not
/// grow (a MemoryError).
pub enum EncodeFault {
    Refused(String),
    Python(PyErr),
    OutOfMemory,
}

impl From<PyErr> for EncodeFault {
    fn from(err: PyErr) -> Self {
        EncodeFault::Python(err)
    }
}

/// The output's writes fail only when it cannot grow (`Output`).
impl From<std::io::Error> for EncodeFault {
    #[cold]
    fn from(_: std::io::Error) -> Self {
        EncodeFault::OutOfMemory
    }
}

impl From<ValueWriteError<std::io::Error>> for EncodeFault {
    #[cold]
    fn from(_: ValueWriteError<std::io::Error>) -> Self {
        EncodeFault::OutOfMemory
    }
}

type Res<T> = Result<T, EncodeFault>;

/// When a container gets its number (see the module doc).
enum Numbering<'py> {
    /// Mutable: numbered when it started.
    AtStart,
    /// Immutable, and referenced from elsewhere too: numbered, and found
    /// again by address, once complete.
    Shared(Bound<'py, PyAny>),
    /// Immutable, and referenced only by its container: it can be met only
    /// once, so it just spends its number once complete.
    Unshared,
}

/// An ext container still open: where its header is, and how to number it.
struct Close<'py> {
    header_at: usize,
    numbering: Numbering<'py>,
}

/// A list, tuple or NamedTuple, item by item.
struct SeqFrame<'py> {
    seq: Bound<'py, PyAny>,
    is_list: bool,
    len: usize,
    next: usize,
    close: Option<Close<'py>>,
}

/// A dict, entry by entry with `PyDict_Next`.
struct DictFrame<'py> {
    dict: Bound<'py, PyAny>,
    len: usize,
    pos: ffi::Py_ssize_t,
    /// `pos` before the entry being written (to name its key in a path).
    entry: ffi::Py_ssize_t,
    written: usize,
    /// The value of an entry whose key is itself a container being written.
    pending_value: Option<Bound<'py, PyAny>>,
}

/// A set's items (a snapshot), or a registered instance's field values
/// with their names.
struct ItemsFrame<'py> {
    items: Vec<Bound<'py, PyAny>>,
    names: Vec<Bound<'py, PyString>>,
    next: usize,
    close: Close<'py>,
}

enum Frame<'py> {
    Seq(SeqFrame<'py>),
    Dict(DictFrame<'py>),
    /// Boxed: rarer, and larger than the others.
    Items(Box<ItemsFrame<'py>>),
}

struct Encoder<'a, 'py> {
    py: Python<'py>,
    codec: &'a MsgpackCodec,
    out: Output,
    memo: Memo,
    /// Immutable containers being written: meeting one again is a cycle
    /// through it, which cannot be represented (it is numbered only once
    /// complete).
    open_immutables: AHashSet<usize>,
}

pub fn packb<'py>(codec: &MsgpackCodec, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let py = obj.py();
    let mut enc = Encoder {
        py,
        codec,
        out: take_output(),
        memo: take_memo(),
        open_immutables: AHashSet::new(),
    };
    let mut stack = Vec::new();
    let result = enc
        .run(obj, &mut stack)
        .map_err(|fault| enc.fail(fault, &stack));
    drop(stack);
    give_back_memo(std::mem::take(&mut enc.memo));
    let result = result.and_then(|()| new_bytes(py, enc.out.as_slice()));
    give_back_output(enc.out);
    result
}

/// Output buffers up to this capacity are kept for the next `packb` on the
/// thread: growing a fresh one for a large document (reallocations, pages
/// faulted in) cost more than writing it.
const KEEP_OUTPUT: usize = 4 << 20;

thread_local! {
    static SCRATCH_OUTPUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The thread's output buffer, empty (a nested `packb` gets a new one).
fn take_output() -> Output {
    let mut out = SCRATCH_OUTPUT.with(|o| o.take());
    if out.capacity() == 0 {
        out.reserve(256);
    }
    Output::from_vec(out)
}

fn give_back_output(out: Output) {
    let mut out = out.into_vec();
    if out.capacity() <= KEEP_OUTPUT {
        out.clear();
        SCRATCH_OUTPUT.with(|o| o.set(out));
    }
}

fn len_u32(len: usize, what: &str) -> Res<u32> {
    u32::try_from(len).map_err(|_| {
        EncodeFault::Refused(format!(
            "a {what} of {len} items is over MessagePack's limit of 2**32-1"
        ))
    })
}

impl<'a, 'py> Encoder<'a, 'py> {
    fn run(&mut self, root: &Bound<'py, PyAny>, stack: &mut Vec<Frame<'py>>) -> Res<()> {
        if let Some(frame) = self.write_value(root.as_borrowed())? {
            stack.push(frame);
        }
        while let Some(top) = stack.last_mut() {
            let child = match top {
                Frame::Seq(f) => self.step_seq(f)?,
                Frame::Dict(f) => self.step_dict(f)?,
                Frame::Items(f) => self.step_items(f)?,
            };
            match child {
                Some(child) if stack.len() >= MAX_DEPTH => {
                    drop(child);
                    return Err(EncodeFault::Refused(format!(
                        "containers nested deeper than {MAX_DEPTH} levels"
                    )));
                }
                Some(child) => stack.push(child),
                None => {
                    let done = stack.pop().expect("a frame was on top");
                    self.finish(done)?;
                }
            }
        }
        Ok(())
    }

    /// Write one value; a container is started and returned as the frame
    /// that writes its items.
    #[inline(always)]
    fn write_value(&mut self, obj: Borrowed<'_, 'py, PyAny>) -> Res<Option<Frame<'py>>> {
        // Dispatch on the exact type pointer; what may run Python code (the
        // containers, `write_other`) holds no unsafe read across it.
        let ptr = obj.as_ptr();
        let tp = obj.get_type_ptr();
        if tp == &raw mut ffi::PyUnicode_Type {
            self.write_str(&obj)?;
        } else if tp == &raw mut ffi::PyLong_Type {
            self.write_int(&obj)?;
        } else if tp == &raw mut ffi::PyFloat_Type {
            // SAFETY: `obj` is an exact float.
            let value = unsafe { ffi::PyFloat_AS_DOUBLE(ptr) };
            write::write_f64(&mut self.out, value)?;
        } else if tp == &raw mut ffi::PyDict_Type {
            return self.start_dict(obj);
        } else if tp == &raw mut ffi::PyList_Type {
            return self.start_seq(obj, true, None);
        } else if obj.is_none() {
            write::write_nil(&mut self.out)?;
        } else if tp == &raw mut ffi::PyBool_Type {
            // SAFETY: the address of the True singleton; nothing is read.
            let is_true = ptr == unsafe { ffi::Py_True() };
            write::write_bool(&mut self.out, is_true)?;
        } else if tp == &raw mut ffi::PyTuple_Type {
            return self.start_immutable_seq(obj, ext::TUPLE, None);
        } else if tp == &raw mut ffi::PyBytes_Type {
            // SAFETY: `obj` is an exact bytes: `Py_SIZE` bytes at
            // `PyBytes_AS_STRING`, immutable, alive while its holder holds it
            // (no Python code runs before they are copied out).
            let data = unsafe {
                std::slice::from_raw_parts(
                    ffi::PyBytes_AS_STRING(ptr) as *const u8,
                    crate::sizes::len(ffi::Py_SIZE(ptr)),
                )
            };
            write::write_bin_len(&mut self.out, len_u32(data.len(), "bytes")?)?;
            self.out.write_bytes(data)?;
        } else {
            return self.write_other(obj.to_owned());
        }
        Ok(None)
    }

    #[inline(always)]
    fn write_str(&mut self, obj: &Bound<'py, PyAny>) -> Res<()> {
        let ptr = obj.as_ptr();
        // SAFETY: `obj` is an exact str. A compact ASCII string's characters
        // are its UTF-8 bytes, stored inline, alive while we hold `obj`.
        let data = unsafe {
            if ffi::PyUnicode_IS_COMPACT_ASCII(ptr) == 0 {
                return self.write_non_ascii_str(obj);
            }
            std::slice::from_raw_parts(
                ffi::PyUnicode_DATA(ptr) as *const u8,
                crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr)),
            )
        };
        write::write_str_len(&mut self.out, len_u32(data.len(), "str")?)?;
        self.out.write_bytes(data)?;
        Ok(())
    }

    /// A str beyond ASCII, UTF-8 encoded here from its code points: no
    /// Python call, so no Python code runs while our caller holds borrowed
    /// references (and no UTF-8 copy is left cached on the object). Lone
    /// surrogates are encoded like any code point ("surrogatepass"), in a
    /// SURROGATE_STR ext instead of a str.
    #[inline(never)]
    fn write_non_ascii_str(&mut self, obj: &Bound<'py, PyAny>) -> Res<()> {
        let ptr = obj.as_ptr();
        // SAFETY: `obj` is an exact str, made ready: its data holds `len`
        // code units of `kind` bytes, alive while we hold `obj`.
        unsafe {
            if ffi::PyUnicode_READY(ptr) != 0 {
                return Err(PyErr::fetch(self.py).into());
            }
            let len = crate::sizes::len(ffi::PyUnicode_GET_LENGTH(ptr));
            let data = ffi::PyUnicode_DATA(ptr);
            match ffi::PyUnicode_KIND(ptr) {
                ffi::PyUnicode_1BYTE_KIND => {
                    self.write_code_points(std::slice::from_raw_parts(data as *const u8, len))
                }
                ffi::PyUnicode_2BYTE_KIND => {
                    self.write_code_points(std::slice::from_raw_parts(data as *const u16, len))
                }
                _ => self.write_code_points(std::slice::from_raw_parts(data as *const u32, len)),
            }
        }
    }

    fn write_code_points<T: Copy + Into<u32>>(&mut self, units: &[T]) -> Res<()> {
        let len: usize = units
            .iter()
            .map(|&c| crate::utf8::encoded_len(c.into()))
            .sum();
        let surrogates = units.iter().any(|&c| (0xd800..=0xdfff).contains(&c.into()));
        let len32 = len_u32(len, "str")?;
        if surrogates {
            write::write_ext_meta(&mut self.out, len32, ext::SURROGATE_STR)?;
        } else {
            write::write_str_len(&mut self.out, len32)?;
        }
        let out = self.out.room_for(len)?;
        for &unit in units {
            crate::utf8::push(out, unit.into());
        }
        Ok(())
    }

    /// An int that fits in an i64, written without running Python code;
    /// `false` for a larger one.
    #[inline(always)]
    fn write_fixed_int(&mut self, obj: &Bound<'py, PyAny>) -> Res<bool> {
        match small_long_value(obj) {
            Some(value) => {
                write::write_sint(&mut self.out, value)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    #[inline(always)]
    fn write_int(&mut self, obj: &Bound<'py, PyAny>) -> Res<()> {
        if self.write_fixed_int(obj)? {
            return Ok(());
        }
        self.write_wide_int(obj.clone())
    }

    /// An int beyond i64, on a reference of our own: what follows may raise
    /// or allocate, and so run the garbage collector and any code with it.
    #[cold]
    fn write_wide_int(&mut self, obj: Bound<'py, PyAny>) -> Res<()> {
        // SAFETY: `obj` is an exact int; an overflow sets an exception,
        // which we clear.
        let value = unsafe { ffi::PyLong_AsUnsignedLongLong(obj.as_ptr()) };
        // SAFETY: reads the thread's error indicator.
        if value != u64::MAX || unsafe { ffi::PyErr_Occurred() }.is_null() {
            write::write_uint(&mut self.out, value)?;
            return Ok(());
        }
        // SAFETY: clearing the OverflowError just raised.
        unsafe { ffi::PyErr_Clear() };
        scalars::write_bigint(&mut self.out, &obj)
    }

    fn write_backref(&mut self, index: u32) -> Res<()> {
        let bytes = index.to_be_bytes();
        let (payload, len): (&[u8], u32) = match index {
            0..=0xff => (&bytes[3..], 1),
            0x100..=0xffff => (&bytes[2..], 2),
            _ => (&bytes[..], 4),
        };
        write::write_ext_meta(&mut self.out, len, ext::BACKREF)?;
        Ok(self.out.write_bytes(payload)?)
    }

    /// A container or instance met before is written as a back-reference
    /// (`None`); one still being written that cannot be numbered yet is a
    /// cycle we refuse. Otherwise a mutable one is numbered now, and the
    /// answer says how to number an immutable one.
    ///
    /// An object whose only reference is the one its container holds can
    /// be met only once: it takes no entry in the memo (which saves a hash
    /// insert and a reference per container on tree-shaped data), only a
    /// number. (A reference of our own only makes an object look shared,
    /// which is always safe.)
    #[inline]
    fn seen(&mut self, obj: &Bound<'py, PyAny>, immutable: bool) -> Res<Option<Numbering<'py>>> {
        // SAFETY: reads the reference count of a live object.
        let shared = unsafe { ffi::Py_REFCNT(obj.as_ptr()) } > 1;
        if shared {
            if let Some(index) = self.memo.get(obj) {
                self.write_backref(index)?;
                return Ok(None);
            }
        }
        if !immutable {
            if shared {
                self.memo.put(obj);
            } else {
                self.memo.put_anonymous();
            }
            return Ok(Some(Numbering::AtStart));
        }
        if !shared {
            return Ok(Some(Numbering::Unshared));
        }
        if !self.open_immutables.insert(obj.as_ptr() as usize) {
            return Err(EncodeFault::Refused(format!(
                "cannot encode a cycle through an immutable '{}' (it contains itself)",
                type_name(obj)
            )));
        }
        Ok(Some(Numbering::Shared(obj.clone())))
    }

    fn start_dict(&mut self, obj: Borrowed<'_, 'py, PyAny>) -> Res<Option<Frame<'py>>> {
        if self.seen(&obj, false)?.is_none() {
            return Ok(None);
        }
        // SAFETY: `obj` is an exact dict.
        let len = crate::sizes::len(unsafe { ffi::PyDict_Size(obj.as_ptr()) });
        write::write_map_len(&mut self.out, len_u32(len, "dict")?)?;
        if len == 0 {
            return Ok(None);
        }
        Ok(Some(Frame::Dict(DictFrame {
            dict: obj.to_owned(),
            len,
            pos: 0,
            entry: 0,
            written: 0,
            pending_value: None,
        })))
    }

    /// A list (`is_list`), or the items of a tuple or NamedTuple whose ext
    /// is open (`close`).
    fn start_seq(
        &mut self,
        obj: Borrowed<'_, 'py, PyAny>,
        is_list: bool,
        close: Option<Close<'py>>,
    ) -> Res<Option<Frame<'py>>> {
        if is_list && self.seen(&obj, false)?.is_none() {
            return Ok(None);
        }
        // SAFETY: `obj` is an exact list, or a tuple (or a subclass of it).
        let len = crate::sizes::len(unsafe {
            if is_list {
                ffi::PyList_GET_SIZE(obj.as_ptr())
            } else {
                ffi::PyTuple_GET_SIZE(obj.as_ptr())
            }
        });
        write::write_array_len(&mut self.out, len_u32(len, "sequence")?)?;
        let frame = SeqFrame {
            seq: obj.to_owned(),
            is_list,
            len,
            next: 0,
            close,
        };
        if len == 0 {
            self.finish(Frame::Seq(frame))?;
            return Ok(None);
        }
        Ok(Some(Frame::Seq(frame)))
    }

    /// A tuple, or a registered NamedTuple (`name`): an ext holding the
    /// array of items (after the name), numbered once complete.
    fn start_immutable_seq(
        &mut self,
        obj: Borrowed<'_, 'py, PyAny>,
        code: i8,
        name: Option<&Bound<'py, PyString>>,
    ) -> Res<Option<Frame<'py>>> {
        let Some(numbering) = self.seen(&obj, true)? else {
            return Ok(None);
        };
        let header_at = open_ext(&mut self.out, code)?;
        if let Some(name) = name {
            write::write_array_len(&mut self.out, 2)?;
            self.write_str(name.as_any())?;
        }
        self.start_seq(
            obj,
            false,
            Some(Close {
                header_at,
                numbering,
            }),
        )
    }

    fn step_seq(&mut self, f: &mut SeqFrame<'py>) -> Res<Option<Frame<'py>>> {
        let ptr = f.seq.as_ptr();
        while f.next < f.len {
            // SAFETY: `ptr` is a list (checked: still `len` items long, since
            // Python code run by an item's encoding may have changed it) or
            // a tuple, so `next` is in bounds; the item is borrowed from it
            // and used before any Python code can run (`write_value` takes
            // its own reference first when it may run some).
            let item = unsafe {
                let item = if f.is_list {
                    if crate::sizes::len(ffi::PyList_GET_SIZE(ptr)) != f.len {
                        return Err(PyErr::new::<pyo3::exceptions::PyRuntimeError, _>(
                            "list changed size during encoding",
                        )
                        .into());
                    }
                    ffi::PyList_GET_ITEM(ptr, crate::sizes::ssize(f.next))
                } else {
                    ffi::PyTuple_GET_ITEM(ptr, crate::sizes::ssize(f.next))
                };
                Borrowed::from_ptr(self.py, item)
            };
            f.next += 1;
            if let Some(child) = self.write_value(item)? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    fn step_dict(&mut self, f: &mut DictFrame<'py>) -> Res<Option<Frame<'py>>> {
        if let Some(value) = f.pending_value.take() {
            if let Some(child) = self.write_value(value.as_borrowed())? {
                return Ok(Some(child));
            }
        }
        let changed = || {
            EncodeFault::Python(PyErr::new::<pyo3::exceptions::PyRuntimeError, _>(
                "dictionary changed size during encoding",
            ))
        };
        loop {
            let mut key = std::ptr::null_mut();
            let mut value = std::ptr::null_mut();
            f.entry = f.pos;
            // SAFETY: `dict` is a dict we hold; PyDict_Next is bounds-checked
            // even if Python code changed the dict since the last call.
            if unsafe { ffi::PyDict_Next(f.dict.as_ptr(), &mut f.pos, &mut key, &mut value) } == 0 {
                return if f.written == f.len {
                    Ok(None)
                } else {
                    Err(changed())
                };
            }
            f.written += 1;
            if f.written > f.len {
                return Err(changed());
            }
            // SAFETY: borrowed from the dict, which holds them until Python
            // code runs; a str or small int key is written without running
            // any, and otherwise we take our own reference to the value first.
            let (key, value) = unsafe {
                (
                    Borrowed::from_ptr(self.py, key),
                    Borrowed::from_ptr(self.py, value),
                )
            };
            let key_type = key.get_type_ptr();
            let value = if key_type == &raw mut ffi::PyUnicode_Type {
                self.write_str(&key)?;
                value
            } else if key_type == &raw mut ffi::PyLong_Type && self.write_fixed_int(&key)? {
                value
            } else {
                let value = value.to_owned();
                if let Some(child) = self.write_value(key)? {
                    f.pending_value = Some(value);
                    return Ok(Some(child));
                }
                if let Some(child) = self.write_value(value.as_borrowed())? {
                    return Ok(Some(child));
                }
                continue;
            };
            if let Some(child) = self.write_value(value)? {
                return Ok(Some(child));
            }
        }
    }

    fn step_items(&mut self, f: &mut ItemsFrame<'py>) -> Res<Option<Frame<'py>>> {
        while f.next < f.items.len() {
            let i = f.next;
            f.next += 1;
            if let Some(name) = f.names.get(i) {
                self.write_str(name.as_any())?;
            }
            if let Some(child) = self.write_value(f.items[i].as_borrowed())? {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// A container's items are all written: close its ext, and number it
    /// now if it is immutable.
    fn finish(&mut self, frame: Frame<'py>) -> Res<()> {
        let close = match frame {
            Frame::Seq(f) => f.close,
            Frame::Dict(_) => None,
            Frame::Items(f) => Some(f.close),
        };
        if let Some(close) = close {
            close_ext(&mut self.out, close.header_at)?;
            match close.numbering {
                Numbering::AtStart => {}
                Numbering::Shared(obj) => {
                    self.open_immutables.remove(&(obj.as_ptr() as usize));
                    self.memo.put(&obj);
                }
                Numbering::Unshared => {
                    self.memo.put_anonymous();
                }
            }
        }
        Ok(())
    }

    /// Everything but the most frequent types.
    #[inline(never)]
    fn write_other(&mut self, obj: Bound<'py, PyAny>) -> Res<Option<Frame<'py>>> {
        let py = self.py;
        let tp = obj.get_type_ptr();
        let types = &self.codec.types;
        let is = |t: &Py<pyo3::types::PyType>| tp == t.as_ptr().cast();
        if tp == &raw mut ffi::PySet_Type {
            return self.start_set(obj, ext::SET);
        }
        if tp == &raw mut ffi::PyFrozenSet_Type {
            return self.start_set(obj, ext::FROZENSET);
        }
        if tp == &raw mut ffi::PyByteArray_Type {
            if self.seen(&obj, false)?.is_some() {
                // SAFETY: `obj` is an exact bytearray; no Python code runs
                // while its buffer is copied.
                let data = unsafe {
                    std::slice::from_raw_parts(
                        ffi::PyByteArray_AsString(obj.as_ptr()) as *const u8,
                        crate::sizes::len(ffi::PyByteArray_Size(obj.as_ptr())),
                    )
                };
                write_ext(&mut self.out, ext::BYTEARRAY, data)?;
            }
        } else if tp == &raw mut ffi::PyComplex_Type {
            scalars::write_complex(&mut self.out, &obj)?;
        } else if is(&types.datetime) {
            scalars::write_datetime(&mut self.out, &obj, types)?;
        } else if is(&types.date) {
            scalars::write_date(&mut self.out, &obj)?;
        } else if is(&types.time) {
            scalars::write_time(&mut self.out, &obj, types)?;
        } else if is(&types.timedelta) {
            scalars::write_timedelta(&mut self.out, &obj)?;
        } else if is(&types.decimal) {
            scalars::write_decimal(&mut self.out, &obj)?;
        } else if is(&types.uuid) {
            scalars::write_uuid(&mut self.out, &obj)?;
        } else if scalars::is_known_tz(&obj, types) {
            scalars::write_tzinfo(&mut self.out, &obj, types)?;
        } else if let Some(entry) = self.codec.by_type.bind(py).get_item(obj.get_type())? {
            return self.write_registered(obj, entry.cast_into::<PyTuple>().map_err(PyErr::from)?);
        } else {
            return Err(EncodeFault::Refused(format!(
                "cannot encode '{}' object",
                type_name(&obj)
            )));
        }
        Ok(None)
    }

    fn start_set(&mut self, obj: Bound<'py, PyAny>, code: i8) -> Res<Option<Frame<'py>>> {
        let Some(numbering) = self.seen(&obj, code == ext::FROZENSET)? else {
            return Ok(None);
        };
        let header_at = open_ext(&mut self.out, code)?;
        let items = obj.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        write::write_array_len(&mut self.out, len_u32(items.len(), "set")?)?;
        let close = Close {
            header_at,
            numbering,
        };
        self.start_items(ItemsFrame {
            items,
            names: Vec::new(),
            next: 0,
            close,
        })
    }

    fn start_items(&mut self, frame: ItemsFrame<'py>) -> Res<Option<Frame<'py>>> {
        if frame.items.is_empty() {
            self.finish(Frame::Items(Box::new(frame)))?;
            return Ok(None);
        }
        Ok(Some(Frame::Items(Box::new(frame))))
    }

    /// An instance of a registered class; `entry` is its registry entry,
    /// `(name, kind, field names)`.
    fn write_registered(
        &mut self,
        obj: Bound<'py, PyAny>,
        entry: Bound<'py, PyTuple>,
    ) -> Res<Option<Frame<'py>>> {
        let py = self.py;
        let name = entry
            .get_item(0)?
            .cast_into::<PyString>()
            .map_err(PyErr::from)?;
        let kind = Kind::from_code(entry.get_item(1)?.extract()?)
            .ok_or_else(|| EncodeFault::Refused("corrupt msgpack registry entry".into()))?;
        match kind {
            Kind::Enum => {
                let header_at = open_ext(&mut self.out, ext::ENUM)?;
                write::write_array_len(&mut self.out, 2)?;
                self.write_str(name.as_any())?;
                let member = obj.getattr(intern!(py, "_name_"))?;
                self.write_str(member.cast::<PyString>().map_err(PyErr::from)?.as_any())?;
                close_ext(&mut self.out, header_at)?;
                Ok(None)
            }
            Kind::NamedTuple => {
                // The registry is a dict anyone can edit: the items are read
                // with the tuple macros only from an actual tuple.
                if !obj.is_instance_of::<PyTuple>() {
                    return Err(EncodeFault::Refused(format!(
                        "'{}' is registered as a NamedTuple but is not a tuple",
                        type_name(&obj)
                    )));
                }
                self.start_immutable_seq(obj.as_borrowed(), ext::NAMEDTUPLE, Some(&name))
            }
            Kind::Object => {
                if self.seen(&obj, false)?.is_none() {
                    return Ok(None);
                }
                let header_at = open_ext(&mut self.out, ext::OBJECT)?;
                write::write_array_len(&mut self.out, 2)?;
                self.write_str(name.as_any())?;
                let fields = entry.get_item(2)?;
                let mut names = Vec::new();
                let mut items = Vec::new();
                for field in fields.cast::<PyTuple>().map_err(PyErr::from)?.iter() {
                    let field = field.cast_into::<PyString>().map_err(PyErr::from)?;
                    match obj.getattr(&field) {
                        Ok(value) => {
                            names.push(field);
                            items.push(value);
                        }
                        // An unset field (a slot never assigned) is left out.
                        Err(err)
                            if err.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                write::write_map_len(&mut self.out, len_u32(items.len(), "field map")?)?;
                self.start_items(ItemsFrame {
                    items,
                    names,
                    next: 0,
                    close: Close {
                        header_at,
                        numbering: Numbering::AtStart,
                    },
                })
            }
        }
    }

    /// The exception for a failure, with the path of the object that
    /// failed (`obj['a'][3].field`), read off the frames in progress.
    fn fail(&self, fault: EncodeFault, stack: &[Frame<'py>]) -> PyErr {
        let path = path_of(stack);
        let err = match fault {
            EncodeFault::Refused(message) => {
                let hint = if message.starts_with("cannot encode '") {
                    " (turbodill.msgpack encodes builtin data types, datetime, Decimal, UUID, and the dataclasses, \
                     attrs classes, NamedTuples and Enums passed to turbodill.msgpack.register)"
                } else {
                    ""
                };
                return PyErr::from_type(
                    self.codec.encode_error.bind(self.py).clone(),
                    format!("{message} at {path}{hint}"),
                );
            }
            EncodeFault::Python(err) => err,
            EncodeFault::OutOfMemory => pyo3::exceptions::PyMemoryError::new_err(format!(
                "out of memory for the MessagePack output ({} bytes written)",
                self.out.len()
            )),
        };
        if path != "obj" {
            // A failure to attach the note must not mask the error.
            let _ = err.value(self.py).call_method1(
                intern!(self.py, "add_note"),
                (format!("when encoding {path}"),),
            );
        }
        err
    }
}

/// Longest path put in a message; deeper ones keep their two ends.
const MAX_PATH: usize = 300;

fn path_of(stack: &[Frame<'_>]) -> String {
    let mut path = String::from("obj");
    for frame in stack {
        match frame {
            Frame::Seq(f) if f.next > 0 => path.push_str(&format!("[{}]", f.next - 1)),
            Frame::Dict(f) if f.written > 0 => {
                let (mut pos, mut key, mut value) =
                    (f.entry, std::ptr::null_mut(), std::ptr::null_mut());
                // SAFETY: `dict` is a dict we hold; PyDict_Next is
                // bounds-checked.
                if unsafe { ffi::PyDict_Next(f.dict.as_ptr(), &mut pos, &mut key, &mut value) } != 0
                {
                    // SAFETY: a live key just returned by PyDict_Next.
                    let key = unsafe { Bound::from_borrowed_ptr(f.dict.py(), key) };
                    path.push_str(&key_segment(&key, false));
                }
            }
            Frame::Items(f) if f.next > 0 => match f.names.get(f.next - 1) {
                Some(name) => path.push_str(&format!(".{name}")),
                None => path.push_str("{…}"),
            },
            _ => {}
        }
    }
    if path.len() > MAX_PATH {
        let cut = |i: usize| {
            (0..=i)
                .rev()
                .find(|&i| path.is_char_boundary(i))
                .unwrap_or(0)
        };
        let (head, tail) = (cut(MAX_PATH / 2), cut(path.len() - MAX_PATH / 2));
        path = format!("{}…{}", &path[..head], &path[tail..]);
    }
    path
}
