//! Dockerfile text → syntax tree (with spans) → typed instructions; word expansion. Pure: no I/O.
