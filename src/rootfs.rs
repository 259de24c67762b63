//! The container's root filesystem: propagation, the rootfs bind, the
//! configured mounts, /dev, pivot_root, then masked/readonly paths.
//!
//! Paths inside the rootfs are resolved to file descriptors with
//! `openat2(RESOLVE_BENEATH)` and mounts go onto `/proc/self/fd/N`, so no
//! symlink or `..` in the bundle can redirect a mount onto the host (the
//! CVE-2019-16884 / CVE-2021-30465 class).

use crate::error::{Error, Result};
use crate::plan::{DeviceOp, MountKind, MountOp, Plan, UserNs};
use crate::sys::{self, fd_path, open_beneath, open_in_root};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What to create at a mount point that does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Dir,
    File,
}

/// Flags the kernel locks on a mount made visible in a less privileged
/// user namespace: a remount must repeat them or fail with EPERM.
const LOCKED: MsFlags = MsFlags::from_bits_truncate(
    MsFlags::MS_RDONLY.bits()
        | MsFlags::MS_NOSUID.bits()
        | MsFlags::MS_NODEV.bits()
        | MsFlags::MS_NOEXEC.bits()
        | MsFlags::MS_NOATIME.bits()
        | MsFlags::MS_NODIRATIME.bits()
        | MsFlags::MS_RELATIME.bits(),
);

/// The devices the runtime spec requires in every container's /dev.
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Symlinks the runtime spec requires in /dev.
const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

/// Say that a fallback was taken (in the log, or with --debug).
fn note(msg: &str) {
    crate::log::debug(msg);
}

/// Make the mount tree private to us and the rootfs a mount point of its
/// own, which `pivot_root` requires. Returns an O_PATH fd of the rootfs.
pub fn prepare_root(plan: &Plan) -> Result<OwnedFd> {
    let flag = root_propagation(plan);
    sys::mount("rootfs propagation", None, Path::new("/"), None, flag, None)?;
    if flag.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a new root whose parent mount is shared.
        make_parent_private(&plan.rootfs)?;
    }
    sys::mount(
        "mount rootfs",
        Some(&plan.rootfs),
        &plan.rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    nix::fcntl::open(
        &plan.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("mount rootfs", format!("open {}", plan.rootfs.display()), e))
}

/// The propagation the whole tree gets first. Default rslave, like runc:
/// host mounts still propagate in, ours never propagate out.
fn root_propagation(plan: &Plan) -> MsFlags {
    plan.rootfs_propagation
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC)
}

/// Find the mount containing `path` in mountinfo and make it private.
fn make_parent_private(path: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("rootfs propagation", "/proc/self/mountinfo", &e))?;
    let parent = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(Path::new)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or(Path::new("/"));
    sys::mount(
        "rootfs propagation",
        None,
        parent,
        None,
        MsFlags::MS_PRIVATE,
        None,
    )
}

/// Resolve `dest` below `root`, creating missing components (directories,
/// and the last one as `want`). Anything that would resolve outside `root`
/// is refused with EXDEV.
fn resolve_or_create(
    step: &'static str,
    root: &OwnedFd,
    dest: &Path,
    want: Want,
) -> Result<OwnedFd> {
    let fail = |e: Errno, p: &Path| {
        if e == Errno::EXDEV {
            Error::sys(
                step,
                format!(
                    "{} escapes the container root through \"..\" or a symlink",
                    p.display()
                ),
                e,
            )
        } else {
            Error::sys(step, format!("resolve {} in the rootfs", p.display()), e)
        }
    };
    match open_in_root(root, dest, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(fail(e, dest)),
    }
    // Usually only the last component is missing (a mount point in a fresh
    // tmpfs, /dev/pts): made in its parent, found from the root again.
    if let (Some(parent), Some(name)) = (dest.parent(), dest.file_name())
        && let Ok(dir) = open_in_root(root, parent, OFlag::O_PATH)
    {
        create_in(&dir, Path::new(name), want).map_err(|e| fail(e, dest))?;
        return open_in_root(root, dest, OFlag::O_PATH).map_err(|e| fail(e, dest));
    }
    // Otherwise walk from the root, resolving each prefix from the root
    // again so relative symlinks inside the rootfs keep working.
    let comps: Vec<_> = dest.components().skip(1).collect();
    let mut parent = sys::dup(std::os::fd::AsRawFd::as_raw_fd(root)).map_err(|e| fail(e, dest))?;
    let mut prefix = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        prefix.push(c);
        let fd = match open_in_root(root, &prefix, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let last = i + 1 == comps.len();
                let kind = if last { want } else { Want::Dir };
                create_in(&parent, Path::new(c.as_os_str()), kind).map_err(|e| fail(e, &prefix))?;
                open_in_root(root, &prefix, OFlag::O_PATH).map_err(|e| fail(e, &prefix))?
            }
            Err(e) => return Err(fail(e, &prefix)),
        };
        parent = fd;
    }
    Ok(parent)
}

