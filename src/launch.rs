//! Starting a container, top to bottom as the OCI lifecycle.
//!
//! Two shapes share one container side (`container_main`):
//! - **in place** (`husk run` without a PID namespace or hooks): this
//!   process enters the namespaces, builds the rootfs and `execve`s the
//!   program — ch-run's model, no husk process remains;
//! - **parked** (`create`): the runtime forks the container process, which
//!   builds the container and parks on a FIFO in the bundle until `start`;
//!   `run` (otherwise) is the same without the FIFO: the container goes on
//!   to exec once ready.
//!
//! With a PID namespace, PID 1 must be forked inside it. An unprivileged
//! runtime that writes its own ID maps makes the user and PID namespaces
//! itself, so the process it forks is PID 1 (one fork: `unshare -Urpf`'s
//! shape, and bubblewrap's); otherwise (root, newuidmap, namespaces to
//! join, runtime-side hooks) an intermediate process makes the namespaces
//! and forks PID 1.
//!
//! The sync points, numbered the same on both sides:
//!   1. → runtime: `P` + the container's PID and namespaces, from the
//!      container process, or from the intermediate process (which then
//!      leaves)
//!   2. runtime → container: `G` + state JSON: the record is written
//!      (prestart/createRuntime done). With hooks the container waits for
//!      it before its root filesystem; otherwise it reads it just before 3,
//!      so the runtime writes its record while the container mounts. Until
//!      then the container process dies with the runtime
//!      (PR_SET_PDEATHSIG, through the intermediate process if any): a
//!      runtime killed before its record leaves nothing to find.
//!   3. container → runtime: `R` (rootfs done, parking) — or `E` + error
//!      record at any point before.

