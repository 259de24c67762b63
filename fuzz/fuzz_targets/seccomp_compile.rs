//! `linux.seccomp` as JSON → `oci_spec::runtime::LinuxSeccomp` →
//! `husk::seccomp::compile`, which builds (but does not load) the libseccomp
//! filter from Podman/Docker-style profiles. It must refuse bad profiles
//! with an `Err`, never panic (or crash inside libseccomp).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    match husk::seccomp::compile(&profile) {
        Ok(ctx) => drop(ctx),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
