//! `husk::plan::validate_id`: an accepted ID is either an absolute path
//! without NUL (the stateless extension: the bundle is the ID, and no index
//! entry is made for it) or runc's `^[\w+\-.]+$` (ASCII word characters),
//! not `.` or `..`, at most 1024 bytes, which names exactly one file
//! directly inside the state root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(id) = std::str::from_utf8(data) else {
        return;
    };
    let ok = husk::plan::validate_id(id).is_ok();
    let path_id = id.starts_with('/');
    let want = if path_id {
        !id.contains('\0')
    } else {
        !id.is_empty()
            && id != "."
            && id != ".."
            && id.len() <= 1024
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"_+-.".contains(&c))
    };
    assert_eq!(ok, want, "validate_id({id:?})");
    assert_eq!(husk::record::is_path_id(id), path_id, "{id:?}");
    if ok && path_id {
        // The bundle is the ID: records live in it under fixed names, and
        // nothing is written in the state root.
        let bundle = Path::new(id);
        let paths = husk::record::Paths::new(Path::new("/run/husk"), id, bundle);
        assert!(paths.index.is_none(), "path ID {id:?} got an index entry");
        assert_eq!(paths.record, bundle.join(".husk.json"));
        assert_eq!(paths.fifo, bundle.join(".husk.fifo"));
    } else if ok {
        let comps: Vec<_> = Path::new(id).components().collect();
        assert!(
            matches!(comps[..], [Component::Normal(n)] if n == id),
            "ID {id:?} is path-like: {comps:?}"
        );
        let root = Path::new("/run/husk");
        let paths = husk::record::Paths::new(root, id, Path::new("/bundle"));
        assert_eq!(paths.index.as_deref().and_then(Path::parent), Some(root));
        assert_eq!(paths.record.parent(), Some(Path::new("/bundle")));
        assert_eq!(paths.fifo.parent(), Some(Path::new("/bundle")));
    }
});
