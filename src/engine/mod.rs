//! Layer 2: the pickling engine. It owns the output, the memo and the work
//! stack, and runs the stack until the object is written. What to write for
//! each type is the business of the layer above, which gives the engine its
//! entry points when it builds it (`Dispatch`): the engine calls down only.

pub mod frames;
pub mod globals;
pub mod memo;
pub mod path;
pub mod reduce;
pub mod scratch;
pub mod state;
pub mod trace;

use ahash::AHashMap;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::output::opcodes::*;
use crate::output::Writer;
use frames::{Frame, SaveCtx};
use memo::Memo;
pub use state::PyState;

pub const BATCHSIZE: usize = 1000;
const FAST_NESTING_LIMIT: usize = 50;

/// Whether CPython has readied `tp` (`PyType_Ready`). A static type it
/// never readied (3.11's `line_iterator`, what `co_lines()` returns) has no
/// MRO yet: `issubclass`, an ABC check or `__mro__` on it crashes the
/// interpreter, so nothing Python-level may examine it before this check.
pub fn type_is_ready(tp: &Bound<'_, pyo3::types::PyType>) -> bool {
    // SAFETY: `tp` is a live type object (we hold it); `tp_flags` is a plain
    // field of every type object, ready or not.
    let flags = unsafe { (*tp.as_type_ptr()).tp_flags };
    flags & pyo3::ffi::Py_TPFLAGS_READY != 0
}

/// Callables a `Pickler` (or a subclass of it) brings to a dump.
#[derive(Default)]
pub struct Hooks<'py> {
    pub persistent_id: Option<Bound<'py, PyAny>>,
    pub reducer_override: Option<Bound<'py, PyAny>>,
    /// A private dispatch table; `None` means `copyreg.dispatch_table`.
    pub dispatch_table: Option<Bound<'py, PyAny>>,
    pub buffer_callback: Option<Bound<'py, PyAny>>,
}

/// An object as a map key, by address. The key holds the object: a type
/// or code object may lose its last other reference during the dump (an
/// instance's `__class__` reassigned, a function's `__code__`), and another
/// one born at its address must not inherit its entry. Lookups go by bare
/// address (`&usize`), without touching the reference count.
pub struct ObjectKey<'py> {
    addr: usize,
    _held: Bound<'py, PyAny>,
}

impl<'py> ObjectKey<'py> {
    pub fn new(obj: &Bound<'py, PyAny>) -> Self {
        ObjectKey {
            addr: obj.as_ptr() as usize,
            _held: obj.clone(),
        }
    }
}

impl std::hash::Hash for ObjectKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr.hash(state); // as `usize` hashes, for `Borrow<usize>`
    }
}

impl PartialEq for ObjectKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl Eq for ObjectKey<'_> {}

impl std::borrow::Borrow<usize> for ObjectKey<'_> {
    fn borrow(&self) -> &usize {
        &self.addr
    }
}

/// The entry points of the layer above (the savers), given when an engine
/// is built: saving one object, dispatched on its type, and advancing a
/// container's frame. The engine calls them for the object a dump starts
/// with, for the `Save` and container frames its run loop pops, and for the
/// names of a global; the savers' own hot paths (a container's items) call
/// their `save` directly.
#[derive(Clone, Copy)]
pub struct Dispatch<'py> {
    pub save: fn(&mut Engine<'py>, &Bound<'py, PyAny>, SaveCtx) -> PyResult<()>,
    pub step_container: fn(&mut Engine<'py>, Frame<'py>) -> PyResult<()>,
}

/// How `object.__reduce_ex__` sees the instances of a class that leaves
/// pickling to `object`, for those written natively; decided once per class
/// per dump (see `Caches::instance_layouts`).
pub struct InstanceLayout<'py> {
    pub cls: Bound<'py, PyAny>,
    /// `__slotnames__`, when the class has slots.
    pub slotnames: Option<Bound<'py, pyo3::types::PyTuple>>,
    pub has_dict: bool,
    /// The class's version tag when the layout was decided. CPython gives a
    /// class a new one whenever it or a base is modified (a `__reduce__`
    /// added mid-dump, say), which calls for a new decision.
    pub version_tag: std::os::raw::c_uint,
}

