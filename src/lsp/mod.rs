//! Language server over stdio, built on `dockerfile` and `lint`.
