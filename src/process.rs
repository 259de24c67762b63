//! The container process's own attributes, applied last, in the order runc
//! applies them: bounding set, user and groups (keeping capabilities),
//! capability sets, umask, cwd, no_new_privs, seccomp, exec.

use crate::error::{Error, Result};
use crate::plan::ProcessPlan;
use crate::sys;
use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, PosixRlimitType};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Steps done in the caller's namespaces, with the caller's privileges,
/// before any user namespace: raising a hard rlimit or lowering
/// oom_score_adj needs privilege over the *initial* namespace.
pub fn prepare_outside(p: &ProcessPlan) -> Result<()> {
    if let Some(adj) = p.oom_score_adj {
        sys::write_file(
            "oom_score_adj",
            "/proc/self/oom_score_adj",
            &adj.to_string(),
        )?;
    }
    for r in &p.rlimits {
        let res = rlimit_resource(r.typ());
        let rlim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: plain syscall on a stack value.
        if unsafe { libc::setrlimit(res, &rlim) } != 0 {
            return Err(Error::sys(
                "rlimits",
                format!("{} soft {} hard {}", r.typ(), r.soft(), r.hard()),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// The configured set, limited to what this kernel knows (runc skips
/// unknown capabilities the same way). oci-spec names them without "CAP_".
fn cap_set(set: &Option<Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Capability>().ok())
        .filter(|c| supported.contains(c))
        .collect()
}

/// The capabilities this kernel knows: those up to cap_last_cap (one read,
/// where probing each capability would cost a prctl each).
fn kernel_caps() -> CapsHashSet {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok());
    match last {
        Some(last) => caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect(),
        None => caps::runtime::thread_all_supported(),
    }
}

/// Find `args[0]` the way execvp would, with the container's PATH.
fn find_program(p: &ProcessPlan) -> Result<CString> {
    let arg0 = p.args[0].as_bytes();
    if arg0.contains(&b'/') {
        return Ok(p.args[0].clone());
    }
    for dir in p.path_var.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(std::ffi::OsStr::from_bytes(arg0));
        if nix::unistd::access(&cand, nix::unistd::AccessFlags::X_OK).is_ok() && !cand.is_dir() {
            return Ok(CString::new(cand.as_os_str().as_bytes())
                .expect("no NUL: built from NUL-free parts"));
        }
    }
    Err(Error::sys(
        "exec",
        format!(
            "{:?}: executable file not found in $PATH ({})",
            p.args[0], p.path_var
        ),
        Errno::ENOENT,
    ))
}

/// The end of every launch: become the configured user with the configured
/// capabilities and `execve` the program. Returns only on failure.
pub fn finalize(
    p: &ProcessPlan,
    seccomp: Option<libseccomp::ScmpFilterContext>,
) -> Result<Infallible> {
    // runc loads the filter early when no_new_privs is off: later, without
    // CAP_SYS_ADMIN, the kernel would refuse it.
    let mut seccomp = seccomp;
    if !p.no_new_privileges
        && let Some(f) = seccomp.take()
    {
        crate::seccomp::load(&f)?;
    }
    let caps_cfg = p.caps.as_ref();
    let supported = caps_cfg.map(|_| kernel_caps()).unwrap_or_default();
    if let Some(c) = caps_cfg {
        let bounding = cap_set(c.bounding(), &supported);
        // Dropping a capability that is already out of the bounding set is
        // harmless, so there is no need to read the set first (one prctl
        // per capability saved on every start).
        for &cap in &supported {
            if !bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    Error::invalid(
                        "capabilities",
                        format!("drop {cap} from the bounding set: {e}"),
                    )
                })?;
            }
        }
        // Keep the permitted set across setuid so the configured sets can be
        // applied afterwards.
        nix::sys::prctl::set_keepcaps(true)
            .map_err(|e| Error::sys("capabilities", "PR_SET_KEEPCAPS", e))?;
    }
    set_user(p)?;
    if let Some(c) = caps_cfg {
        let set = |which: CapSet, v: &CapsHashSet| {
            caps::set(None, which, v)
                .map_err(|e| Error::invalid("capabilities", format!("set {which:?} to {v:?}: {e}")))
        };
        set(CapSet::Inheritable, &cap_set(c.inheritable(), &supported))?;
        set(CapSet::Effective, &cap_set(c.effective(), &supported))?;
        set(CapSet::Permitted, &cap_set(c.permitted(), &supported))?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::invalid("capabilities", format!("clear ambient: {e}")))?;
        // The kernel only lets a capability into the ambient set when it is
        // both permitted and inheritable. Clients (Buildah) list ambient
        // capabilities without inheritable ones; runc skips those with a
        // warning rather than failing, and so do we.
        let inheritable = cap_set(c.inheritable(), &supported);
        let permitted = cap_set(c.permitted(), &supported);
        for cap in cap_set(c.ambient(), &supported) {
            if !(inheritable.contains(&cap) && permitted.contains(&cap)) {
                crate::log::debug(&format!(
                    "ambient {cap} skipped: not both permitted and inheritable"
                ));
                continue;
            }
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(|e| Error::invalid("capabilities", format!("raise ambient {cap}: {e}")))?;
        }
    }
    if let Some(m) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    nix::unistd::chdir(&p.cwd)
        .map_err(|e| Error::sys("cwd", format!("chdir {}", p.cwd.display()), e))?;
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| Error::sys("no_new_privs", "PR_SET_NO_NEW_PRIVS", e))?;
    }
    let program = find_program(p)?;
    sys::cloexec_from(3 + p.preserve_fds)?;
    if let Some(f) = seccomp {
        // Last, so the filter governs the program, not our setup.
        crate::seccomp::load(&f)?;
    }
    let errno = sys::execve(&program, &p.args, &p.env);
    Err(Error::sys("exec", format!("execve {:?}", program), errno))
}

fn set_user(p: &ProcessPlan) -> Result<()> {
    let groups: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        // setgroups is denied in a user namespace we mapped ourselves: with
        // no extra groups asked for, keeping the caller's is all we can do.
        Err(Errno::EPERM) if groups.is_empty() => {}
        Err(e) => {
            return Err(Error::sys(
                "user",
                format!(
                    "setgroups {:?} (additionalGids need a user namespace with newgidmap mappings)",
                    p.additional_gids
                ),
                e,
            ));
        }
    }
    let gid = Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| Error::sys("user", format!("setresgid {}", p.gid), e))?;
    let uid = Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| Error::sys("user", format!("setresuid {}", p.uid), e))
}
