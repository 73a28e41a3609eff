//! Layer 1: bytes out. Opcode constants and the framed output buffer.

pub mod opcodes;
pub mod writer;

pub use writer::Writer;
