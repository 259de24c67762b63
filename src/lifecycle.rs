//! The OCI lifecycle verbs with no daemon, no supervisor and no database:
//! `create` parks the container process, `start` releases it, `state`
//! computes the status from kernel facts, `kill` and `delete` find the
//! container's processes by their namespaces (DESIGN.md, "The model").

use crate::error::{Error, Result};
use crate::launch::{self, PidFile, Spawn, Sync};
use crate::plan::{Caller, Plan, UserNs, load_config};
use crate::record::{self, Paths, Record, Status};
use crate::{fault, hooks, sys};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `husk create` / `husk run` arguments.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
}

/// Undoes a `create` that does not reach its end: kills the container
/// process and removes the FIFO, record, index symlink and pid file.
struct Guard {
    paths: Paths,
    index: bool,
    fifo: bool,
    record: bool,
    pid_file: Option<PathBuf>,
    pidfd: Option<OwnedFd>,
    /// Our own child to reap after killing it.
    child: Option<Pid>,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(fd) = &self.pidfd {
            let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
            sys::pidfd_wait(fd, Duration::from_secs(5));
        }
        if let Some(c) = self.child {
            let _ = nix::sys::signal::kill(c, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(c, None);
        }
        if self.fifo {
            let _ = std::fs::remove_file(&self.paths.fifo);
        }
        if self.record {
            let _ = std::fs::remove_file(&self.paths.record);
        }
        if let (true, Some(index)) = (self.index, &self.paths.index) {
            let _ = std::fs::remove_file(index);
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

use nix::sys::signal::Signal;

/// A created container, as `create` leaves it.
pub struct Created {
    pub paths: Paths,
    pub record: Record,
    guard: Guard,
    /// `run`'s end of the sync socket, open until the container execs.
    sync: Option<OwnedFd>,
}

/// Plan a container for `create` or `run` (`for_run`): the config plus the
/// command line's say.
pub fn prepare(opts: &CreateOptions, for_run: bool) -> Result<Plan> {
    if record::is_path_id(&opts.id) && Path::new(&opts.id) != opts.bundle {
        return Err(Error::invalid(
            "create",
            format!(
                "ID {:?} is a path but not the bundle {}",
                opts.id,
                opts.bundle.display()
            ),
        ));
    }
    let spec = load_config(&opts.bundle)?;
    let mut plan = Plan::build(&opts.id, &opts.bundle, spec, Caller::current())?;
    plan.process.preserve_fds = opts.preserve_fds;
    pass_socket_activation(&mut plan, for_run);
    if plan.process.terminal && opts.console_socket.is_none() {
        // runc's `run` would proxy a pty of its own; a process that execs
        // in place cannot, so a foreground run on a terminal hands the
        // program the caller's terminal itself (as ch-run does).
        if for_run && nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
            plan.process.terminal = false;
        } else {
            return Err(Error::invalid(
                "create",
                "process.terminal is true but there is no --console-socket (and stdin is not a terminal to hand over)",
            ));
        }
    }
    Ok(plan)
}

/// systemd socket activation, as runc does it: the LISTEN_FDS sockets
/// (fds 3..3+N) reach the program, which is told how many there are and
/// that they are its own (LISTEN_PID is its PID: 1 in its PID namespace,
/// husk's own PID when husk becomes the program in place).
fn pass_socket_activation(plan: &mut Plan, for_run: bool) {
    let Some(n) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n > 0)
    else {
        return;
    };
    // Only sockets meant for us: LISTEN_PID, when set, must name husk.
    if let Ok(pid) = std::env::var("LISTEN_PID")
        && pid != std::process::id().to_string()
    {
        return;
    }
    plan.process.preserve_fds = plan.process.preserve_fds.max(n);
    // The program's PID, where it is known now: 1 in its own PID
    // namespace, ours when we become it. A forked container process (hooks,
    // no PID namespace) gets no LISTEN_PID rather than a wrong one.
    let pid = if plan.create.contains(CloneFlags::CLONE_NEWPID) {
        Some(1)
    } else if for_run && launch::runs_in_place(plan) {
        Some(std::process::id())
    } else {
        None
    };
    plan.process.env.retain(|e| {
        !e.as_bytes().starts_with(b"LISTEN_FDS=") && !e.as_bytes().starts_with(b"LISTEN_PID=")
    });
    let mut vars = vec![format!("LISTEN_FDS={n}")];
    vars.extend(pid.map(|p| format!("LISTEN_PID={p}")));
    for var in vars {
        plan.process
            .env
            .push(std::ffi::CString::new(var).expect("no NUL"));
    }
}

/// `husk create`.
pub fn create(opts: &CreateOptions) -> Result<()> {
    let mut c = create_container(opts, prepare(opts, false)?, false, None)?;
    c.guard.armed = false;
    Ok(())
}

/// Reserve the ID: the index symlink is created atomically, so of two
/// racing `create`s of one ID exactly one wins.
fn reserve(paths: &Paths, id: &str) -> Result<bool> {
    let Some(index) = &paths.index else {
        return Ok(false);
    };
    let root = index.parent().expect("index lives in the root");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| Error::io("create", format!("state root {}", root.display()), &e))?;
    }
    record::check_private_dir(root)?;
    match std::os::unix::fs::symlink(&paths.bundle, index) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::sys(
            "create",
            format!("container {id:?} already exists ({})", index.display()),
            Errno::EEXIST,
        )),
        Err(e) => Err(Error::io(
            "create",
            format!("index {}", index.display()),
            &e,
        )),
    }
}

