//! Ships a locally built image to a host: registry push/pull when the image names a registry,
//! otherwise `docker save | gzip` (through the local executor, into a temporary file) fed through
//! the host's executor into `gunzip | docker load`. Every process runs through an [`Executor`].
//! Skipped when the host already has the same image id.

use crate::cmd::docker_engine as de;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::report::Report;
use std::io::Seek;

/// Ships `image`, built on this machine (`local`), to the host of `ex`. Both are read for the
/// image id (a dry run's too); the shipping itself is recorded in a dry run.
pub fn ship(
    ex: &mut dyn Executor,
    local: &mut dyn Executor,
    report: &Report,
    image: &str,
) -> Result<()> {
    let label = ex.label();
    let local_exec = local;
    let local = local_exec.read(&de::image_id(image))?;
    if !local.success() && local_exec.records() {
        // A dry run built nothing: the image would be shipped once built.
        return Ok(());
    }
    if !local.success() {
        return Err(Error::StageFailed(format!(
            "local image {image} is missing"
        )));
    }
    let local_id = local.stdout_str().trim().to_string();
    let remote = ex.read(&de::image_id(image))?;
    let always = crate::env_vars::get(crate::env_vars::DEPLOY_TEST_ALWAYS_SHIP).is_some();
    if remote.success() && remote.stdout_str().trim() == local_id && !always {
        report.info(&format!(
            "{label}: {image} already present ({})",
            crate::ledger::first_chars(&local_id, 19)
        ));
        return Ok(());
    }
    if de::names_registry(image) {
        report.info(&format!("{label}: shipping {image} through its registry"));
        let status = local_exec.run(&de::push(image), None, &mut |s, l| {
            report.relay("push", s, l)
        })?;
        if status != 0 {
            return Err(Error::StageFailed(format!(
                "docker push {image} failed (exit {status})"
            )));
        }
        let status = ex.run(&de::pull(image), None, &mut |s, l| {
            report.relay(&label, s, l)
        })?;
        if status != 0 {
            return Err(Error::StageFailed(format!(
                "{label}: docker pull {image} failed (exit {status})"
            )));
        }
        return Ok(());
    }
    report.info(&format!(
        "{label}: shipping {image} (docker save | gzip → docker load)"
    ));
    // Through the executors: `docker save | gzip` here into a temporary file, then that file fed
    // to `gunzip | docker load` on the host (as `ship_between` does).
    let file = tempfile::tempfile()
        .map_err(|e| Error::StageFailed(format!("cannot make a temporary file: {e}")))?;
    let saved = local_exec
        .capture_to_file(&de::save_gzip(image), &file)
        .map_err(|e| Error::StageFailed(format!("cannot start docker save: {e}")))?;
    if !saved.success() {
        return Err(Error::StageFailed(format!(
            "docker save {image} failed: {}",
            String::from_utf8_lossy(&saved.stderr).trim()
        )));
    }
    let mut reader = std::io::BufReader::new(&file);
    reader
        .seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::StageFailed(format!("cannot read the saved image: {e}")))?;
    let status = ex.run(&de::load_gzip(), Some(&mut reader), &mut |s, l| {
        report.relay(&label, s, l)
    })?;
    if status != 0 {
        return Err(Error::StageFailed(format!(
            "{label}: docker load failed (exit {status})"
        )));
    }
    Ok(())
}

/// Puts the exact image `id` on `dst` under the name `reference`, taking it from `src` (the host
/// that runs it) when `dst` does not have it: `docker save <id> | gzip` on `src` into a temporary
/// file on the runner, then `gunzip | docker load` on `dst`, then `docker tag <id> <reference>`.
/// Never rebuilds, never pulls: what `dst` runs afterwards has the same image id as `src`.
pub fn ship_between(
    src: &mut dyn Executor,
    dst: &mut dyn Executor,
    report: &Report,
    reference: &str,
    id: &str,
) -> Result<()> {
    let label = dst.label();
    let always = crate::env_vars::get(crate::env_vars::DEPLOY_TEST_ALWAYS_SHIP).is_some();
    let named = dst.read(&de::image_id(reference))?;
    if named.success() && named.stdout_str().trim() == id && !always {
        report.info(&format!(
            "{label}: {reference} is already image {}",
            crate::ledger::short_id(id)
        ));
        return Ok(());
    }
    let present = dst.read(&de::image_id(id))?.success();
    if !present || always {
        report.info(&format!(
            "{label}: shipping image {} ({reference}) from {} (docker save | gzip → docker load)",
            crate::ledger::short_id(id),
            src.label()
        ));
        let file = tempfile::tempfile()
            .map_err(|e| Error::StageFailed(format!("cannot make a temporary file: {e}")))?;
        let saved = src.capture_to_file(&de::save_gzip(id), &file)?;
        if !saved.success() {
            return Err(Error::StageFailed(format!(
                "{}: docker save {id} failed: {}",
                src.label(),
                saved.stderr_tail(3)
            )));
        }
        let mut reader = std::io::BufReader::new(&file);
        reader
            .seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::StageFailed(format!("cannot read the saved image: {e}")))?;
        let status = dst.run(&de::load_gzip(), Some(&mut reader), &mut |s, l| {
            report.relay(&label, s, l)
        })?;
        if status != 0 {
            return Err(Error::StageFailed(format!(
                "{label}: docker load failed (exit {status})"
            )));
        }
    }
    let tagged = dst.capture(&de::tag(id, reference))?;
    if !tagged.success() {
        return Err(Error::StageFailed(format!(
            "{label}: docker tag {id} {reference} failed: {}",
            tagged.stderr_tail(3)
        )));
    }
    Ok(())
}
