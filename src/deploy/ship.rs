//! Ships a locally built image to a host: registry push/pull when the image names a registry,
//! otherwise `docker save | gzip` (through the local executor, into a temporary file) fed through
//! the host's executor into `gunzip | docker load`. Every process runs through an [`Executor`].
//! Skipped when the host already has the same image id.

use crate::cmd::Cmd;
use crate::cmd::docker_engine as de;
use crate::error::{CommandFailure, Error, Result, STDERR_TAIL_LINES};
use crate::exec::{Executor, Output, StderrTail};
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
    let inspect = de::image_id(image);
    let local = local_exec.read(&inspect)?;
    if !local.success() && local_exec.records() {
        // A dry run built nothing: the image would be shipped once built.
        return Ok(());
    }
    if !local.success() {
        let what = format!("looking up the local image {image}");
        return Err(captured(&local_exec.label(), what, &inspect, &local));
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
        let what = format!("pushing {image}");
        relayed(local_exec, report, "push", what, &de::push(image), None)?;
        let what = format!("pulling {image}");
        return relayed(ex, report, &label, what, &de::pull(image), None);
    }
    report.info(&format!(
        "{label}: shipping {image} (docker save | gzip → docker load)"
    ));
    // Through the executors: `docker save | gzip` here into a temporary file, then that file fed
    // to `gunzip | docker load` on the host (as `ship_between` does).
    let file = temporary()?;
    let save = de::save_gzip(image);
    let saved = local_exec.capture_to_file(&save, &file)?;
    if !saved.success() {
        let what = format!("saving {image}");
        return Err(captured(&local_exec.label(), what, &save, &saved));
    }
    let mut reader = rewound(&file)?;
    let what = format!("loading {image}");
    relayed(
        ex,
        report,
        &label,
        what,
        &de::load_gzip(),
        Some(&mut reader),
    )
}

/// A temporary file for a saved image (removed when dropped).
fn temporary() -> Result<std::fs::File> {
    tempfile::tempfile().map_err(|e| Error::io("cannot make a temporary file", None, &e))
}

/// The saved image in `file`, from its start.
fn rewound(file: &std::fs::File) -> Result<std::io::BufReader<&std::fs::File>> {
    let mut reader = std::io::BufReader::new(file);
    reader
        .seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::io("cannot read the saved image", None, &e))?;
    Ok(reader)
}

/// The failure of `cmd` on `host`, `what` it was for, from its collected output.
fn captured(host: &str, what: String, cmd: &Cmd, out: &Output) -> Error {
    CommandFailure::new(host, what, cmd)
        .status(out.status)
        .stderr(out.stderr_tail(STDERR_TAIL_LINES))
        .into()
}

/// Runs `cmd` on `ex` (reading `stdin`), its output relayed with `prefix`; its failure keeps the
/// last lines of its stderr.
fn relayed(
    ex: &mut dyn Executor,
    report: &Report,
    prefix: &str,
    what: String,
    cmd: &Cmd,
    stdin: Option<&mut dyn std::io::Read>,
) -> Result<()> {
    let mut tail = StderrTail::new(STDERR_TAIL_LINES);
    let status = ex.run(cmd, stdin, &mut |s, l| {
        tail.keep(s, l);
        report.relay(prefix, s, l)
    })?;
    if status != 0 {
        let f = CommandFailure::new(ex.label(), what, cmd)
            .status(status)
            .stderr(tail.text());
        return Err(f.into());
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
        let file = temporary()?;
        let save = de::save_gzip(id);
        let saved = src.capture_to_file(&save, &file)?;
        if !saved.success() {
            let what = format!("saving image {id}");
            return Err(captured(&src.label(), what, &save, &saved));
        }
        let mut reader = rewound(&file)?;
        let what = format!("loading image {id}");
        relayed(
            dst,
            report,
            &label,
            what,
            &de::load_gzip(),
            Some(&mut reader),
        )?;
    }
    let tag = de::tag(id, reference);
    let tagged = dst.capture(&tag)?;
    if !tagged.success() {
        let what = format!("tagging image {id} as {reference}");
        return Err(captured(&label, what, &tag, &tagged));
    }
    Ok(())
}
