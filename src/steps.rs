//! The names of the steps of the container lifecycle. Errors carry one of
//! these; the list lets a step name travel from the container process to the
//! parent as bytes and come back as a `&'static str`.

pub const ALL: &[&str] = &[
    "parse arguments",
    "load config",
    "validate config",
    "oom_score_adj",
    "unshare",
    "join namespace",
    "write ID maps",
    "fork",
    "rootfs propagation",
    "mount rootfs",
    "mount",
    "create devices",
    "pivot_root",
    "masked paths",
    "readonly paths",
    "sysctl",
    "hostname",
    "rlimits",
    "capabilities",
    "user",
    "cwd",
    "no_new_privs",
    "seccomp",
    "exec",
    "wait",
    "pid file",
    "spec",
    "resources",
    "locate",
    "record",
    "create",
    "start",
    "kill",
    "delete",
    "console",
    "exec process",
    "prestart hook",
    "createRuntime hook",
    "createContainer hook",
    "startContainer hook",
    "poststart hook",
    "poststop hook",
    "hook",
    "console socket",
];

/// Map a step name read from a record back to its static string.
pub fn intern(name: &str) -> &'static str {
    ALL.iter()
        .copied()
        .find(|s| *s == name)
        .unwrap_or("container")
}
