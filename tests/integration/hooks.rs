//! OCI hooks driven through the lifecycle verbs: each of the six kinds runs
//! once, in order, in the namespace DESIGN.md ("Where each hook runs") puts
//! it, with the state on stdin, exactly its own `env` and `args`, and its
//! `timeout`; a failing create-phase hook undoes `create`, a failing
//! poststart/poststop hook only warns. Also runc's logging habits (`--log`,
//! `--log-format json`, `--debug`), an environment with only PATH, and
//! `--version`.

use crate::common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The six hook kinds in the order one lifecycle runs them.
const PHASES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Hooks run with exactly their configured environment: give the shell
/// scripts a PATH.
const HOOK_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// A container driven through `create`/`start`/`state`/`delete`, its
/// program's stdout (inherited from `create`) going to a file.
pub struct Life {
    pub b: Bundle,
    pub pid_file: PathBuf,
    pub output: PathBuf,
}

impl Life {
    pub fn new(b: Bundle) -> Life {
        Life {
            pid_file: b.s.dir.join("pid"),
            output: b.s.dir.join("output"),
            b,
        }
    }

    pub fn id(&self) -> &str {
        &self.b.s.id
    }

    /// `husk --root STATE <args>` as the bundle's user.
    pub fn husk(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.b.husk();
        cmd.arg("--root").arg(&self.b.state).args(args);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        eprintln!("husk {}: {out:?}", args.join(" "));
        out
    }

    /// `husk --root STATE create --bundle B --pid-file P <extra> ID`.
    pub fn create(&self, extra: &[&str]) -> Outcome {
        let mut cmd = self.b.husk();
        cmd.arg("--root")
            .arg(&self.b.state)
            .arg("create")
            .arg("--bundle")
            .arg(&self.b.dir)
            .arg("--pid-file")
            .arg(&self.pid_file)
            .args(extra)
            .arg(self.id());
        let err = self.b.s.dir.join("create.err");
        let out = run_timeout_to(&mut cmd, None, TIMEOUT, &self.output, &err);
        eprintln!("husk create: {out:?}");
        out
    }

    /// `create` that must succeed; the container's PID.
    #[track_caller]
    pub fn created(&self, extra: &[&str]) -> u32 {
        let out = self.create(extra);
        assert_eq!(out.code, 0, "husk create failed: {out:#?}");
        fs::read_to_string(&self.pid_file)
            .expect("no pid file after create")
            .parse()
            .unwrap()
    }

    #[track_caller]
    pub fn status(&self) -> String {
        let out = self.husk(&["state", self.id()]);
        let v: Value = serde_json::from_str(out.ok())
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out:#?}"));
        v["status"].as_str().unwrap().to_string()
    }

    #[track_caller]
    pub fn wait_stopped(&self) {
        wait_for("the container to stop", || self.status() == "stopped");
    }

    /// A failed `create` left nothing behind: no husk or container process,
    /// no record or FIFO in the bundle, no index entry, no pid file.
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        self.assert_deleted();
        assert!(!self.pid_file.exists(), "pid file left behind");
    }

    /// After `delete`: as `assert_nothing_left`, except the pid file (the
    /// client's; runc's delete leaves it too).
    #[track_caller]
    pub fn assert_deleted(&self) {
        assert_eq!(
            self.b.s.leftover_processes(),
            Vec::<u32>::new(),
            "processes left behind"
        );
        let mut files: Vec<String> = fs::read_dir(&self.b.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["config.json"], "files left in the bundle");
        let index = self.b.state.join(self.id());
        assert!(
            fs::symlink_metadata(&index).is_err(),
            "index entry {index:?} left behind"
        );
    }
}

/// A hook entry.
fn hook(path: &str, args: &[&str], env: &[&str]) -> Value {
    json!({"path": path, "args": args, "env": env})
}

/// The script every phase runs: one line `PHASE MNT-NS STATE` appended to
/// the log named by $2. Runs under the host's /bin/sh (dash) and the
/// container's (busybox).
const LOG_HOOK: &str = r#"#!/bin/sh
state=$(cat)
printf '%s %s %s\n' "$1" "$(readlink /proc/self/ns/mnt)" "$state" >> "$2"
"#;

