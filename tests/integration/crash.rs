//! Crash tests (issue 4, item 4): husk SIGKILLed at every named step of
//! `create`, `start`, `run` and `delete` (`HUSK_FAULT=<point>`, built with
//! the `fault-injection` feature), as root and as the user. Afterwards
//! either nothing is left — no process of the container, no mount in the
//! host's mount table, no `.husk-*` file in the bundle, no index symlink,
//! no pid file — or `delete --force --bundle B ID` returns 0 and leaves
//! nothing; and a killed `create` never blocks a new `create` of the same
//! ID.
//!
//! Bug classes caught: a `create` that dies between reserving the ID and
//! writing the record leaves an index entry or a FIFO that `delete --force`
//! cannot see (no record) and that makes every later `create` of the ID fail
//! (EEXIST); a container process that outlives its runtime and stays parked
//! forever with no record pointing at it; a runtime that does its setup
//! mounts in the caller's mount namespace (a crash leaves them on the host);
//! a fault point that is listed but never reached (the table below must
//! reach every point in `husk::fault::POINTS`).

use crate::common::*;
use husk::fault::POINTS;
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A container driven through the lifecycle verbs, with a mark in its
/// program's environment (see `marked_processes`), its program's stdout
/// (`create`'s, which the container keeps) in a file, and a pid file.
/// Dropping it deletes the container and kills whatever is left.
pub struct Ctr {
    pub b: Bundle,
    pub pid_file: PathBuf,
    pub output: PathBuf,
    pub mark: String,
}

impl Ctr {
    /// A container around `b`, which should already have its args.
    pub fn new(mut b: Bundle) -> Ctr {
        let mark = format!("husk-it-mark-{}-end", b.s.id);
        b.set("/process/env/-", json!(format!("HUSK_IT_MARK={mark}")));
        Ctr {
            pid_file: b.s.dir.join("pid"),
            output: b.s.dir.join("output"),
            mark,
            b,
        }
    }

    pub fn id(&self) -> &str {
        &self.b.s.id
    }

    pub fn bundle(&self) -> &str {
        self.b.dir.to_str().unwrap()
    }

    /// `husk --root STATE <args>` as the bundle's user (config.json written
    /// first), with `HUSK_FAULT` set when `fault` is given.
    pub fn cmd(&self, fault: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = self.b.husk();
        cmd.arg("--root").arg(&self.b.state).args(args);
        if let Some(f) = fault {
            cmd.env("HUSK_FAULT", f);
        }
        cmd
    }

    pub fn husk_fault(&self, fault: Option<&str>, args: &[&str]) -> Outcome {
        let out = run_timeout(&mut self.cmd(fault, args), None, TIMEOUT);
        eprintln!("husk {} (fault {fault:?}): {out:?}", args.join(" "));
        out
    }

    pub fn husk(&self, args: &[&str]) -> Outcome {
        self.husk_fault(None, args)
    }

    /// `create --bundle B --pid-file P ID`, stdout to `output`.
    pub fn create(&self, fault: Option<&str>) -> Outcome {
        let args = [
            "create",
            "--bundle",
            self.bundle(),
            "--pid-file",
            self.pid_file.to_str().unwrap(),
            self.id(),
        ];
        let mut cmd = self.cmd(fault, &args);
        let err = self.b.s.dir.join("create.err");
        let out = run_timeout_to(&mut cmd, None, TIMEOUT, &self.output, &err);
        eprintln!("husk create (fault {fault:?}): {out:?}");
        out
    }

    /// `run --bundle B ID`, stdout to `output`.
    pub fn run(&self, fault: Option<&str>) -> Outcome {
        let args = ["run", "--bundle", self.bundle(), self.id()];
        let mut cmd = self.cmd(fault, &args);
        let err = self.b.s.dir.join("run.err");
        let out = run_timeout_to(&mut cmd, None, TIMEOUT, &self.output, &err);
        eprintln!("husk run (fault {fault:?}): {out:?}");
        out
    }