/// Object address -> `(module, name)` of a class's module-level sentinels.
pub type SentinelNames<'py> = AHashMap<usize, (Bound<'py, PyAny>, Bound<'py, PyAny>)>;

/// Per-dump answers about types and code objects, by address.
#[derive(Default)]
pub struct Caches<'py> {
    /// Decisions of the instance fast path, made after every other way of
    /// saving the type was ruled out (so a layout here also says that none
    /// applies: `save_reducible` goes straight to it).
    pub instance_layouts: AHashMap<ObjectKey<'py>, Option<std::rc::Rc<InstanceLayout<'py>>>>,
    /// Reducers from `turbodill._reducers` (the long tail).
    pub long_tail_reducers: AHashMap<ObjectKey<'py>, Option<Bound<'py, PyAny>>>,
    /// State setters for instances whose class delegates attribute access
    /// (see `savers::Engine::set_state_directly`).
    pub direct_state_setters: AHashMap<ObjectKey<'py>, Option<Bound<'py, PyAny>>>,
    /// Module-level stateless instances of a class: object address ->
    /// `(module, name)`, by class. The addresses come from an index that
    /// may be stale (see `savers::instance::sentinel_name`).
    pub sentinels: AHashMap<ObjectKey<'py>, SentinelNames<'py>>,
    /// The global names each code object reads.
    pub code_global_names: AHashMap<ObjectKey<'py>, Vec<Bound<'py, pyo3::types::PyString>>>,
    /// One fresh copy of each function and code name, by value (see
    /// `savers::functions::name_copy`).
    pub name_copies: AHashMap<String, Bound<'py, pyo3::types::PyString>>,
    /// The same copies by original string object, which is met again and
    /// again (interned names): a lookup without reading the text.
    pub name_copies_by_object: AHashMap<ObjectKey<'py>, Bound<'py, pyo3::types::PyString>>,
}

#[derive(Clone, Default)]
pub struct Options {
    pub protocol: u8,
    pub fix_imports: bool,
    pub fast: bool,
    /// dill's `byref`: classes from `__main__` by reference.
    pub byref: bool,
    /// dill's `fmode` for open files (see `turbodill._reducers`).
    pub fmode: u8,
    /// Sets and frozensets in a canonical order (for hashing payloads).
    pub deterministic: bool,
}

pub struct Engine<'py> {
    py: Python<'py>,
    dispatch: Dispatch<'py>,
    st: &'py PyState,
    out: Writer<'py>,
    memo: Memo,
    proto: u8,
    /// Binary opcodes (protocol >= 1).
    bin: bool,
    fix_imports: bool,
    fast: bool,
    byref: bool,
    fmode: u8,
    deterministic: bool,
    hooks: Hooks<'py>,
    /// Objects the layer above has its loader resolve, written as the
    /// persistent id given with each (see `write_as_persistent_id`).
    pinned_pids: Vec<(Bound<'py, PyAny>, &'static str)>,
    /// Modules whose functions and classes go by value for this engine
    /// only, besides `__main__` and those registered by value.
    by_value_module_names: Vec<String>,
    /// Memoize with MEMOIZE (protocol >= 4), which puts at the unpickler's
    /// memo count, rather than with PUT and an explicit index (see
    /// `memoize_with_explicit_indices`).
    memoize_opcode: bool,
    /// `file.write` when dumping to a file; `None` for `dumps`.
    file_write: Option<Bound<'py, PyAny>>,
    stack: Vec<Frame<'py>>,
    /// Made on first use: most small dumps never need them.
    caches: Option<Box<Caches<'py>>>,
    fast_nesting: usize,
    fast_memo: Option<ahash::AHashSet<usize>>,
    /// Reductions whose arguments, items or state are still being saved
    /// (see `reduce::enter_reduction`).
    open_reductions: usize,
    /// How many container frames are being stepped inside one another on
    /// the Rust stack (see `enter_inline_step`).
    inline_depth: u32,
    /// The memo came from the thread's scratch and goes back there.
    owns_scratch_memo: bool,
    /// While tracing: the path segments of the container frames being
    /// stepped in hand (off the stack), outermost first.
    traced_segments: Vec<Option<String>>,
    /// Where non-ASCII strs are encoded to UTF-8 (one allocation per dump).
    utf8_scratch: Vec<u8>,
    /// The first memo index of the current entry of a series whose pickles
    /// may fail to load one by one (see `start_entry`).
    entry_floor: Option<u32>,
    /// In such a series: the memo indices of objects the loader finds by
    /// name (globals, the code constructor).
    found_by_name: ahash::AHashSet<u32>,
}