/// A bundle whose six hooks each log a line (see `LOG_HOOK`) into
/// `<scratch>/log/hooks.log`, which the container sees at /hooklog: the
/// startContainer hook runs after pivot_root, so its script is copied into
/// a private rootfs at /hookbin. Returns the bundle and the host log path.
fn logging_hooks(who: Who) -> (Bundle, PathBuf) {
    let mut b = Bundle::new(who);
    let rootfs = b.private_rootfs();
    let logdir = b.s.mkdir("log");
    let host_log = logdir.join("hooks.log");
    let script = b.s.write("hook.sh", LOG_HOOK, 0o755);
    let bin = rootfs.join("hookbin");
    mkdir_mode(&bin, 0o755);
    b.s.give(&bin);
    fs::write(bin.join("hook.sh"), LOG_HOOK).unwrap();
    fs::set_permissions(
        bin.join("hook.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.s.give(&bin.join("hook.sh"));
    mkdir_mode(&rootfs.join("hooklog"), 0o755);
    b.s.give(&rootfs.join("hooklog"));

    let script = script.to_str().unwrap();
    let host = host_log.to_str().unwrap();
    let h =
        |phase: &str, path: &str, log: &str| json!([hook(path, &[path, phase, log], &[HOOK_PATH])]);
    b.set("/hooks/prestart", h("prestart", script, host))
        .set("/hooks/createRuntime", h("createRuntime", script, host))
        .set("/hooks/createContainer", h("createContainer", script, host))
        .set(
            "/hooks/startContainer",
            h("startContainer", "/hookbin/hook.sh", "/hooklog/hooks.log"),
        )
        .set("/hooks/poststart", h("poststart", script, host))
        .set("/hooks/poststop", h("poststop", script, host))
        .mount(json!({"destination": "/hooklog", "type": "bind",
                      "source": logdir, "options": ["rbind", "rw"]}))
        .args(&["true"]);
    (b, host_log)
}

/// One logged hook run.
#[derive(Debug)]
struct Ran {
    phase: String,
    mnt_ns: String,
    state: Value,
}

fn read_log(log: &Path) -> Vec<Ran> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            let (phase, ns, state) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
            Ran {
                phase: phase.into(),
                mnt_ns: ns.into(),
                state: serde_json::from_str(state)
                    .unwrap_or_else(|e| panic!("{phase}: state on stdin is not JSON ({e}): {l:?}")),
            }
        })
        .collect()
}

/// The phases in the log, in order.
fn phases(ran: &[Ran]) -> Vec<&str> {
    ran.iter().map(|r| r.phase.as_str()).collect()
}

/// create, start, wait, delete a container with all six hooks; the log and
/// the container's PID and mount namespace.
fn full_lifecycle(who: Who) -> (Life, Vec<Ran>, u32, String) {
    let (b, log) = logging_hooks(who);
    let life = Life::new(b);
    let pid = life.created(&[]);
    let container_mnt = ns_link(&pid.to_string(), "mnt");
    assert_eq!(
        phases(&read_log(&log)),
        &PHASES[..3],
        "after create: only the create-phase hooks"
    );
    life.husk(&["start", life.id()]).ok();
    life.wait_stopped();
    assert_eq!(
        phases(&read_log(&log)),
        &PHASES[..5],
        "after start: all but poststop"
    );
    life.husk(&["delete", life.id()]).ok();
    (life, read_log(&log), pid, container_mnt)
}

