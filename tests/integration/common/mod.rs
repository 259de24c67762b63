//! The integration-test harness: a shared busybox rootfs, an unprivileged
//! test user, per-test bundles, and `husk run` with a timeout.
//!
//! Tests must run as root (CI does): the harness creates the test user and
//! its subordinate ID ranges, and drops to it with `setpriv`.

#![allow(dead_code)] // Not every test module uses every helper.

use serde_json::{Value, json};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long any single husk invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

const TEST_USER: &str = "husk-test";
/// Size of the test user's /etc/subuid and /etc/subgid ranges.
pub const SUBID_COUNT: u32 = 65536;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Who runs husk: real root, or the unprivileged test user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Root,
    User,
}

/// The unprivileged test user and its subordinate ID ranges.
#[derive(Debug)]
pub struct TestUser {
    pub uid: u32,
    pub gid: u32,
    pub subuid_start: u32,
    pub subgid_start: u32,
}

/// What every test shares, set up once per test run.
#[derive(Debug)]
pub struct Harness {
    /// /tmp/husk-it-<pid>: everything the run creates lives here.
    pub base: PathBuf,
    /// The shared busybox rootfs (absolute). Tests must not write into it.
    pub rootfs: PathBuf,
    /// A world-executable copy of the husk binary (the build tree may sit
    /// in a directory the test user cannot enter, e.g. /root).
    pub husk: PathBuf,
    /// A world-readable copy of tools/mkbundle, for the same reason.
    pub mkbundle: PathBuf,
    pub user: TestUser,
}

/// The harness, built on first use.
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "the husk integration tests must run as root (they create the \
             test user {TEST_USER} and drop privileges with setpriv); \
             run them with sudo or as root, as CI does"
        );
        remove_stale_runs();
        let base = PathBuf::from(format!("/tmp/husk-it-{}", std::process::id()));
        mkdir_mode(&base, 0o755);
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/mkbundle");
        let mkbundle = copy_executable(&tools, &base.join("mkbundle"));
        // HUSK_IT_BIN swaps in another runtime with runc's CLI, e.g. runc
        // itself, to check what the tests expect against a reference.
        let bin = std::env::var_os("HUSK_IT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_husk")));
        let husk = copy_executable(&bin, &base.join("husk"));
        let bundle = base.join("shared");
        run_ok(Command::new(&mkbundle).arg(&bundle));
        Harness {
            rootfs: bundle.join("rootfs"),
            base,
            husk,
            mkbundle,
            user: test_user(),
        }
    })
}

/// Remove the directories of earlier test runs (about 100 MB each) whose
/// process is gone, unless something is still mounted in them.
fn remove_stale_runs() {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for entry in fs::read_dir("/tmp").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("husk-it-") else {
            continue;
        };
        let path = entry.path();
        let alive = Path::new("/proc").join(pid).exists();
        if !alive && !mounts.contains(path.to_str().unwrap()) {
            let _ = Command::new("rm")
                .arg("-rf")
                .arg("--one-file-system")
                .arg(&path)
                .status();
        }
    }
}

fn copy_executable(from: &Path, to: &Path) -> PathBuf {
    fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from:?} to {to:?}: {e}"));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    to.to_path_buf()
}

pub fn mkdir_mode(dir: &Path, mode: u32) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
}

/// Run a host command, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Create the test user (a home-less system account) and its subordinate ID
/// ranges when missing.
fn test_user() -> TestUser {
    if Command::new("id")
        .arg(TEST_USER)
        .output()
        .unwrap()
        .status
        .code()
        != Some(0)
    {
        run_ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ]));
    }
    let id = |flag: &str| -> u32 {
        run_ok(Command::new("id").args([flag, TEST_USER]))
            .trim()
            .parse()
            .unwrap()
    };
    TestUser {
        uid: id("-u"),
        gid: id("-g"),
        subuid_start: subid_range(Path::new("/etc/subuid")),
        subgid_start: subid_range(Path::new("/etc/subgid")),
    }
}

