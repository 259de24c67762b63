//! `husk run`: from a bundle to the user program, in the order of the OCI
//! lifecycle. Without a PID namespace the husk process itself becomes the
//! program (ch-run's model: no process is left behind). With one, the
//! process forks once after unsharing; the child is PID 1 of the new
//! namespace and the parent stays as a small waiter that forwards signals.

use crate::error::{Error, Result};
use crate::plan::{Caller, Plan, UserNs, load_config};
use crate::{cgroups, process, rootfs, sys, userns};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What `husk run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub id: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
}

/// `--pid-file`, opened as its directory before pivot_root hides the host
/// paths, written once the container process is set up.
struct PidFile {
    dir: OwnedFd,
    name: OsString,
    display: PathBuf,
}

impl PidFile {
    fn open(path: &Path) -> Result<Self> {
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
    fn write(&self, pid: Pid) -> Result<()> {
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

    fn remove(&self) {
        let _ = nix::unistd::unlinkat(
            self.dir.as_fd(),
            self.name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// `husk run`. Returns the exit code to exit with (only when a waiter was
/// needed); otherwise it never returns: the process became the program.
pub fn run(opts: &RunOptions) -> Result<i32> {
    // 1. Plan: everything validated before anything changes.
    let caller = Caller::current();
    let spec = load_config(&opts.bundle)?;
    let plan = Plan::build(&opts.id, &opts.bundle, spec, caller)?;
    let seccomp = plan
        .seccomp
        .as_ref()
        .map(crate::seccomp::compile)
        .transpose()?;
    let pid_file = opts.pid_file.as_deref().map(PidFile::open).transpose()?;

    // 2. What needs the caller's privileges: cgroup limits, rlimits, OOM score.
    cgroups::apply(&plan)?;
    process::prepare_outside(&plan.process)?;

    // 3. Namespaces: join, then the user namespace and its maps, then the rest.
    enter_namespaces(&plan, caller)?;

    if !plan.create.contains(CloneFlags::CLONE_NEWPID) {
        // 4–6. Root filesystem, process, exec: this process becomes the program.
        let err = match setup_container(&plan, seccomp, || {
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
        return Err(err);
    }
    spawn_and_wait(&plan, seccomp, pid_file.as_ref())
}

/// Join the namespaces given by path (the user namespace first, so the
/// others are joined with its privileges), create the user namespace, then
/// unshare the others. Joining before creating mirrors runc's nsexec: a
/// namespace owned by the caller's user namespace can only be joined from
/// outside the new one.
fn enter_namespaces(plan: &Plan, caller: Caller) -> Result<()> {
    if let UserNs::Join(path) = &plan.userns {
        setns(path, CloneFlags::CLONE_NEWUSER)?;
    }
    for (flag, path) in &plan.join {
        setns(path, *flag)?;
    }
    if let UserNs::Create(maps) = &plan.userns {
        userns::unshare_in_process(maps, caller)?;
    }
    nix::sched::unshare(plan.create)
        .map_err(|e| Error::sys("unshare", format!("{:?}", plan.create), e))
}

fn setns(path: &Path, flag: CloneFlags) -> Result<()> {
    let what = || format!("{} ({flag:?})", path.display());
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("join namespace", what(), e))?;
    nix::sched::setns(fd, flag).map_err(|e| Error::sys("join namespace", what(), e))
}

/// The container side, top to bottom. `before_exec` runs once the
/// container is complete (the pid file is written there).
fn setup_container(
    plan: &Plan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    before_exec: impl FnOnce() -> Result<()>,
) -> Result<Infallible> {
    rootfs::set_names(plan)?;
    let root = rootfs::prepare_root(plan)?;
    rootfs::mount_all(plan, &root)?;
    rootfs::create_devices(plan, &root)?;
    rootfs::ensure_cwd(plan, &root)?;
    drop(root);
    rootfs::pivot_root(&plan.rootfs)?;
    rootfs::finish(plan)?;
    before_exec()?;
    process::finalize(&plan.process, seccomp)
}

/// Signals the waiter passes on to the container, as runc's signal proxy.
const FORWARDED: &[Signal] = &[
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

/// Fork the PID 1 of the new PID namespace, report its setup error if it
/// had one, else forward signals until it exits and return its status.
fn spawn_and_wait(
    plan: &Plan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    pid_file: Option<&PidFile>,
) -> Result<i32> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    // Blocked before the fork so no signal is lost between fork and wait.
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
        .map_err(|e| Error::sys("fork", "sigprocmask", e))?;
    let (err_r, err_w) = sys::pipe("fork")?;
    // SAFETY: single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", "container process", e))? {
        ForkResult::Child => {
            drop(err_r);
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            // Die with the waiter rather than outlive it unobserved.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let e = match setup_container(plan, seccomp, || Ok(())) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = sys::write_all(&err_w, &e.encode());
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(seccomp);
            // EOF without a record: the program was exec'd (the pipe is CLOEXEC).
            let record =
                sys::read_to_end(&err_r).map_err(|e| Error::sys("wait", "read setup status", e))?;
            if !record.is_empty() {
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(Error::decode(&record)
                    .unwrap_or_else(|| Error::invalid("container", "malformed error record")));
            }
            if let Some(f) = pid_file {
                f.write(child)?;
            }
            wait_forwarding(child, &set)
        }
    }
}

fn wait_forwarding(child: Pid, set: &SigSet) -> Result<i32> {
    loop {
        match nix::sys::wait::waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("wait", format!("waitpid {child}"), e)),
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(child, sig);
            }
        }
    }
}
