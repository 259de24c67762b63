//! Finding a container's processes without cgroups (DESIGN.md, "Finding
//! every process"): what `kill --all`, `delete --force` and `ps` act on.
//!
//! With its own PID namespace the container is init's process tree, a cost
//! that grows with the container. Without one it is every process in its
//! mount namespace, and nothing in the kernel lists those: /proc must be
//! read. Listing it costs about 1 µs a process here and looking inside each
//! one 2–10 µs more (a naive scan of 10,000 host processes: 60–120 ms). So
//! the scan first narrows *where* to look by *when* PID numbers were handed
//! out (`window`): a process of the container was made after the container
//! process, and the kernel hands PID numbers out in order.

use crate::record::{self, Record};
use crate::sys;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// What `create` notes about the moment the container process was made,
/// so that a later scan can tell which PID numbers were handed out since.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Birth {
    /// The container process's pidfs inode number: Linux ≥ 6.9 numbers
    /// every PID it allocates, in order, and never reuses a number.
    pub ino: u64,
    /// An upper bound on the PID numbers in use when it was made.
    pub busy: u64,
}

/// Taken by `create` before it forks: its own pidfs number and how many
/// tasks the kernel runs.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    ino: u64,
    tasks: u64,
}

/// In-flight forks the task count may not show yet (a fork gets its PID a
/// moment before it is counted).
const SLACK: u64 = 1024;

impl Before {
    /// `None` on kernels without pidfs: the scan then reads all of /proc.
    pub fn take() -> Option<Before> {
        let ino = pidfs_ino(&sys::pidfd_open(std::process::id() as i32).ok()?)?;
        Some(Before {
            ino,
            tasks: nr_threads()?,
        })
    }

    /// The birth facts of the process behind `pidfd`, forked after `take`.
    pub fn birth(self, pidfd: &impl AsFd) -> Option<Birth> {
        let ino = pidfs_ino(pidfd)?;
        // A task alive when the container process was made was either
        // counted by `take` or made since (at most ino − self.ino of
        // them). Each pins at most three PID numbers: its own, its process
        // group's and its session's.
        let tasks = self.tasks + ino.checked_sub(self.ino)?;
        Some(Birth {
            ino,
            busy: 3 * tasks + SLACK,
        })
    }
}

/// The container's processes (host PIDs, main process included when
/// alive).
pub fn members(rec: &Record) -> Vec<i32> {
    if rec.pid_ns.is_some() {
        return if record::alive(rec) {
            descendants(rec.pid)
        } else {
            Vec::new()
        };
    }
    let mut pids = vec![];
    if record::alive(rec) {
        pids.push(rec.pid);
    }
    let Ok(proc_fd) = nix::fcntl::open(
        "/proc",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return pids;
    };
    let me = std::process::id() as i32;
    let (candidates, made_after) = match windowed(&proc_fd, rec, me) {
        // Everything in the window was made after the container process.
        Some(found) => (found, None),
        None => (list(&proc_fd, 1, i32::MAX), rec.birth.map(|b| b.ino)),
    };
    pids.extend(candidates.into_iter().filter(|&pid| {
        pid != me
            && pid != rec.pid
            && in_mount_ns(&proc_fd, pid, rec)
            // A process older than the container that entered its mount
            // namespace later (setns) was not started by it: left alone,
            // as the window leaves it alone.
            && made_after.is_none_or(|ino| {
                sys::pidfd_open(pid)
                    .ok()
                    .and_then(|fd| pidfs_ino(&fd))
                    .is_some_and(|i| i > ino)
            })
    }));
    pids
}

