//! `process`: args, env, cwd, user, umask, rlimits, noNewPrivileges,
//! capabilities, oomScoreAdj, and linux.seccomp (installed last).

use crate::common::*;
use serde_json::json;

/// args reach the program one by one; env is exactly process.env (the
/// host's environment does not leak in); args[0] is looked up in the
/// container's PATH.
fn args_env_and_path(who: Who) {
    let mut b = Bundle::new(who);
    b.private_rootfs();
    b.s.mkdir("rootfs/mybin");
    b.s.write(
        "rootfs/mybin/hello",
        "#!/bin/sh\nprintf '[%s]' \"$@\"; echo; echo \"FOO=$FOO\"; env | grep -c HUSK_IT_HOST\n",
        0o755,
    );
    let out = b
        .set("/process/env", json!(["PATH=/mybin:/bin", "FOO=bar baz"]))
        .args(&["hello", "a b", "c"])
        .run();
    assert_eq!(out.stdout, "[a b][c]\nFOO=bar baz\n0\n", "{out:#?}");
}
both!(args_env_and_path);

fn cwd(who: Who) {
    let out = Bundle::new(who)
        .set("/process/cwd", json!("/etc"))
        .args(&["pwd"])
        .run();
    assert_eq!(out.ok(), "/etc\n");
}
both!(cwd);

/// A cwd missing from the rootfs is created, as runc does.
fn cwd_is_created(who: Who) {
    let mut b = Bundle::new(who);
    let rootfs = b.private_rootfs();
    let out = b
        .set("/process/cwd", json!("/new/dir"))
        .args(&["pwd"])
        .run();
    assert_eq!(out.ok(), "/new/dir\n");
    assert!(rootfs.join("new/dir").is_dir());
}
both!(cwd_is_created);

/// uid, gid and additionalGids (the user needs its subordinate IDs
/// mapped to have uid 1000).
fn user_ids(who: Who) {
    let mut b = Bundle::new(who);
    if who == Who::User {
        b.map_subids();
    }
    let out = b
        .set(
            "/process/user",
            json!({"uid": 1000, "gid": 1000, "additionalGids": [100, 65534]}),
        )
        .sh("id -u; id -g; cat /proc/self/status")
        .run();
    let out = out.ok();
    assert!(out.starts_with("1000\n1000\n"), "{out}");
    assert_eq!(field(out, "Groups"), "100 65534");
    // No additionalGids: no supplementary groups (the caller's are gone).
    let out = b.remove("/process/user/additionalGids").run();
    assert_eq!(field(out.ok(), "Groups"), "");
}
both!(user_ids);

/// umask shows in the shell and in the mode of a new file.
fn umask(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set("/process/user/umask", json!(0o027))
        .mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}))
        .sh("umask; touch /mnt/f; stat -c %a /mnt/f")
        .run();
    assert_eq!(out.ok(), "0027\n640\n");
}
both!(umask);

fn rlimits(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set(
            "/process/rlimits",
            json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]),
        )
        .sh("ulimit -n; ulimit -Hn")
        .run();
    assert_eq!(out.ok(), "512\n1000\n");
}
both!(rlimits);

fn no_new_privileges(who: Who) {
    let mut b = Bundle::new(who);
    b.args(&["cat", "/proc/self/status"]);
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let out = b.set("/process/noNewPrivileges", json!(nnp)).run();
        assert_eq!(field(out.ok(), "NoNewPrivs"), want, "noNewPrivileges {nnp}");
    }
}
both!(no_new_privileges);

/// A capability mask as /proc/self/status prints it.
fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

/// All five capability sets. execve() recomputes the permitted and
/// effective sets: for uid 0 they become bounding ∪ inheritable ∪
/// ambient, for another uid they become the ambient set. So the test
/// runs both as uid 0 and as uid 1000 and expects the kernel's result.
fn capabilities(who: Who) {
    const CHOWN: u32 = 0;
    const DAC_OVERRIDE: u32 = 1;
    const KILL: u32 = 5;
    const NET_BIND_SERVICE: u32 = 10;
    const SYS_CHROOT: u32 = 18;
    let names = |caps: &[&str]| json!(caps.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>());
    let mut b = Bundle::new(who);
    if who == Who::User {
        b.map_subids();
    }
    b.set(
        "/process/capabilities",
        json!({
            "bounding": names(&["CHOWN", "DAC_OVERRIDE", "KILL", "NET_BIND_SERVICE", "SYS_CHROOT"]),
            "permitted": names(&["CHOWN", "KILL", "NET_BIND_SERVICE"]),
            "effective": names(&["CHOWN", "KILL"]),
            "inheritable": names(&["NET_BIND_SERVICE"]),
            "ambient": names(&["NET_BIND_SERVICE"]),
        }),
    )
    .set("/process/noNewPrivileges", json!(false))
    .args(&["cat", "/proc/self/status"]);
    let bounding = mask(&[CHOWN, DAC_OVERRIDE, KILL, NET_BIND_SERVICE, SYS_CHROOT]);
    let ambient = mask(&[NET_BIND_SERVICE]);
    for (uid, after_exec) in [(0, &bounding), (1000, &ambient)] {
        let out = b
            .set("/process/user", json!({"uid": uid, "gid": uid}))
            .run();
        let status = out.ok();
        let sets = ["CapBnd", "CapInh", "CapAmb", "CapPrm", "CapEff"].map(|k| field(status, k));
        assert_eq!(
            sets,
            [&bounding, &ambient, &ambient, after_exec, after_exec],
            "uid {uid}"
        );
    }
}
both!(capabilities);

