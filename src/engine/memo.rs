//! The identity memo: object address -> memo index.
//!
//! It owns a strong reference to every key, so a key cannot be freed and its
//! address reused by another object while the memo lives (that would turn a
//! later object into a bogus back-reference).
//!
//! The table is open addressing keyed by address, like `_pickle.c`'s
//! `PyMemoTable`: addresses are already well spread, so a multiplicative hash
//! and linear probing beat a general-purpose map (measured: the SwissTable +
//! ahash version spent 15% of a 100k-key dict dump inserting and rehashing).

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

const EMPTY: usize = 0;
const MIN_CAPACITY: usize = 64;

/// One table slot: an address and its memo index, 12 bytes, not 16: packed,
/// the table of a large memo takes a quarter less memory than
/// `_pickle.c`'s, which pays for the owned references kept beside it (the
/// peak memory of a dump stays under C pickle's). x86-64 and aarch64 read
/// the unaligned address in one load.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Slot {
    addr: usize,
    idx: u32,
}

impl Slot {
    const FREE: Slot = Slot {
        addr: EMPTY,
        idx: 0,
    };
}

#[derive(Clone, Copy)]
pub struct MemoCheckpoint {
    owned: usize,
    next: u32,
}

/// Where a `lookup` that missed would put its object (see `put_vacant`).
#[derive(Clone, Copy)]
pub struct Vacancy {
    /// The empty slot and the entry count when it was found.
    slot: Option<(usize, usize)>,
    addr: usize,
}

impl Vacancy {
    /// For an object to record wherever the table has room (one found in
    /// the table that is to be recorded anew, under a new index).
    pub fn unplaced(obj: &Bound<'_, PyAny>) -> Vacancy {
        Vacancy {
            slot: None,
            addr: obj.as_ptr() as usize,
        }
    }
}

#[derive(Default)]
pub struct Memo {
    /// `addr == EMPTY` marks a free slot.
    slots: Vec<Slot>,
    used: usize,
    /// Keeps every key alive, in insertion order.
    owned: Vec<Py<PyAny>>,
    /// The next index to hand out. Usually `owned.len()`, but indices are
    /// also spent on temporaries that nothing can refer back to (see
    /// `put_anonymous`).
    next: u32,
    /// Entries the table is expected to reach (see `expect_entries`).
    expected: usize,
}

impl Memo {
    /// The slot holding `addr`, or the empty slot where it would go.
    ///
    /// The first probe is the address itself, less its alignment (16 bytes
    /// for every Python object on a 64-bit build), as in `_pickle.c`: objects
    /// allocated one after another land in neighbouring slots, so a large
    /// memo is walked with the cache's help (a multiplicative hash scattered
    /// them: 1.3x slower than pickle on 100k strings, all in cache misses).
    /// Addresses a multiple of the table's span apart land on the same slot,
    /// which a large heap makes common; the next few slots, on the same or
    /// the next cache line, usually have room, since objects are larger
    /// than a slot's 16 bytes of address (measured: a million strings also
    /// held elsewhere spent 40% of the dump in the jumps of the perturbed
    /// probing that follows). Past those, CPython's perturbed probing mixes
    /// in the high bits: linear probing alone piled up clusters where
    /// addresses repeat modulo the table size (measured: 12x slower than
    /// pickle on 100k strings in a larger heap).
    #[inline]
    fn find_slot(&self, addr: usize) -> usize {
        const NEARBY_PROBES: usize = 4;
        let mask = self.slots.len() - 1;
        let hash = addr >> 4;
        for step in 0..NEARBY_PROBES {
            let slot = hash.wrapping_add(step) & mask;
            let key = self.slots[slot].addr;
            if key == addr || key == EMPTY {
                return slot;
            }
        }
        let mut i = hash & mask;
        let mut perturb = hash;
        loop {
            i = (i << 2)
                .wrapping_add(i)
                .wrapping_add(perturb)
                .wrapping_add(1);
            let slot = i & mask;
            let key = self.slots[slot].addr;
            if key == addr || key == EMPTY {
                return slot;
            }
            perturb >>= 5;
        }
    }

    #[inline]
    pub fn get(&self, obj: &Bound<'_, PyAny>) -> Option<u32> {
        if self.used == 0 {
            return None;
        }
        let addr = obj.as_ptr() as usize;
        let Slot { addr: key, idx } = self.slots[self.find_slot(addr)];
        (key == addr).then_some(idx)
    }

