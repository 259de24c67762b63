//! Hostile bundles (issue 4, items 1, 3 and 6): each case ends in a
//! one-line error and a non-zero exit — or, where runc's semantics make it
//! legitimate, a run that stays inside the root — and nothing changed on
//! the host: a sentinel directory owned by the caller (so an escaped husk
//! *could* write there) keeps exactly its contents, no mount appears in
//! the host's table, no process is left, the bundle holds only its config.

use crate::common::*;
use crate::crash::Ctr;
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A recursive description of a directory: path, type, content or target.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.push(format!("{rel}/ {mode:o}"));
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.push(format!("{rel} -> {:?}", fs::read_link(&p).unwrap()));
            } else {
                let data = fs::read(&p).unwrap_or_default();
                out.push(format!(
                    "{rel} {mode:o} {:?}",
                    String::from_utf8_lossy(&data)
                ));
            }
        }
    }
    out.sort();
    out
}

/// A bundle on a private rootfs (owned by `who`) and a host sentinel
/// directory beside it, owned by `who`, holding `keep` and `secret`.
struct Hostile {
    c: Ctr,
    rootfs: PathBuf,
    sentinel: PathBuf,
    before: Vec<String>,
}

impl Hostile {
    fn new(who: Who) -> Hostile {
        let mut b = Bundle::new(who);
        let rootfs = b.private_rootfs();
        let sentinel = b.s.mkdir("sentinel");
        b.s.write("sentinel/keep", "host data\n", 0o644);
        b.s.write("sentinel/secret", "host secret\n", 0o644);
        b.sh("echo should-not-run");
        let before = snapshot(&sentinel);
        Hostile {
            c: Ctr::new(b),
            rootfs,
            sentinel,
            before,
        }
    }

    fn b(&mut self) -> &mut Bundle {
        &mut self.c.b
    }

    /// The sentinel's absolute path without its leading `/`, to append to
    /// a run of `../`.
    fn sentinel_rel(&self) -> String {
        self.sentinel.to_str().unwrap()[1..].to_string()
    }

    /// A symlink in the rootfs, replacing whatever is at `rel`.
    fn link(&self, target: &str, rel: &str) {
        let at = self.rootfs.join(rel);
        let _ = fs::remove_dir_all(&at);
        let _ = fs::remove_file(&at);
        symlink(target, &at).unwrap();
        if self.c.b.who() == Who::User {
            let u = &harness().user;
            std::os::unix::fs::lchown(&at, Some(u.uid), Some(u.gid)).unwrap();
        }
    }

    /// The host is as before: the sentinel unchanged, nothing left.
    #[track_caller]
    fn host_untouched(&self, context: &str) {
        assert_eq!(
            snapshot(&self.sentinel),
            self.before,
            "{context}: the host sentinel changed"
        );
        let sentinel = self.sentinel.to_str().unwrap();
        let mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(sentinel))
            .map(String::from)
            .collect();
        assert_eq!(mounts, Vec::<String>::new(), "{context}: host mounts");
        self.c.assert_nothing_left(false, context);
    }
}

/// Assert a husk refusal: non-zero, one `husk: ` line, the program never ran.
#[track_caller]
fn refused(out: &Outcome, context: &str) {
    assert_ne!(out.code, 0, "{context}: expected a refusal: {out:#?}");
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{context}: one line: {out:#?}");
    assert!(err.starts_with("husk: "), "{context}: {out:#?}");
    assert!(
        !out.stdout.contains("should-not-run"),
        "{context}: {out:#?}"
    );
}

/// Either refused cleanly, or ran and printed `ran`. Returns which.
#[track_caller]
fn refused_or_ran(out: &Outcome, ran: &str, context: &str) -> &'static str {
    if out.code == 0 {
        assert!(out.stdout.contains(ran), "{context}: ran but: {out:#?}");
        "ran inside the root"
    } else {
        refused(out, context);
        "refused"
    }
}

