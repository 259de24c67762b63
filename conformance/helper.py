#!/usr/bin/env python3
"""Process and config helpers for conformance/run (the stateless profile).

Subcommands (all print to stdout, exit 0 unless said otherwise):

  reaper SCRIPT ARGS...     become a child subreaper (PR_SET_CHILD_SUBREAPER),
                            run `bash SCRIPT ARGS...`, reap every orphan until
                            it exits, exit with its status. OCI clients do this
                            (conmon, Buildah), and a container whose creator
                            has exited needs someone to reap it, or its PID
                            can never be recycled.
  patch BASE OUT ROOTFS MODE ARGV_JSON
                            write OUT (a config.json) from BASE with root.path
                            = ROOTFS, terminal off and process.args = ARGV.
                            MODE is comma-separated flags: "nopidns" drops
                            the pid namespace (with "rootless", binds the
                            host's /proc: no fresh procfs without a pid
                            namespace of one's own); "sysadmin" adds
                            CAP_SYS_ADMIN, _CHROOT, _PTRACE (to unshare or
                            setns inside).
  leftovers REAPER EXE TAG CPID
                            list the processes the runtime left behind: every
                            descendant of REAPER that is not this helper's own
                            ancestry and not in the container's namespaces
                            (those of CPID), plus anything, anywhere, whose
                            executable is EXE or whose environment holds TAG.
  marked STRING             PIDs of live (non-zombie) processes whose argv
                            holds STRING.
  alive PID                 exit 0 if PID exists and is not a zombie.
  spawn-at TARGET USER ARGV...
                            start ARGV as USER with PID TARGET (write
                            ns_last_pid, or cycle PIDs by forking), leave it
                            running, print its PID; exit 1 if TARGET was not
                            obtained.
"""
import ctypes
import json
import os
import pwd
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def reaper(argv):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("conformance: prctl(PR_SET_CHILD_SUBREAPER): "
                 + os.strerror(ctypes.get_errno()))
    os.environ["CONFORMANCE_REAPER"] = str(os.getpid())
    child = os.fork()
    if child == 0:
        os.execv("/bin/bash", ["bash"] + argv)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda n, _f: os.kill(child, n))
    code = 1
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(st)
            break
    sys.exit(code if code >= 0 else 128 - code)


def patch(base, out, rootfs, mode, argv_json):
    with open(base) as f:
        cfg = json.load(f)
    cfg["root"] = {"path": rootfs, "readonly": True}
    proc = cfg.setdefault("process", {})
    proc["terminal"] = False
    proc["args"] = json.loads(argv_json)
    proc.setdefault("cwd", "/")
    flags = set(mode.split(","))
    linux = cfg.setdefault("linux", {})
    if "nopidns" in flags:
        linux["namespaces"] = [n for n in linux.get("namespaces", [])
                               if n.get("type") != "pid"]
        if "rootless" in flags:
            # A fresh procfs needs a PID namespace the user namespace owns:
            # bind the host's instead, as rootless runtimes do for /sys.
            for m in cfg.get("mounts", []):
                if m.get("destination") == "/proc":
                    m.clear()
                    m.update(destination="/proc", type="bind", source="/proc",
                             options=["rbind", "nosuid", "noexec", "nodev"])
    if "sysadmin" in flags:
        caps = proc.setdefault("capabilities", {})
        for k in ("bounding", "effective", "permitted"):
            caps[k] = sorted(set(caps.get(k, [])) | {
                "CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE"})
    with open(out, "w") as f:
        json.dump(cfg, f, indent=1)


def pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def stat(pid):
    """(state, ppid) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()
    return rest[0], int(rest[1])


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def ns(pid, kind):
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def environ_has(pid, tag):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return tag.encode() in f.read().split(b"\0")
    except OSError:
        return False


def leftovers(reaper_pid, exe_path, tag, cpid):
    reaper_pid, cpid = int(reaper_pid), int(cpid)
    exe_path = os.path.realpath(exe_path)
    table = {}
    for p in pids():
        s = stat(p)
        if s and s[0] not in "ZX":
            table[p] = s[1]
    # This helper and its ancestors (the script) are not leftovers.
    mine, p = set(), os.getpid()
    while p > 1 and p not in mine:
        mine.add(p)
        p = table.get(p, 0)
    cns = (ns(cpid, "mnt"), ns(cpid, "pid"))
    bad = []
    for p in table:
        if p in mine:
            continue
        chain, q = set(), p
        while q > 1 and q not in chain and q != reaper_pid:
            chain.add(q)
            q = table.get(q, 0)
        descendant = q == reaper_pid
        in_container = cns[0] is not None and (ns(p, "mnt"), ns(p, "pid")) == cns
        e = exe(p)
        runtime = e == exe_path or e.startswith(exe_path + " ") or environ_has(p, tag)
        if runtime or (descendant and not in_container):
            bad.append(f"{p}:{e or '?'}:{cmdline(p)[:80]}")
    print(" ".join(bad))


def marked(string):
    me = os.getpid()
    out = []
    for p in pids():
        s = stat(p)
        if p != me and s and s[0] not in "ZX" and string in cmdline(p):
            out.append(str(p))
    print(" ".join(out))


def alive(pid):
    s = stat(int(pid))
    sys.exit(0 if s and s[0] not in "ZX" else 1)


def spawn_at(target, user, argv):
    target = int(target)
    pw = pwd.getpwnam(user)

    def child():
        if os.getuid() == 0 and pw.pw_uid != 0:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        fd = os.open("/dev/null", os.O_RDWR)
        for i in (0, 1, 2):
            os.dup2(fd, i)
        os.execvp(argv[0], argv)

    def attempt():
        pid = os.fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(127)
        return pid

    # Reap the cycling children ourselves, not the one we keep.
    for _ in range(50):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(target - 1))
        except OSError:
            break
        pid = attempt()
        if pid == target:
            print(pid)
            return
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # Unprivileged: cycle through the PID space (bounded).
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for _ in range(min(2 * pid_max, 200000)):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        if pid == target - 1:
            pid = attempt()
            if pid == target:
                print(pid)
                return
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    sys.exit(1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "reaper":
        reaper(args)
    elif cmd == "patch":
        patch(*args)
    elif cmd == "leftovers":
        leftovers(*args)
    elif cmd == "marked":
        marked(*args)
    elif cmd == "alive":
        alive(*args)
    elif cmd == "spawn-at":
        spawn_at(args[0], args[1], args[2:])
    else:
        sys.exit(f"helper: unknown command {cmd}")


if __name__ == "__main__":
    main()
