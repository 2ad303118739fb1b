//! Registry images on one host: the pull step of `up` (per service `pull: always | missing |
//! never`, after the compose files and pins are on the host and before `compose up`), and the repo
//! digests a release records for what runs and what ran before.
//!
//! The image pulled is the one `docker compose config` resolves for the service, pins applied;
//! the pull itself is `docker compose pull SERVICE`, the command `--dry-run` prints. A failed pull
//! fails the host before any container changes. Round trips: one to read what the host has of
//! every image, one for all the pulls; one for the digests after the deploy.
//!
//! Stays out of: which services are deployed, and the policy itself (`plan/up.rs`:
//! [`pu::pull_when`], [`pu::pull_decision`]).

use super::HostDeploy;
use crate::cmd::compose::{Compose, ServiceConfig};
use crate::cmd::docker_engine::{self as de, ImageInfo, Script, Section};
use crate::error::{Error, Result};
use crate::plan::up::{self as pu, PullDecision, PullWhen};
use crate::state::ReleaseRecord;
use std::collections::BTreeMap;

/// Lines of a failed pull's output shown.
const PULL_TAIL_LINES: usize = 4;

/// One selected service the pull step considers.
struct Wanted {
    service: String,
    image: String,
    when: PullWhen,
}

impl HostDeploy<'_> {
    /// When the pull step pulls `compose_service`'s image (`image`: as compose resolves it, when
    /// known); `None` when it is not the pull step's business.
    fn pull_when_of(&self, compose_service: &str, image: Option<&str>) -> Option<PullWhen> {
        let policy = self
            .manifest
            .services
            .values()
            .find(|s| s.compose_service == compose_service)
            .map(|s| s.pull)
            .unwrap_or_default();
        pu::pull_when(
            policy,
            self.req.images.get(compose_service).map(String::as_str),
            self.req.user_images.contains(compose_service),
            image,
        )
    }

    /// The pull steps a dry run shows: the selected services and when each is pulled.
    pub(super) fn pull_preview(&self, selected: &[String]) -> Vec<(String, PullWhen)> {
        selected
            .iter()
            .filter_map(|s| {
                let pinned = self.req.images.get(s).map(String::as_str);
                self.pull_when_of(s, pinned).map(|w| (s.clone(), w))
            })
            .collect()
    }

    /// Pulls the selected services' registry images as their `pull:` says, saying per service
    /// what was pulled and whether the image changed (its id before and after). A failed pull is
    /// an error naming the image, with docker's message; no container has changed then.
    pub(super) fn pull_images(
        &mut self,
        c: &Compose,
        config: &BTreeMap<String, ServiceConfig>,
        selected: &[String],
    ) -> Result<()> {
        let wanted: Vec<Wanted> = selected
            .iter()
            .filter_map(|svc| {
                // No image: compose builds it on the host; nothing to pull.
                let image = config.get(svc)?.image.clone()?;
                let when = self.pull_when_of(svc, Some(&image))?;
                Some(Wanted {
                    service: svc.clone(),
                    image,
                    when,
                })
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let have = self.image_infos_each(wanted.iter().map(|w| w.image.as_str()))?;
        let mut pulls: Vec<(&Wanted, Option<&ImageInfo>)> = Vec::new();
        for (w, local) in wanted.iter().zip(&have) {
            match pu::pull_decision(w.when, &w.image, local.as_ref()) {
                PullDecision::Pull => pulls.push((w, local.as_ref())),
                PullDecision::Keep(why) => self.report.info(&format!(
                    "{}: {}: {} not pulled: {why}{}",
                    self.label(),
                    w.service,
                    w.image,
                    local
                        .as_ref()
                        .map(|i| format!("; the host's image {} is used", short(&i.id)))
                        .unwrap_or_default()
                )),
            }
        }
        self.run_pulls(c, &pulls)
    }

    /// The pulls, with what each image is after it: one round trip. Says per service whether the
    /// image changed; fails naming every image that could not be pulled.
    fn run_pulls(&mut self, c: &Compose, pulls: &[(&Wanted, Option<&ImageInfo>)]) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        self.report.info(&format!(
            "{}: pulling {}",
            self.label(),
            pulls
                .iter()
                .map(|(w, _)| format!("{} ({})", w.image, w.service))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut s = Script::new();
        for (i, (w, _)) in pulls.iter().enumerate() {
            let line = c.pull(std::slice::from_ref(&w.service)).to_shell_line();
            s.shell(&format!("pull:{i}"), &format!("{line} 2>&1"));
            s.run(
                &format!("now:{i}"),
                &de::image_infos(std::slice::from_ref(&w.image)),
            );
        }
        let (out, secs) = self.script(&s)?;
        let mut failed = Vec::new();
        for (i, (w, before)) in pulls.iter().enumerate() {
            let pulled = secs.get(&format!("pull:{i}"));
            if !pulled.is_some_and(Section::success) {
                let said = pulled
                    .map(|p| tail(&p.stdout, PULL_TAIL_LINES))
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| out.stderr_tail(PULL_TAIL_LINES).trim().to_string());
                failed.push(format!("cannot pull {} for {}: {said}", w.image, w.service));
                continue;
            }
            let now = secs
                .get(&format!("now:{i}"))
                .and_then(|n| de::parse_image_infos(&n.stdout).into_iter().next());
            let change = match (before, now) {
                (Some(b), Some(n)) if b.id == n.id => format!("unchanged ({})", short(&n.id)),
                (Some(b), Some(n)) => {
                    format!("the image changed ({} → {})", short(&b.id), short(&n.id))
                }
                (None, Some(n)) => format!("new on this host ({})", short(&n.id)),
                (_, None) => "pulled, but the host does not show it".to_string(),
            };
            self.report.info(&format!(
                "{}: {}: pulled {}: {change}",
                self.label(),
                w.service,
                w.image
            ));
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(Error::StageFailed(format!(
            "{}: {}; nothing was deployed on this host: its containers run what they ran before",
            self.label(),
            failed.join("; ")
        )))
    }

    /// What the host has of each image (`None`: not there): one round trip.
    fn image_infos_each<'i>(
        &mut self,
        images: impl Iterator<Item = &'i str>,
    ) -> Result<Vec<Option<ImageInfo>>> {
        let images: Vec<String> = images.map(String::from).collect();
        let mut s = Script::new();
        for (i, image) in images.iter().enumerate() {
            s.run(
                &format!("have:{i}"),
                &de::image_infos(std::slice::from_ref(image)),
            );
        }
        let (_, secs) = self.script(&s)?;
        Ok((0..images.len())
            .map(|i| {
                secs.get(&format!("have:{i}"))
                    .filter(|sec| sec.success())
                    .and_then(|sec| de::parse_image_infos(&sec.stdout).into_iter().next())
            })
            .collect())
    }

    /// After a failed pull: the pins as they were, and no copy of this release's files (nothing
    /// else was changed but the uploaded files).
    pub(super) fn undo_prepare(&mut self, n: u64, old_pins: &BTreeMap<String, String>) {
        let mut s = Script::new();
        s.write(
            "pins",
            &self.override_path(),
            &self.pins_text(old_pins),
            0o644,
        );
        s.run("copy", &de::rm_rf(&self.files_dir(n)));
        if let Err(e) = self.script(&s) {
            self.report.warn(&format!(
                "{}: could not restore the pins: {e}",
                self.label()
            ));
        }
    }

    /// Fills the repo digest (`repo@sha256:…`) of every service of `record` and of its
    /// `previous` entries from `docker image inspect` of their image ids: one round trip. A
    /// service whose image has none (built or loaded on the host) keeps `None`.
    pub(super) fn record_digests(&mut self, record: &mut ReleaseRecord) {
        let mut ids: Vec<String> = record
            .services
            .values()
            .chain(record.previous.values())
            .map(|s| s.image_id.clone())
            .filter(|id| !id.is_empty())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return;
        }
        // Some ids may be gone (exit 1): the lines of the others still count.
        let Ok(out) = self.capture(&de::image_infos(&ids)) else {
            return;
        };
        let infos: BTreeMap<String, Vec<String>> = de::parse_image_infos(&out.stdout_str())
            .into_iter()
            .map(|i| (i.id, i.repo_digests))
            .collect();
        for st in record
            .services
            .values_mut()
            .chain(record.previous.values_mut())
        {
            if let Some(digests) = infos.get(&st.image_id) {
                st.digest = de::pick_digest(&st.image, digests);
            }
        }
    }
}

/// `sha256:` and the first 12 hex digits of an image id.
fn short(id: &str) -> String {
    crate::ledger::first_chars(id, 19).to_string()
}

/// The last `n` non-empty lines of `text`, joined with ` / `.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_failure_keeps_the_last_lines_of_what_docker_said() {
        let said = " web Pulling \n web Error manifest unknown\n\nError response from daemon: manifest for r/x:nope not found\n";
        assert_eq!(
            tail(said, 2),
            "web Error manifest unknown / Error response from daemon: manifest for r/x:nope not found"
        );
        assert_eq!(tail("", 3), "");
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
    }
}
