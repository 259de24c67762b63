//! Typed errors: every failure names the step, the value (path, ID, field)
//! and, for syscalls, the errno — one line, printed once by the binary.
//!
//! Errors that happen inside the container process (after fork/unshare) are
//! carried to the parent as a small fixed record (`Error::encode`/`decode`)
//! rather than as a free-form string, as crun does with its errno-preserving
//! sync pipe.

use nix::errno::Errno;
use std::fmt;

/// Everything husk can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A syscall (or a helper wrapping one) failed.
    Sys {
        step: &'static str,
        what: String,
        errno: Errno,
    },
    /// The input is wrong: config, CLI value, record. Nothing was changed.
    Invalid { step: &'static str, what: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn sys(step: &'static str, what: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            step,
            what: what.into(),
            errno,
        }
    }

    pub fn invalid(step: &'static str, what: impl Into<String>) -> Self {
        Error::Invalid {
            step,
            what: what.into(),
        }
    }

    /// Build from an `std::io::Error`, keeping its errno when it has one.
    pub fn io(step: &'static str, what: impl Into<String>, err: &std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(n) => Error::sys(step, what, Errno::from_raw(n)),
            None => Error::invalid(step, format!("{}: {err}", what.into())),
        }
    }

    pub fn step(&self) -> &'static str {
        match self {
            Error::Sys { step, .. } | Error::Invalid { step, .. } => step,
        }
    }

    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Invalid { .. } => None,
        }
    }

    /// A hint for the errnos users actually hit, as bubblewrap prints them.
    fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Sys {
                step: "unshare",
                errno: Errno::EPERM | Errno::ENOSPC,
                ..
            } => Some(
                "unprivileged user namespaces may be disabled: check sysctl kernel.unprivileged_userns_clone and user.max_user_namespaces",
            ),
            Error::Sys {
                step: "write ID maps",
                errno: Errno::EPERM,
                ..
            } => Some("check /etc/subuid and /etc/subgid for a range owned by this user"),
            _ => None,
        }
    }

    /// Encode as the fixed record the container process sends its parent:
    /// kind (u8: 0 `Invalid`, 1 `Sys`), errno (i32), step (u16 length +
    /// bytes), what (u32 length + bytes). Little-endian. The kind has its
    /// own byte: an errno nix does not know reads back as 0, which must not
    /// turn a syscall error into an "invalid input" one.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, step, what, errno) = match self {
            Error::Sys { step, what, errno } => (1u8, *step, what.as_str(), *errno as i32),
            Error::Invalid { step, what } => (0u8, *step, what.as_str(), 0),
        };
        let mut out = Vec::with_capacity(11 + step.len() + what.len());
        out.push(kind);
        out.extend_from_slice(&errno.to_le_bytes());
        out.extend_from_slice(&(step.len() as u16).to_le_bytes());
        out.extend_from_slice(step.as_bytes());
        out.extend_from_slice(&(what.len() as u32).to_le_bytes());
        out.extend_from_slice(what.as_bytes());
        out
    }

    /// Decode a record written by `encode`. The step name is mapped back to a
    /// static string from the list of known steps (unknown → "container").
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let kind = *buf.first()?;
        let buf = &buf[1..];
        let errno = i32::from_le_bytes(buf.get(0..4)?.try_into().ok()?);
        let slen = u16::from_le_bytes(buf.get(4..6)?.try_into().ok()?) as usize;
        let step = std::str::from_utf8(buf.get(6..6 + slen)?).ok()?;
        let at = 6 + slen;
        let wlen = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
        let what = String::from_utf8_lossy(buf.get(at + 4..at + 4 + wlen)?).into_owned();
        let step = crate::steps::intern(step);
        match kind {
            0 => Some(Error::Invalid { step, what }),
            1 => Some(Error::Sys {
                step,
                what,
                errno: Errno::from_raw(errno),
            }),
            _ => None,
        }
    }
}

/// Values come from config files and argv: control characters (a newline
/// could forge a second error line, a NUL confuse a log reader) are shown
/// escaped, so an error is always one line.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { step, what, errno } => {
                write!(f, "{step}: {}: {}", one_line(what), errno.desc())?;
                write!(f, " ({errno:?})")?;
            }
            Error::Invalid { step, what } => write!(f, "{step}: {}", one_line(what))?,
        }
        if let Some(h) = self.hint() {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let e = Error::sys("mount", "bind /a onto /b", Errno::ENOENT);
        assert_eq!(Error::decode(&e.encode()), Some(e));
        let e = Error::invalid("exec", "no such program \"nope\"");
        assert_eq!(Error::decode(&e.encode()), Some(e));
        // Found by fuzzing: an errno nix does not know stays a Sys error.
        let e = Error::sys("mount", "m", Errno::from_raw(9999));
        assert_eq!(Error::decode(&e.encode()), Some(e));
    }

    #[test]
    fn display_has_step_value_errno() {
        let e = Error::sys("mount", "proc onto /rootfs/proc", Errno::EPERM);
        let s = e.to_string();
        assert!(s.starts_with("mount: proc onto /rootfs/proc: "), "{s}");
        assert!(s.contains("EPERM"), "{s}");
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let e = Error::invalid("mount", "/x\nhusk: forged\0");
        let s = e.to_string();
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(!s.contains('\0'), "{s}");
    }

    #[test]
    fn truncated_record_is_rejected() {
        let e = Error::sys("mount", "x", Errno::EPERM).encode();
        assert_eq!(Error::decode(&e[..e.len() - 1]), None);
    }
}
