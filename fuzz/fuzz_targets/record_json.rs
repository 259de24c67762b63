//! A container record as JSON: `serde_json::from_slice::<Record>` on any
//! bytes never panics, and an accepted record survives serialise →
//! deserialise unchanged (what `record::write` then `record::read` do).
#![no_main]

use husk::record::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rec) = serde_json::from_slice::<Record>(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&rec).expect("a parsed record serialises");
    let back: Record = serde_json::from_slice(&bytes).expect("a written record parses");
    assert_eq!(back, rec);
});