use crate::error::{Error, Result};
use crate::plan::{Caller, Plan, UserNs};
use crate::{cgroups, fault, hooks, process, rootfs, sys, userns};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `--pid-file`, opened as its directory first (the container side writes
/// it after pivot_root has hidden the host paths).
pub struct PidFile {
    dir: OwnedFd,
    name: OsString,
    display: PathBuf,
}

impl PidFile {
    pub fn open(path: &Path) -> Result<Self> {
        let err = |e| Error::sys("pid file", path.display().to_string(), e);
        let name = path
            .file_name()
            .ok_or_else(|| err(nix::errno::Errno::EINVAL))?
            .to_os_string();
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = nix::fcntl::open(
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        Ok(PidFile {
            dir,
            name,
            display: path.to_path_buf(),
        })
    }

    /// runc writes the PID with no trailing newline, into a temporary file
    /// renamed into place, so a reader never sees an empty or partial file.
    pub fn write(&self, pid: Pid) -> Result<()> {
        let err = |e| Error::sys("pid file", self.display.display().to_string(), e);
        let mut tmp = OsString::from(".");
        tmp.push(&self.name);
        tmp.push(".husk-tmp");
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            tmp.as_os_str(),
            OFlag::O_CREAT
                | OFlag::O_WRONLY
                | OFlag::O_TRUNC
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(err)?;
        let res = sys::write_all(&fd, pid.to_string().as_bytes()).and_then(|()| {
            nix::fcntl::renameat(
                self.dir.as_fd(),
                tmp.as_os_str(),
                self.dir.as_fd(),
                self.name.as_os_str(),
            )
        });
        if let Err(e) = res {
            let _ = nix::unistd::unlinkat(
                self.dir.as_fd(),
                tmp.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(err(e));
        }
        Ok(())
    }

    pub fn remove(&self) {
        let _ = nix::unistd::unlinkat(
            self.dir.as_fd(),
            self.name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Whether `run` can become the program in place: no PID namespace (which
/// needs a fork), no hooks (which need a runtime-side process) and no new
/// terminal (setsid needs a process that is not a group leader).
pub fn runs_in_place(plan: &Plan) -> bool {
    !plan.create.contains(CloneFlags::CLONE_NEWPID)
        && plan.spec.hooks().is_none()
        && !plan.process.terminal
}

/// `husk run` in place: never returns on success.
pub fn run_in_place(
    plan: &Plan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    pid_file: Option<PidFile>,
) -> Result<Infallible> {
    // 1–2. Caller-privileged attributes, then the namespaces.
    enter(plan, CloneFlags::empty())?;
    // 3–6. Root filesystem, process, exec: this process becomes the program.
    let mut ctx = ContainerCtx::default();
    let err = match container_main(plan, seccomp, &mut ctx, || {
        pid_file
            .as_ref()
            .map_or(Ok(()), |f| f.write(nix::unistd::getpid()))
    }) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    if let Some(f) = &pid_file {
        f.remove();
    }
    Err(err)
}

/// The container process's first steps, shared by the in-place run and the
/// forked container: what needs the caller's privileges (cgroup limits,
/// rlimits, OOM score), then the namespaces.
fn enter(plan: &Plan, made: CloneFlags) -> Result<()> {
    cgroups::apply(plan)?;
    process::prepare_outside(&plan.process)?;
    enter_namespaces(plan, Caller::current(), made)?;
    fault::point("container:namespaces");
    Ok(())
}

/// Join the namespaces given by path (the user namespace first, so the
/// others are joined with its privileges), create the user namespace, then
/// unshare the others. Joining before creating mirrors runc's nsexec: a
/// namespace owned by the caller's user namespace can only be joined from
/// outside the new one. `made`: what the runtime already made for us (see
/// `runtime_makes_namespaces`).
fn enter_namespaces(plan: &Plan, caller: Caller, made: CloneFlags) -> Result<()> {
    if !made.contains(CloneFlags::CLONE_NEWUSER) {
        if let UserNs::Join(path) = &plan.userns {
            setns(path, CloneFlags::CLONE_NEWUSER)?;
        }
        for (flag, path) in &plan.join {
            setns(path, *flag)?;
        }
        if let UserNs::Create(maps) = &plan.userns {
            userns::unshare_in_process(maps, caller)?;
        }
    }
    let create = plan.create - made;
    nix::sched::unshare(create).map_err(|e| Error::sys("unshare", format!("{create:?}"), e))?;
    // From here on processes of the container may see us (a joined PID
    // namespace, the parked window). Non-dumpable, /proc/<us>/exe and our
    // memory are closed to them, so they cannot overwrite the husk binary
    // (CVE-2019-5736). execve of the program makes it dumpable again. Set
    // only now: a non-dumpable process could not write its own uid_map.
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::sys("unshare", "PR_SET_DUMPABLE 0", e))
}

fn setns(path: &Path, flag: CloneFlags) -> Result<()> {
    let what = || format!("{} ({flag:?})", path.display());
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("join namespace", what(), e))?;
    nix::sched::setns(fd, flag).map_err(|e| Error::sys("join namespace", what(), e))
}

/// What the container side talks to, when it is parked rather than run in
/// place.
#[derive(Default)]
pub struct ContainerCtx {
    /// State JSON for createContainer/startContainer hooks.
    pub state: Vec<u8>,
    /// The sync socket to the runtime (sync point 3).
    pub sync: Option<OwnedFd>,
    /// The bundle directory and the FIFO's name in it: opened through the
    /// directory fd because pivot_root hides the host path.
    pub fifo: Option<StartFifo>,
    /// Set once parked: errors after that go to `start` through the FIFO.
    pub parked: Option<OwnedFd>,
    /// The connected `--console-socket`.
    pub console: Option<OwnedFd>,
    /// Sync point 2 is still to be read, just before sync point 3.
    pub go_pending: bool,
    /// With a PID namespace, the pipe our parent (the intermediate process)
    /// waits on: closed once we are untethered.
    pub hold: Option<OwnedFd>,
}

/// The container side, top to bottom. `before_exec` runs once the
/// container is complete (the in-place pid file is written there).
pub fn container_main(
    plan: &Plan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    ctx: &mut ContainerCtx,
    before_exec: impl FnOnce() -> Result<()>,
) -> Result<Infallible> {
    let spec_hooks = plan.spec.hooks().clone().unwrap_or_default();
    let state = if ctx.state.is_empty() {
        in_place_state(plan)
    } else {
        std::mem::take(&mut ctx.state)
    };
    rootfs::set_names(plan)?;
    let root = rootfs::prepare_root(plan)?;
    rootfs::mount_all(plan, &root)?;
    fault::point("container:mounted");
    rootfs::create_devices(plan, &root)?;
    rootfs::ensure_cwd(plan, &root)?;
    hooks::run(
        "createContainer",
        spec_hooks.create_container().as_deref().unwrap_or_default(),
        &state,
    )?;
    drop(root);
    rootfs::pivot_root(plan)?;
    fault::point("container:pivoted");
    rootfs::finish(plan)?;
    if let Some(sock) = ctx.console.take() {
        crate::console::setup(sock, plan.process.console_size)?;
    }
    if let Some(sync) = ctx.sync.take() {
        if ctx.go_pending {
            // Sent when the runtime wrote our record, normally long ago.
            ctx.state = receive_go(&sync)?;
        }
        untether(ctx)?;
        let sent = send(&sync, b"R");
        ctx.sync = Some(sync);
        sent?;
    }
    if let Some(fifo) = ctx.fifo.take() {
        ctx.parked = Some(park(&fifo)?);
    }
    let start_hooks = spec_hooks.start_container().as_deref().unwrap_or_default();
    if !start_hooks.is_empty() {
        // `start` was called: the container is `created` now (runc's value).
        hooks::run(
            "startContainer",
            start_hooks,
            &with_status(&state, "created"),
        )?;
    }
    before_exec()?;
    process::finalize(&plan.process, seccomp)
}

/// The same state JSON with another status.
fn with_status(state: &[u8], status: &str) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(state) {
        Ok(mut v) => {
            v["status"] = status.into();
            v.to_string().into_bytes()
        }
        Err(_) => state.to_vec(),
    }
}

fn in_place_state(plan: &Plan) -> Vec<u8> {
    let annotations = plan.spec.annotations().clone().unwrap_or_default();
    hooks::state_json(
        &plan.id,
        "creating",
        Some(nix::unistd::getpid().as_raw()),
        &plan.bundle,
        &annotations,
    )
}

/// The start FIFO as the container process holds it: an O_PATH handle on
/// the FIFO itself, and the bundle directory with the FIFO's name so the
/// process can remove the name once it is released.
pub struct StartFifo {
    pub fifo: OwnedFd,
    pub dir: OwnedFd,
    pub name: OsString,
}

/// Block until `start` opens the FIFO for reading, then say we are here.
/// The FIFO is reopened through our O_PATH handle (runc's exec.fifo
/// trick), so it is the same inode even after `start` unlinked the name,
/// and no host path is needed after pivot_root. The write end stays open
/// (close-on-exec): `start` sees it close when the program has been
/// exec'd, or reads an error record if we fail first.
fn park(start: &StartFifo) -> Result<OwnedFd> {
    let path = sys::fd_path(&start.fifo);
    let fd = nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(
        |e| {
            Error::sys(
                "start",
                format!(
                    "reopen the start FIFO through {} (is /proc mounted?)",
                    path.display()
                ),
                e,
            )
        },
    )?;
    // Released: the name goes now, whatever happens to `start`, so the
    // status can never read `created` again (start removes it too; this
    // covers a start that dies right after opening).
    let _ = nix::unistd::unlinkat(
        start.dir.as_fd(),
        start.name.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    // A `start` that died after opening leaves no reader: the write must
    // fail with EPIPE, not kill us with SIGPIPE. The container runs on.
    let _ = without_sigpipe(|| sys::write_all(&fd, b"0"));
    Ok(fd)
}

/// Run `f` with SIGPIPE ignored, then restore the disposition the program
/// would otherwise inherit.
fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN and restoring a previous disposition.
    let old = unsafe { sigaction(Signal::SIGPIPE, &ignore) };
    let out = f();
    if let Ok(old) = old {
        // SAFETY: as above.
        let _ = unsafe { sigaction(Signal::SIGPIPE, &old) };
    }
    out
}

/// One message on the SOCK_SEQPACKET sync socket.
pub fn send(sock: &OwnedFd, msg: &[u8]) -> Result<()> {
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(sock),
        msg,
        MsgFlags::MSG_NOSIGNAL,
    )
    .map(drop)
    .map_err(|e| Error::sys("create", "sync socket send", e))
}

/// Receive one message; `None` on EOF (the peer died or exec'd).
pub fn recv(sock: &OwnedFd) -> Result<Option<Vec<u8>>> {
    // Peek at the size first (MSG_TRUNC reports a datagram's full length):
    // the state JSON may be large, most messages are a few bytes.
    let size = loop {
        match nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            &mut [0u8; 0],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) => break n,
            // The peer left with a message of ours unread (the container
            // failed while the runtime's sync point 2 was on its way): the
            // kernel reports that once, then hands over what it had sent.
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => {}
            Err(e) => return Err(Error::sys("create", "sync socket recv", e)),
        }
    };
    let mut buf = vec![0u8; size.max(1)];
    loop {
        match nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            &mut buf,
            MsgFlags::empty(),
        ) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => {}
            Err(e) => return Err(Error::sys("create", "sync socket recv", e)),
        }
    }
}

pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("create", "socketpair", e))
}

/// Everything the forked container process needs.
pub struct Spawn {
    pub sync: OwnedFd,
    pub fifo: Option<StartFifo>,
    pub console: Option<OwnedFd>,
    /// Restore this signal mask before anything else (the runtime blocks
    /// signals it forwards).
    pub sigmask: Option<SigSet>,
    /// The namespaces the runtime made before forking us, and a pidfd on
    /// the runtime (its PID means nothing inside a new PID namespace).
    pub made: Option<(CloneFlags, OwnedFd)>,
}

/// Whether the runtime makes the user and PID namespaces itself, so that
/// the process it forks is the container's PID 1 straight away: no
/// intermediate process, one fork instead of two (`unshare -Urpf`'s
/// shape). Only where the runtime gives nothing up by living in the new
/// user namespace: an unprivileged caller (no capabilities to lose) who
/// writes the maps itself, nothing to join first, and no hook that must
/// run in the runtime's namespaces.
pub fn runtime_makes_namespaces(plan: &Plan, caller: Caller) -> bool {
    let self_map =
        matches!(&plan.userns, UserNs::Create(maps) if userns::writable_by_self(maps, caller));
    let runtime_hooks = has_hooks(plan, |h| {
        #[allow(deprecated)]
        let prestart = h.prestart();
        [prestart, h.create_runtime(), h.poststart(), h.poststop()]
    });
    plan.create.contains(CloneFlags::CLONE_NEWPID)
        && self_map
        && plan.join.is_empty()
        && !runtime_hooks
}

