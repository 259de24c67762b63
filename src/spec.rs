//! `husk spec`: write a starter `config.json`, the same one `runc spec`
//! writes (runc's `libcontainer/specconv/example.go`), so that instructions
//! written for runc work unchanged.

use crate::error::{Error, Result};
use nix::unistd::{getegid, geteuid};
use oci_spec::runtime::{
    LinuxCapabilities, LinuxDeviceCgroup, LinuxIdMappingBuilder, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Mount, Spec,
};
use std::io::Write;
use std::path::Path;

/// The configuration `runc spec` (or `runc spec --rootless`) prints.
///
/// oci-spec's `Spec::default()` already carries runc's mounts, namespaces,
/// rlimits and read-only paths; this adjusts the fields where it differs
/// from runc. The tests pin the result, so a change of oci-spec's defaults
/// can't change `husk spec` unnoticed.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string())
        .set_hostname(Some("husk".to_string()))
        .set_annotations(None);

    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
        // oci-spec's default also fills the inheritable and ambient sets;
        // runc dropped them (CVE-2022-29162) so that a program can't carry
        // capabilities across an execve of an unprivileged binary.
        let mut caps = LinuxCapabilities::default();
        caps.set_inheritable(None).set_ambient(None);
        process.set_capabilities(Some(caps));
    }

    if let Some(linux) = spec.linux_mut() {
        // runc's deny-all device rule (access to no device but the defaults).
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all
            .set_allow(false)
            .set_access(Some("rwm".to_string()));
        let mut resources = LinuxResources::default();
        resources.set_devices(Some(vec![deny_all]));
        linux.set_resources(Some(resources));
        // runc masked the host's TPM after oci-spec copied its list.
        linux
            .masked_paths_mut()
            .get_or_insert_with(Vec::new)
            .push("/sys/devices/virtual/tpm".to_string());
    }

    if rootless {
        to_rootless(&mut spec, geteuid().as_raw(), getegid().as_raw());
    }
    spec
}

/// runc's `ToRootless`, for a caller with effective IDs `uid`/`gid`: what an
/// unprivileged user can set up with a user namespace of their own.
fn to_rootless(spec: &mut Spec, uid: u32, gid: u32) {
    if let Some(linux) = spec.linux_mut() {
        // An unprivileged user can't create a network namespace with a
        // usable network, and husk manages no cgroups for rootless
        // containers, so a cgroup namespace would be of no use either. Any
        // user namespace goes too, so that exactly one is added below.
        let namespaces = linux.namespaces_mut().get_or_insert_with(Vec::new);
        namespaces.retain(|ns| {
            !matches!(
                ns.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::Cgroup | LinuxNamespaceType::User
            )
        });
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.push(user);

        // Only the caller's own IDs can be mapped without newuidmap.
        let map = |host_id: u32| {
            let m = LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(1u32)
                .build()
                // Every field is set and there is no validation to fail.
                .expect("complete ID mapping");
            vec![m]
        };
        linux.set_uid_mappings(Some(map(uid)));
        linux.set_gid_mappings(Some(map(gid)));
        // Cgroup limits need a delegated cgroup, which husk doesn't manage.
        linux.set_resources(None);
    }

    if let Some(mounts) = spec.mounts_mut() {
        // Mounting cgroupfs needs a cgroup namespace (removed above); the
        // host's /sys/fs/cgroup is still reachable through the /sys rbind.
        mounts.retain(|m| m.typ().as_deref() != Some("cgroup"));
        for m in mounts.iter_mut() {
            if m.destination() == Path::new("/sys") {
                // A fresh sysfs can only be mounted by the owner of the
                // network namespace, and rootless keeps the host's.
                *m = sys_rbind();
            } else if let Some(options) = m.options_mut() {
                // IDs other than the caller's aren't mapped, so options like
                // devpts's gid=5 would make the mount fail.
                options.retain(|o| !o.starts_with("uid=") && !o.starts_with("gid="));
            }
        }
    }
}

fn sys_rbind() -> Mount {
    let mut m = Mount::default();
    m.set_destination("/sys".into())
        .set_typ(Some("none".to_string()))
        .set_source(Some("/sys".into()))
        .set_options(Some(
            ["rbind", "nosuid", "noexec", "nodev", "ro"]
                .map(String::from)
                .to_vec(),
        ));
    m
}

