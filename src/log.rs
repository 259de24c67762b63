//! runc's logging habits: `--log FILE` and `--log-format text|json`.
//! Warnings always reach the user (the log, or stderr without one); notes
//! about fallbacks only with `--debug` or a log file.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct Sink {
    pub file: Option<std::path::PathBuf>,
    pub json: bool,
    pub debug: bool,
}

/// The sink with the log file opened once, up front: the container side
/// logs after pivot_root, when the host path no longer resolves. The fd is
/// close-on-exec (std opens with O_CLOEXEC), so the program never gets it.
struct Open {
    sink: Sink,
    file: Option<std::fs::File>,
}

static SINK: OnceLock<Open> = OnceLock::new();

pub fn init(sink: Sink) {
    let file = sink.file.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let _ = SINK.set(Open { sink, file });
}

fn open() -> &'static Open {
    SINK.get_or_init(|| Open {
        sink: Sink::default(),
        file: None,
    })
}

fn sink() -> &'static Sink {
    &open().sink
}

/// Seconds since the epoch as an RFC 3339 UTC time (runc's `time` field),
/// without pulling in a date crate for one line.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn emit(level: &str, msg: &str, to_stderr: bool) {
    let s = sink();
    if s.file.is_some() {
        let line = if s.json {
            serde_json::json!({"level": level, "msg": msg, "time": now_rfc3339()}).to_string()
        } else {
            format!("time=\"{}\" level={level} msg={msg:?}", now_rfc3339())
        };
        if let Some(mut f) = open().file.as_ref() {
            // One write per line: O_APPEND keeps concurrent writers' lines whole.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        return;
    }
    if to_stderr {
        eprintln!("husk: {level}: {msg}");
    }
}

/// Something the user must know (e.g. resources not applied).
pub fn warn(msg: &str) {
    emit("warning", msg, true);
}

/// A fallback or detail, shown with `--debug` or in the log.
pub fn debug(msg: &str) {
    emit("debug", msg, sink().debug);
}

/// A fatal error: to the log file when there is one; the binary prints it
/// on stderr as well.
pub fn error(msg: &str) {
    if sink().file.is_some() {
        emit("error", msg, false);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
