//! The OCI lifecycle verbs driven directly, the way runc is driven:
//! `create`, `start`, `state`, `kill`, `delete`, `list`, `ps`, `--version`,
//! and the stateless extensions (`--bundle` on every verb, the bundle path
//! as the ID, no dependence on the `--root` index).

use crate::common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// A container driven through the lifecycle verbs, with its program's
/// stdout (inherited from `create`) captured in a file, a host directory
/// bound read-only at /mnt to steer the program, and an environment
/// variable that marks every process of it.
struct Oci {
    b: Bundle,
    pid_file: PathBuf,
    /// The program's stdout: `create`'s stdout.
    output: PathBuf,
    /// Bound at /mnt (read-only) in the container.
    ctl: PathBuf,
    /// In the program's environment (and so in every process it starts).
    mark: String,
}

impl Oci {
    fn new(who: Who, script: &str) -> Oci {
        let mut b = Bundle::new(who);
        let ctl = b.s.mkdir("ctl");
        let mark = format!("husk-it-mark-{}-end", b.s.id);
        b.sh(script)
            .set("/process/env/-", json!(format!("HUSK_IT_MARK={mark}")))
            .set("/annotations", json!({"org.husk.test": "yes"}))
            .mount(json!({"destination": "/mnt", "type": "bind",
                          "source": ctl, "options": ["rbind", "ro"]}));
        Oci {
            pid_file: b.s.dir.join("pid"),
            output: b.s.dir.join("output"),
            ctl,
            mark,
            b,
        }
    }

    fn id(&self) -> &str {
        &self.b.s.id
    }

    /// `husk --root STATE <args>` as the bundle's user, after writing
    /// config.json.
    fn husk(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.b.husk();
        cmd.arg("--root").arg(&self.b.state).args(args);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        eprintln!("husk {}: {out:?}", args.join(" "));
        out
    }

    /// `husk --root STATE create --bundle B --pid-file P ID`, its stdout
    /// (which the container keeps) going to `output`.
    fn create(&self) -> Outcome {
        let mut cmd = self.b.husk();
        cmd.arg("--root")
            .arg(&self.b.state)
            .arg("create")
            .arg("--bundle")
            .arg(&self.b.dir)
            .arg("--pid-file")
            .arg(&self.pid_file)
            .arg(self.id());
        let err = self.b.s.dir.join("create.err");
        let out = run_timeout_to(&mut cmd, None, TIMEOUT, &self.output, &err);
        eprintln!("husk create: {out:?}");
        out
    }

    /// `create` that must succeed; returns the PID from the pid file.
    #[track_caller]
    fn created(&self) -> u32 {
        let out = self.create();
        assert_eq!(out.code, 0, "husk create failed: {out:#?}");
        let text = fs::read_to_string(&self.pid_file).expect("no pid file after create");
        assert!(
            !text.ends_with('\n'),
            "pid file has a trailing newline: {text:?}"
        );
        text.parse()
            .unwrap_or_else(|e| panic!("pid file {text:?}: {e}"))
    }

    /// `create` then `start`, both succeeding; returns the PID.
    #[track_caller]
    fn started(&self) -> u32 {
        let pid = self.created();
        self.husk(&["start", self.id()]).ok();
        pid
    }

    /// `husk state <args>` as JSON.
    #[track_caller]
    fn state_with(&self, args: &[&str]) -> Value {
        let out = self.husk(&[&["state"], args].concat());
        serde_json::from_str(out.ok())
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out:#?}"))
    }

    #[track_caller]
    fn state(&self) -> Value {
        self.state_with(&[self.id()])
    }

    #[track_caller]
    fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// Let the program past `wait_go` (see `WAIT_GO`).
    fn go(&self) {
        fs::write(self.ctl.join("go"), "").unwrap();
    }

