//! `husk exec`: run another process in a running container by joining its
//! namespaces through a pidfd (one `setns` call for all of them, atomic),
//! then forking once so the new process is inside the PID namespace.
//! Podman's conmon calls it with `--process FILE --detach --pid-file F`.

use crate::error::{Error, Result};
use crate::launch::{self, PidFile};
use crate::plan::{ProcessPlan, load_config, plan_process};
use crate::record::{self, Status};
use crate::sys;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: Option<PathBuf>,
    /// `--process FILE`: an OCI `process` object.
    pub process: Option<PathBuf>,
    /// Command line when there is no `--process`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `--user UID[:GID]`
    pub user: Option<String>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
}

const STEP: &str = "exec process";

/// The namespaces in which `pid` differs from us: joining one we are
/// already in is an error for the user namespace, and pointless otherwise.
fn differing_namespaces(pid: i32) -> CloneFlags {
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ];
    let me = std::process::id() as i32;
    kinds
        .into_iter()
        .filter(|(k, _)| record::ns_inode(pid, k) != record::ns_inode(me, k))
        .fold(CloneFlags::empty(), |acc, (_, f)| acc | f)
}

/// The process to run: `--process FILE`, or the container's own process
/// with the command line and flags applied (runc's behaviour).
fn process_spec(
    opts: &ExecOptions,
    config: &oci_spec::runtime::Spec,
) -> Result<oci_spec::runtime::Process> {
    if let Some(file) = &opts.process {
        let text =
            std::fs::read(file).map_err(|e| Error::io(STEP, file.display().to_string(), &e))?;
        return serde_json::from_slice(&text)
            .map_err(|e| Error::invalid(STEP, format!("{}: {e}", file.display())));
    }
    if opts.args.is_empty() {
        return Err(Error::invalid(
            STEP,
            "no command given (use --process FILE or ARGS)",
        ));
    }
    let mut p = config.process().clone().unwrap_or_default();
    p.set_args(Some(opts.args.clone()));
    p.set_terminal(Some(opts.tty));
    if !opts.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(opts.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::invalid(STEP, format!("--user {u:?}: use UID[:GID]")))
        };
        let mut user = p.user().clone();
        user.set_uid(num(uid)?);
        user.set_gid(num(gid)?);
        p.set_user(user);
    }
    Ok(p)
}

/// `husk exec`. Returns the exit code (0 when detached).
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    let (paths, rec) = record::locate(&opts.root, &opts.id, opts.bundle.as_deref())?;
    if record::status(&paths, &rec) != Status::Running {
        return Err(Error::sys(
            STEP,
            format!("container {:?} is not running", rec.id),
            Errno::ESRCH,
        ));
    }
    let config = load_config(&paths.bundle)?;
    let spec = process_spec(opts, &config)?;
    let mut process: ProcessPlan = plan_process(&spec)?;
    process.preserve_fds = opts.preserve_fds;
    if process.terminal && opts.console_socket.is_none() {
        return Err(Error::invalid(STEP, "a terminal needs --console-socket"));
    }
    // runc applies the container's seccomp profile to exec'd processes.
    let seccomp = config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()?;
    let pid_file = opts.pid_file.as_deref().map(PidFile::open).transpose()?;
    let console = match (&opts.console_socket, process.terminal) {
        (Some(p), true) => Some(crate::console::connect(p)?),
        _ => None,
    };
    let pidfd = sys::pidfd_open(rec.pid)
        .map_err(|e| Error::sys(STEP, format!("pidfd_open {}", rec.pid), e))?;
    if !record::alive(&rec) {
        return Err(Error::sys(
            STEP,
            format!("container {:?} is not running", rec.id),
            Errno::ESRCH,
        ));
    }
    let flags = differing_namespaces(rec.pid);
    let (set, old) = launch::block_forwarded()?;
    let (err_r, err_w) = sys::pipe(STEP)?;
    let (pid_r, pid_w) = sys::pipe(STEP)?;
    if !opts.detach {
        // The process may be forked by an intermediate (PID namespace):
        // as subreaper we still get to wait for it.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| Error::sys(STEP, "PR_SET_CHILD_SUBREAPER", e))?;
    }
    // SAFETY: single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys(STEP, "fork", e))? {
        ForkResult::Child => {
            drop(err_r);
            drop(pid_r);
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&old),
                None,
            );
            let e = match enter_and_exec(&pidfd, flags, &process, seccomp, console, pid_w) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = sys::write_all(&err_w, &e.encode());
            // SAFETY: leave without the runtime's destructors.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(pid_w);
            drop(console);
            let mut buf = [0u8; 4];
            let target = match nix::unistd::read(&pid_r, &mut buf) {
                Ok(4) => Pid::from_raw(i32::from_le_bytes(buf)),
                _ => child,
            };
            if target != child {
                // The intermediate leaves at once; the process is re-parented.
                let _ = nix::sys::wait::waitpid(child, None);
            }
            launch_result(target, &err_r, pid_file.as_ref(), opts.detach, &set)
        }
    }
}

