//! Renderers for build events: tty, plain, json, quiet.