/// Each hook kind runs exactly once per lifecycle, in order, with the state
/// on stdin, in the mount namespace DESIGN.md gives it.
fn all_six_in_order(who: Who) {
    let (life, ran, pid, container_mnt) = full_lifecycle(who);
    assert_eq!(phases(&ran), PHASES, "{ran:#?}");
    let host_mnt = ns_link("self", "mnt");
    assert_ne!(
        host_mnt, container_mnt,
        "the container has no mount namespace"
    );
    let bundle = life.b.dir.to_str().unwrap();
    for r in &ran {
        let s = &r.state;
        assert_eq!(s["id"], life.id(), "{}: {s}", r.phase);
        assert_eq!(s["bundle"], bundle, "{}: {s}", r.phase);
        assert!(s["ociVersion"].is_string(), "{}: {s}", r.phase);
        let status = s["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no status: {s}", r.phase));
        match r.phase.as_str() {
            "prestart" | "createRuntime" | "createContainer" => {
                assert_eq!(status, "creating", "{}: {s}", r.phase)
            }
            // Checked by start_container_hook_sees_created.
            "startContainer" => {}
            "poststart" => assert_eq!(status, "running", "{}: {s}", r.phase),
            "poststop" => assert_eq!(status, "stopped", "{}: {s}", r.phase),
            _ => unreachable!(),
        }
        if r.phase != "poststop" {
            assert_eq!(s["pid"], pid, "{}: pid in the state: {s}", r.phase);
        }
        let want = match r.phase.as_str() {
            "createContainer" | "startContainer" => &container_mnt,
            _ => &host_mnt,
        };
        assert_eq!(&r.mnt_ns, want, "{}: wrong mount namespace", r.phase);
    }
}
both!(all_six_in_order);

/// startContainer runs during `start`, after `create` finished: the state
/// it gets says `created`, as runc's does (runc: standard_init_linux.go
/// sets `specs.StateCreated` for StartContainer).
fn start_container_hook_sees_created(who: Who) {
    let (_life, ran, _, _) = full_lifecycle(who);
    let sc = ran
        .iter()
        .find(|r| r.phase == "startContainer")
        .expect("startContainer did not run");
    assert_eq!(sc.state["status"], "created", "{}", sc.state);
}
both!(start_container_hook_sees_created);

/// `husk run` with hooks runs all six too, in order, each once.
fn run_runs_all_hooks(who: Who) {
    let (b, log) = logging_hooks(who);
    b.run().ok();
    let ran = read_log(&log);
    assert_eq!(phases(&ran), PHASES, "{ran:#?}");
    let host_mnt = ns_link("self", "mnt");
    for r in &ran {
        assert_eq!(r.state["id"], b.s.id.as_str(), "{}: {}", r.phase, r.state);
        match r.phase.as_str() {
            "createContainer" | "startContainer" => {
                assert_ne!(
                    r.mnt_ns, host_mnt,
                    "{} ran in the host's mount namespace",
                    r.phase
                )
            }
            _ => assert_eq!(
                r.mnt_ns, host_mnt,
                "{} left the host's mount namespace",
                r.phase
            ),
        }
    }
}
both!(run_runs_all_hooks);

/// `husk run` with only a PID namespace removed still runs the hooks (it
/// cannot become the program in place when there are hooks).
fn run_without_pidns_runs_hooks(who: Who) {
    let (mut b, log) = logging_hooks(who);
    b.without_namespace("pid");
    b.run().ok();
    assert_eq!(phases(&read_log(&log)), PHASES);
}
both!(run_without_pidns_runs_hooks);

/// A shell hook that writes its environment and argv (as execve gave
/// them) to DIR/PHASE.env and DIR/PHASE.args.
/// The shell's own PID as the mounted /proc sees it (before pivot_root in
/// a PID namespace, /proc is the host's and `$$` would be wrong): the
/// redirection of the builtin `read` opens /proc/self as the shell itself.
const DUMP: &str = r#"read -r me _ < /proc/self/stat; tr '\0' '\n' < /proc/$me/environ > "$2/$1.env"; tr '\0' '\n' < /proc/$me/cmdline > "$2/$1.args""#;

/// A hook's environment is exactly its `env` (nothing of husk's, nor the
/// container's), and its argv exactly `args`, both in the runtime and in
/// the container.
fn env_and_args_exact(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.s.mkdir("dump");
    let out = out.to_str().unwrap();
    let env = ["A=1", "B=two words", "EMPTY="];
    let args = |phase: &'static str| vec!["my-hook-argv0", "-c", DUMP, "script-name", phase, out];
    for phase in ["createRuntime", "createContainer", "poststart"] {
        b.set(
            &format!("/hooks/{phase}"),
            json!([hook("/bin/sh", &args(phase), &env)]),
        );
    }
    b.set("/process/env/-", json!("CONTAINER_ONLY=yes"));
    let life = Life::new(b);
    life.created(&[]);
    life.husk(&["start", life.id()]).ok();
    life.wait_stopped();
    life.husk(&["delete", life.id()]).ok();
    for phase in ["createRuntime", "createContainer", "poststart"] {
        let got_env = fs::read_to_string(format!("{out}/{phase}.env"))
            .unwrap_or_else(|e| panic!("{phase} hook did not run: {e}"));
        assert_eq!(got_env, "A=1\nB=two words\nEMPTY=\n", "{phase}: env");
        let got_args = fs::read_to_string(format!("{out}/{phase}.args")).unwrap();
        let want: String = args(phase).iter().map(|a| format!("{a}\n")).collect();
        assert_eq!(got_args, want, "{phase}: args");
    }
}
both!(env_and_args_exact);

