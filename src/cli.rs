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
    /// Create a container: set it up and park it until `start`
    Create(RunArgs),
    /// Start a created container
    Start(IdArgs),
    /// Print the state of a container as JSON
    State(IdArgs),
    /// Send a signal to a container's process (or all its processes)
    Kill(KillArgs),
    /// Delete a container
    Delete(DeleteArgs),
    /// List the containers in the state root
    #[command(alias = "ls")]
    List(ListArgs),
    /// List a container's processes
    Ps(PsArgs),
    /// Run a process in a running container
    Exec(ExecArgs),
    /// Print the runtime-spec features JSON
    Features,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// An OCI process JSON file describing the process
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Do not wait for the process
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Accepted for runc compatibility
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Accepted for runc compatibility
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility
    #[arg(long = "apparmor")]
    pub apparmor: Option<String>,
    /// Accepted for runc compatibility
    #[arg(long = "cap", short = 'c')]
    pub cap: Vec<String>,
    /// Container ID
    pub id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// Container ID (or the absolute bundle path)
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// Signal every process of the container (found by its namespaces)
    #[arg(long, short = 'a')]
    pub all: bool,
    pub id: String,
    /// Signal name or number (default SIGTERM)
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// Kill the container's processes first if it is running
    #[arg(long, short = 'f')]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the IDs
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// table or json
    #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub bundle: BundleArg,
    /// table or json
    #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    pub id: String,
    /// ps(1) options (accepted for runc compatibility; ignored)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
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
    /// Unix socket that receives the pty master (process.terminal)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass N additional fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
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
