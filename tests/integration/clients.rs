//! Real clients: Debian's Buildah 1.28 and Podman 4.3 (with conmon) drive
//! husk as the unprivileged test user, given `--runtime <the copied husk
//! binary>`. `HUSK_IT_CLIENT_RUNTIME=/usr/sbin/runc` swaps in another
//! runtime, to check the tests themselves against a reference.
//!
//! The client environment is made once per test run: a HOME and an
//! XDG_RUNTIME_DIR for the test user under the run's directory, with vfs
//! storage, cgroupfs and host networking configured there (this machine has
//! no usable tun device and no systemd user session), so nothing touches
//! root's or anyone else's containers. The image `localhost/husk-busybox` is
//! built once from the shared busybox rootfs (no registry is reachable).
//! Buildah and Podman share that storage and its locks, so the tests run in
//! parallel.

use crate::common::*;
use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any client command may take before the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The image every test starts from: the busybox rootfs, CMD /bin/sh.
const IMAGE: &str = "localhost/husk-busybox";

/// Marks every client process with the PID of the test run, so a later run
/// can find what this one left behind (e.g. Podman's pause process).
const RUN_MARK: &str = "HUSK_IT_CLIENTS";

/// The test user's client environment, shared by the whole run.
struct Clients {
    home: PathBuf,
    run: PathBuf,
}

fn clients() -> &'static Clients {
    static C: OnceLock<Clients> = OnceLock::new();
    C.get_or_init(set_up)
}

/// The runtime the clients are told to use (absolute).
fn runtime() -> PathBuf {
    match std::env::var_os("HUSK_IT_CLIENT_RUNTIME") {
        Some(r) => PathBuf::from(r),
        None => harness().husk.clone(),
    }
}

fn set_up() -> Clients {
    let h = harness();
    for tool in ["buildah", "podman", "conmon", "newuidmap"] {
        assert!(
            Path::new("/usr/bin").join(tool).exists(),
            "{tool} is missing: run tools/deps (Debian's buildah, podman, conmon, uidmap)"
        );
    }
    kill_stale_clients();
    let dir = h.base.join("clients");
    mkdir_mode(&dir, 0o755);
    let c = Clients {
        home: dir.join("home"),
        run: dir.join("run"),
    };
    let conf = c.home.join(".config/containers");
    for d in [&c.home, &c.run, &c.home.join(".config"), &conf] {
        mkdir_mode(d, 0o700);
        give_user(d);
    }
    let storage = format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
        c.home.join("storage").display(),
        c.run.join("containers").display()
    );
    // No tun device (slirp4netns cannot start) and no systemd user session.
    let containers = "[containers]\nnetns = \"host\"\n\n\
                      [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";
    for (name, text) in [
        ("storage.conf", storage.as_str()),
        ("containers.conf", containers),
    ] {
        fs::write(conf.join(name), text).unwrap();
        give_user(&conf.join(name));
    }
    build_image(&Client {
        env: &c,
        s: Scratch::new(Who::User),
    });
    c
}

fn give_user(path: &Path) {
    let u = &harness().user;
    chown(path, Some(u.uid), Some(u.gid)).unwrap();
}

