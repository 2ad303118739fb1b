//! Deploying sites to Cloudflare Pages (what `deploy-action pages` runs). A run is a plan
//! (`plan/pages.rs`): per site its build, the walk and hash of its directory (wrangler's rules),
//! then the git metadata, the guard's approval, the GitHub deployment, per site check-missing, the
//! uploads, upsert-hashes, the deployment and the wait for its final status, and the release
//! record (`ledger/publish.rs`). The engine's runner walks the plan and the Pages performer
//! (`perform.rs`) carries each step out; `--dry-run` is the same walk on the recording side
//! (builds recorded, nothing sent to Cloudflare; the walk is real, so every file and its hash are
//! listed). `--json` carries the run's steps.
//!
//! Also the library side of promote and rollback for Pages ([`redeploy`], [`rollback_to`]).
//!
//! - `sites.rs`: the sites, the environments and the git metadata of a run;
//! - `local.rs`: builds, the walk and hash, the dry run's file table;
//! - `remote.rs`: a site's Cloudflare steps;
//! - `perform.rs`: steps → effects, on the real or the recording side;
//! - `report.rs`: the summary, the outputs, the `--json` document, the approver's text;
//! - `redeploy.rs`: redeploy and rollback from a release record.
//!
//! Stays out of the walk and hashes (`pages/`), the HTTP (`api/cloudflare.rs`) and the printing
//! (`report/`).

mod local;
mod perform;
mod redeploy;
mod remote;
mod report;
mod sites;

pub use redeploy::{record_special_files, redeploy, rollback_to};
pub use sites::GitMeta;

use crate::api::cloudflare::{Cloudflare, Config, REQUEST_TIMEOUT};
use crate::api::http::HttpClient;
use crate::api::retry::RetryPolicy;
use crate::context::Ctx;
use crate::engine::runner::{self, Observe, Quiet, RunState};
use crate::error::{Error, Result};
use crate::exec::{Executor, dry_run, local::LocalExecutor};
use crate::settings::PagesSettings;
use crate::state::PagesState;
use perform::{Performer, Side};

/// Runs the subcommand; returns the deployment of each site (also in the release record).
pub fn run(args: &PagesSettings, ctx: &Ctx) -> Result<Vec<(String, PagesState)>> {
    run_with(args, ctx, &|| client(ctx))
}

/// [`run`] with the Cloudflare client made by `make_client` (called once, at the first request):
/// for callers and tests that configure the client themselves.
pub fn run_with(
    args: &PagesSettings,
    ctx: &Ctx,
    make_client: &dyn Fn() -> Result<Cloudflare>,
) -> Result<Vec<(String, PagesState)>> {
    let Some(setup) = sites::setup(args, ctx)? else {
        return Ok(Vec::new());
    };
    let steps = crate::plan::pages::steps(&setup.request(args));
    let dry_run = ctx.settings.dry_run;
    ctx.report.stage_start("pages", ctx.settings.env.as_deref());
    let (build, side): (Box<dyn Executor>, Side) = if dry_run {
        ctx.report.info(
            "dry run: the steps a real run takes, in order; builds are not run and nothing is sent to Cloudflare",
        );
        let recording = dry_run::DryRunExecutor::new("local", Default::default());
        (Box::new(recording), Side::Recording)
    } else {
        (Box::new(LocalExecutor), Side::Real { make_client })
    };
    let mut performer = Performer::new(ctx, args, setup, build, side);
    let mut shown = report::DryRunSteps(ctx);
    let observer: &mut dyn Observe = if dry_run { &mut shown } else { &mut Quiet };
    let mut state = RunState {
        dry_run,
        ..RunState::default()
    };
    let (trace, outcome) = runner::run(&steps, &mut performer, observer, &mut state);
    performer.finish(&trace, outcome)
}

/// The Cloudflare client from CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and
/// CLOUDFLARE_API_BASE_URL, with the token masked in every output. For promote and rollback too.
pub fn client(ctx: &Ctx) -> Result<Cloudflare> {
    let cfg = Config::from_env().map_err(Error::usage)?;
    ctx.report.add_secret(&cfg.api_token);
    // Requests with a body set their own timeout, in proportion to its size.
    let http = HttpClient::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| remote::cf_failure("cannot build the HTTP client", e.to_string()))?;
    Ok(Cloudflare::new(cfg, http, RetryPolicy::from_env()))
}
