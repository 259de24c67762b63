//! Seccomp: turn the config's `linux.seccomp` into a libseccomp filter.
//!
//! Compiling and loading are separate on purpose: the filter is compiled
//! while the container is still being set up (so a bad profile fails early,
//! with every syscall still available to report it), and loaded as the very
//! last step before `execve`, so that the filter never applies to husk's own
//! setup syscalls.
//!
//! The translation follows runc's (`libcontainer/seccomp`), because the
//! profiles husk is fed (Podman's, Buildah's, Docker's) are written and tested
//! against runc.

use crate::error::{Error, Result};
use libseccomp::error::SeccompError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

/// A syscall takes at most six arguments; an `args` index past that can
/// never match.
const MAX_SYSCALL_ARGS: usize = 6;

/// Above this many rules, libseccomp's binary-tree layout makes the filter
/// faster to run than its default linear one (runc uses the same threshold).
const BINARY_TREE_THRESHOLD: usize = 8;

/// Build (but don't load) the filter described by `s`.
pub fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(s.default_action(), s.default_errno_ret(), "defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib_err("create filter", &e))?;
    // husk sets no_new_privs itself when `process.noNewPrivileges` asks for
    // it. Left on, libseccomp would set it on every load, which would turn
    // setuid binaries off in containers whose config wants them.
    ctx.set_ctl_nnp(false)
        .map_err(|e| lib_err("unset no_new_privs attribute", &e))?;
    // Without this, libseccomp reports any kernel refusal at load time as
    // ECANCELED; we want the real errno (e.g. EACCES without CAP_SYS_ADMIN).
    ctx.set_api_sysrawrc(true)
        .map_err(|e| lib_err("set raw error codes attribute", &e))?;

    for &arch in s.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch))
            .map_err(|e| lib_err(format!("add architecture {arch}"), &e))?;
    }
    for &flag in s.flags().iter().flatten() {
        set_flag(&mut ctx, flag)?;
    }

    let syscalls = s.syscalls().as_deref().unwrap_or_default();
    if syscalls.len() > BINARY_TREE_THRESHOLD {
        // Only a speed-up, and libseccomp < 2.5 doesn't know the attribute:
        // a filter without it is still correct.
        let _ = ctx.set_ctl_optimize(2);
    }
    for rule in syscalls {
        add_rule(&mut ctx, rule, default)?;
    }
    Ok(ctx)
}

/// Load a compiled filter into the kernel for the calling thread.
///
/// The kernel accepts it only if no_new_privs is already set or the caller
/// has CAP_SYS_ADMIN in its user namespace, so call this after
/// `prctl(PR_SET_NO_NEW_PRIVS)` or before dropping capabilities.
pub fn load(ctx: &ScmpFilterContext) -> Result<()> {
    ctx.load().map_err(|e| lib_err("load filter", &e))
}

/// Add the rules of one `syscalls` entry: one rule per name, or several per
/// name when its conditions can't be expressed as a single rule.
fn add_rule(ctx: &mut ScmpFilterContext, rule: &LinuxSyscall, default: ScmpAction) -> Result<()> {
    let names = rule.names();
    // Allow lists name hundreds of syscalls in one entry: quote the first.
    let subject = match names.as_slice() {
        [one] => format!("syscall {one}"),
        [first, rest @ ..] => format!("syscall {first} (and {} more)", rest.len()),
        [] => return Ok(()),
    };
    let act = action(rule.action(), rule.errno_ret(), &subject)?;
    // libseccomp refuses a rule whose action is the default one (EACCES);
    // such a rule changes nothing, so drop it as runc does.
    if act == default {
        return Ok(());
    }
    let args = rule.args().as_deref().unwrap_or_default();
    let conds = args
        .iter()
        .map(|arg| condition(arg, &subject))
        .collect::<Result<Vec<_>>>()?;
    // The comparisons of one rule are ANDed, and libseccomp allows only one
    // per argument index. When an index repeats, runc adds one rule per
    // comparison instead (ORing them), which is what such profiles expect.
    let index_repeats = args
        .iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index() == a.index()));

    for name in names {
        // Profiles list syscalls newer than the installed libseccomp, which
        // has no number for them. Skip them as runc does (they get the
        // default action) instead of refusing the whole profile.
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            continue;
        };
        let mut add = |conds: &[ScmpArgCompare]| {
            ctx.add_rule_conditional(act, nr, conds)
                .map(drop)
                .map_err(|e| lib_err(format!("add rule for syscall {name}"), &e))
        };
        if index_repeats {
            conds
                .iter()
                .try_for_each(|c| add(std::slice::from_ref(c)))?;
        } else {
            add(&conds)?;
        }
    }
    Ok(())
}