/// `rootfs/mnt -> <host sentinel>` (absolute) with a tmpfs and a bind
/// mount at /mnt: runc resolves the symlink inside the root, so husk may
/// mount at rootfs/<sentinel path> or refuse; the host's directory is
/// never mounted on or written to. Bug class: mount(2) on a path
/// re-resolved on the host (CVE-2021-30465 / runc's symlink-exchange).
fn symlinked_mount_target_to_host(who: Who) {
    for kind in ["tmpfs", "bind", "tmpfs-existing"] {
        let mut h = Hostile::new(who);
        let target = h.sentinel.to_str().unwrap().to_string();
        h.link(&target, "mnt");
        let in_root = h.rootfs.join(h.sentinel_rel());
        if kind == "tmpfs-existing" {
            // The target exists inside the root too: resolved there (as
            // runc does), the mount must succeed and land there.
            fs::create_dir_all(&in_root).unwrap();
            h.c.b.s.give(&in_root);
        }
        let src = h.c.b.s.mkdir("bindsrc");
        let m = match kind {
            "tmpfs" => json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}),
            _ => json!({"destination": "/mnt", "type": "bind", "source": src,
                        "options": ["rbind"]}),
        };
        // Mounted through the symlink, the mount point is its target.
        h.b().mount(m).sh(&format!(
            "echo written > /mnt/written && ls /mnt && grep -q ' {target} ' /proc/mounts && echo inside"
        ));
        let out = h.c.run(None);
        let what = refused_or_ran(&out, "inside", kind);
        if kind == "tmpfs-existing" {
            assert_eq!(what, "ran inside the root", "{out:#?}");
        }
        if what.starts_with("ran") {
            assert!(
                !out.stdout.contains("keep"),
                "{kind}: the host dir showed: {out:#?}"
            );
            assert!(in_root.is_dir(), "{kind}: not mounted at the in-root path");
        }
        eprintln!("symlinked mount target ({kind}, {who:?}): {what}");
        h.host_untouched(kind);
        if kind == "bind" {
            assert_eq!(names(&src), Vec::<String>::new().as_slice() as &[String]);
        }
    }
}
both!(symlinked_mount_target_to_host);

/// Destinations that climb out with `..` (a naive join lands on the host
/// sentinel): refused before anything is mounted. Bug class: lexical joins
/// of config paths onto the rootfs path.
fn dotdot_destinations(who: Who) {
    let h0 = Hostile::new(who);
    let rel = h0.sentinel_rel();
    drop(h0);
    for dest in [
        format!("/../../../../../../../../{rel}/x"),
        format!("/mnt/../../../../../../../../{rel}"),
        format!("/proc/../../../../../../../../../{rel}/keep"),
    ] {
        let mut h = Hostile::new(who);
        let dest = dest.replace(&rel, &h.sentinel_rel());
        h.b()
            .mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        let out = h.c.run(None);
        refused(&out, &dest);
        assert!(out.stderr.contains(".."), "{dest}: {out:#?}");
        h.host_untouched(&dest);
    }
}
both!(dotdot_destinations);

