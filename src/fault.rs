//! Fault injection for the crash tests (issue: kill -9 at every step).
//! Compiled in only with the `fault-injection` feature, which the test
//! command enables; a release build has empty functions.
//!
//! `HUSK_FAULT=<point>` makes husk SIGKILL itself when it reaches that
//! point, so a test can check that nothing is left behind (or that
//! `delete --force` cleans what is).

/// The named points, in lifecycle order (tests iterate over these).
pub const POINTS: &[&str] = &[
    "create:reserved",
    "create:fifo",
    "create:forked",
    "create:recorded",
    "create:released",
    "create:parked",
    "create:done",
    "container:namespaces",
    "container:mounted",
    "container:pivoted",
    "start:opened",
    "start:released",
    "run:waiting",
    "delete:killed",
    "delete:hooks",
    "delete:removed",
];

#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var("HUSK_FAULT").as_deref() == Ok(name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        // PID 1 of a PID namespace is immune to its own SIGKILL: die anyway.
        // SAFETY: _exit never returns and touches no Rust state.
        unsafe { libc::_exit(137) }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
