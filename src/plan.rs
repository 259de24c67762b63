//! Plan, then act: `config.json` becomes an immutable `Plan` (mount flags
//! parsed, ID maps chosen, paths validated) before the first syscall that
//! changes anything. Bad input fails here, having changed nothing
//! (bubblewrap's op list is the model).

use crate::error::{Error, Result};
use crate::sys;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, LinuxSeccomp, Mount,
    PosixRlimit, Spec,
};
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

const STEP: &str = "validate config";

/// Largest `config.json` we read. Real ones are tens of KiB; a seccomp
/// profile is the bulk. Refusing early keeps a hostile bundle from making us
/// allocate without bound.
const MAX_CONFIG: u64 = 16 << 20;

/// Default PATH when the config has none (runc uses the same).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Read and parse `bundle/config.json`. Unknown fields are ignored, as the
/// spec requires; serde reports line and column for bad JSON and wrong types.
pub fn load_config(bundle: &Path) -> Result<Spec> {
    use std::io::Read;
    let path = bundle.join("config.json");
    let file = std::fs::File::open(&path)
        .map_err(|e| Error::io("load config", path.display().to_string(), &e))?;
    // Sized up front: read_to_end on an empty Vec starts at 32 bytes and
    // grows, costing a read per doubling.
    let len = file.metadata().map_or(0, |m| m.len()).min(MAX_CONFIG + 1);
    let mut buf = Vec::with_capacity(len as usize + 1);
    file.take(MAX_CONFIG + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("load config", path.display().to_string(), &e))?;
    if buf.len() as u64 > MAX_CONFIG {
        return Err(Error::invalid(
            "load config",
            format!("{}: larger than {MAX_CONFIG} bytes", path.display()),
        ));
    }
    // serde_path_to_error names the field (`process.args: invalid type…`),
    // which plain serde_json errors do not.
    let bad = |what: String| Error::invalid("load config", format!("{}: {what}", path.display()));
    let de = &mut serde_json::Deserializer::from_slice(&buf);
    let spec = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let at = if field == "." {
            String::new()
        } else {
            format!("{field}: ")
        };
        bad(format!("{at}{inner}"))
    })?;
    // One JSON document and nothing after it, as runc's decoder insists.
    de.end().map_err(|e| bad(e.to_string()))?;
    Ok(spec)
}

/// How the user namespace is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNs {
    /// Stay in the caller's user namespace (root, no `user` in config).
    Inherit,
    /// Join an existing one by path.
    Join(PathBuf),
    /// Create one and write these maps.
    Create(IdMaps),
}

/// The uid_map/gid_map contents for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
    /// The caller's own IDs are the only ones mapped: the kernel lets an
    /// unprivileged process write that itself (with setgroups denied).
    /// Anything else needs root or newuidmap/newgidmap.
    pub self_map: bool,
}

impl IdMaps {
    /// The text written to `/proc/PID/{uid,gid}_map`.
    pub fn format(maps: &[LinuxIdMapping]) -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    }
}

/// A mount, validated and with its options turned into flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOp {
    /// Absolute path inside the container, normalised (no `.`/`..`).
    pub dest: PathBuf,
    pub kind: MountKind,
    /// Bind sources are made absolute (relative ones are bundle-relative).
    pub source: Option<PathBuf>,
    pub fstype: String,
    /// Flags for the initial mount (or the remount, for binds).
    pub flags: MsFlags,
    /// Propagation flags applied one by one after mounting.
    pub propagation: Vec<MsFlags>,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind {
        recursive: bool,
    },
    Proc,
    Sysfs,
    Cgroup,
    Mqueue,
    /// tmpfs, devpts and anything else the kernel mounts by type.
    Other,
}

/// A device node to provide in `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOp {
    pub path: PathBuf,
    pub kind: nix::sys::stat::SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The container process's attributes.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from `env`, used to find `args[0]` inside the container.
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<PosixRlimit>,
    pub no_new_privileges: bool,
    pub caps: Option<oci_spec::runtime::LinuxCapabilities>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// `--preserve-fds N`: fds 3..3+N reach the program.
    pub preserve_fds: i32,
}

