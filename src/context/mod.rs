//! The build context: walker, .dockerignore matcher with moby's semantics, content hashes.
