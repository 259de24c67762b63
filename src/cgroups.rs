//! `linux.resources`, applied where the caller can write cgroups (real
//! root), and otherwise reported once as not applied — never a silent
//! success, never a failure for rootless (DESIGN.md).
//!
//! husk does not *track* containers through cgroups: the cgroup is only a
//! place to hang limits. Buildah/Podman always send `resources.devices`;
//! those rules are met by the explicit /dev contents and are not reported.

use crate::error::{Error, Result};
use crate::plan::Plan;
use nix::errno::Errno;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// One limit: the config name, the v1 controller and file, the v2 file,
/// and the value to write.
struct Limit {
    name: &'static str,
    v1: (&'static str, &'static str),
    v2: &'static str,
    value: String,
}

fn limits(r: &LinuxResources) -> Vec<Limit> {
    let mut out = Vec::new();
    let mut push = |name, v1, v2, value: Option<String>| {
        if let Some(value) = value {
            out.push(Limit {
                name,
                v1,
                v2,
                value,
            });
        }
    };
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let v1max = |v: i64| v.to_string();
    if let Some(m) = r.memory() {
        push(
            "memory.limit",
            ("memory", "memory.limit_in_bytes"),
            "memory.max",
            m.limit().map(v1max),
        );
        push(
            "memory.reservation",
            ("memory", "memory.soft_limit_in_bytes"),
            "memory.low",
            m.reservation().map(v1max),
        );
        push(
            "memory.swap",
            ("memory", "memory.memsw.limit_in_bytes"),
            "memory.swap.max",
            m.swap().map(v1max),
        );
    }
    if let Some(p) = r.pids() {
        push(
            "pids.limit",
            ("pids", "pids.max"),
            "pids.max",
            Some(max(p.limit())),
        );
    }
    if let Some(c) = r.cpu() {
        push(
            "cpu.shares",
            ("cpu", "cpu.shares"),
            "",
            c.shares().map(|s| s.to_string()),
        );
        push(
            "cpu.period",
            ("cpu", "cpu.cfs_period_us"),
            "",
            c.period().map(|s| s.to_string()),
        );
        push(
            "cpu.quota",
            ("cpu", "cpu.cfs_quota_us"),
            "",
            c.quota().map(|s| s.to_string()),
        );
        push(
            "cpu.cpus",
            ("cpuset", "cpuset.cpus"),
            "cpuset.cpus",
            c.cpus().clone(),
        );
        push(
            "cpu.mems",
            ("cpuset", "cpuset.mems"),
            "cpuset.mems",
            c.mems().clone(),
        );
    }
    out
}

/// Names of the resource groups set in the config that `limits` does not
/// cover, so they are reported instead of silently dropped.
fn unsupported(r: &LinuxResources) -> Vec<&'static str> {
    let checks = [
        ("blockIO", r.block_io().is_some()),
        (
            "hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()),
        ),
        ("network", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|v| !v.is_empty())),
        (
            "unified",
            r.unified().as_ref().is_some_and(|v| !v.is_empty()),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect()
}

/// The cgroup path below each hierarchy: `linux.cgroupsPath` (absolute:
/// from the hierarchy root; relative: below the caller's cgroup), or
/// `husk/<id>` below the caller's cgroup, as runc does.
fn cgroup_path(plan: &Plan, own: &Path) -> PathBuf {
    let configured = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    match configured {
        Some(p) if p.is_absolute() => p.strip_prefix("/").unwrap_or(&p).to_path_buf(),
        Some(p) => own.join(p),
        None => own.join("husk").join(&plan.id),
    }
}

/// The caller's own cgroup in the hierarchy holding `controller` (v1) or
/// the unified one (`None`).
fn own_cgroup(controller: Option<&str>) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let hit = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => ctrls.is_empty(),
        };
        if hit {
            return PathBuf::from(path.trim_start_matches('/'));
        }
    }
    PathBuf::new()
}

/// Create the cgroup directory, write the value, join it. EACCES/EPERM/
/// EROFS/ENOENT mean "not writable here": `Ok(false)`.
fn apply_one(dir: &Path, file: &str, value: &str) -> Result<bool> {
    let soft = |e: &std::io::Error| {
        matches!(
            e.raw_os_error().map(Errno::from_raw),
            Some(Errno::EACCES | Errno::EPERM | Errno::EROFS | Errno::ENOENT)
        )
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return if soft(&e) {
            Ok(false)
        } else {
            Err(Error::io(
                "resources",
                format!("mkdir {}", dir.display()),
                &e,
            ))
        };
    }
    let path = dir.join(file);
    if !path.exists() {
        return Ok(false);
    }
    std::fs::write(&path, value).map_err(|e| {
        Error::io(
            "resources",
            format!("write {value:?} to {}", path.display()),
            &e,
        )
    })?;
    std::fs::write(dir.join("cgroup.procs"), "0")
        .map_err(|e| Error::io("resources", format!("join {}", dir.display()), &e))?;
    Ok(true)
}

/// The cgroup directory and file a limit goes to (`None`: no such file in
/// the unified hierarchy).
fn dir_for(plan: &Plan, l: &Limit) -> Option<(PathBuf, &'static str)> {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        (!l.v2.is_empty()).then(|| {
            (
                Path::new(ROOT).join(cgroup_path(plan, &own_cgroup(None))),
                l.v2,
            )
        })
    } else {
        let (ctrl, file) = l.v1;
        Some((
            Path::new(ROOT)
                .join(ctrl)
                .join(cgroup_path(plan, &own_cgroup(Some(ctrl)))),
            file,
        ))
    }
}

/// The cgroup directories `apply` made for this container, for `delete`
/// to remove once its processes are gone.
pub fn dirs(plan: &Plan) -> Vec<PathBuf> {
    let Some(r) = &plan.resources else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = limits(r)
        .iter()
        .filter_map(|l| dir_for(plan, l).map(|(d, _)| d))
        .filter(|d| d.is_dir())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Remove a container's cgroup directories (empty once its processes are
/// gone; a busy or foreign one simply stays).
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

/// Apply what can be applied; warn once about the rest.
pub fn apply(plan: &Plan) -> Result<()> {
    let Some(r) = &plan.resources else {
        return Ok(());
    };
    let mut missed: Vec<&str> = unsupported(r);
    for l in limits(r) {
        let applied = match dir_for(plan, &l) {
            Some((dir, file)) => apply_one(&dir, file, &l.value)?,
            None => false,
        };
        if !applied {
            missed.push(l.name);
        }
    }
    if !missed.is_empty() {
        crate::log::warn(&format!(
            "resources: linux.resources {} not applied (husk applies memory, pids, cpu and cpuset limits, where the cgroup is writable)",
            missed.join(", ")
        ));
    }
    Ok(())
}