/// The runtime's half of `runtime_makes_namespaces`: enter the new user
/// namespace (maps written, as the container process would have) and
/// make the PID namespace our next child is born into. Returns what was
/// made and a pidfd on us for the child.
pub fn make_namespaces(plan: &Plan, caller: Caller) -> Result<(CloneFlags, OwnedFd)> {
    let UserNs::Create(maps) = &plan.userns else {
        unreachable!("runtime_makes_namespaces checked the plan");
    };
    let us = sys::pidfd_open(nix::unistd::getpid().as_raw())
        .map_err(|e| Error::sys("fork", "pidfd_open of the runtime", e))?;
    userns::unshare_in_process(maps, caller)?;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| Error::sys("unshare", "CLONE_NEWPID", e))?;
    Ok((CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID, us))
}

/// Whether the container process waits at sync point 2 before building its
/// root filesystem. Only hooks need that: prestart and createRuntime must be
/// done before pivot_root, and createContainer and startContainer get the
/// state the runtime sends. Otherwise it reads sync point 2 just before
/// sync point 3, and the runtime writes its record meanwhile.
pub fn waits_at_sync2(plan: &Plan) -> bool {
    has_hooks(plan, |h| {
        #[allow(deprecated)]
        let prestart = h.prestart();
        [
            prestart,
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
    })
}

/// Whether the config has a hook in any of the phases `phases` picks.
fn has_hooks<'a>(
    plan: &'a Plan,
    phases: impl FnOnce(&'a oci_spec::runtime::Hooks) -> [&'a Option<Vec<oci_spec::runtime::Hook>>; 4],
) -> bool {
    plan.spec.hooks().as_ref().is_some_and(|h| {
        phases(h)
            .iter()
            .any(|p| p.as_ref().is_some_and(|v| !v.is_empty()))
    })
}

