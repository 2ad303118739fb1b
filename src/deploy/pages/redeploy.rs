//! The library side of promote and rollback for Pages: [`redeploy`] creates a deployment again
//! from a recorded [`PagesState`] alone (no site directory, no upload), and [`rollback_to`] makes a
//! recorded production deployment live again. Also how a record keeps the special files
//! ([`record_special_files`]).

use super::remote::{self, cf_error, cf_failure, environment_of};
use super::sites::GitMeta;
use crate::api::cloudflare::{Cloudflare, DeploymentRequest};
use crate::error::{Error, Result};
use crate::state::PagesState;
use base64::Engine as _;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The special files as a record keeps them: all of them, base64, when together they fit in
/// [`PagesState::MAX_SPECIAL_FILES_BYTES`]; otherwise none, and their names as omitted.
pub fn record_special_files(
    files: &[(String, Vec<u8>)],
) -> (BTreeMap<String, String>, Vec<String>) {
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    if total > PagesState::MAX_SPECIAL_FILES_BYTES {
        return (
            BTreeMap::new(),
            files.iter().map(|(n, _)| n.clone()).collect(),
        );
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    (
        files
            .iter()
            .map(|(n, b)| (n.clone(), b64.encode(b)))
            .collect(),
        Vec::new(),
    )
}

/// Creates a deployment again from a recorded [`PagesState`] alone, without the site directory:
/// the same manifest and the same special files, on `git.branch` (the production branch for a
/// promote; it must be given — leaving it out would mean production), with `git`'s commit
/// metadata. Nothing is uploaded: every hash of the manifest must still be stored at Cloudflare
/// (check-missing), otherwise this fails naming the files it cannot send. Waits up to `wait` for
/// the deployment to go live and returns its state, ready for the release record.
///
/// Errors: exit 2 ([`Error::Usage`]) when the record cannot be redeployed (no manifest, special
/// files omitted, no branch); exit 1 when Cloudflare lacks files or the deployment fails.
pub fn redeploy(
    cf: &Cloudflare,
    state: &PagesState,
    git: &GitMeta,
    wait: Duration,
) -> Result<PagesState> {
    let project = &state.project;
    let what = format!(
        "redeploy of deployment {} of `{project}`",
        state.deployment_id
    );
    let err = |e| cf_error(&what, project, e);
    let Some(branch) = git.branch.clone().filter(|b| !b.is_empty()) else {
        return Err(Error::usage(format!(
            "{what}: no branch given; leaving it out would deploy to production"
        )));
    };
    let files = recorded_files(&what, state)?;
    let production_branch = cf.get_project(project).map_err(err)?.production_branch;
    let token = cf.start_upload_session(project).map_err(err)?;
    if state.manifest.len() as u64 > token.max_file_count_allowed {
        return Err(Error::usage(format!(
            "{what}: {} files, but Pages only supports up to {} files in a deployment for this project (the upload token's max_file_count_allowed)",
            state.manifest.len(),
            token.max_file_count_allowed
        )));
    }
    let mut seen = HashSet::new();
    let distinct: Vec<String> = state
        .manifest
        .values()
        .filter(|h| seen.insert(h.as_str()))
        .cloned()
        .collect();
    let missing: HashSet<String> = cf
        .check_missing(&distinct)
        .map_err(err)?
        .into_iter()
        .collect();
    if !missing.is_empty() {
        return Err(lost_files(&what, state, &missing));
    }
    // Only a cache hint; the deployment does not depend on it.
    let _ = cf.upsert_hashes(&distinct);
    let request = DeploymentRequest {
        manifest: state.manifest.clone(),
        branch: Some(branch.clone()),
        commit_hash: git.commit_hash.clone(),
        commit_message: git.commit_message.clone(),
        commit_dirty: git.commit_dirty,
        files,
    };
    let created = remote::create(cf, &what, project, &request, None, &|_, _| {})?;
    let d = remote::wait(cf, &what, project, &created, wait)?;
    Ok(PagesState {
        project: project.clone(),
        deployment_id: d.id.clone(),
        url: d.url.clone(),
        alias_url: d.alias(),
        environment: environment_of(&d, production_branch.as_deref(), git),
        manifest: state.manifest.clone(),
        branch: Some(branch),
        commit_hash: git.commit_hash.clone(),
        special_files: state.special_files.clone(),
        special_files_omitted: Vec::new(),
    })
}

/// The special files of a record, decoded, in the order they are sent; exit 2 when the record
/// cannot be redeployed (no manifest, special files omitted, a bad or unknown special file).
fn recorded_files(what: &str, state: &PagesState) -> Result<Vec<(String, Vec<u8>)>> {
    if state.manifest.is_empty() {
        return Err(Error::usage(format!(
            "{what}: the record holds no manifest, so the deployment cannot be recreated from it; deploy the site again with `deploy-action pages`"
        )));
    }
    if !state.special_files_omitted.is_empty() {
        return Err(Error::usage(format!(
            "{what}: the record does not hold its special files ({}: over {} KiB together), so the deployment cannot be recreated from it; deploy the site again with `deploy-action pages`",
            state.special_files_omitted.join(", "),
            PagesState::MAX_SPECIAL_FILES_BYTES / 1024
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files = Vec::new();
    for name in ["_headers", "_redirects", "_worker.bundle", "_routes.json"] {
        if let Some(v) = state.special_files.get(name) {
            let bytes = b64.decode(v).map_err(|e| {
                Error::usage(format!(
                    "{what}: the recorded `{name}` is not valid base64: {e}"
                ))
            })?;
            files.push((name.to_string(), bytes));
        }
    }
    if let Some(other) = state.special_files.keys().find(|k| {
        !["_headers", "_redirects", "_worker.bundle", "_routes.json"].contains(&k.as_str())
    }) {
        return Err(Error::usage(format!(
            "{what}: the record holds an unknown special file `{other}`"
        )));
    }
    Ok(files)
}

/// Exit 1: Cloudflare no longer stores the files of `missing` (hashes), named by path.
fn lost_files(what: &str, state: &PagesState, missing: &HashSet<String>) -> Error {
    let paths: Vec<&str> = state
        .manifest
        .iter()
        .filter(|(_, h)| missing.contains(*h))
        .map(|(p, _)| p.as_str())
        .collect();
    let shown: Vec<&str> = paths.iter().take(10).copied().collect();
    let message = format!(
        "Cloudflare no longer has {} of its files ({}{}); a redeploy cannot upload bytes it does not have: deploy the site again with `deploy-action pages`",
        paths.len(),
        shown.join(", "),
        if paths.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    );
    cf_failure(what, message).into()
}

/// Makes the recorded production deployment live again (Pages rollback: instant, nothing is
/// rebuilt or uploaded), confirms it with a GET, and returns its state for the release record (the
/// record's manifest and special files kept, the deployment id unchanged).
///
/// Errors: exit 2 when the record is not a production deployment (Pages rolls back only to
/// those; promote a preview with [`redeploy`] instead); exit 1 when Cloudflare refuses.
pub fn rollback_to(cf: &Cloudflare, state: &PagesState) -> Result<PagesState> {
    let project = &state.project;
    let what = format!(
        "rollback of `{project}` to deployment {}",
        state.deployment_id
    );
    if state.environment != "production" {
        return Err(Error::usage(format!(
            "{what}: it is a {} deployment, and Pages rolls production back only to production deployments; redeploy it to the production branch instead",
            if state.environment.is_empty() {
                "non-production"
            } else {
                state.environment.as_str()
            }
        )));
    }
    let err = |e| cf_error(&what, project, e);
    cf.rollback(project, &state.deployment_id).map_err(err)?;
    let d = cf
        .get_deployment(project, &state.deployment_id)
        .map_err(err)?;
    if d.id != state.deployment_id {
        let message = format!("Cloudflare answered with deployment {}", d.id);
        return Err(cf_failure(&what, message).into());
    }
    Ok(PagesState {
        deployment_id: d.id.clone(),
        url: if d.url.is_empty() {
            state.url.clone()
        } else {
            d.url.clone()
        },
        alias_url: d.alias().or_else(|| state.alias_url.clone()),
        environment: if d.environment.is_empty() {
            state.environment.clone()
        } else {
            d.environment.clone()
        },
        ..state.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_kept_in_base64_up_to_the_limit() {
        let small = vec![("_headers".to_string(), b"/*\n  X: y\n".to_vec())];
        let (kept, omitted) = record_special_files(&small);
        assert_eq!(kept["_headers"], "LyoKICBYOiB5Cg==");
        assert!(omitted.is_empty());
        let big = vec![
            ("_headers".to_string(), vec![b'h'; 10]),
            (
                "_worker.bundle".to_string(),
                vec![b'w'; PagesState::MAX_SPECIAL_FILES_BYTES],
            ),
        ];
        let (kept, omitted) = record_special_files(&big);
        assert!(kept.is_empty());
        assert_eq!(omitted, ["_headers", "_worker.bundle"]);
    }

    #[test]
    fn a_record_gives_back_its_special_files_or_says_why_it_cannot() {
        let mut state = PagesState {
            manifest: [("/a.html".to_string(), "h1".to_string())].into(),
            ..Default::default()
        };
        state
            .special_files
            .insert("_routes.json".into(), "e30=".into());
        state.special_files.insert("_headers".into(), "eA==".into());
        let files = recorded_files("redeploy", &state).unwrap();
        assert_eq!(
            files,
            [
                ("_headers".to_string(), b"x".to_vec()),
                ("_routes.json".to_string(), b"{}".to_vec())
            ],
            "in the order they are sent"
        );
        let mut bad = state.clone();
        bad.special_files.insert("_worker.js".into(), "eA==".into());
        let e = recorded_files("redeploy", &bad).unwrap_err();
        assert_eq!(e.exit().code(), 2);
        assert!(e.to_string().contains("unknown special file `_worker.js`"));
        bad.special_files.remove("_worker.js");
        bad.special_files
            .insert("_redirects".into(), "not base64!".into());
        assert!(
            recorded_files("redeploy", &bad)
                .unwrap_err()
                .to_string()
                .contains("`_redirects` is not valid base64")
        );
        let empty = PagesState::default();
        assert!(
            recorded_files("redeploy", &empty)
                .unwrap_err()
                .to_string()
                .contains("holds no manifest")
        );
        let lost = lost_files("redeploy", &state, &["h1".to_string()].into());
        assert_eq!(lost.exit().code(), 1);
        assert!(
            lost.to_string()
                .contains("no longer has 1 of its files (/a.html)")
        );
    }
}