/// The start of the test user's range in /etc/subuid or /etc/subgid,
/// appending a fresh range after every existing one when there is none.
fn subid_range(file: &Path) -> u32 {
    let text = fs::read_to_string(file).unwrap_or_default();
    let ranges: Vec<(&str, u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, start, count) = (f.next()?, f.next()?, f.next()?);
            Some((name, start.parse().ok()?, count.parse().ok()?))
        })
        .collect();
    if let Some((_, start, count)) = ranges.iter().find(|(n, ..)| *n == TEST_USER) {
        assert!(
            *count >= SUBID_COUNT as u64,
            "{file:?}: {TEST_USER} has a range of {count}, the tests need {SUBID_COUNT}"
        );
        return *start as u32;
    }
    let start = ranges
        .iter()
        .map(|(_, s, c)| s + c)
        .max()
        .unwrap_or(0)
        .max(100_000) as u32;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .unwrap();
    if !text.is_empty() && !text.ends_with('\n') {
        writeln!(f).unwrap();
    }
    writeln!(f, "{TEST_USER}:{start}:{SUBID_COUNT}").unwrap();
    start
}

/// A fresh directory for one test, owned by `who`, with a unique name.
pub struct Scratch {
    pub who: Who,
    pub dir: PathBuf,
    /// Unique across the test run; used as the container ID.
    pub id: String,
}

impl Scratch {
    pub fn new(who: Who) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let h = harness();
        let id = format!(
            "it{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = h.base.join(&id);
        let s = Scratch { who, dir, id };
        s.mkdir("");
        s
    }

    /// Make `dir/rel` (0755) owned by `who`, and return it.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let d = self.dir.join(rel);
        mkdir_mode(&d, 0o755);
        self.give(&d);
        d
    }

    /// Write a file owned by `who`.
    pub fn write(&self, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.dir.join(rel);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        self.give(&p);
        p
    }

    /// chown a path to `who` (a no-op for root).
    pub fn give(&self, path: &Path) {
        if self.who == Who::User {
            let u = &harness().user;
            chown(path, Some(u.uid), Some(u.gid)).unwrap();
        }
    }

    /// A command that runs `program` as `who`: for the user, through
    /// `setpriv` (no supplementary groups, no inheritable capabilities; the
    /// bounding set is left full, as an ordinary login has it, because an
    /// empty one would strip setuid `newuidmap` of its capabilities). The
    /// environment holds only PATH, XDG_RUNTIME_DIR and a marker naming this
    /// test (see `leftover_processes`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = match self.who {
            Who::Root => Command::new(program),
            Who::User => {
                let u = &harness().user;
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={}", u.uid))
                    .arg(format!("--regid={}", u.gid))
                    .args(["--clear-groups", "--inh-caps=-all", "--"])
                    .arg(program);
                c
            }
        };
        let xdg = self.mkdir("xdg");
        cmd.env_clear()
            .env("PATH", PATH)
            .env("XDG_RUNTIME_DIR", xdg)
            .env("HUSK_IT_HOST", &self.id)
            .current_dir(&self.dir);
        cmd
    }

    /// PIDs of processes still carrying this test's environment marker:
    /// husk processes (and their forks that never reached `execve`).
    pub fn leftover_processes(&self) -> Vec<u32> {
        let marker = format!("HUSK_IT_HOST={}", self.id);
        pids()
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Lines of the host's mount table that mention this test's directory.
    pub fn leftover_mounts(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&dir))
            .map(String::from)
            .collect()
    }
}

/// All PIDs on the host.
pub fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// What a finished `husk` invocation did. `code` is the exit status, or
/// 128+N when it was killed by signal N (as a shell reports it).
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Assert success and return stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "husk run failed: {self:#?}");
        &self.stdout
    }

    /// Assert a husk error: non-zero exit and exactly one stderr line of the
    /// form `husk: <step>: ...` that mentions `value`.
    #[track_caller]
    pub fn husk_error(&self, value: &str) {
        assert_ne!(self.code, 0, "expected failure: {self:#?}");
        let err = self.stderr.trim();
        assert_eq!(
            err.lines().count(),
            1,
            "expected one stderr line: {self:#?}"
        );
        assert!(
            err.starts_with("husk: "),
            "not a husk error line: {self:#?}"
        );
        assert!(
            err.contains(value),
            "error does not mention {value:?}: {self:#?}"
        );
    }
}

