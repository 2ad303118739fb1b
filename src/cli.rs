//! The command line, as clap sees it. No clap type gets past `settings.rs`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "deploy-action",
    version,
    about = "Deploy a monorepo stage by stage: build, test, compose up over SSH, Cloudflare Pages, migrations, promote, rollback",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand honours.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Print the exact steps, change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// The environment to act on (a key of `environments:`).
    #[arg(long, short = 'e', global = true, env = "DEPLOY_ENV")]
    pub env: Option<String>,
    /// Act on these units only (services, sites, `migrations`), whatever changed.
    #[arg(long, global = true, num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// Act on every unit, whatever changed.
    #[arg(long, global = true, conflicts_with = "only")]
    pub all: bool,
    /// Compare against this git ref to find changed units (default: from the GitHub event, else HEAD~1).
    #[arg(long, global = true)]
    pub base: Option<String>,
    /// Print one JSON document on stdout; human output goes to stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// The manifest file (default: ./deploy.yml).
    #[arg(long, global = true, env = "DEPLOY_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// Answer yes to confirmations. Never bypasses an approval gate.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print what every stage would do for the affected units. No side effects.
    Plan,
    /// Run the build commands of the affected units (and `docker build` their images).
    Build(BuildArgs),
    /// Run the test commands of the affected units.
    Test(BuildArgs),
    /// Run a command on every host of an environment.
    Exec(ExecArgs),
    /// Selective docker compose up on the environment's hosts: lock, release record, health gate,
    /// automatic rollback of failed services.
    Up(UpArgs),
    /// Show or release the environment lock on every host.
    Lock(LockArgs),
    /// Print the JSON Schema of deploy.yml (for editors).
    Schema,
    /// Validate deploy.yml and print a short summary (exit 2 on errors).
    Check,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct BuildArgs {
    /// Go on after a unit fails; report every result at the end.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct UpArgs {
    /// Run this image for a service instead of the compose file's (SERVICE=IMAGE; repeatable).
    #[arg(long = "image", value_name = "SERVICE=IMAGE")]
    pub images: Vec<String>,
    /// Do not build images of services with `build: {context, ...}`; deploy what compose names.
    #[arg(long)]
    pub no_build: bool,
    /// Recreate the selected services even when their configuration is unchanged.
    #[arg(long)]
    pub force: bool,
    /// Wait this long for a held lock (e.g. 90s, 5m) instead of exiting 4 at once.
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    #[command(subcommand)]
    pub action: LockAction,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAction {
    /// Print who holds the lock on each host.
    Status,
    /// Remove the lock on each host (asks on a terminal unless --yes).
    Release,
}
