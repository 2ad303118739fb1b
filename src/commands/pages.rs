//! `deploy-action pages`: the affected sites deployed to Cloudflare Pages (`deploy/pages.rs`: the
//! guard, the builds, the walk, the uploads), recorded as a release of `--env` when it deployed
//! something (`ledger/publish.rs`). The guard (rules, approval) runs inside
//! [`pages::prepare`], before the GitHub deployment starts.
//!
//! Glue only.

use crate::context::Ctx;
use crate::deploy::pages;
use crate::error::Result;
use crate::ledger::publish;
use crate::settings::PagesSettings;

pub fn run(args: &PagesSettings, ctx: &Ctx) -> Result<()> {
    let Some(prepared) = pages::prepare(args, ctx)? else {
        return Ok(());
    };
    let make_client = || pages::client(ctx);
    let Some(env) = publish::recorded_env(ctx)? else {
        return pages::deploy_prepared(args, ctx, &prepared, &make_client).map(|_| ());
    };
    let notes = prepared
        .admission
        .as_ref()
        .map(|a| a.notes())
        .unwrap_or_default();
    publish::pages(ctx, &env, &notes, || {
        pages::deploy_prepared(args, ctx, &prepared, &make_client)
    })
}