    /// What the program wrote on stdout so far.
    fn output(&self) -> String {
        fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn wait_output(&self, line: &str) {
        wait_for(&format!("{line:?} on the container's stdout"), || {
            self.output().lines().any(|l| l == line)
        });
    }

    fn wait_status(&self, status: &str) {
        wait_for(&format!("status {status}"), || self.status() == status);
    }

    /// The container's processes still on the host.
    fn processes(&self) -> Vec<(u32, String)> {
        marked_processes(&self.mark)
    }

    /// This test's husk processes: those carrying its environment marker
    /// (husk and its forks that have not exec'd), and the container
    /// process `pid` while its image is still the husk binary.
    fn husk_processes(&self, pid: u32) -> Vec<u32> {
        let mut found = self.b.s.leftover_processes();
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.as_ref() == Some(&harness().husk) && !found.contains(&pid) {
            found.push(pid);
        }
        found.sort();
        found
    }

    /// Names in the bundle directory.
    fn bundle_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.b.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Oci {
    /// A failed test must not leave its container running.
    fn drop(&mut self) {
        let bundle = ["--bundle", self.b.dir.to_str().unwrap()];
        for extra in [&bundle[..], &[]] {
            let mut cmd = self.b.s.command(&harness().husk);
            cmd.arg("--root")
                .arg(&self.b.state)
                .args(["delete", "--force"]);
            cmd.args(extra).arg(self.id());
            if run_timeout(&mut cmd, None, Duration::from_secs(10)).code == 0 {
                break;
            }
        }
        let parked = fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.parse().ok());
        let parked = parked.filter(|pid| self.husk_processes(*pid).contains(pid));
        for pid in self
            .processes()
            .into_iter()
            .map(|(pid, _)| pid)
            .chain(parked)
        {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Shell: wait until the host creates ctl/go (`Oci::go`).
const WAIT_GO: &str = "while [ ! -e /mnt/go ]; do sleep 0.05; done";

/// Whether a host PID is gone or a zombie.
fn dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .unwrap()
            .1
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

/// create → created (PID from the pid file, parked, the only husk process)
/// → start → running (no husk process left) → the program exits → stopped,
/// and it stays stopped → delete → the ID does not exist, and the bundle
/// holds only what it held before create.
fn create_start_state_delete(who: Who) {
    let c = Oci::new(who, &format!("echo started; {WAIT_GO}; echo done"));
    c.b.write_config();
    let before = c.bundle_files();

    let pid = c.created();
    let st = c.state();
    for field in ["ociVersion", "id", "status", "pid", "bundle"] {
        assert!(st.get(field).is_some(), "state has no {field}: {st}");
    }
    assert_eq!(st["id"], c.id(), "{st}");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], pid, "state pid vs the pid file: {st}");
    assert_eq!(st["bundle"], c.b.dir.to_str().unwrap(), "{st}");
    assert_eq!(st["annotations"]["org.husk.test"], "yes", "{st}");
    assert!(!dead(pid), "the parked process {pid} is not alive");
    assert_eq!(
        c.husk_processes(pid),
        vec![pid],
        "after create, the parked container process is the only husk process"
    );
    assert_eq!(c.output(), "", "the program ran before start");

    c.husk(&["start", c.id()]).ok();
    assert_eq!(
        c.husk_processes(pid),
        Vec::<u32>::new(),
        "husk processes remain after start returned"
    );
    let st = c.state();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    c.wait_output("started");

    c.go();
    c.wait_output("done");
    c.wait_status("stopped");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.status(), "stopped", "stopped must persist until delete");
    let again = c.husk(&["start", c.id()]);
    assert_ne!(again.code, 0, "start of a stopped container: {again:#?}");
    assert_eq!(c.status(), "stopped", "a refused start changed the status");

    c.husk(&["delete", c.id()]).ok();
    let gone = c.husk(&["state", c.id()]);
    assert_ne!(gone.code, 0, "state after delete: {gone:#?}");
    assert!(
        gone.stderr.contains("does not exist"),
        "state after delete should say the container does not exist: {gone:#?}"
    );
    assert_eq!(c.bundle_files(), before, "delete left files in the bundle");
    let twice = c.husk(&["delete", c.id()]);
    assert!(
        (1..128).contains(&twice.code),
        "deleting twice must fail cleanly: {twice:#?}"
    );
}
both!(create_start_state_delete);

/// Signals by name (with and without SIG), by number, and absent (SIGTERM).
fn kill_signal_forms(who: Who) {
    let c = Oci::new(
        who,
        "trap 'echo USR1' USR1; trap 'echo USR2' USR2; trap 'echo HUP' HUP; \
         trap 'echo TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    c.started();
    c.wait_output("ready");
    for (sig, seen) in [("USR1", "USR1"), ("SIGUSR2", "USR2"), ("1", "HUP")] {
        c.husk(&["kill", c.id(), sig]).ok();
        c.wait_output(seen);
    }
    let bad = c.husk(&["kill", c.id(), "NOSUCHSIG"]);
    assert_ne!(bad.code, 0, "kill with a bad signal: {bad:#?}");
    c.husk(&["kill", c.id()]).ok();
    c.wait_output("TERM");
    c.wait_status("stopped");
    c.husk(&["delete", c.id()]).ok();
}
both!(kill_signal_forms);

/// delete refuses a running container without --force and changes
/// nothing; with --force it kills it.
fn delete_running_needs_force(who: Who) {
    let c = Oci::new(who, "exec sleep 1000");
    let pid = c.started();
    let refused = c.husk(&["delete", c.id()]);
    assert_ne!(
        refused.code, 0,
        "delete of a running container: {refused:#?}"
    );
    assert_eq!(c.status(), "running");
    assert!(!dead(pid));
    c.husk(&["delete", "--force", c.id()]).ok();
    wait_for("the container process to die", || dead(pid));
    let gone = c.husk(&["state", c.id()]);
    assert_ne!(gone.code, 0, "state after delete --force: {gone:#?}");
}
both!(delete_running_needs_force);

/// Deleting, starting, killing or querying an unknown ID is an error that
/// names it.
#[test]
fn unknown_id_is_an_error() {
    let c = Oci::new(Who::User, "true");
    let id = format!("{}-nosuch", c.id());
    for verb in ["delete", "state", "start", "kill"] {
        c.husk(&[verb, &id]).husk_error(&id);
    }
}

/// A second create with the same ID is refused and leaves the first alone.
#[test]
fn duplicate_create_refused() {
    let c = Oci::new(Who::User, "exec sleep 1000");
    let pid = c.created();
    let dup = Oci::new(Who::User, "exec sleep 1000");
    let mut cmd = dup.b.husk();
    cmd.arg("--root")
        .arg(&c.b.state)
        .args(["create", "--bundle"])
        .arg(&dup.b.dir)
        .arg("--pid-file")
        .arg(&dup.pid_file)
        .arg(c.id());
    let out = run_timeout(&mut cmd, None, TIMEOUT);
    assert_ne!(out.code, 0, "duplicate create: {out:#?}");
    assert_eq!(dup.processes(), vec![], "the refused create left a process");
    let st = c.state();
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_u64()),
        (Some("created"), Some(pid as u64))
    );
    assert_eq!(st["bundle"], c.b.dir.to_str().unwrap());
}

