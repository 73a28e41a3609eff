//! The static walk: every opcode of a pickle, in order, on a symbolic stack
//! and memo, executing nothing. It mirrors `_pickle.c`'s `load()` opcode by
//! opcode (argument widths, MARK fences, memo numbering), so that the
//! opcodes it sees are the ones the C unpickler would run: a global named by
//! strings fetched back from the memo is still known, and a payload the C
//! unpickler would reject is rejected here too (or earlier).
//!
//! Bounded: the stack, marks and memo hold one small `Copy` value per
//! opcode at most, strings are spans of the payload, and no length field is
//! trusted beyond the bytes that remain. Nothing recurses on the payload.

use ahash::AHashMap;

use super::facts::{Callee, Facts, GlobalId, GlobalRef};
use super::reader::Reader;
use super::{grow, WalkError};
use crate::output::opcodes::*;

/// A symbolic stack or memo entry.
#[derive(Clone, Copy)]
enum Value {
    /// A str whose text is known (an index into `Walker::texts`).
    Text(u32),
    Global(GlobalId),
    /// What calling a global made (`None`: the callable is not known).
    Made(Option<GlobalId>),
    /// A tuple (an index into `Walker::tuples`).
    Tuple(u32),
    /// Anything else the opcodes build themselves: numbers, bytes, str of
    /// unknown text, lists, dicts, sets.
    Plain,
    /// An object from outside the opcodes: a persistent object, an
    /// out-of-band buffer, a global named by unknown strings.
    Unknown,
}

#[derive(Clone, Copy)]
enum Encoding {
    Utf8,
    Latin1,
}

/// A span of the payload holding a str's text.
struct Text {
    start: usize,
    len: usize,
    encoding: Encoding,
}

/// What the walk keeps of a tuple: its nesting depth, and its first two
/// items for the two reduces it understands (`getattr(G, 'name')` and
/// `copyreg._reconstructor(cls, base, state)`).
struct TupleInfo {
    depth: u32,
    len: usize,
    first: Value,
    second: Value,
}

/// Globals whose calls the walk resolves further.
#[derive(Clone, Copy, PartialEq)]
enum Special {
    None,
    Getattr,
    Reconstructor,
}

struct Walker<'a> {
    r: Reader<'a>,
    stack: Vec<Value>,
    /// Stack heights at each open MARK; the top one is the fence below
    /// which no opcode may pop (`_pickle.c`'s split stacks).
    marks: Vec<usize>,
    /// The memo: dense up to the opcode count (what picklers write, as the
    /// C unpickler's table), sparse beyond (never a table from one index).
    memo: Vec<Option<Value>>,
    sparse_memo: AHashMap<u64, Value>,
    /// Distinct keys stored: where MEMOIZE stores next.
    memo_count: u64,
    texts: Vec<Text>,
    tuples: Vec<TupleInfo>,
    specials: Vec<Special>,
    /// Where the current frame ends. An opcode that straddles the end is
    /// refused, as `pickle.py` refuses it: no pickler writes one, and
    /// `_pickle.c` reading such a payload from a file fails in ways of its
    /// own (a MemoryError and an unraisable SystemError, found by fuzzing).
    frame_end: Option<usize>,
    facts: Facts,
}

/// Walk the first pickle in `data`. On failure, the error and the offset of
/// the opcode it concerns.
pub fn walk(data: &[u8]) -> Result<Facts, (WalkError, usize)> {
    let mut w = Walker {
        r: Reader::new(data),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
        sparse_memo: AHashMap::new(),
        memo_count: 0,
        texts: Vec::new(),
        tuples: Vec::new(),
        specials: Vec::new(),
        frame_end: None,
        facts: Facts::default(),
    };
    loop {
        let at = w.r.pos();
        let step =
            w.r.u8()
                .and_then(|op| w.step(op, at))
                .and_then(|done| w.check_frame_end().map(|()| done));
        match step {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err((e, at)),
        }
    }
    w.facts.size = w.r.pos();
    Ok(w.facts)
}