/// A hook with no `env` gets an empty environment.
fn no_env_means_empty_env(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.s.mkdir("dump");
    let out = out.to_str().unwrap();
    b.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", DUMP, "x", "createRuntime", out]}]),
    );
    let life = Life::new(b);
    life.created(&[]);
    life.husk(&["delete", "--force", life.id()]).ok();
    let env = fs::read_to_string(format!("{out}/createRuntime.env")).unwrap();
    assert_eq!(env, "", "hook environment");
}
both!(no_env_means_empty_env);

/// A hook that outlives its `timeout` fails `create` quickly, with one
/// line naming the hook phase, and `create` leaves nothing behind (the
/// hook included).
fn timeout_fails_create(who: Who, phase: &str) {
    let mut b = Bundle::new(who);
    let mark = format!("husk-it-hook-{}-end", b.s.id);
    b.set(
        &format!("/hooks/{phase}"),
        json!([{"path": "/bin/sleep", "args": ["sleep", "30"],
                "env": [format!("HUSK_IT_MARK={mark}")], "timeout": 1}]),
    );
    let life = Life::new(b);
    let t = Instant::now();
    let out = life.create(&[]);
    let took = t.elapsed();
    out.husk_error(&format!("{phase} hook"));
    assert!(out.stderr.contains("timed out"), "{out:#?}");
    assert!(out.stderr.contains("/bin/sleep"), "{out:#?}");
    assert!(took < Duration::from_secs(10), "create took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "create took only {took:?}"
    );
    life.assert_nothing_left();
    assert_eq!(marked_processes(&mark), vec![], "the hook outlived create");
}

fn timeout_create_runtime(who: Who) {
    timeout_fails_create(who, "createRuntime")
}
both!(timeout_create_runtime);

fn timeout_prestart(who: Who) {
    timeout_fails_create(who, "prestart")
}
both!(timeout_prestart);

fn timeout_create_container(who: Who) {
    timeout_fails_create(who, "createContainer")
}
both!(timeout_create_container);

/// A hook within its timeout is fine.
fn timeout_not_reached(who: Who) {
    let mut b = Bundle::new(who);
    b.set(
        "/hooks/createRuntime",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.2"], "timeout": 5}]),
    );
    let life = Life::new(b);
    life.created(&[]);
    life.husk(&["delete", "--force", life.id()]).ok();
}
both!(timeout_not_reached);

/// A create-phase hook that exits 3 fails `create` with one line giving the
/// exit status (and what the hook said), and nothing is left behind.
fn failing_create_hook(who: Who, phase: &str) {
    let mut b = Bundle::new(who);
    b.set(
        &format!("/hooks/{phase}"),
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]}]),
    );
    let life = Life::new(b);
    let out = life.create(&[]);
    out.husk_error("exit status 3");
    assert!(out.stderr.contains(&format!("{phase} hook")), "{out:#?}");
    assert!(out.stderr.contains("hook-said-no"), "{out:#?}");
    life.assert_nothing_left();
    // The ID is free again.
    let out = life.husk(&["state", life.id()]);
    assert_ne!(out.code, 0, "{out:#?}");
}

fn failing_create_runtime(who: Who) {
    failing_create_hook(who, "createRuntime")
}
both!(failing_create_runtime);

fn failing_prestart(who: Who) {
    failing_create_hook(who, "prestart")
}
both!(failing_prestart);

fn failing_create_container(who: Who) {
    failing_create_hook(who, "createContainer")
}
both!(failing_create_container);

