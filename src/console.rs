//! `process.terminal` with `--console-socket`: runc's console protocol.
//!
//! The container process allocates the pty itself (inside the container's
//! `/dev/pts`, so the terminal belongs to the container) and sends the
//! master to whoever listens on the console socket (conmon, a test client)
//! as one `sendmsg` whose data is the pty's name and whose SCM_RIGHTS
//! control message carries the fd — runc's `utils.SendFile`. The slave
//! becomes the process's controlling terminal and stdio.

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::MsFlags;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    recvmsg, sendmsg, socket,
};
use nix::sys::stat::Mode;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const SOCKET: &str = "console socket";
const STEP: &str = "console";

/// The longest pty name runc's `RecvFile` accepts (its `MaxNameLen`).
const MAX_NAME: usize = 4096;

/// Connect to the `--console-socket` PATH (a listening SOCK_STREAM unix
/// socket, as runc dials it). Call this in `create` before forking: the
/// path is a host path, and the container process inherits the socket
/// (CLOEXEC only keeps it from the container program).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys(SOCKET, "socket(AF_UNIX, SOCK_STREAM)", e))?;
    let what = || format!("connect to {}", path.display());
    // sun_path holds 108 bytes; clients put sockets in deep temp dirs, so a
    // longer path is reached through an O_PATH fd on its directory.
    let (addr, _dir) = match UnixAddr::new(path) {
        Ok(addr) => (addr, None),
        Err(Errno::ENAMETOOLONG) => {
            let (dir, name) = match (path.parent(), path.file_name()) {
                (Some(d), Some(n)) => (
                    if d.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        d
                    },
                    n,
                ),
                _ => return Err(Error::sys(SOCKET, what(), Errno::ENAMETOOLONG)),
            };
            let dir = open(
                dir,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::sys(SOCKET, format!("open {}", dir.display()), e))?;
            let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
            let addr = UnixAddr::new(&short).map_err(|e| Error::sys(SOCKET, what(), e))?;
            (addr, Some(dir))
        }
        Err(e) => return Err(Error::sys(SOCKET, what(), e)),
    };
    loop {
        match nix::sys::socket::connect(sock.as_raw_fd(), &addr) {
            Ok(()) => return Ok(sock),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys(SOCKET, what(), e)),
        }
    }
}

/// Make a new pty the terminal of the calling process and hand its master
/// to the console socket. Call inside the container, as the container's
/// root, after `pivot_root` and after `/dev/pts` (and ideally `/proc`) are
/// mounted, before dropping capabilities and before `execve`:
///
/// 1. open `/dev/ptmx`, unlock it, open the slave (`TIOCGPTPEER`);
/// 2. apply `size` (rows, cols) if given;
/// 3. bind the slave onto `/dev/console` (skipped if not permitted);
/// 4. send the master over `socket`, then close both;
/// 5. `setsid`, make the slave the controlling terminal, dup it onto 0, 1, 2.
///
/// After this the process is a session leader with no tie to `create`'s
/// terminal or process group.
pub fn setup(socket: OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    setup_with(socket, size, Path::new("/dev/ptmx"), true)
}

/// [`setup`] with the ptmx path and the `/dev/console` binding as knobs,
/// so a test can run it against the host's pty without mounting.
fn setup_with(
    socket: OwnedFd,
    size: Option<(u16, u16)>,
    ptmx: &Path,
    bind_console: bool,
) -> Result<()> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = open(ptmx, flags, Mode::empty())
        .map_err(|e| Error::sys(STEP, format!("open {}", ptmx.display()), e))?;
    // SAFETY: unlockpt only issues TIOCSPTLCK on the fd we own.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } != 0 {
        return Err(Error::sys(STEP, "unlockpt", Errno::last()));
    }
    let number = pty_number(&master)?;
    let slave = open_peer(&master, number)?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(Error::sys(
                STEP,
                format!("set window size {rows}x{cols}"),
                Errno::last(),
            ));
        }
    }
    if bind_console {
        mount_console(&slave, number)?;
    }

    send_fd(&socket, ptmx.as_os_str().as_bytes(), &master)?;
    // The listener owns the master now; keeping a copy would keep the
    // terminal open after the listener closes it.
    drop(master);
    drop(socket);

    // A controlling terminal can only be acquired by a session leader that
    // has none, so leave `create`'s session first.
    nix::unistd::setsid().map_err(|e| Error::sys(STEP, "setsid", e))?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::sys(STEP, "ioctl TIOCSCTTY", Errno::last()));
    }
    let raw = slave.as_raw_fd();
    for target in 0..=2 {
        if raw != target {
            // dup2 clears close-on-exec on the new descriptor. (Raw libc:
            // nix's dup2 wants an OwnedFd for 0..=2, which we do not own.)
            // SAFETY: plain syscall on integer descriptors.
            if unsafe { libc::dup2(raw, target) } < 0 {
                return Err(Error::sys(
                    STEP,
                    format!("dup2 pty onto fd {target}"),
                    Errno::last(),
                ));
            }
        }
    }
    if raw <= 2 {
        // The slave landed on a stdio slot (stdio was closed): keep it, but
        // without the O_CLOEXEC it was opened with.
        let fd = slave.into_raw_fd();
        // SAFETY: F_SETFD with 0 only clears FD_CLOEXEC on a fd we hold.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(Error::sys(
                STEP,
                "clear FD_CLOEXEC on the pty",
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The pty's index in its devpts instance (`/dev/pts/N`).
fn pty_number(master: &OwnedFd) -> Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } != 0 {
        return Err(Error::sys(STEP, "ioctl TIOCGPTN", Errno::last()));
    }
    Ok(n)
}

