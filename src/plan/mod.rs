//! Instructions + build args + target → a graph of ops with cache keys. Pure: no I/O.
