//! The thin front: argv → a library call; errors printed once, here.
//!
//! No std `main`: libc calls ours directly. std's runtime start-up is a
//! measurable part of a container start (about 55 µs of a ~0.5 ms static
//! binary's exec, `hyperfine`): to place a stack-overflow guard it reads
//! /proc/self/maps (pthread_getattr_np) and maps an alternate signal
//! stack, which husk, a short-lived process with a shallow stack, does
//! not need (an overflow is a plain SIGSEGV). What it does that matters
//! is done here: fds 0–2 opened on /dev/null when closed, SIGPIPE ignored,
//! a panic exiting 101. argv still reaches std::env::args (glibc passes it
//! to std's .init_array hook).

#![no_main]

use husk::cli::{Cli, Command};
use husk::{Error, launch, lifecycle, log};

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    standard_fds();
    // SAFETY: installing SIG_IGN, as std's start-up does: the sync socket,
    // the start FIFO and hook pipes report EPIPE instead of killing us.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    match std::panic::catch_unwind(husk_main) {
        Ok(never) => match never {},
        // The panic hook printed the message; exit as std's main would.
        Err(_) => std::process::exit(101),
    }
}

/// A closed stdin, stdout or stderr is opened on /dev/null (as std's
/// start-up does), so that no file husk opens lands on 0–2 and is taken
/// for the container's stdio.
fn standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: a valid array of three pollfd; open(2) of a constant path.
    unsafe {
        if libc::poll(fds.as_mut_ptr(), 3, 0) == -1 {
            return;
        }
        for p in fds {
            if p.revents & libc::POLLNVAL != 0
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) == -1
            {
                libc::abort();
            }
        }
    }
}

fn husk_main() -> std::convert::Infallible {
    // A setuid husk would hand every user root's view of the kernel: refuse.
    if nix::unistd::getuid() != nix::unistd::geteuid()
        || nix::unistd::getgid() != nix::unistd::getegid()
    {
        eprintln!("husk: refusing to run setuid or setgid: run it as the user you are");
        std::process::exit(1);
    }
    let cli = Cli::parse();
    log::init(log::Sink {
        file: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    });
    match dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let line = e.to_string();
            log::error(&line);
            eprintln!("husk: {line}");
            std::process::exit(1);
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, Error> {
    let bundle = |b: &husk::cli::BundleArg| {
        b.resolve()
            .map_err(|e| Error::io("parse arguments", "--bundle", &e))
    };
    let root = husk::record::state_root(cli.root.as_deref());
    // A closed stdout (`husk list | head`) is not worth a panic.
    let print = |s: String| {
        use std::io::Write;
        let nl = if s.ends_with('\n') { "" } else { "\n" };
        let _ = write!(std::io::stdout(), "{s}{nl}");
        0
    };
    match cli.command {
        Command::Spec {
            rootless,
            bundle: b,
        } => husk::spec::write_spec(&bundle(&b)?, rootless).map(|()| 0),
        Command::Run(args) => {
            let opts = create_options(root, &args, bundle(&args.bundle)?);
            run(&opts)
        }
        Command::Create(args) => {
            let opts = create_options(root, &args, bundle(&args.bundle)?);
            lifecycle::create(&opts).map(|()| 0)
        }
        Command::Start(a) => {
            lifecycle::start(&root, &a.id, a.bundle.given().as_deref()).map(|()| 0)
        }
        Command::State(a) => lifecycle::state(&root, &a.id, a.bundle.given().as_deref()).map(print),
        Command::Kill(a) => lifecycle::kill(
            &root,
            &a.id,
            a.bundle.given().as_deref(),
            a.signal.as_deref(),
            a.all,
        )
        .map(|()| 0),
        Command::Delete(a) => {
            lifecycle::delete(&root, &a.id, a.bundle.given().as_deref(), a.force).map(|()| 0)
        }
        Command::List(a) => lifecycle::list(&root, a.quiet, a.format == "json").map(print),
        Command::Exec(a) => husk::exec::exec(&husk::exec::ExecOptions {
            root,
            id: a.id.clone(),
            bundle: a.bundle.given(),
            process: a.process.clone(),
            args: a.args.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone(),
            user: a.user.clone(),
            tty: a.tty,
            detach: a.detach,
            pid_file: a.pid_file.clone(),
            console_socket: a.console_socket.clone(),
            preserve_fds: a.preserve_fds,
        }),
        Command::Print(text) => Ok(print(text)),
        Command::Features => Ok(print(
            serde_json::to_string_pretty(&husk::features::features()).expect("json"),
        )),
        Command::Ps(a) => lifecycle::ps(
            &root,
            &a.id,
            a.bundle.given().as_deref(),
            a.format == "json",
        )
        .map(print),
    }
}

fn create_options(
    root: std::path::PathBuf,
    args: &husk::cli::RunArgs,
    bundle: std::path::PathBuf,
) -> lifecycle::CreateOptions {
    // The stateless extension: an absolute bundle path may be the ID.
    lifecycle::CreateOptions {
        root,
        id: args.id.clone(),
        bundle,
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
    }
}

/// `husk run`: in place when it can (no PID namespace, no hooks), else
/// create + start + wait + delete.
fn run(opts: &lifecycle::CreateOptions) -> Result<i32, Error> {
    let plan = lifecycle::prepare(opts, true)?;
    if !launch::runs_in_place(&plan) {
        return lifecycle::run(opts, plan);
    }
    let seccomp = plan
        .seccomp
        .as_ref()
        .map(husk::seccomp::compile)
        .transpose()?;
    let pid_file = opts
        .pid_file
        .as_deref()
        .map(launch::PidFile::open)
        .transpose()?;
    match launch::run_in_place(&plan, seccomp, pid_file)? {}
}
