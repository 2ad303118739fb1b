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
    /// Record releases as git tags (`deploy/<env>/<n>` and `<env>`) in the local repository too
    /// (in GitHub Actions they are always made through the API).
    #[arg(long, global = true)]
    pub tag: bool,
    /// Answer yes to confirmations. Never bypasses an approval gate.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Deploy from a working tree with uncommitted changes to tracked files (refused on an
    /// environment with `approval: required`).
    #[arg(long, global = true)]
    pub allow_dirty: bool,
    /// How long to wait for an approval in GitHub Actions (e.g. 30m).
    #[arg(long, value_name = "DURATION", default_value = "30m", global = true)]
    pub approval_timeout: String,
}

/// `plan`: what the change-driven stages would do, or (`--promote`, `--rollback`) what a release
/// run would do.
#[derive(Args, Debug, Default)]
pub struct PlanArgs {
    /// Plan the promotion into --env from its `promote_from` source: the steps
    /// `promote --to ENV` would run.
    #[arg(long, conflicts_with = "rollback")]
    pub promote: bool,
    /// Plan a rollback of --env: the steps `rollback --env ENV [--to TO]` would run (without a
    /// value: to the default release, the last good one before the current).
    #[arg(long, value_name = "N|TAG|SHA", num_args = 0..=1)]
    pub rollback: Option<Option<String>>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print what every stage would do for the affected units. No side effects.
    Plan(PlanArgs),
    /// Run the build commands of the affected units (and `docker build` their images).
    Build(BuildArgs),
    /// Run the test commands of the affected units.
    Test(BuildArgs),
    /// Run a command on every host of an environment.
    Exec(ExecArgs),
    /// Deploy to one environment exactly the artifacts of another's last successful release.
    Promote {
        /// The source environment (default: the target's `promote_from`).
        #[arg(long, value_name = "ENV")]
        from: Option<String>,
        /// The target environment (default: --env).
        #[arg(long, value_name = "ENV")]
        to: Option<String>,
    },
    /// Put an environment back on an earlier release (default: the last good one before the current).
    Rollback {
        /// The release to go back to: its number, its tag deploy/<env>/<n>, or its commit sha.
        #[arg(long, value_name = "N|TAG|SHA")]
        to: Option<String>,
    },
    /// Show an environment: current release, unit versions, lock holder, last 10 releases.
    Status,
    /// Selective docker compose up on the environment's hosts: lock, release record, health gate,
    /// automatic rollback of failed services.
    Up(UpArgs),
    /// Show or release the environment lock on every host.
    Lock(LockArgs),
    /// Upload static sites to Cloudflare Pages (direct upload, byte-compatible with wrangler 4).
    Pages(PagesArgs),
    /// Apply pending SQL migrations (behind the approval gate, after a verified backup, under a lock).
    Migrate(MigrateArgs),
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

#[derive(Args, Debug, Clone)]
pub struct PagesArgs {
    /// The branch of the deployment (default: GITHUB_HEAD_REF / GITHUB_REF_NAME in Actions, else the
    /// local git branch). Equal to the project's production branch → production, else preview.
    #[arg(long)]
    pub branch: Option<String>,
    /// The commit hash recorded with the deployment (default: git rev-parse HEAD).
    #[arg(long)]
    pub commit_hash: Option<String>,
    /// The commit message recorded (default: the HEAD commit's; cut to 384 bytes).
    #[arg(long)]
    pub commit_message: Option<String>,
    /// Whether the working tree had uncommitted changes (default: from git status).
    #[arg(long)]
    pub commit_dirty: Option<bool>,
    /// Do not run the sites' `build` commands.
    #[arg(long)]
    pub no_build: bool,
    /// Upload requests in flight at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub concurrency: u16,
    /// Deploy this directory without a manifest (with --project).
    #[arg(long, requires = "project")]
    pub dir: Option<PathBuf>,
    /// The Pages project to deploy --dir to (without a manifest).
    #[arg(long, requires = "dir")]
    pub project: Option<String>,
    /// Seconds to wait for the deployment to reach a final status.
    #[arg(long, default_value_t = 600)]
    pub wait_timeout: u64,
}

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: Option<MigrateAction>,
    /// Re-baseline the recorded checksum of this applied version to the file's (repeatable).
    #[arg(long, value_name = "VERSION", global = true)]
    pub accept_changed: Vec<u64>,
    /// How long to wait for another migrator's lock before exiting 4 (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", global = true)]
    pub lock_wait: String,
    /// Where backups are written (default: .deploy-action/backups/<env>/).
    #[arg(long, value_name = "DIR", global = true)]
    pub backup_dir: Option<PathBuf>,
    /// How many backups to keep per environment; older ones are deleted after a new one is verified.
    #[arg(long, value_name = "N", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_backups: u64,
    /// Apply the pending migrations up to and including VERSION, then stop (VERSION must be a file).
    #[arg(long, value_name = "VERSION")]
    pub target: Option<u64>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum MigrateAction {
    /// List applied, pending, changed and missing migration files.
    Status,
    /// Run the `.down.sql` files of the versions above VERSION, newest first.
    Down {
        /// The version to go back to (0: undo everything).
        #[arg(long, value_name = "VERSION")]
        to: u64,
    },
}
