//! DESIGN.md's privilege rules: who gets which user namespace and ID maps.

use crate::common::*;
use serde_json::json;

const MAPS: &str = "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; \
                    cat /proc/self/setgroups; echo --; id -u";

/// Run MAPS and return its sections: uid_map, gid_map, setgroups, `id -u`.
fn maps(b: &mut Bundle) -> Vec<String> {
    let out = b.sh(MAPS).run();
    squash(out.ok())
        .split("\n--\n")
        .map(|s| s.trim().to_string())
        .collect()
}

/// The harness itself: the user really is unprivileged on the host.
#[test]
fn test_user_has_no_capabilities() {
    let s = Scratch::new(Who::User);
    let status = run_ok(s.command("cat").arg("/proc/self/status"));
    assert_eq!(field(&status, "CapEff"), "0000000000000000");
    assert_eq!(field(&status, "CapPrm"), "0000000000000000");
    let uid = harness().user.uid;
    assert_eq!(field(&status, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
}

/// Unprivileged, no user namespace in the config: husk adds one with a
/// one-line map of the caller to process.user (default 0), setgroups deny.
#[test]
fn unprivileged_without_userns_gets_a_self_map() {
    let u = &harness().user;
    let mut b = Bundle::new(Who::User);
    b.without_namespace("user");
    assert_eq!(
        maps(&mut b),
        [
            format!("0 {} 1", u.uid),
            format!("0 {} 1", u.gid),
            "deny".into(),
            "0".into()
        ]
    );
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    assert_eq!(
        maps(&mut b),
        [
            format!("1000 {} 1", u.uid),
            format!("1000 {} 1", u.gid),
            "deny".into(),
            "1000".into()
        ]
    );
}

/// Root with no user namespace in the config: none is nested.
#[test]
fn root_does_not_nest_a_userns() {
    let mut b = Bundle::new(Who::Root);
    b.without_namespace("user");
    let full = "0 0 4294967295".to_string();
    assert_eq!(
        maps(&mut b),
        [full.clone(), full, "allow".into(), "0".into()]
    );
    let out = b.args(&["readlink", "/proc/self/ns/user"]).run();
    assert_eq!(out.ok().trim(), ns_link("self", "user"));
}

/// Root with a user namespace in the config: its maps, as written.
#[test]
fn root_follows_the_configs_userns() {
    let u = &harness().user;
    let mut b = Bundle::new(Who::Root);
    b.map_subids();
    let (uids, gids) = (
        format!("0 {} {SUBID_COUNT}", u.subuid_start),
        format!("0 {} {SUBID_COUNT}", u.subgid_start),
    );
    assert_eq!(maps(&mut b), [uids, gids, "allow".into(), "0".into()]);
}

/// Unprivileged with multi-ID maps: newuidmap/newgidmap write them.
#[test]
fn unprivileged_multi_id_maps_use_newuidmap() {
    let u = &harness().user;
    let mut b = Bundle::new(Who::User);
    b.map_subids();
    let two_lines = |own: u32, sub: u32| format!("0 {own} 1\n1 {sub} {SUBID_COUNT}");
    assert_eq!(
        maps(&mut b),
        [
            two_lines(u.uid, u.subuid_start),
            two_lines(u.gid, u.subgid_start),
            "allow".into(),
            "0".into()
        ]
    );
}

/// A mapping outside the user's subordinate range: newuidmap refuses and
/// husk says so in one line, leaving nothing running.
#[test]
fn newuidmap_refusal_is_reported() {
    let u = &harness().user;
    let mut b = Bundle::new(Who::User);
    b.map_subids().set(
        "/linux/uidMappings/1",
        json!({"containerID": 1, "hostID": u.subuid_start + SUBID_COUNT, "size": 10}),
    );
    b.sh("echo should-not-run").run().husk_error("newuidmap");
    assert_eq!(b.s.leftover_processes(), Vec::<u32>::new());
}