/// Make `name` in the directory `parent`: a directory, or an empty file
/// (an existing file is fine: it is only a mount point).
fn create_in(parent: &OwnedFd, name: &Path, want: Want) -> std::result::Result<(), Errno> {
    if want == Want::File {
        let dirfd = open_beneath(parent, Path::new("."), OFlag::O_DIRECTORY)?;
        match nix::fcntl::openat(
            dirfd.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        sys::mkdirat(parent, name, 0o755)
    }
}

/// Mount every configured mount, in order, inside the rootfs.
pub fn mount_all(plan: &Plan, root: &OwnedFd) -> Result<()> {
    for (i, op) in plan.mounts.iter().enumerate() {
        // Something this config mounted earlier at or below op.dest.
        let covered = plan.mounts[..i]
            .iter()
            .any(|o| o.dest.starts_with(&op.dest));
        mount_one(op, root, refuses_fresh(plan, op.kind), covered)?;
    }
    Ok(())
}

/// Whether the kernel is sure to refuse a fresh proc, sysfs, mqueue or
/// cgroup mount: it wants our user namespace to own the PID, network, IPC
/// or cgroup namespace, which cannot be when we made the user namespace but
/// not that one. Known in advance, the doomed mount(2) is not tried.
fn refuses_fresh(plan: &Plan, kind: MountKind) -> bool {
    let needs = match kind {
        MountKind::Proc => CloneFlags::CLONE_NEWPID,
        MountKind::Sysfs => CloneFlags::CLONE_NEWNET,
        MountKind::Mqueue => CloneFlags::CLONE_NEWIPC,
        MountKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        _ => return false,
    };
    matches!(plan.userns, UserNs::Create(_))
        && !plan.create.contains(needs)
        && !plan.join.iter().any(|(flag, _)| *flag == needs)
}

fn mount_one(op: &MountOp, root: &OwnedFd, refused: bool, covered: bool) -> Result<()> {
    let want = match (&op.kind, &op.source) {
        (MountKind::Bind { .. }, Some(src)) => {
            let meta = std::fs::metadata(src).map_err(|e| {
                Error::io(
                    "mount",
                    format!("bind source {} for {}", src.display(), op.dest.display()),
                    &e,
                )
            })?;
            if meta.is_dir() { Want::Dir } else { Want::File }
        }
        _ => Want::Dir,
    };
    let target = resolve_or_create("mount", root, &op.dest, want)?;
    let at = fd_path(&target);
    let fstype = Some(op.fstype.as_str()).filter(|t| !t.is_empty());
    let data = Some(op.data.as_str()).filter(|d| !d.is_empty());
    let source_or_type = op
        .source
        .clone()
        .unwrap_or_else(|| PathBuf::from(&op.fstype));
    // Flags reach a fresh mount through mount(2); a bind needs a remount.
    let mut bound = false;
    match op.kind {
        MountKind::Bind { recursive } => {
            bind(op.source.as_deref().expect("planned"), &at, recursive)?;
            bound = true;
        }
        MountKind::Proc | MountKind::Sysfs | MountKind::Mqueue | MountKind::Cgroup => {
            let host = match op.kind {
                MountKind::Proc => "/proc",
                MountKind::Sysfs => "/sys",
                MountKind::Mqueue => "/dev/mqueue",
                _ => "/sys/fs/cgroup",
            };
            let fresh = if refused {
                Err(Error::sys(
                    "mount",
                    op.dest.display().to_string(),
                    Errno::EPERM,
                ))
            } else {
                sys::mount("mount", Some(&source_or_type), &at, fstype, op.flags, data)
            };
            match fresh {
                Ok(()) => {}
                // The kernel refuses a fresh proc/sysfs/mqueue unless our user
                // namespace owns the matching pid/net/ipc namespace: fall back
                // to the host's, as ch-run does.
                Err(e)
                    if matches!(
                        e.errno(),
                        Some(Errno::EPERM | Errno::EACCES | Errno::EBUSY | Errno::EINVAL)
                    ) =>
                {
                    if op.kind == MountKind::Cgroup && !covered && same_inode(&target, host) {
                        // The host's cgroup tree is already here, copied
                        // by an earlier recursive bind (runc's rootless
                        // spec binds /sys with rbind just before): binding
                        // it again would stack an identical copy of every
                        // cgroup mount. The flags go onto the copy in place.
                        note(&format!(
                            "{}: {} refused ({}), the host's {host} is already bound here",
                            op.dest.display(),
                            op.fstype,
                            e.errno().map_or("".into(), |n| format!("{n:?}"))
                        ));
                        bound = true;
                    } else if Path::new(host).exists() {
                        note(&format!(
                            "{}: {} refused ({}), binding the host's {host} instead",
                            op.dest.display(),
                            op.fstype,
                            e.errno().map_or("".into(), |n| format!("{n:?}"))
                        ));
                        if let Err(e2) = bind(Path::new(host), &at, true) {
                            if op.kind == MountKind::Cgroup {
                                note(&format!("{}: cgroup not mounted: {e2}", op.dest.display()));
                                return Ok(());
                            }
                            return Err(e2);
                        }
                        bound = true;
                    } else if op.kind == MountKind::Cgroup || op.kind == MountKind::Mqueue {
                        note(&format!(
                            "{}: {} not mounted: {e}",
                            op.dest.display(),
                            op.fstype
                        ));
                        return Ok(());
                    } else {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        MountKind::Other => {
            let res = sys::mount("mount", Some(&source_or_type), &at, fstype, op.flags, data);
            match res {
                // devpts refuses gid=5 when GID 5 is not mapped in our user
                // namespace; runc's rootless spec drops it for that reason.
                Err(e)
                    if op.fstype == "devpts"
                        && e.errno() == Some(Errno::EINVAL)
                        && op.data.contains("gid=") =>
                {
                    let data: Vec<_> = op
                        .data
                        .split(',')
                        .filter(|o| !o.starts_with("gid="))
                        .collect();
                    sys::mount(
                        "mount",
                        Some(&source_or_type),
                        &at,
                        fstype,
                        op.flags,
                        Some(&data.join(",")),
                    )?;
                }
                r => r?,
            }
        }
    }
    // Remounts and propagation act on the new mount: reopen its root.
    let needs_remount = bound && !(op.flags & !MsFlags::MS_REMOUNT).is_empty();
    if needs_remount || !op.propagation.is_empty() {
        let mnt = resolve_or_create("mount", root, &op.dest, want)?;
        if needs_remount {
            remount_bind(&fd_path(&mnt), op.flags & !MsFlags::MS_REMOUNT)?;
        }
        for p in &op.propagation {
            sys::mount("mount", None, &fd_path(&mnt), None, *p, None)?;
        }
    }
    Ok(())
}

/// Whether `fd` is the host directory `host` itself (same device and
/// inode): the root of the host's filesystem there, seen through a copy of
/// its mount.
fn same_inode(fd: &OwnedFd, host: &str) -> bool {
    match (nix::sys::stat::fstat(fd), nix::sys::stat::stat(host)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

fn bind(source: &Path, at: &Path, recursive: bool) -> Result<()> {
    let rec = if recursive {
        MsFlags::MS_REC
    } else {
        MsFlags::empty()
    };
    sys::mount(
        "mount",
        Some(source),
        at,
        None,
        MsFlags::MS_BIND | rec,
        None,
    )
}

/// Change the flags of a bind mount (binds ignore flags at creation). In a
/// user namespace the flags the kernel locked must be kept: on EPERM, add
/// the mount's current locked flags and retry (runc does the same).
fn remount_bind(at: &Path, flags: MsFlags) -> Result<()> {
    // mount_setattr(2) only sets what is asked, locked flags need no
    // reading back: one syscall where the remount may take three.
    // EPERM: a flag to clear is locked; ENOSYS: an older kernel; EINVAL:
    // a flag it cannot set (MS_SYNCHRONOUS, ...). The remount copes.
    if sys::set_mount_flags(at, flags, true).is_ok() {
        return Ok(());
    }
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match sys::mount("mount", None, at, None, base | flags, None) {
        Err(e) if e.errno() == Some(Errno::EPERM) => {
            let current = nix::sys::statvfs::statvfs(at)
                .map_err(|errno| Error::sys("mount", format!("statvfs {}", at.display()), errno))?;
            let locked = MsFlags::from_bits_truncate(current.flags().bits() as _) & LOCKED;
            sys::mount("mount", None, at, None, base | flags | locked, None)
        }
        r => r,
    }
}

/// Make the bind mount at `at` read-only (and with MS_REC every mount
/// below), keeping its other flags: one mount_setattr(2), or the remount.
fn add_readonly(at: &Path, rec: MsFlags) -> Result<()> {
    match sys::set_mount_flags(at, MsFlags::MS_RDONLY | rec, false) {
        Ok(()) => Ok(()),
        Err(_) => remount_bind(at, MsFlags::MS_RDONLY | rec),
    }
}

/// Whether the config bind-mounts the host's /dev (then /dev is not ours to
/// populate, as in runc's `needsSetupDev`).
fn dev_is_bound(plan: &Plan) -> bool {
    plan.mounts
        .iter()
        .any(|m| m.dest == Path::new("/dev") && matches!(m.kind, MountKind::Bind { .. }))
}

/// Populate /dev: the spec's default devices, `linux.devices`, and the
/// required symlinks. Device nodes are created with mknod when the kernel
/// allows it (real root) and bind-mounted from the host otherwise (a user
/// namespace cannot create device nodes).
pub fn create_devices(plan: &Plan, root: &OwnedFd) -> Result<()> {
    let setup_dev = !dev_is_bound(plan);
    let defaults = DEFAULT_DEVICES
        .iter()
        .filter(|_| setup_dev)
        .map(|(p, ma, mi)| DeviceOp {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: 0,
            gid: 0,
        });
    // Without a /dev mount of its own the container's /dev is the rootfs
    // directory, which an unprivileged caller may not be able to write
    // (a minimal spec: rootfs + /proc). The defaults are then best effort,
    // said with --debug; devices the config lists stay mandatory.
    let best_effort = !plan.mounts.iter().any(|m| m.dest == Path::new("/dev"));
    let denied = |e: &Error| {
        best_effort && matches!(e.errno(), Some(Errno::EACCES | Errno::EROFS | Errno::EPERM))
    };
    // mknod(2) of a device wants CAP_MKNOD in the initial user namespace:
    // in a user namespace of the config's it is always EPERM, not worth
    // the try (otherwise the first EPERM says so).
    let mut can_mknod = plan.userns == UserNs::Inherit;
    // /dev resolved once: most nodes live right in it.
    let dev_dir = if setup_dev || !plan.devices.is_empty() {
        match resolve_or_create("create devices", root, Path::new("/dev"), Want::Dir) {
            Ok(fd) => Some(fd),
            Err(e) if denied(&e) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let mut provide = |dev: &DeviceOp| provide_device(root, dev_dir.as_ref(), dev, &mut can_mknod);
    for dev in defaults {
        if let Err(e) = provide(&dev) {
            if denied(&e) {
                note(&format!("default devices not created: {e}"));
                return Ok(());
            }
            return Err(e);
        }
    }
    for dev in &plan.devices {
        provide(dev)?;
    }
    if setup_dev {
        let dev = match dev_dir {
            Some(fd) => fd,
            None => resolve_or_create("create devices", root, Path::new("/dev"), Want::Dir)?,
        };
        let links = || -> Result<()> {
            for (target, link) in DEV_SYMLINKS {
                symlink(&dev, target, link)?;
            }
            if plan.mounts.iter().any(|m| m.dest == Path::new("/dev/pts")) {
                // runc: /dev/ptmx must be the devpts instance's ptmx.
                let _ = nix::unistd::unlinkat(
                    dev.as_fd(),
                    "ptmx",
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                symlink(&dev, "pts/ptmx", "/dev/ptmx")?;
            }
            Ok(())
        };
        match links() {
            Err(e) if denied(&e) => note(&format!("/dev symlinks not created: {e}")),
            r => r?,
        }
    }
    Ok(())
}

/// mknod where the kernel allows it (real root), else bind the host's node
/// (a user namespace cannot create devices); after the first EPERM, bind
/// straight away.
fn provide_device(
    root: &OwnedFd,
    dev_dir: Option<&OwnedFd>,
    dev: &DeviceOp,
    can_mknod: &mut bool,
) -> Result<()> {
    if *can_mknod {
        match mknod(root, dev) {
            Ok(()) => return Ok(()),
            Err(e) if e.errno() == Some(Errno::EPERM) => *can_mknod = false,
            Err(e) => return Err(e),
        }
    }
    bind_device(root, dev_dir, dev)
}

fn symlink(dev: &OwnedFd, target: &str, link: &str) -> Result<()> {
    let name = Path::new(link).file_name().expect("constant");
    match nix::unistd::symlinkat(target, dev.as_fd(), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::sys(
            "create devices",
            format!("symlink {link} -> {target}"),
            e,
        )),
    }
}

/// Split a device path into an fd of its (created) parent and its name.
fn device_parent(root: &OwnedFd, path: &Path) -> Result<(OwnedFd, PathBuf)> {
    let parent = path.parent().unwrap_or(Path::new("/dev"));
    let name = PathBuf::from(path.file_name().ok_or_else(|| {
        Error::invalid("create devices", format!("{} has no name", path.display()))
    })?);
    let dirfd = resolve_or_create("create devices", root, parent, Want::Dir)?;
    let dirfd = open_beneath(&dirfd, Path::new("."), OFlag::O_DIRECTORY)
        .map_err(|e| Error::sys("create devices", format!("open {}", parent.display()), e))?;
    Ok((dirfd, name))
}

fn mknod(root: &OwnedFd, dev: &DeviceOp) -> Result<()> {
    let (dir, name) = device_parent(root, &dev.path)?;
    let what = || format!("mknod {} ({}:{})", dev.path.display(), dev.major, dev.minor);
    // Mode bits come from the config, not our umask.
    let old = nix::sys::stat::umask(Mode::empty());
    let res = nix::sys::stat::mknodat(
        dir.as_fd(),
        &name,
        dev.kind,
        Mode::from_bits_truncate(dev.mode),
        nix::sys::stat::makedev(dev.major, dev.minor),
    );
    nix::sys::stat::umask(old);
    match res {
        Ok(()) => {}
        // An existing node (a rootfs shipping /dev/null) is kept, as runc does.
        Err(Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(Error::sys("create devices", what(), e)),
    }
    nix::unistd::fchownat(
        dir.as_fd(),
        &name,
        Some(dev.uid.into()),
        Some(dev.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::sys("create devices", format!("chown {}", dev.path.display()), e))
}

fn bind_device(root: &OwnedFd, dev_dir: Option<&OwnedFd>, dev: &DeviceOp) -> Result<()> {
    let in_dev = dev_dir.filter(|_| dev.path.parent() == Some(Path::new("/dev")));
    let target = match in_dev.and_then(|dir| dev_entry(dir, dev.path.file_name()?)) {
        Some(fd) => fd,
        None => resolve_or_create("create devices", root, &dev.path, Want::File)?,
    };
    sys::mount(
        "create devices",
        Some(&dev.path),
        &fd_path(&target),
        None,
        MsFlags::MS_BIND,
        None,
    )
}

/// The mount point for a node right in /dev, in one syscall when /dev is
/// a fresh tmpfs: a new empty file (O_EXCL: never a device or a link of
/// the rootfs's), else the entry already there (one name, not followed).
/// `None` leaves it to `resolve_or_create` (a symlink to resolve inside
/// the root, an error to report).
fn dev_entry(dir: &OwnedFd, name: &std::ffi::OsStr) -> Option<OwnedFd> {
    let open = |flags| nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(0o644));
    match open(
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
    ) {
        Ok(fd) => Some(fd),
        Err(Errno::EEXIST) => open(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .ok()
            .filter(|fd| {
                nix::sys::stat::fstat(fd).is_ok_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK
                })
            }),
        Err(_) => None,
    }
}

/// Create `process.cwd` inside the rootfs if it is missing (runc does).
pub fn ensure_cwd(plan: &Plan, root: &OwnedFd) -> Result<()> {
    resolve_or_create("cwd", root, &plan.process.cwd, Want::Dir).map(drop)
}

/// Switch to the rootfs and detach the old root, without a put_old
/// directory: pivot_root(".", ".") stacks the old root on the new one, and
/// unmounting "." from there removes it (runc's trick, from lxc).
pub fn pivot_root(plan: &Plan) -> Result<()> {
    let rootfs = plan.rootfs.as_path();
    let open_dir = |p: &Path| {
        nix::fcntl::open(
            p,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys("pivot_root", format!("open {}", p.display()), e))
    };
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    let err = |what: &str, e| Error::sys("pivot_root", format!("{what} ({})", rootfs.display()), e);
    nix::unistd::fchdir(&new).map_err(|e| err("fchdir new root", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
    nix::unistd::fchdir(&old).map_err(|e| err("fchdir old root", e))?;
    // Our unmount must not propagate to the host. prepare_root made the
    // whole tree rslave (or rprivate) already, unless rootfsPropagation
    // asked for shared or a non-recursive change.
    let flag = root_propagation(plan);
    let contained =
        flag.contains(MsFlags::MS_REC) && flag.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE);
    if !contained {
        sys::mount(
            "pivot_root",
            None,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )?;
    }
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| err("umount old root", e))?;
    nix::unistd::chdir("/").map_err(|e| err("chdir /", e))
}

/// After pivot_root: masked and readonly paths, sysctls, read-only root,
/// final propagation.
pub fn finish(plan: &Plan) -> Result<()> {
    // runc's order: sysctls first, while /proc/sys is still writable, then
    // readonly paths, then masked paths.
    for (key, value) in &plan.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        sys::write_file("sysctl", &path, value)?;
    }
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys("readonly paths", "open /", e))?;
    for p in &plan.readonly_paths {
        let Some(fd) = open_existing("readonly paths", &root, p)? else {
            continue;
        };
        sys::mount(
            "readonly paths",
            Some(&fd_path(&fd)),
            &fd_path(&fd),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        // Reopen: the remount acts on the bind just made on top.
        let fd = open_existing("readonly paths", &root, p)?.ok_or_else(|| {
            Error::sys(
                "readonly paths",
                format!("resolve {}", p.display()),
                Errno::ENOENT,
            )
        })?;
        add_readonly(&fd_path(&fd), MsFlags::MS_REC).map_err(|e| relabel(e, "readonly paths"))?;
    }
    for p in &plan.masked_paths {
        let Some(fd) = open_existing("masked paths", &root, p)? else {
            continue;
        };
        let is_dir = nix::sys::stat::fstat(&fd)
            .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(false);
        if is_dir {
            sys::mount(
                "masked paths",
                Some(Path::new("tmpfs")),
                &fd_path(&fd),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )?;
        } else {
            sys::mount(
                "masked paths",
                Some(Path::new("/dev/null")),
                &fd_path(&fd),
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    if plan.root_readonly {
        add_readonly(Path::new("/"), MsFlags::empty()).map_err(|e| relabel(e, "mount rootfs"))?;
    }
    if let Some(flag) = plan.rootfs_propagation {
        sys::mount("rootfs propagation", None, Path::new("/"), None, flag, None)?;
    }
    Ok(())
}

/// Open a path that may legitimately be missing (masked and readonly paths
/// list files that not every kernel or image has).
fn open_existing(step: &'static str, root: &OwnedFd, p: &Path) -> Result<Option<OwnedFd>> {
    match open_in_root(root, p, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::sys(step, format!("resolve {}", p.display()), e)),
    }
}

fn relabel(e: Error, step: &'static str) -> Error {
    match e {
        Error::Sys { what, errno, .. } => Error::Sys { step, what, errno },
        Error::Invalid { what, .. } => Error::Invalid { step, what },
    }
}

/// Set hostname and domainname in the container's UTS namespace.
pub fn set_names(plan: &Plan) -> Result<()> {
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h)
            .map_err(|e| Error::sys("hostname", format!("sethostname {h:?}"), e))?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: pointer and length describe a live byte slice.
        let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        if r != 0 {
            return Err(Error::sys(
                "hostname",
                format!("setdomainname {d:?}"),
                Errno::last(),
            ));
        }
    }
    Ok(())
}