/// One container: its scratch directory, bundle and config.json.
pub struct Bundle {
    pub s: Scratch,
    /// The bundle directory (holds config.json only, unless a test adds).
    pub dir: PathBuf,
    /// The state root passed as `--root`, owned by `who`.
    pub state: PathBuf,
    /// The config, written to `dir/config.json` before each run.
    pub config: Value,
    /// When set, written to config.json verbatim instead of `config`.
    pub raw_config: Option<String>,
}

impl Bundle {
    /// A bundle with or without its own PID namespace: `run`'s in-place
    /// and forked paths.
    pub fn with_pid_ns(who: Who, pid_ns: bool) -> Bundle {
        let mut b = Bundle::new(who);
        if pid_ns {
            b.namespace("pid", None);
        } else {
            b.without_namespace("pid");
        }
        b
    }

    /// A bundle whose config is what `husk spec` (for the user: `husk spec
    /// --rootless`) writes when run as `who`, with `root.path` set to the
    /// shared rootfs and `process.terminal` off (the tests have no tty).
    pub fn new(who: Who) -> Bundle {
        let mut b = Bundle::spec_only(who);
        let rootfs = harness().rootfs.to_str().unwrap().to_string();
        b.set("/root/path", json!(rootfs));
        b.set("/process/terminal", json!(false));
        b
    }

    /// A bundle holding exactly what `husk spec` wrote.
    pub fn spec_only(who: Who) -> Bundle {
        let s = Scratch::new(who);
        let dir = s.mkdir("bundle");
        let state = s.mkdir("state");
        let mut spec = s.command(&harness().husk);
        spec.arg("spec");
        if who == Who::User {
            spec.arg("--rootless");
        }
        run_ok(spec.arg("--bundle").arg(&dir));
        let text = fs::read_to_string(dir.join("config.json")).unwrap();
        let config = serde_json::from_str(&text).expect("husk spec wrote invalid JSON");
        Bundle {
            s,
            dir,
            state,
            config,
            raw_config: None,
        }
    }

    pub fn who(&self) -> Who {
        self.s.who
    }

