//! Executes a plan: scheduler, ops, progress events.

pub mod options;
