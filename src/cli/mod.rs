//! Command groups: each file parses its flags, calls the library and renders the output.
pub mod build;
pub mod image;
pub mod lint;
pub mod parse;
pub mod registry;
pub mod run;
pub mod system;
