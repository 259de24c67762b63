//! Integration tests for husk: they start the real binary, as root and as an
//! unprivileged user, and assert what the program inside the container sees.
//! One test binary (modules below) keeps the build short.
//!
//! Run as root: `cargo test --test integration`.

#[macro_use]
mod common;

mod bad_input;
mod clients;
mod devices;
mod hooks;
mod lifecycle;
mod lifecycle_oci;
mod linux;
mod mounts;
mod namespaces;
mod privilege;
mod process;
mod terminal;