/// Receive a sync message; when the container side is gone without a word,
/// say how it died (reaping it if it is our child).
fn receive(sock: &OwnedFd, child: Pid) -> Result<Option<Vec<u8>>> {
    let msg = launch::recv(sock)?;
    if msg.is_none() {
        use nix::sys::wait::{WaitStatus, waitpid};
        let how = match waitpid(child, None) {
            Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
            Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
            _ => "exited".to_string(),
        };
        return Err(Error::invalid(
            "create",
            format!("the container process {child} {how} during setup"),
        ));
    }
    Ok(msg)
}

/// The host UID/GID of the container's root, which must be able to open
/// the FIFO that real root creates.
fn container_root_ids(plan: &Plan) -> Option<(u32, u32)> {
    let UserNs::Create(maps) = &plan.userns else {
        return None;
    };
    // Ranges were checked to fit in 32 bits; u64 keeps the sums honest.
    let host = |m: &[oci_spec::runtime::LinuxIdMapping], id: u32| {
        m.iter()
            .find(|m| {
                id >= m.container_id()
                    && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
            })
            .map(|m| m.host_id() + (id - m.container_id()))
    };
    Some((
        host(&maps.uid, plan.process.uid)?,
        host(&maps.gid, plan.process.gid)?,
    ))
}

