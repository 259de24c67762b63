//! The thin front: argv → a library call; errors printed once, here.

use clap::Parser;
use husk::cli::{Cli, Command};
use husk::{Error, launch, log};

fn main() {
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
    match cli.command {
        Command::Spec {
            rootless,
            bundle: b,
        } => husk::spec::write_spec(&bundle(&b)?, rootless).map(|()| 0),
        Command::Run(args) => launch::run(&launch::RunOptions {
            id: args.id.clone(),
            bundle: bundle(&args.bundle)?,
            pid_file: args.pid_file.clone(),
        }),
    }
}
