//! `husk run` as a process: exit status, stdio, PIDs, signals, the pid file,
//! and `husk spec`.

use crate::common::*;
use serde_json::json;
use std::fs;
use std::os::unix::process::CommandExt;

/// The caller sees the program's own exit status, with and without the
/// pid-namespace waiter in between.
fn exit_status_passes_through(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::new(who);
        if !pid_ns {
            b.without_namespace("pid");
        } else {
            b.namespace("pid", None);
        }
        let out = b.sh("exit 7").run();
        assert_eq!(out.code, 7, "pid namespace: {pid_ns}: {out:#?}");
    }
}
both!(exit_status_passes_through);

fn stdio_passes_through(who: Who) {
    let out = Bundle::new(who)
        .sh("read l; echo \"out:$l\"; echo \"err:$l\" >&2")
        .run_with(&[], Some("hello\n"));
    assert_eq!(out.ok(), "out:hello\n");
    assert_eq!(out.stderr, "err:hello\n");
}
both!(stdio_passes_through);

/// Without a pid namespace, husk execve()s into the program: the PID
/// `husk run` started as is the program's, its parent is the test, and
/// no husk process remains.
fn execs_in_place_without_pid_ns(who: Who) {
    let mut b = Bundle::new(who);
    let mut r = b
        .without_namespace("pid")
        .sh("echo $$; exec sleep 30")
        .spawn(&[]);
    let pid = r.pid();
    assert_eq!(r.line(), pid.to_string(), "the container's $$");
    wait_for("the program to exec sleep", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
    });
    assert_eq!(host_status(pid, "PPid"), std::process::id().to_string());
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, harness().husk, "husk is still the process image");
    assert!(
        children(pid).is_empty(),
        "husk left children: {:?}",
        children(pid)
    );
    assert!(
        b.s.leftover_processes().is_empty(),
        "husk processes remain: {:?}",
        b.s.leftover_processes()
    );
    r.signal(libc::SIGKILL);
    assert_eq!(r.finish().code, 128 + libc::SIGKILL);
}
both!(execs_in_place_without_pid_ns);

/// Start `script` in a new pid namespace; return the running husk (the
/// waiter) and the host PID of the container's init, after checking the
/// program sees itself as PID 1 and is the waiter's only child.
fn start_in_pid_ns(who: Who, script: &str, extra: &[&str]) -> (Bundle, Running, u32) {
    let mut b = Bundle::new(who);
    let mut r = b.namespace("pid", None).sh(script).spawn(extra);
    assert_eq!(r.line(), "1", "the program's PID in its namespace");
    let init = only_child(r.pid());
    let nspid = host_status(init, "NSpid");
    assert!(
        nspid.ends_with("\t1"),
        "NSpid of the container init: {nspid:?}"
    );
    (b, r, init)
}

/// Signals sent to husk's waiter reach the program, which handles them.
fn pid_ns_forwards_signals(who: Who) {
    for (name, sig) in [
        ("TERM", libc::SIGTERM),
        ("INT", libc::SIGINT),
        ("USR1", libc::SIGUSR1),
    ] {
        let script =
            format!("trap 'echo got-{name}; exit 42' {name}; echo $$; while :; do sleep 0.1; done");
        let (_b, r, _) = start_in_pid_ns(who, &script, &[]);
        r.signal(sig);
        let out = r.finish();
        assert_eq!(out.code, 42, "SIG{name}: {out:#?}");
        assert_eq!(out.stdout, format!("1\ngot-{name}\n"), "SIG{name}");
    }
}
both!(pid_ns_forwards_signals);

/// A program killed by signal N gives the waiter's caller status 128+N.
fn pid_ns_reports_death_by_signal(who: Who) {
    let (_b, r, init) = start_in_pid_ns(who, "echo $$; exec sleep 30", &[]);
    signal(init, libc::SIGKILL);
    let out = r.finish();
    assert_eq!(out.code, 128 + libc::SIGKILL, "{out:#?}");
}
both!(pid_ns_reports_death_by_signal);

/// Read the pid file husk wrote: a bare number, no trailing newline.
fn read_pid_file(path: &std::path::Path) -> u32 {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        !text.ends_with('\n'),
        "pid file ends with a newline: {text:?}"
    );
    text.parse()
        .unwrap_or_else(|_| panic!("pid file holds {text:?}"))
}

