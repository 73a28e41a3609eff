//! What a walk found: the globals the payload names, the calls its opcodes
//! make, and its counters. Plain Rust; `mod.rs` hands it to Python, where
//! names are mapped (`fix_imports`, extension codes) and judged.

use ahash::AHashMap;
use std::hash::Hash;

use super::WalkError;

pub type GlobalId = u32;

/// A global as the payload names it (raw: before `fix_imports` mapping).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum GlobalRef {
    /// GLOBAL, STACK_GLOBAL or INST: a module and a (qualified) name.
    Named { module: String, name: String },
    /// EXT1/EXT2/EXT4: a `copyreg` extension code.
    Extension(i32),
    /// `getattr(base, name)` reduced with both operands known: the lookup
    /// STACK_GLOBAL makes for a dotted name, so it is reported as a global.
    Attribute { base: GlobalId, name: String },
}

/// What an opcode invokes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callee {
    /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ or INST calling a global (`None`:
    /// a callable the walk cannot name).
    Call(Option<GlobalId>),
    /// A method (`__setstate__`, `extend`, `__setitem__`, `add`) of an
    /// object made by calling a global (`None`: an object the walk cannot
    /// trace to a global).
    Instance(Option<GlobalId>, &'static str),
    /// A method of a global itself: the payload would modify a class, a
    /// function or a module-level object.
    Global(GlobalId, &'static str),
}

/// Distinct keys with counts, in order of first appearance.
pub struct Tally<K> {
    pub entries: Vec<(K, u64)>,
    index: AHashMap<K, usize>,
    /// The last key counted (payloads repeat one call many times over).
    last: Option<usize>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            entries: Vec::new(),
            index: AHashMap::new(),
            last: None,
        }
    }
}

impl<K: Clone + Eq + Hash> Tally<K> {
    /// Count `key` once more; its position in `entries`.
    pub fn add(&mut self, key: K) -> Result<usize, WalkError> {
        let known = match self.last {
            Some(at) if self.entries[at].0 == key => Some(at),
            _ => self.index.get(&key).copied(),
        };
        if let Some(at) = known {
            self.entries[at].1 += 1;
            self.last = Some(at);
            return Ok(at);
        }
        super::grow(&mut self.entries)?;
        self.index
            .try_reserve(1)
            .map_err(|_| WalkError::OutOfMemory)?;
        let at = self.entries.len();
        self.entries.push((key.clone(), 1));
        self.index.insert(key, at);
        self.last = Some(at);
        Ok(at)
    }
}

#[derive(Default)]
pub struct Facts {
    /// Bytes up to and including STOP; what follows is trailing data.
    pub size: usize,
    /// The argument of PROTO (the first opcode when present).
    pub proto: Option<u8>,
    /// The highest protocol among the opcodes used.
    pub opcode_protocol: u8,
    pub opcodes: u64,
    pub frames: u64,
    pub globals: Tally<GlobalRef>,
    pub calls: Tally<Callee>,
    /// STACK_GLOBALs whose module or name is not a statically known str.
    pub dynamic_globals: u64,
    /// PERSID's text, or BINPERSID's id when it is a known str.
    pub persistent_ids: Vec<Option<String>>,
    /// NEXT_BUFFER opcodes (out-of-band buffers).
    pub buffers: u64,
    /// One more than the largest memo index stored into (the C unpickler
    /// allocates a memo table this large).
    pub memo_size: u64,
    /// The deepest nesting of tuples directly inside tuples (hashing a
    /// tuple recurses on the C stack).
    pub tuple_depth: u32,
}