    /// `obj`'s index, or where `put_vacant` can record it without probing
    /// the table again (the probe of a large table is a cache miss).
    #[inline]
    pub fn lookup(&self, obj: &Bound<'_, PyAny>) -> Result<u32, Vacancy> {
        let addr = obj.as_ptr() as usize;
        if self.used == 0 {
            return Err(Vacancy { slot: None, addr });
        }
        let slot = self.find_slot(addr);
        let Slot { addr: key, idx } = self.slots[slot];
        if key == addr {
            return Ok(idx);
        }
        Err(Vacancy {
            slot: Some((slot, self.used)),
            addr,
        })
    }

    /// `put` of the object a `lookup` did not find. The slot it found is
    /// used only if the table is as it was then (same entry count, so no
    /// insertion or growth since) and needs no growth now.
    #[inline]
    pub fn put_vacant(&mut self, obj: &Bound<'_, PyAny>, vacancy: Vacancy) -> u32 {
        let addr = obj.as_ptr() as usize;
        let idx = self.next;
        match vacancy.slot {
            Some((slot, used))
                if vacancy.addr == addr
                    && used == self.used
                    && (self.used + 1) * 3 < self.slots.len() * 2 =>
            {
                self.next += 1;
                self.used += 1;
                self.slots[slot] = Slot { addr, idx };
                self.owned.push(obj.clone().unbind());
                idx
            }
            _ => self.put(obj),
        }
    }

    fn slot_holding(&self, addr: usize) -> Option<usize> {
        let slot = self.find_slot(addr);
        ({ self.slots[slot].addr } == addr).then_some(slot)
    }

    #[inline]
    fn insert(&mut self, addr: usize, idx: u32) {
        if (self.used + 1) * 3 >= self.slots.len() * 2 {
            self.grow();
        }
        let slot = self.find_slot(addr);
        if { self.slots[slot].addr } == EMPTY {
            self.used += 1;
        }
        self.slots[slot] = Slot { addr, idx };
    }

    #[cold]
    fn grow(&mut self) {
        // Quadruple while small, then double (as PyMemoTable does); but once
        // an eighth of the entries a large container announced are in, go
        // straight to the size they need, sparing the rehashes of the large
        // tables in between (each rehash walks every entry so far).
        let mut wanted = if self.used < 50_000 {
            self.used * 4
        } else {
            self.used * 2
        };
        if self.expected > wanted && self.used * 8 >= self.expected {
            wanted = self.expected * 3 / 2;
        }
        let capacity = wanted.max(MIN_CAPACITY).next_power_of_two();
        let old = std::mem::replace(&mut self.slots, vec![Slot::FREE; capacity]);
        for entry in old {
            if { entry.addr } != EMPTY {
                let slot = self.find_slot(entry.addr);
                self.slots[slot] = entry;
            }
        }
    }

    /// A container of `items` items is about to be saved: the table may
    /// reach `items` more entries. Only a hint for the next growth, which
    /// follows it once the entries are arriving (an announced container of
    /// ints adds none, and must not cost a large table).
    #[inline]
    pub fn expect_entries(&mut self, items: usize) {
        self.expected = self.expected.max(self.used.saturating_add(items));
    }

    /// Record `obj` under the next index and return that index.
    #[inline]
    pub fn put(&mut self, obj: &Bound<'_, PyAny>) -> u32 {
        let idx = self.next;
        self.next += 1;
        self.insert(obj.as_ptr() as usize, idx);
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
        self.insert(obj.as_ptr() as usize, idx);
        self.owned.push(obj.clone().unbind());
        self.next = self.next.max(idx + 1);
    }

    /// The index the next entry gets.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// A point to come back to with `rollback`.
    pub fn checkpoint(&self) -> MemoCheckpoint {
        MemoCheckpoint {
            owned: self.owned.len(),
            next: self.next,
        }
    }

    /// Forget every entry made since `checkpoint` (a failed dump whose
    /// objects must not be referred back to by the next one). Rebuilds the
    /// table, so it is for failures, not for the hot path.
    pub fn rollback(&mut self, checkpoint: MemoCheckpoint) {
        self.owned.truncate(checkpoint.owned);
        self.next = checkpoint.next;
        let kept: Vec<Slot> = self
            .slots
            .iter()
            .copied()
            .filter(|entry| { entry.addr } != EMPTY && { entry.idx } < checkpoint.next)
            .collect();
        self.slots.fill(Slot::FREE);
        self.used = 0;
        self.expected = 0;
        for entry in kept {
            self.insert(entry.addr, entry.idx);
        }
    }