/// `--pid-file` holds the PID of the container's program: husk's own
/// PID without a pid namespace, the waiter's child with one.
fn pid_file(who: Who) {
    let mut b = Bundle::new(who);
    let file = b.s.dir.join("pid");
    let extra = ["--pid-file", file.to_str().unwrap()];
    let mut r = b
        .without_namespace("pid")
        .sh("echo ready; exec sleep 30")
        .spawn(&extra);
    assert_eq!(r.line(), "ready");
    assert_eq!(read_pid_file(&file), r.pid());
    drop(r);

    // With a pid namespace the waiter writes the file, perhaps after the
    // program has started.
    fs::remove_file(&file).unwrap();
    let (_b, _r, init) = start_in_pid_ns(who, "echo $$; exec sleep 30", &extra);
    wait_for("the pid file", || file.exists());
    assert_eq!(read_pid_file(&file), init);
}
both!(pid_file);

/// The README's main job: `mkbundle B && husk spec [--rootless] --bundle
/// B` runs as is, with only the args changed (and the terminal off: the
/// tests have no tty). `root.path` stays the bundle-relative "rootfs".
fn spec_runs_out_of_the_box(who: Who) {
    let mut b = Bundle::spec_only(who);
    run_ok(b.s.command(&harness().mkbundle).arg(&b.dir));
    assert_eq!(b.config["root"]["path"], "rootfs");
    let out = b
        .set("/process/terminal", json!(false))
        .sh("id -u; cat /proc/self/uid_map; exit 3")
        .run();
    assert_eq!(out.code, 3, "{out:#?}");
    let host_uid = match who {
        Who::Root => "0 0 4294967295".to_string(),
        Who::User => format!("0 {} 1", harness().user.uid),
    };
    assert_eq!(squash(&out.stdout), format!("0\n{host_uid}"));
}
both!(spec_runs_out_of_the_box);

/// `husk spec` refuses to overwrite an existing config.json.
fn spec_refuses_to_overwrite(who: Who) {
    let b = Bundle::spec_only(who);
    let config = b.dir.join("config.json");
    fs::write(&config, "{\"mine\": true}").unwrap();
    let mut cmd = b.s.command(&harness().husk);
    cmd.args(["spec", "--bundle"]).arg(&b.dir);
    if who == Who::User {
        cmd.arg("--rootless");
    }
    Running::spawn(cmd, None).finish().husk_error("config.json");
    assert_eq!(fs::read_to_string(&config).unwrap(), "{\"mine\": true}");
}
both!(spec_refuses_to_overwrite);

/// Without --bundle, the bundle is the current directory.
fn bundle_defaults_to_cwd(who: Who) {
    let mut b = Bundle::new(who);
    let mut cmd = b.sh("echo in-container").husk();
    cmd.arg("--root")
        .arg(&b.state)
        .args(["run", &b.s.id])
        .current_dir(&b.dir);
    assert_eq!(Running::spawn(cmd, None).finish().ok(), "in-container\n");
}
both!(bundle_defaults_to_cwd);

/// `husk run` needs nothing from the environment but PATH: no --root,
/// no XDG_RUNTIME_DIR, HOME or USER (Podman's conmon may pass only PATH).
fn runs_with_only_path_in_env(who: Who) {
    let mut b = Bundle::new(who);
    let mut cmd = b.sh("echo in-container").husk();
    cmd.env_remove("XDG_RUNTIME_DIR")
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.s.id);
    assert_eq!(Running::spawn(cmd, None).finish().ok(), "in-container\n");
}
both!(runs_with_only_path_in_env);

/// The program gets stdin, stdout and stderr and no other descriptor:
/// neither husk's own nor one husk inherited (here fd 7, without
/// close-on-exec, as a careless caller or a jobserver leaves it).
fn no_descriptors_leak_in(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        // "; true": otherwise sh execs ls, and $$ is ls with its own dir fd.
        let mut cmd = b.sh("ls /proc/$$/fd; true").command(&[]);
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| match libc::dup2(2, 7) {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        let out = Running::spawn(cmd, None).finish();
        assert_eq!(out.ok(), "0\n1\n2\n", "pid namespace: {pid_ns}");
    }
}
both!(no_descriptors_leak_in);

/// systemd socket activation (runc's behaviour): with LISTEN_FDS=N in
/// husk's environment, fds 3..3+N reach the program, which sees
/// LISTEN_FDS=N and a LISTEN_PID naming itself; an fd beyond N does not.
fn socket_activation(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        let mut cmd = b
            .sh("echo \"$LISTEN_FDS $([ \"$LISTEN_PID\" = $$ ] && echo mine)\"; ls /proc/$$/fd; true")
            .command(&[]);
        cmd.env("LISTEN_FDS", "1");
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                for fd in [3, 4] {
                    if libc::dup2(2, fd) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let out = Running::spawn(cmd, None).finish();
        assert_eq!(out.ok(), "1 mine\n0\n1\n2\n3\n", "pid namespace: {pid_ns}");
    }
}
both!(socket_activation);