/// `rootfs/esc -> ../../../../<host sentinel>` (relative, climbing out):
/// a mount there, or below it, is refused (EXDEV). Bug class: following a
/// relative symlink with the host's `..` semantics.
fn relative_symlink_climbing_out(who: Who) {
    for dest in ["/esc", "/esc/sub"] {
        let mut h = Hostile::new(who);
        let target = format!("{}{}", "../".repeat(12), h.sentinel_rel());
        h.link(&target, "esc");
        h.b()
            .mount(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        let out = h.c.run(None);
        refused(&out, dest);
        assert!(out.stderr.contains(dest), "{dest}: {out:#?}");
        h.host_untouched(dest);
    }
}
both!(relative_symlink_climbing_out);

/// `root.path` naming a symlink to the rootfs (absolute, relative), as
/// runc allows: husk canonicalizes and runs; a dangling one is refused in
/// one line. Bug class: pivot_root/bind on an unresolved symlink (EINVAL
/// with a confusing message, or a crash).
fn rootfs_is_a_symlink(who: Who) {
    for (name, target) in [
        ("abs", None),
        ("rel", Some("rootfs")),
        ("dangling", Some("nowhere")),
    ] {
        let mut h = Hostile::new(who);
        let link = h.c.b.s.dir.join(format!("rootfs-{name}"));
        let target = match target {
            None => h.rootfs.clone(),
            Some(t) => PathBuf::from(t),
        };
        symlink(&target, &link).unwrap();
        h.b().set("/root/path", json!(link)).sh("echo ran");
        let out = h.c.run(None);
        if name == "dangling" {
            refused(&out, name);
        } else {
            assert_eq!(out.code, 0, "{name}: {out:#?}");
            assert_eq!(out.stdout, "ran\n", "{name}");
        }
        h.host_untouched(name);
    }
}
both!(rootfs_is_a_symlink);

/// A 100 MB config.json (one giant annotation) is refused in < 5 s with
/// bounded memory: the max RSS of husk itself, from /usr/bin/time (husk is
/// forked from `time`, not from this big test process, whose pages would
/// count). Bug class: reading and parsing an unbounded file.
fn config_of_100_mb(who: Who) {
    use std::io::Write;
    let h = Hostile::new(who);
    let config = h.c.b.dir.join("config.json");
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&config).unwrap());
        f.write_all(br#"{"ociVersion": "1.0.2", "annotations": {"big": ""#)
            .unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(br#""}, "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}}"#)
            .unwrap();
    }
    let rss_file = h.c.b.s.dir.join("maxrss");
    let mut cmd = h.c.b.s.command("/usr/bin/time");
    cmd.arg("-o")
        .arg(&rss_file)
        .args(["-f", "%M"])
        .arg(&harness().husk)
        .arg("--root")
        .arg(&h.c.b.state)
        .args(["run", "--bundle", h.c.bundle(), h.c.id()]);
    let t = Instant::now();
    let out = run_timeout(&mut cmd, None, TIMEOUT);
    let took = t.elapsed();
    // `time -o` writes "Command exited with non-zero status 1" first.
    let rss: u64 = fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eprintln!("100 MB config as {who:?}: {took:?}, max RSS {rss} KiB: {out:?}");
    refused(&out, "100 MB config");
    assert!(out.stderr.contains("config.json"), "{out:#?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(rss < 48 * 1024, "max RSS {rss} KiB");
    fs::remove_file(&config).unwrap();
    h.host_untouched("100 MB config");
}
both!(config_of_100_mb);

/// 100k nested arrays, unterminated and balanced, and 100k nested
/// objects: one line, quickly, no stack overflow (which would be a
/// SIGSEGV with no message). Bug class: unbounded recursion in the parser.
fn deeply_nested_json(who: Who) {
    let n = 100_000;
    let cases = [
        (
            "open arrays",
            format!(
                r#"{{"ociVersion": "1.0.2", "annotations": {}"#,
                "[".repeat(n)
            ),
        ),
        (
            "balanced arrays",
            format!(
                r#"{{"ociVersion": "1.0.2", "x": {}{}, "process": {{"args": ["sh"], "cwd": "/"}}, "root": {{"path": "rootfs"}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
        (
            "objects",
            format!(
                r#"{{"ociVersion": "1.0.2", "x": {}1{}}}"#,
                r#"{"a":"#.repeat(n),
                "}".repeat(n)
            ),
        ),
    ];
    for (name, text) in cases {
        let mut h = Hostile::new(who);
        h.b().raw_config = Some(text);
        let t = Instant::now();
        let out = h.c.run(None);
        refused(&out, name);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            t.elapsed()
        );
        h.b().raw_config = None;
        let _ = fs::remove_file(h.c.b.dir.join("config.json"));
        h.host_untouched(name);
    }
}
both!(deeply_nested_json);

/// Every config in tests/hostile/ is refused with one line and leaves
/// nothing. Bug classes: invalid UTF-8 or NULs reaching C strings and
/// paths (truncation, panics), integer overflow in IDs, panics on wrong
/// shapes (a panic prints many lines and exits 101).
fn corpus_is_refused(who: Who) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing: {files:?}");
    let mut failures = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let h = Hostile::new(who);
        let rootfs = h.rootfs.to_str().unwrap().as_bytes().to_vec();
        let raw = fs::read(&f).unwrap();
        let mut bytes = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i..].starts_with(b"@ROOTFS@") {
                bytes.extend_from_slice(&rootfs);
                i += 8;
            } else {
                bytes.push(raw[i]);
                i += 1;
            }
        }
        let config = h.c.b.dir.join("config.json");
        fs::write(&config, &bytes).unwrap();
        let mut cmd = h.c.b.s.command(&harness().husk);
        cmd.arg("--root")
            .arg(&h.c.b.state)
            .args(["run", "--bundle", h.c.bundle(), h.c.id()]);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        let err = out.stderr.trim();
        if out.code == 0
            || err.lines().count() != 1
            || !err.starts_with("husk: ")
            || out.stdout.contains("should-not-run")
        {
            failures.push(format!("{name}: {out:?}"));
        } else {
            eprintln!("{name}: {err}");
        }
        let _ = fs::remove_file(&config);
        h.host_untouched(&name);
    }
    assert!(
        failures.is_empty(),
        "not refused cleanly:\n{}",
        failures.join("\n")
    );
}
both!(corpus_is_refused);

