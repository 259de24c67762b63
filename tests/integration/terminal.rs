//! `process.terminal` with `--console-socket`: the container allocates a
//! pty and sends its master over the socket with SCM_RIGHTS (runc's
//! console protocol); the test plays the client (conmon's part).

use crate::common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A listening console socket in the test's directory that `who` may
/// connect to.
struct Console {
    listener: UnixListener,
    path: PathBuf,
}

impl Console {
    fn new(s: &Scratch) -> Console {
        let path = s.dir.join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        s.give(&path);
        listener.set_nonblocking(true).unwrap();
        Console { listener, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Accept husk's connection and receive the pty master, within 10 s.
    #[track_caller]
    fn master(&self) -> OwnedFd {
        self.try_master(|| false)
            .expect("husk never connected to the console socket")
    }

    /// As `master`, but `None` as soon as `gone` says husk is gone
    /// without having connected.
    #[track_caller]
    fn try_master(&self, mut gone: impl FnMut() -> bool) -> Option<OwnedFd> {
        let start = Instant::now();
        let stream: UnixStream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept on the console socket: {e}"),
            }
            if start.elapsed() > Duration::from_secs(10) || gone() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Some(husk::console::recv_fd(&stream).expect("receive the pty master"))
    }
}

/// Read from the pty master until `want` shows up, EOF/EIO (the slave side
/// closed), or 10 s pass; everything read.
fn read_master(master: &OwnedFd, want: &str) -> String {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if String::from_utf8_lossy(&got).contains(want) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let r = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break; // EIO: no process holds the slave any more.
        }
        got.extend_from_slice(&buf[..r as usize]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn write_master(master: &OwnedFd, text: &str) {
    let r = unsafe { libc::write(master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
    assert_eq!(r, text.len() as isize, "write to the pty master");
}

/// A bundle for a terminal program.
fn tty_bundle(who: Who, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(who);
    b.set("/process/terminal", json!(true)).args(args);
    b
}

/// `husk --root STATE <verb> --bundle B <extra> ID` run to completion
/// with its output in files (the parked container keeps create's stdio).
fn husk(b: &Bundle, verb: &str, extra: &[&str]) -> Outcome {
    let mut cmd = b.husk();
    cmd.arg("--root").arg(&b.state).arg(verb);
    if verb == "create" {
        cmd.arg("--bundle").arg(&b.dir);
    }
    cmd.args(extra).arg(&b.s.id);
    let out = run_timeout(&mut cmd, None, TIMEOUT);
    eprintln!("husk {verb} {extra:?}: {out:?}");
    out
}

/// create with a console socket, start: the program's terminal is a
/// /dev/pts/N of the container, and what it prints arrives on the master.
fn tty_and_output(who: Who) {
    let b = tty_bundle(who, &["sh", "-c", "tty; echo hello-from-tty"]);
    let console = Console::new(&b.s);
    husk(&b, "create", &["--console-socket", console.arg()]).ok();
    let master = console.master();
    husk(&b, "start", &[]).ok();
    let text = read_master(&master, "hello-from-tty");
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "tty did not print a /dev/pts path: {text:?}"
    );
    assert!(lines.contains(&"hello-from-tty"), "{text:?}");
    wait_for("the container to stop", || {
        husk(&b, "state", &[]).ok().contains("\"stopped\"")
    });
    husk(&b, "delete", &[]).ok();
}
both!(tty_and_output);

/// stdin, stdout and stderr are all the terminal, and it is the
/// controlling terminal of the program.
fn stdio_is_the_terminal(who: Who) {
    let b = tty_bundle(
        who,
        &[
            "sh",
            "-c",
            "for f in 0 1 2; do [ -t $f ] && echo fd$f-tty; done; \
             [ \"$(readlink /proc/self/fd/0)\" = \"$(tty)\" ] && echo same; \
             echo > /dev/tty && echo ctty-ok; echo done-end",
        ],
    );
    let console = Console::new(&b.s);
    husk(&b, "create", &["--console-socket", console.arg()]).ok();
    let master = console.master();
    husk(&b, "start", &[]).ok();
    let text = read_master(&master, "done-end");
    let text = text.replace('\r', "");
    expect_lines(
        &text,
        &[
            "fd0-tty", "fd1-tty", "fd2-tty", "same", "ctty-ok", "done-end",
        ],
    );
    wait_for("the container to stop", || {
        husk(&b, "state", &[]).ok().contains("\"stopped\"")
    });
    husk(&b, "delete", &[]).ok();
}
both!(stdio_is_the_terminal);

/// Typing `exit 5` into an interactive shell through the master ends the
/// container with status 5 (seen through `husk run`, which waits for it).
fn interactive_exit_status(who: Who) {
    let b = tty_bundle(who, &["sh"]);
    let console = Console::new(&b.s);
    let mut running = b.spawn(&["--console-socket", console.arg()]);
    let Some(master) = console.try_master(|| matches!(running.child.try_wait(), Ok(Some(_))))
    else {
        panic!(
            "husk run never sent the pty master: {:#?}",
            running.finish()
        );
    };
    write_master(&master, "echo typed-$((40+2))\n");
    let text = read_master(&master, "typed-42");
    assert!(
        text.contains("typed-42"),
        "the shell did not answer: {text:?}"
    );
    write_master(&master, "exit 5\n");
    let out = running.finish();
    assert_eq!(out.code, 5, "{out:#?}");
}
both!(interactive_exit_status);

/// The same with no PID namespace: `husk run` (which may become the
/// program in place) must still hand the pty over.
fn interactive_exit_status_no_pidns(who: Who) {
    let mut b = tty_bundle(who, &["sh"]);
    b.without_namespace("pid");
    let console = Console::new(&b.s);
    let mut running = b.spawn(&["--console-socket", console.arg()]);
    let Some(master) = console.try_master(|| matches!(running.child.try_wait(), Ok(Some(_))))
    else {
        panic!(
            "husk run never sent the pty master: {:#?}",
            running.finish()
        );
    };
    write_master(&master, "exit 5\n");
    let out = running.finish();
    assert_eq!(out.code, 5, "{out:#?}");
}
both!(interactive_exit_status_no_pidns);

/// The console size from the config reaches the terminal.
fn console_size(who: Who) {
    let mut b = tty_bundle(who, &["sh", "-c", "stty size; echo size-end"]);
    b.set("/process/consoleSize", json!({"height": 33, "width": 101}));
    let console = Console::new(&b.s);
    husk(&b, "create", &["--console-socket", console.arg()]).ok();
    let master = console.master();
    husk(&b, "start", &[]).ok();
    let text = read_master(&master, "size-end").replace('\r', "");
    expect_lines(&text, &["33 101"]);
    wait_for("the container to stop", || {
        husk(&b, "state", &[]).ok().contains("\"stopped\"")
    });
    husk(&b, "delete", &[]).ok();
}
both!(console_size);

/// `process.terminal: true` without `--console-socket` fails `create` with
/// one line, leaving nothing behind.
fn terminal_without_socket(who: Who) {
    let b = tty_bundle(who, &["true"]);
    let out = husk(&b, "create", &[]);
    out.husk_error("console-socket");
    assert_eq!(b.s.leftover_processes(), Vec::<u32>::new());
    let files: Vec<_> = fs::read_dir(&b.dir).unwrap().collect();
    assert_eq!(files.len(), 1, "files left in the bundle: {files:?}");
    assert!(fs::symlink_metadata(b.state.join(&b.s.id)).is_err());
}
both!(terminal_without_socket);

/// `--console-socket` naming nothing fails `create` with one line naming
/// the path, leaving nothing behind.
fn console_socket_missing(who: Who) {
    let b = tty_bundle(who, &["true"]);
    let missing = b.s.dir.join("no-such.sock");
    let out = husk(
        &b,
        "create",
        &["--console-socket", missing.to_str().unwrap()],
    );
    out.husk_error("no-such.sock");
    assert_eq!(b.s.leftover_processes(), Vec::<u32>::new());
    let files: Vec<_> = fs::read_dir(&b.dir).unwrap().collect();
    assert_eq!(files.len(), 1, "files left in the bundle: {files:?}");
    assert!(fs::symlink_metadata(b.state.join(&b.s.id)).is_err());
}
both!(console_socket_missing);

/// `husk run` with `process.terminal: true` and no `--console-socket`
/// fails with one line, as `create` does, with or without a PID namespace
/// (it must not silently run the program without a terminal).
fn run_terminal_without_socket(who: Who) {
    for pidns in [true, false] {
        let mut b = tty_bundle(who, &["sh", "-c", "echo ran-without-tty"]);
        if !pidns {
            b.without_namespace("pid");
        }
        let out = b.run();
        assert!(
            !out.stdout.contains("ran-without-tty"),
            "pid namespace {pidns}: the program ran without its terminal: {out:#?}"
        );
        out.husk_error("console-socket");
    }
}
both!(run_terminal_without_socket);
