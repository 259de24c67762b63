//! `husk features`: the runtime-spec `features` document (features.md),
//! plus annotations advertising the stateless profile
//! (docs/stateless-profile.md) and which of its behaviours husk supports.

use crate::plan::{IGNORED_OPTIONS, MOUNT_OPTIONS, PROPAGATION_OPTIONS};
use serde_json::{Value, json};

/// Seccomp actions `seccomp::compile` accepts (NOTIFY needs a listener,
/// which husk does not run).
pub const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

pub const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Candidate architectures; `features` lists those libseccomp can combine
/// with this machine's native one (it cannot mix endiannesses).
const SECCOMP_ARCHS: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
];

/// The annotation prefix of the stateless profile.
pub const PROFILE: &str = "org.opencontainers.runtime.stateless";

/// The architectures a filter built here can cover, tried for real.
pub fn seccomp_archs() -> Vec<&'static str> {
    SECCOMP_ARCHS
        .iter()
        .copied()
        .filter(|a| {
            let Ok(arch) = serde_json::from_value::<oci_spec::runtime::Arch>(json!(a)) else {
                return false;
            };
            let s = oci_spec::runtime::LinuxSeccompBuilder::default()
                .default_action(oci_spec::runtime::LinuxSeccompAction::ScmpActAllow)
                .architectures(vec![arch])
                .build();
            s.is_ok_and(|s| crate::seccomp::compile(&s).is_ok())
        })
        .collect()
}

pub fn features() -> Value {
    let mut mount_options: Vec<&str> = MOUNT_OPTIONS.iter().map(|(n, _, _)| *n).collect();
    mount_options.extend(PROPAGATION_OPTIONS.iter().map(|(n, _)| *n));
    mount_options.extend(IGNORED_OPTIONS);
    let caps: Vec<String> = {
        let mut c: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        c.sort();
        c
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": seccomp_archs(),
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}},
        },
        "annotations": {
            "io.github.husk.version": env!("CARGO_PKG_VERSION"),
            PROFILE: "v1",
            // Which of the profile's behaviours this runtime has (see
            // docs/stateless-profile.md for their definitions).
            format!("{PROFILE}.no-runtime-process"): "true",
            format!("{PROFILE}.bundle-on-every-verb"): "true",
            format!("{PROFILE}.bundle-path-as-id"): "true",
            format!("{PROFILE}.records-in-bundle"): "true",
            format!("{PROFILE}.status-from-kernel"): "true",
            format!("{PROFILE}.kill-all-by-namespace-scan"): "true",
            format!("{PROFILE}.status-unknown"): "false",
            format!("{PROFILE}.no-op-create"): "false",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seccomp action, operator and arch advertised is one that
    /// `seccomp::compile` actually accepts.
    fn compiles(action: &str, op: &str, arch: &str) {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": [arch],
            "syscalls": [{"names": ["getcwd"], "action": action,
                          "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}],
        });
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(profile).unwrap();
        crate::seccomp::compile(&s).unwrap_or_else(|e| panic!("{action} {op} {arch}: {e}"));
    }

    #[test]
    fn advertised_seccomp_support_compiles() {
        for action in SECCOMP_ACTIONS.iter().filter(|a| **a != "SCMP_ACT_ALLOW") {
            for op in SECCOMP_OPERATORS {
                compiles(action, op, "SCMP_ARCH_X86_64");
            }
        }
        // One arch at a time: libseccomp cannot mix endiannesses in a filter.
        let archs = seccomp_archs();
        assert!(
            archs.contains(&"SCMP_ARCH_X86_64") || archs.contains(&"SCMP_ARCH_AARCH64"),
            "{archs:?}"
        );
        for arch in archs {
            compiles("SCMP_ACT_ERRNO", "SCMP_CMP_EQ", arch);
        }
    }

    #[test]
    fn mount_options_parse() {
        let f = features();
        for o in f["mountOptions"].as_array().unwrap() {
            let m: oci_spec::runtime::Mount = serde_json::from_value(json!({
                "destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": [o]
            }))
            .unwrap();
            assert!(m.options().is_some());
        }
        assert!(f["annotations"][PROFILE].is_string());
    }
}
