//! Container lifecycle: supervisor, state, logs, exec, port forwarding.
