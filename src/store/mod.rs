//! The local store: an OCI image layout with blobs, refs, cache records, locks and garbage collection.
