//! `deploy-action pages`: the affected sites deployed to Cloudflare Pages. The run is a plan of
//! steps that the engine walks (`deploy/pages/`): the builds, the walks, the guard's approval, the
//! uploads and deployments, and on `--env` the release record (`ledger/publish.rs`), as steps of
//! the plan. `--dry-run` walks the same steps with nothing sent.
//!
//! Glue only.

use crate::context::Ctx;
use crate::deploy::pages;
use crate::error::Result;
use crate::settings::PagesSettings;

pub fn run(args: &PagesSettings, ctx: &Ctx) -> Result<()> {
    pages::run(args, ctx).map(|_| ())
}
