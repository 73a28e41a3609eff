//! The memo table reused from one `dumps` to the next on the same thread.
//!
//! A large dump's memo table is fresh pages each time it is allocated;
//! handing it to the next dump on the thread saves the page faults and the
//! regrowth (measured: 18% of a 100k-key dict dump was spent in the kernel
//! faulting in pages). Only tables up to a bounded size are kept, so a
//! one-off huge dump does not pin its memory.

use std::cell::RefCell;

use super::memo::Memo;

const KEEP_MEMO_ENTRIES: usize = 256 << 10;

thread_local! {
    static SCRATCH_MEMO: RefCell<Memo> = RefCell::default();
}

/// The thread's memo, empty (a nested dump gets a fresh one).
pub fn take_memo() -> Memo {
    SCRATCH_MEMO.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// Return a memo for the next dump, emptied, if it is not too large.
pub fn give_back_memo(mut memo: Memo) {
    if memo.capacity() > KEEP_MEMO_ENTRIES {
        return;
    }
    memo.reset();
    SCRATCH_MEMO.with(|m| {
        let mut slot = m.borrow_mut();
        if slot.capacity() <= memo.capacity() {
            *slot = memo;
        }
    });
}
