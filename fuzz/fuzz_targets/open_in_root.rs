//! `husk::sys::open_in_root` and `open_beneath`, the resolvers every
//! in-rootfs path goes through (mount targets, masked paths, cwd, devices).
//! A hostile root filesystem is laid out once per process: absolute and
//! relative symlinks, links that climb out with `..`, loops, chains, a
//! sibling `outside/` directory with a secret; each run may also point two
//! symlinks (`/x` and `/a/b/y`) at a fuzzed target. Whatever the path and
//! the links, an opened descriptor must refer to something inside the root.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nix::fcntl::OFlag;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Tree {
    root: PathBuf,
    root_fd: OwnedFd,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("husk-fuzz-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        for d in ["outside/deeper", "root/a/b/c", "root/etc", "root/run", "root/var", "root/dev"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("outside/secret"), "host").unwrap();
        std::fs::write(root.join("file"), "in root").unwrap();
        let links: &[(&str, &str)] = &[
            ("abs_etc", "/etc"),
            ("abs_root", "/"),
            ("abs_outside", "/../outside"),
            ("up1", ".."),
            ("up3", "../../.."),
            ("a/b/up2", "../.."),
            ("a/b/up3", "../../.."),
            ("a/out", "../../outside"),
            ("a/b/c/out_secret", "../../../../outside/secret"),
            ("loop", "loop"),
            ("chain1", "chain2"),
            ("chain2", "a/b"),
            ("proc_self", "/proc/self"),
            ("var/run", "/run"),
            ("dev/ptmx", "pts/ptmx"),
            ("x", "a"),
            ("a/b/y", "c"),
        ];
        for (l, t) in links {
            std::os::unix::fs::symlink(t, root.join(l)).unwrap();
        }
        let root = std::fs::canonicalize(root).unwrap();
        let root_fd = nix::fcntl::open(
            &root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        Tree { root, root_fd }
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    x_target: Option<Vec<u8>>,
    y_target: Option<Vec<u8>>,
    flags: u8,
    path: Vec<u8>,
}

fn relink(link: &Path, target: &Option<Vec<u8>>, default: &str) {
    let _ = std::fs::remove_file(link);
    let t = match target {
        Some(t) if !t.is_empty() && !t.contains(&0) => OsStr::from_bytes(t),
        _ => OsStr::new(default),
    };
    std::os::unix::fs::symlink(t, link).unwrap();
}

fn check(fd: &OwnedFd, t: &Tree, what: &str, input: &Input) {
    let real = std::fs::read_link(husk::sys::fd_path(&fd.as_raw_fd())).unwrap();
    assert!(
        real.starts_with(&t.root),
        "{what} escaped the root: {:?} opened {real:?} (x -> {:?}, a/b/y -> {:?})",
        OsStr::from_bytes(&input.path),
        input.x_target.as_deref().map(OsStr::from_bytes),
        input.y_target.as_deref().map(OsStr::from_bytes),
    );
}

fuzz_target!(|input: Input| {
    let t = tree();
    relink(&t.root.join("x"), &input.x_target, "a");
    relink(&t.root.join("a/b/y"), &input.y_target, "c");
    if input.path.contains(&0) {
        return;
    }
    let path = Path::new(OsStr::from_bytes(&input.path));
    let flags = match input.flags % 4 {
        0 => OFlag::O_PATH,
        1 => OFlag::O_PATH | OFlag::O_NOFOLLOW,
        2 => OFlag::O_PATH | OFlag::O_DIRECTORY,
        _ => OFlag::O_RDONLY | OFlag::O_NONBLOCK,
    };
    if let Ok(fd) = husk::sys::open_in_root(&t.root_fd, path, flags) {
        check(&fd, t, "open_in_root", &input);
    }
    if let Ok(fd) = husk::sys::open_beneath(&t.root_fd, path, flags) {
        check(&fd, t, "open_beneath", &input);
    }
});