/// `create`: plan, reserve the ID, fork the container process, run the
/// runtime-namespace hooks at sync point 2, wait for it to park, write the
/// record and the pid file. With `sigmask`, the child restores it (run).
pub fn create_container(
    opts: &CreateOptions,
    plan: Plan,
    for_run: bool,
    sigmask: Option<nix::sys::signal::SigSet>,
) -> Result<Created> {
    // 1. Plan: everything validated before anything changes.
    let caller = Caller::current();
    let seccomp = plan
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    let pid_file = opts.pid_file.as_deref().map(PidFile::open).transpose()?;
    let paths = Paths::new(&opts.root, &opts.id, &opts.bundle);
    let mut guard = Guard {
        paths: paths.clone(),
        index: false,
        fifo: false,
        record: false,
        pid_file: None,
        pidfd: None,
        child: None,
        armed: true,
    };

    // 2. The ID and the bundle files.
    record::check_private_dir(&paths.bundle)?;
    guard.index = reserve(&paths, &opts.id)?;
    fault::point("create:reserved");
    if let Ok(old) = record::read(&paths.record)
        && record::status(&paths, &old) != Status::Stopped
    {
        return Err(Error::sys(
            "create",
            format!(
                "container {:?} already exists in {}",
                old.id,
                paths.bundle.display()
            ),
            Errno::EEXIST,
        ));
    }
    // No live container holds these names (the ID is ours): a FIFO or a
    // record here is what a `create` killed midway, or a stopped container
    // whose index was wiped, left behind.
    let _ = std::fs::remove_file(&paths.fifo);
    // `run` starts the container itself: nothing to park it on.
    let fifo_handle = if for_run {
        None
    } else {
        Some(start_fifo(&paths, &plan, caller, &mut guard)?)
    };
    let console = match (&opts.console_socket, plan.process.terminal) {
        (Some(p), true) => Some(crate::console::connect(p)?),
        _ => None,
    };

    // 3. Fork the container process.
    let own_pidns = plan.create.contains(CloneFlags::CLONE_NEWPID);
    // Birth facts date the container process for the PID-window scan,
    // which only a container without a PID namespace of its own needs.
    let before = if own_pidns {
        None
    } else {
        crate::scan::Before::take()
    };
    let (ours, theirs) = launch::socketpair()?;
    if for_run {
        // `run` waits for the container's PID 1 even when an intermediate
        // process forked it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys("fork", "PR_SET_CHILD_SUBREAPER", e))?;
    }
    let made = if launch::runtime_makes_namespaces(&plan, caller) {
        Some(launch::make_namespaces(&plan, caller)?)
    } else {
        None
    };
    // Whether our child is an intermediate process that forks PID 1.
    let intermediate = own_pidns && made.is_none();
    // SAFETY: husk is single-threaded.
    let child = match unsafe { nix::unistd::fork() }
        .map_err(|e| Error::sys("fork", "container process", e))?
    {
        ForkResult::Child => {
            drop(ours);
            std::mem::forget(guard);
            launch::child_main(
                &plan,
                seccomp,
                Spawn {
                    sync: theirs,
                    fifo: fifo_handle,
                    console,
                    sigmask,
                    made,
                },
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop(theirs);
    drop(console);
    drop(seccomp);
    guard.child = Some(child);
    fault::point("create:forked");

    // Sync point 1: the namespaces exist and we know the container's PID.
    let Sync::Pid(facts) = launch::expect_sync(receive(&ours, child)?)? else {
        return Err(Error::invalid("create", "expected the container PID first"));
    };
    let pid = facts.pid;
    let pidfd =
        sys::pidfd_open(pid).map_err(|e| Error::sys("create", format!("pidfd_open {pid}"), e))?;
    let birth = before.and_then(|b| b.birth(&pidfd));
    guard.pidfd = Some(pidfd);

    let spec_hooks = plan.spec.hooks().clone().unwrap_or_default();
    // The record goes down as soon as the PID is known: if `create` dies
    // from here on, `delete --force` still finds and removes everything.
    let rec = Record {
        id: opts.id.clone(),
        bundle: paths.bundle.clone(),
        pid,
        start_time: facts.start_time,
        mnt_ns: facts.mnt_ns,
        mnt_ns_id: (facts.mnt_ns_id != 0).then_some(facts.mnt_ns_id),
        pid_ns: own_pidns.then_some(facts.pid_ns),
        created: record::now(),
        owner: caller.euid,
        annotations: plan.spec.annotations().clone().unwrap_or_default(),
        rootfs: plan.rootfs.clone(),
        poststart: spec_hooks.poststart().clone().unwrap_or_default(),
        poststop: spec_hooks.poststop().clone().unwrap_or_default(),
        // The container side joined them before sync point 1.
        cgroups: crate::cgroups::dirs(&plan),
        birth,
    };
    record::write(&paths.record, &rec)?;
    guard.record = true;
    // Sync point 2: runtime-namespace hooks, then let the container go on.
    fault::point("create:recorded");
    let state = hooks::state_json(
        &opts.id,
        "creating",
        Some(pid),
        &paths.bundle,
        &rec.annotations,
    );
    #[allow(deprecated)]
    hooks::run(
        "prestart",
        spec_hooks.prestart().as_deref().unwrap_or_default(),
        &state,
    )?;
    hooks::run(
        "createRuntime",
        spec_hooks.create_runtime().as_deref().unwrap_or_default(),
        &state,
    )?;
    let mut go = b"G".to_vec();
    go.extend_from_slice(&state);
    if let Err(e) = launch::send(&ours, &go) {
        // The container may have failed and left already: its error
        // record, still queued, says why.
        launch::expect_sync(receive(&ours, Pid::from_raw(facts.pid))?)?;
        return Err(e);
    }

    fault::point("create:released");
    // Sync point 3: the container is parked.
    match launch::expect_sync(receive(&ours, Pid::from_raw(facts.pid))?)? {
        Sync::Ready => {}
        Sync::Pid(_) => return Err(Error::invalid("create", "unexpected second PID")),
    }
    if intermediate {
        // The intermediate process leaves once the container let it go,
        // just before sync point 3.
        let _ = nix::sys::wait::waitpid(child, None);
        guard.child = None;
    }
    fault::point("create:parked");
    if let Some(f) = &pid_file {
        f.write(Pid::from_raw(pid))?;
        guard.pid_file = opts.pid_file.clone();
    }
    if !intermediate {
        // Not ours to reap: the client (a subreaper) will wait4() it.
        guard.child = None;
    }
    fault::point("create:done");
    Ok(Created {
        paths,
        record: rec,
        guard,
        sync: for_run.then_some(ours),
    })
}

/// Make the FIFO the container parks on until `start`, and the handles the
/// container process keeps on it.
fn start_fifo(
    paths: &Paths,
    plan: &Plan,
    caller: Caller,
    guard: &mut Guard,
) -> Result<launch::StartFifo> {
    nix::unistd::mkfifo(&paths.fifo, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::sys("create", format!("mkfifo {}", paths.fifo.display()), e))?;
    guard.fifo = true;
    fault::point("create:fifo");
    if caller.euid == 0
        && let Some((uid, gid)) = container_root_ids(plan)
    {
        nix::unistd::chown(&paths.fifo, Some(uid.into()), Some(gid.into()))
            .map_err(|e| Error::sys("create", format!("chown {}", paths.fifo.display()), e))?;
    }
    let open_path = |p: &Path, dir: OFlag| {
        nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC | dir, Mode::empty())
            .map_err(|e| Error::sys("create", format!("open {}", p.display()), e))
    };
    Ok(launch::StartFifo {
        fifo: open_path(&paths.fifo, OFlag::empty())?,
        dir: open_path(&paths.bundle, OFlag::O_DIRECTORY)?,
        name: paths.fifo.file_name().expect("has a name").into(),
    })
}

/// `run`'s start: the container did not park, it goes on to exec once
/// ready; the sync socket closes on exec (close-on-exec), or brings the
/// error record of a failed last step.
fn until_exec(sync: &OwnedFd, rec: &Record) -> Result<()> {
    match launch::recv(sync)? {
        None => Ok(()),
        Some(msg) if msg.first() == Some(&b'E') => {
            Err(Error::decode(&msg[1..]).unwrap_or_else(|| {
                Error::invalid("start", format!("container {:?} failed to start", rec.id))
            }))
        }
        Some(_) => Err(Error::invalid(
            "start",
            "malformed message from the container process",
        )),
    }
}

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Open a pidfd on the recorded process and make sure it is still the
/// same process (start time): a recycled PID is never signalled.
fn pidfd_checked(rec: &Record) -> Option<OwnedFd> {
    let fd = sys::pidfd_open(rec.pid).ok()?;
    record::alive(rec).then_some(fd)
}

/// `husk start`.
pub fn start(root: &Path, id: &str, bundle: Option<&Path>) -> Result<()> {
    let (paths, rec) = record::locate(root, id, bundle)?;
    release(&paths, &rec)?;
    poststart(&paths, &rec);
    Ok(())
}

/// Release the parked process and wait until it has exec'd the program
/// (the FIFO's write end is close-on-exec) or reported an error.
fn release(paths: &Paths, rec: &Record) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    match record::status(paths, rec) {
        Status::Created => {}
        Status::Running => {
            return Err(Error::invalid(
                "start",
                format!("container {:?} is already running", rec.id),
            ));
        }
        Status::Stopped => {
            return Err(Error::invalid(
                "start",
                format!("cannot start container {:?}: it has stopped", rec.id),
            ));
        }
    }
    let pidfd = pidfd_checked(rec)
        .ok_or_else(|| Error::invalid("start", format!("container {:?} has stopped", rec.id)))?;
    let fifo = nix::fcntl::open(
        &paths.fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("start", format!("open {}", paths.fifo.display()), e))?;
    fault::point("start:opened");
    // Opening released the parked process: from here on the status must
    // never read `created` again, so the FIFO goes at once.
    let _ = std::fs::remove_file(&paths.fifo);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(std::os::fd::AsFd::as_fd(&fifo), PollFlags::POLLIN),
            PollFd::new(std::os::fd::AsFd::as_fd(&pidfd), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("start", "poll", e)),
        }
        let fifo_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let exited = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fifo_ready {
            match nix::unistd::read(&fifo, &mut buf) {
                Ok(0) if !got.is_empty() => break, // exec'd (or failed: see below)
                // A writer came and went without a word: it died.
                Ok(0) if exited => {
                    return Err(Error::invalid(
                        "start",
                        format!("container {:?} exited before start", rec.id),
                    ));
                }
                Ok(0) => {}
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("start", "read the start FIFO", e)),
            }
        } else if exited {
            // Drain what it said before dying.
            while let Ok(n @ 1..) = nix::unistd::read(&fifo, &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if got.is_empty() {
                return Err(Error::invalid(
                    "start",
                    format!("container {:?} exited before start", rec.id),
                ));
            }
            break;
        }
    }
    fault::point("start:released");
    match Error::decode(got.get(1..).unwrap_or_default()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn poststart(paths: &Paths, rec: &Record) {
    if rec.poststart.is_empty() {
        return;
    }
    let state = hooks::state_json(
        &rec.id,
        "running",
        Some(rec.pid),
        &paths.bundle,
        &rec.annotations,
    );
    // The spec: a failing poststart hook is logged; the lifecycle goes on.
    if let Err(e) = hooks::run("poststart", &rec.poststart, &state) {
        crate::log::warn(&e.to_string());
    }
}

/// `husk state`: the spec's state JSON, computed now.
pub fn state(root: &Path, id: &str, bundle: Option<&Path>) -> Result<String> {
    let (paths, rec) = record::locate(root, id, bundle)?;
    Ok(state_value(&paths, &rec).to_string())
}

fn state_value(paths: &Paths, rec: &Record) -> serde_json::Value {
    let status = record::status(paths, rec);
    serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "id": rec.id,
        "pid": if status == Status::Stopped { 0 } else { rec.pid },
        "status": status.as_str(),
        "bundle": paths.bundle,
        "rootfs": rec.rootfs,
        "created": rec.created,
        "owner": "",
        "annotations": rec.annotations,
    })
}