/// A failing startContainer hook: the program never runs, `start` fails
/// with one line naming the hook.
fn failing_start_container(who: Who) {
    let mut b = Bundle::new(who);
    b.set(
        "/hooks/startContainer",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]),
    )
    .sh("echo the-program-ran");
    let life = Life::new(b);
    life.created(&[]);
    let out = life.husk(&["start", life.id()]);
    out.husk_error("exit status 3");
    assert!(out.stderr.contains("startContainer hook"), "{out:#?}");
    let output = fs::read_to_string(&life.output).unwrap();
    assert!(!output.contains("the-program-ran"), "{output}");
    life.wait_stopped();
    life.husk(&["delete", life.id()]).ok();
}
both!(failing_start_container);

/// A failing poststart hook only warns: `start` succeeds and the program
/// runs on.
fn failing_poststart_warns(who: Who) {
    let mut b = Bundle::new(who);
    let ctl = b.s.mkdir("ctl");
    b.set(
        "/hooks/poststart",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo post-no >&2; exit 3"]}]),
    )
    .mount(
        json!({"destination": "/mnt", "type": "bind", "source": ctl, "options": ["rbind", "ro"]}),
    )
    .sh("while [ ! -e /mnt/go ]; do sleep 0.05; done; echo after-start");
    let life = Life::new(b);
    life.created(&[]);
    let out = life.husk(&["start", life.id()]);
    assert_eq!(out.code, 0, "start failed: {out:#?}");
    assert!(
        out.stderr.contains("poststart hook"),
        "no warning: {out:#?}"
    );
    assert!(out.stderr.contains("exit status 3"), "{out:#?}");
    assert_eq!(life.status(), "running");
    fs::write(ctl.join("go"), "").unwrap();
    life.wait_stopped();
    let output = fs::read_to_string(&life.output).unwrap();
    assert!(output.contains("after-start"), "{output:?}");
    life.husk(&["delete", life.id()]).ok();
}
both!(failing_poststart_warns);

/// A failing poststop hook only warns: `delete` succeeds and removes the
/// container.
fn failing_poststop_warns(who: Who) {
    let mut b = Bundle::new(who);
    b.set(
        "/hooks/poststop",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo stop-no >&2; exit 3"]}]),
    );
    let life = Life::new(b);
    life.created(&[]);
    life.husk(&["start", life.id()]).ok();
    life.wait_stopped();
    let out = life.husk(&["delete", life.id()]);
    assert_eq!(out.code, 0, "delete failed: {out:#?}");
    assert!(out.stderr.contains("poststop hook"), "no warning: {out:#?}");
    assert!(out.stderr.contains("exit status 3"), "{out:#?}");
    life.assert_deleted();
    let out = life.husk(&["state", life.id()]);
    assert_ne!(out.code, 0, "still there after delete: {out:#?}");
}
both!(failing_poststop_warns);

/// `delete --force` of a running container runs poststop too.
fn force_delete_runs_poststop(who: Who) {
    let mut b = Bundle::new(who);
    let out = b.s.mkdir("dump");
    let flag = out.join("poststop-ran");
    b.set(
        "/hooks/poststop",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", flag.display())]}]),
    )
    .args(&["sleep", "1000"]);
    let life = Life::new(b);
    life.created(&[]);
    life.husk(&["start", life.id()]).ok();
    assert_eq!(life.status(), "running");
    life.husk(&["delete", "--force", life.id()]).ok();
    let state: Value =
        serde_json::from_str(&fs::read_to_string(&flag).expect("poststop did not run")).unwrap();
    assert_eq!(state["status"], "stopped", "{state}");
    assert_eq!(state["id"], life.id(), "{state}");
}
both!(force_delete_runs_poststop);

/// A relative hook path is refused at create, before anything exists.
fn relative_hook_path(who: Who) {
    let mut b = Bundle::new(who);
    b.set("/hooks/prestart", json!([{"path": "bin/true"}]));
    let life = Life::new(b);
    let out = life.create(&[]);
    out.husk_error("bin/true");
    life.assert_nothing_left();
}
both!(relative_hook_path);

// ---- logging -----------------------------------------------------------