/// Mount sources that do not exist (a missing path, a dangling symlink):
/// one line naming the source, nothing left.
fn missing_mount_sources(who: Who) {
    for kind in ["missing", "dangling"] {
        let mut h = Hostile::new(who);
        let src = h.c.b.s.dir.join(format!("src-{kind}"));
        if kind == "dangling" {
            symlink("/nonexistent/husk-it", &src).unwrap();
        }
        h.b()
            .mount(json!({"destination": "/mnt", "type": "bind", "source": src,
                           "options": ["rbind"]}));
        let out = h.c.run(None);
        refused(&out, kind);
        assert!(
            out.stderr.contains(src.to_str().unwrap()),
            "{kind}: {out:#?}"
        );
        h.host_untouched(kind);
    }
}
both!(missing_mount_sources);

/// A hook that fails, one that does not exist, and one that hangs past
/// its timeout: `create` fails in one line, quickly, and undoes itself
/// (the hanging hook is killed). Bug class: a create-phase hook failure
/// that leaves the parked container, the record or the hook behind.
fn hooks_that_fail_or_hang(who: Who) {
    for case in ["fails", "missing", "hangs"] {
        let mut h = Hostile::new(who);
        let mark = format!("husk-it-hook-{}-end", h.c.b.s.id);
        let hook = match case {
            "fails" => json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}),
            "missing" => json!({"path": "/nonexistent/hook"}),
            _ => json!({"path": "/bin/sleep", "args": ["sleep", "1000"],
                        "env": [format!("HUSK_IT_MARK={mark}")], "timeout": 1}),
        };
        h.b()
            .set("/hooks/createRuntime", json!([hook]))
            .sh("exec sleep 30");
        let t = Instant::now();
        let out = h.c.create(None);
        refused(&out, case);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{case}: {:?}",
            t.elapsed()
        );
        assert_eq!(marked_processes(&mark), vec![], "{case}: the hook is left");
        assert!(!h.c.pid_file.exists(), "{case}: pid file");
        h.host_untouched(case);
    }
}
both!(hooks_that_fail_or_hang);