impl<'py> Engine<'py> {
    /// An engine for one dump. `memo` is `None` to use (and afterwards
    /// return) this thread's scratch memo; a `Pickler` passes its own.
    pub fn new(
        py: Python<'py>,
        opts: Options,
        hooks: Hooks<'py>,
        memo: Option<Memo>,
        file_write: Option<Bound<'py, PyAny>>,
        dispatch: Dispatch<'py>,
    ) -> PyResult<Self> {
        let (memo, owns_scratch_memo) = match memo {
            Some(m) => (m, false),
            None => (scratch::take_memo(), true),
        };
        Ok(Engine {
            py,
            dispatch,
            st: PyState::get(py)?,
            out: Writer::new(py),
            owns_scratch_memo,
            memo,
            proto: opts.protocol,
            bin: opts.protocol >= 1,
            fix_imports: opts.fix_imports,
            fast: opts.fast,
            byref: opts.byref,
            fmode: opts.fmode,
            deterministic: opts.deterministic,
            hooks,
            pinned_pids: Vec::new(),
            entry_floor: None,
            found_by_name: ahash::AHashSet::new(),
            by_value_module_names: Vec::new(),
            memoize_opcode: opts.protocol >= 4,
            file_write,
            stack: Vec::new(),
            caches: None,
            fast_nesting: 0,
            utf8_scratch: Vec::new(),
            inline_depth: 0,
            open_reductions: 0,
            fast_memo: None,
            traced_segments: Vec::new(),
        })
    }

    /// Write a whole pickle of `obj`: PROTO, the object, STOP.
    pub fn dump(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        if self.proto >= 2 {
            self.out.write(&[PROTO, self.proto]);
            if self.proto >= 4 {
                self.out.set_framing(true);
            }
        }
        let result = self
            .save_dispatched(obj, SaveCtx::default())
            .and_then(|()| self.run());
        if let Err(err) = result {
            let err = path::annotate(self, err);
            self.stack.clear();
            self.open_reductions = 0;
            self.out.set_framing(false);
            return Err(err);
        }
        self.out.write_byte(STOP);
        self.out.commit_frame();
        self.out.set_framing(false);
        self.flush_to_file()
    }

    /// Run the work stack to completion.
    fn run(&mut self) -> PyResult<()> {
        while let Some(frame) = self.stack.pop() {
            self.reserve_stack()?;
            self.step(frame)?;
        }
        Ok(())
    }

    /// Advance one frame taken off the work stack: the engine's own here,
    /// objects and containers through the layer above. Inlined into the run
    /// loop: a frame taken off the stack is moved once, into its handler.
    #[inline(always)]
    pub fn step(&mut self, frame: Frame<'py>) -> PyResult<()> {
        match frame {
            Frame::Save(obj, ctx) => self.save_dispatched(&obj, ctx),
            Frame::Write(op) => {
                self.out.write_byte(op);
                Ok(())
            }
            Frame::MemoAnonymous => {
                self.memo_put_anonymous();
                Ok(())
            }
            Frame::ReduceTail(t) => self.step_reduce_tail(t),
            Frame::LeaveReduction => {
                self.open_reductions -= 1;
                Ok(())
            }
            Frame::Deferred(work) => work(self),
            Frame::FastLeave(addr) => {
                self.fast_leave(addr);
                Ok(())
            }
            Frame::List(_)
            | Frame::Dict(_)
            | Frame::Items(_)
            | Frame::Set(_)
            | Frame::Tuple(_)
            | Frame::FrozenSet(_) => (self.dispatch.step_container)(self, frame),
        }
    }