/// Map an OCI action (and its optional errno) to libseccomp's. `subject`
/// names where the action came from, for error messages.
fn action(a: LinuxSeccompAction, errno_ret: Option<u32>, subject: &str) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    // The spec requires refusing an errnoRet on an action that can't carry one.
    if errno_ret.is_some() && !matches!(a, A::ScmpActErrno | A::ScmpActTrace) {
        return Err(Error::invalid(
            "seccomp",
            format!("{subject}: action {a} takes no errnoRet"),
        ));
    }
    // The kernel keeps 16 bits of return data; larger values would be
    // silently truncated into a different errno.
    let ret = match errno_ret {
        None => libc::EPERM as u16,
        Some(n) => u16::try_from(n).map_err(|_| {
            Error::invalid(
                "seccomp",
                format!("{subject}: errnoRet {n} is out of range"),
            )
        })?,
    };
    Ok(match a {
        // SCMP_ACT_KILL is the historical name of KILL_THREAD.
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        // Without errnoRet, runc returns EPERM for both; profiles rely on it.
        A::ScmpActErrno => ScmpAction::Errno(ret.into()),
        A::ScmpActTrace => ScmpAction::Trace(ret),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        // NOTIFY hands the syscall to an agent over `listenerPath`; husk has
        // no process left to pass the notification fd to one.
        A::ScmpActNotify => {
            return Err(Error::invalid(
                "seccomp",
                format!("{subject}: action {a} needs a seccomp agent; listenerPath not supported"),
            ));
        }
    })
}

/// Map one `args` entry to a libseccomp comparison.
fn condition(arg: &LinuxSeccompArg, subject: &str) -> Result<ScmpArgCompare> {
    use LinuxSeccompOperator as O;
    let index = arg.index();
    if index >= MAX_SYSCALL_ARGS {
        return Err(Error::invalid(
            "seccomp",
            format!(
                "{subject}: argument index {index} is out of range (a syscall has {MAX_SYSCALL_ARGS})"
            ),
        ));
    }
    let value = arg.value();
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        O::ScmpCmpLt => (ScmpCompareOp::Less, value),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // OCI puts the mask in `value` and the expected result of the
        // masking in `valueTwo`.
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(value),
            arg.value_two().unwrap_or_default(),
        ),
    };
    // Lossless: index < MAX_SYSCALL_ARGS.
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Apply one `SECCOMP_FILTER_FLAG_*` as the libseccomp attribute behind it.
fn set_flag(ctx: &mut ScmpFilterContext, flag: LinuxSeccompFilterFlag) -> Result<()> {
    use LinuxSeccompFilterFlag as F;
    let set = match flag {
        F::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        F::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        F::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        // Only changes how a notify listener waits; NOTIFY is refused above,
        // and setting it would need libseccomp >= 2.6 for nothing.
        F::SeccompFilterFlagWaitKillableRecv => return Ok(()),
    };
    set.map(drop)
        .map_err(|e| lib_err(format!("set flag {flag}"), &e))
}

