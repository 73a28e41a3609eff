//! The identity memo: object address -> memo index.
//!
//! It owns a strong reference to every key, so a key cannot be freed and its
//! address reused by another object while the memo lives (that would turn a
//! later object into a bogus back-reference).

use ahash::AHashMap;
use pyo3::prelude::*;

#[derive(Default)]
pub struct Memo {
    index_of: AHashMap<usize, u32>,
    /// Keeps every key alive, in insertion order.
    owned: Vec<Py<PyAny>>,
    /// The next index to hand out. Usually `owned.len()`, but indices are
    /// also spent on temporaries that nothing can refer back to (see
    /// `put_anonymous`).
    next: u32,
}

impl Memo {
    #[inline]
    pub fn get(&self, obj: &Bound<'_, PyAny>) -> Option<u32> {
        if self.index_of.is_empty() {
            return None;
        }
        self.index_of.get(&(obj.as_ptr() as usize)).copied()
    }

    /// Record `obj` under the next index and return that index.
    #[inline]
    pub fn put(&mut self, obj: &Bound<'_, PyAny>) -> u32 {
        let idx = self.next;
        self.next += 1;
        self.index_of.insert(obj.as_ptr() as usize, idx);
        self.owned.push(obj.clone().unbind());
        idx
    }

    /// Spend an index on an object that no other part of the graph can
    /// reference (a temporary the pickler builds itself, such as the
    /// `(dict, slots)` state of an instance). The bytes are the same as
    /// for `put`, without keeping the temporary alive.
    #[inline]
    pub fn put_anonymous(&mut self) -> u32 {
        let idx = self.next;
        self.next += 1;
        idx
    }

    /// Record `obj` under a given index (priming from another memo).
    pub fn insert_at(&mut self, obj: &Bound<'_, PyAny>, idx: u32) {
        self.index_of.insert(obj.as_ptr() as usize, idx);
        self.owned.push(obj.clone().unbind());
        self.next = self.next.max(idx + 1);
    }

    pub fn clear(&mut self) {
        self.index_of.clear();
        self.owned.clear();
        self.next = 0;
    }

    pub fn len(&self) -> usize {
        self.owned.len()
    }

    /// `(index, object)` pairs, for the `memo` proxy.
    pub fn entries<'py>(&self, py: Python<'py>) -> Vec<(u32, Bound<'py, PyAny>)> {
        self.owned
            .iter()
            .map(|o| {
                let b = o.bind(py).clone();
                (self.index_of[&(b.as_ptr() as usize)], b)
            })
            .collect()
    }
}