    /// Save `obj` through the layer above (see `Dispatch`).
    pub fn save_dispatched(&mut self, obj: &Bound<'py, PyAny>, ctx: SaveCtx) -> PyResult<()> {
        (self.dispatch.save)(self, obj, ctx)
    }

    /// Keep room for the frames one step pushes, growing the stack with a
    /// fallible allocation: a graph too big for memory is a MemoryError,
    /// not an abort of the interpreter.
    #[inline]
    pub fn reserve_stack(&mut self) -> PyResult<()> {
        const HEADROOM: usize = 64;
        if self.stack.capacity() - self.stack.len() < HEADROOM {
            let more = self.stack.len().max(HEADROOM);
            self.stack.try_reserve(more).map_err(|_| {
                pyo3::exceptions::PyMemoryError::new_err(
                    "out of memory for the pickler's work stack",
                )
            })?;
        }
        Ok(())
    }

    pub fn caches(&mut self) -> &mut Caches<'py> {
        self.caches.get_or_insert_with(Default::default)
    }

    /// Queue frames to run in the order given, after the current work.
    pub fn queue<I>(&mut self, frames: I)
    where
        I: IntoIterator<Item = Frame<'py>>,
        I::IntoIter: DoubleEndedIterator,
    {
        self.stack.extend(frames.into_iter().rev());
    }

    /// The pickle, for `dumps` (the output buffer itself, no copy).
    pub fn into_bytes(mut self) -> PyResult<Bound<'py, PyBytes>> {
        self.out.take_bytes()
    }

    /// Take the output of the last dump, leaving the engine ready for the
    /// next one (the memo carries over).
    pub fn take_output(&mut self) -> PyResult<Bound<'py, PyBytes>> {
        self.out.take_bytes()
    }

    /// Where `discard_failed_dump` rolls the memo back to.
    pub fn memo_checkpoint(&self) -> memo::MemoCheckpoint {
        self.memo.checkpoint()
    }

    /// Forget a failed dump: its output and its memo entries. (The per-dump
    /// caches hold their keys, so they stay valid.)
    pub fn discard_failed_dump(&mut self, checkpoint: memo::MemoCheckpoint) {
        self.out.discard();
        self.memo.rollback(checkpoint);
        let next = self.memo.next_index();
        self.found_by_name.retain(|&idx| idx < next);
    }

    /// Write `obj`, wherever it is met, as the persistent id `pid`, which
    /// the loader of the layer above resolves (the object is then never
    /// memoized). A function whose globals are such an object gets them
    /// whole at load time: none of its globals is written. Each time, the
    /// id is a new str, so it is written whole (never fetched back from the
    /// memo of an earlier pickle the loader may have skipped).
    pub fn write_as_persistent_id(&mut self, obj: Bound<'py, PyAny>, pid: &'static str) {
        self.pinned_pids.push((obj, pid));
    }

    /// The persistent id `obj` is to be written as (see
    /// `write_as_persistent_id`).
    #[inline]
    pub fn pinned_persistent_id(&self, obj: &Bound<'py, PyAny>) -> Option<&'static str> {
        if self.pinned_pids.is_empty() {
            return None;
        }
        self.pinned_pids
            .iter()
            .find(|(pinned, _)| pinned.is(obj))
            .map(|&(_, pid)| pid)
    }

    /// Save the functions and classes of module `name` by value in this
    /// engine's dumps.
    pub fn pickle_by_value(&mut self, name: String) {
        self.by_value_module_names.push(name);
    }

    /// Whether `pickle_by_value` was given module `name`.
    pub fn pickles_by_value(&self, name: &str) -> bool {
        self.by_value_module_names.iter().any(|n| n == name)
    }

    /// The next dump is an entry of a series whose pickles the loader may
    /// fail to load one by one, with the memo shared (a session's entries).
    /// An earlier entry's objects that are only incidentally shared (str,
    /// bytes, globals, modules by reference, builtin functions and methods,
    /// the code constructor) are then
    /// written again rather than fetched from its part of the memo, which a
    /// loader that failed on that entry lacks: a dict of strs must not fail
    /// because another entry's class could not be imported.
    pub fn start_entry(&mut self) {
        self.entry_floor = Some(self.memo.next_index());
    }

    /// Whether a memo hit at `idx` on `obj` is to be written again (see
    /// `start_entry`).
    #[inline]
    fn refetch(&self, obj: &Bound<'py, PyAny>, idx: u32) -> bool {
        self.entry_floor.is_some_and(|floor| idx < floor) && self.incidentally_shared(obj, idx)
    }

    #[cold]
    fn incidentally_shared(&self, obj: &Bound<'py, PyAny>, idx: u32) -> bool {
        use pyo3::types::{PyBytes, PyModule, PyString};
        let tp = obj.get_type_ptr();
        // Builtin functions and the methods of builtin types are static
        // objects, found by name (as `getattr(dict, 'get')`, say).
        let found_by_name_type = [
            &raw mut pyo3::ffi::PyCFunction_Type,
            &raw mut pyo3::ffi::PyMethodDescr_Type,
            &raw mut pyo3::ffi::PyWrapperDescr_Type,
            &raw mut pyo3::ffi::PyClassMethodDescr_Type,
        ]
        .contains(&tp);
        if obj.is_exact_instance_of::<PyString>()
            || obj.is_exact_instance_of::<PyBytes>()
            || found_by_name_type
            || self.found_by_name.contains(&idx)
        {
            return true;
        }
        // A module by reference (those pickled by value keep their identity
        // across entries).
        let Ok(module) = obj.cast_exact::<PyModule>() else {
            return false;
        };
        module.name().is_ok_and(|name| {
            name.to_str()
                .is_ok_and(|n| self.module_by_reference(obj, n).unwrap_or(false))
        })
    }

    /// `memo_put` of an object the loader finds by name (a global).
    pub fn memo_put_found_by_name(&mut self, obj: &Bound<'py, PyAny>) {
        self.memo_put(obj);
        if self.entry_floor.is_some() && !self.fast {
            self.found_by_name.insert(self.memo.next_index() - 1);
        }
    }

    /// Memoize with PUT and explicit indices, even at protocol 4 and above,
    /// for a loader that may skip a pickle of a series (its memo count no
    /// longer matches then, but explicit indices still do).
    pub fn memoize_with_explicit_indices(&mut self) {
        self.memoize_opcode = false;
    }

    /// The memo, for a `Pickler` that keeps it between dumps.
    pub fn take_memo(&mut self) -> Memo {
        std::mem::take(&mut self.memo)
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        if self.owns_scratch_memo {
            scratch::give_back_memo(std::mem::take(&mut self.memo));
        }
    }
}