    /// Set the value at a JSON pointer, creating missing objects on the way
    /// (`-` as the last token appends to an array).
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        set_pointer(&mut self.config, pointer, value);
        self
    }

    /// Remove the value at a JSON pointer (if present).
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        match self.config.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.remove(last);
            }
            Some(Value::Array(a)) => {
                a.remove(last.parse().unwrap());
            }
            _ => {}
        }
        self
    }

    /// Change the config with a closure.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Run a busybox shell script as the container program.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Append a mount.
    pub fn mount(&mut self, mount: Value) -> &mut Self {
        self.set("/mounts/-", mount)
    }

    /// Drop the mount at `destination` (e.g. to replace it).
    pub fn unmount(&mut self, destination: &str) -> &mut Self {
        if let Some(Value::Array(m)) = self.config.get_mut("mounts") {
            m.retain(|m| m["destination"] != destination);
        }
        self
    }

    fn namespaces(&mut self) -> &mut Vec<Value> {
        if self.config.pointer("/linux/namespaces").is_none() {
            self.set("/linux/namespaces", json!([]));
        }
        self.config
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
            .unwrap()
    }

    /// Ask for a namespace (replacing any entry of that type); `path` joins
    /// an existing one.
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        let ns = self.namespaces();
        ns.retain(|n| n["type"] != kind);
        ns.push(match path {
            Some(p) => json!({"type": kind, "path": p}),
            None => json!({"type": kind}),
        });
        self
    }

    pub fn without_namespace(&mut self, kind: &str) -> &mut Self {
        self.namespaces().retain(|n| n["type"] != kind);
        if kind == "user" {
            self.remove("/linux/uidMappings")
                .remove("/linux/gidMappings");
        }
        self
    }

    /// For the user: map container 0 to the user and 1..=65536 to its
    /// subordinate range (so newuidmap/newgidmap are needed). For root: map
    /// 0..65536 to the same subordinate range in a new user namespace.
    pub fn map_subids(&mut self) -> &mut Self {
        if self.s.who == Who::User {
            for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
                assert!(
                    Path::new(tool).exists(),
                    "{tool} is missing: install the uidmap package"
                );
            }
        }
        let u = &harness().user;
        let maps = |own: u32, sub: u32| match self.s.who {
            Who::User => json!([
                {"containerID": 0, "hostID": own, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUBID_COUNT},
            ]),
            Who::Root => json!([{"containerID": 0, "hostID": sub, "size": SUBID_COUNT}]),
        };
        let (uids, gids) = (maps(u.uid, u.subuid_start), maps(u.gid, u.subgid_start));
        self.namespace("user", None)
            .set("/linux/uidMappings", uids)
            .set("/linux/gidMappings", gids)
    }

    /// Copy the shared rootfs into this test's directory (owned, for the
    /// user, by the user, so it is root inside the container) and use it.
    pub fn private_rootfs(&mut self) -> PathBuf {
        let copy = self.s.dir.join("rootfs");
        self.copy_rootfs(&copy);
        self.set("/root/path", json!(copy.to_str().unwrap()));
        copy
    }

    /// Copy the shared rootfs to `copy`, owned by `who`.
    pub fn copy_rootfs(&self, copy: &Path) {
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(&harness().rootfs)
                .arg(copy),
        );
        if self.who() == Who::User {
            let u = &harness().user;
            run_ok(
                Command::new("chown")
                    .args(["-hR", &format!("{}:{}", u.uid, u.gid)])
                    .arg(copy),
            );
        }
    }

    pub fn write_config(&self) {
        let text = match &self.raw_config {
            Some(raw) => raw.clone(),
            None => serde_json::to_string_pretty(&self.config).unwrap(),
        };
        fs::write(self.dir.join("config.json"), text).unwrap();
    }

    /// The husk binary as `who`, with no arguments yet, after writing
    /// config.json.
    pub fn husk(&self) -> Command {
        self.write_config();
        self.s.command(&harness().husk)
    }

    /// `husk --root STATE run --bundle DIR <extra> ID` as `who`, after
    /// writing config.json.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = self.husk();
        cmd.arg("--root")
            .arg(&self.state)
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .args(extra)
            .arg(&self.s.id);
        cmd
    }

    /// Run the container to completion (stdin empty).
    pub fn run(&self) -> Outcome {
        self.run_with(&[], None)
    }

    pub fn run_with(&self, extra: &[&str], stdin: Option<&str>) -> Outcome {
        Running::spawn(self.command(extra), stdin).finish()
    }

    /// Start the container and return while it runs.
    pub fn spawn(&self, extra: &[&str]) -> Running {
        Running::spawn(self.command(extra), None)
    }
}

fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, path) = tokens.split_last().expect("empty JSON pointer");
    let container_for = |token: &str| match token {
        "-" => json!([]),
        _ => json!({}),
    };
    let mut cur = root;
    for t in path {
        if cur.is_null() {
            *cur = container_for(t);
        }
        cur = match cur {
            Value::Array(a) => &mut a[t.parse::<usize>().unwrap()],
            Value::Object(o) => o.entry(t.clone()).or_insert(Value::Null),
            other => panic!("{pointer}: {t} is inside a scalar {other}"),
        };
    }
    if cur.is_null() {
        *cur = container_for(last);
    }
    match cur {
        Value::Array(a) if last == "-" => a.push(value),
        Value::Array(a) => a[last.parse::<usize>().unwrap()] = value,
        Value::Object(o) => {
            o.insert(last.clone(), value);
        }
        other => panic!("{pointer}: cannot set inside a scalar {other}"),
    }
}

/// A running husk process (in its own process group, so a timeout or a
/// failed assertion can kill it and everything it started).
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    started: Instant,
}