/// Write `default_spec(rootless)` to `bundle/config.json`, refusing to
/// replace an existing one (EEXIST), as `runc spec` does.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    let mut json = serde_json::to_vec_pretty(&default_spec(rootless))
        .map_err(|e| Error::invalid("spec", format!("serialize config: {e}")))?;
    json.push(b'\n');
    // create_new: the existence check and the creation are one syscall
    // (O_EXCL), so a config.json appearing meanwhile is never overwritten.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("spec", path.display().to_string(), &e))?;
    file.write_all(&json).map_err(|e| {
        // Don't leave a truncated config.json that would block the retry.
        let _ = std::fs::remove_file(&path);
        Error::io("spec", format!("write {}", path.display()), &e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use oci_spec::runtime::Capability;

    fn namespaces(spec: &Spec) -> Vec<LinuxNamespaceType> {
        let linux = spec.linux().as_ref().unwrap();
        linux
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| ns.typ())
            .collect()
    }

    fn mount<'a>(spec: &'a Spec, dest: &str) -> Option<&'a Mount> {
        spec.mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == Path::new(dest))
    }

    fn options(m: &Mount) -> Vec<&str> {
        m.options().iter().flatten().map(String::as_str).collect()
    }

    /// A scratch directory, removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("husk-spec-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn root_spec_matches_runc() {
        use LinuxNamespaceType as N;
        let spec = default_spec(false);
        assert_eq!(spec.hostname().as_deref(), Some("husk"));
        assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));

        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.args().as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(process.cwd(), Path::new("/"));
        assert_eq!(process.no_new_privileges(), Some(true));
        let env = process.env().as_ref().unwrap();
        assert_eq!(
            env,
            &[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ]
        );
        let caps = process.capabilities().as_ref().unwrap();
        let three = [
            Capability::AuditWrite,
            Capability::Kill,
            Capability::NetBindService,
        ]
        .into();
        assert_eq!(caps.bounding().as_ref(), Some(&three));
        assert_eq!(caps.effective().as_ref(), Some(&three));
        assert_eq!(caps.permitted().as_ref(), Some(&three));
        assert_eq!(caps.inheritable(), &None);
        assert_eq!(caps.ambient(), &None);
        let rlimits = process.rlimits().as_ref().unwrap();
        assert_eq!(rlimits.len(), 1);
        assert_eq!((rlimits[0].hard(), rlimits[0].soft()), (1024, 1024));

        assert_eq!(
            namespaces(&spec),
            [N::Pid, N::Network, N::Ipc, N::Uts, N::Mount, N::Cgroup]
        );
        let dests: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().to_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(
            options(mount(&spec, "/dev").unwrap()),
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
        );
        assert_eq!(
            options(mount(&spec, "/dev/pts").unwrap()),
            [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ]
        );
        assert_eq!(
            options(mount(&spec, "/dev/shm").unwrap()),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        );
        assert_eq!(
            mount(&spec, "/sys").unwrap().typ().as_deref(),
            Some("sysfs")
        );
        assert_eq!(
            mount(&spec, "/sys/fs/cgroup").unwrap().typ().as_deref(),
            Some("cgroup")
        );

        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.masked_paths().as_ref().unwrap(),
            &[
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
                "/sys/devices/virtual/tpm",
            ]
        );
        assert_eq!(
            linux.readonly_paths().as_ref().unwrap(),
            &[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ]
        );
        let devices = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(devices.len(), 1);
        assert!(!devices[0].allow());
        assert_eq!(devices[0].access().as_deref(), Some("rwm"));
        assert_eq!(spec.annotations(), &None);
    }

    #[test]
    fn rootless_spec_maps_caller_and_binds_sys() {
        use LinuxNamespaceType as N;
        let spec = default_spec(true);
        assert_eq!(
            namespaces(&spec),
            [N::Pid, N::Ipc, N::Uts, N::Mount, N::User]
        );
        let linux = spec.linux().as_ref().unwrap();
        let uid_map = &linux.uid_mappings().as_ref().unwrap()[..];
        let gid_map = &linux.gid_mappings().as_ref().unwrap()[..];
        assert_eq!(uid_map.len(), 1);
        assert_eq!(
            (
                uid_map[0].container_id(),
                uid_map[0].host_id(),
                uid_map[0].size()
            ),
            (0, geteuid().as_raw(), 1)
        );
        assert_eq!(gid_map.len(), 1);
        assert_eq!(
            (
                gid_map[0].container_id(),
                gid_map[0].host_id(),
                gid_map[0].size()
            ),
            (0, getegid().as_raw(), 1)
        );
        assert_eq!(linux.resources(), &None);

        let sys = mount(&spec, "/sys").unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert_eq!(sys.source().as_deref(), Some(Path::new("/sys")));
        assert_eq!(options(sys), ["rbind", "nosuid", "noexec", "nodev", "ro"]);
        assert!(mount(&spec, "/sys/fs/cgroup").is_none());
        assert!(!options(mount(&spec, "/dev/pts").unwrap()).contains(&"gid=5"));
    }

    #[test]
    fn rootless_uses_given_ids() {
        let mut spec = default_spec(false);
        to_rootless(&mut spec, 1234, 5678);
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1234);
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 5678);
    }

    #[test]
    fn written_spec_round_trips() {
        let dir = Scratch::new("roundtrip");
        write_spec(&dir.0, true).unwrap();
        let text = std::fs::read_to_string(dir.0.join("config.json")).unwrap();
        assert!(text.contains("\n  \"ociVersion\""), "not pretty-printed");
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, default_spec(true));
    }

    #[test]
    fn write_spec_refuses_to_overwrite() {
        let dir = Scratch::new("exists");
        let path = dir.0.join("config.json");
        std::fs::write(&path, "{}").unwrap();
        let err = write_spec(&dir.0, false).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EEXIST));
        assert_eq!(err.step(), "spec");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }
}