/// `root` and every process below it, breadth first, read from
/// /proc/PID/task/TID/children. Every process of a PID namespace descends
/// from its init once re-parented (init is the namespace's reaper); a
/// process whose parent still lives outside (an `exec` not yet
/// re-parented) is the one case the walk can miss, and SIGKILL to init
/// reaches even that one.
fn descendants(root: i32) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let pid = out[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let mut path = t.path();
            path.push("children");
            let Ok(list) = std::fs::read_to_string(&path) else {
                continue;
            };
            out.extend(
                list.split_ascii_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Whether `pid` is in the container's mount namespace: one fstatat
/// relative to an open /proc; the never-reused namespace ID confirms a
/// match (inode numbers are recycled).
fn in_mount_ns(proc_fd: &OwnedFd, pid: i32, rec: &Record) -> bool {
    nix::sys::stat::fstatat(proc_fd, format!("{pid}/ns/mnt").as_str(), AtFlags::empty())
        .is_ok_and(|st| st.st_ino == rec.mnt_ns)
        && rec
            .mnt_ns_id
            .is_none_or(|id| sys::mnt_ns_id_of(proc_fd, &pid.to_string()) == Some(id))
}

/// The processes in the PID window since the container process was made,
/// or `None` when the window cannot be proven (no birth facts, a kernel
/// without pidfs, or possibly a full lap of the PID space since).
fn windowed(proc_fd: &OwnedFd, rec: &Record, me: i32) -> Option<Vec<i32>> {
    let birth = rec.birth?;
    let last = read_number("/proc/sys/kernel/ns_last_pid")?;
    let pid_max = read_number("/proc/sys/kernel/pid_max")?;
    let handed_out = newest_ino(last)?.checked_sub(birth.ino)?;
    let ranges = window(rec.pid, birth, handed_out, last, pid_max)?;
    let mut found = vec![];
    for (lo, hi) in ranges {
        found.extend(list(proc_fd, lo, hi));
    }
    // We (`me`) were made after the container process, so we are in the
    // window: if not, something broke an assumption (e.g. root moved the
    // PID cursor back): read all of /proc instead.
    found.contains(&me).then_some(found)
}

/// Numbers the PID allocator never hands out again after its first wrap.
const RESERVED_PIDS: i32 = 300;

/// The PID numbers (inclusive ranges) that processes made since the
/// container process (number `p`) can hold, when that can be proven.
///
/// The kernel hands PID numbers out cyclically: upward from the last one
/// given (`last`), skipping numbers in use, back to 300 after `pid_max`.
/// So unless it has gone all the way round since it gave out `p`, every
/// process made since holds a number in the cyclic range (p, last]. A lap
/// passes each of the allocator's pid_max − 300 numbers once, and at each
/// either hands it out (pidfs counted those: `handed_out`) or skips it
/// because a process older than `p` holds it (at most `birth.busy`). If the
/// two add up to fewer, there was no lap. (Root can move the cursor by
/// hand, through ns_last_pid or clone3's set_tid; that is outside the
/// proof, as is root moving a process into another namespace.)
fn window(
    p: i32,
    birth: Birth,
    handed_out: u64,
    last: i32,
    pid_max: i32,
) -> Option<[(i32, i32); 2]> {
    let numbers = u64::try_from(pid_max.checked_sub(RESERVED_PIDS + 1)?).ok()?;
    if handed_out.checked_add(birth.busy)? >= numbers
        || !(1..pid_max).contains(&p)
        || !(1..pid_max).contains(&last)
    {
        return None;
    }
    Some(if last >= p {
        [(p + 1, last), (1, 0)]
    } else {
        [(p + 1, pid_max - 1), (1, last)]
    })
}

/// PIDs listed in /proc from `lo` to `hi`. /proc's directory offset for
/// process number n is n + 258 (TGID_OFFSET in fs/proc/base.c), so after a
/// seek there the kernel starts at the first process numbered ≥ lo: the
/// cost is the range's, not the host's. A small buffer, because the
/// kernel builds a dentry for every entry it returns.
fn list(proc_fd: &OwnedFd, lo: i32, hi: i32) -> Vec<i32> {
    const TGID_OFFSET: i64 = 258;
    let mut out = vec![];
    if lo > hi {
        return out;
    }
    let dir = match nix::unistd::dup(proc_fd) {
        Ok(fd) => fd,
        Err(_) => return out,
    };
    if nix::unistd::lseek(
        &dir,
        TGID_OFFSET + i64::from(lo),
        nix::unistd::Whence::SeekSet,
    )
    .is_err()
    {
        return out;
    }
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n <= 0 {
            return out;
        }
        let mut at = 0usize;
        while at < n as usize {
            // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(pid) = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
            {
                if pid > hi {
                    return out;
                }
                if pid >= lo {
                    out.push(pid);
                }
            }
            at += reclen;
        }
    }
}

/// How many PID numbers the kernel has allocated so far, as the pidfs
/// number of the newest process: usually the one holding `last` (often
/// ourselves); if it is gone already, a child made for the purpose.
fn newest_ino(last: i32) -> Option<u64> {
    // PIDFD_THREAD (= O_EXCL, Linux 6.9): `last` may be a thread.
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, last, libc::O_EXCL) };
    if fd >= 0 {
        // SAFETY: a fresh fd returned by the kernel.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        return pidfs_ino(&fd);
    }
    // SAFETY: husk is single-threaded; the child only calls _exit.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Child => unsafe { libc::_exit(0) },
        nix::unistd::ForkResult::Parent { child } => {
            // The zombie keeps its PID (and pidfs number) until reaped.
            let ino = sys::pidfd_open(child.as_raw())
                .ok()
                .and_then(|fd| pidfs_ino(&fd));
            let _ = nix::sys::wait::waitpid(child, None);
            ino
        }
    }
}

