//! linux.namespaces: created fresh or joined by path; hostname and
//! domainname in the UTS namespace.

use crate::common::*;
use serde_json::json;

const KINDS: [&str; 6] = ["cgroup", "ipc", "mnt", "net", "pid", "uts"];

/// The OCI name of each /proc/PID/ns link.
fn oci_name(kind: &str) -> &str {
    match kind {
        "mnt" => "mount",
        "net" => "network",
        other => other,
    }
}

/// Every namespace asked for is a new one (the links in /proc/self/ns
/// differ from the host's).
fn new_namespaces(who: Who) {
    let mut b = Bundle::new(who);
    for kind in KINDS {
        b.namespace(oci_name(kind), None);
    }
    let out = b
        .sh("for n in cgroup ipc mnt net pid uts; do \
               echo \"$n $(readlink /proc/self/ns/$n)\"; done")
        .run();
    for kind in KINDS {
        let host = ns_link("self", kind);
        let inside = out
            .ok()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{kind} ")))
            .unwrap();
        assert_ne!(inside, host, "{kind} namespace is the host's");
    }
}
both!(new_namespaces);

fn hostname_and_domainname(who: Who) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut b = Bundle::new(who);
    let out = b
        .namespace("uts", None)
        .set("/hostname", json!("box-one"))
        .set("/domainname", json!("example.test"))
        .sh("hostname; cat /proc/sys/kernel/domainname")
        .run();
    assert_eq!(out.ok(), "box-one\nexample.test\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}
both!(hostname_and_domainname);

/// A new network namespace has only the loopback interface.
fn network_has_only_lo(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .namespace("network", None)
        .args(&["cat", "/proc/net/dev"])
        .run();
    let ifaces: Vec<&str> = out
        .ok()
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(ifaces, ["lo"]);
}
both!(network_has_only_lo);

/// Join a network namespace by path. The user can only join one owned
/// by a user namespace of its own, so it joins that user namespace too
/// (as rootless Podman does with its pause process).
fn join_by_path(who: Who) {
    let s = Scratch::new(who);
    let mut holder = s.command("unshare");
    if who == Who::User {
        holder.args(["--user", "--map-root-user"]);
    }
    holder.args(["--net", "sleep", "30"]);
    let holder = Running::spawn(holder, None);
    let pid = holder.pid().to_string();
    wait_for("unshare to make its namespace", || {
        ns_link(&pid, "net") != ns_link("self", "net")
    });

    let mut b = Bundle::new(who);
    b.namespace("network", Some(&format!("/proc/{pid}/ns/net")));
    if who == Who::User {
        b.without_namespace("user")
            .namespace("user", Some(&format!("/proc/{pid}/ns/user")));
    }
    let out = b
        .sh("readlink /proc/self/ns/net; readlink /proc/self/ns/user")
        .run();
    let (net, user) = (ns_link(&pid, "net"), ns_link(&pid, "user"));
    assert_eq!(out.ok(), format!("{net}\n{user}\n"));
}
both!(join_by_path);