/// A bundle whose create fails: its rootfs does not exist.
fn failing_bundle(who: Who) -> Bundle {
    let mut b = Bundle::new(who);
    let missing = b.s.dir.join("no-such-rootfs");
    b.set("/root/path", json!(missing.to_str().unwrap()));
    b
}

/// `--log F --log-format json`: a failed create writes runc's JSON log
/// line (`level` error, `msg` the error, `time`), and stderr still says it.
fn json_log_on_failure(who: Who) {
    let life = Life::new(failing_bundle(who));
    let log = life.b.s.dir.join("husk.log");
    let out = life.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        life.b.dir.to_str().unwrap(),
        life.id(),
    ]);
    out.husk_error("no-such-rootfs");
    let text = fs::read_to_string(&log).expect("no log file written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let err = lines
        .iter()
        .find(|l| l["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {text}"));
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("no-such-rootfs"), "{err}");
    let shown = out.stderr.trim().strip_prefix("husk: ").unwrap();
    assert_eq!(msg, shown, "log and stderr disagree");
    assert!(err["time"].is_string(), "{err}");
    life.assert_nothing_left();
}
both!(json_log_on_failure);

/// `--log F` (text): a logfmt line like runc's.
fn text_log_on_failure(who: Who) {
    let life = Life::new(failing_bundle(who));
    let log = life.b.s.dir.join("husk.log");
    let out = life.husk(&[
        "--log",
        log.to_str().unwrap(),
        "create",
        "--bundle",
        life.b.dir.to_str().unwrap(),
        life.id(),
    ]);
    out.husk_error("no-such-rootfs");
    let text = fs::read_to_string(&log).expect("no log file written");
    let line = text
        .lines()
        .find(|l| l.contains("level=error"))
        .unwrap_or_else(|| panic!("no error line in {text:?}"));
    assert!(
        line.contains("msg=") && line.contains("no-such-rootfs"),
        "{line}"
    );
    assert!(line.starts_with("time=\""), "{line}");
}
both!(text_log_on_failure);

/// A warning (failing poststart hook) goes into the JSON log as
/// `level: warning`.
fn json_log_warning(who: Who) {
    let mut b = Bundle::new(who);
    b.set(
        "/hooks/poststart",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]),
    );
    let life = Life::new(b);
    let log = life.b.s.dir.join("husk.log");
    life.created(&[]);
    life.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        life.id(),
    ])
    .ok();
    let text = fs::read_to_string(&log).expect("no log file written");
    let warn = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["level"] == "warning")
        .unwrap_or_else(|| panic!("no warning in {text}"));
    assert!(
        warn["msg"].as_str().unwrap().contains("exit status 3"),
        "{warn}"
    );
    life.wait_stopped();
    life.husk(&["delete", life.id()]).ok();
}
both!(json_log_warning);

/// A config that makes husk take a fallback it notes: an ambient
/// capability that is not inheritable is skipped (as runc does).
fn fallback_bundle(who: Who) -> Bundle {
    let mut b = Bundle::new(who);
    b.set("/process/capabilities/ambient", json!(["CAP_CHOWN"]))
        .set("/process/capabilities/inheritable", json!([]))
        .sh("echo ran");
    b
}

/// `--debug` shows fallback notes on stderr; without it they are quiet.
fn debug_shows_fallbacks(who: Who) {
    let b = fallback_bundle(who);
    let mut cmd = b.husk();
    cmd.arg("--root")
        .arg(&b.state)
        .arg("--debug")
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.s.id);
    let out = Running::spawn(cmd, None).finish();
    assert_eq!(out.ok(), "ran\n");
    assert!(
        out.stderr.contains("debug") && out.stderr.contains("ambient"),
        "no fallback note with --debug: {out:#?}"
    );

    let quiet = b.run();
    assert_eq!(quiet.ok(), "ran\n");
    assert_eq!(quiet.stderr, "", "notes without --debug: {quiet:#?}");
}
both!(debug_shows_fallbacks);

