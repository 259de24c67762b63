//! Helpers shared by husk's fuzz targets: a scratch bundle that exists for
//! the life of the fuzzing process, and the invariants every successfully
//! built `Plan` must satisfy.

use husk::plan::{Caller, MountKind, Plan, UserNs};
use nix::sched::CloneFlags;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The two callers husk's privilege rules distinguish.
pub const CALLERS: [Caller; 2] = [
    Caller {
        euid: 1000,
        egid: 1000,
    },
    Caller { euid: 0, egid: 0 },
];

/// A bundle directory with an empty `rootfs/` and a `data/` directory (a
/// bind source), created once per process under `$TMPDIR` (tools/fuzz
/// points that at a directory it removes afterwards).
pub fn bundle() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("husk-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("create scratch rootfs");
        std::fs::create_dir_all(dir.join("data")).expect("create scratch bind source");
        std::fs::canonicalize(&dir).expect("canonical scratch bundle")
    })
}

/// An in-container path as husk must hand it to the mount code: absolute,
/// no `.`/`..` segment, no empty segment (`//`), no trailing `/` except for
/// `/` itself. Checked on the bytes, because `Path::components` would hide
/// a `.` or a doubled slash.
pub fn assert_clean_abs(what: &str, p: &Path) {
    let b = p.as_os_str().as_bytes();
    assert!(b.first() == Some(&b'/'), "{what} {p:?} is not absolute");
    if b == b"/" {
        return;
    }
    for seg in b[1..].split(|&c| c == b'/') {
        assert!(
            !seg.is_empty() && seg != b"." && seg != b"..",
            "{what} {p:?} is not normalised (segment {:?})",
            String::from_utf8_lossy(seg)
        );
    }
}

/// Invariants of a plan that `Plan::build` accepted.
pub fn check_plan(plan: &Plan, caller: Caller) {
    assert!(plan.rootfs.is_absolute(), "rootfs {:?}", plan.rootfs);
    for m in &plan.mounts {
        assert_clean_abs("mount destination", &m.dest);
        if let MountKind::Bind { .. } = m.kind {
            let src = m.source.as_ref().expect("bind mount without a source");
            assert!(src.is_absolute(), "bind source {src:?} is not absolute");
        }
    }
    for d in &plan.devices {
        assert_clean_abs("device path", &d.path);
        assert!(d.path.starts_with("/dev"), "device {:?} outside /dev", d.path);
        assert_eq!(d.mode & !0o7777, 0, "device mode {:o}", d.mode);
    }
    for p in plan.masked_paths.iter().chain(&plan.readonly_paths) {
        assert_clean_abs("masked/readonly path", p);
    }
    assert_clean_abs("process.cwd", &plan.process.cwd);
    assert!(!plan.process.args.is_empty(), "empty args accepted");
    assert!(
        !plan.process.args[0].as_bytes().is_empty(),
        "empty args[0] accepted"
    );
    for (k, _) in &plan.sysctl {
        assert!(
            !k.is_empty() && !k.contains('/') && k.split('.').all(|p| !p.is_empty() && p != ".."),
            "sysctl key {k:?} accepted"
        );
    }
    // Every plan mounts in a mount namespace of its own or a joined one.
    let has_ns = |f: CloneFlags| plan.create.contains(f) || plan.join.iter().any(|(g, _)| *g == f);
    assert!(has_ns(CloneFlags::CLONE_NEWNS), "no mount namespace");
    assert!(
        !plan.create.contains(CloneFlags::CLONE_NEWUSER),
        "CLONE_NEWUSER must be in userns, not create"
    );
    if plan.hostname.is_some() || plan.domainname.is_some() {
        assert!(has_ns(CloneFlags::CLONE_NEWUTS), "hostname without a uts namespace");
    }
    for (_, p) in &plan.join {
        assert!(p.is_absolute(), "namespace path {p:?} is not absolute");
    }
    match &plan.userns {
        // Only root may stay in the caller's user namespace.
        UserNs::Inherit => assert_eq!(caller.euid, 0, "unprivileged caller inherits userns"),
        UserNs::Join(p) => assert!(p.is_absolute(), "userns path {p:?}"),
        UserNs::Create(maps) => {
            assert!(!maps.uid.is_empty() && !maps.gid.is_empty(), "empty ID maps");
            // A range must fit in 32 bits, as the kernel requires of
            // uid_map/gid_map lines; husk computes `containerID + size` and
            // `hostID + offset` in u32 when it maps IDs (create's
            // container_root_ids), which overflows otherwise.
            for m in maps.uid.iter().chain(&maps.gid) {
                let fits = |start: u32| start.checked_add(m.size()).is_some();
                assert!(
                    fits(m.container_id()) && fits(m.host_id()),
                    "ID mapping {} {} {} accepted: its range overflows 32 bits",
                    m.container_id(),
                    m.host_id(),
                    m.size()
                );
            }
            if maps.self_map {
                assert_ne!(caller.euid, 0, "root gets no self map");
                assert_eq!(maps.uid.len(), 1);
                assert_eq!(maps.uid[0].host_id(), caller.euid, "self map of another UID");
                assert_eq!(maps.gid[0].host_id(), caller.egid, "self map of another GID");
            }
        }
    }
}

/// Build plans for both callers; only `Err` may come back, never a panic.
pub fn build_both(spec: &oci_spec::runtime::Spec) {
    for caller in CALLERS {
        if let Ok(plan) = Plan::build("fuzz", bundle(), spec.clone(), caller) {
            check_plan(&plan, caller);
        }
    }
}
