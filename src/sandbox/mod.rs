//! Runs a process in a root filesystem: OCI runtime spec, embedded runtime, external runtimes, networks.