/// maskedPaths and readonlyPaths that are symlinks to a host file
/// (absolute: resolved inside the root; relative: climbing out): the
/// container never sees the host file's content, the host file is
/// untouched. Bug class: masking/binding a path resolved on the host.
fn masked_path_symlink_to_host(who: Who) {
    for (kind, rel) in [("absolute", false), ("relative", true)] {
        let mut h = Hostile::new(who);
        let secret = h.sentinel.join("secret");
        let target = if rel {
            format!("{}{}/secret", "../".repeat(12), h.sentinel_rel())
        } else {
            secret.to_str().unwrap().to_string()
        };
        h.link(&target, "etc/masklink");
        h.link(&target, "etc/rolink");
        h.b()
            .set("/linux/maskedPaths", json!(["/etc/masklink"]))
            .set("/linux/readonlyPaths", json!(["/etc/rolink"]))
            .sh("cat /etc/masklink /etc/rolink; echo ran");
        let out = h.c.run(None);
        let what = refused_or_ran(&out, "ran", kind);
        assert!(
            !out.stdout.contains("host secret"),
            "{kind}: leaked: {out:#?}"
        );
        eprintln!("masked/readonly path symlink ({kind}, {who:?}): {what}");
        h.host_untouched(kind);
    }
}
both!(masked_path_symlink_to_host);

/// process.cwd through a symlink leaving the root: relative (climbing)
/// refused; absolute resolved inside the root — the program never starts
/// in the host directory. Bug class: chdir on a host-resolved path
/// (CVE-2024-21626's family).
fn cwd_symlink_escaping(who: Who) {
    for (kind, rel) in [("absolute", false), ("relative", true)] {
        let mut h = Hostile::new(who);
        let target = if rel {
            format!("{}{}", "../".repeat(12), h.sentinel_rel())
        } else {
            h.sentinel.to_str().unwrap().to_string()
        };
        h.link(&target, "work");
        h.b()
            .set("/process/cwd", json!("/work"))
            .sh("ls -a; echo ran; echo x > written");
        let out = h.c.run(None);
        let what = refused_or_ran(&out, "ran", kind);
        assert!(
            !out.stdout.contains("keep"),
            "{kind}: started in the host dir: {out:#?}"
        );
        eprintln!("cwd symlink ({kind}, {who:?}): {what}");
        h.host_untouched(kind);
    }
}
both!(cwd_symlink_escaping);

/// A linux.devices entry whose path in the rootfs is a symlink to a host
/// file (absolute and climbing): the host file is never replaced by a
/// node or bound over (no /dev tmpfs in the config, so the rootfs's /dev
/// is used). Bug class: mknod/bind following a symlink on the host.
fn device_path_symlink_to_host(who: Who) {
    for (kind, rel) in [("absolute", false), ("relative", true)] {
        let mut h = Hostile::new(who);
        let target = if rel {
            format!("{}{}/secret", "../".repeat(12), h.sentinel_rel())
        } else {
            h.sentinel.join("secret").to_str().unwrap().to_string()
        };
        fs::create_dir_all(h.rootfs.join("dev")).unwrap();
        h.link(&target, "dev/fuse");
        h.b()
            .unmount("/dev")
            .unmount("/dev/pts")
            .unmount("/dev/shm")
            .unmount("/dev/mqueue")
            .set(
                "/linux/devices",
                json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                        "fileMode": 0o666, "uid": 0, "gid": 0}]),
            )
            .sh("cat /dev/fuse 2>/dev/null; echo ran");
        let out = h.c.run(None);
        let what = refused_or_ran(&out, "ran", kind);
        assert!(
            !out.stdout.contains("host secret"),
            "{kind}: leaked: {out:#?}"
        );
        eprintln!("device symlink ({kind}, {who:?}): {what}");
        h.host_untouched(kind);
    }
}
both!(device_path_symlink_to_host);