/// Open the slave. `TIOCGPTPEER` (Linux 4.13) opens it through the master's
/// own devpts mount, so no path lookup can be raced or point at another
/// instance; older kernels fall back to `/dev/pts/N`.
fn open_peer(master: &OwnedFd, number: u32) -> Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd >= 0 {
        // SAFETY: a fresh descriptor returned by the kernel.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let errno = Errno::last();
    if errno != Errno::EINVAL && errno != Errno::ENOTTY {
        return Err(Error::sys(STEP, "ioctl TIOCGPTPEER", errno));
    }
    let path = format!("/dev/pts/{number}");
    open(path.as_str(), OFlag::from_bits_retain(flags), Mode::empty())
        .map_err(|e| Error::sys(STEP, format!("open {path}"), e))
}

/// Bind the slave onto `/dev/console`, as runc does, so programs that
/// write to the console reach the terminal. The source is the slave's
/// `/proc/self/fd` link, which names the very pty we hold whichever devpts
/// instance it lives in; `/dev/pts/N` serves when `/proc` is not mounted.
/// A container without `/dev/console` is acceptable, so "not allowed" and
/// "not there" skip the binding rather than fail the container.
fn mount_console(slave: &OwnedFd, number: u32) -> Result<()> {
    let target = Path::new("/dev/console");
    let skip = |e: Errno| {
        matches!(
            e,
            Errno::EPERM | Errno::EACCES | Errno::ENOENT | Errno::EROFS
        )
    };
    // An empty regular file is enough to mount onto; never follow a
    // symlink left in the image.
    let create = OFlag::O_WRONLY
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    match open(target, create, Mode::from_bits_truncate(0o600)) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) if skip(e) => return Ok(()),
        Err(e) => return Err(Error::sys(STEP, "create /dev/console", e)),
    }
    let by_fd = crate::sys::fd_path(slave);
    let by_name = PathBuf::from(format!("/dev/pts/{number}"));
    let mut result = Ok(());
    for source in [&by_fd, &by_name] {
        result = nix::mount::mount(
            Some(source.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| (source, e));
        match result {
            Err((_, Errno::ENOENT)) => continue,
            _ => break,
        }
    }
    match result {
        Ok(()) => Ok(()),
        Err((_, e)) if skip(e) => Ok(()),
        Err((source, e)) => Err(Error::sys(
            STEP,
            format!("bind {} onto /dev/console", source.display()),
            e,
        )),
    }
}

/// Send `fd` with `name` as the data bytes, as runc's `utils.SendFile`.
fn send_fd(socket: &impl AsFd, name: &[u8], fd: &impl AsRawFd) -> Result<()> {
    if name.len() >= MAX_NAME {
        return Err(Error::invalid(SOCKET, "pty name too long to send"));
    }
    let iov = [IoSlice::new(name)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        // MSG_NOSIGNAL: a listener that went away is an EPIPE error, not
        // a SIGPIPE that kills the container process silently.
        match sendmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys(SOCKET, "send the pty master", e)),
        }
    }
}