/// Everything `husk` will do, decided before doing any of it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub userns: UserNs,
    /// Namespaces to create (without CLONE_NEWUSER: see `userns`).
    pub create: CloneFlags,
    /// Namespaces to join by path (user excluded), in config order.
    pub join: Joins,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceOp>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
    /// `linux.rootfsPropagation`, if set.
    pub rootfs_propagation: Option<MsFlags>,
    pub seccomp: Option<LinuxSeccomp>,
    pub process: ProcessPlan,
    /// Human summary of `linux.resources` that this run cannot apply.
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    pub spec: Spec,
}

/// The caller's identity, which decides the privilege rules of DESIGN.md.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub euid: u32,
    pub egid: u32,
}

impl Caller {
    pub fn current() -> Self {
        Caller {
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// Container IDs as runc accepts them (`^[\w+\-.]+$`, not `.`/`..`):
/// the ID names a file in the state root, so nothing path-like may pass.
///
/// An absolute path is the stateless extension's bundle-as-ID; the caller
/// checks that it names the bundle.
pub fn validate_id(id: &str) -> Result<()> {
    if id.starts_with('/') && !id.contains('\0') {
        return Ok(());
    }
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "parse arguments",
            format!("invalid container ID {id:?}: use letters, digits, '_', '+', '-', '.'"),
        ))
    }
}

impl Plan {
    /// Validate `spec` and turn it into a plan. `bundle` must be absolute.
    pub fn build(id: &str, bundle: &Path, spec: Spec, caller: Caller) -> Result<Plan> {
        validate_id(id)?;
        // The state JSON carries the bundle as a string (found by fuzzing:
        // a non-UTF-8 bundle panicked `create` at the record).
        if bundle.to_str().is_none() {
            return Err(Error::invalid(
                STEP,
                format!("bundle path {} is not valid UTF-8", bundle.display()),
            ));
        }
        let root = spec
            .root()
            .as_ref()
            .filter(|r| !r.path().as_os_str().is_empty())
            .ok_or_else(|| Error::invalid(STEP, "root.path is missing"))?;
        let rootfs = bundle.join(root.path());
        let rootfs = std::fs::canonicalize(&rootfs)
            .map_err(|e| Error::io(STEP, format!("root.path {}", rootfs.display()), &e))?;
        if !rootfs.is_dir() {
            return Err(Error::sys(
                STEP,
                format!("root.path {}", rootfs.display()),
                nix::errno::Errno::ENOTDIR,
            ));
        }
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::invalid(STEP, "process is missing"))?;
        let linux = spec.linux().clone().unwrap_or_default();

        let (userns, create, join) =
            plan_namespaces(&linux, process.user().uid(), process.user().gid(), caller)?;
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        // runc refuses to set a hostname it would set on the host.
        if (hostname.is_some() || domainname.is_some())
            && !create.contains(CloneFlags::CLONE_NEWUTS)
            && !join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUTS)
        {
            return Err(Error::invalid(
                STEP,
                "hostname/domainname need a uts namespace in linux.namespaces",
            ));
        }

        let mounts = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| plan_mount(m, bundle))
            .collect::<Result<Vec<_>>>()?;
        let devices = linux
            .devices()
            .iter()
            .flatten()
            .map(plan_device)
            .collect::<Result<Vec<_>>>()?;
        let masked_paths = container_paths("linux.maskedPaths", linux.masked_paths())?;
        let readonly_paths = container_paths("linux.readonlyPaths", linux.readonly_paths())?;
        let mut sysctl: Vec<(String, String)> = linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        sysctl.sort();
        for (k, _) in &sysctl {
            if k.is_empty() || k.contains('/') || k.split('.').any(|p| p.is_empty() || p == "..") {
                return Err(Error::invalid(
                    STEP,
                    format!("linux.sysctl key {k:?} is not a sysctl name"),
                ));
            }
        }
        let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => Some(propagation_flag(p).ok_or_else(|| {
                Error::invalid(
                    STEP,
                    format!("linux.rootfsPropagation {p:?} is not a propagation mode"),
                )
            })?),
        };

        Ok(Plan {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            rootfs,
            root_readonly: root.readonly().unwrap_or(false),
            userns,
            create,
            join,
            hostname,
            domainname,
            mounts,
            devices,
            masked_paths,
            readonly_paths,
            sysctl,
            rootfs_propagation,
            seccomp: linux.seccomp().clone(),
            process: plan_process(process)?,
            resources: linux.resources().clone(),
            spec: spec.clone(),
        })
    }
}

