//! The command line, runc's: global flags (anywhere), then a verb. Flags
//! runc accepts that husk does not need are accepted and ignored, so
//! clients that pass them (Buildah, Podman) work unchanged.
//!
//! Parsed with lexopt, a pull parser: every `husk` invocation is on a
//! container's start path, and building clap's description of every verb
//! and flag cost ~0.15 ms a call (measured: 0.06 ms warm, the rest page
//! faults on its code) — as much as a namespace.

use crate::error::{Error, Result};
use lexopt::{Arg, Parser, ValueExt};

/// A flag as typed: "--name" or "-c" (owned, so the parser is free to
/// take its value).
fn flag(arg: &Arg) -> Option<String> {
    match arg {
        Arg::Long(l) => Some(format!("--{l}")),
        Arg::Short(c) => Some(format!("-{c}")),
        Arg::Value(_) => None,
    }
}

fn unexpected(flag: &str) -> lexopt::Error {
    lexopt::Error::UnexpectedOption(flag.to_string())
}
use std::ffi::OsString;
use std::path::PathBuf;

const STEP: &str = "parse arguments";

#[derive(Debug, PartialEq, Eq)]
pub struct Cli {
    /// Root directory for the ID index.
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    pub log: Option<PathBuf>,
    /// "text" or "json".
    pub log_format: String,
    pub debug: bool,
    /// Accepted for runc compatibility; husk manages no cgroups.
    pub systemd_cgroup: bool,
    pub command: Command,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Spec {
        rootless: bool,
        bundle: BundleArg,
    },
    Run(RunArgs),
    Create(RunArgs),
    Start(IdArgs),
    State(IdArgs),
    Kill(KillArgs),
    Delete(DeleteArgs),
    List(ListArgs),
    Ps(PsArgs),
    Exec(ExecArgs),
    Features,
    /// `--help`, `--version`: print this and exit 0.
    Print(String),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct BundleArg {
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunArgs {
    pub bundle: BundleArg,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub detach: bool,
    pub id: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct IdArgs {
    pub bundle: BundleArg,
    pub id: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct KillArgs {
    pub bundle: BundleArg,
    pub all: bool,
    pub id: String,
    pub signal: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeleteArgs {
    pub bundle: BundleArg,
    pub force: bool,
    pub id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ListArgs {
    pub quiet: bool,
    pub format: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PsArgs {
    pub bundle: BundleArg,
    pub format: String,
    pub id: String,
    /// ps(1) options (accepted for runc compatibility; ignored).
    pub ps_args: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecArgs {
    pub bundle: BundleArg,
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub preserve_fds: i32,
    pub id: String,
    pub args: Vec<String>,
}

const USAGE: &str = "husk — a stateless, unprivileged OCI container runtime

Usage: husk [GLOBAL FLAGS] COMMAND [FLAGS] ...

Commands:
  spec      Write a default config.json into the bundle [--rootless]
  run       Create and start a container in the foreground
  create    Create a container: set it up and park it until `start`
  start     Start a created container
  state     Print the state of a container as JSON
  kill      Send a signal to a container's process [--all: all its processes]
  delete    Delete a container [--force: kill its processes first]
  list, ls  List the containers in the state root [--quiet] [--format table|json]
  ps        List a container's processes [--format table|json]
  exec      Run a process in a running container
  features  Print the runtime-spec features JSON

Global flags:
  --root DIR          directory of the ID index (default $XDG_RUNTIME_DIR/husk,
                      /run/husk for root)
  --log FILE          log file (default: stderr)
  --log-format FMT    text or json
  --debug             log fallbacks and details
  --systemd-cgroup    accepted for runc compatibility; husk manages no cgroups
  -h, --help          this text (also after a command)
  -v, --version       the version

Every command that names a container takes --bundle/-b DIR (the stateless
extension: it works without the index), and an absolute bundle path is
accepted as the ID.
  run, create  [-b DIR] [--pid-file F] [--console-socket S] [--preserve-fds N]
               [--detach] [--no-new-keyring] [--no-pivot] ID
  start, state [-b DIR] ID
  kill         [-b DIR] [-a|--all] ID [SIGNAL (default SIGTERM)]
  delete       [-b DIR] [-f|--force] ID
  ps           [-b DIR] [-f table|json] ID [ps options, ignored]
  exec         [-b DIR] [-p PROCESS.json] [-t] [-d] [--pid-file F]
               [--console-socket S] [--cwd DIR] [-e VAR=VALUE]... [-u UID[:GID]]
               [--preserve-fds N] [--no-new-privs] [--process-label L]
               [--apparmor P] [-c CAP]... ID [COMMAND [ARG]...]
";

impl Cli {
    /// Parse the process's arguments; on a usage error print one line and
    /// exit 2.
    pub fn parse() -> Cli {
        match Cli::try_parse_from(std::env::args_os().skip(1)) {
            Ok(cli) => cli,
            Err(e) => {
                eprintln!("husk: {e}");
                std::process::exit(2);
            }
        }
    }

    /// Parse `args` (without the program name).
    pub fn try_parse_from(args: impl IntoIterator<Item = OsString>) -> Result<Cli> {
        let mut p = Parser::from_args(args);
        let mut g = Globals::default();
        // Global flags may come before and after the verb.
        let verb = loop {
            match p.next().map_err(usage)? {
                Some(Arg::Value(v)) => break string(v)?,
                Some(arg) => {
                    let f = flag(&arg).unwrap_or_default();
                    if let Some(out) = g.take(&f, &mut p)? {
                        return Ok(g.finish(Command::Print(out)));
                    }
                }
                None => return Ok(g.finish(Command::Print(USAGE.into()))),
            }
        };
        let command = parse_verb(&verb, &mut p, &mut g);
        // `VERB --help` prints help even when the verb's arguments are
        // incomplete.
        if let Some(text) = g.print.take() {
            return Ok(g.finish(Command::Print(text)));
        }
        Ok(g.finish(command?))
    }
}

/// The verb's own flags and arguments.
fn parse_verb(verb: &str, p: &mut Parser, g: &mut Globals) -> Result<Command> {
    Ok(match verb {
        "spec" => {
            let mut rootless = false;
            let mut bundle = BundleArg::default();
            verb_args(p, g, verb, |arg, p| {
                match arg {
                    "--rootless" => rootless = true,
                    _ => return bundle.take(arg, p),
                }
                Ok(true)
            })?;
            Command::Spec { rootless, bundle }
        }
        "run" | "create" => {
            let mut a = RunArgs::default();
            let mut ids = verb_args(p, g, verb, |arg, p| {
                match arg {
                    "--pid-file" => a.pid_file = Some(p.value()?.into()),
                    "--console-socket" => a.console_socket = Some(p.value()?.into()),
                    "--preserve-fds" => a.preserve_fds = p.value()?.parse()?,
                    "--detach" | "-d" => a.detach = true,
                    // Accepted for runc compatibility.
                    "--no-new-keyring" | "--no-pivot" => {}
                    _ => return a.bundle.take(arg, p),
                }
                Ok(true)
            })?;
            a.id = one_id(verb, &mut ids)?;
            no_more(verb, ids)?;
            if verb == "run" {
                Command::Run(a)
            } else {
                Command::Create(a)
            }
        }
        "start" | "state" => {
            let mut a = IdArgs::default();
            let mut ids = verb_args(p, g, verb, |arg, p| a.bundle.take(arg, p))?;
            a.id = one_id(verb, &mut ids)?;
            no_more(verb, ids)?;
            if verb == "start" {
                Command::Start(a)
            } else {
                Command::State(a)
            }
        }
        "kill" => {
            let mut a = KillArgs::default();
            let mut rest = verb_args(p, g, verb, |arg, p| {
                match arg {
                    "--all" | "-a" => a.all = true,
                    _ => return a.bundle.take(arg, p),
                }
                Ok(true)
            })?;
            a.id = one_id(verb, &mut rest)?;
            a.signal = (!rest.is_empty()).then(|| rest.remove(0));
            no_more(verb, rest)?;
            Command::Kill(a)
        }
        "delete" => {
            let mut a = DeleteArgs::default();
            let mut ids = verb_args(p, g, verb, |arg, p| {
                match arg {
                    "--force" | "-f" => a.force = true,
                    _ => return a.bundle.take(arg, p),
                }
                Ok(true)
            })?;
            a.id = one_id(verb, &mut ids)?;
            no_more(verb, ids)?;
            Command::Delete(a)
        }
        "list" | "ls" => {
            let mut a = ListArgs {
                quiet: false,
                format: "table".into(),
            };
            let rest = verb_args(p, g, verb, |arg, p| {
                match arg {
                    "--quiet" | "-q" => a.quiet = true,
                    "--format" | "-f" => a.format = format(p)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            no_more(verb, rest)?;
            Command::List(a)
        }
        "ps" => {
            let mut a = PsArgs {
                bundle: BundleArg::default(),
                format: "table".into(),
                id: String::new(),
                ps_args: vec![],
            };
            let mut rest = trailing(p, g, verb, 1, |arg, p| {
                match arg {
                    "--format" | "-f" => a.format = format(p)?,
                    _ => return a.bundle.take(arg, p),
                }
                Ok(true)
            })?;
            a.id = one_id(verb, &mut rest)?;
            a.ps_args = rest;
            Command::Ps(a)
        }
        "exec" => {
            let mut a = ExecArgs::default();
            let mut rest = trailing(p, g, verb, 1, |arg, p| {
                match arg {
                    "--process" | "-p" => a.process = Some(p.value()?.into()),
                    "--tty" | "-t" => a.tty = true,
                    "--detach" | "-d" => a.detach = true,
                    "--pid-file" => a.pid_file = Some(p.value()?.into()),
                    "--console-socket" => a.console_socket = Some(p.value()?.into()),
                    "--cwd" => a.cwd = Some(p.value()?.into()),
                    "--env" | "-e" => a.env.push(p.value()?.string()?),
                    "--user" | "-u" => a.user = Some(p.value()?.string()?),
                    "--preserve-fds" => a.preserve_fds = p.value()?.parse()?,
                    // Accepted for runc compatibility.
                    "--no-new-privs" => {}
                    "--process-label" | "--apparmor" | "--cap" | "-c" => {
                        p.value()?;
                    }
                    _ => return a.bundle.take(arg, p),
                }
                Ok(true)
            })?;
            a.id = one_id(verb, &mut rest)?;
            a.args = rest;
            Command::Exec(a)
        }
        "features" => {
            let rest = verb_args(p, g, verb, |_, _| Ok(false))?;
            no_more(verb, rest)?;
            Command::Features
        }
        other => {
            return Err(Error::invalid(
                STEP,
                format!("unknown command {other:?} (see husk --help)"),
            ));
        }
    })
}

/// The global flags, wherever they appear.
#[derive(Default)]
struct Globals {
    root: Option<PathBuf>,
    log: Option<PathBuf>,
    log_format: Option<String>,
    debug: bool,
    systemd_cgroup: bool,
    /// --help or --version seen after the verb: printed once parsing ends.
    print: Option<String>,
}

impl Globals {
    /// Take a global flag. `Some(text)` for --help/--version (print, exit
    /// 0); an error for anything that is not a global flag.
    fn take(&mut self, f: &str, p: &mut Parser) -> Result<Option<String>> {
        match f {
            "--root" => self.root = Some(p.value().map_err(usage)?.into()),
            "--log" => self.log = Some(p.value().map_err(usage)?.into()),
            "--log-format" => {
                let f = string(p.value().map_err(usage)?)?;
                if f != "text" && f != "json" {
                    return Err(Error::invalid(
                        STEP,
                        format!("--log-format {f:?}: expected text or json"),
                    ));
                }
                self.log_format = Some(f);
            }
            "--debug" => self.debug = true,
            "--systemd-cgroup" => self.systemd_cgroup = true,
            "--help" | "-h" => return Ok(Some(USAGE.into())),
            "--version" | "-v" | "-V" => {
                return Ok(Some(format!(
                    "husk version {}\nspec: {}\n",
                    env!("CARGO_PKG_VERSION"),
                    oci_spec::runtime::VERSION
                )));
            }
            other => return Err(usage(unexpected(other))),
        }
        Ok(None)
    }

    fn finish(self, command: Command) -> Cli {
        Cli {
            root: self.root,
            log: self.log,
            log_format: self.log_format.unwrap_or_else(|| "text".into()),
            debug: self.debug,
            systemd_cgroup: self.systemd_cgroup,
            command,
        }
    }
}

impl BundleArg {
    /// Take `--bundle`/`-b`; `false` if `arg` is something else.
    fn take(&mut self, f: &str, p: &mut Parser) -> std::result::Result<bool, lexopt::Error> {
        match f {
            "--bundle" | "-b" => {
                self.bundle = Some(p.value()?.into());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `--bundle` as given, made absolute (lifecycle verbs: optional).
    pub fn given(&self) -> Option<PathBuf> {
        self.bundle
            .as_ref()
            .and_then(|b| std::path::absolute(b).ok())
    }

    /// The bundle as an absolute path: the container process resolves it
    /// after chdir/pivot, and records must not depend on the caller's cwd.
    pub fn resolve(&self) -> std::io::Result<PathBuf> {
        std::path::absolute(self.bundle.clone().unwrap_or_else(|| PathBuf::from(".")))
    }
}

/// A verb's flags (through `take`, which says whether it knew the flag) and
/// global flags, in any order; returns the positional arguments.
fn verb_args(
    p: &mut Parser,
    g: &mut Globals,
    verb: &str,
    take: impl FnMut(&str, &mut Parser) -> std::result::Result<bool, lexopt::Error>,
) -> Result<Vec<String>> {
    trailing(p, g, verb, usize::MAX, take)
}

/// As `verb_args`, but once `before` positionals were seen, everything
/// after them is taken as it is, flags included (`exec ID cmd -x`, `ps ID
/// -ef`): runc stops reading flags at the ID too.
fn trailing(
    p: &mut Parser,
    g: &mut Globals,
    verb: &str,
    before: usize,
    mut take: impl FnMut(&str, &mut Parser) -> std::result::Result<bool, lexopt::Error>,
) -> Result<Vec<String>> {
    let mut out = vec![];
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Arg::Value(v) => {
                out.push(string(v)?);
                if out.len() >= before {
                    for v in p.raw_args().map_err(usage)? {
                        out.push(string(v)?);
                    }
                }
            }
            arg => {
                let f = flag(&arg).unwrap_or_default();
                let global = matches!(
                    f.as_str(),
                    "--root"
                        | "--log"
                        | "--log-format"
                        | "--debug"
                        | "--systemd-cgroup"
                        | "--version"
                        | "-v"
                        | "-V"
                );
                if f == "--help" || f == "-h" {
                    g.print = Some(USAGE.into());
                } else if global {
                    if let Some(text) = g.take(&f, p)? {
                        g.print = Some(text);
                    }
                } else if !take(&f, p).map_err(|e| in_verb(verb, e))? {
                    return Err(in_verb(verb, unexpected(&f)));
                }
            }
        }
    }
    Ok(out)
}

fn one_id(verb: &str, rest: &mut Vec<String>) -> Result<String> {
    if rest.is_empty() {
        return Err(Error::invalid(
            STEP,
            format!("{verb}: a container ID is required"),
        ));
    }
    Ok(rest.remove(0))
}

fn no_more(verb: &str, rest: Vec<String>) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(Error::invalid(
            STEP,
            format!("{verb}: unexpected argument {extra:?}"),
        )),
    }
}

fn format(p: &mut Parser) -> std::result::Result<String, lexopt::Error> {
    let f = p.value()?.string()?;
    if f == "table" || f == "json" {
        Ok(f)
    } else {
        Err(lexopt::Error::Custom(
            format!("--format {f:?}: expected table or json").into(),
        ))
    }
}

fn string(v: OsString) -> Result<String> {
    v.string().map_err(usage)
}

fn usage(e: lexopt::Error) -> Error {
    Error::invalid(STEP, format!("{e} (see husk --help)"))
}

fn in_verb(verb: &str, e: lexopt::Error) -> Error {
    Error::invalid(STEP, format!("{verb}: {e} (see husk --help)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli> {
        Cli::try_parse_from(args.iter().map(OsString::from))
    }

    #[test]
    fn globals_go_anywhere_and_take_both_value_forms() {
        let c = parse(&[
            "--root",
            "/r",
            "run",
            "--log-format=json",
            "-b",
            "/b",
            "x",
            "--debug",
        ])
        .unwrap();
        assert_eq!(c.root, Some("/r".into()));
        assert_eq!(c.log_format, "json");
        assert!(c.debug);
        let Command::Run(a) = c.command else {
            panic!("{c:?}")
        };
        assert_eq!((a.id.as_str(), a.bundle.bundle), ("x", Some("/b".into())));
    }

    #[test]
    fn runc_flags_clients_pass_are_accepted() {
        let c = parse(&[
            "--systemd-cgroup",
            "create",
            "--bundle=/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "--no-new-keyring",
            "--no-pivot",
            "--preserve-fds",
            "2",
            "id",
        ])
        .unwrap();
        let Command::Create(a) = c.command else {
            panic!()
        };
        assert_eq!(a.preserve_fds, 2);
        assert_eq!(a.pid_file, Some("/p".into()));
    }

    #[test]
    fn kill_delete_list_ps() {
        let Command::Kill(k) = parse(&["kill", "-a", "c", "KILL"]).unwrap().command else {
            panic!()
        };
        assert!(k.all && k.id == "c" && k.signal.as_deref() == Some("KILL"));
        let Command::Kill(k) = parse(&["kill", "c"]).unwrap().command else {
            panic!()
        };
        assert_eq!(k.signal, None);
        let Command::Delete(d) = parse(&["delete", "--force", "c"]).unwrap().command else {
            panic!()
        };
        assert!(d.force);
        let Command::List(l) = parse(&["ls", "-q", "--format", "json"]).unwrap().command else {
            panic!()
        };
        assert!(l.quiet && l.format == "json");
        let Command::Ps(p) = parse(&["ps", "-f", "json", "c", "-ef"]).unwrap().command else {
            panic!()
        };
        assert_eq!((p.id.as_str(), p.ps_args), ("c", vec!["-ef".to_string()]));
    }

    #[test]
    fn exec_takes_the_command_as_it_is() {
        let c = parse(&[
            "exec",
            "-t",
            "-e",
            "A=1",
            "--env=B=2",
            "c",
            "sh",
            "-c",
            "echo --x",
        ])
        .unwrap();
        let Command::Exec(e) = c.command else {
            panic!()
        };
        assert!(e.tty);
        assert_eq!(e.env, vec!["A=1", "B=2"]);
        assert_eq!(e.args, vec!["sh", "-c", "echo --x"]);
    }

    #[test]
    fn help_and_version_print() {
        for args in [&["--help"][..], &["run", "--help"], &[]] {
            assert!(
                matches!(parse(args).unwrap().command, Command::Print(t) if t.contains("Usage"))
            );
        }
        assert!(
            matches!(parse(&["--version"]).unwrap().command, Command::Print(t) if t.starts_with("husk version"))
        );
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            &["run"][..],
            &["run", "a", "b"],
            &["frobnicate"],
            &["--log-format", "xml", "state", "c"],
            &["state", "--nope", "c"],
            &["list", "--format", "yaml"],
            &["create", "--preserve-fds", "many", "c"],
            &["--root"],
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(
                !e.contains('\n') && e.contains("parse arguments"),
                "{args:?}: {e}"
            );
        }
    }
}
