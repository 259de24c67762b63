//! Records, not a database (DESIGN.md, "The model"): one small JSON record
//! per container in its bundle, and an ID → bundle symlink in the state
//! root that is only an index. Status is computed from kernel facts, never
//! stored; the namespace scan finds a container's processes without
//! cgroups.

use crate::error::{Error, Result};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What `create` leaves in the bundle. Everything else is read from the
/// kernel when asked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    /// The container process (host PID).
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: catches a recycled PID.
    pub start_time: u64,
    /// Inode of the container's mount namespace.
    pub mnt_ns: u64,
    /// Its never-reused 64-bit ID (NS_GET_MNTNS_ID): inode numbers are
    /// recycled once a namespace is freed, so a stopped container's inode
    /// may name a newer container's namespace. Confirms scan matches.
    #[serde(default)]
    pub mnt_ns_id: Option<u64>,
    /// Inode of its PID namespace, when it has one of its own.
    pub pid_ns: Option<u64>,
    /// RFC 3339 creation time.
    pub created: String,
    /// UID that created it (the `list` OWNER column).
    pub owner: u32,
    /// From config.json as it was at `create` (runc keeps its copy too),
    /// so `state`, `start` and `delete` never parse the config again.
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub rootfs: PathBuf,
    #[serde(default)]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default)]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// Cgroup directories made for `linux.resources` (root only).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// When the container process was made, in PID-allocation terms: lets
    /// the scan look only at PIDs handed out since (see `scan::window`).
    #[serde(default)]
    pub birth: Option<crate::scan::Birth>,
}

/// The spec's statuses, computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// Where a container's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub bundle: PathBuf,
    pub record: PathBuf,
    pub fifo: PathBuf,
    /// The index symlink, for IDs that are not bundle paths.
    pub index: Option<PathBuf>,
}

/// Whether the ID is the bundle itself (the stateless extension).
pub fn is_path_id(id: &str) -> bool {
    id.starts_with('/')
}

fn file_stem(id: &str) -> String {
    if is_path_id(id) {
        ".husk".to_string()
    } else {
        format!(".husk-{id}")
    }
}

impl Paths {
    pub fn new(root: &Path, id: &str, bundle: &Path) -> Paths {
        let stem = file_stem(id);
        Paths {
            bundle: bundle.to_path_buf(),
            record: bundle.join(format!("{stem}.json")),
            fifo: bundle.join(format!("{stem}.fifo")),
            index: (!is_path_id(id)).then(|| root.join(id)),
        }
    }
}

/// The state root: `--root`, else `$XDG_RUNTIME_DIR/husk` for a user (also
/// for "root" inside a client's user namespace, which cannot write /run),
/// else `/run/husk`.
pub fn state_root(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let real_root = nix::unistd::geteuid().is_root() && in_initial_userns();
    match xdg {
        Some(x) if !real_root => PathBuf::from(x).join("husk"),
        _ if real_root => PathBuf::from("/run/husk"),
        _ => std::env::temp_dir().join(format!("husk-{}", nix::unistd::geteuid())),
    }
}

fn in_initial_userns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(true)
}

/// Find a container: `--bundle` wins, then an absolute ID (the bundle
/// itself), then the index symlink.
pub fn locate(root: &Path, id: &str, bundle: Option<&Path>) -> Result<(Paths, Record)> {
    let missing = || {
        Error::sys(
            "locate",
            format!("container {id:?} does not exist"),
            Errno::ENOENT,
        )
    };
    let bundle = match bundle {
        Some(b) => b.to_path_buf(),
        None if is_path_id(id) => PathBuf::from(id),
        None => {
            crate::plan::validate_id(id)?;
            std::fs::read_link(root.join(id)).map_err(|_| missing())?
        }
    };
    let mut paths = Paths::new(root, id, &bundle);
    if is_path_id(id) && !paths.record.exists() {
        // An absolute bundle path names whatever container lives there.
        if let Some(only) = single_record(&bundle) {
            let id = only.id.clone();
            paths = Paths::new(root, &id, &bundle);
        }
    }
    let rec = read(&paths.record).map_err(|e| match e.errno() {
        Some(Errno::ENOENT) => missing(),
        _ => e,
    })?;
    Ok((paths, rec))
}

