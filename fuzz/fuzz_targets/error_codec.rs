//! `husk::error::Error::{encode, decode}`, the record the container process
//! sends its parent: `decode` never panics on any bytes; whatever it returns
//! encodes and decodes back to itself; and an `Error` built from fuzz input
//! (a step husk knows, any errno, any text) survives `encode` → `decode`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use husk::error::Error;
use libfuzzer_sys::fuzz_target;
use nix::errno::Errno;

fuzz_target!(|data: &[u8]| {
    if let Some(e) = Error::decode(data) {
        let _ = e.to_string();
        assert_eq!(Error::decode(&e.encode()), Some(e.clone()), "from {data:?}");
    }

    let mut u = Unstructured::new(data);
    let Ok((sys, step, errno, what)) = <(bool, u8, i32, String)>::arbitrary(&mut u) else {
        return;
    };
    let steps = husk::steps::ALL;
    let step = steps[step as usize % steps.len()];
    let e = if sys {
        Error::sys(step, what, Errno::from_raw(errno))
    } else {
        Error::invalid(step, what)
    };
    let bytes = e.encode();
    assert_eq!(Error::decode(&bytes), Some(e.clone()), "round trip of {e:?}");
    // A truncated record is refused, never misread.
    for cut in [0, 1, 4, 5, 6, bytes.len().saturating_sub(1)] {
        if cut < bytes.len() {
            assert_eq!(Error::decode(&bytes[..cut]), None, "{e:?} cut at {cut}");
        }
    }
});
