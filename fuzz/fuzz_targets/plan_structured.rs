//! Structured configs for `husk::plan::Plan::build`: the fuzz input chooses
//! mounts, devices, namespaces, ID maps, paths full of `.`/`..`/`//`,
//! mount options, sysctls and process fields (mostly from the vocabulary
//! real configs use, sometimes arbitrary text), so that far more inputs get
//! past JSON syntax than raw bytes do. The config goes through serde into
//! an `oci_spec::runtime::Spec` as `load_config` would; `Plan::build` (for
//! an unprivileged caller and for root) must return `Ok` or `Err`, never
//! panic, and an `Ok` plan must satisfy `husk_fuzz::check_plan`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const NAMES: &[&str] = &[
    "rootfs", "data", "dev", "proc", "sys", "etc", "tmp", "pts", "shm", "mqueue", "fs", "cgroup",
    "run", "var", "missing", "passwd", "null", "a", "b", "self", "fd", "1", "ns", "net",
];

const WORDS: &[&str] = &[
    // mount types
    "bind", "rbind", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "none",
    "overlay", "",
    // mount options and propagation
    "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync",
    "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime",
    "norelatime", "strictatime", "nostrictatime", "nosymfollow", "symfollow", "private",
    "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable", "tmpcopyup",
    "defaults", "idmap", "ridmap", "mode=755", "size=65536k", "newinstance", "ptmxmode=0666",
    "gid=5", "mode=620",
    // sysctl-ish
    "net.ipv4.ip_forward", "kernel.shm_rmid_forced", "fs.mqueue.msg_max", "net..x", "..",
    "a/b", "kernel",
    // hostnames, env, args
    "husk", "PATH=/bin", "PATH=", "TERM=xterm", "sh", "/bin/sh", "true", "a\0b",
];

const NS_TYPES: &[&str] = &[
    "mount", "pid", "network", "ipc", "uts", "user", "cgroup", "time",
];

const DEV_TYPES: &[&str] = &["c", "b", "u", "p", "a"];

#[derive(Arbitrary, Debug)]
enum Seg {
    Dot,
    DotDot,
    Empty,
    Name(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct PathGen {
    absolute: bool,
    segs: Vec<Seg>,
    trailing_slash: bool,
}

impl PathGen {
    fn render(&self) -> String {
        let mut s = String::new();
        for (i, seg) in self.segs.iter().enumerate() {
            if i > 0 || self.absolute {
                s.push('/');
            }
            match seg {
                Seg::Dot => s.push('.'),
                Seg::DotDot => s.push_str(".."),
                Seg::Empty => {}
                Seg::Name(n) => s.push_str(NAMES[*n as usize % NAMES.len()]),
                Seg::Raw(r) => s.push_str(r),
            }
        }
        if self.absolute && self.segs.is_empty() {
            s.push('/');
        }
        if self.trailing_slash {
            s.push('/');
        }
        s
    }
}

#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Raw(String),
}

impl Word {
    fn render(&self) -> String {
        match self {
            Word::Known(n) => WORDS[*n as usize % WORDS.len()].to_string(),
            Word::Raw(r) => r.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum RootGen {
    Rootfs,
    Missing,
    Empty,
    Path(PathGen),
}

#[derive(Arbitrary, Debug)]
struct MountGen {
    dest: PathGen,
    typ: Option<Word>,
    source: Option<PathGen>,
    options: Option<Vec<Word>>,
}

#[derive(Arbitrary, Debug)]
struct DevGen {
    path: PathGen,
    typ: u8,
    major: i64,
    minor: i64,
    file_mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct IdMapGen {
    container: u32,
    host: u32,
    size: u32,
}

/// Every `Option` is `None` when the input runs out, and `None` stands for
/// a valid choice, so short inputs give configs that pass and longer ones
/// break them one field at a time.
#[derive(Arbitrary, Debug)]
struct Input {
    mounts: Option<Vec<MountGen>>,
    devices: Option<Vec<DevGen>>,
    masked: Option<Vec<PathGen>>,
    readonly: Option<Vec<PathGen>>,
    id: Option<String>,
    root: Option<RootGen>,
    root_readonly: Option<bool>,
    /// 0x5a: leave `process` out.
    drop_process: u8,
    args: Option<Vec<Word>>,
    env: Option<Vec<Word>>,
    cwd: Option<PathGen>,
    uid: u32,
    gid: u32,
    additional_gids: Option<Vec<u32>>,
    umask: Option<u32>,
    terminal: Option<bool>,
    console_size: Option<(u64, u64)>,
    no_new_privileges: Option<bool>,
    oom_score_adj: Option<i32>,
    namespaces: Option<Vec<(u8, Option<PathGen>)>>,
    uid_maps: Option<Vec<IdMapGen>>,
    gid_maps: Option<Vec<IdMapGen>>,
    hostname: Option<Word>,
    domainname: Option<Word>,
    sysctl: Option<Vec<(Word, Word)>>,
    rootfs_propagation: Option<Word>,
}

fn words(v: &Option<Vec<Word>>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => v.iter().map(Word::render).collect(),
    }
}

fn paths(v: &Option<Vec<PathGen>>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => v.iter().map(PathGen::render).collect(),
    }
}

fn maps(v: &Option<Vec<IdMapGen>>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => v
            .iter()
            .map(|m| json!({"containerID": m.container, "hostID": m.host, "size": m.size}))
            .collect(),
    }
}

/// Drop `null` members, as a hand-written config would leave them out.
fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        v => v,
    }
}

