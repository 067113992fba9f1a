//! Dockerfile text → syntax tree (with spans) → typed instructions; word expansion. Pure: no I/O.

pub mod expand;
pub mod vars;