/// With the whole --root directory gone, state, kill and delete still work
/// when given --bundle.
#[test]
fn bundle_flag_works_without_the_root_index() {
    let c = Oci::new(Who::User, "exec sleep 1000");
    let pid = c.started();
    fs::remove_dir_all(&c.b.state).unwrap();
    let bundle = c.b.dir.to_str().unwrap();
    let st = c.state_with(&["--bundle", bundle, c.id()]);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], pid, "{st}");
    c.husk(&["kill", "--bundle", bundle, c.id(), "KILL"]).ok();
    wait_for("the container process to die", || dead(pid));
    wait_for("status stopped", || {
        c.state_with(&["--bundle", bundle, c.id()])["status"] == "stopped"
    });
    c.husk(&["delete", "--bundle", bundle, c.id()]).ok();
}

/// The absolute bundle path is accepted wherever an ID is.
#[test]
fn bundle_path_as_id() {
    let c = Oci::new(Who::User, &format!("{WAIT_GO}; exec sleep 1000"));
    let pid = c.created();
    let bundle = c.b.dir.to_str().unwrap();
    let st = c.state_with(&[bundle]);
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_u64()),
        (Some("created"), Some(pid as u64)),
        "{st}"
    );
    c.husk(&["start", bundle]).ok();
    assert_eq!(c.state_with(&[bundle])["status"], "running");
    c.husk(&["kill", bundle, "KILL"]).ok();
    wait_for("the container process to die", || dead(pid));
    c.husk(&["delete", bundle]).ok();
    assert_ne!(c.husk(&["state", c.id()]).code, 0, "state after delete");
}