/// The record replaced by a symlink (to a copy of itself): `state`, `kill`
/// and `start` refuse in one line (O_NOFOLLOW), the container is not
/// signalled. Bug class: following a record symlink planted by someone
/// who can write the bundle but not the record.
fn record_replaced_by_symlink(who: Who) {
    let mut b = Bundle::new(who);
    b.sh("exec sleep 30");
    let c = Ctr::new(b);
    c.created();
    let pid: u32 = fs::read_to_string(&c.pid_file).unwrap().parse().unwrap();
    let record = c.b.dir.join(format!(".husk-{}.json", c.id()));
    let copy = c.b.dir.join("copy.json");
    fs::rename(&record, &copy).unwrap();
    symlink("copy.json", &record).unwrap();
    for args in [
        vec!["state", c.id()],
        vec!["kill", c.id(), "KILL"],
        vec!["start", c.id()],
    ] {
        let out = c.husk(&args);
        refused(&out, args[0]);
        assert!(out.stderr.contains(".json"), "{}: {out:#?}", args[0]);
    }
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container was hit"
    );
    fs::remove_file(&record).unwrap();
    fs::rename(&copy, &record).unwrap();
    c.delete_force().ok();
    c.assert_nothing_left(false, "after restoring the record");
}
both!(record_replaced_by_symlink);

/// A sleeping host process as `who` (root, or the user through setpriv),
/// with a mark.
fn victim(s: &Scratch, mark: &str) -> std::process::Child {
    let mut cmd = s.command("sleep");
    cmd.arg("60")
        .env("HUSK_IT_MARK", mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().unwrap()
}

/// Field 22 of /proc/PID/stat.
fn start_time(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(19).unwrap().parse().unwrap()
}

/// A record planted by another user, pointing at a live process of the
/// caller's (correct start time): the caller's `state` and `kill` refuse
/// it, and the process survives. As the user: root plants a record in the
/// user's bundle. Bug class: trusting a record only by its content.
#[test]
fn record_owned_by_another_user_refused() {
    let b = Bundle::new(Who::User);
    b.write_config();
    let mark = format!("husk-it-victim-{}-end", b.s.id);
    let mut v = victim(&b.s, &mark);
    let id = format!("{}-planted", b.s.id);
    plant(&b, &id, v.id(), 0);
    for args in [vec!["state", &id[..]], vec!["kill", &id, "KILL"]] {
        let mut cmd = b.s.command(&harness().husk);
        cmd.arg("--root").arg(&b.state).args(&args);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        refused(&out, args[0]);
        assert!(out.stderr.contains("owned by"), "{}: {out:#?}", args[0]);
    }
    assert!(v.try_wait().unwrap().is_none(), "the victim was killed");
    let _ = v.kill();
    let _ = v.wait();
}

/// Write a record for `id` in `b`'s bundle pointing at `pid`, owned by
/// `owner`, and the index entry in `b`'s state root.
fn plant(b: &Bundle, id: &str, pid: u32, owner: u32) {
    let rec = json!({
        "id": id, "bundle": b.dir, "pid": pid, "start_time": start_time(pid),
        "mnt_ns": fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap_or(0),
        "pid_ns": null, "created": "2026-01-01T00:00:00Z", "owner": owner,
        "annotations": {}
    });
    let path = b.dir.join(format!(".husk-{id}.json"));
    fs::write(&path, rec.to_string()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&path, Some(owner), None).unwrap();
    let index = b.state.join(id);
    symlink(&b.dir, &index).unwrap();
}

/// The reverse: the user plants a record in its own bundle pointing at a
/// process of root's; root's `kill --bundle B ID KILL` (and `delete
/// --force`) must not signal it. Bug class: a root-run husk (Buildah as
/// root on a user-writable bundle) trusting a record it did not write.
#[test]
fn root_refuses_record_planted_by_user() {
    let b = Bundle::new(Who::User);
    b.write_config();
    let root_side = Scratch::new(Who::Root);
    let mark = format!("husk-it-victim-{}-end", b.s.id);
    let mut v = victim(&root_side, &mark);
    let id = format!("{}-planted", b.s.id);
    plant(&b, &id, v.id(), harness().user.uid);
    let bundle = b.dir.to_str().unwrap();
    for args in [
        vec!["kill", "--bundle", bundle, &id[..], "KILL"],
        vec!["delete", "--force", "--bundle", bundle, &id],
    ] {
        let mut cmd = root_side.command(&harness().husk);
        cmd.arg("--root")
            .arg(root_side.dir.join("state"))
            .args(&args);
        let out = run_timeout(&mut cmd, None, TIMEOUT);
        eprintln!("root {}: {out:?}", args.join(" "));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            v.try_wait().unwrap().is_none(),
            "root's husk {} killed root's process through a record the user wrote: {out:#?}",
            args[0]
        );
    }
    let _ = v.kill();
    let _ = v.wait();
}

