//! Executes a plan: scheduler, ops, progress events.