/// Namespaces joined by path: the flag and the path.
pub type Joins = Vec<(CloneFlags, PathBuf)>;

fn ns_flag(t: LinuxNamespaceType) -> Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => {
            return Err(Error::invalid(
                STEP,
                "linux.namespaces: time namespaces are not supported",
            ));
        }
    })
}

/// Apply DESIGN.md's privilege rules to the configured namespaces.
fn plan_namespaces(
    linux: &oci_spec::runtime::Linux,
    uid: u32,
    gid: u32,
    caller: Caller,
) -> Result<(UserNs, CloneFlags, Joins)> {
    let mut create = CloneFlags::empty();
    let mut join = Vec::new();
    let mut user: Option<Option<PathBuf>> = None;
    for ns in linux.namespaces().iter().flatten() {
        let flag = ns_flag(ns.typ())?;
        if create.contains(flag)
            || join.iter().any(|(f, _)| *f == flag)
            || (flag == CloneFlags::CLONE_NEWUSER && user.is_some())
        {
            return Err(Error::invalid(
                STEP,
                format!("linux.namespaces: {} listed twice", ns.typ()),
            ));
        }
        let path = ns.path().clone().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = &path
            && !p.is_absolute()
        {
            return Err(Error::invalid(
                STEP,
                format!(
                    "linux.namespaces: {} path {} is not absolute",
                    ns.typ(),
                    p.display()
                ),
            ));
        }
        match (flag, path) {
            (CloneFlags::CLONE_NEWUSER, p) => user = Some(p),
            (f, Some(p)) => join.push((f, p)),
            (f, None) => create |= f,
        }
    }
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    check_id_ranges("linux.uidMappings", &uid_maps)?;
    check_id_ranges("linux.gidMappings", &gid_maps)?;
    let userns = match user {
        Some(Some(path)) => UserNs::Join(path),
        Some(None) => {
            if uid_maps.is_empty() || gid_maps.is_empty() {
                return Err(Error::invalid(
                    STEP,
                    "a user namespace needs linux.uidMappings and linux.gidMappings",
                ));
            }
            let self_map = caller.euid != 0
                && is_self_map(&uid_maps, caller.euid)
                && is_self_map(&gid_maps, caller.egid);
            UserNs::Create(IdMaps {
                uid: uid_maps,
                gid: gid_maps,
                self_map,
            })
        }
        // Root (real, or root inside a client's user namespace) follows the
        // config: nesting a one-ID namespace would break chown to the
        // client's subordinate IDs (Buildah).
        None if caller.euid == 0 => UserNs::Inherit,
        // ch-run's rule: an unprivileged caller gets a user namespace that
        // maps itself to process.user, so everything else can be created.
        None => {
            let (uid, gid) = (
                vec![one_map(uid, caller.euid)],
                vec![one_map(gid, caller.egid)],
            );
            check_id_ranges("process.user.uid", &uid)?;
            check_id_ranges("process.user.gid", &gid)?;
            UserNs::Create(IdMaps {
                uid,
                gid,
                self_map: true,
            })
        }
    };
    if matches!(userns, UserNs::Create(_))
        && !create.contains(CloneFlags::CLONE_NEWNS)
        && caller.euid != 0
    {
        // Mounting needs a mount namespace owned by our user namespace.
        create |= CloneFlags::CLONE_NEWNS;
    }
    if !create.contains(CloneFlags::CLONE_NEWNS)
        && !join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWNS)
    {
        return Err(Error::invalid(
            STEP,
            "linux.namespaces: a mount namespace is required",
        ));
    }
    Ok((userns, create, join))
}

