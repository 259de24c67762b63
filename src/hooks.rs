//! OCI lifecycle hooks: run each configured program with the container state
//! on its stdin, its own environment only, and an optional timeout.
//!
//! Hooks may run inside the freshly forked, single-threaded container
//! process, so nothing here starts a thread: the hook's stdin, stdout and
//! stderr pipes and a pidfd for its exit are multiplexed with one `poll`
//! loop with a deadline (runc uses goroutines and `Cmd.Wait`; a thread here
//! would make a later `unshare(CLONE_NEWUSER)` or `setns` fail).

use crate::error::{Error, Result};
use crate::sys;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use oci_spec::runtime::Hook;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of each output stream is kept for the error message. Only the
/// tail matters (the error a script printed last), and a chatty hook must
/// not make us hold megabytes.
const KEEP: usize = 4096;

/// Length of the output excerpt put into an error, in characters.
const EXCERPT: usize = 200;

/// Run `hooks` in order for `phase` ("prestart", "createRuntime",
/// "createContainer", "startContainer", "poststart", "poststop"), each with
/// `state` (see [`state_json`]) on stdin. Stops at the first hook that
/// cannot be started, exits non-zero, is killed, or outlives its timeout.
pub fn run(phase: &'static str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    let step = step_name(phase);
    // A hook that exits without reading all of its stdin must cost us an
    // EPIPE, not our life.
    let _sigpipe = IgnoreSigpipe::new();
    for hook in hooks {
        run_one(step, hook, state)?;
    }
    Ok(())
}

/// The runtime-spec state document handed to hooks on stdin (and printed by
/// `state`): `ociVersion`, `id`, `status`, `pid` (left out when there is no
/// process), `bundle`, `annotations`.
///
/// Built with serde_json rather than `oci_spec::runtime::State` because
/// that type's status enum cannot say `unknown`, which the stateless
/// profile needs.
pub fn state_json(
    id: &str,
    status: &str,
    pid: Option<i32>,
    bundle: &Path,
    annotations: &HashMap<String, String>,
) -> Vec<u8> {
    let mut state = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "id": id,
        "status": status,
        "bundle": bundle.to_string_lossy(),
        "annotations": annotations,
    });
    if let Some(pid) = pid {
        state["pid"] = pid.into();
    }
    serde_json::to_vec(&state).expect("a JSON value always serializes")
}

/// The error step for a hook phase; each is listed in `steps::ALL`.
fn step_name(phase: &'static str) -> &'static str {
    match phase {
        "prestart" => "prestart hook",
        "createRuntime" => "createRuntime hook",
        "createContainer" => "createContainer hook",
        "startContainer" => "startContainer hook",
        "poststart" => "poststart hook",
        "poststop" => "poststop hook",
        _ => {
            debug_assert!(false, "unknown hook phase {phase:?}");
            "hook"
        }
    }
}

fn run_one(step: &'static str, hook: &Hook, state: &[u8]) -> Result<()> {
    let path = hook.path();
    let shown = path.display();
    if !path.is_absolute() {
        return Err(Error::invalid(
            step,
            format!("hook path {shown:?} is not absolute"),
        ));
    }
    let mut cmd = command(step, hook)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(step, format!("start {shown}"), &e))?;

    // From here on the child exists: whatever fails, kill and reap it so no
    // hook outlives a failed step.
    let result = supervise(step, &mut child, hook, state);
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let outcome = result?;

    let excerpt = excerpt(&outcome.stderr, &outcome.stdout);
    let with_output = |msg: String| match &excerpt {
        Some(text) => format!("{shown}: {msg}: {text}"),
        None => format!("{shown}: {msg}"),
    };
    if let Some(secs) = outcome.timed_out {
        return Err(Error::invalid(
            step,
            with_output(format!("timed out after {secs} s")),
        ));
    }
    match describe_failure(outcome.status) {
        None => Ok(()),
        Some(msg) => Err(Error::invalid(step, with_output(msg))),
    }
}

