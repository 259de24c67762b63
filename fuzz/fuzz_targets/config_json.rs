//! Raw bytes as `config.json`: `husk::plan::load_config` reads them from a
//! scratch bundle (the real code path, with its size limit and
//! serde_path_to_error), then `Plan::build` validates the spec for an
//! unprivileged caller and for root. Neither may panic; a built plan must
//! satisfy `husk_fuzz::check_plan`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bundle = husk_fuzz::bundle();
    std::fs::write(bundle.join("config.json"), data).expect("write scratch config.json");
    let Ok(spec) = husk::plan::load_config(bundle) else {
        return;
    };
    // The error path formats the field path and serde's message: exercise
    // Display too (it must not panic either).
    husk_fuzz::build_both(&spec);
    for caller in husk_fuzz::CALLERS {
        if let Err(e) = husk::plan::Plan::build("fuzz", bundle, spec.clone(), caller) {
            let _ = e.to_string();
        }
    }
});