/// ID ranges must be non-empty and fit in 32 bits on both sides (the
/// kernel refuses them later with EINVAL; found by fuzzing, an overflow
/// here panicked `create`).
fn check_id_ranges(field: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    for m in maps {
        let end = |start: u32| u64::from(start) + u64::from(m.size());
        // The kernel refuses a range whose end wraps in 32 bits (and -1 is
        // no ID): the end may be at most u32::MAX.
        let max = u64::from(u32::MAX);
        if m.size() == 0 || end(m.container_id()) > max || end(m.host_id()) > max {
            return Err(Error::invalid(
                STEP,
                format!(
                    "{field}: range {} {} {} is empty or ends beyond 2^32-1",
                    m.container_id(),
                    m.host_id(),
                    m.size()
                ),
            ));
        }
    }
    Ok(())
}

fn one_map(container: u32, host: u32) -> LinuxIdMapping {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(1u32)
        .build()
        .expect("all fields set")
}

fn is_self_map(maps: &[LinuxIdMapping], id: u32) -> bool {
    matches!(maps, [m] if m.host_id() == id && m.size() == 1)
}

/// Normalise an absolute in-container path lexically; refuse relative
/// paths and any `..` that would climb above `/`.
pub fn container_path(field: &str, p: &Path) -> Result<PathBuf> {
    if !p.is_absolute() {
        return Err(Error::invalid(
            STEP,
            format!("{field} {} is not an absolute path", p.display()),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return Err(Error::invalid(
                    STEP,
                    format!(
                        "{field} {} escapes the container root through \"..\"",
                        p.display()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn container_paths(field: &str, paths: &Option<Vec<String>>) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .flatten()
        .map(|p| container_path(field, Path::new(p)))
        .collect()
}

use MsFlags as F;

/// Mount option names → (set?, flag), as runc's `flags` table has them.
/// `husk features` lists these names, so the table is the one truth.
pub const MOUNT_OPTIONS: &[(&str, bool, MsFlags)] = &[
    ("ro", true, F::MS_RDONLY),
    ("rw", false, F::MS_RDONLY),
    ("nosuid", true, F::MS_NOSUID),
    ("suid", false, F::MS_NOSUID),
    ("nodev", true, F::MS_NODEV),
    ("dev", false, F::MS_NODEV),
    ("noexec", true, F::MS_NOEXEC),
    ("exec", false, F::MS_NOEXEC),
    ("sync", true, F::MS_SYNCHRONOUS),
    ("async", false, F::MS_SYNCHRONOUS),
    ("dirsync", true, F::MS_DIRSYNC),
    ("remount", true, F::MS_REMOUNT),
    ("mand", true, F::MS_MANDLOCK),
    ("nomand", false, F::MS_MANDLOCK),
    ("atime", false, F::MS_NOATIME),
    ("noatime", true, F::MS_NOATIME),
    ("diratime", false, F::MS_NODIRATIME),
    ("nodiratime", true, F::MS_NODIRATIME),
    ("relatime", true, F::MS_RELATIME),
    ("norelatime", false, F::MS_RELATIME),
    ("strictatime", true, F::MS_STRICTATIME),
    ("nostrictatime", false, F::MS_STRICTATIME),
    (
        "nosymfollow",
        true,
        F::from_bits_retain(libc::MS_NOSYMFOLLOW),
    ),
    (
        "symfollow",
        false,
        F::from_bits_retain(libc::MS_NOSYMFOLLOW),
    ),
];

/// Propagation option names → flags (runc's `mountPropagationMapping`).
pub const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = &[
    ("private", F::MS_PRIVATE),
    ("rprivate", F::MS_PRIVATE.union(F::MS_REC)),
    ("shared", F::MS_SHARED),
    ("rshared", F::MS_SHARED.union(F::MS_REC)),
    ("slave", F::MS_SLAVE),
    ("rslave", F::MS_SLAVE.union(F::MS_REC)),
    ("unbindable", F::MS_UNBINDABLE),
    ("runbindable", F::MS_UNBINDABLE.union(F::MS_REC)),
];

/// Options accepted for runc compatibility that change nothing here.
pub const IGNORED_OPTIONS: &[&str] = &["bind", "rbind", "tmpcopyup", "defaults"];

fn option_flag(opt: &str) -> Option<(bool, MsFlags)> {
    MOUNT_OPTIONS
        .iter()
        .find(|(n, _, _)| *n == opt)
        .map(|(_, set, f)| (*set, *f))
}

pub fn propagation_flag(opt: &str) -> Option<MsFlags> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(n, _)| *n == opt)
        .map(|(_, f)| *f)
}

fn plan_mount(m: &Mount, bundle: &Path) -> Result<MountOp> {
    let dest = container_path("mount destination", m.destination())?;
    let fstype = m.typ().clone().unwrap_or_default();
    let mut flags = MsFlags::empty();
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    let mut bind = None;
    for opt in m.options().iter().flatten() {
        match opt.as_str() {
            "bind" => bind = Some(bind.unwrap_or(false)),
            "rbind" => bind = Some(true),
            // Options runc accepts that change nothing for us.
            "tmpcopyup" | "defaults" | "" => {}
            "idmap" | "ridmap" => {
                return Err(Error::invalid(
                    STEP,
                    format!("mount {}: option {opt:?} is not supported", dest.display()),
                ));
            }
            o => {
                if let Some(p) = propagation_flag(o) {
                    propagation.push(p);
                } else if let Some((set, f)) = option_flag(o) {
                    if set { flags |= f } else { flags &= !f }
                } else {
                    data.push(o.to_string());
                }
            }
        }
    }
    if fstype == "bind" || fstype == "rbind" {
        bind = Some(bind.unwrap_or(fstype == "rbind"));
    }
    let kind = match (bind, fstype.as_str()) {
        (Some(recursive), _) => MountKind::Bind { recursive },
        (None, "proc") => MountKind::Proc,
        (None, "sysfs") => MountKind::Sysfs,
        (None, "cgroup" | "cgroup2") => MountKind::Cgroup,
        (None, "mqueue") => MountKind::Mqueue,
        (None, "") => {
            return Err(Error::invalid(
                STEP,
                format!("mount {}: no type and no bind option", dest.display()),
            ));
        }
        (None, _) => MountKind::Other,
    };
    let source = match (&kind, m.source()) {
        (MountKind::Bind { .. }, None) => {
            return Err(Error::invalid(
                STEP,
                format!("mount {}: bind mount without a source", dest.display()),
            ));
        }
        // runc resolves relative bind sources against the bundle.
        (MountKind::Bind { .. }, Some(s)) => Some(bundle.join(s)),
        (_, s) => s.clone(),
    };
    Ok(MountOp {
        dest,
        kind,
        source,
        fstype,
        flags,
        propagation,
        data: data.join(","),
    })
}

fn plan_device(d: &LinuxDevice) -> Result<DeviceOp> {
    use nix::sys::stat::SFlag;
    let path = container_path("linux.devices path", d.path())?;
    if !path.starts_with("/dev") || path == Path::new("/dev") {
        return Err(Error::invalid(
            STEP,
            format!("linux.devices path {} is not under /dev", path.display()),
        ));
    }
    if d.major() < 0 || d.minor() < 0 || d.major() > u32::MAX as i64 || d.minor() > u32::MAX as i64
    {
        return Err(Error::invalid(
            STEP,
            format!(
                "linux.devices {}: device number {}:{} is out of range",
                path.display(),
                d.major(),
                d.minor()
            ),
        ));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::invalid(
                STEP,
                format!(
                    "linux.devices {}: type \"a\" is not a device",
                    path.display()
                ),
            ));
        }
    };
    Ok(DeviceOp {
        path,
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

pub fn plan_process(p: &oci_spec::runtime::Process) -> Result<ProcessPlan> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::invalid(STEP, "process.args is empty"));
    }
    let args = args
        .iter()
        .map(|a| sys::cstring(STEP, "process.args", a))
        .collect::<Result<Vec<_>>>()?;
    let env_strs = p.env().clone().unwrap_or_default();
    let path_var = env_strs
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let env = env_strs
        .iter()
        .map(|e| sys::cstring(STEP, "process.env", e))
        .collect::<Result<Vec<_>>>()?;
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        return Err(Error::invalid(
            STEP,
            format!("process.cwd {} is not an absolute path", cwd.display()),
        ));
    }
    let cwd = container_path("process.cwd", cwd)?;
    let user = p.user();
    Ok(ProcessPlan {
        args,
        env,
        path_var,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits: p.rlimits().clone().unwrap_or_default(),
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        caps: p.capabilities().clone(),
        oom_score_adj: p.oom_score_adj(),
        terminal: p.terminal().unwrap_or(false),
        console_size: p.console_size().map(|b| {
            (
                b.height().min(u16::MAX as u64) as u16,
                b.width().min(u16::MAX as u64) as u16,
            )
        }),
        preserve_fds: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_like_runc() {
        for ok in ["a", "buildah-buildah123", "x.y_z+1-2", &"f".repeat(64)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        assert!(validate_id("/abs/bundle").is_ok(), "bundle-as-ID");
        for bad in ["", ".", "..", "../x", "a/b", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_path_normalises_and_refuses_escape() {
        assert_eq!(
            container_path("d", Path::new("/a/./b/../c")).unwrap(),
            PathBuf::from("/a/c")
        );
        assert!(container_path("d", Path::new("/../etc")).is_err());
        assert!(container_path("d", Path::new("/a/../../etc")).is_err());
        assert!(container_path("d", Path::new("relative")).is_err());
        assert_eq!(
            container_path("d", Path::new("/")).unwrap(),
            PathBuf::from("/")
        );
    }

    #[test]
    fn mount_options_become_flags_and_data() {
        let m: Mount = serde_json::from_str(
            r#"{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k","rslave"]}"#,
        )
        .unwrap();
        let op = plan_mount(&m, Path::new("/b")).unwrap();
        assert_eq!(op.kind, MountKind::Other);
        assert_eq!(op.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(op.data, "mode=755,size=65536k");
        assert_eq!(op.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn bind_source_is_bundle_relative() {
        let m: Mount = serde_json::from_str(
            r#"{"destination":"/x","source":"data","options":["rbind","ro"]}"#,
        )
        .unwrap();
        let op = plan_mount(&m, Path::new("/b")).unwrap();
        assert_eq!(op.kind, MountKind::Bind { recursive: true });
        assert_eq!(op.source, Some(PathBuf::from("/b/data")));
        assert_eq!(op.flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn unprivileged_caller_gets_a_self_map() {
        let linux: oci_spec::runtime::Linux =
            serde_json::from_str(r#"{"namespaces":[{"type":"pid"},{"type":"mount"}]}"#).unwrap();
        let (u, create, _) = plan_namespaces(
            &linux,
            0,
            0,
            Caller {
                euid: 1000,
                egid: 1000,
            },
        )
        .unwrap();
        match u {
            UserNs::Create(m) => {
                assert!(m.self_map);
                assert_eq!(IdMaps::format(&m.uid), "0 1000 1\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(create.contains(CloneFlags::CLONE_NEWPID));
        let (u, _, _) = plan_namespaces(&linux, 0, 0, Caller { euid: 0, egid: 0 }).unwrap();
        assert_eq!(u, UserNs::Inherit);
    }

    #[test]
    fn multi_id_maps_are_not_self_maps() {
        let linux: oci_spec::runtime::Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"user"},{"type":"mount"}],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}],
                "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#,
        )
        .unwrap();
        let (u, _, _) = plan_namespaces(
            &linux,
            0,
            0,
            Caller {
                euid: 1000,
                egid: 1000,
            },
        )
        .unwrap();
        assert!(matches!(
            u,
            UserNs::Create(IdMaps {
                self_map: false,
                ..
            })
        ));
    }
}