impl Walker<'_> {
    /// After each opcode: leave the frame at its end, refuse to cross it.
    fn check_frame_end(&mut self) -> Result<(), WalkError> {
        match self.frame_end {
            Some(end) if self.r.pos() > end => {
                Err(malformed("an opcode crosses the end of its frame"))
            }
            Some(end) if self.r.pos() == end => {
                self.frame_end = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn malformed(message: impl Into<String>) -> WalkError {
    WalkError::Malformed(message.into())
}

fn underflow() -> WalkError {
    malformed("unpickling stack underflow")
}

/// The protocol that introduced `op` (as `pickletools` lists them).
fn introduced_in(op: u8) -> u8 {
    match op {
        BININT | BININT1 | BININT2 | BINSTRING | SHORT_BINSTRING | BINUNICODE | BINFLOAT
        | EMPTY_LIST | APPENDS | EMPTY_TUPLE | EMPTY_DICT | SETITEMS | POP_MARK | BINGET
        | LONG_BINGET | BINPUT | LONG_BINPUT | OBJ | BINPERSID => 1,
        LONG1 | LONG4 | NEWTRUE | NEWFALSE | TUPLE1 | TUPLE2 | TUPLE3 | EXT1 | EXT2 | EXT4
        | NEWOBJ | PROTO => 2,
        BINBYTES | SHORT_BINBYTES => 3,
        SHORT_BINUNICODE | BINUNICODE8 | BINBYTES8 | EMPTY_SET | ADDITEMS | FROZENSET
        | NEWOBJ_EX | STACK_GLOBAL | MEMOIZE | FRAME => 4,
        BYTEARRAY8 | NEXT_BUFFER | READONLY_BUFFER => 5,
        _ => 0,
    }
}

/// A decimal memo index as `PyLong_FromString(s, NULL, 10)` reads it:
/// surrounding whitespace, a sign, underscores between digits.
fn parse_index(line: &[u8]) -> Result<i64, WalkError> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    let mut digits = &line[start..end];
    let negative = digits.first() == Some(&b'-');
    if matches!(digits.first(), Some(b'-' | b'+')) {
        digits = &digits[1..];
    }
    let invalid = || {
        malformed(format!(
            "invalid memo index {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    let mut value: i64 = 0;
    let mut previous_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(b - b'0')))
                    .ok_or_else(invalid)?;
                previous_digit = true;
            }
            b'_' if previous_digit => previous_digit = false,
            _ => return Err(invalid()),
        }
    }
    if !previous_digit {
        return Err(invalid());
    }
    Ok(if negative { -value } else { value })
}