/// Receive one fd sent by [`setup`] (or by runc's `SendFile`), close-on-exec.
/// The name that comes with it is read and dropped.
pub fn recv_fd(socket: &impl AsFd) -> Result<OwnedFd> {
    let mut name = [0u8; MAX_NAME];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut name)];
    let msg = loop {
        match recvmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys(SOCKET, "receive the pty master", e)),
        }
    };
    // Own every fd received before looking at them, so extras get closed.
    let mut fds = Vec::new();
    let cmsgs = msg
        .cmsgs()
        .map_err(|e| Error::sys(SOCKET, "receive the pty master", e))?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: SCM_RIGHTS installed these descriptors in our table
            // for us alone.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    match (msg.bytes, fds.len()) {
        (0, 0) => Err(Error::invalid(SOCKET, "peer closed without sending a pty")),
        (_, 1) => Ok(fds.pop().unwrap()),
        (_, n) => Err(Error::invalid(
            SOCKET,
            format!("expected one fd in the message, got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::socket::socketpair;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    use std::time::{Duration, Instant};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn fd_round_trip() {
        let (a, b) = pair();
        let (r, w) = nix::unistd::pipe().unwrap();
        send_fd(&a, b"/dev/ptmx", &w).unwrap();
        drop(w);
        let got = recv_fd(&b).unwrap();
        nix::unistd::write(&got, b"through").unwrap();
        drop(got);
        assert_eq!(crate::sys::read_to_end(&r).unwrap(), b"through");
    }

    #[test]
    fn recv_without_fd_is_an_error() {
        let (a, b) = pair();
        drop(a);
        assert!(recv_fd(&b).is_err());
    }

    #[test]
    fn connect_reaches_a_listener_even_through_a_long_path() {
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!(
            "husk-console-{}-{}",
            std::process::id(),
            "d".repeat(120)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        assert!(path.as_os_str().len() > 108);
        let listener = UnixListener::bind(
            // std cannot bind a long path either; bind through the dir fd.
            PathBuf::from(format!(
                "/proc/self/fd/{}/sock",
                std::fs::File::open(&dir).unwrap().into_raw_fd()
            )),
        )
        .unwrap();
        let client = connect(&path).unwrap();
        let (server, _) = listener.accept().unwrap();
        send_fd(&server, b"x", &client).unwrap();
        assert!(recv_fd(&client).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Read from the master until `want` shows up, EOF/EIO, or 5 s pass.
    fn read_until(master: &OwnedFd, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis() as i32).unwrap();
            if poll(&mut fds, ms).unwrap() == 0 {
                break;
            }
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(e) => panic!("read master: {e}"),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[test]
    fn setup_hands_the_master_over_and_the_child_gets_a_terminal() {
        let (ours, theirs) = pair();
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the child only runs setup (plain syscalls and small
        // allocations, which glibc keeps usable after fork) and _exits;
        // it never returns into the test harness.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(ours);
                drop(err_r);
                let code = match setup_with(theirs, Some((24, 100)), Path::new("/dev/ptmx"), false)
                {
                    Err(e) => {
                        let _ = nix::unistd::write(&err_w, e.to_string().as_bytes());
                        1
                    }
                    // SAFETY: plain libc calls on fds 0 and 1.
                    Ok(()) => unsafe {
                        let msg = b"hello from pty\n";
                        let wrote = libc::write(1, msg.as_ptr().cast(), msg.len());
                        let mut ws: libc::winsize = std::mem::zeroed();
                        libc::ioctl(0, libc::TIOCGWINSZ, &mut ws);
                        if libc::isatty(0) != 1 || libc::isatty(2) != 1 {
                            2
                        } else if wrote != msg.len() as isize {
                            3
                        } else if (ws.ws_row, ws.ws_col) != (24, 100) {
                            4
                        } else if libc::getsid(0) != libc::getpid() {
                            5
                        } else {
                            0
                        }
                    },
                };
                // SAFETY: leave without running the harness's atexit code.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                drop(err_w);
                let master = recv_fd(&ours);
                let status = match &master {
                    Ok(m) => {
                        let seen = read_until(m, "hello from pty");
                        assert!(seen.contains("hello from pty"), "got {seen:?}");
                        waitpid(child, None).unwrap()
                    }
                    Err(_) => waitpid(child, None).unwrap(),
                };
                let child_err = crate::sys::read_to_end(&err_r).unwrap();
                assert_eq!(
                    status,
                    WaitStatus::Exited(child, 0),
                    "child: {}",
                    String::from_utf8_lossy(&child_err)
                );
                master.unwrap();
            }
        }
    }
}
