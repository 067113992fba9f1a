//! Word expansion: `$v`, `${v:-w}` and kin, quotes and escapes, word splitting.
