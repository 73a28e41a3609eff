//! The encoder's output: bytes in a `Vec` that only grows fallibly
//! (`try_reserve`), so that running out of memory ends `packb` with a
//! `MemoryError` instead of aborting the process. rmp's writers take it as
//! an `io::Write` whose one error is `ErrorKind::OutOfMemory`.

use std::io;

pub struct Output(Vec<u8>);

impl Output {
    /// An output that writes after what `bytes` holds, in its allocation.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Output(bytes)
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The bytes written, to fill in a header in place.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Room for `additional` more bytes, and the `Vec` to put them in: up to
    /// that many, it does not grow (past them, it would grow infallibly).
    #[inline]
    pub fn room_for(&mut self, additional: usize) -> io::Result<&mut Vec<u8>> {
        if self.0.capacity() - self.0.len() < additional {
            self.grow(additional)?;
        }
        Ok(&mut self.0)
    }

    /// Out of line, as `Vec::push` keeps its growth: most writes fit.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) -> io::Result<()> {
        self.0
            .try_reserve(additional)
            .map_err(|_| io::ErrorKind::OutOfMemory.into())
    }
}

impl io::Write for Output {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let out = self.room_for(buf.len())?;
        let len = out.len();
        // SAFETY: `room_for` left at least `buf.len()` bytes of capacity past
        // `len`; the copy initializes them before the length covers them.
        // (`extend_from_slice` would check the capacity a second time: 2% of
        // a `packb`'s instructions.)
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), out.as_mut_ptr().add(len), buf.len());
            out.set_len(len + buf.len());
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_size_beyond_memory_is_an_error_and_keeps_the_contents() {
        let mut out = Output::from_vec(Vec::new());
        out.write_all(b"abc").unwrap();
        let err = out.room_for(usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(out.as_slice(), b"abc");
        let vec = out.room_for(2).unwrap();
        let capacity = vec.capacity();
        vec.extend_from_slice(b"de");
        assert_eq!(vec.capacity(), capacity);
        assert_eq!(out.into_vec(), b"abcde");
    }
}