impl Running {
    pub fn spawn(mut cmd: Command, stdin: Option<&str>) -> Running {
        cmd.process_group(0)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let text = text.to_string();
            // A thread, so a container that never reads cannot block us.
            std::thread::spawn(move || pipe.write_all(text.as_bytes()));
        }
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn remaining(&self) -> Duration {
        TIMEOUT.saturating_sub(self.started.elapsed())
    }

    /// The next line the container writes on stdout (panics on timeout or
    /// when stdout closes first).
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(self.remaining()) {
            Ok(l) => {
                self.stdout.push(l.clone());
                l
            }
            Err(e) => {
                let out = self.kill_and_collect();
                panic!("no line from the container ({e}): {out:#?}")
            }
        }
    }

    /// Send a signal to the husk process.
    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Wait for exit (killing the process group after the timeout) and
    /// collect the output.
    pub fn finish(mut self) -> Outcome {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap());
                return self.collect(code);
            }
            if self.remaining().is_zero() {
                let out = self.kill_and_collect();
                panic!("husk run timed out after {TIMEOUT:?}: {out:#?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_and_collect(&mut self) -> Outcome {
        self.kill();
        let _ = self.child.wait();
        self.collect(-1)
    }

    /// SIGKILL the process group and, in case the container left it (e.g.
    /// with setsid), every descendant.
    fn kill(&self) {
        let mut all = vec![self.pid()];
        let mut i = 0;
        while i < all.len() {
            all.extend(children(all[i]));
            i += 1;
        }
        unsafe { libc::kill(-(self.pid() as i32), libc::SIGKILL) };
        for pid in all {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    /// Gather stdout and stderr; a process left holding the pipes only
    /// delays this by the remaining timeout.
    fn collect(&mut self, code: i32) -> Outcome {
        let deadline = Instant::now() + self.remaining().max(Duration::from_secs(1));
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.stdout.push(l);
        }
        let stderr = self.stderr.take().unwrap();
        while !stderr.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stderr = if stderr.is_finished() {
            stderr.join().unwrap()
        } else {
            "<stderr still open at timeout>".into()
        };
        let mut stdout = self.stdout.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        Outcome {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    /// A test that panics mid-run must not leave its container behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: u32, sig: i32) {
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The value of a `Key:\tvalue` line (as in /proc/PID/status) in `text`.
#[track_caller]
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key}: line in {text:?}"))
}

/// A field of /proc/PID/status on the host.
pub fn host_status(pid: u32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    field(&s, key).to_string()
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

/// The children of a host process (of all its threads: each thread's
/// children are listed under that thread).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect::<Vec<u32>>()
        })
        // Live ones: `run`'s intermediate process leaves just before the
        // container is ready, and the waiter reaps it a moment later.
        .filter(|p| !is_zombie(*p))
        .collect()
}

/// The one live child of `pid` once things settle: with a PID namespace,
/// `run`'s intermediate process (husk, PID 1's parent) may still be
/// leaving when the program starts; then PID 1 is re-parented to the
/// waiter, which reaps the intermediate.
pub fn only_child(pid: u32) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let kids = children(pid);
        let is_husk =
            |p: u32| fs::read_link(format!("/proc/{p}/exe")).map_or(true, |e| e == harness().husk);
        if kids.len() == 1 && !is_husk(kids[0]) {
            return kids[0];
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the children of {pid}: {kids:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// A shell prelude defining `t CMD...`, which runs CMD quietly and prints
/// `ok: CMD...` or `fail: CMD...`; check the result with `expect_lines`.
pub const T: &str =
    r#"t() { if "$@" >/dev/null 2>&1; then echo "ok: $*"; else echo "fail: $*"; fi; }; "#;

/// Assert that each of `lines` is a whole line of `out`.
#[track_caller]
pub fn expect_lines(out: &str, lines: &[&str]) {
    for l in lines {
        assert!(out.lines().any(|o| o == *l), "no line {l:?} in:\n{out}");
    }
}

/// The last line of a mount table whose field `at` (0-based, space
/// separated) is `dest`: the mount on top at that point.
#[track_caller]
fn mount_line<'a>(table: &'a str, at: usize, dest: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(at) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest} in:\n{table}"));
    line.split(' ').collect()
}