impl Walker<'_> {
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, value: Value) -> Result<(), WalkError> {
        grow(&mut self.stack)?;
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, WalkError> {
        if self.stack.len() <= self.fence() {
            return Err(underflow());
        }
        self.stack.pop().ok_or_else(underflow)
    }

    fn top(&self) -> Result<Value, WalkError> {
        if self.stack.len() <= self.fence() {
            return Err(underflow());
        }
        self.stack.last().copied().ok_or_else(underflow)
    }

    /// Close the innermost MARK: the stack height it recorded.
    fn pop_mark(&mut self) -> Result<usize, WalkError> {
        self.marks
            .pop()
            .ok_or_else(|| malformed("could not find MARK"))
    }

    /// Items from `start` to the top are consumed by a container opcode.
    fn discard_from(&mut self, start: usize) -> Result<(), WalkError> {
        if start < self.fence() || start > self.stack.len() {
            return Err(underflow());
        }
        self.stack.truncate(start);
        Ok(())
    }

    fn text(&mut self, start: usize, len: usize, encoding: Encoding) -> Result<Value, WalkError> {
        grow(&mut self.texts)?;
        let id = u32::try_from(self.texts.len()).map_err(|_| WalkError::OutOfMemory)?;
        self.texts.push(Text {
            start,
            len,
            encoding,
        });
        Ok(Value::Text(id))
    }

    /// A counted string argument of `len` bytes, pushed as a str the walk
    /// can read (`ascii_only`: a Python 2 string, a str only when its bytes
    /// are ASCII, whatever the unpickler's `encoding`).
    fn push_str(
        &mut self,
        len: u64,
        encoding: Encoding,
        ascii_only: bool,
    ) -> Result<(), WalkError> {
        let start = self.r.skip(len)?;
        let bytes = &self.r.data()[start..self.r.pos()];
        let value = if ascii_only && !bytes.is_ascii() {
            Value::Plain
        } else {
            self.text(start, bytes.len(), encoding)?
        };
        self.push(value)
    }

    /// The text of a value, when it is a str the walk knows.
    fn string(&self, value: Value) -> Option<String> {
        let Value::Text(id) = value else { return None };
        let text = self.texts.get(id as usize)?;
        let bytes = self.r.data().get(text.start..text.start + text.len)?;
        match text.encoding {
            Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(str::to_owned),
            Encoding::Latin1 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    }

    /// A text-line argument decoded as `_pickle.c` decodes GLOBAL and INST's
    /// (UTF-8, strict, not empty).
    fn name_line(&mut self, what: &str) -> Result<String, WalkError> {
        let line = self.r.line()?;
        if line.is_empty() {
            return Err(malformed(format!("empty {what} name")));
        }
        std::str::from_utf8(line)
            .map(str::to_owned)
            .map_err(|_| malformed(format!("{what} name is not UTF-8")))
    }

    fn global(&mut self, global: GlobalRef) -> Result<GlobalId, WalkError> {
        let special = match &global {
            GlobalRef::Named { module, name } => match (module.as_str(), name.as_str()) {
                ("builtins" | "__builtin__", "getattr") => Special::Getattr,
                ("copyreg" | "copy_reg", "_reconstructor") => Special::Reconstructor,
                _ => Special::None,
            },
            _ => Special::None,
        };
        let at = self.facts.globals.add(global)?;
        if at == self.specials.len() {
            grow(&mut self.specials)?;
            self.specials.push(special);
        }
        u32::try_from(at).map_err(|_| WalkError::OutOfMemory)
    }

    fn call(&mut self, callee: Callee) -> Result<(), WalkError> {
        self.facts.calls.add(callee).map(|_| ())
    }

    /// The global a callable is, when the walk knows it.
    fn callee(value: Value) -> Option<GlobalId> {
        match value {
            Value::Global(id) => Some(id),
            _ => None,
        }
    }

    /// The method an opcode invokes on `target`, when it is not one of the
    /// builtin containers the opcodes build (whose methods are the stdlib's).
    fn method(&mut self, target: Value, method: &'static str) -> Result<(), WalkError> {
        match target {
            Value::Global(id) => self.call(Callee::Global(id, method)),
            Value::Made(maker) => self.call(Callee::Instance(maker, method)),
            Value::Unknown => self.call(Callee::Instance(None, method)),
            Value::Text(_) | Value::Tuple(_) | Value::Plain => Ok(()),
        }
    }

    fn tuple_info(&self, value: Value) -> Option<&TupleInfo> {
        match value {
            Value::Tuple(id) => self.tuples.get(id as usize),
            _ => None,
        }
    }

    /// Replace the items from `start` to the top with the tuple they make.
    fn make_tuple(&mut self, start: usize) -> Result<(), WalkError> {
        if start < self.fence() || start > self.stack.len() {
            return Err(underflow());
        }
        let items = &self.stack[start..];
        let inner = items
            .iter()
            .filter_map(|&v| self.tuple_info(v))
            .map(|t| t.depth)
            .max()
            .unwrap_or(0);
        let info = TupleInfo {
            depth: inner.saturating_add(1),
            len: items.len(),
            first: items.first().copied().unwrap_or(Value::Plain),
            second: items.get(1).copied().unwrap_or(Value::Plain),
        };
        self.facts.tuple_depth = self.facts.tuple_depth.max(info.depth);
        grow(&mut self.tuples)?;
        let id = u32::try_from(self.tuples.len()).map_err(|_| WalkError::OutOfMemory)?;
        self.tuples.push(info);
        self.stack.truncate(start);
        self.push(Value::Tuple(id))
    }

    /// APPEND(S), SETITEM(S), ADDITEMS: items from `start` to the top go
    /// into the object just below them (`do_append` / `do_setitems`).
    fn add_items(
        &mut self,
        start: usize,
        method: &'static str,
        pairs: bool,
    ) -> Result<(), WalkError> {
        let len = self.stack.len();
        if start > len || start <= self.fence() {
            return Err(underflow());
        }
        if start == len {
            return Ok(());
        }
        if pairs && (len - start) % 2 != 0 {
            return Err(malformed("odd number of items for SETITEMS"));
        }
        let target = self.stack[start - 1];
        self.method(target, method)?;
        self.stack.truncate(start);
        Ok(())
    }

    /// REDUCE: `callable(*args)`.
    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, WalkError> {
        let Some(id) = Self::callee(callable) else {
            self.call(Callee::Call(None))?;
            return Ok(Value::Made(None));
        };
        let operands = self.tuple_info(args).map(|t| (t.len, t.first, t.second));
        let special = self
            .specials
            .get(id as usize)
            .copied()
            .unwrap_or(Special::None);
        match (special, operands) {
            (Special::Getattr, Some((2, Value::Global(base), name))) => {
                if let Some(name) = self.string(name) {
                    return Ok(Value::Global(
                        self.global(GlobalRef::Attribute { base, name })?,
                    ));
                }
            }
            (Special::Reconstructor, Some((3, Value::Global(cls), base))) => {
                // object.__new__(cls), or base.__new__(cls, state) and
                // base.__init__: base is called too.
                self.call(Callee::Call(Some(id)))?;
                self.call(Callee::Call(Self::callee(base)))?;
                return Ok(Value::Made(Some(cls)));
            }
            _ => {}
        }
        self.call(Callee::Call(Some(id)))?;
        Ok(Value::Made(Some(id)))
    }

    fn memo_get(&mut self, key: i64) -> Result<(), WalkError> {
        let value = u64::try_from(key)
            .ok()
            .and_then(|k| {
                let dense = usize::try_from(k)
                    .ok()
                    .and_then(|i| self.memo.get(i).copied().flatten());
                dense.or_else(|| self.sparse_memo.get(&k).copied())
            })
            .ok_or_else(|| malformed(format!("memo key {key} was never stored")))?;
        self.push(value)
    }

    fn memo_put(&mut self, key: i64) -> Result<(), WalkError> {
        let value = self.top()?;
        let key = u64::try_from(key).map_err(|_| malformed("negative PUT argument"))?;
        let dense = usize::try_from(key)
            .ok()
            .filter(|&i| key <= self.facts.opcodes || i < self.memo.len());
        let fresh = match dense {
            Some(i) => {
                if i >= self.memo.len() {
                    self.memo
                        .try_reserve(i + 1 - self.memo.len())
                        .map_err(|_| WalkError::OutOfMemory)?;
                    self.memo.resize(i + 1, None);
                }
                // A key stored while beyond the dense part moves into it.
                self.memo[i].replace(value).is_none() && self.sparse_memo.remove(&key).is_none()
            }
            None => {
                self.sparse_memo
                    .try_reserve(1)
                    .map_err(|_| WalkError::OutOfMemory)?;
                self.sparse_memo.insert(key, value).is_none()
            }
        };
        self.memo_count += u64::from(fresh);
        self.facts.memo_size = self.facts.memo_size.max(key.saturating_add(1));
        Ok(())
    }

    /// One opcode at offset `at`; true at STOP.
    fn step(&mut self, op: u8, at: usize) -> Result<bool, WalkError> {
        self.facts.opcodes += 1;
        self.facts.opcode_protocol = self.facts.opcode_protocol.max(introduced_in(op));
        match op {
            MARK => {
                grow(&mut self.marks)?;
                self.marks.push(self.stack.len());
            }
            STOP => {
                self.pop()?;
                return Ok(true);
            }
            POP => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            POP_MARK => {
                let start = self.pop_mark()?;
                self.discard_from(start)?;
            }
            DUP => {
                let top = self.top()?;
                self.push(top)?;
            }

            // Atoms.
            NONE | NEWTRUE | NEWFALSE => self.push(Value::Plain)?,
            INT | LONG | FLOAT => {
                self.r.line()?;
                self.push(Value::Plain)?;
            }
            BININT1 | BININT2 | BININT | BINFLOAT => {
                let width = match op {
                    BININT1 => 1,
                    BININT2 => 2,
                    BININT => 4,
                    _ => 8,
                };
                self.r.take(width)?;
                self.push(Value::Plain)?;
            }
            LONG1 | LONG4 => {
                let len = if op == LONG1 {
                    self.r.uint(1)?
                } else {
                    let len = self.r.int4()?;
                    u64::try_from(len)
                        .map_err(|_| malformed("LONG pickle has negative byte count"))?
                };
                self.r.take(len)?;
                self.push(Value::Plain)?;
            }
            BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                let len = match op {
                    SHORT_BINBYTES => self.r.uint(1)?,
                    BINBYTES => self.r.uint(4)?,
                    _ => self.r.uint(8)?,
                };
                self.r.take(len)?;
                self.push(Value::Plain)?;
            }
            SHORT_BINUNICODE => {
                let len = self.r.uint(1)?;
                self.push_str(len, Encoding::Utf8, false)?;
            }
            BINUNICODE => {
                let len = self.r.uint(4)?;
                self.push_str(len, Encoding::Utf8, false)?;
            }
            BINUNICODE8 => {
                let len = self.r.uint(8)?;
                self.push_str(len, Encoding::Utf8, false)?;
            }
            SHORT_BINSTRING => {
                let len = self.r.uint(1)?;
                self.push_str(len, Encoding::Latin1, true)?;
            }
            BINSTRING => {
                let len = self.r.int4()?;
                let len = u64::try_from(len)
                    .map_err(|_| malformed("BINSTRING pickle has negative byte count"))?;
                self.push_str(len, Encoding::Latin1, true)?;
            }
            STRING => {
                // Quoted, with Python escapes: known text only without
                // escapes and in ASCII.
                let line_start = self.r.pos();
                let line = self.r.line()?;
                let quoted = line.len() >= 2
                    && line[0] == line[line.len() - 1]
                    && matches!(line[0], b'\'' | b'"');
                if !quoted {
                    return Err(malformed("the STRING opcode argument must be quoted"));
                }
                let inner = &line[1..line.len() - 1];
                let value = if inner.is_ascii() && !inner.contains(&b'\\') {
                    self.text(line_start + 1, inner.len(), Encoding::Latin1)?
                } else {
                    Value::Plain
                };
                self.push(value)?;
            }
            UNICODE => {
                // raw-unicode-escape: without a backslash, each byte is a
                // code point.
                let line_start = self.r.pos();
                let line = self.r.line()?;
                let value = if line.contains(&b'\\') {
                    Value::Plain
                } else {
                    self.text(line_start, line.len(), Encoding::Latin1)?
                };
                self.push(value)?;
            }
            NEXT_BUFFER => {
                self.facts.buffers += 1;
                self.push(Value::Unknown)?;
            }
            READONLY_BUFFER => {
                // The object stays, or becomes a read-only view of itself.
                self.top()?;
            }

            // Containers.
            EMPTY_TUPLE => self.make_tuple(self.stack.len())?,
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1 + 1);
                let start = self.stack.len().checked_sub(n).ok_or_else(underflow)?;
                self.make_tuple(start)?;
            }
            TUPLE => {
                let start = self.pop_mark()?;
                self.make_tuple(start)?;
            }
            EMPTY_LIST | EMPTY_DICT | EMPTY_SET => self.push(Value::Plain)?,
            LIST | FROZENSET => {
                let start = self.pop_mark()?;
                self.discard_from(start)?;
                self.push(Value::Plain)?;
            }
            DICT => {
                let start = self.pop_mark()?;
                if self.stack.len().saturating_sub(start) % 2 != 0 {
                    return Err(malformed("odd number of items for DICT"));
                }
                self.discard_from(start)?;
                self.push(Value::Plain)?;
            }
            APPEND => {
                let start = self.stack.len().checked_sub(1).ok_or_else(underflow)?;
                self.add_items(start, "extend", false)?;
            }
            APPENDS => {
                let start = self.pop_mark()?;
                self.add_items(start, "extend", false)?;
            }
            SETITEM => {
                let start = self.stack.len().checked_sub(2).ok_or_else(underflow)?;
                self.add_items(start, "__setitem__", true)?;
            }
            SETITEMS => {
                let start = self.pop_mark()?;
                self.add_items(start, "__setitem__", true)?;
            }
            ADDITEMS => {
                let start = self.pop_mark()?;
                self.add_items(start, "add", false)?;
            }

            // Globals and calls.
            GLOBAL => {
                let module = self.name_line("module")?;
                let name = self.name_line("global")?;
                let id = self.global(GlobalRef::Named { module, name })?;
                self.push(Value::Global(id))?;
            }
            STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let value = match (self.string(module), self.string(name)) {
                    (Some(module), Some(name)) => {
                        Value::Global(self.global(GlobalRef::Named { module, name })?)
                    }
                    _ => {
                        self.facts.dynamic_globals += 1;
                        Value::Unknown
                    }
                };
                self.push(value)?;
            }
            EXT1 | EXT2 | EXT4 => {
                let code = match op {
                    EXT1 => i32::from(self.r.small_uint(1)?),
                    EXT2 => i32::from(self.r.small_uint(2)?),
                    _ => self.r.int4()?,
                };
                if code <= 0 {
                    return Err(malformed("EXT specifies code <= 0"));
                }
                let id = self.global(GlobalRef::Extension(code))?;
                self.push(Value::Global(id))?;
            }
            REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let made = self.reduce(callable, args)?;
                self.push(made)?;
            }
            NEWOBJ | NEWOBJ_EX => {
                if op == NEWOBJ_EX {
                    self.pop()?;
                }
                self.pop()?;
                let cls = Self::callee(self.pop()?);
                self.call(Callee::Call(cls))?;
                self.push(Value::Made(cls))?;
            }
            OBJ => {
                let start = self.pop_mark()?;
                let cls = *self.stack.get(start).ok_or_else(underflow)?;
                let cls = Self::callee(cls);
                self.call(Callee::Call(cls))?;
                self.discard_from(start)?;
                self.push(Value::Made(cls))?;
            }
            INST => {
                let start = self.pop_mark()?;
                let module = self.name_line("module")?;
                let name = self.name_line("class")?;
                let id = self.global(GlobalRef::Named { module, name })?;
                self.call(Callee::Call(Some(id)))?;
                self.discard_from(start)?;
                self.push(Value::Made(Some(id)))?;
            }
            BUILD => {
                if self.stack.len() < self.fence() + 2 {
                    return Err(underflow());
                }
                self.pop()?;
                let target = self.top()?;
                self.method(target, "__setstate__")?;
            }
            PERSID => {
                let id = String::from_utf8_lossy(self.r.line()?).into_owned();
                grow(&mut self.facts.persistent_ids)?;
                self.facts.persistent_ids.push(Some(id));
                self.push(Value::Unknown)?;
            }
            BINPERSID => {
                let pid = self.pop()?;
                let id = self.string(pid);
                grow(&mut self.facts.persistent_ids)?;
                self.facts.persistent_ids.push(id);
                self.push(Value::Unknown)?;
            }

            // Memo.
            GET => {
                let key = parse_index(self.r.line()?)?;
                self.memo_get(key)?;
            }
            BINGET => {
                let key = i64::from(self.r.small_uint(1)?);
                self.memo_get(key)?;
            }
            LONG_BINGET => {
                let key = i64::try_from(self.r.uint(4)?).unwrap_or(i64::MAX);
                self.memo_get(key)?;
            }
            PUT => {
                let key = parse_index(self.r.line()?)?;
                self.memo_put(key)?;
            }
            BINPUT => {
                let key = i64::from(self.r.small_uint(1)?);
                self.memo_put(key)?;
            }
            LONG_BINPUT => {
                let key = i64::try_from(self.r.uint(4)?).unwrap_or(i64::MAX);
                self.memo_put(key)?;
            }
            MEMOIZE => {
                let key = i64::try_from(self.memo_count).map_err(|_| WalkError::OutOfMemory)?;
                self.memo_put(key)?;
            }

            // Framing.
            PROTO => {
                let proto = self.r.u8()?;
                if at != 0 {
                    return Err(malformed("PROTO is not the first opcode"));
                }
                if proto > crate::output::opcodes::HIGHEST_PROTOCOL {
                    return Err(malformed(format!("unsupported pickle protocol: {proto}")));
                }
                self.facts.proto = Some(proto);
            }
            FRAME => {
                if self.frame_end.is_some() {
                    return Err(malformed(
                        "a new frame begins before the end of the current frame",
                    ));
                }
                let len = self.r.uint(8)?;
                if len > self.r.remaining() as u64 {
                    return Err(WalkError::Truncated);
                }
                self.frame_end =
                    Some(self.r.pos() + usize::try_from(len).map_err(|_| WalkError::Truncated)?);
                self.facts.frames += 1;
            }
            _ => return Err(malformed(format!("invalid opcode {op:#04x}"))),
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(facts: &Facts) -> Vec<String> {
        facts
            .globals
            .entries
            .iter()
            .map(|(g, count)| match g {
                GlobalRef::Named { module, name } => format!("{module}.{name} x{count}"),
                GlobalRef::Extension(code) => format!("ext {code} x{count}"),
                GlobalRef::Attribute { base, name } => format!("{base}/{name} x{count}"),
            })
            .collect()
    }

    fn malformed_message(data: &[u8]) -> String {
        match walk(data) {
            Err((WalkError::Malformed(message), _)) => message,
            Err((WalkError::Truncated, at)) => format!("truncated at {at}"),
            Err((WalkError::OutOfMemory, _)) => "out of memory".into(),
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn stack_global_operands_come_back_from_the_memo() {
        // 'os' and 'system' memoized, fetched back with BINGET, then called.
        let data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x02ls\x85R.";
        let facts = walk(data).unwrap();
        assert_eq!(names(&facts), ["os.system x1"]);
        assert_eq!(facts.calls.entries.len(), 1);
        assert!(facts.calls.entries[0].0 == Callee::Call(Some(0)));
        assert_eq!(
            (facts.proto, facts.size, facts.opcodes, facts.memo_size),
            (Some(4), data.len(), 12, 2)
        );
    }

    #[test]
    fn operands_made_at_load_time_are_not_statically_known() {
        // STACK_GLOBAL on the result of a call: the walk cannot know it.
        let data = b"\x80\x04\x8c\x01m\x8c\x01f\x93)R\x8c\x01n\x93)R.";
        let facts = walk(data).unwrap();
        assert_eq!(facts.dynamic_globals, 1);
        assert!(facts
            .calls
            .entries
            .iter()
            .any(|(c, _)| *c == Callee::Call(None)));
    }

    #[test]
    fn getattr_with_known_operands_is_an_attribute_global() {
        let data = b"cbuiltins\ngetattr\ncpathlib\nPath\nVwrite_text\n\x86R.";
        let facts = walk(data).unwrap();
        assert_eq!(
            names(&facts),
            ["builtins.getattr x1", "pathlib.Path x1", "1/write_text x1"]
        );
        assert!(facts.calls.entries.is_empty());
    }

    #[test]
    fn reconstructor_calls_its_base_and_builds_an_instance_of_its_class() {
        let data = b"ccopy_reg\n_reconstructor\n(cuuid\nUUID\nc__builtin__\nobject\nNtR}b.";
        let facts = walk(data).unwrap();
        let calls: Vec<Callee> = facts.calls.entries.iter().map(|(c, _)| *c).collect();
        assert!(
            calls
                == [
                    Callee::Call(Some(0)),
                    Callee::Call(Some(2)),
                    Callee::Instance(Some(1), "__setstate__")
                ]
        );
    }

    #[test]
    fn methods_of_globals_themselves_are_reported() {
        let data = b"cos\nenviron\nVPATH\nV/tmp\ns.";
        let facts = walk(data).unwrap();
        assert!(facts.calls.entries[0].0 == Callee::Global(0, "__setitem__"));
    }

    #[test]
    fn extension_codes_and_persistent_ids_are_counted() {
        let data = b"\x80\x02\x82\x05\x83\x00\x01\x82\x05\x86Pfile-1\n\x8c\x01xQ\x86.";
        let facts = walk(data).unwrap();
        assert_eq!(names(&facts), ["ext 5 x2", "ext 256 x1"]);
        assert_eq!(
            facts.persistent_ids,
            [Some("file-1".to_owned()), Some("x".to_owned())]
        );
        assert_eq!(malformed_message(b"\x82\x00."), "EXT specifies code <= 0");
    }

    #[test]
    fn every_prefix_of_a_pickle_is_truncated() {
        let data = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x01a\x94e.";
        assert!(walk(data).is_ok());
        for end in 0..data.len() {
            assert!(
                matches!(walk(&data[..end]), Err((WalkError::Truncated, _))),
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn huge_length_fields_do_not_allocate() {
        for op in [BINBYTES8, BINUNICODE8, BYTEARRAY8, FRAME] {
            let mut data = vec![PROTO, 5, op];
            data.extend_from_slice(&(1u64 << 60).to_le_bytes());
            assert!(matches!(walk(&data), Err((WalkError::Truncated, 2))));
        }
        assert_eq!(
            malformed_message(b"\x8b\xff\xff\xff\xff."),
            "LONG pickle has negative byte count"
        );
    }

    #[test]
    fn marks_fence_the_stack_as_in_the_c_unpickler() {
        assert_eq!(malformed_message(b"N(R."), "unpickling stack underflow");
        assert_eq!(malformed_message(b"N(N."), "ok");
        assert_eq!(malformed_message(b"(N0."), "unpickling stack underflow");
        assert_eq!(malformed_message(b"N(0."), "ok"); // POP at a mark drops the mark
        assert_eq!(malformed_message(b"t."), "could not find MARK");
        assert_eq!(
            malformed_message(b"}(K\x01u."),
            "odd number of items for SETITEMS"
        );
    }

    #[test]
    fn memo_and_protocol_errors() {
        assert_eq!(malformed_message(b"h\x03."), "memo key 3 was never stored");
        assert_eq!(malformed_message(b"Np-1\n."), "negative PUT argument");
        assert_eq!(malformed_message(b"Np1_0\n0g 10 \n."), "ok");
        // Stored beyond the dense part, then the dense part grows past it.
        assert_eq!(
            malformed_message(b"Nr\x09\x00\x00\x000NNNNNNNNNNr\x0a\x00\x00\x00h\x09\x94h\x02."),
            "ok"
        );
        assert_eq!(
            malformed_message(b"N\x80\x04."),
            "PROTO is not the first opcode"
        );
        assert_eq!(
            malformed_message(b"\x80\x06N."),
            "unsupported pickle protocol: 6"
        );
        assert_eq!(malformed_message(b"\xff"), "invalid opcode 0xff");
        let facts = walk(b"\x80\x02Nr\xff\xff\xff\x7f.").unwrap();
        assert_eq!(facts.memo_size, 1 << 31);
    }

    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        reason = "random bytes and positions: truncation is the point"
    )]
    fn random_and_mutated_input_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seed = b"\x80\x04\x95\x2c\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94]\x94(K\x01\x8c\x01a\x94h\x00e\x85R\x94}\x94(h\x01K\x02ub.";
        assert!(walk(seed).is_ok());
        for round in 0..200_000 {
            let data: Vec<u8> = if round % 2 == 0 {
                let mut data = seed.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % data.len();
                    data[at] = next() as u8;
                }
                data
            } else {
                (0..next() % 48).map(|_| next() as u8).collect()
            };
            let _ = walk(&data);
        }
    }

    #[test]
    fn tuple_depth_and_trailing_data() {
        let mut data = b"\x80\x04)".to_vec();
        data.extend(std::iter::repeat_n(TUPLE1, 100_000));
        data.extend_from_slice(b".N.");
        let facts = walk(&data).unwrap();
        assert_eq!((facts.tuple_depth, facts.size), (100_001, data.len() - 2));
    }
}