fn single_record(bundle: &Path) -> Option<Record> {
    let mut found = std::fs::read_dir(bundle)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(".husk-") && n.ends_with(".json")
        });
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    read(&first.path()).ok()
}

/// Read a record without following a symlink at its place.
pub fn read(path: &Path) -> Result<Record> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("record", path.display().to_string(), &e))?;
    // A record someone else wrote could point us at their choice of PID.
    let owner = f
        .metadata()
        .map_err(|e| Error::io("record", path.display().to_string(), &e))?
        .uid();
    // Root too: a user could plant a record naming root's processes.
    let me = nix::unistd::geteuid().as_raw();
    if owner != me {
        return Err(Error::sys(
            "record",
            format!(
                "{} is owned by UID {owner}, not by the caller (UID {me})",
                path.display()
            ),
            Errno::EPERM,
        ));
    }
    let mut buf = Vec::new();
    f.by_ref()
        .take(1 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("record", path.display().to_string(), &e))?;
    serde_json::from_slice(&buf)
        .map_err(|e| Error::invalid("record", format!("{}: {e}", path.display())))
}

/// Refuse to keep records where another user could replace them: a bundle
/// (or state root) writable by others.
pub fn check_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io("record", dir.display().to_string(), &e))?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(Error::sys(
            "record",
            format!(
                "{} is writable by other users (mode {:o}): refusing to keep container records there",
                dir.display(),
                mode & 0o7777
            ),
            Errno::EPERM,
        ));
    }
    Ok(())
}

/// Write a record atomically (temp file + rename), never through a symlink.
pub fn write(path: &Path, rec: &Record) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec(rec)
        .map_err(|e| Error::invalid("record", format!("{}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    let err = |e: &std::io::Error| Error::io("record", tmp.display().to_string(), e);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| err(&e))?;
    if let Err(e) = f.write_all(&bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("record", path.display().to_string(), &e))
}

/// Fields of /proc/PID/stat after the command name: (state, start time).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// (state, start time) from the text of a /proc/PID/stat.
pub fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after "pid (comm)".
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether the recorded process is still the same, live process (a zombie
/// has exited: its parent just has not reaped it yet).
pub fn alive(rec: &Record) -> bool {
    matches!(proc_stat(rec.pid), Some((state, start)) if start == rec.start_time && state != 'Z' && state != 'X')
}

/// Status from kernel facts: FIFO present and the parked PID alive →
/// created; alive → running; otherwise stopped (until `delete`).
pub fn status(paths: &Paths, rec: &Record) -> Status {
    if !alive(rec) {
        Status::Stopped
    } else if paths.fifo.exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// Inode of /proc/PID/ns/KIND.
pub fn ns_inode(pid: i32, kind: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// The current time as RFC 3339 (UTC).
pub fn now() -> String {
    crate::log::now_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses_and_is_alive() {
        let me = std::process::id() as i32;
        let (state, start) = proc_stat(me).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        let rec = Record {
            id: "x".into(),
            bundle: "/b".into(),
            pid: me,
            start_time: start,
            mnt_ns: ns_inode(me, "mnt").unwrap(),
            mnt_ns_id: None,
            pid_ns: None,
            created: now(),
            owner: 0,
            annotations: Default::default(),
            rootfs: PathBuf::new(),
            poststart: vec![],
            poststop: vec![],
            cgroups: vec![],
            birth: None,
        };
        assert!(alive(&rec));
        assert!(
            !alive(&Record {
                start_time: start + 1,
                ..rec.clone()
            }),
            "a recycled PID must not count"
        );
    }

    #[test]
    fn path_ids_use_fixed_names() {
        let p = Paths::new(Path::new("/r"), "/b/x", Path::new("/b/x"));
        assert_eq!(p.record, PathBuf::from("/b/x/.husk.json"));
        assert!(p.index.is_none());
        let p = Paths::new(Path::new("/r"), "c1", Path::new("/b"));
        assert_eq!(p.record, PathBuf::from("/b/.husk-c1.json"));
        assert_eq!(p.index, Some(PathBuf::from("/r/c1")));
    }
}
