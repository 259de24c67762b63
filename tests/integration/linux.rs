//! linux.sysctl and linux.resources.

use crate::common::*;
use serde_json::json;
use std::fs;

/// Sysctls a user namespace may set: a network one with a network
/// namespace, an IPC one with an IPC namespace.
fn sysctl(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .namespace("network", None)
        .namespace("ipc", None)
        .set(
            "/linux/sysctl",
            json!({"net.ipv4.ping_group_range": "0 0", "kernel.msgmax": "4096"}),
        )
        .sh("cat /proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/msgmax")
        .run();
    assert_eq!(squash(out.ok()), "0 0\n4096");
}
both!(sysctl);

/// The memory limit of the cgroup of a host process, if a memory controller
/// is mounted at the usual place (cgroup v2 or v1).
fn memory_limit(pid: u32) -> Option<u64> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let file = match controllers {
            "" => format!("/sys/fs/cgroup{path}/memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
            }
            _ => return None,
        };
        fs::read_to_string(file).ok()?.trim().parse().ok()
    })
}

/// linux.resources are applied where cgroups are writable, and otherwise
/// reported once on stderr; the container runs either way.
fn resources_applied_or_reported(who: Who) {
    const LIMIT: u64 = 64 << 20;
    let mut b = Bundle::new(who);
    let mut r = b
        .without_namespace("pid")
        .set("/linux/resources/memory/limit", json!(LIMIT))
        .sh("echo ready; exec sleep 30")
        .spawn(&[]);
    assert_eq!(r.line(), "ready");
    let applied = memory_limit(r.pid()) == Some(LIMIT);
    r.signal(libc::SIGKILL);
    let out = r.finish();
    let reports = out
        .stderr
        .lines()
        .filter(|l| l.contains("resources"))
        .count();
    assert!(
        applied || reports == 1,
        "not applied, reported {reports} times: {out:#?}"
    );
}
both!(resources_applied_or_reported);

/// As root, the cgroup made for linux.resources goes when the container
/// does (`run` with a PID namespace is create + start + wait + delete):
/// no empty `husk/<id>` directory is left per container.
#[test]
fn resource_cgroup_is_removed_with_the_container() {
    const LIMIT: u64 = 64 << 20;
    let mut b = Bundle::new(Who::Root);
    let mut r = b
        .namespace("pid", None)
        .set("/linux/resources/memory/limit", json!(LIMIT))
        .sh("echo ready; exec sleep 30")
        .spawn(&[]);
    assert_eq!(r.line(), "ready");
    let init = only_child(r.pid());
    assert_eq!(
        memory_limit(init),
        Some(LIMIT),
        "the container process runs in a cgroup with the memory limit"
    );
    let cgroup = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let dir = cgroup
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, path) = (f.next()?, f.next()?, f.next()?);
            match c {
                "" => Some(format!("/sys/fs/cgroup{path}")),
                c if c.split(',').any(|c| c == "memory") => {
                    Some(format!("/sys/fs/cgroup/memory{path}"))
                }
                _ => None,
            }
        })
        .unwrap();
    assert!(dir.ends_with(&format!("husk/{}", b.s.id)), "{dir}");
    signal(init, libc::SIGKILL);
    r.finish();
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
}