/// The command for one hook: argv as configured (args[0] is argv[0]), the
/// configured environment and nothing else, three pipes, and no other
/// descriptor of ours.
fn command(step: &'static str, hook: &Hook) -> Result<Command> {
    let path = hook.path();
    let mut cmd = Command::new(path);
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(Error::invalid(
                step,
                format!("{}: env entry {entry:?} is not KEY=VALUE", path.display()),
            ));
        };
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The container process may hold descriptors that must survive its own
    // execve (--preserve-fds, the console, sync pipes); a hook must see
    // none of them, as with runc. Marking them close-on-exec in the child
    // (rather than closing them) keeps std's own exec-error pipe working,
    // so a missing hook binary is still reported as ENOENT.
    //
    // SAFETY: the closure only makes one raw syscall, which is
    // async-signal-safe, and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if r == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// What happened to a hook that we waited for.
struct Outcome {
    status: ExitStatus,
    /// `Some(seconds)` when we killed it for running too long.
    timed_out: Option<i64>,
    stdout: Tail,
    stderr: Tail,
}

/// Feed `state` to the hook, collect its output and wait for it, all in one
/// `poll` loop: the pidfd says when it exited, the deadline when it ran too
/// long. The loop never waits for EOF on the output pipes once the hook
/// exited, so a daemon the hook left behind holding them cannot hang us.
fn supervise(
    step: &'static str,
    child: &mut std::process::Child,
    hook: &Hook,
    state: &[u8],
) -> Result<Outcome> {
    let shown = hook.path().display();
    let pidfd = sys::pidfd_open(child.id() as i32)
        .map_err(|e| Error::sys(step, format!("pidfd_open for {shown}"), e))?;
    let take = |fd: Option<OwnedFd>| -> Result<OwnedFd> {
        let fd = fd.expect("stdio was configured as piped");
        set_nonblocking(&fd).map_err(|e| Error::sys(step, "set pipe O_NONBLOCK", e))?;
        Ok(fd)
    };
    let mut stdin = Some(take(child.stdin.take().map(OwnedFd::from))?);
    let mut stdout = Some(take(child.stdout.take().map(OwnedFd::from))?);
    let mut stderr = Some(take(child.stderr.take().map(OwnedFd::from))?);
    let mut out = Tail::default();
    let mut err = Tail::default();
    let mut input = state;
    if input.is_empty() {
        stdin = None;
    }

    let timeout = hook.timeout().filter(|&t| t > 0);
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut timed_out = None;
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    timed_out = timeout;
                    // The hook is our unreaped child, so the pidfd (and
                    // the PID) still name it.
                    sys::pidfd_send_signal(&pidfd, libc::SIGKILL)
                        .map_err(|e| Error::sys(step, format!("kill {shown}"), e))?;
                    break;
                }
                // Round up so we never wake just before the deadline and
                // spin on a zero timeout.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };

        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let mut slots = Vec::with_capacity(3);
        if let Some(fd) = &stdin {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
            slots.push(Slot::Stdin);
        }
        if let Some(fd) = &stdout {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Stdout);
        }
        if let Some(fd) = &stderr {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Stderr);
        }
        match poll(&mut fds, wait) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys(step, format!("poll on {shown}"), e)),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let exited = ready(&fds[0]);
        let events: Vec<(Slot, bool)> = slots
            .iter()
            .zip(&fds[1..])
            .map(|(s, f)| (*s, ready(f)))
            .collect();
        drop(fds);

        for (slot, is_ready) in events {
            if !is_ready {
                continue;
            }
            match slot {
                Slot::Stdin => {
                    if feed(stdin.as_ref().unwrap(), &mut input) {
                        // All written or the reader is gone: closing our
                        // end gives the hook its EOF.
                        stdin = None;
                    }
                }
                Slot::Stdout => drain(&mut stdout, &mut out),
                Slot::Stderr => drain(&mut stderr, &mut err),
            }
        }
        if exited {
            break;
        }
    }

    // The hook is gone (or killed): whatever it wrote is already in the
    // pipes, so one non-blocking drain collects it all.
    drop(stdin);
    drain(&mut stdout, &mut out);
    drain(&mut stderr, &mut err);
    let status = loop {
        match child.wait() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(step, format!("wait for {shown}"), &e)),
            Ok(status) => break status,
        }
    };
    Ok(Outcome {
        status,
        timed_out,
        stdout: out,
        stderr: err,
    })
}

