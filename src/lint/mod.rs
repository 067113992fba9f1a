//! Lint rules over typed instructions: hadolint rules and BuildKit checks, config, pragmas, output formats.

pub mod shell;