fn config(i: &Input) -> Value {
    let root = match &i.root {
        None | Some(RootGen::Rootfs) => "rootfs".to_string(),
        Some(RootGen::Missing) => "missing".to_string(),
        Some(RootGen::Empty) => String::new(),
        Some(RootGen::Path(p)) => p.render(),
    };
    let args = match &i.args {
        None => json!(["sh"]),
        a => words(a),
    };
    let namespaces = match &i.namespaces {
        None => Some(vec![json!({"type": "mount"})]),
        Some(v) => Some(
            v.iter()
                .map(|(t, p)| {
                    json!({
                        "type": NS_TYPES[*t as usize % NS_TYPES.len()],
                        "path": p.as_ref().map(PathGen::render),
                    })
                })
                .collect::<Vec<_>>(),
        ),
    };
    let process = (i.drop_process != 0x5a).then(|| {
        json!({
            "terminal": i.terminal,
            "consoleSize": i.console_size.map(|(h, w)| json!({"height": h, "width": w})),
            "user": {
                "uid": i.uid,
                "gid": i.gid,
                "umask": i.umask,
                "additionalGids": i.additional_gids,
            },
            "args": args,
            "env": words(&i.env),
            "cwd": i.cwd.as_ref().map_or("/".to_string(), PathGen::render),
            "noNewPrivileges": i.no_new_privileges,
            "oomScoreAdj": i.oom_score_adj,
        })
    });
    let mounts = i.mounts.as_ref().map(|v| {
        v.iter()
            .map(|m| {
                json!({
                    "destination": m.dest.render(),
                    "type": m.typ.as_ref().map(Word::render),
                    "source": m.source.as_ref().map(PathGen::render),
                    "options": words(&m.options),
                })
            })
            .collect::<Vec<_>>()
    });
    let devices = i.devices.as_ref().map(|v| {
        v.iter()
            .map(|d| {
                json!({
                    "path": d.path.render(),
                    "type": DEV_TYPES[d.typ as usize % DEV_TYPES.len()],
                    "major": d.major,
                    "minor": d.minor,
                    "fileMode": d.file_mode,
                    "uid": d.uid,
                    "gid": d.gid,
                })
            })
            .collect::<Vec<_>>()
    });
    let sysctl = i.sysctl.as_ref().map(|v| {
        v.iter()
            .map(|(k, v)| (k.render(), Value::String(v.render())))
            .collect::<serde_json::Map<_, _>>()
    });
    prune(json!({
        "ociVersion": "1.2.0",
        "root": {"path": root, "readonly": i.root_readonly},
        "process": process,
        "hostname": i.hostname.as_ref().map(Word::render),
        "domainname": i.domainname.as_ref().map(Word::render),
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "uidMappings": maps(&i.uid_maps),
            "gidMappings": maps(&i.gid_maps),
            "devices": devices,
            "maskedPaths": paths(&i.masked),
            "readonlyPaths": paths(&i.readonly),
            "sysctl": sysctl,
            "rootfsPropagation": i.rootfs_propagation.as_ref().map(Word::render),
        },
    }))
}

fuzz_target!(|input: Input| {
    let value = config(&input);
    let Ok(spec) = serde_json::from_value::<oci_spec::runtime::Spec>(value) else {
        return;
    };
    let id = input.id.as_deref().unwrap_or("fuzz");
    for caller in husk_fuzz::CALLERS {
        match husk::plan::Plan::build(id, husk_fuzz::bundle(), spec.clone(), caller) {
            Ok(plan) => husk_fuzz::check_plan(&plan, caller),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