/// The forked container process: namespaces, then sync point 1, then the
/// container side. Never returns; errors go to the runtime (or to `start`
/// once parked) as a fixed record.
pub fn child_main(plan: &Plan, seccomp: Option<libseccomp::ScmpFilterContext>, spawn: Spawn) -> ! {
    let runtime = nix::unistd::getppid();
    if let Some(mask) = &spawn.sigmask {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None);
    }
    let mut ctx = ContainerCtx {
        sync: Some(spawn.sync),
        fifo: spawn.fifo,
        console: spawn.console,
        ..Default::default()
    };
    let res = child_steps(plan, seccomp, &mut ctx, runtime, spawn.made);
    let e = match res {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let mut record = b"E".to_vec();
    record.extend(e.encode());
    if let Some(fifo) = &ctx.parked {
        let _ = without_sigpipe(|| sys::write_all(fifo, &record[1..]));
    } else if let Some(sync) = &ctx.sync {
        let _ = send(sync, &record);
    }
    // SAFETY: leave without running the runtime's destructors.
    unsafe { libc::_exit(1) }
}

fn child_steps(
    plan: &Plan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    ctx: &mut ContainerCtx,
    runtime: Pid,
    made: Option<(CloneFlags, OwnedFd)>,
) -> Result<Infallible> {
    let (made, runtime_fd) = made.map_or((CloneFlags::empty(), None), |(m, fd)| (m, Some(fd)));
    enter(plan, made)?;
    // After enter: a change of credentials (setresuid in the new user
    // namespace) clears the parent-death signal.
    tether()?;
    let gone = match &runtime_fd {
        Some(fd) => sys::pidfd_wait(fd, std::time::Duration::ZERO),
        None => nix::unistd::getppid() != runtime,
    };
    drop(runtime_fd);
    if gone {
        return Err(Error::invalid(
            "create",
            "the runtime went away during setup",
        ));
    }
    let sync = ctx
        .sync
        .as_ref()
        .expect("parked containers have a sync socket");
    // The host's /proc, held open: once the container process has pivoted
    // (it shares our mount namespace) the path /proc is the container's.
    let proc_fd = nix::fcntl::open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("create", "open /proc", e))?;
    if plan.create.contains(CloneFlags::CLONE_NEWPID) && !made.contains(CloneFlags::CLONE_NEWPID) {
        // unshare(CLONE_NEWPID) applies to children: the container process
        // is our child, PID 1 of the new namespace. We describe it (sync
        // point 1) and wait, tied to the runtime, until it is tied to
        // nothing (it has passed sync point 2); then we leave and it is
        // re-parented to the nearest subreaper (the client).
        let (hold_r, hold_w) = sys::pipe("fork")?;
        let us = sys::pidfd_open(nix::unistd::getpid().as_raw())
            .map_err(|e| Error::sys("fork", "pidfd_open of the intermediate process", e))?;
        // SAFETY: single-threaded.
        match unsafe { nix::unistd::fork() }
            .map_err(|e| Error::sys("fork", "PID 1 of the new PID namespace", e))?
        {
            ForkResult::Parent { child } => {
                drop(hold_w);
                let res = ProcessFacts::of(&proc_fd, &child.to_string(), "pid_for_children")
                    .and_then(|facts| send(sync, &facts.encode()));
                if let Err(e) = res {
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    let mut record = b"E".to_vec();
                    record.extend(e.encode());
                    let _ = send(sync, &record);
                } else {
                    // EOF once the child untethered (or died); leaving
                    // earlier would take it with us.
                    while let Err(nix::errno::Errno::EINTR) =
                        nix::unistd::read(&hold_r, &mut [0u8; 1])
                    {}
                }
                // SAFETY: leave without the runtime's destructors.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Child => {
                drop(hold_r);
                // Tied to our parent, which is tied to the runtime; if it
                // is already gone, so are we.
                tether()?;
                if sys::pidfd_wait(&us, std::time::Duration::ZERO) {
                    return Err(Error::invalid(
                        "create",
                        "the runtime went away during setup",
                    ));
                }
                drop(us);
                ctx.hold = Some(hold_w);
            }
        }
    } else {
        // We are the container process (PID 1 already if the runtime made
        // the PID namespace): "self" in the host's /proc is us.
        send(sync, &ProcessFacts::of(&proc_fd, "self", "pid")?.encode())?;
    }
    drop(proc_fd);
    // Sync point 2: the runtime wrote our record (and ran prestart and
    // createRuntime) and sends the state. Hooks need it before pivot_root;
    // without them it is read just before sync point 3, so the runtime
    // writes while we build the root filesystem.
    if waits_at_sync2(plan) {
        ctx.state = receive_go(sync)?;
    } else {
        ctx.go_pending = true;
    }
    container_main(plan, seccomp, ctx, || Ok(()))
}