/// Turn a libseccomp error into ours, keeping the errno when there is one.
fn lib_err(what: impl Into<String>, e: &SeccompError) -> Error {
    match e.sysrawrc() {
        // libseccomp reports errors as negative errnos.
        Some(rc) => Error::sys("seccomp", what, Errno::from_raw(-rc)),
        None => Error::invalid("seccomp", format!("{}: {e}", what.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("test profile parses")
    }

    #[test]
    fn actions_map_like_runc() {
        use LinuxSeccompAction as A;
        let act = |a, ret| action(a, ret, "test");
        assert_eq!(act(A::ScmpActKill, None), Ok(ScmpAction::KillThread));
        assert_eq!(act(A::ScmpActKillThread, None), Ok(ScmpAction::KillThread));
        assert_eq!(
            act(A::ScmpActKillProcess, None),
            Ok(ScmpAction::KillProcess)
        );
        assert_eq!(act(A::ScmpActTrap, None), Ok(ScmpAction::Trap));
        assert_eq!(
            act(A::ScmpActErrno, None),
            Ok(ScmpAction::Errno(libc::EPERM))
        );
        assert_eq!(act(A::ScmpActErrno, Some(38)), Ok(ScmpAction::Errno(38)));
        assert_eq!(
            act(A::ScmpActTrace, None),
            Ok(ScmpAction::Trace(libc::EPERM as u16))
        );
        assert_eq!(act(A::ScmpActLog, None), Ok(ScmpAction::Log));
        assert_eq!(act(A::ScmpActAllow, None), Ok(ScmpAction::Allow));
    }

    #[test]
    fn bad_actions_are_refused() {
        use LinuxSeccompAction as A;
        let err = action(A::ScmpActNotify, None, "syscall ioctl").unwrap_err();
        assert!(err.to_string().contains("listenerPath"), "{err}");
        assert!(err.to_string().contains("syscall ioctl"), "{err}");
        assert!(action(A::ScmpActAllow, Some(1), "x").is_err());
        assert!(action(A::ScmpActErrno, Some(70_000), "x").is_err());
    }

    #[test]
    fn ops_map_to_libseccomp() {
        let arg = |op: &str, value: u64, two: u64| -> LinuxSeccompArg {
            serde_json::from_str(&format!(
                r#"{{"index": 1, "value": {value}, "valueTwo": {two}, "op": "{op}"}}"#
            ))
            .unwrap()
        };
        let cmp = |a: &LinuxSeccompArg| condition(a, "test").unwrap();
        use ScmpCompareOp as C;
        for (name, op) in [
            ("SCMP_CMP_NE", C::NotEqual),
            ("SCMP_CMP_LT", C::Less),
            ("SCMP_CMP_LE", C::LessOrEqual),
            ("SCMP_CMP_EQ", C::Equal),
            ("SCMP_CMP_GE", C::GreaterEqual),
            ("SCMP_CMP_GT", C::Greater),
        ] {
            assert_eq!(
                cmp(&arg(name, 7, 9)),
                ScmpArgCompare::new(1, op, 7),
                "{name}"
            );
        }
        assert_eq!(
            cmp(&arg("SCMP_CMP_MASKED_EQ", 0xff, 0x10)),
            ScmpArgCompare::new(1, C::MaskedEqual(0xff), 0x10)
        );
        let past_end: LinuxSeccompArg =
            serde_json::from_str(r#"{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}"#).unwrap();
        assert!(condition(&past_end, "test").is_err());
    }

    #[test]
    fn arches_map_to_libseccomp() {
        assert_eq!(scmp_arch(Arch::ScmpArchX86_64), ScmpArch::X8664);
        assert_eq!(scmp_arch(Arch::ScmpArchX86), ScmpArch::X86);
        assert_eq!(scmp_arch(Arch::ScmpArchX32), ScmpArch::X32);
        assert_eq!(scmp_arch(Arch::ScmpArchAarch64), ScmpArch::Aarch64);
        assert_eq!(scmp_arch(Arch::ScmpArchPpc64le), ScmpArch::Ppc64Le);
        assert_eq!(scmp_arch(Arch::ScmpArchS390x), ScmpArch::S390X);

        let ctx = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}"#,
        ))
        .unwrap();
        assert!(ctx.is_arch_present(ScmpArch::X86).unwrap());
        assert!(ctx.is_arch_present(ScmpArch::X32).unwrap());
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getcwd", "husk_syscall_from_2099"], "action": "SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
    }

    #[test]
    fn rule_equal_to_default_is_skipped() {
        // libseccomp itself refuses such a rule...
        let mut raw = ScmpFilterContext::new(ScmpAction::Errno(libc::EPERM)).unwrap();
        let getcwd = ScmpSyscall::from_name("getcwd").unwrap();
        assert!(
            raw.add_rule(ScmpAction::Errno(libc::EPERM), getcwd)
                .is_err()
        );
        // ...so compile must drop it (ERRNO without errnoRet means EPERM).
        compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        ))
        .unwrap();
    }

    #[test]
    fn flags_set_attributes() {
        let ctx = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": [
                "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
        ))
        .unwrap();
        assert!(ctx.get_ctl_log().unwrap());
        assert!(ctx.get_ctl_tsync().unwrap());
        assert!(!ctx.get_ctl_nnp().unwrap());
    }

    #[test]
    fn notify_is_refused_by_compile() {
        let err = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err();
        assert_eq!(err.step(), "seccomp");
        assert!(err.to_string().contains("syscall mount"), "{err}");
    }

    /// The shape of Podman's/Docker's default profile: an ERRNO default, an
    /// allow list, argument conditions (including MASKED_EQ and a repeated
    /// index), a syscall newer than libseccomp, and rules naming the default.
    #[test]
    fn podman_like_profile_compiles() {
        compile(&profile(
            r#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 38,
              "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
              "syscalls": [
                {"names": ["accept", "bind", "brk", "close", "execve", "exit_group",
                           "futex", "getcwd", "mmap", "openat", "read", "write",
                           "husk_future_syscall"],
                 "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"},
                          {"index": 2, "value": 0, "op": "SCMP_CMP_GE"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
              ]
            }"#,
        ))
        .unwrap();
    }

    #[test]
    fn loaded_filter_applies_in_child() {
        let ctx = compile(&profile(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        // SAFETY: the child only loads the filter, makes one raw syscall and
        // _exits; it never returns into the test harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = match load(&ctx) {
                    Err(_) => 10,
                    Ok(()) => {
                        let mut buf = [0u8; 256];
                        // The raw syscall, so libc can't fall back to
                        // walking the tree itself.
                        let r =
                            unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
                        match (r, Errno::last()) {
                            (-1, Errno::EPERM) => 0,
                            (-1, _) => 11,
                            _ => 12,
                        }
                    }
                };
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
                // The filter stayed in the child.
                assert!(std::env::current_dir().is_ok());
            }
        }
    }
}
