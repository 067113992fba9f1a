//! rbuild: a daemonless Dockerfile build engine.
//!
//! The modules follow the data flow (see DESIGN.md): Dockerfile text is parsed by
//! [`dockerfile`], checked by [`lint`], planned by [`plan`], executed by [`build`] over the
//! [`context`], [`sandbox`] and [`snapshot`], stored in [`store`] in the formats of [`image`],
//! exchanged with registries by [`registry`] and run by [`container`].

pub mod build;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod image;
pub mod lint;
pub mod lsp;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod sandbox;
pub mod snapshot;
pub mod store;
