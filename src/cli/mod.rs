//! Command groups: each file parses its flags, calls the library and renders the output.
pub mod image;
pub mod parse;
pub mod registry;
pub mod system;
pub mod lint;
