//! `husk::plan::container_path`: lexical normalisation of in-container
//! paths. Checked against an independent model on the bytes: the result is
//! absolute, has no `.`/`..`/empty segment, never climbs above `/`, is a
//! fixed point, and `Err` comes back exactly for relative paths and paths
//! whose `..` would climb above `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The expected result: `None` for "refused".
fn model(b: &[u8]) -> Option<Vec<u8>> {
    if b.first() != Some(&b'/') {
        return None;
    }
    let mut stack: Vec<&[u8]> = Vec::new();
    for seg in b.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop()?;
            }
            s => stack.push(s),
        }
    }
    let mut out = Vec::new();
    for s in &stack {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let p = Path::new(OsStr::from_bytes(data));
    let got = husk::plan::container_path("fuzz", p);
    let want = model(data);
    match (&got, &want) {
        (Ok(out), Some(w)) => {
            husk_fuzz::assert_clean_abs("container_path result", out);
            assert_eq!(out.as_os_str().as_bytes(), &w[..], "input {p:?}");
            // Normalising twice changes nothing.
            let again = husk::plan::container_path("fuzz", out).expect("result re-validates");
            assert_eq!(&again, out);
            // Joined below a root, the result stays below that root.
            let root = PathBuf::from("/rootfs");
            let joined = root.join(out.strip_prefix("/").unwrap());
            assert!(joined.starts_with(&root));
        }
        (Err(e), None) => {
            let _ = e.to_string();
        }
        _ => panic!("input {p:?}: husk says {got:?}, model says {want:?}"),
    }
});
