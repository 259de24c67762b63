//! A thin, concrete syscall layer: free functions over nix whose errors carry
//! the call, the path, the flags and the errno (runc's `mountError` shape).
//! No traits, no test branches: tests run the real binary.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `mount(2)` with an error that names source, target, type, flags and data.
pub fn mount(
    step: &'static str,
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(|errno| {
        Error::sys(
            step,
            format!(
                "mount {} to {} (type {}, flags {:#x}, data {:?})",
                source.map_or("none".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("none"),
                flags.bits(),
                data.unwrap_or("")
            ),
            errno,
        )
    })
}

/// The path through which the kernel reaches the object behind `fd`.
/// Mounting onto this path mounts onto the already-resolved object, never on
/// a path an attacker could swap between resolution and mount (runc's
/// CVE-2021-30465 fix does the same).
pub fn fd_path(fd: &impl AsRawFd) -> std::path::PathBuf {
    format!("/proc/self/fd/{}", fd.as_raw_fd()).into()
}

/// Open `path` below the directory `root` with `openat2`, refusing any
/// resolution that leaves `root` (`..` or a symlink, absolute or relative).
pub fn open_beneath(root: &impl AsFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_fd(), relative(path), how)
}

/// Open `path` inside the root filesystem `root`, as runc's securejoin
/// does: absolute symlinks are resolved inside the root (Debian's
/// `/var/run -> /run` must keep working), while a relative symlink whose
/// `..` would climb above the root is refused with EXDEV rather than
/// silently clamped. The kernel does the resolving in both cases
/// (`RESOLVE_BENEATH`, then `RESOLVE_IN_ROOT`), so a path swapped during
/// resolution can still never leave the root; the escape check only
/// decides whether to report an error.
pub fn open_in_root(root: &impl AsFd, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    match open_beneath(root, path, flags) {
        Err(Errno::EXDEV) if !climbs_out(root, path) => {
            let how = OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            openat2(root.as_fd(), relative(path), how)
        }
        r => r,
    }
}

fn relative(path: &Path) -> &Path {
    match path.strip_prefix("/").unwrap_or(path) {
        p if p.as_os_str().is_empty() => Path::new("."),
        p => p,
    }
}