    #[track_caller]
    pub fn created(&self) {
        let out = self.create(None);
        assert_eq!(out.code, 0, "husk create failed: {out:#?}");
    }

    #[track_caller]
    pub fn started(&self) {
        self.created();
        self.husk(&["start", self.id()]).ok();
    }

    /// `state ID` → status.
    #[track_caller]
    pub fn status(&self) -> String {
        let out = self.husk(&["state", self.id()]);
        let v: serde_json::Value = serde_json::from_str(out.ok())
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out:#?}"));
        v["status"].as_str().unwrap().to_string()
    }

    /// `delete --force --bundle B ID`.
    pub fn delete_force(&self) -> Outcome {
        self.husk(&["delete", "--force", "--bundle", self.bundle(), self.id()])
    }

    /// Everything of this container still on the host, described: its
    /// processes (the program, found by its mark, and husk or forks of it
    /// that never reached execve, found by the harness's marker), mounts
    /// in the host's table that mention this test's directory or the
    /// shared rootfs, `.husk-*` files in the bundle, the index symlink and
    /// (with `pid_file`) the pid file.
    pub fn leftovers(&self, pid_file: bool) -> Vec<String> {
        let mut left = Vec::new();
        for (pid, cmd) in marked_processes(&self.mark) {
            left.push(format!("process {pid}: {cmd}"));
        }
        for pid in self.b.s.leftover_processes() {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            left.push(format!(
                "husk process {pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
        let rootfs = harness().rootfs.to_string_lossy().into_owned();
        for l in fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
            if l.contains(self.b.s.dir.to_str().unwrap()) || l.contains(&rootfs) {
                left.push(format!("host mount: {l}"));
            }
        }
        for e in fs::read_dir(&self.b.dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name != "config.json" {
                left.push(format!("bundle file {name}"));
            }
        }
        let index = self.b.state.join(self.id());
        if fs::symlink_metadata(&index).is_ok() {
            left.push(format!("index {}", index.display()));
        }
        if pid_file && fs::symlink_metadata(&self.pid_file).is_ok() {
            left.push(format!("pid file {}", self.pid_file.display()));
        }
        left.sort();
        left
    }

    /// Wait (up to 10 s: a dying process may take a moment) until nothing
    /// is left; fail listing what is.
    #[track_caller]
    pub fn assert_nothing_left(&self, pid_file: bool, context: &str) {
        let start = Instant::now();
        loop {
            let left = self.leftovers(pid_file);
            if left.is_empty() {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("{context}: left behind:\n{}", left.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After a crash: nothing left, or `delete --force --bundle` cleans it
    /// all. Returns what was left (for the report).
    #[track_caller]
    pub fn nothing_left_or_cleanable(&self, pid_file: bool, context: &str) -> Vec<String> {
        let left = self.leftovers(pid_file);
        if left.is_empty() {
            return left;
        }
        let del = self.delete_force();
        assert_eq!(
            del.code,
            0,
            "{context}: delete --force after the crash failed; it was left:\n{}\n{del:#?}",
            left.join("\n")
        );
        assert_eq!(del.stderr, "", "{context}: delete --force said: {del:#?}");
        // The pid file is the client's: runc's delete leaves it too.
        self.assert_nothing_left(false, &format!("{context}, after delete --force"));
        left
    }
}

impl Drop for Ctr {
    /// A failed test must not leave its container behind.
    fn drop(&mut self) {
        let mut cmd = self.b.s.command(&harness().husk);
        cmd.arg("--root").arg(&self.b.state).args([
            "delete",
            "--force",
            "--bundle",
            self.bundle(),
            self.id(),
        ]);
        let _ = run_timeout(&mut cmd, None, Duration::from_secs(10));
        let pids = marked_processes(&self.mark).into_iter().map(|(p, _)| p);
        for pid in pids.chain(self.b.s.leftover_processes()) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// The ways husk is driven into a fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// `create` (the default config: with a PID namespace).
    Create,
    /// `start` of a created container.
    Start,
    /// `run` with a PID namespace: create + start + wait + delete.
    RunPidNs,
    /// `run` without a PID namespace: husk becomes the program.
    RunInPlace,
    /// `delete --force` of a running container.
    Delete,
}

const VERBS: [Verb; 5] = [
    Verb::Create,
    Verb::Start,
    Verb::RunPidNs,
    Verb::RunInPlace,
    Verb::Delete,
];

/// What the verb does when killed at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// husk itself is SIGKILLed: exit 137.
    Killed,
    /// The container process is SIGKILLed during setup; the verb fails
    /// with one line.
    Fails,
}

/// Which points a verb reaches, and what happens there.
fn expect(verb: Verb, point: &str) -> Option<Expect> {
    let (phase, _) = point.split_once(':').unwrap();
    match (verb, phase) {
        (Verb::Create, "create") => Some(Expect::Killed),
        (Verb::Create, "container") => Some(Expect::Fails),
        (Verb::Start, "start") => Some(Expect::Killed),
        // run starts the container itself: no FIFO, no `start`.
        (Verb::RunPidNs, "create") if point != "create:fifo" => Some(Expect::Killed),
        (Verb::RunPidNs, "run") => Some(Expect::Killed),
        (Verb::RunPidNs, "container") => Some(Expect::Fails),
        // run's cleanup passes the delete points after the kill.
        (Verb::RunPidNs, "delete") if point != "delete:killed" => Some(Expect::Killed),
        (Verb::RunInPlace, "container") => Some(Expect::Killed),
        (Verb::Delete, "delete") => Some(Expect::Killed),
        _ => None,
    }
}

/// Every listed point is reached by some verb with husk killed there (or,
/// for container points, the container process); a new point without a
/// crash test fails here.
#[test]
fn every_fault_point_is_covered() {
    for p in POINTS {
        assert!(
            VERBS.iter().any(|v| expect(*v, p).is_some()),
            "fault point {p} is reached by no crash test"
        );
        assert!(
            VERBS.iter().any(|v| expect(*v, p) == Some(Expect::Killed)),
            "fault point {p} never kills husk itself in the crash tests"
        );
    }
}

/// The container for `verb`'s crash test at `point`.
fn container_for(who: Who, verb: Verb, point: &str) -> Ctr {
    let mut b = Bundle::new(who);
    match verb {
        Verb::RunInPlace => {
            b.without_namespace("pid");
        }
        _ => {
            b.namespace("pid", None);
        }
    }
    // A program that keeps running where the crash should leave it
    // running; `run` otherwise gets one that exits at once (its cleanup
    // points, delete:*, come after the program exits, and a run that is
    // not killed where expected does not wait for a sleep).
    let runs_on = matches!(point.split(':').next(), Some("run"));
    if verb == Verb::RunPidNs && !runs_on {
        b.args(&["true"]);
    } else {
        b.sh("exec sleep 30");
    }
    Ctr::new(b)
}

/// Kill husk at every point `verb` reaches and check what is left.
fn crash_at_every_point(who: Who, verb: Verb) {
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for point in POINTS {
        let Some(want) = expect(verb, point) else {
            continue;
        };
        // Go on after a failing point, so one run shows every one.
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crash_at(who, verb, point, want)
        }));
        match res {
            Ok(left) => report.push(format!("{point}: left {left:?}")),
            Err(_) => failed.push(*point),
        }
    }
    eprintln!("{verb:?} as {who:?}:\n{}", report.join("\n"));
    assert!(
        failed.is_empty(),
        "{verb:?} as {who:?}: failed at {failed:?} (see above)"
    );
}

/// One crash: returns what was left before `delete --force`.
fn crash_at(who: Who, verb: Verb, point: &str, want: Expect) -> Vec<String> {
    let ctx = format!("{verb:?} killed at {point} as {who:?}");
    let c = container_for(who, verb, point);
    match verb {
        Verb::Start => c.created(),
        Verb::Delete => c.started(),
        _ => {}
    }
    let out = match verb {
        Verb::Create => c.create(Some(point)),
        Verb::Start => c.husk_fault(Some(point), &["start", c.id()]),
        Verb::RunPidNs | Verb::RunInPlace => c.run(Some(point)),
        Verb::Delete => c.husk_fault(
            Some(point),
            &["delete", "--force", "--bundle", c.bundle(), c.id()],
        ),
    };
    match want {
        Expect::Killed => assert_eq!(
            out.code,
            128 + libc::SIGKILL,
            "{ctx}: expected death by SIGKILL: {out:#?}"
        ),
        Expect::Fails => {
            assert!(
                out.code != 0 && out.code != 128 + libc::SIGKILL,
                "{ctx}: expected a failure: {out:#?}"
            );
            let err = out.stderr.trim();
            assert_eq!(err.lines().count(), 1, "{ctx}: one line: {out:#?}");
            assert!(err.starts_with("husk: "), "{ctx}: {out:#?}");
        }
    }
    // The pid file counts for create (no pid file before the container
    // is complete); after a successful create it is the client's.
    let left = c.nothing_left_or_cleanable(verb == Verb::Create, &ctx);
    if verb == Verb::Create {
        // The ID is free again: create, check, delete.
        let _ = fs::remove_file(&c.pid_file);
        let again = c.create(None);
        assert_eq!(again.code, 0, "{ctx}: create again: {again:#?}");
        assert_eq!(c.status(), "created", "{ctx}: create again");
        c.delete_force().ok();
        c.assert_nothing_left(false, &format!("{ctx}, create again + delete"));
    }
    left
}

fn create_killed_at_every_point(who: Who) {
    crash_at_every_point(who, Verb::Create)
}
both!(create_killed_at_every_point);

fn start_killed_at_every_point(who: Who) {
    crash_at_every_point(who, Verb::Start)
}
both!(start_killed_at_every_point);

fn run_killed_at_every_point(who: Who) {
    crash_at_every_point(who, Verb::RunPidNs)
}
both!(run_killed_at_every_point);

fn run_in_place_killed_at_every_point(who: Who) {
    crash_at_every_point(who, Verb::RunInPlace)
}
both!(run_in_place_killed_at_every_point);

fn delete_killed_at_every_point(who: Who) {
    crash_at_every_point(who, Verb::Delete)
}
both!(delete_killed_at_every_point);

/// `start` killed right after it opened the FIFO (the FIFO is still
/// there; the program runs, or the container process died writing to a
/// FIFO nobody reads): the next `start` must not hang until the program
/// exits, and `state` must not call a running program `created`.
/// Bug class: status computed from a FIFO that a crash left behind.
fn start_again_after_start_crash(who: Who) {
    let mut b = Bundle::new(who);
    b.sh("exec sleep 30");
    let c = Ctr::new(b);
    c.created();
    let pid: u32 = fs::read_to_string(&c.pid_file).unwrap().parse().unwrap();
    let out = c.husk_fault(Some("start:opened"), &["start", c.id()]);
    assert_eq!(out.code, 128 + libc::SIGKILL, "{out:#?}");
    let running = || !marked_processes(&c.mark).is_empty();
    let gone = || {
        !std::path::Path::new(&format!("/proc/{pid}/exe")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    };
    wait_for("the program to run or the container to die", || {
        running() || gone()
    });
    let t = Instant::now();
    let mut cmd = c.cmd(None, &["start", c.id()]);
    let again = run_timeout(&mut cmd, None, Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_secs(5) && again.code != -1,
        "a second start hung for {:?} (program running: {}): {again:#?}",
        t.elapsed(),
        running()
    );
    let want = if running() { "running" } else { "stopped" };
    assert_eq!(c.status(), want, "status after start crashed");
    c.delete_force().ok();
    c.assert_nothing_left(false, "after delete --force");
}
both!(start_again_after_start_crash);
