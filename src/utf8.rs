//! UTF-8 of code points read from a str's own storage, lone surrogates
//! included: they take the three-byte form, as Python's "surrogatepass"
//! error handler writes them (and pickle's BINUNICODE, and the codec's
//! surrogate-carrying strs, need). Knows nothing of Python objects.

/// How many bytes the UTF-8 of code point `c` takes.
#[inline]
pub fn encoded_len(c: u32) -> usize {
    match c {
        0..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        _ => 4,
    }
}

/// Append the UTF-8 of code point `c` (below 0x110000) to `out`.
#[inline]
#[allow(
    clippy::cast_possible_truncation,
    reason = "each UTF-8 byte takes the low bits of a shifted code point"
)]
pub fn push(out: &mut Vec<u8>, c: u32) {
    match encoded_len(c) {
        1 => out.push(c as u8),
        2 => out.extend_from_slice(&[0xc0 | (c >> 6) as u8, 0x80 | (c & 0x3f) as u8]),
        3 => out.extend_from_slice(&[
            0xe0 | (c >> 12) as u8,
            0x80 | ((c >> 6) & 0x3f) as u8,
            0x80 | (c & 0x3f) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xf0 | (c >> 18) as u8,
            0x80 | ((c >> 12) & 0x3f) as u8,
            0x80 | ((c >> 6) & 0x3f) as u8,
            0x80 | (c & 0x3f) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_surrogatepass() {
        for c in [
            0, 0x7f, 0x80, 0x7ff, 0x800, 0xd800, 0xdfff, 0xffff, 0x10000, 0x10ffff,
        ] {
            let mut out = Vec::new();
            super::push(&mut out, c);
            assert_eq!(out.len(), super::encoded_len(c));
            if let Some(ch) = char::from_u32(c) {
                assert_eq!(out, ch.to_string().as_bytes());
            } else {
                // A surrogate: the generic three-byte layout.
                assert_eq!(
                    out,
                    [
                        0xed,
                        0xa0 | ((c >> 6) & 0x1f) as u8,
                        0x80 | (c & 0x3f) as u8
                    ]
                );
            }
        }
    }
}