/// Wait for the exec (the error pipe closes on exec), then either leave
/// (detached; the client reaps the process) or wait for it.
fn launch_result(
    child: Pid,
    err_r: &std::os::fd::OwnedFd,
    pid_file: Option<&PidFile>,
    detach: bool,
    set: &nix::sys::signal::SigSet,
) -> Result<i32> {
    let record = sys::read_to_end(err_r).map_err(|e| Error::sys(STEP, "read exec status", e))?;
    if !record.is_empty() {
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(Error::decode(&record)
            .unwrap_or_else(|| Error::invalid(STEP, "malformed error record")));
    }
    if let Some(f) = pid_file {
        f.write(child)?;
    }
    if detach {
        return Ok(0);
    }
    launch::wait_forwarding(child, set)
}

/// In the child: join, fork into the PID namespace if needed, become the
/// process.
fn enter_and_exec(
    pidfd: &std::os::fd::OwnedFd,
    flags: CloneFlags,
    process: &ProcessPlan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    console: Option<std::os::fd::OwnedFd>,
    pid_w: std::os::fd::OwnedFd,
) -> Result<std::convert::Infallible> {
    // Non-dumpable before joining: processes already in the container must
    // not reach /proc/<us>/exe (CVE-2019-5736). execve resets it.
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::sys(STEP, "PR_SET_DUMPABLE 0", e))?;
    nix::sched::setns(pidfd, flags).map_err(|e| Error::sys(STEP, format!("setns {flags:?}"), e))?;
    // setns(CLONE_NEWNS) moved us to the namespace's root; the container's
    // root is that root after its pivot_root.
    nix::unistd::chdir(Path::new("/")).map_err(|e| Error::sys(STEP, "chdir /", e))?;
    let mut me = nix::unistd::getpid();
    if flags.contains(CloneFlags::CLONE_NEWPID) {
        // Joining a PID namespace applies to children: the process to run is
        // our child; we report its PID and leave.
        // SAFETY: single-threaded.
        match unsafe { nix::unistd::fork() }
            .map_err(|e| Error::sys(STEP, "fork into the PID namespace", e))?
        {
            ForkResult::Child => me = Pid::from_raw(0),
            ForkResult::Parent { child } => {
                let _ = sys::write_all(&pid_w, &child.as_raw().to_le_bytes());
                // SAFETY: leave without destructors.
                unsafe { libc::_exit(0) }
            }
        }
    }
    if me.as_raw() != 0 {
        let _ = sys::write_all(&pid_w, &me.as_raw().to_le_bytes());
    }
    drop(pid_w);
    process::prepare_outside(process)?;
    if let Some(sock) = console {
        crate::console::setup(sock, process.console_size)?;
    }
    crate::process::finalize(process, seccomp)
}

use crate::process;