/// SIGKILL the test user's client processes (Podman's pause process,
/// conmon) that earlier, finished test runs left behind.
fn kill_stale_clients() {
    let prefix = format!("{RUN_MARK}=");
    for pid in pids() {
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let run = env.split(|b| *b == 0).find_map(|v| {
            let v = std::str::from_utf8(v).ok()?;
            v.strip_prefix(&prefix)?.parse::<u32>().ok()
        });
        if let Some(run) = run
            && run != std::process::id()
            && !Path::new(&format!("/proc/{run}")).exists()
        {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// `IMAGE` from the shared rootfs: `buildah from scratch`, `buildah copy`
/// (which makes everything owned by root in the image), commit.
fn build_image(c: &Client) {
    let name = format!("husk-it-image-{}", std::process::id());
    c.ok(&mut c.buildah(&["from", "--name", &name, "scratch"]));
    let rootfs = harness().rootfs.to_str().unwrap();
    c.ok(&mut c.buildah(&["copy", &name, rootfs, "/"]));
    c.ok(&mut c.buildah(&["config", "--cmd", "/bin/sh", &name]));
    c.ok(&mut c.buildah(&["commit", "--rm", &name, IMAGE]));
    // Start Podman's pause process (it keeps the user namespace) now, from
    // one thread, rather than in several tests at once.
    c.ok(&mut c.podman(&["info"]));
}

/// One test's use of the clients: a scratch directory owned by the test
/// user (the cwd of every command) and the shared environment.
struct Client<'a> {
    env: &'a Clients,
    s: Scratch,
}

impl Client<'static> {
    fn new() -> Self {
        Client {
            env: clients(),
            s: Scratch::new(Who::User),
        }
    }
}

impl Client<'_> {
    /// `program args...` as the test user with the client environment: only
    /// PATH, HOME, XDG_RUNTIME_DIR and the test markers.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.s.command(program);
        cmd.env("HOME", &self.env.home)
            .env("XDG_RUNTIME_DIR", &self.env.run)
            .env(RUN_MARK, std::process::id().to_string())
            .args(args);
        cmd
    }

    fn buildah(&self, args: &[&str]) -> Command {
        self.command("buildah", args)
    }

    /// `buildah VERB --runtime R --isolation oci --network host ARGS` (for
    /// `run` and `bud`).
    fn buildah_runtime(&self, verb: &str, args: &[&str]) -> Command {
        let mut cmd = self.buildah(&[verb]);
        cmd.arg("--runtime")
            .arg(runtime())
            .args(["--isolation", "oci", "--network", "host"])
            .args(args);
        cmd
    }

    /// `podman --runtime R ARGS`.
    fn podman(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("podman", &[]);
        cmd.arg("--runtime").arg(runtime()).args(args);
        cmd
    }

    /// Run a client command with a timeout.
    fn run(&self, cmd: &mut Command, stdin: Option<&str>) -> Outcome {
        let out = run_timeout(cmd, stdin, CLIENT_TIMEOUT);
        eprintln!("{cmd:?}: {out:#?}");
        out
    }

    /// Run a client command that must succeed; its stdout.
    #[track_caller]
    fn ok(&self, cmd: &mut Command) -> String {
        let out = self.run(cmd, None);
        assert_eq!(out.code, 0, "{cmd:?} failed: {out:#?}");
        out.stdout
    }

    /// A Buildah working container from `image`, removed when dropped.
    fn working(&self, image: &str) -> Cleanup<'_> {
        let name = format!("{}-w", self.s.id);
        self.ok(&mut self.buildah(&["from", "--name", &name, image]));
        Cleanup::new(self, &name, &["buildah", "rm", &name], None)
    }

    /// `podman container exists NAME`.
    fn podman_exists(&self, name: &str) -> bool {
        let out = self.run(&mut self.podman(&["container", "exists", name]), None);
        assert!(
            matches!(out.code, 0 | 1),
            "podman container exists: {out:#?}"
        );
        out.code == 0
    }
}

/// Something a test made in the client storage (a working container, an
/// image, a Podman container) and removes when dropped, even on failure.
struct Cleanup<'a> {
    c: &'a Client<'a>,
    name: String,
    /// The client command that removes it (without --runtime).
    undo: Vec<String>,
    /// Processes with this mark are SIGKILLed after `undo`, so a failed
    /// test does not leave its container's processes behind.
    mark: Option<String>,
}

