//! Image formats: config (Docker extensions, canonical JSON), manifests, references, archives.
