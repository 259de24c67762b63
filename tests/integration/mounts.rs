//! The root filesystem and `mounts`: root.path, root.readonly, bind/rbind
//! and their flags, propagation, proc, tmpfs, mqueue, sysfs, cgroup,
//! maskedPaths, readonlyPaths, rootfsPropagation.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::symlink;

/// root.path may be absolute or relative to the bundle (not to the
/// current directory: husk runs from the bundle's parent here).
fn root_path_absolute_and_relative(who: Who) {
    let mut b = Bundle::new(who);
    assert_eq!(b.args(&["cat", "/etc/hostname"]).run().ok(), "husk\n");
    b.copy_rootfs(&b.dir.join("rootfs"));
    assert_eq!(b.set("/root/path", json!("rootfs")).run().ok(), "husk\n");
}
both!(root_path_absolute_and_relative);

fn root_readonly(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.set("/root/readonly", json!(true)).sh("touch /x").run();
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:#?}");
}
both!(root_readonly);

fn root_writable(who: Who) {
    let mut b = Bundle::new(who);
    let rootfs = b.private_rootfs();
    b.set("/root/readonly", json!(false))
        .sh("echo hi > /written")
        .run()
        .ok();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("written")).unwrap(),
        "hi\n"
    );
}
both!(root_writable);

/// A host directory for bind mounts, with a data file and a script.
fn bind_source(s: &Scratch) -> std::path::PathBuf {
    let src = s.mkdir("src");
    s.write("src/data", "data\n", 0o644);
    s.write("src/script", "#!/bin/sh\necho ran\n", 0o755);
    src
}

/// ro, nosuid, nodev, noexec on a bind mount show in /proc/mounts and
/// take effect; a plain bind beside it is writable and executable.
fn bind_mount_flags(who: Who) {
    let mut b = Bundle::new(who);
    let src = bind_source(&b.s);
    let out = b
        .mount(json!({"destination": "/mnt", "type": "bind", "source": src,
                      "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}))
        .mount(json!({"destination": "/opt", "type": "bind", "source": src,
                      "options": ["bind"]}))
        .sh(&format!(
            "{T} cat /proc/mounts; cat /mnt/data; t touch /mnt/new; t /mnt/script; \
                      t touch /opt/new; t /opt/script"
        ))
        .run();
    let out = out.ok();
    let mnt = mount_options(out, "/mnt");
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            mnt.contains(&flag.to_string()),
            "/mnt lacks {flag}: {mnt:?}"
        );
    }
    assert!(mount_options(out, "/opt").contains(&"rw".to_string()));
    expect_lines(
        out,
        &[
            "data",
            "fail: touch /mnt/new",
            "fail: /mnt/script",
            "ok: touch /opt/new",
            "ok: /opt/script",
        ],
    );
    assert!(
        src.join("new").exists(),
        "write through /opt did not reach the host"
    );
}
both!(bind_mount_flags);

/// A bind source may be relative to the bundle (the spec says so; husk
/// runs from the bundle's parent here).
fn bind_source_relative_to_bundle(who: Who) {
    let mut b = Bundle::new(who);
    b.s.mkdir("bundle/data");
    b.s.write("bundle/data/file", "from-bundle\n", 0o644);
    let out = b
        .mount(
            json!({"destination": "/mnt", "type": "bind", "source": "data",
                      "options": ["rbind", "ro"]}),
        )
        .args(&["cat", "/mnt/file"])
        .run();
    assert_eq!(out.ok(), "from-bundle\n");
}
both!(bind_source_relative_to_bundle);

/// Files bound onto files, as Buildah does for /etc/hosts, resolv.conf
/// and hostname: over an existing file, and onto a missing one (husk
/// creates the mount point, in the rootfs).
fn bind_files(who: Who) {
    let mut b = Bundle::new(who);
    let rootfs = b.private_rootfs();
    let hostname = b.s.write("hostname", "bound-name\n", 0o644);
    let resolv = b.s.write("resolv.conf", "nameserver 192.0.2.1\n", 0o644);
    let out = b
        .mount(
            json!({"destination": "/etc/hostname", "type": "bind", "source": hostname,
                      "options": ["rbind", "ro"]}),
        )
        .mount(
            json!({"destination": "/etc/resolv.conf", "type": "bind", "source": resolv,
                      "options": ["rbind", "ro"]}),
        )
        .args(&["cat", "/etc/hostname", "/etc/resolv.conf"])
        .run();
    assert_eq!(out.ok(), "bound-name\nnameserver 192.0.2.1\n");
    assert!(
        rootfs.join("etc/resolv.conf").is_file(),
        "no file mount point in the rootfs"
    );
}
both!(bind_files);

/// rbind brings the source's submounts along (host /dev has /dev/pts
/// mounted under it), bind does not. The kernel refuses the user a plain
/// bind of a tree with submounts it may not reveal, so the user only
/// checks rbind.
fn rbind_includes_submounts(who: Who) {
    let mut b = Bundle::new(who);
    b.mount(
        json!({"destination": "/mnt", "type": "bind", "source": "/dev",
                   "options": ["rbind"]}),
    );
    if who == Who::Root {
        b.mount(
            json!({"destination": "/opt", "type": "bind", "source": "/dev",
                       "options": ["bind"]}),
        );
    }
    let out = b.args(&["cat", "/proc/mounts"]).run();
    let out = out.ok();
    assert_eq!(mount_type(out, "/mnt/pts"), "devpts");
    if who == Who::Root {
        let host = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert_eq!(mount_type(out, "/opt"), mount_type(&host, "/dev"));
        assert!(
            !out.contains(" /opt/pts "),
            "bind copied a submount:\n{out}"
        );
    }
}
both!(rbind_includes_submounts);

/// Propagation flags in mount options show in /proc/self/mountinfo.
fn mount_propagation_flags(who: Who) {
    let mut b = Bundle::new(who);
    let src = bind_source(&b.s);
    let bind = |dest: &str, flag: &str| {
        json!({"destination": dest, "type": "bind", "source": src,
               "options": ["rbind", flag]})
    };
    let out = b
        .mount(bind("/mnt", "rshared"))
        .mount(bind("/opt", "rprivate"))
        .mount(bind("/var", "runbindable"))
        .args(&["cat", "/proc/self/mountinfo"])
        .run();
    let out = out.ok();
    let mnt = propagation(out, "/mnt");
    assert!(
        mnt.iter().any(|f| f.starts_with("shared:")),
        "/mnt: {mnt:?}"
    );
    assert_eq!(propagation(out, "/opt"), Vec::<String>::new(), "/opt");
    assert_eq!(propagation(out, "/var"), ["unbindable"], "/var");
}
both!(mount_propagation_flags);

fn rootfs_propagation(who: Who) {
    let mut b = Bundle::new(who);
    b.args(&["cat", "/proc/self/mountinfo"]);
    let out = b.set("/linux/rootfsPropagation", json!("shared")).run();
    let root = propagation(out.ok(), "/");
    assert!(
        root.iter().any(|f| f.starts_with("shared:")),
        "shared: {root:?}"
    );
    let out = b.set("/linux/rootfsPropagation", json!("private")).run();
    assert_eq!(propagation(out.ok(), "/"), Vec::<String>::new(), "private");
}
both!(rootfs_propagation);

/// A script printing the shell's PID, then the parent PID of a child as
/// /proc shows it: equal only when /proc belongs to the shell's pid
/// namespace. Then the number of processes /proc lists.
const PROC_SCRIPT: &str = "echo $$; cut -d' ' -f4 /proc/self/stat; ls /proc | grep -c '^[0-9]*$'";

/// A fresh proc in a new pid namespace shows only the container.
fn proc_in_pid_ns(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.namespace("pid", None).sh(PROC_SCRIPT).run();
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[..2], ["1", "1"], "{out:#?}");
    let n: u32 = lines[2].parse().unwrap();
    assert!(n < 10, "/proc lists {n} processes");
}
both!(proc_in_pid_ns);