/// With `--log F --debug`, fallback notes go into the log, also those
/// taken inside the container after pivot_root (the ambient-capability
/// note comes from the last step before execve).
fn debug_notes_reach_the_log(who: Who) {
    let b = fallback_bundle(who);
    let log = b.s.dir.join("debug.log");
    let mut cmd = b.husk();
    cmd.arg("--root")
        .arg(&b.state)
        .arg("--log")
        .arg(&log)
        .arg("--log-format=json")
        .arg("--debug")
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.s.id);
    let out = Running::spawn(cmd, None).finish();
    assert_eq!(out.ok(), "ran\n");
    assert_eq!(
        out.stderr, "",
        "with --log, notes belong in the log: {out:#?}"
    );
    let text = fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("--log {log:?} was never written ({e}); husk printed {out:#?}"));
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["level"] == "debug" && l["msg"].as_str().unwrap_or("").contains("ambient")),
        "no ambient-capability debug line in the log:\n{text}"
    );
}
both!(debug_notes_reach_the_log);

/// An error inside the container after pivot_root (the program does not
/// exist) still reaches `--log`, for `run` in place (no PID namespace, no
/// hooks: husk becomes the program) and through a PID namespace.
fn json_log_on_exec_failure(who: Who) {
    for pidns in [true, false] {
        let mut b = Bundle::new(who);
        b.args(&["/no-such-program"]);
        if !pidns {
            b.without_namespace("pid");
        }
        let log = b.s.dir.join(format!("exec-{pidns}.log"));
        let mut cmd = b.husk();
        cmd.arg("--root")
            .arg(&b.state)
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .args(["run", "--bundle"])
            .arg(&b.dir)
            .arg(&b.s.id);
        let out = Running::spawn(cmd, None).finish();
        out.husk_error("no-such-program");
        let text = fs::read_to_string(&log).unwrap_or_else(|e| {
            panic!(
                "pid namespace {pidns}: --log {log:?} was never written ({e}); husk printed {out:#?}"
            )
        });
        assert!(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|l| l["level"] == "error"
                    && l["msg"].as_str().unwrap_or("").contains("no-such-program")),
            "pid namespace {pidns}: no error line in the log:\n{text}"
        );
    }
}
both!(json_log_on_exec_failure);

/// The whole lifecycle with an environment of PATH alone (no $USER,
/// $HOME, $XDG_RUNTIME_DIR), with and without --root.
fn only_path_in_env(who: Who) {
    let mut b = Bundle::new(who);
    b.args(&["true"]);
    b.write_config();
    let husk = |root: Option<&Path>, args: &[&str]| -> Outcome {
        let mut cmd = b.s.command(&harness().husk);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(r) = root {
            cmd.arg("--root").arg(r);
        }
        cmd.args(args);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        eprintln!("husk {args:?}: {out:?}");
        out
    };
    let bundle = b.dir.to_str().unwrap();
    for root in [Some(b.state.as_path()), None] {
        let id = &b.s.id;
        husk(root, &["create", "--bundle", bundle, id]).ok();
        let list = husk(root, &["list", "-q"]);
        assert!(list.ok().lines().any(|l| l == id), "{list:#?}");
        husk(root, &["start", id]).ok();
        wait_for("stopped", || {
            let out = husk(root, &["state", id]);
            out.ok().contains("\"stopped\"")
        });
        husk(root, &["delete", id]).ok();
        assert_ne!(husk(root, &["state", id]).code, 0);
    }
    // `husk run` and `husk spec` too.
    let mut cmd = b.husk();
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("--root")
        .arg(&b.state)
        .args(["run", "--bundle", bundle])
        .arg(&b.s.id);
    b.write_config();
    let mut b2 = b.s.mkdir("bundle2");
    let out = husk(None, &["spec", "--bundle", b2.to_str().unwrap()]);
    out.ok();
    b2.push("config.json");
    assert!(b2.exists());
    let out = Running::spawn(cmd, None).finish();
    out.ok();
}
both!(only_path_in_env);

/// `husk --version` prints a version, like runc's first line.
#[test]
fn version() {
    let out = run_timeout(
        Command::new(&harness().husk).arg("--version"),
        None,
        TIMEOUT,
    );
    let first = out.ok().lines().next().unwrap_or("").to_string();
    assert!(
        first.starts_with("husk") && first.chars().any(|c| c.is_ascii_digit()),
        "{out:#?}"
    );
}