    /// Forget every entry but keep the table's allocation, in time
    /// proportional to the entries rather than to the table.
    pub fn reset(&mut self) {
        if self.used * 8 < self.slots.len() {
            // Find every entry's slot first: emptying slots as we go would
            // cut the probe chains that lead to the entries not yet found.
            let found: Vec<usize> = self
                .owned
                .iter()
                .filter_map(|obj| self.slot_holding(obj.as_ptr() as usize))
                .collect();
            for i in found {
                self.slots[i] = Slot::FREE;
            }
        } else {
            self.slots.fill(Slot::FREE);
        }
        self.used = 0;
        self.expected = 0;
        self.owned.clear();
        self.next = 0;
    }

    /// Entries the table holds before it must grow.
    pub fn capacity(&self) -> usize {
        self.slots.len() * 2 / 3
    }

    /// Report every key to the garbage collector (the memo of a `Pickler`,
    /// which cycles may run through).
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.owned.iter().try_for_each(|obj| visit.call(obj))
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
                (self.get(&b).expect("every owned object is a key"), b)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` one-item lists: distinct objects, each at its own address.
    fn distinct_objects(py: Python<'_>, n: i32) -> Vec<Bound<'_, PyAny>> {
        (0..n)
            .map(|i| pyo3::types::PyList::new(py, [i]).unwrap().into_any())
            .collect()
    }

    #[test]
    fn rollback_forgets_only_later_entries() {
        Python::initialize();
        Python::attach(|py| {
            let objs = distinct_objects(py, 200);
            let mut memo = Memo::default();
            for o in &objs[..100] {
                memo.put(o);
            }
            let checkpoint = memo.checkpoint();
            memo.put_anonymous();
            for o in &objs[100..] {
                memo.put(o);
            }
            memo.rollback(checkpoint);
            assert_eq!(memo.len(), 100);
            assert!(objs[..100]
                .iter()
                .enumerate()
                .all(|(i, o)| memo.get(o) == u32::try_from(i).ok()));
            assert!(objs[100..].iter().all(|o| memo.get(o).is_none()));
            assert_eq!(memo.put(&objs[150]), 100);
        });
    }

    #[test]
    fn a_vacancy_is_used_only_while_the_table_is_unchanged() {
        Python::initialize();
        Python::attach(|py| {
            let objs = distinct_objects(py, 4);
            let mut memo = Memo::default();
            memo.put(&objs[0]);
            let stale = memo.lookup(&objs[1]).unwrap_err();
            memo.put(&objs[2]);
            assert_eq!(memo.put_vacant(&objs[1], stale), 2);
            let fresh = memo.lookup(&objs[3]).unwrap_err();
            assert_eq!(memo.put_vacant(&objs[3], fresh), 3);
            let found: Vec<_> = objs.iter().map(|o| memo.lookup(o).ok()).collect();
            assert_eq!(found, [Some(0), Some(2), Some(1), Some(3)]);
        });
    }

    #[test]
    fn announced_entries_size_the_growth_once_they_arrive() {
        Python::initialize();
        Python::attach(|py| {
            let objs = distinct_objects(py, 43_691);
            let mut memo = Memo::default();
            memo.expect_entries(300_000);
            for o in &objs[..43_690] {
                memo.put(o);
            }
            // Below an eighth of the announced entries: the usual quadrupling.
            assert_eq!(memo.slots.len(), 65_536);
            memo.put(&objs[43_690]);
            // Then straight to room for all of them (quadrupling: 262,144).
            assert_eq!(memo.slots.len(), 524_288);
            assert!(objs
                .iter()
                .enumerate()
                .all(|(i, o)| memo.get(o) == u32::try_from(i).ok()));
        });
    }

    #[test]
    fn reset_forgets_colliding_entries() {
        Python::initialize();
        Python::attach(|py| {
            let objs = distinct_objects(py, 3000);
            let mut memo = Memo::default();
            for o in &objs[..500] {
                memo.put(o);
            }
            memo.reset();
            assert_eq!(memo.slots.len(), 1024);
            // Two objects whose addresses hash to the same slot, so the
            // second sits further along the first one's probe chain.
            let mut by_slot = std::collections::HashMap::new();
            let (first, second) = objs
                .iter()
                .find_map(|o| {
                    by_slot
                        .insert((o.as_ptr() as usize >> 4) & 1023, o)
                        .map(|prev| (prev, o))
                })
                .expect("3000 addresses in 1024 slots collide");
            memo.put(first);
            memo.put(second);
            memo.reset();
            assert!(memo.slots.iter().all(|entry| { entry.addr } == EMPTY));
            assert!(memo.get(first).is_none() && memo.get(second).is_none());
        });
    }
}
