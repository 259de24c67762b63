//! The command line, runc's: global flags, then a verb. Flags runc accepts
//! that husk does not need are accepted and ignored, so clients that pass
//! them (Buildah, Podman) work unchanged.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "husk",
    version,
    about = "A stateless, unprivileged OCI container runtime"
)]
pub struct Cli {
    /// Root directory for the ID index (default $XDG_RUNTIME_DIR/husk, /run/husk for root)
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Log fallbacks and details
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; husk manages no cgroups
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a default config.json into the bundle
    Spec {
        /// Generate a spec for an unprivileged user
        #[arg(long)]
        rootless: bool,
        #[command(flatten)]
        bundle: BundleArg,
    },
    /// Create and start a container in the foreground
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct BundleArg {
    /// Bundle directory (default: the current directory)
    #[arg(long, short = 'b')]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// Write the container's PID here (no trailing newline)
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Accepted for runc compatibility
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (detached runs arrive with create/start)
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Container ID
    pub id: String,
}

impl BundleArg {
    /// The bundle as an absolute path: the container process resolves it
    /// after chdir/pivot, and records must not depend on the caller's cwd.
    pub fn resolve(&self) -> std::io::Result<PathBuf> {
        std::path::absolute(self.bundle.clone().unwrap_or_else(|| PathBuf::from(".")))
    }
}
