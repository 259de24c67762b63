//! Integration tests for husk: they start the real binary, as root and as an
//! unprivileged user, and assert what the program inside the container sees.
//! One test binary (modules below) keeps the build short.
//!
//! Run as root: `cargo test --test integration`.

#[macro_use]
mod common;

mod bad_input;
mod clients;
mod concurrency;
mod crash;
mod devices;
mod hooks;
mod hostile;
mod hygiene;
mod lifecycle;
mod lifecycle_oci;
mod linux;
mod mounts;
mod namespaces;
mod privilege;
mod process;
mod terminal;
