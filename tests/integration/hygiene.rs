//! Descriptor, cwd and process hygiene (issue 4, item 2): no host fd but
//! stdio (and `--preserve-fds`) reaches the program; its cwd is inside the
//! container even when the config names a magic link to a leaked host
//! directory (CVE-2024-21626); the container process is non-dumpable while
//! the container can see it (CVE-2019-5736); a setuid husk refuses to run.

use crate::common::*;
use crate::crash::Ctr;
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Give the command `fds`: each (file, number) is opened here and dup'ed
/// to that number, without close-on-exec, in the child. Keep the returned
/// files alive until the command has been spawned.
fn leak_fds(cmd: &mut Command, fds: &[(&Path, i32)]) -> Vec<fs::File> {
    let files: Vec<fs::File> = fds
        .iter()
        .map(|(p, _)| fs::File::open(p).unwrap_or_else(|e| panic!("open {p:?}: {e}")))
        .collect();
    // Park the originals high, so dup2 to a low number never clobbers one.
    let raws: Vec<(i32, i32)> = files
        .iter()
        .zip(fds)
        .map(|(f, (_, n))| {
            let hi = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
            assert!(hi >= 100);
            (hi, *n)
        })
        .collect();
    unsafe {
        cmd.pre_exec(move || {
            for (hi, n) in &raws {
                if libc::dup2(*hi, *n) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    files
}

/// A host directory with a recognisable file, owned by `who`.
fn host_dir(s: &Scratch) -> std::path::PathBuf {
    let d = s.mkdir("hostdir");
    s.write("hostdir/host-only-file", "host\n", 0o644);
    d
}

/// The listing script: every fd of the program (`ls`'s own directory fd
/// shows too, as the lowest free number).
const LIST_FDS: &str = "ls -l /proc/self/fd";

/// fd numbers in `ls -l /proc/self/fd` output, with their targets.
fn fds_in(out: &str) -> Vec<(u32, String)> {
    out.lines()
        .filter_map(|l| {
            let (name, target) = l.split_once(" -> ")?;
            let n = name.split_whitespace().last()?.parse().ok()?;
            Some((n, target.to_string()))
        })
        .collect()
}

/// Only 0, 1, 2 and ls's own directory fd (the lowest free one, 3); none
/// pointing at the host directory.
#[track_caller]
fn only_stdio(out: &Outcome, host: &Path, context: &str) {
    let fds = fds_in(&out.stdout);
    let nums: Vec<u32> = fds.iter().map(|(n, _)| *n).collect();
    assert!(nums.starts_with(&[0, 1, 2]), "{context}: {out:#?}");
    assert!(
        nums.iter().all(|n| *n <= 3),
        "{context}: a host fd reached the program: {fds:?}"
    );
    let host = host.to_str().unwrap();
    assert!(
        fds.iter().all(|(_, t)| !t.contains(host)),
        "{context}: {fds:?}"
    );
}

/// A caller's fd 7 on a host directory (and fd 3, which a careless
/// "close from 4" would keep) does not reach the program: `run` in place,
/// `run` with a PID namespace, `create` + `start`, and `exec`. Bug class:
/// leaked descriptors (Buildah passes several; runc's CVE-2024-21626 used
/// one to reach the host).
fn caller_fds_do_not_leak(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        let host = host_dir(&b.s);
        b.sh(LIST_FDS);
        let mut cmd = b.command(&[]);
        let _keep = leak_fds(&mut cmd, &[(&host, 3), (&host, 7)]);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        assert_eq!(out.code, 0, "{out:#?}");
        only_stdio(&out, &host, &format!("run, pid ns {pid_ns}"));
    }

    // create + start: the parked process inherits create's descriptors.
    let mut b = Bundle::new(who);
    let host = host_dir(&b.s);
    b.sh(&format!("{LIST_FDS}; exec sleep 30"));
    let c = Ctr::new(b);
    let args = [
        "create",
        "--bundle",
        c.bundle(),
        "--pid-file",
        c.pid_file.to_str().unwrap(),
        c.id(),
    ];
    let mut cmd = c.cmd(None, &args);
    let _keep = leak_fds(&mut cmd, &[(&host, 3), (&host, 7)]);
    let err = c.b.s.dir.join("create.err");
    let out = run_timeout_to(&mut cmd, None, TIMEOUT, &c.output, &err);
    assert_eq!(out.code, 0, "{out:#?}");
    let mut start = c.cmd(None, &["start", c.id()]);
    let _keep2 = leak_fds(&mut start, &[(&host, 7)]);
    run_timeout(&mut start, None, TIMEOUT).ok();
    wait_for("the listing", || {
        fs::read_to_string(&c.output).is_ok_and(|o| o.contains(" 2 -> "))
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let listing = Outcome {
        code: 0,
        stdout: fs::read_to_string(&c.output).unwrap(),
        stderr: String::new(),
    };
    only_stdio(&listing, &host, "create + start");

    // exec into the running container.
    let mut cmd = c.cmd(None, &["exec", c.id(), "sh", "-c", LIST_FDS]);
    let _keep3 = leak_fds(&mut cmd, &[(&host, 3), (&host, 7)]);
    let out = run_timeout(&mut cmd, None, TIMEOUT);
    assert_eq!(out.code, 0, "{out:#?}");
    only_stdio(&out, &host, "exec");
    c.delete_force().ok();
}
both!(caller_fds_do_not_leak);

/// `--preserve-fds 1` passes fd 3 (readable in the container) and nothing
/// above it. Bug class: preserve-fds off by one, or everything preserved.
fn preserve_fds_passes_exactly_n(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        let host = host_dir(&b.s);
        let file = b.s.write("preserved", "preserved-data\n", 0o644);
        b.sh(&format!("cat <&3; {LIST_FDS}"));
        let mut cmd = b.command(&["--preserve-fds", "1"]);
        let _keep = leak_fds(&mut cmd, &[(&file, 3), (&host, 4), (&host, 9)]);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        let ctx = format!("pid ns {pid_ns}");
        assert_eq!(out.code, 0, "{ctx}: {out:#?}");
        assert!(
            out.stdout.starts_with("preserved-data\n"),
            "{ctx}: {out:#?}"
        );
        let fds = fds_in(&out.stdout);
        let three = fds.iter().find(|(n, _)| *n == 3);
        assert!(
            three.is_some_and(|(_, t)| t.ends_with("/preserved")),
            "{ctx}: fd 3: {fds:?}"
        );
        let host = host.to_str().unwrap();
        assert!(
            fds.iter().all(|(_, t)| !t.contains(host)),
            "{ctx}: fd 4 or 9 reached the program: {fds:?}"
        );
        assert!(fds.iter().all(|(n, _)| *n <= 4), "{ctx}: {fds:?}");
    }
}
both!(preserve_fds_passes_exactly_n);

/// The program starts in the configured cwd inside the container, and
/// `..` from there is the container's root (busybox's /linuxrc, not the
/// host's /work or /boot). Bug class: chdir before pivot_root, leaving a
/// cwd on the host.
fn cwd_is_inside_the_container(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        b.set("/process/cwd", json!("/usr/bin"))
            .sh("readlink /proc/self/cwd; ls -a ../..; echo --; cd ../../../../..; ls -a");
        let out = b.run();
        let text = out.ok();
        let mut parts = text.split("--\n");
        let (first, second) = (parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(first.lines().next(), Some("/usr/bin"), "{text}");
        for listing in [first, second] {
            let names: Vec<&str> = listing.lines().collect();
            assert!(names.contains(&"linuxrc"), "not the container root: {text}");
            assert!(!names.contains(&"boot"), "the host root: {text}");
        }
    }
}
both!(cwd_is_inside_the_container);

/// CVE-2024-21626: `process.cwd` = /proc/self/fd/7 with the caller's fd 7
/// on a host directory. husk refuses (a magic link) or starts the program
/// somewhere inside the container — never in the host directory, and the
/// program cannot write there. In place and through create + start.
fn cwd_through_a_leaked_fd(who: Who) {
    for pid_ns in [false, true] {
        let mut b = Bundle::with_pid_ns(who, pid_ns);
        let host = host_dir(&b.s);
        b.set("/process/cwd", json!("/proc/self/fd/7"))
            .sh("ls -a; echo escaped > written; echo ran");
        let mut cmd = b.command(&[]);
        let _keep = leak_fds(&mut cmd, &[(&host, 7)]);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        let ctx = format!("pid ns {pid_ns}");
        assert!(
            !out.stdout.contains("host-only-file"),
            "{ctx}: the program started in the host directory: {out:#?}"
        );
        assert!(!host.join("written").exists(), "{ctx}: wrote on the host");
        if out.code != 0 {
            let err = out.stderr.trim();
            assert!(
                err.lines().count() == 1 && err.starts_with("husk: "),
                "{ctx}: {out:#?}"
            );
        }
        eprintln!("cwd /proc/self/fd/7 ({who:?}, {ctx}): {out:?}");
    }
}
both!(cwd_through_a_leaked_fd);

/// A `readlink /proc/PID/exe` and `cat /proc/PID/environ` by an observer
/// with the container's host UID and no capabilities (the user itself; for
/// root, root with an empty bounding set): what a process inside the
/// container could do to the parked container process.
fn observer_can_read(who: Who, s: &Scratch, pid: u32) -> (bool, bool) {
    let run = |args: &[&str]| {
        let mut cmd = match who {
            Who::User => s.command(args[0]),
            Who::Root => {
                let mut c = s.command("setpriv");
                c.args(["--bounding-set=-all", "--inh-caps=-all", "--"])
                    .arg(args[0]);
                c
            }
        };
        cmd.args(&args[1..]);
        run_timeout(&mut cmd, None, TIMEOUT).code == 0
    };
    let exe = format!("/proc/{pid}/exe");
    let env = format!("/proc/{pid}/environ");
    (run(&["readlink", &exe]), run(&["cat", &env]))
}

/// CVE-2019-5736: while the container is `created` (parked, already in
/// the container's namespaces, its image still the husk binary), a process
/// with the container's UID and no capabilities cannot open
/// /proc/PID/exe or read its environment — it is non-dumpable. After
/// `start` the program is dumpable again (the control: the check is
/// meaningful). Bug class: a runtime process visible to the container with
/// /proc/PID/exe open to it (overwriting the runtime binary).
///
/// The user variant is the one that tells: with `PR_SET_DUMPABLE 0`
/// removed from husk it fails (checked by mutation). Root has no observer
/// that can tell: without a user namespace a capability-less UID-0
/// observer is refused by the capability-subset rule anyway, and with one
/// (used here) husk has already switched to the mapped UID before parking,
/// which makes the kernel clear dumpable by itself. The root variant
/// still guards the property, not husk's own prctl.
fn parked_process_is_not_dumpable(who: Who) {
    let mut b = Bundle::new(who);
    if who == Who::Root {
        b.map_subids();
    }
    b.sh("exec sleep 30");
    let c = Ctr::new(b);
    c.created();
    let pid: u32 = fs::read_to_string(&c.pid_file).unwrap().parse().unwrap();
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        harness().husk,
        "the parked process is husk"
    );
    assert_eq!(
        observer_can_read(who, &c.b.s, pid),
        (false, false),
        "the parked husk process is open to the container's UID"
    );
    c.husk(&["start", c.id()]).ok();
    wait_for("the program to exec", || {
        fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e != harness().husk)
    });
    // (For root's mapped container the environ file is 0400 and owned by
    // the mapped UID, so only exe tells.)
    assert!(
        observer_can_read(who, &c.b.s, pid).0,
        "control: the exec'd program's exe should be readable by the observer"
    );
    c.delete_force().ok();
}
both!(parked_process_is_not_dumpable);

/// A setuid-root (or setgid-root) copy of husk run by the user refuses in
/// one line; the same copy without the bit runs. Bug class: a runtime that
/// hands every user root's view of the kernel through a mode bit.
#[test]
fn setuid_husk_refuses() {
    let s = Scratch::new(Who::User);
    let copy = s.dir.join("husk-setuid");
    fs::copy(&harness().husk, &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(0), Some(0)).unwrap();
    for (mode, what) in [(0o755, "plain"), (0o4755, "setuid"), (0o2755, "setgid")] {
        fs::set_permissions(&copy, fs::Permissions::from_mode(mode)).unwrap();
        let out = run_timeout(s.command(&copy).args(["list"]), None, TIMEOUT);
        if what == "plain" {
            assert_eq!(out.code, 0, "{what}: {out:#?}");
            continue;
        }
        assert_ne!(out.code, 0, "{what}: {out:#?}");
        let err = out.stderr.trim();
        assert!(
            err.lines().count() == 1 && err.starts_with("husk: ") && err.contains("setuid"),
            "{what}: {out:#?}"
        );
        assert_eq!(out.stdout, "", "{what}");
    }
}