fn receive_go(sync: &OwnedFd) -> Result<Vec<u8>> {
    match recv(sync)? {
        Some(msg) if msg.first() == Some(&b'G') => Ok(msg[1..].to_vec()),
        _ => Err(Error::invalid(
            "create",
            "the runtime went away during setup",
        )),
    }
}

/// Die with our parent (SIGKILL) until `untether`: a runtime killed before
/// it has our record leaves no container process nobody could find.
fn tether() -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| Error::sys("create", "PR_SET_PDEATHSIG", e))
}

/// The runtime has our record (sync point 2): live on without it, and let
/// the intermediate process go.
fn untether(ctx: &mut ContainerCtx) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(None)
        .map_err(|e| Error::sys("create", "PR_SET_PDEATHSIG 0", e))?;
    // It leaves at once; the runtime reaps it after sync point 3.
    ctx.hold = None;
    Ok(())
}

/// What is reported at sync point 1: the facts the record needs about the
/// container process, read from the host's /proc (still mounted: this is
/// before pivot_root) by the process that made its namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Host PID (what /proc/self names in the host's procfs).
    pub pid: i32,
    pub start_time: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    /// The mount namespace's never-reused ID (0: the kernel has none).
    pub mnt_ns_id: u64,
}

impl ProcessFacts {
    /// The facts of the container process `who` (a PID, or "self"), read
    /// by the process that made its namespaces (it or its parent): our own
    /// mount namespace, and our `pid` or `pid_for_children` namespace. The
    /// host PID is the first field of its stat (no /proc/self readlink),
    /// and the mount namespace file is opened once for its inode and ID.
    fn of(proc_fd: &OwnedFd, who: &str, pid_ns: &str) -> Result<Self> {
        let err = |what: &str| {
            Error::sys(
                "create",
                format!("read /proc/{what}"),
                nix::errno::Errno::ESRCH,
            )
        };
        let stat = nix::fcntl::openat(
            proc_fd,
            format!("{who}/stat").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| sys::read_to_end(&fd).ok())
        .ok_or_else(|| err(&format!("{who}/stat")))?;
        let stat = String::from_utf8_lossy(&stat);
        let pid = stat.split(' ').next().and_then(|p| p.parse::<i32>().ok());
        let (pid, (_, start_time)) = pid
            .zip(crate::record::parse_stat(&stat))
            .ok_or_else(|| err(&format!("{who}/stat")))?;
        let mnt = nix::fcntl::openat(
            proc_fd,
            "self/ns/mnt",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| err("self/ns/mnt"))?;
        let mnt_ns = nix::sys::stat::fstat(&mnt)
            .map_err(|_| err("self/ns/mnt"))?
            .st_ino;
        let pid_ns = nix::sys::stat::fstatat(
            proc_fd,
            format!("self/ns/{pid_ns}").as_str(),
            nix::fcntl::AtFlags::empty(),
        )
        .map_err(|_| err(&format!("self/ns/{pid_ns}")))?
        .st_ino;
        Ok(ProcessFacts {
            pid,
            start_time,
            mnt_ns,
            pid_ns,
            mnt_ns_id: sys::mnt_ns_id(&mnt).unwrap_or(0),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut m = b"P".to_vec();
        m.extend(self.pid.to_le_bytes());
        m.extend(self.start_time.to_le_bytes());
        m.extend(self.mnt_ns.to_le_bytes());
        m.extend(self.pid_ns.to_le_bytes());
        m.extend(self.mnt_ns_id.to_le_bytes());
        m
    }

    fn decode(m: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| Some(u64::from_le_bytes(m.get(at..at + 8)?.try_into().ok()?));
        (m.len() == 37).then_some(())?;
        Some(ProcessFacts {
            pid: i32::from_le_bytes(m.get(1..5)?.try_into().ok()?),
            start_time: u64_at(5)?,
            mnt_ns: u64_at(13)?,
            pid_ns: u64_at(21)?,
            mnt_ns_id: u64_at(29)?,
        })
    }
}

/// Parse a sync message from the container: `P` + facts, `R`, `E` + record.
pub enum Sync {
    Pid(ProcessFacts),
    Ready,
}

pub fn expect_sync(msg: Option<Vec<u8>>) -> Result<Sync> {
    let msg =
        msg.ok_or_else(|| Error::invalid("create", "the container process exited during setup"))?;
    let malformed = || Error::invalid("create", "malformed message from the container process");
    match msg.first() {
        Some(b'P') => ProcessFacts::decode(&msg)
            .map(Sync::Pid)
            .ok_or_else(malformed),
        Some(b'R') => Ok(Sync::Ready),
        Some(b'E') => Err(Error::decode(&msg[1..]).unwrap_or_else(malformed)),
        _ => Err(malformed()),
    }
}

/// Signals a waiting `run` passes on to the container, as runc's proxy.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGPIPE,
    Signal::SIGALRM,
];

/// Block the forwarded signals (and SIGCHLD) before forking, so none is
/// lost between fork and wait. Returns the set and the old mask.
pub fn block_forwarded() -> Result<(SigSet, SigSet)> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
        .map_err(|e| Error::sys("fork", "sigprocmask", e))?;
    Ok((set, old))
}