impl<'py> Engine<'py> {
    // ---- the dump's settings ---------------------------------------------

    #[inline]
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// The Python objects looked up once per interpreter.
    #[inline]
    pub fn st(&self) -> &'py PyState {
        self.st
    }

    #[inline]
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// Binary opcodes (protocol >= 1)?
    #[inline]
    pub fn is_binary(&self) -> bool {
        self.bin
    }

    /// Fast mode: nothing memoized, cycles checked by address.
    #[inline]
    pub fn in_fast_mode(&self) -> bool {
        self.fast
    }

    /// dill's `byref`: classes from `__main__` by reference.
    #[inline]
    pub fn byref(&self) -> bool {
        self.byref
    }

    /// dill's `fmode` for open files.
    #[inline]
    pub fn fmode(&self) -> u8 {
        self.fmode
    }

    /// Sets and frozensets in a canonical order?
    #[inline]
    pub fn deterministic(&self) -> bool {
        self.deterministic
    }

    /// The callables the `Pickler` brought to this dump.
    #[inline]
    pub fn hooks(&self) -> &Hooks<'py> {
        &self.hooks
    }

    // ---- work stack ------------------------------------------------------

    /// How many frames are on the work stack: a saver compares before and
    /// after saving a child to tell whether the child queued work.
    #[inline]
    pub fn stack_depth(&self) -> usize {
        self.stack.len()
    }

    /// Put a frame on the work stack, to run next.
    #[inline]
    pub fn push_frame(&mut self, frame: Frame<'py>) {
        self.stack.push(frame);
    }

    /// Put a frame at `depth`, beneath the work queued since the stack was
    /// that deep, to run once that work is done.
    #[inline]
    pub fn park_frame(&mut self, depth: usize, frame: Frame<'py>) {
        self.stack.insert(depth, frame);
    }

    /// `park_frame` for several frames; the last given runs first.
    pub fn park_frames<I>(&mut self, depth: usize, frames: I)
    where
        I: IntoIterator<Item = Frame<'py>>,
    {
        self.stack.splice(depth..depth, frames);
    }

    /// Count one more container frame stepped inside another on the Rust
    /// stack, unless `max` are already: then the caller queues it instead.
    #[inline]
    pub fn enter_inline_step(&mut self, max: u32) -> bool {
        if self.inline_depth >= max {
            return false;
        }
        self.inline_depth += 1;
        true
    }

    #[inline]
    pub fn leave_inline_step(&mut self) {
        self.inline_depth -= 1;
    }

    /// While tracing: the path segment of a container frame being stepped
    /// in hand, until `leave_traced_segment`.
    pub fn enter_traced_segment(&mut self, segment: Option<String>) {
        self.traced_segments.push(segment);
    }

    pub fn leave_traced_segment(&mut self) {
        self.traced_segments.pop();
    }

    /// The buffer non-ASCII strs are encoded in, reused across the dump:
    /// give it back with `keep_utf8_scratch`.
    #[inline]
    pub fn take_utf8_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.utf8_scratch)
    }

    #[inline]
    pub fn keep_utf8_scratch(&mut self, scratch: Vec<u8>) {
        self.utf8_scratch = scratch;
    }

    // ---- memo ------------------------------------------------------------

    /// The memo index of `obj`, if it was memoized.
    #[inline]
    pub fn memo_index_of(&self, obj: &Bound<'py, PyAny>) -> Option<u32> {
        self.memo.get(obj).filter(|&idx| !self.refetch(obj, idx))
    }

    #[inline]
    pub fn memo_put(&mut self, obj: &Bound<'py, PyAny>) {
        if self.fast {
            return;
        }
        let idx = self.memo.put(obj);
        self.write_put(idx);
    }

    /// `obj`'s memo index, or where `memo_put_vacant` will record it.
    #[inline]
    pub fn memo_lookup(&self, obj: &Bound<'py, PyAny>) -> Result<u32, memo::Vacancy> {
        match self.memo.lookup(obj) {
            Ok(idx) if self.refetch(obj, idx) => Err(memo::Vacancy::unplaced(obj)),
            found => found,
        }
    }

    /// A container of `items` items is about to be saved (see
    /// `Memo::expect_entries`).
    #[inline]
    pub fn memo_expect_entries(&mut self, items: usize) {
        self.memo.expect_entries(items);
    }

    /// `memo_put` of an object whose `memo_lookup` missed just before,
    /// with nothing memoized in between.
    #[inline]
    pub fn memo_put_vacant(&mut self, obj: &Bound<'py, PyAny>, vacancy: memo::Vacancy) {
        if self.fast {
            return;
        }
        let idx = self.memo.put_vacant(obj, vacancy);
        self.write_put(idx);
    }

    #[inline]
    pub fn memo_put_anonymous(&mut self) {
        if self.fast {
            return;
        }
        let idx = self.memo.put_anonymous();
        self.write_put(idx);
    }

    #[inline]
    fn write_put(&mut self, idx: u32) {
        if self.memoize_opcode {
            self.out.write_byte(MEMOIZE);
        } else if !self.bin {
            self.out
                .write(format!("{}{}\n", PUT as char, idx).as_bytes());
        } else if idx < 256 {
            self.out.write(&[BINPUT, idx.to_le_bytes()[0]]);
        } else {
            self.out.write_op_len(LONG_BINPUT, u64::from(idx), 4);
        }
    }

    #[inline]
    pub fn memo_get(&mut self, idx: u32) {
        if !self.bin {
            self.out
                .write(format!("{}{}\n", GET as char, idx).as_bytes());
        } else if idx < 256 {
            self.out.write(&[BINGET, idx.to_le_bytes()[0]]);
        } else {
            self.out.write_op_len(LONG_BINGET, u64::from(idx), 4);
        }
    }

    /// Fetch `obj`, which must already be memoized, from the memo.
    pub fn memo_get_existing(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        match self.memo.get(obj) {
            Some(idx) => {
                self.memo_get(idx);
                Ok(())
            }
            None => Err(crate::errors::pickling_error(
                self.py,
                format!(
                    "internal error: {} was expected in the memo",
                    crate::pyutil::repr_of(obj)
                ),
            )),
        }
    }

    // ---- output ----------------------------------------------------------

    #[inline]
    pub fn write_byte(&mut self, byte: u8) {
        self.out.write_byte(byte);
    }

    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        self.out.write(bytes);
    }

    /// An opcode and its little-endian length argument of `width` bytes.
    #[inline]
    pub fn write_op_len(&mut self, op: u8, len: u64, width: usize) {
        self.out.write_op_len(op, len, width);
    }

    /// Called before each object: commit a full frame and, when writing to a
    /// file, hand the finished bytes over.
    #[inline]
    pub fn opcode_boundary(&mut self) -> PyResult<()> {
        if self.out.opcode_boundary() {
            self.frame_committed()?;
        }
        Ok(())
    }

    /// A frame is complete: hand it to the file, or stop here if memory ran
    /// out for the output (rather than walk the rest of the graph for
    /// nothing).
    #[cold]
    fn frame_committed(&mut self) -> PyResult<()> {
        if self.file_write.is_some() || self.out.is_lost() {
            self.flush_to_file()?;
        }
        Ok(())
    }

    pub fn flush_to_file(&mut self) -> PyResult<()> {
        if self.out.is_lost() {
            return self.out.take_bytes().map(drop); // the MemoryError
        }
        if let Some(write) = &self.file_write {
            if self.out.len() > 0 {
                write.call1((self.out.take_bytes()?,))?;
            }
        }
        Ok(())
    }

    /// Write an opcode header and its payload. `payload` is the Python
    /// object holding `data`, when one exists, so a large payload can be
    /// passed to `file.write` without a copy.
    pub fn write_payload(
        &mut self,
        header: &[u8],
        data: &[u8],
        payload: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        if Writer::bypasses_frame(data.len()) && self.file_write.is_some() {
            self.out.write_unframed_header(header);
            self.flush_to_file()?;
            let write = self.file_write.as_ref().expect("checked above");
            match payload {
                Some(obj) => write.call1((obj,))?,
                None => write.call1((PyBytes::new(self.py, data),))?,
            };
            Ok(())
        } else {
            self.out.write_payload(header, data);
            Ok(())
        }
    }

    // ---- fast mode -------------------------------------------------------

    /// Fast mode keeps no memo, so deep nesting is checked for cycles by
    /// address instead (as `_pickle.c` does).
    pub fn fast_enter(&mut self, obj: &Bound<'py, PyAny>) -> PyResult<()> {
        self.fast_nesting += 1;
        if self.fast_nesting >= FAST_NESTING_LIMIT {
            let addr = obj.as_ptr() as usize;
            if !self
                .fast_memo
                .get_or_insert_with(Default::default)
                .insert(addr)
            {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "fast mode: can't pickle cyclic objects including object type {} at {:#x}",
                    crate::pyutil::type_name(obj),
                    addr
                )));
            }
        }
        self.stack.push(Frame::FastLeave(obj.as_ptr() as usize));
        Ok(())
    }

    pub fn fast_leave(&mut self, addr: usize) {
        if self.fast_nesting >= FAST_NESTING_LIMIT {
            if let Some(memo) = &mut self.fast_memo {
                memo.remove(&addr);
            }
        }
        self.fast_nesting -= 1;
    }
}