/// Parse a signal the way runc does: name (with or without SIG), number,
/// absent = SIGTERM.
pub fn parse_signal(s: Option<&str>) -> Result<i32> {
    let Some(s) = s else { return Ok(libc::SIGTERM) };
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(Error::invalid("kill", format!("invalid signal {s:?}")))
        };
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| Error::invalid("kill", format!("invalid signal {s:?}")))
}

/// Signal one process through a pidfd, re-checking after opening it that
/// it still belongs to the container (its namespace, or for the main
/// process its start time), so a recycled PID is never hit.
fn signal_member(rec: &Record, pid: i32, sig: i32) -> Option<OwnedFd> {
    let fd = sys::pidfd_open(pid).ok()?;
    let ours = if pid == rec.pid {
        record::alive(rec)
    } else {
        match rec.pid_ns {
            Some(ino) => record::ns_inode(pid, "pid") == Some(ino),
            None => record::ns_inode(pid, "mnt") == Some(rec.mnt_ns),
        }
    };
    if !ours {
        return None;
    }
    sys::pidfd_send_signal(&fd, sig).ok()?;
    Some(fd)
}

/// `husk kill`.
pub fn kill(
    root: &Path,
    id: &str,
    bundle: Option<&Path>,
    signal: Option<&str>,
    all: bool,
) -> Result<()> {
    let sig = parse_signal(signal)?;
    let (paths, rec) = record::locate(root, id, bundle)?;
    if record::status(&paths, &rec) == Status::Stopped && !all {
        return Err(Error::sys(
            "kill",
            format!("container {:?} is not running", rec.id),
            Errno::ESRCH,
        ));
    }
    if all {
        for pid in crate::scan::members(&rec) {
            signal_member(&rec, pid, sig);
        }
        return Ok(());
    }
    let fd = pidfd_checked(&rec).ok_or_else(|| {
        Error::sys(
            "kill",
            format!("container {:?} is not running", rec.id),
            Errno::ESRCH,
        )
    })?;
    sys::pidfd_send_signal(&fd, sig)
        .map_err(|e| Error::sys("kill", format!("signal {sig} to {}", rec.pid), e))
}

