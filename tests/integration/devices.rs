//! /dev: the host nodes bound in, the symlinks the spec requires, devpts,
//! and linux.devices.

use crate::common::*;
use serde_json::json;

/// null, zero, full, random, urandom and tty are there as the right
/// character devices and behave as such.
fn default_nodes(who: Who) {
    let out = Bundle::new(who)
        .sh(&format!(
            "{T} t sh -c 'echo x > /dev/null'; t sh -c 'echo x > /dev/full'; \
             for d in zero random urandom; do echo \"$d $(head -c 4 /dev/$d | wc -c)\"; done; \
             stat -c '%n %F %t,%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"
        ))
        .run();
    expect_lines(
        out.ok(),
        &[
            "ok: sh -c echo x > /dev/null",
            "fail: sh -c echo x > /dev/full",
            "zero 4",
            "random 4",
            "urandom 4",
            "/dev/null character special file 1,3",
            "/dev/zero character special file 1,5",
            "/dev/full character special file 1,7",
            "/dev/random character special file 1,8",
            "/dev/urandom character special file 1,9",
            "/dev/tty character special file 5,0",
        ],
    );
}
both!(default_nodes);

/// /dev/fd and /dev/std* link into /proc/self/fd; /dev/ptmx to pts/ptmx
/// (the default spec mounts devpts). Reading /dev/stdin goes through a
/// pipe made inside the container: the user may not reopen the test's
/// own pipes, which root owns.
fn symlinks(who: Who) {
    let out = Bundle::new(who)
        .sh(
            "for l in fd stdin stdout stderr ptmx; do echo \"$l -> $(readlink /dev/$l)\"; done; \
             echo via-dev-stdin | cat /dev/stdin",
        )
        .run();
    expect_lines(
        out.ok(),
        &[
            "fd -> /proc/self/fd",
            "stdin -> /proc/self/fd/0",
            "stdout -> /proc/self/fd/1",
            "stderr -> /proc/self/fd/2",
            "ptmx -> pts/ptmx",
            "via-dev-stdin",
        ],
    );
}
both!(symlinks);

/// The spec's devpts at /dev/pts is a new instance with a ptmx node.
fn devpts(who: Who) {
    let out = Bundle::new(who)
        .sh("cat /proc/mounts; stat -c 'ptmx %t,%T' /dev/pts/ptmx")
        .run();
    let out = out.ok();
    assert_eq!(mount_type(out, "/dev/pts"), "devpts");
    assert!(
        mount_options(out, "/dev/pts").contains(&"ptmxmode=666".to_string()),
        "{out}"
    );
    expect_lines(out, &["ptmx 5,2"]);
}
both!(devpts);

/// A linux.devices entry for a character device.
fn char_device(path: &str, major: u32, minor: u32) -> serde_json::Value {
    json!({"path": path, "type": "c", "major": major, "minor": minor,
           "fileMode": 0o666, "uid": 0, "gid": 0})
}

/// As root, mknod honours fileMode, uid and gid.
#[test]
fn linux_devices_mode_and_owner() {
    let mut b = Bundle::new(Who::Root);
    let mut dev = char_device("/dev/mynull", 1, 3);
    dev["fileMode"] = json!(0o640);
    dev["uid"] = json!(1000);
    dev["gid"] = json!(100);
    let out = b
        .set("/linux/devices/-", dev)
        .args(&["stat", "-c", "%a %u %g", "/dev/mynull"])
        .run();
    assert_eq!(out.ok(), "640 1000 100\n");
}

/// linux.devices: /dev/fuse is created (root: mknod; the user: bound
/// from the host, which has it). Root also gets a node under a name the
/// host lacks, which must work as the device it names.
fn linux_devices(who: Who) {
    let mut b = Bundle::new(who);
    b.set("/linux/devices/-", char_device("/dev/fuse", 10, 229));
    let mut expect = vec!["/dev/fuse character special file a,e5"];
    let mut script = format!("{T} stat -c '%n %F %t,%T' /dev/fuse");
    if who == Who::Root {
        b.set("/linux/devices/-", char_device("/dev/mynull", 1, 3));
        script += "; stat -c '%n %F %t,%T' /dev/mynull; t sh -c 'echo x > /dev/mynull'";
        expect.extend([
            "/dev/mynull character special file 1,3",
            "ok: sh -c echo x > /dev/mynull",
        ]);
    }
    expect_lines(b.sh(&script).run().ok(), &expect);
}
both!(linux_devices);
