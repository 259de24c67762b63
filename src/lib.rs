//! husk: a stateless, unprivileged OCI container runtime.
//!
//! The binary (`src/main.rs`) only turns argv into calls on this library.
//! `launch` reads top to bottom as the lifecycle; `plan` validates the
//! config before anything changes; `sys` is the thin syscall layer.

pub mod cgroups;
pub mod cli;
pub mod console;
pub mod error;
pub mod exec;
pub mod fault;
pub mod features;
pub mod hooks;
pub mod launch;
pub mod lifecycle;
pub mod log;
pub mod plan;
pub mod process;
pub mod record;
pub mod rootfs;
pub mod scan;
pub mod seccomp;
pub mod spec;
pub mod steps;
pub mod sys;
pub mod userns;

pub use error::{Error, Result};
