//! `deploy-action promote --from staging --to production [--only UNIT...]`: deploys to the target
//! exactly the artifacts of the source's last successful release — the same image ids (shipped
//! from the source's host when the target lacks them, never rebuilt), the same Pages content (the
//! recorded manifest deployed to the production branch, no upload, no build), the migrations up to
//! the same version — behind the target's approval gate.
//!
//! The target defaults to `--env`, the source to the target's `promote_from`. What goes where is
//! chosen in `deploy/release/choose_promote.rs` (shared with `plan --promote`); this file shows
//! it, admits it and plans it (`plan/release.rs`: the lock, the migration, the services'
//! fan-out, the sites, the record); `deploy/release/` walks the plan, for real or (`--dry-run`)
//! on the recording side.

use crate::context::Ctx;
use crate::deploy::release::choose_promote::{self, Chosen, Promotion, plan_input, promotion};
use crate::deploy::release::{Job, Promote, Run};
use crate::error::{RecordFailure, Result};
use crate::guard::{self, ChangePlan};
use crate::ledger;
use crate::ledger::record::reason;
use crate::ledger::store;
use crate::manifest::{Environment, Manifest};
use crate::report::Summary;
use crate::state::ReleaseRecord;

pub fn run(from: Option<&str>, to: Option<&str>, ctx: &Ctx) -> Result<()> {
    let m = ctx.load_manifest()?;
    let Chosen {
        source,
        target,
        release,
        promotion: mut p,
    } = choose_promote::choose(ctx, &m, from, to)?;
    let report = &ctx.report;
    if !p.services.is_empty() {
        p.secrets = crate::deploy::secrets::resolve(&m, &target, &|n| std::env::var(n).ok())?;
    }

    report.stage_start("promote", Some(&target.name));
    if !show_plan(ctx, &source, &target, &release, &p) {
        return Ok(());
    }

    let adm = guard::admit(ctx, &target, "promote", &store::repo_root(ctx), &|| {
        promote_plan(ctx, &m, &source, &target, &release, &p)
    })?;
    let migrate = match &p.migration {
        Some(v) => Some(migrate_options(ctx, &source, &release, v)?),
        None => None,
    };
    let mut notes = vec![format!(
        "promoted from release {}/{}",
        source.name, release.number
    )];
    notes.extend(adm.notes());
    notes.extend(reason().map(|r| format!("reason: {r}")));
    let steps = crate::plan::release::steps(&plan_input(&m, &source, &target, &release, &p));
    let job = Promote {
        source: &source,
        release: &release,
        services: &p.services,
        images: &p.images,
        digests: &p.digests,
        sites: &p.sites,
        secrets: &p.secrets,
        units: p.rows.iter().map(|r| r[0].clone()).collect(),
        migrate,
    };
    let run = Run {
        ctx,
        manifest: &m,
        env: &target,
        sha: &release.sha,
        admission: &adm,
        recheck: &|| plan_now(ctx, &m, &source, &target, &release, &p),
        notes,
        job: Job::Promote(job),
    };
    crate::deploy::release::run(run, &steps)
}

/// The plan table (units, kinds, from, to); false when there is nothing to promote.
fn show_plan(
    ctx: &Ctx,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> bool {
    let mut plan = Summary::new(
        format!(
            "Promote release {} of {} ({}) to {}",
            release.number,
            source.name,
            ledger::short_sha(&release.sha),
            target.name
        ),
        &["unit", "kind", "from", "to"],
    );
    for r in &p.rows {
        plan.row(r.clone());
    }
    if p.rows.is_empty() {
        plan.note(format!(
            "{} already runs the artifacts of release {} of {}",
            target.name, release.number, source.name
        ));
    }
    ctx.report.summary(&plan);
    !p.rows.is_empty()
}

/// What was approved must still be what runs: both environments read again, under the lock.
fn plan_now(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Result<ChangePlan> {
    let src = store::load(ctx, source)?;
    Ok(match src.current() {
        Some(r) if r.number == release.number => {
            let have = ledger::unit_versions(&store::load(ctx, target)?.releases);
            let want = ledger::state_at(&src.releases, r.number);
            let mut again = promotion(m, ctx, &want, &have);
            again.secrets = p.secrets.clone();
            promote_plan(ctx, m, source, target, r, &again)?
        }
        _ => ChangePlan::new(
            "promote",
            &target.name,
            format!(
                "{}'s live release is no longer {}",
                source.name, release.number
            ),
        ),
    })
}

/// What a promotion changes, as the text an approver reads: the units and their versions, and
/// the exact SQL of the migrations it applies (their plan hash is covered, so `migrate` asks no
/// second time).
fn promote_plan(
    ctx: &Ctx,
    m: &Manifest,
    source: &Environment,
    target: &Environment,
    release: &ReleaseRecord,
    p: &Promotion,
) -> Result<ChangePlan> {
    let mut text = format!(
        "promote release {} of {} (sha {}) to {}\n",
        release.number, source.name, release.sha, target.name
    );
    for r in &p.rows {
        text.push_str(&format!("{} ({}): {} -> {}\n", r[0], r[1], r[2], r[3]));
    }
    for (svc, (image, id)) in &p.images {
        let by = p
            .digests
            .get(svc)
            .map(|d| format!(", deployed by digest {d}"))
            .unwrap_or_default();
        text.push_str(&format!("image of {svc}: {image} = {id}{by}\n"));
    }
    let prints = crate::deploy::secrets::fingerprints(&m.project, &target.name, &p.secrets);
    for (svc, names) in prints {
        for (name, print) in names {
            text.push_str(&format!("secret {name} for {svc}: {print}\n"));
        }
    }
    let mut covers = None;
    if let (Some(v), Some(migrations)) = (&p.migration, &m.migrations) {
        let opts = migrate_options(ctx, source, release, v)?;
        if let Some((hash, sql)) = crate::deploy::migrate::preview(ctx, target, migrations, &opts)?
        {
            text.push_str(&format!("\nmigrations (plan {hash}):\n{sql}"));
            covers = Some(hash);
        }
    }
    let plan = ChangePlan::new("promote", &target.name, text);
    Ok(match covers {
        Some(h) => plan.covering("migrate", &h),
        None => plan,
    })
}

/// The options of the migration a promotion runs: up to the source's version.
fn migrate_options(
    ctx: &Ctx,
    source: &Environment,
    release: &ReleaseRecord,
    v: &str,
) -> Result<crate::deploy::migrate::Options> {
    let version: u64 = v.parse().map_err(|_| {
        RecordFailure::new(
            "",
            format!(
                "promote release {} of {}: it records migration version `{v}`, which is not a number",
                release.number, source.name
            ),
            "",
        )
    })?;
    let mut opts = crate::deploy::migrate::Options::new(store::repo_root(ctx), ".");
    opts.target = Some(version);
    Ok(opts)
}
