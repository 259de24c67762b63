//! User namespaces and their ID maps (DESIGN.md, "Privilege").
//!
//! Who may write what: a process may write its own one-line map of its own
//! IDs (with setgroups denied); any other map must be written from the
//! parent namespace, by root directly or through the setuid
//! `newuidmap`/`newgidmap` for the subordinate IDs of /etc/subuid.

use crate::error::{Error, Result};
use crate::plan::{Caller, IdMaps};
use crate::sys;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};
use std::process::Command;

const STEP: &str = "write ID maps";

/// Whether the maps can be written by the process inside the new namespace.
pub fn writable_by_self(maps: &IdMaps, caller: Caller) -> bool {
    maps.self_map && caller.euid != 0
}

/// Write `/proc/<pid>/{setgroups,gid_map,uid_map}` for a process that has
/// just entered a new user namespace. Run from the parent namespace, or by
/// the process itself for a self map.
pub fn write_maps(pid: Option<Pid>, maps: &IdMaps, caller: Caller) -> Result<()> {
    let proc_dir = pid.map_or("/proc/self".to_string(), |p| format!("/proc/{p}"));
    if caller.euid == 0 || maps.self_map {
        if maps.self_map && caller.euid != 0 {
            // The kernel only lets an unprivileged process write gid_map after
            // it gave up setgroups(2) (CVE-2014-8989).
            sys::write_file(STEP, &format!("{proc_dir}/setgroups"), "deny")?;
        }
        sys::write_file(
            STEP,
            &format!("{proc_dir}/gid_map"),
            &IdMaps::format(&maps.gid),
        )?;
        sys::write_file(
            STEP,
            &format!("{proc_dir}/uid_map"),
            &IdMaps::format(&maps.uid),
        )?;
        return Ok(());
    }
    let pid = pid.unwrap_or_else(nix::unistd::getpid);
    // gid first, as runc does: newgidmap needs setgroups still allowed.
    run_id_helper("newgidmap", pid, &maps.gid)?;
    run_id_helper("newuidmap", pid, &maps.uid)
}

fn run_id_helper(tool: &str, pid: Pid, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let line = format!(
        "{tool} {}",
        IdMaps::format(maps).trim_end().replace('\n', " ")
    );
    let out = cmd.output().map_err(|e| {
        let mut err = Error::io(
            STEP,
            format!("{line}: cannot run {tool} (install the uidmap package)"),
            &e,
        );
        if let Error::Sys { what, .. } = &mut err {
            what.push_str(" for multi-ID mappings");
        }
        err
    })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().next().unwrap_or("").trim();
        return Err(Error::invalid(
            STEP,
            format!(
                "{line}: refused ({}): {why} (check /etc/subuid and /etc/subgid)",
                out.status
            ),
        ));
    }
    Ok(())
}

/// Enter a new user namespace from the current process and get its maps
/// written. For maps the process cannot write itself, a short-lived helper
/// forked beforehand (still outside) writes them, then exits.
pub fn unshare_in_process(maps: &IdMaps, caller: Caller) -> Result<()> {
    let unshare = || {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| Error::sys("unshare", "CLONE_NEWUSER", e))
    };
    if writable_by_self(maps, caller) {
        unshare()?;
        write_maps(None, maps, caller)?;
        return become_root(maps);
    }
    let (go_r, go_w) = sys::pipe(STEP)?;
    let (err_r, err_w) = sys::pipe(STEP)?;
    let me = nix::unistd::getpid();
    // SAFETY: husk is single-threaded here.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", "map writer", e))? {
        ForkResult::Child => {
            drop(go_w);
            drop(err_r);
            let mut b = [0u8; 1];
            let res = match nix::unistd::read(&go_r, &mut b) {
                Ok(1) => write_maps(Some(me), maps, caller),
                _ => Err(Error::invalid(STEP, "parent died before unshare")),
            };
            if let Err(e) = res {
                let _ = sys::write_all(&err_w, &e.encode());
                // SAFETY: _exit is always safe; skip atexit and destructors of the parent's state.
                unsafe { libc::_exit(1) };
            }
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => {
            drop(go_r);
            drop(err_w);
            let res = unshare();
            if res.is_ok() {
                let _ = sys::write_all(&go_w, b"1");
            }
            drop(go_w);
            let record = sys::read_to_end(&err_r).unwrap_or_default();
            let _ = nix::sys::wait::waitpid(child, None);
            res?;
            match Error::decode(&record) {
                Some(e) => Err(e),
                None if record.is_empty() => become_root(maps),
                None => Err(Error::invalid(
                    STEP,
                    "map writer sent a malformed error record",
                )),
            }
        }
    }
}

/// Take the namespace's root IDs when they are mapped. Our credentials are
/// still the caller's host IDs; if those are not mapped (real root with a
/// config mapping 0 → 100000), every file we create would fail with
/// EOVERFLOW. Capabilities in the new namespace are kept: they come from
/// creating it, not from the UID.
fn become_root(maps: &IdMaps) -> Result<()> {
    let maps_zero =
        |m: &[oci_spec::runtime::LinuxIdMapping]| m.iter().any(|m| m.container_id() == 0);
    if maps_zero(&maps.gid) {
        let g = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(g, g, g)
            .map_err(|e| Error::sys(STEP, "setresgid 0 in the new user namespace", e))?;
    }
    if maps_zero(&maps.uid) {
        let u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(u, u, u)
            .map_err(|e| Error::sys(STEP, "setresuid 0 in the new user namespace", e))?;
    }
    Ok(())
}