/// Whether some relative symlink along `path` climbs above `root` with
/// `..`. Each prefix is resolved in the root; its directory's depth below
/// the root bounds how many `..` the link may use.
fn climbs_out(root: &impl AsFd, path: &Path) -> bool {
    let in_root = |p: &Path, f: OFlag| {
        let how = OpenHow::new()
            .flags(f | OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(root.as_fd(), relative(p), how)
    };
    let Ok(root_real) = std::fs::read_link(fd_path(&root.as_fd().as_raw_fd())) else {
        return true;
    };
    let mut prefix = std::path::PathBuf::from("/");
    for c in path.components().skip(1) {
        let Ok(dir) = in_root(&prefix, OFlag::O_DIRECTORY) else {
            return false;
        };
        prefix.push(c);
        let Ok(target) = nix::fcntl::readlinkat(dir.as_fd(), c.as_os_str()) else {
            continue;
        };
        let target = Path::new(&target);
        if target.is_absolute() {
            continue;
        }
        let Ok(dir_real) = std::fs::read_link(fd_path(&dir.as_raw_fd())) else {
            return true;
        };
        let mut depth = dir_real
            .strip_prefix(&root_real)
            .map_or(0, |p| p.components().count());
        for t in target.components() {
            match t {
                std::path::Component::ParentDir if depth == 0 => return true,
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
        }
    }
    false
}

/// Write a whole small file (procfs, sysfs) with an error naming it.
pub fn write_file(step: &'static str, path: &str, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|e| Error::io(step, format!("write {data:?} to {path}"), &e))
}

/// `pipe2(O_CLOEXEC)`.
pub fn pipe(step: &'static str) -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys(step, "pipe2", e))
}

/// Write all of `buf`, retrying on EINTR.
pub fn write_all(fd: &impl AsFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read until EOF, retrying on EINTR.
pub fn read_to_end(fd: &impl AsFd) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Set a bind mount's per-mount flags with `mount_setattr(2)` (Linux
/// 5.12), one syscall: `flags` are MS_RDONLY/NOSUID/NODEV/NOEXEC/NODIRATIME
/// and the atime flags, MS_REC for every mount below `at` too. `exact`
/// clears the flags not named (a bind remount's meaning; EPERM if the
/// kernel locked one of them in a user namespace); otherwise they are left
/// alone. EINVAL for a flag it cannot set.
pub fn set_mount_flags(at: &Path, flags: MsFlags, exact: bool) -> Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const ATTRS: &[(MsFlags, u64)] = &[
        (MsFlags::MS_RDONLY, 0x1),
        (MsFlags::MS_NOSUID, 0x2),
        (MsFlags::MS_NODEV, 0x4),
        (MsFlags::MS_NOEXEC, 0x8),
        (MsFlags::MS_NOATIME, 0x10),
        (MsFlags::MS_STRICTATIME, 0x20),
        (MsFlags::MS_NODIRATIME, 0x80),
    ];
    const ATIME: MsFlags = MsFlags::from_bits_truncate(
        MsFlags::MS_NOATIME.bits() | MsFlags::MS_STRICTATIME.bits() | MsFlags::MS_RELATIME.bits(),
    );
    const MOUNT_ATTR_ATIME: u64 = 0x70;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let rest = flags & !(MsFlags::MS_REC | MsFlags::MS_RELATIME);
    let mut attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    for (ms, a) in ATTRS {
        if rest.contains(*ms) {
            attr.attr_set |= a;
        } else if exact && *a != 0x10 && *a != 0x20 {
            attr.attr_clr |= a;
        }
    }
    if rest.difference(ATTRS.iter().fold(MsFlags::empty(), |m, (f, _)| m | *f)) != MsFlags::empty()
    {
        return Err(Errno::EINVAL);
    }
    if exact || flags.intersects(ATIME) {
        // One atime mode: clear the field, set the one asked (relatime is 0).
        attr.attr_clr |= MOUNT_ATTR_ATIME;
    }
    let path = std::ffi::CString::new(at.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = if flags.contains(MsFlags::MS_REC) {
        AT_RECURSIVE
    } else {
        0
    };
    // SAFETY: the kernel reads `size_of::<MountAttr>()` bytes of `attr`
    // and a NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            how,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Mark every descriptor from `first` up close-on-exec, so no host fd the
/// caller leaked (Buildah passes several) reaches the container program.
pub fn cloexec_from(first: RawFd) -> Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == -1 {
        return Err(Error::sys(
            "exec",
            format!("close_range({first}, ~0, CLOEXEC)"),
            Errno::last(),
        ));
    }
    Ok(())
}

/// Build a C string from a config value, rejecting interior NULs.
pub fn cstring(step: &'static str, field: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(step, format!("{field} {s:?} contains a NUL byte")))
}

/// Create a directory; an existing one is fine.
pub fn mkdirat(dir: &impl AsFd, name: &Path, mode: u32) -> Result<(), Errno> {
    match nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Duplicate a raw fd we do not own into an `OwnedFd`.
pub fn dup(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) returns a new fd that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `execve` that only returns on failure.
pub fn execve(path: &CStr, args: &[CString], env: &[CString]) -> Errno {
    match nix::unistd::execve(path, args, env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// `pidfd_open(2)`: a handle on a process that can never point at another
/// process after the PID is recycled.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; on success we own the fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: &impl AsRawFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall; a NULL siginfo means "as kill(2) would".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Wait until the process behind `pidfd` exits or `timeout` passes.
/// Returns whether it exited.
pub fn pidfd_wait(pidfd: &impl AsFd, timeout: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// NS_GET_MNTNS_ID (Linux 6.8): a mount namespace's 64-bit ID, which,
/// unlike its inode number, is never reused. `_IOR(0xb7, 5, u64)`.
const NS_GET_MNTNS_ID: libc::c_ulong = 0x8008_b705;

/// The unique ID of the mount namespace behind an open ns file (`None` on
/// kernels without the ioctl).
pub fn mnt_ns_id(ns: &impl AsRawFd) -> Option<u64> {
    let mut id: u64 = 0;
    // SAFETY: the ioctl writes one u64 into `id`.
    let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_MNTNS_ID, &mut id as *mut u64) };
    (r == 0).then_some(id)
}

/// The unique mount-namespace ID of a process, via /proc/PID/ns/mnt.
pub fn mnt_ns_id_of(proc_dir: &impl AsFd, pid_path: &str) -> Option<u64> {
    let fd = nix::fcntl::openat(
        proc_dir.as_fd(),
        format!("{pid_path}/ns/mnt").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    mnt_ns_id(&fd)
}
