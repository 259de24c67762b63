//! husk: a stateless, unprivileged OCI container runtime.
//!
//! The binary (`src/main.rs`) only turns argv into calls on this library.

pub mod error;
pub mod seccomp;
pub mod spec;
pub mod steps;

pub use error::{Error, Result};