/// proc without a pid namespace: the kernel refuses a fresh proc to the
/// user, so husk falls back to an rbind of the host's /proc; either way
/// /proc/self is the program.
fn proc_without_pid_ns(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.without_namespace("pid").sh(PROC_SCRIPT).run();
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], lines[1], "{out:#?}");
    assert_ne!(lines[0], "1");
}
both!(proc_without_pid_ns);

fn tmpfs_size_and_mode(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .mount(
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "size=1m", "mode=1750"]}),
        )
        .sh(&format!(
            "{T} cat /proc/mounts; stat -c 'mode=%a' /mnt; \
                      t sh -c 'echo x > /mnt/small'; \
                      t sh -c 'head -c 2000000 /dev/zero > /mnt/big'"
        ))
        .run();
    let out = out.ok();
    assert_eq!(mount_type(out, "/mnt"), "tmpfs");
    let opts = mount_options(out, "/mnt");
    for o in ["size=1024k", "mode=1750", "nosuid", "nodev"] {
        assert!(opts.contains(&o.to_string()), "/mnt lacks {o}: {opts:?}");
    }
    expect_lines(
        out,
        &[
            "mode=1750",
            "ok: sh -c echo x > /mnt/small",
            "fail: sh -c head -c 2000000 /dev/zero > /mnt/big",
        ],
    );
}
both!(tmpfs_size_and_mode);

fn mqueue(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .unmount("/dev/mqueue")
        .mount(
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                      "options": ["nosuid", "noexec", "nodev"]}),
        )
        .args(&["cat", "/proc/mounts"])
        .run();
    assert_eq!(mount_type(out.ok(), "/dev/mqueue"), "mqueue");
}
both!(mqueue);

