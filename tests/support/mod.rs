//! Test support shared across areas: a private Docker Engine, and saved images read,
//! flattened and compared.
#![allow(dead_code)] // each test binary uses a different part

pub mod dockerd;
pub mod saved_image;
#[allow(clippy::duplicate_mod)]
pub mod tools;