/// SIGKILL every process of the container until none is left (a shell
/// loop may fork while we scan), waiting for each to be gone.
fn kill_all(rec: &Record) -> Result<()> {
    if rec.pid_ns.is_some() {
        // The kernel SIGKILLs every process of a PID namespace when its
        // init dies, and init only finishes dying once they are all gone:
        // no scan, a cost that grows with nothing.
        if let Some(init) = pidfd_checked(rec) {
            let _ = sys::pidfd_send_signal(&init, libc::SIGKILL);
            if !sys::pidfd_wait(&init, Duration::from_secs(10)) {
                return Err(Error::sys(
                    "delete",
                    format!("PID 1 of {:?} survived SIGKILL", rec.id),
                    Errno::EBUSY,
                ));
            }
        }
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pids = crate::scan::members(rec);
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::sys(
                "delete",
                format!(
                    "{} processes of {:?} survived SIGKILL: {pids:?}",
                    pids.len(),
                    rec.id
                ),
                Errno::EBUSY,
            ));
        }
        let fds: Vec<OwnedFd> = pids
            .iter()
            .filter_map(|p| signal_member(rec, *p, libc::SIGKILL))
            .collect();
        for fd in &fds {
            sys::pidfd_wait(fd, Duration::from_millis(500));
        }
    }
}