/// The options of the mount at `dest` in /proc/mounts-format `text`.
#[track_caller]
pub fn mount_options(text: &str, dest: &str) -> Vec<String> {
    mount_line(text, 1, dest)[3]
        .split(',')
        .map(String::from)
        .collect()
}

/// The fs type of the mount at `dest` in /proc/mounts-format `text`.
#[track_caller]
pub fn mount_type(text: &str, dest: &str) -> String {
    mount_line(text, 1, dest)[2].to_string()
}

/// The optional (propagation) fields of the mount at `dest` in
/// /proc/self/mountinfo-format `text`, e.g. `["shared:5"]`.
#[track_caller]
pub fn propagation(mountinfo: &str, dest: &str) -> Vec<String> {
    let fields = mount_line(mountinfo, 4, dest);
    fields[6..]
        .iter()
        .take_while(|f| **f != "-")
        .map(|f| f.to_string())
        .collect()
}

/// `text` with each line's runs of blanks squeezed to one space and trimmed
/// (busybox pads /proc/self/uid_map and friends).
pub fn squash(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Poll `cond` until it holds, failing the test after 10 s.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The namespace link (`net:[4026531840]`) of a host process.
pub fn ns_link(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `both!(check)` makes two tests, `check::root` and `check::user`, that call
/// the function `check(who: Who)` (defined beside it) as each.
macro_rules! both {
    ($check:ident) => {
        mod $check {
            #[test]
            fn root() {
                super::$check($crate::common::Who::Root)
            }
            #[test]
            fn user() {
                super::$check($crate::common::Who::User)
            }
        }
    };
}

/// Run `cmd` (in its own process group) to completion, with `stdin` (or
/// /dev/null) as its input and its stdout and stderr going to fresh files,
/// so a process that keeps them open (a container parked by `husk create`, a
/// daemon) cannot stall the test. After `timeout` the group is killed and
/// the outcome has code -1 and a note at the end of stderr.
pub fn run_timeout(cmd: &mut Command, stdin: Option<&str>, timeout: Duration) -> Outcome {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = harness().base.join("out");
    mkdir_mode(&dir, 0o755);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let (out, err) = (dir.join(format!("{n}.out")), dir.join(format!("{n}.err")));
    run_timeout_to(cmd, stdin, timeout, &out, &err)
}

/// `run_timeout` with stdout and stderr going to the files `out` and `err`
/// (created or truncated), which keep whatever a left-behind process writes
/// later.
pub fn run_timeout_to(
    cmd: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
    out: &Path,
    err: &Path,
) -> Outcome {
    let file = |p: &Path| fs::File::create(p).unwrap_or_else(|e| panic!("create {p:?}: {e}"));
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(file(out))
        .stderr(file(err));
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let text = text.to_string();
        // A thread, so a program that never reads cannot block us.
        std::thread::spawn(move || pipe.write_all(text.as_bytes()));
    }
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap());
        }
        if started.elapsed() > timeout {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    let mut stderr = read(err);
    if code == -1 {
        stderr.push_str(&format!("\n<killed: {cmd:?} timed out after {timeout:?}>"));
    }
    Outcome {
        code,
        stdout: read(out),
        stderr,
    }
}

/// Host processes (other than this test binary) whose command line or
/// environment contains `mark`, as (PID, command line). Zombies have
/// neither, so they never match. End marks with a delimiter (`...-end`) so
/// that one test's mark is never a prefix of another's.
pub fn marked_processes(mark: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let has = |hay: &[u8]| hay.windows(mark.len()).any(|w| w == mark.as_bytes());
    pids()
        .into_iter()
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            (has(&cmdline) || has(&environ)).then(|| {
                let args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
                let args: Vec<_> = args.map(String::from_utf8_lossy).collect();
                (pid, args.join(" "))
            })
        })
        .collect()
}