/// PIDFS_MAGIC: a pidfd on pidfs (Linux ≥ 6.9) has a meaningful inode
/// number; before, every pidfd shared one anonymous inode.
const PIDFS_MAGIC: i64 = 0x5049_4446;

/// The pidfs inode number of the process behind `pidfd`.
fn pidfs_ino(pidfd: &impl AsFd) -> Option<u64> {
    let fs = nix::sys::statfs::fstatfs(pidfd).ok()?;
    if fs.filesystem_type().0 as i64 != PIDFS_MAGIC {
        return None;
    }
    Some(nix::sys::stat::fstat(pidfd).ok()?.st_ino)
}

/// The kernel's task count: the fourth field of /proc/loadavg is
/// "running/total".
fn nr_threads() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_ascii_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

fn read_number(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Birth = Birth {
        ino: 0,
        busy: 2_000,
    };

    #[test]
    fn window_without_wrap_is_p_to_last() {
        assert_eq!(
            window(1000, B, 50, 1200, 32768),
            Some([(1001, 1200), (1, 0)])
        );
    }

    #[test]
    fn window_after_a_wrap_has_two_ranges() {
        assert_eq!(
            window(32000, B, 900, 400, 32768),
            Some([(32001, 32767), (1, 400)])
        );
    }

    #[test]
    fn a_possible_lap_gives_no_window() {
        // 32768 − 301 numbers: with 2,000 busy, 30,467 allocations may lap.
        assert!(window(1000, B, 30_466, 1200, 32768).is_some());
        assert_eq!(window(1000, B, 30_467, 1200, 32768), None);
        // Busy numbers alone can make a lap possible.
        let crowded = Birth {
            ino: 0,
            busy: 40_000,
        };
        assert_eq!(window(1000, crowded, 1, 1200, 32768), None);
    }

    #[test]
    fn nonsense_gives_no_window() {
        assert_eq!(window(40_000, B, 1, 1200, 32768), None);
        assert_eq!(window(1000, B, 1, 0, 32768), None);
        assert_eq!(window(1000, B, u64::MAX, 1200, 32768), None);
        assert_eq!(window(1000, B, 1, 1200, 100), None);
    }

    #[test]
    fn listing_a_range_sees_ourselves_and_only_the_range() {
        let proc_fd = nix::fcntl::open(
            "/proc",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let me = std::process::id() as i32;
        assert_eq!(list(&proc_fd, me, me), vec![me]);
        let around = list(&proc_fd, me - 50, me + 50);
        assert!(around.contains(&me));
        assert!(around.iter().all(|p| (me - 50..=me + 50).contains(p)));
        let all = list(&proc_fd, 1, i32::MAX);
        assert!(all.contains(&1) && all.contains(&me));
    }

    fn record(pid: i32, birth: Option<Birth>, mnt_ns_id: Option<u64>) -> Record {
        let me = std::process::id() as i32;
        Record {
            id: "x".into(),
            bundle: "/b".into(),
            pid,
            // PID 1 stands for a container process that is gone.
            start_time: if pid == 1 {
                0
            } else {
                record::proc_stat(pid).map_or(0, |s| s.1)
            },
            mnt_ns: record::ns_inode(me, "mnt").unwrap(),
            mnt_ns_id,
            pid_ns: None,
            created: record::now(),
            owner: 0,
            annotations: Default::default(),
            rootfs: Default::default(),
            poststart: vec![],
            poststop: vec![],
            cgroups: vec![],
            birth,
        }
    }

    #[test]
    fn full_scan_finds_our_namespace_but_not_us() {
        let me = std::process::id() as i32;
        let found = members(&record(1, None, None));
        assert!(!found.contains(&me), "the scanner is not a member");
        assert!(found.len() > 1, "our parent shares our mount namespace");
        let proc_fd = nix::fcntl::open("/proc", OFlag::O_PATH, Mode::empty()).unwrap();
        if let Some(id) = sys::mnt_ns_id_of(&proc_fd, "self") {
            assert!(members(&record(1, None, Some(id))).len() > 1);
            assert!(
                members(&record(1, None, Some(id ^ 1))).is_empty(),
                "a different namespace ID must not match"
            );
        }
    }

    /// A "container process" started after `Before::take`, and a process
    /// started after it: both members; our parent, older, is not. With
    /// `crowded`, the window cannot be proven and all of /proc is read.
    fn made_after_count_older_do_not(crowded: bool) {
        let Some(before) = Before::take() else {
            return; // no pidfs on this kernel
        };
        let sleep = || {
            std::process::Command::new("/bin/sleep")
                .arg("5")
                .spawn()
                .unwrap()
        };
        let mut first = sleep();
        let fd = sys::pidfd_open(first.id() as i32).unwrap();
        let birth = before.birth(&fd).map(|b| Birth {
            busy: if crowded { u64::from(u32::MAX) } else { b.busy },
            ..b
        });
        let rec = record(first.id() as i32, birth, None);
        let mut later = sleep();
        let proc_fd = nix::fcntl::open(
            "/proc",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        // The scanner is always younger than the container: `later` plays it.
        let window = windowed(&proc_fd, &rec, later.id() as i32);
        let found = members(&rec);
        let parent = nix::unistd::getppid().as_raw();
        let _ = (first.kill(), later.kill(), first.wait(), later.wait());
        match (&window, crowded) {
            (Some(w), false) => assert!(w.contains(&(later.id() as i32)) && !w.contains(&parent)),
            (None, true) => {}
            _ => panic!("window {window:?} with crowded = {crowded}"),
        }
        assert!(found.contains(&(first.id() as i32)), "{found:?}");
        assert!(found.contains(&(later.id() as i32)), "{found:?}");
        let older = "older than the container";
        assert!(!found.contains(&parent), "{older}: {found:?}");
    }

    #[test]
    fn the_window_holds_what_was_made_after_and_nothing_older() {
        made_after_count_older_do_not(false);
    }

    #[test]
    fn the_full_scan_also_leaves_older_processes_alone() {
        made_after_count_older_do_not(true);
    }

    #[test]
    fn birth_facts_order_processes() {
        let Some(before) = Before::take() else {
            return; // no pidfs on this kernel
        };
        let child = std::process::Command::new("/bin/true").spawn().unwrap();
        let fd = sys::pidfd_open(child.id() as i32).unwrap();
        let birth = before.birth(&fd).unwrap();
        assert!(birth.ino > before.ino);
        assert!(birth.busy >= 3 * before.tasks);
        let mut child = child;
        child.wait().unwrap();
    }
}