/// The stateless extension end to end: `create` with the absolute bundle
/// path as the ID (regression: `create` refused it while later verbs
/// accepted it), then every verb by path, with no index entry made.
#[test]
fn create_with_bundle_path_as_id() {
    let c = Oci::new(Who::User, "exec sleep 1000");
    let bundle = c.b.dir.to_str().unwrap().to_string();
    c.b.write_config();
    let create = c.husk(&["create", "--bundle", &bundle, &bundle]);
    create.ok();
    assert_eq!(c.state_with(&[bundle.as_str()])["status"], "created");
    assert_eq!(c.state_with(&[bundle.as_str()])["id"], bundle.as_str());
    c.husk(&["start", &bundle]).ok();
    assert_eq!(c.state_with(&[bundle.as_str()])["status"], "running");
    c.husk(&["delete", "--force", &bundle]).ok();
    assert_ne!(c.husk(&["state", &bundle]).code, 0, "state after delete");
    let leftovers: Vec<_> = fs::read_dir(&c.b.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".husk"))
        .collect();
    assert!(leftovers.is_empty(), "left in the bundle: {leftovers:?}");
}

/// `list` shows the container with its status; `ps` shows its process.
#[test]
fn list_and_ps() {
    let c = Oci::new(Who::User, "exec sleep 1000");
    let pid = c.started();
    let list = c.husk(&["list"]);
    let line = list
        .ok()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(c.id()))
        .unwrap_or_else(|| panic!("list does not show {}: {list:#?}", c.id()));
    assert!(line.contains("running"), "list line: {line:?}");
    let json = c.husk(&["list", "--format", "json"]);
    let all: Value = serde_json::from_str(json.ok()).expect("list --format json");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == c.id() && e["status"] == "running"),
        "{all}"
    );
    let ps = c.husk(&["ps", c.id()]);
    assert!(
        ps.ok().split_whitespace().any(|w| w == pid.to_string()),
        "ps does not show {pid}: {ps:#?}"
    );
}

#[test]
fn version() {
    let c = Oci::new(Who::User, "true");
    let v = c.husk(&["--version"]);
    assert!(!v.ok().trim().is_empty(), "{v:#?}");
}

/// The container starts a double-forked daemon (re-parented out of the
/// container's process tree, in its own session). `kill --all` (then
/// `delete`) or `delete --force` must leave no process of the container,
/// with and without a pid namespace (without one, the kernel does not kill
/// the daemon with the container's init: only the namespace scan finds it).
fn daemon_reaped(who: Who, pid_ns: bool, force_delete: bool) {
    let mut c = Oci::new(who, "");
    let daemon = format!("husk-it-daemon-{}-end", c.id());
    c.b.sh(&format!(
        "(setsid sh -c 'sleep 1000; echo' {daemon} &); echo ready; exec sleep 1000"
    ));
    if !pid_ns {
        c.b.without_namespace("pid");
    }
    c.started();
    c.wait_output("ready");
    wait_for("the daemon and its sleep", || {
        let p = c.processes();
        p.len() >= 3 && p.iter().any(|(_, cmd)| cmd.contains(&daemon))
    });
    if force_delete {
        c.husk(&["delete", "--force", c.id()]).ok();
    } else {
        c.husk(&["kill", "--all", c.id(), "KILL"]).ok();
        wait_for("the processes to die", || c.processes().is_empty());
        c.wait_status("stopped");
        c.husk(&["delete", c.id()]).ok();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.processes(), vec![], "processes of the container remain");
}

mod daemon {
    use super::*;
    #[test]
    fn kill_all_pid_ns() {
        daemon_reaped(Who::User, true, false)
    }
    #[test]
    fn kill_all_no_pid_ns() {
        daemon_reaped(Who::User, false, false)
    }
    #[test]
    fn delete_force_pid_ns() {
        daemon_reaped(Who::User, true, true)
    }
    #[test]
    fn delete_force_no_pid_ns() {
        daemon_reaped(Who::User, false, true)
    }
    #[test]
    fn delete_force_no_pid_ns_root() {
        daemon_reaped(Who::Root, false, true)
    }
}
