//! Bad input: one stderr line naming the step and value, a non-zero exit,
//! nothing left mounted or running, nothing created outside the root.
//! Unknown fields are ignored.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::symlink;

/// A bundle on a private rootfs, so that any mount or file husk leaves
/// behind is under this test's own directory.
fn bundle(who: Who) -> Bundle {
    let mut b = Bundle::new(who);
    b.private_rootfs();
    b.sh("echo should-not-run");
    b
}

/// Run `b`, expect a husk error mentioning `value`, and check that nothing
/// was left behind.
#[track_caller]
fn rejects(b: &Bundle, value: &str) {
    let out = b.run();
    out.husk_error(value);
    assert!(!out.stdout.contains("should-not-run"), "{out:#?}");
    assert_eq!(
        b.s.leftover_mounts(),
        Vec::<String>::new(),
        "mounts left on the host"
    );
    assert_eq!(
        b.s.leftover_processes(),
        Vec::<u32>::new(),
        "processes left"
    );
}

fn invalid_json(who: Who) {
    let mut b = bundle(who);
    b.raw_config = Some("{\"ociVersion\": \"1.0.2\", \"process\": {".into());
    rejects(&b, "config.json");
}
both!(invalid_json);

fn wrong_type(who: Who) {
    let mut b = bundle(who);
    b.set("/process/args", json!("sh"));
    rejects(&b, "args");
}
both!(wrong_type);

fn missing_root_path(who: Who) {
    let mut b = bundle(who);
    b.remove("/root/path");
    rejects(&b, "path");
}
both!(missing_root_path);

fn relative_mount_destination(who: Who) {
    let mut b = bundle(who);
    b.mount(json!({"destination": "mnt/relative", "type": "tmpfs", "source": "tmpfs"}));
    rejects(&b, "mnt/relative");
}
both!(relative_mount_destination);

/// `/../escaped` would land beside the rootfs if joined naively.
fn destination_escaping_through_dotdot(who: Who) {
    let mut b = bundle(who);
    b.mount(json!({"destination": "/../escaped", "type": "tmpfs", "source": "tmpfs"}));
    rejects(&b, "/../escaped");
    assert!(
        !b.s.dir.join("escaped").exists(),
        "created outside the root"
    );
}
both!(destination_escaping_through_dotdot);

/// A symlink in the rootfs pointing out of it (`escape -> ../outside`).
fn destination_escaping_through_symlink(who: Who) {
    let mut b = bundle(who);
    let outside = b.s.mkdir("outside");
    symlink("../outside", b.s.dir.join("rootfs/escape")).unwrap();
    b.mount(json!({"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs"}));
    rejects(&b, "/escape/x");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "created outside the root"
    );
}
both!(destination_escaping_through_symlink);

fn missing_bind_source(who: Who) {
    let mut b = bundle(who);
    let source = b.s.dir.join("no-such-source");
    b.mount(json!({"destination": "/mnt", "type": "bind", "source": source, "options": ["rbind"]}));
    rejects(&b, "no-such-source");
}
both!(missing_bind_source);

/// A program that does not exist, by path and through PATH, with the
/// pid-namespace waiter and without.
fn program_not_found(who: Who) {
    for pid_ns in [true, false] {
        let mut b = bundle(who);
        if pid_ns {
            b.namespace("pid", None);
        } else {
            b.without_namespace("pid");
        }
        b.args(&["/no/such/program"]);
        rejects(&b, "/no/such/program");
        b.args(&["no-such-program"]);
        rejects(&b, "no-such-program");
    }
}
both!(program_not_found);

fn unknown_fields_are_ignored(who: Who) {
    let mut b = Bundle::new(who);
    let out = b
        .set("/huskTestUnknown", json!({"nested": [1, 2]}))
        .set("/process/futureField", json!(true))
        .set("/linux/futureField", json!("x"))
        .mount(
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                      "futureField": 1}),
        )
        .sh("echo ran")
        .run();
    assert_eq!(out.ok(), "ran\n");
}
both!(unknown_fields_are_ignored);

/// Values of the right type that are still wrong: each is rejected, named.
fn invalid_values(who: Who) {
    let cases = [
        ("/process/cwd", json!("relative/dir"), "relative/dir"),
        (
            "/process/capabilities/bounding",
            json!(["CAP_NO_SUCH_CAP"]),
            "CAP_NO_SUCH_CAP",
        ),
        (
            "/process/rlimits",
            json!([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
            "RLIMIT_NOPE",
        ),
        (
            "/linux/namespaces/-",
            json!({"type": "nosuchns"}),
            "nosuchns",
        ),
        (
            "/linux/sysctl",
            json!({"kernel.no_such_sysctl": "1"}),
            "no_such_sysctl",
        ),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            "SCMP_ACT_NOPE",
        ),
    ];
    for (pointer, value, mention) in cases {
        let mut b = bundle(who);
        b.set(pointer, value);
        rejects(&b, mention);
    }
}
both!(invalid_values);

/// A container ID that is not a plain name (it would name a path in the
/// state root) is rejected, and nothing appears outside the state root.
fn invalid_container_id(who: Who) {
    let b = bundle(who);
    for id in ["../escaped-id", "a/b", ""] {
        let mut cmd = b.husk();
        cmd.arg("--root")
            .arg(&b.state)
            .args(["run", "--bundle"])
            .arg(&b.dir)
            .arg(id);
        let out = Running::spawn(cmd, None).finish();
        assert_ne!(out.code, 0, "ID {id:?}: {out:#?}");
        assert!(
            !out.stdout.contains("should-not-run"),
            "ID {id:?}: {out:#?}"
        );
        assert!(
            !b.s.dir.join("escaped-id").exists(),
            "ID {id:?} escaped the state root"
        );
    }
}
both!(invalid_container_id);