/// sysfs: fresh where the kernel allows it (root with a new network
/// namespace), an rbind of the host's /sys where it refuses (the user,
/// without a network namespace).
fn sysfs(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .unmount("/sys")
        .mount(
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                      "options": ["nosuid", "noexec", "nodev", "ro"]}),
        )
        .sh("ls /sys/kernel >/dev/null && echo has-kernel")
        .run();
    assert_eq!(out.ok(), "has-kernel\n");
}
both!(sysfs);

/// cgroup mounts are best effort: the run must not fail.
fn cgroup_mount_is_best_effort(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .unmount("/sys/fs/cgroup")
        .mount(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        )
        .sh("echo ran")
        .run();
    assert_eq!(out.ok(), "ran\n");
}
both!(cgroup_mount_is_best_effort);

/// runc's rootless spec mounts cgroup right after an rbind of the host's
/// /sys. Where the kernel refuses a fresh cgroup mount, the host's cgroup
/// tree that the rbind brought is used as it is, not stacked a second
/// time (11 more mounts on a hybrid host); the cgroup mount's flags apply
/// to its top, and every host mount below /sys/fs/cgroup shows once.
fn cgroup_after_rbind_of_sys_is_not_stacked(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .unmount("/sys")
        .unmount("/sys/fs/cgroup")
        .mount(
            json!({"destination": "/sys", "type": "none", "source": "/sys",
                      "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        )
        .mount(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        )
        .args(&["cat", "/proc/self/mounts"])
        .run();
    let out = out.ok();
    let under = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .map(String::from)
            .collect()
    };
    let inside = under(out);
    let mut once = inside.clone();
    once.sort();
    once.dedup();
    assert_eq!(
        inside.len(),
        once.len(),
        "a mount point shows twice:\n{out}"
    );
    let host = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for p in under(&host) {
        assert!(inside.contains(&p), "host mount {p} missing inside:\n{out}");
    }
    let top = mount_options(out, "/sys/fs/cgroup");
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(top.contains(&flag.to_string()), "{flag} missing: {top:?}");
    }
}
both!(cgroup_after_rbind_of_sys_is_not_stacked);

/// A masked file reads empty, a masked directory is empty; paths missing
/// from the rootfs are skipped.
fn masked_paths(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set("/linux/maskedPaths/-", json!("/etc/hostname"))
        .set("/linux/maskedPaths/-", json!("/home"))
        .set("/linux/maskedPaths/-", json!("/no/such/path")) // ignored, as runc does
        .set("/linux/readonlyPaths/-", json!("/no/such/path"))
        .sh("echo \"hostname=$(cat /etc/hostname)\"; echo \"home=$(ls /home)\"")
        .run();
    assert_eq!(out.ok(), "hostname=\nhome=\n");
}
both!(masked_paths);

fn readonly_paths(who: Who) {
    let mut b = Bundle::new(who);
    let tmpfs = |dest: &str| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"});
    let out = b
        .mount(tmpfs("/mnt"))
        .mount(tmpfs("/opt"))
        .set("/linux/readonlyPaths/-", json!("/mnt"))
        .sh(&format!("{T} t touch /mnt/x; t touch /opt/x"))
        .run();
    expect_lines(out.ok(), &["fail: touch /mnt/x", "ok: touch /opt/x"]);
}
both!(readonly_paths);

/// Mounts are made in order: a bind inside an earlier tmpfs gets its mount
/// point created in that tmpfs.
fn nested_mounts_in_order(who: Who) {
    let mut b = Bundle::new(who);
    let src = bind_source(&b.s);
    let out = b
        .mount(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}))
        .mount(
            json!({"destination": "/mnt/inner/deeper", "type": "bind", "source": src,
                      "options": ["rbind"]}),
        )
        .sh("cat /proc/mounts; cat /mnt/inner/deeper/data")
        .run();
    let out = out.ok();
    assert_eq!(mount_type(out, "/mnt"), "tmpfs");
    mount_options(out, "/mnt/inner/deeper");
    expect_lines(out, &["data"]);
}
both!(nested_mounts_in_order);

/// Symlinks in a destination resolve inside the root, absolute or relative
/// (a Debian rootfs has /var/run -> /run): not rejected, not followed out.
fn symlinked_destinations_stay_inside(who: Who) {
    let mut b = Bundle::new(who);
    let rootfs = b.private_rootfs();
    symlink("/run", rootfs.join("var/run")).unwrap();
    symlink("../run", rootfs.join("etc/run")).unwrap();
    b.s.give(&rootfs.join("var/run"));
    b.s.give(&rootfs.join("etc/run"));
    let tmpfs = |dest: &str| json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"});
    let out = b
        .mount(tmpfs("/var/run/abs"))
        .mount(tmpfs("/etc/run/rel"))
        .args(&["cat", "/proc/mounts"])
        .run();
    let out = out.ok();
    assert_eq!(mount_type(out, "/run/abs"), "tmpfs");
    assert_eq!(mount_type(out, "/run/rel"), "tmpfs");
    assert!(
        !std::path::Path::new("/run/abs").exists(),
        "created on the host"
    );
}
both!(symlinked_destinations_stay_inside);