fn oom_score_adj(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set("/process/oomScoreAdj", json!(500))
        .args(&["cat", "/proc/self/oom_score_adj"])
        .run();
    assert_eq!(out.ok(), "500\n");
}
both!(oom_score_adj);

/// A seccomp profile allowing everything but the syscalls of `rules`
/// (names, errno).
fn seccomp(rules: &[(&[&str], u32)]) -> serde_json::Value {
    let syscalls: Vec<_> = rules
        .iter()
        .map(
            |(names, errno)| json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno}),
        )
        .collect();
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls})
}

/// The filter is installed (Seccomp: 2) and each rule returns its errno;
/// other syscalls are allowed.
fn seccomp_filter(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set(
            "/linux/seccomp",
            seccomp(&[
                (&["mkdir", "mkdirat"], 1),
                (&["chmod", "fchmodat", "fchmodat2"], 13),
            ]),
        )
        .mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}))
        .sh(
            "grep Seccomp: /proc/self/status; touch /mnt/f && echo touched; \
             mkdir /mnt/d 2>&1; chmod 600 /mnt/f 2>&1; true",
        )
        .run();
    let out = out.ok();
    assert_eq!(field(out, "Seccomp"), "2");
    assert!(out.contains("touched"), "{out}");
    assert!(
        out.contains("mkdir: can't create directory '/mnt/d': Operation not permitted"),
        "{out}"
    );
    assert!(out.contains("Permission denied"), "chmod: {out}");
}
both!(seccomp_filter);

/// Syscall names libseccomp does not know are skipped, as runc does
/// (profiles from newer Podman list syscalls older kernels lack).
fn seccomp_unknown_syscall_is_skipped(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set(
            "/linux/seccomp",
            seccomp(&[(&["no_such_syscall_husk", "mkdirat"], 1)]),
        )
        .sh("grep Seccomp: /proc/self/status")
        .run();
    assert_eq!(field(out.ok(), "Seccomp"), "2");
}
both!(seccomp_unknown_syscall_is_skipped);

/// Syscalls busybox and the last steps of husk need: the allowlist of a
/// Podman-shaped profile (default ENOSYS), without mkdir/mkdirat.
const ALLOWED: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "flock",
    "fork",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "gettimeofday",
    "getuid",
    "ioctl",
    "kill",
    "lchown",
    "link",
    "linkat",
    "lseek",
    "lstat",
    "madvise",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sched_getaffinity",
    "sched_yield",
    "select",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setresgid",
    "setresuid",
    "setrlimit",
    "setsid",
    "setuid",
    "sigaltstack",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sysinfo",
    "tgkill",
    "time",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utimensat",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// The shape of profile Buildah and Podman send: default action ERRNO
/// with defaultErrnoRet ENOSYS, several architectures, an allowlist, and
/// argument conditions (personality allowed only for 0 and 0xffffffff).
fn seccomp_podman_shaped_profile(who: Who) {
    let personality = |value: u64| {
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": value, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]})
    };
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
            personality(0),
            personality(0xffff_ffff),
        ],
    });
    let mut b = Bundle::new(who);
    let out = b
        .set("/linux/seccomp", profile)
        .mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}))
        .sh(&format!(
            "{T} grep Seccomp: /proc/self/status; t linux64 true; t linux32 true; \
                      mkdir /mnt/d 2>&1; true"
        ))
        .run();
    let out = out.ok();
    assert_eq!(field(out, "Seccomp"), "2");
    expect_lines(out, &["ok: linux64 true", "fail: linux32 true"]);
    assert!(
        out.contains("mkdir: can't create directory '/mnt/d': Function not implemented"),
        "{out}"
    );
}
both!(seccomp_podman_shaped_profile);