impl<'a> Cleanup<'a> {
    fn new(c: &'a Client<'a>, name: &str, undo: &[&str], mark: Option<&str>) -> Self {
        Cleanup {
            c,
            name: name.to_string(),
            undo: undo.iter().map(|s| s.to_string()).collect(),
            mark: mark.map(String::from),
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let (program, args) = self.undo.split_first().unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = match program.as_str() {
            "podman" => self.c.podman(&args),
            p => self.c.command(p, &args),
        };
        // Not `ok`: a panic while unwinding would abort the test binary.
        let _ = run_timeout(&mut cmd, None, CLIENT_TIMEOUT);
        if let Some(mark) = &self.mark {
            for (pid, _) in marked_processes(mark) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// A Podman container name (removed with `podman rm -f` when dropped) and
/// an environment variable marking its processes.
fn podman_container<'a>(c: &'a Client) -> (Cleanup<'a>, String) {
    let name = format!("{}-p", c.s.id);
    let mark = format!("husk-it-mark-{}-end", c.s.id);
    let undo = ["podman", "rm", "-f", "-t", "0", &name];
    let cleanup = Cleanup::new(c, &name, &undo, Some(&mark));
    (cleanup, mark)
}

/// Assert that no process marked with `mark` remains, giving them 10 s to
/// die.
#[track_caller]
fn assert_none_left(mark: &str) {
    let start = Instant::now();
    while !marked_processes(mark).is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        marked_processes(mark),
        vec![],
        "processes of the container remain"
    );
}

/// Wait for `cond` (10 s at most), failing with what Podman knows about the
/// container `name`.
#[track_caller]
fn wait_podman(c: &Client, name: &str, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(10) {
            let format = "{{.State.Status}} exit={{.State.ExitCode}} pid={{.State.Pid}} \
                          error={{.State.Error}}";
            let state = c.run(&mut c.podman(&["inspect", "-f", format, name]), None);
            let logs = c.run(&mut c.podman(&["logs", name]), None);
            panic!("timed out waiting for {what}: podman inspect: {state:#?}\nlogs: {logs:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- Buildah

/// `buildah run` reports the program's exit status.
#[test]
fn buildah_run_exit_status() {
    let c = Client::new();
    let w = c.working(IMAGE);
    let mut cmd = c.buildah_runtime("run", &[&w.name, "--", "sh", "-c", "exit 3"]);
    let out = c.run(&mut cmd, None);
    assert_eq!(out.code, 3, "{cmd:?}: {out:#?}");
}

/// stdin, stdout and stderr pass through `buildah run`.
#[test]
fn buildah_run_stdio() {
    let c = Client::new();
    let w = c.working(IMAGE);
    let mut cmd = c.buildah_runtime("run", &[&w.name, "--", "cat"]);
    let out = c.run(&mut cmd, Some("hello through buildah\n"));
    assert_eq!(out.code, 0, "{cmd:?}: {out:#?}");
    assert_eq!(out.stdout, "hello through buildah\n", "{cmd:?}: {out:#?}");
    let script = "read l; echo \"out:$l\"; echo \"err:$l\" >&2";
    let mut cmd = c.buildah_runtime("run", &[&w.name, "--", "sh", "-c", script]);
    let out = c.run(&mut cmd, Some("x\n"));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "out:x\n"),
        "{cmd:?}: {out:#?}"
    );
    assert!(out.stderr.contains("err:x\n"), "{cmd:?}: {out:#?}");
}

/// `buildah bud` with several RUN steps: a file one step writes is read by
/// the next; a step runs as a non-root USER; the image holds the results.
#[test]
fn buildah_bud_multi_step() {
    let c = Client::new();
    c.s.mkdir("ctx");
    let containerfile = c.s.write(
        "ctx/Containerfile",
        &format!(
            "FROM {IMAGE}\n\
             RUN echo built > /etc/step1\n\
             RUN test \"$(cat /etc/step1)\" = built && cp /etc/step1 /etc/step2\n\
             RUN mkdir /home/user/w && chown 1000:1000 /home/user/w\n\
             USER 1000\n\
             RUN test \"$(id -u)\" = 1000 && id -u > /home/user/w/uid\n\
             USER 0\n\
             RUN test \"$(cat /home/user/w/uid)\" = 1000 && test \"$(id -u)\" = 0\n"
        ),
        0o644,
    );
    let tag = format!("localhost/{}", c.s.id);
    let _image = Cleanup::new(&c, &tag, &["buildah", "rmi", "-f", &tag], None);
    let ctx = c.s.dir.join("ctx");
    let mut cmd = c.buildah_runtime(
        "bud",
        &[
            "-t",
            &tag,
            "-f",
            containerfile.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    let out = c.run(&mut cmd, None);
    assert_eq!(out.code, 0, "{cmd:?}: {out:#?}");
    assert!(out.stdout.contains("STEP 8/8"), "{cmd:?}: {out:#?}");

    let w = c.working(&tag);
    let mut cmd = c.buildah_runtime(
        "run",
        &[&w.name, "--", "cat", "/etc/step2", "/home/user/w/uid"],
    );
    assert_eq!(c.ok(&mut cmd), "built\n1000\n");
}

// ----------------------------------------------------------------- Podman

/// `podman run --rm`: the program's exit status and output pass through,
/// and the container is gone afterwards.
#[test]
fn podman_run_rm_exit_codes() {
    let c = Client::new();
    for code in [0, 7] {
        let name = format!("{}-{code}", c.s.id);
        let script = format!("echo out; echo err >&2; exit {code}");
        let mut cmd = c.podman(&["run", "--rm", "--name", &name, "--network", "none", IMAGE]);
        cmd.args(["sh", "-c", &script]);
        let out = c.run(&mut cmd, None);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (code, "out\n"),
            "{cmd:?}: {out:#?}"
        );
        assert!(out.stderr.contains("err\n"), "{cmd:?}: {out:#?}");
        assert!(!c.podman_exists(&name), "--rm left {name}");
    }
}

/// `podman run -d` a long sleep; `podman exec` into it; `podman stop -t 5`
/// stops it within the timeout; `podman rm` leaves nothing behind.
#[test]
fn podman_detached_exec_stop_rm() {
    let c = Client::new();
    let (ctr, mark) = podman_container(&c);
    let name = ctr.name.as_str();
    let env = format!("HUSK_IT_MARK={mark}");
    c.ok(&mut c.podman(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--env",
        &env,
        IMAGE,
        "sleep",
        "300",
    ]));
    wait_podman(&c, name, "the container's sleep 300", || {
        marked_processes(&mark)
            .iter()
            .any(|(_, cmd)| cmd == "sleep 300")
    });
    // No runtime process in between: the container process is conmon's
    // child, and the container ran with the runtime we gave.
    let (pid, _) = marked_processes(&mark)[0].clone();
    let parent = host_status(pid, "PPid");
    let comm = fs::read_to_string(format!("/proc/{parent}/comm")).unwrap();
    assert_eq!(comm.trim(), "conmon", "the parent of the container process");
    let used = c.ok(&mut c.podman(&["inspect", "-f", "{{.OCIRuntime}}", name]));
    let wanted = runtime()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        used.trim().ends_with(&wanted),
        "podman used the runtime {used:?}"
    );

    let mut cmd = c.podman(&["exec", name, "echo", "hi"]);
    assert_eq!(c.ok(&mut cmd), "hi\n", "{cmd:?}");

    let started = Instant::now();
    c.ok(&mut c.podman(&["stop", "-t", "5", name]));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "podman stop -t 5 took {took:?}"
    );
    let status = c.ok(&mut c.podman(&["inspect", "-f", "{{.State.Status}}", name]));
    assert_eq!(status.trim(), "exited");
    assert_none_left(&mark);

    c.ok(&mut c.podman(&["rm", name]));
    assert!(!c.podman_exists(name), "podman rm left {name}");
    assert_none_left(&mark);
}

/// A container whose program starts a double-forked daemon (setsid, its
/// parent gone): `podman rm -f` leaves no process of it, with the
/// container's own pid namespace and with the host's (where only husk's
/// namespace scan can find the daemon).
fn podman_rm_force_kills_daemon(pid_ns: &str) {
    let c = Client::new();
    let (ctr, mark) = podman_container(&c);
    let name = ctr.name.as_str();
    let env = format!("HUSK_IT_MARK={mark}");
    let daemon = format!("husk-it-daemon-{}-end", c.s.id);
    let script = format!("(setsid sh -c 'sleep 1000; echo' {daemon} &); exec sleep 1000");
    c.ok(&mut c.podman(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--pid",
        pid_ns,
        "--env",
        &env,
        IMAGE,
        "sh",
        "-c",
        &script,
    ]));
    wait_podman(&c, name, "the daemon and its sleep", || {
        let p = marked_processes(&mark);
        p.len() >= 3 && p.iter().any(|(_, cmd)| cmd.contains(&daemon))
    });
    c.ok(&mut c.podman(&["rm", "-f", "-t", "0", name]));
    assert_none_left(&mark);
}

#[test]
fn podman_rm_force_kills_daemon_pid_ns() {
    podman_rm_force_kills_daemon("private")
}

#[test]
fn podman_rm_force_kills_daemon_host_pid() {
    podman_rm_force_kills_daemon("host")
}