/// `husk delete`.
pub fn delete(root: &Path, id: &str, bundle: Option<&Path>, force: bool) -> Result<()> {
    let (paths, rec) = match record::locate(root, id, bundle) {
        Ok(found) => found,
        // runc: --force makes a missing container not an error; a stale
        // index entry is removed all the same.
        Err(e) if e.errno() == Some(Errno::ENOENT) => {
            if force {
                remove_leftovers(root, id, bundle);
            }
            return if force { Ok(()) } else { Err(e) };
        }
        Err(e) => return Err(e),
    };
    match record::status(&paths, &rec) {
        Status::Running if !force => {
            return Err(Error::sys(
                "delete",
                format!(
                    "container {:?} is running: stop it first or use --force",
                    rec.id
                ),
                Errno::EBUSY,
            ));
        }
        _ => kill_all(&rec)?,
    }
    fault::point("delete:killed");
    remove(&paths, &rec);
    Ok(())
}

/// What a `create` killed before its record existed can leave: the index
/// entry and the FIFO (no process: the container side exits when its
/// runtime goes away before sync point 2).
fn remove_leftovers(root: &Path, id: &str, bundle: Option<&Path>) {
    if !record::is_path_id(id) && crate::plan::validate_id(id).is_err() {
        return;
    }
    let index = root.join(id);
    let bundle = bundle
        .map(Path::to_path_buf)
        .or_else(|| record::is_path_id(id).then(|| PathBuf::from(id)))
        .or_else(|| std::fs::read_link(&index).ok());
    if let Some(b) = bundle {
        let paths = Paths::new(root, id, &b);
        let _ = std::fs::remove_file(&paths.fifo);
    }
    if !record::is_path_id(id) {
        let _ = std::fs::remove_file(index);
    }
}

