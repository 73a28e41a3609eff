//! Layer 1: bytes out. Opcode constants, the framed writer, and the buffer
//! it fills (a Python `bytes` object, the only Python type this layer knows).

pub mod bytes_buffer;
pub mod opcodes;
pub mod writer;

pub use writer::Writer;