#[derive(Clone, Copy)]
enum Slot {
    Stdin,
    Stdout,
    Stderr,
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), Errno> {
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Write as much of `input` as the pipe takes now. True when stdin is done:
/// everything written, or the hook closed its end (EPIPE, or any other
/// error: a hook is allowed not to read its state).
fn feed(fd: &OwnedFd, input: &mut &[u8]) -> bool {
    loop {
        match nix::unistd::write(fd, input) {
            Ok(n) => {
                *input = &input[n..];
                if input.is_empty() {
                    return true;
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return false,
            Err(_) => return true,
        }
    }
}

/// Read what is available from a non-blocking output pipe into `tail`;
/// close it at EOF (or on an error, which only costs us output).
fn drain(fd: &mut Option<OwnedFd>, tail: &mut Tail) {
    let Some(pipe) = fd else { return };
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(&*pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => tail.push(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return,
            Err(_) => break,
        }
    }
    *fd = None;
}

/// The last `KEEP` bytes written to a stream.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        if self.0.len() > 2 * KEEP {
            self.0.drain(..self.0.len() - KEEP);
        }
    }

    fn text(&self) -> String {
        let bytes = &self.0[self.0.len().saturating_sub(KEEP)..];
        String::from_utf8_lossy(bytes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One line of the hook's output for an error message: stderr (where
/// programs complain), else stdout; whitespace collapsed, and only the last
/// `EXCERPT` characters, since the final words are usually the reason.
fn excerpt(stderr: &Tail, stdout: &Tail) -> Option<String> {
    let text = Some(stderr.text())
        .filter(|t| !t.is_empty())
        .or_else(|| Some(stdout.text()).filter(|t| !t.is_empty()))?;
    let count = text.chars().count();
    if count <= EXCERPT {
        return Some(text);
    }
    let tail: String = text.chars().skip(count - EXCERPT).collect();
    Some(format!("…{tail}"))
}

/// `None` for success, else "exit status N" or "killed by SIGNAME".
fn describe_failure(status: ExitStatus) -> Option<String> {
    if status.success() {
        return None;
    }
    if let Some(code) = status.code() {
        return Some(format!("exit status {code}"));
    }
    let sig = status.signal().unwrap_or(0);
    Some(match Signal::try_from(sig) {
        Ok(s) => format!("killed by {}", s.as_str()),
        Err(_) => format!("killed by signal {sig}"),
    })
}

/// Ignore SIGPIPE while hooks run and put the old disposition back after.
/// Rust binaries start with SIGPIPE ignored, but the container process may
/// have reset it; a write to a hook that closed stdin must fail with EPIPE.
/// Hooks themselves get the default back: std resets SIGPIPE when it execs.
struct IgnoreSigpipe(Option<SigAction>);

impl IgnoreSigpipe {
    fn new() -> Self {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_IGN runs no code in signal context.
        let old = unsafe { sigaction(Signal::SIGPIPE, &ignore) }.ok();
        IgnoreSigpipe(old.filter(|o| !matches!(o.handler(), SigHandler::SigIgn)))
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the disposition that was in place before.
            let _ = unsafe { sigaction(Signal::SIGPIPE, old) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "husk-hooks-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// Write an executable /bin/sh script and return its path.
        fn script(&self, name: &str, body: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn hook(path: &Path) -> Hook {
        let mut h = Hook::default();
        h.set_path(path.to_path_buf());
        h
    }

    fn state() -> Vec<u8> {
        let annotations = HashMap::from([("a".to_string(), "b".to_string())]);
        state_json("ctr", "creating", Some(42), Path::new("/b"), &annotations)
    }

    #[test]
    fn state_json_has_the_spec_fields() {
        let v: serde_json::Value = serde_json::from_slice(&state()).unwrap();
        assert_eq!(v["ociVersion"], oci_spec::runtime::VERSION);
        assert_eq!(v["id"], "ctr");
        assert_eq!(v["status"], "creating");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["bundle"], "/b");
        assert_eq!(v["annotations"]["a"], "b");
        let none = state_json("c", "stopped", None, Path::new("/b"), &HashMap::new());
        let v: serde_json::Value = serde_json::from_slice(&none).unwrap();
        assert!(v.get("pid").is_none(), "{v}");
        // The status the stateless profile adds must be expressible.
        let unknown = state_json("c", "unknown", None, Path::new("/b"), &HashMap::new());
        assert!(String::from_utf8(unknown).unwrap().contains("\"unknown\""));
    }

    #[test]
    fn state_arrives_on_stdin() {
        let dir = Scratch::new();
        let out = dir.file("state");
        let s = dir.script("h", &format!("cat > {}", out.display()));
        run("prestart", &[hook(&s)], &state()).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), state());
    }

    #[test]
    fn env_and_args_are_exactly_as_configured() {
        let dir = Scratch::new();
        let env = dir.file("env");
        let args = dir.file("args");
        // /proc/$$/environ is what execve received; `env` would show the
        // variables the shell adds itself (PWD).
        let s = dir.script(
            "h",
            &format!(
                "tr '\\0' '\\n' < /proc/$$/environ > {}\n\
                 tr '\\0' '\\n' < /proc/$$/cmdline > {}",
                env.display(),
                args.display()
            ),
        );
        let mut h = hook(&s);
        h.set_env(Some(vec!["A=1".into(), "B=two words".into()]));
        h.set_args(Some(vec!["my-hook".into(), "x".into(), "y".into()]));
        run("createRuntime", &[h], &state()).unwrap();
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "A=1\nB=two words\n");
        // The kernel runs the script as `/bin/sh <path> x y`; argv[0] of
        // the exec was ours, the script path replaces it for the shell.
        let argv = std::fs::read_to_string(&args).unwrap();
        assert!(
            argv.ends_with(&format!("{}\nx\ny\n", s.display())),
            "{argv}"
        );
    }

    #[test]
    fn argv0_is_the_path_without_args() {
        let dir = Scratch::new();
        let out = dir.file("argv0");
        let s = dir.script("h", &format!("echo \"$0\" > {}", out.display()));
        run("poststart", &[hook(&s)], b"{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("{}\n", s.display())
        );
    }

    #[test]
    fn failure_has_exit_status_and_stderr() {
        let dir = Scratch::new();
        let s = dir.script(
            "h",
            "echo noise\necho 'line one' >&2\necho 'bad thing' >&2\nexit 3",
        );
        let err = run("createContainer", &[hook(&s)], &state()).unwrap_err();
        assert_eq!(err.step(), "createContainer hook");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "{}: exit status 3: line one bad thing",
                s.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn stdout_is_used_when_stderr_is_empty_and_long_output_is_cut() {
        let dir = Scratch::new();
        let s = dir.script(
            "h",
            "i=0; while [ $i -lt 500 ]; do echo word$i; i=$((i+1)); done; exit 1",
        );
        let msg = run("prestart", &[hook(&s)], b"{}").unwrap_err().to_string();
        assert!(msg.ends_with("word498 word499"), "{msg}");
        assert!(msg.contains('…'), "{msg}");
        assert!(msg.len() < 200 + 100 + s.as_os_str().len(), "{msg}");
    }

    #[test]
    fn killed_by_signal() {
        let dir = Scratch::new();
        let s = dir.script("h", "kill -KILL $$");
        let msg = run("poststop", &[hook(&s)], b"{}").unwrap_err().to_string();
        assert!(msg.contains("killed by SIGKILL"), "{msg}");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let dir = Scratch::new();
        let s = dir.script("h", "exec sleep 10");
        let mut h = hook(&s);
        h.set_timeout(Some(1));
        let t = Instant::now();
        let err = run("startContainer", &[h], &state()).unwrap_err();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(took >= Duration::from_millis(900), "took {took:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}: timed out after 1 s", s.display())),
            "{msg}"
        );
    }

    #[test]
    fn a_daemon_holding_the_pipes_does_not_hang_us() {
        let dir = Scratch::new();
        // The background sleep inherits stdout/stderr and outlives the hook.
        let s = dir.script("h", "sleep 10 &\nexit 0");
        let t = Instant::now();
        run("prestart", &[hook(&s)], &state()).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn hooks_run_in_order_and_stop_at_the_first_failure() {
        let dir = Scratch::new();
        let log = dir.file("log");
        let a = dir.script("a", &format!("echo a >> {}", log.display()));
        let b = dir.script("b", &format!("echo b >> {}\nexit 1", log.display()));
        let c = dir.script("c", &format!("echo c >> {}", log.display()));
        let err = run("prestart", &[hook(&a), hook(&b), hook(&c)], &state()).unwrap_err();
        assert!(err.to_string().contains(&b.display().to_string()), "{err}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
    }

    #[test]
    fn relative_path_is_rejected() {
        let err = run("prestart", &[hook(Path::new("bin/true"))], b"{}").unwrap_err();
        assert_eq!(err.errno(), None);
        assert!(
            err.to_string().contains("\"bin/true\" is not absolute"),
            "{err}"
        );
    }

    #[test]
    fn missing_binary_reports_enoent() {
        let err = run("prestart", &[hook(Path::new("/nonexistent/hook"))], b"{}").unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
    }

    fn big_state() -> Vec<u8> {
        let annotations = HashMap::from([("big".to_string(), "x".repeat(1 << 20))]);
        state_json("ctr", "creating", Some(1), Path::new("/b"), &annotations)
    }

    #[test]
    fn a_hook_that_ignores_a_large_state_does_not_deadlock() {
        let dir = Scratch::new();
        let s = dir.script("h", "exit 0");
        let slow = dir.script("slow", "sleep 0.2; exit 0");
        let t = Instant::now();
        run("prestart", &[hook(&s), hook(&slow)], &big_state()).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_large_state_arrives_whole() {
        let dir = Scratch::new();
        let out = dir.file("state");
        let s = dir.script("h", &format!("cat > {}", out.display()));
        let big = big_state();
        run("prestart", &[hook(&s)], &big).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), big);
    }

    #[test]
    fn no_descriptor_of_ours_leaks_into_the_hook() {
        let dir = Scratch::new();
        let out = dir.file("fds");
        let s = dir.script("h", &format!("ls /proc/$$/fd > {}", out.display()));
        // A descriptor without O_CLOEXEC, as --preserve-fds leaves them.
        // It is moved to 600 or above: the shell opens descriptors of its
        // own from 10 up (its script, saved stdio), and a low number could
        // be one of those by chance (CI once saw our pipe land on 11, the
        // number the shell then used itself).
        let (r, _w) = nix::unistd::pipe().unwrap();
        let high = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_DUPFD(600)).unwrap();
        run("prestart", &[hook(&s)], b"{}").unwrap();
        let fds = std::fs::read_to_string(&out).unwrap();
        nix::unistd::close(high).unwrap();
        let n = high.to_string();
        assert!(!fds.lines().any(|l| l == n), "fd {n} leaked: {fds}");
        // The check can fail: with command()'s close_range removed, the
        // listing holds `n`.
    }
}