/// A bundle (or state root) writable by others is refused for records:
/// one line, and nothing is created in it. Bug class: records another
/// user can swap between write and read.
fn world_writable_bundle_or_root(who: Who) {
    for (which, mode) in [("bundle", 0o777), ("bundle", 0o1777), ("state", 0o777)] {
        let mut b = Bundle::new(who);
        b.sh("exec sleep 30");
        let c = Ctr::new(b);
        let dir = if which == "bundle" {
            &c.b.dir
        } else {
            &c.b.state
        };
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        let out = c.create(None);
        let ctx = format!("{which} {mode:o}");
        refused(&out, &ctx);
        assert!(out.stderr.contains("writable"), "{ctx}: {out:#?}");
        c.assert_nothing_left(true, &ctx);
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
both!(world_writable_bundle_or_root);

/// Make the next PID the kernel hands out `want` (root: ns_last_pid) and
/// start a victim there; retries while other tests race for PIDs.
fn victim_at(s: &Scratch, mark: &str, want: u32) -> Option<std::process::Child> {
    for _ in 0..200 {
        if Path::new(&format!("/proc/{want}")).exists() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string()).unwrap();
        let mut v = victim(s, mark);
        if v.id() == want {
            return Some(v);
        }
        let _ = v.kill();
        let _ = v.wait();
    }
    None
}

/// The container exits and is not deleted; its PID is recycled by a
/// process of the caller's (ns_last_pid). `state` says stopped, `kill`
/// fails, `kill --all` and `delete --force` leave the new process alone.
/// Bug class: signalling a recorded PID without checking it is still the
/// same process.
fn recycled_pid_is_never_signalled(who: Who) {
    let mut b = Bundle::new(who);
    b.without_namespace("pid").args(&["true"]);
    let c = Ctr::new(b);
    c.started();
    let pid: u32 = fs::read_to_string(&c.pid_file).unwrap().parse().unwrap();
    wait_for("the container to stop", || c.status() == "stopped");
    // PID 1 reaps the orphan; until then the PID is taken.
    let mark = format!("husk-it-victim-{}-end", c.b.s.id);
    let mut v = victim_at(&c.b.s, &mark, pid)
        .unwrap_or_else(|| panic!("could not get PID {pid} again (other tests took it)"));
    assert_eq!(
        c.status(),
        "stopped",
        "a recycled PID counts as the container"
    );
    let st = c.husk(&["state", c.id()]);
    let st: Value = serde_json::from_str(st.ok()).unwrap();
    assert_eq!(st["pid"], 0, "{st}");
    let k = c.husk(&["kill", c.id(), "KILL"]);
    assert_ne!(k.code, 0, "kill of a stopped container: {k:#?}");
    c.husk(&["kill", "--all", c.id(), "KILL"]);
    c.husk(&["delete", "--force", c.id()]).ok();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        v.try_wait().unwrap().is_none(),
        "the process that took the container's PID {pid} was killed"
    );
    let _ = v.kill();
    let _ = v.wait();
    c.assert_nothing_left(false, "after delete");
}
both!(recycled_pid_is_never_signalled);