/// Run poststop hooks (failures warn, as the spec says) and remove the
/// FIFO, the record and the index entry.
fn remove(paths: &Paths, rec: &Record) {
    if !rec.poststop.is_empty() {
        let state = hooks::state_json(&rec.id, "stopped", None, &paths.bundle, &rec.annotations);
        if let Err(e) = hooks::run("poststop", &rec.poststop, &state) {
            crate::log::warn(&e.to_string());
        }
    }
    fault::point("delete:hooks");
    crate::cgroups::remove(&rec.cgroups);
    let _ = std::fs::remove_file(&paths.fifo);
    let _ = std::fs::remove_file(&paths.record);
    fault::point("delete:removed");
    if let Some(index) = &paths.index
        && std::fs::read_link(index).ok().as_deref() == Some(paths.bundle.as_path())
    {
        let _ = std::fs::remove_file(index);
    }
}

/// `husk run` when it cannot become the program in place: create, start,
/// wait with signal forwarding, delete — runc's `run`.
pub fn run(opts: &CreateOptions, plan: Plan) -> Result<i32> {
    let (set, old) = launch::block_forwarded()?;
    let mut c = create_container(opts, plan, true, Some(old))?;
    c.guard.armed = false;
    let sync = c.sync.take().expect("run keeps the sync socket");
    let res = until_exec(&sync, &c.record).map(|()| poststart(&c.paths, &c.record));
    drop(sync);
    let code = match res {
        Ok(()) => {
            fault::point("run:waiting");
            launch::wait_forwarding(Pid::from_raw(c.record.pid), &set)
        }
        Err(e) => Err(e),
    };
    let _ = kill_all(&c.record);
    remove(&c.paths, &c.record);
    code
}

/// `husk list`: the containers in the index.
pub fn list(root: &Path, quiet: bool, json: bool) -> Result<String> {
    let mut rows = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok((paths, rec)) = record::locate(root, &id, None) {
                rows.push(state_value(&paths, &rec));
            }
        }
    }
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if json {
        return Ok(serde_json::Value::Array(rows).to_string());
    }
    let mut out = String::new();
    if !quiet {
        out.push_str("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
    }
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        if quiet {
            out.push_str(&format!("{}\n", s("id")));
        } else {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                s("id"),
                r["pid"],
                s("status"),
                s("bundle"),
                s("created"),
                s("owner")
            ));
        }
    }
    Ok(out)
}

/// `husk ps`: the container's processes (host PIDs), found by the scan.
pub fn ps(root: &Path, id: &str, bundle: Option<&Path>, json: bool) -> Result<String> {
    let (_, rec) = record::locate(root, id, bundle)?;
    let pids = crate::scan::members(&rec);
    if json {
        return Ok(serde_json::to_string(&pids).expect("ints serialize"));
    }
    let mut out = String::from("PID\tCMD\n");
    for p in pids {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmd: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        out.push_str(&format!("{p}\t{}\n", cmd.join(" ")));
    }
    Ok(out)
}