/// Wait for `child` (our child or re-parented to us as subreaper), passing
/// on forwarded signals. Returns its exit code, 128+N for signal N.
pub fn wait_forwarding(child: Pid, set: &SigSet) -> Result<i32> {
    loop {
        // Reap whatever else was re-parented to us (the intermediate
        // process, orphans of the container) without blocking.
        loop {
            match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == child => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == child => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(child, sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A plan for runc's rootless shape (user, PID and mount namespaces,
    /// the caller's ID mapped to 0), with `linux` and `hooks` adjusted.
    fn plan(caller: Caller, edit: impl FnOnce(&mut serde_json::Value)) -> Plan {
        let mut spec = json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
            }
        });
        edit(&mut spec);
        Plan::build(
            "t",
            Path::new("/"),
            serde_json::from_value(spec).unwrap(),
            caller,
        )
        .unwrap()
    }

    #[test]
    fn the_runtime_makes_the_namespaces_only_where_it_gives_nothing_up() {
        let user = Caller {
            euid: 1000,
            egid: 1000,
        };
        let root = Caller { euid: 0, egid: 0 };
        let makes = |caller, edit: fn(&mut serde_json::Value)| {
            runtime_makes_namespaces(&plan(caller, edit), caller)
        };
        assert!(makes(user, |_| {}), "runc's rootless spec");
        // Hooks that run in the container are fine; the runtime's are not.
        assert!(makes(user, |s| {
            s["hooks"] = json!({"createContainer": [{"path": "/bin/true"}]})
        }));
        for hook in ["prestart", "createRuntime", "poststart", "poststop"] {
            let mut s = json!(null);
            s[hook] = json!([{"path": "/bin/true"}]);
            let p = plan(user, |spec| spec["hooks"] = s.clone());
            assert!(!runtime_makes_namespaces(&p, user), "{hook}");
        }
        assert!(!makes(root, |_| {}), "root has capabilities to lose");
        assert!(
            !makes(user, |s| s["linux"]["namespaces"] =
                json!([{"type": "mount"}, {"type": "user"}])),
            "no PID namespace: no fork needed for PID 1"
        );
        assert!(
            !makes(user, |s| s["linux"]["uidMappings"] = json!([
                {"containerID": 0, "hostID": 1000, "size": 1},
                {"containerID": 1, "hostID": 100000, "size": 65536}
            ])),
            "maps only newuidmap can write"
        );
        assert!(
            !makes(user, |s| s["linux"]["namespaces"] = json!([
                {"type": "pid"}, {"type": "mount"}, {"type": "user"},
                {"type": "network", "path": "/proc/self/ns/net"}
            ])),
            "a namespace to join first"
        );
    }
}
