//! What each step of a compose host's run does, as data ([`ComposeAction`]), and the one line
//! `plan` and `--dry-run` print for it ([`ComposeAction::describe`]). The performer
//! (`deploy/compose/`) carries out exactly these; where it decides something only the run can know
//! (whether compose #12069's probe allows a plain `up`, whether a shipped image is already there),
//! the line says so.
//!
//! Pure: data and words.

use crate::cmd::Cmd;
use serde::Serialize;
use std::collections::BTreeMap;

/// One step of a compose host's run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ComposeAction {
    /// Take the environment lock on a host (every host before the first one changes).
    Lock {
        env: String,
        lock_dir: String,
        /// `--lock-wait`, in seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        wait_secs: Option<u64>,
    },
    /// Bring an image to the host: one built on this machine (`from` is `local`), or (promote) the
    /// exact image of the source environment, taken from its host.
    Ship {
        service: String,
        image: String,
        /// The image id to ship (promote), when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        from: String,
    },
    /// Mark releases a run that did not finish left `in_progress` as `interrupted`.
    Interrupted { releases: Vec<u64> },
    /// Install the release's compose and env files, their copy, the secrets files, the override.
    Files(Files),
    /// Pull registry images (one round trip for all).
    Pull { pulls: Vec<PullOne> },
    /// The release record, `in_progress`, and the running images tagged for rollback.
    Record { release: u64, protect: Vec<Protect> },
    /// `compose up` of the selected services.
    Up {
        #[serde(serialize_with = "super::super::ser_cmd")]
        cmd: Cmd,
        services: Vec<String>,
        check_12069: Check12069,
    },
    /// The health gate of the selected services.
    Gate { services: Vec<GateCheck> },
    /// The services that failed their gate, back on what ran before (the rollback branch).
    Rollback {
        release: u64,
        services: Vec<Back>,
        #[serde(skip_serializing_if = "Option::is_none")]
        restore_from: Option<u64>,
    },
    /// Release tags, the final record, the superseded one, retention, audit.
    Finish {
        release: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        superseded: Option<u64>,
        keep: u32,
    },
}

/// The files step.
#[derive(Clone, Debug, Serialize)]
pub struct Files {
    pub release: u64,
    pub dir: String,
    /// `<dir>/.deploy-action/files/<n>`.
    pub copy_dir: String,
    /// From the repository (none when restoring).
    pub uploads: Vec<FileUpload>,
    /// Restore release `n`'s files instead (rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<u64>,
    /// Compose services whose secrets file is written (their values are never in the plan).
    pub secrets: Vec<String>,
    /// Compose services that no longer have secrets: their file goes.
    pub dropped: Vec<String>,
    /// The override file's pins after this run.
    pub pins: BTreeMap<String, String>,
}

/// One file uploaded from the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileUpload {
    pub local: String,
    pub remote: String,
    pub mode: u32,
}

/// One image the pull step pulls.
#[derive(Clone, Debug, Serialize)]
pub struct PullOne {
    pub service: String,
    pub image: String,
    #[serde(serialize_with = "super::super::ser_cmd")]
    pub cmd: Cmd,
}

/// A running image kept for rollback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Protect {
    pub service: String,
    pub image_id: String,
    pub tag: String,
}

/// Compose #12069 (2.26.0–2.29.2): how the up step avoids or reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check12069 {
    /// Not affected.
    None,
    /// Ask `docker compose --dry-run up` right before: a plain `up` when it touches no other
    /// service.
    PlainIfSafe,
    /// Keep `--no-deps` and ask `--dry-run up` in the background during the gate (the services
    /// wait on healthy dependencies, which a plain `up` would poll).
    Background,
}

/// One service's health gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateCheck {
    pub service: String,
    pub timeout_secs: u64,
    pub window_ms: u64,
    /// The HTTP check, in words (`GET url expect 200 containing "ok"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

/// One service the rollback branch may put back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Back {
    pub service: String,
    /// Its `…-release-<n>-before` tag; `None`: nothing ran before (first deploy): stopped.
    pub to: Option<String>,
}

/// `<n>` for an unknown release number (a plan made without reaching the host).
pub fn release_word(n: u64) -> String {
    if n == 0 { "<n>".into() } else { n.to_string() }
}

impl ComposeAction {
    /// The step in one line, for people.
    pub fn describe(&self) -> String {
        match self {
            ComposeAction::Lock {
                env,
                lock_dir,
                wait_secs,
            } => format!(
                "take the {env} lock: mkdir {lock_dir} with this run's owner file (exit 4 while another run holds it{}); held until every host is done",
                wait_secs
                    .map(|w| format!(", after waiting up to {w}s"))
                    .unwrap_or_default()
            ),
            ComposeAction::Ship {
                image, id, from, ..
            } => match id {
                Some(id) => format!(
                    "ship image {id} ({image}) from {from} unless the host has it (docker save | gzip there, docker load here), then docker tag {id} {image}"
                ),
                None => format!(
                    "ship {image} unless the host has the same image id: docker save {image} | gzip on {from}, streamed into docker load"
                ),
            },
            ComposeAction::Interrupted { releases } => format!(
                "mark release {} interrupted: left in_progress by a run that did not finish (record and audit line)",
                join(releases.iter().map(u64::to_string))
            ),
            ComposeAction::Files(f) => f.describe(),
            ComposeAction::Pull { pulls } => join_with(pulls.iter().map(|p| p.cmd.display()), "; "),
            ComposeAction::Record { release, protect } => {
                let mut s = format!(
                    "record release {} as in_progress (durably) with an audit line",
                    release_word(*release)
                );
                if !protect.is_empty() {
                    s.push_str("; keep the running images for rollback: ");
                    s.push_str(&join_with(
                        protect
                            .iter()
                            .map(|p| format!("docker tag {} {}", p.image_id, p.tag)),
                        "; ",
                    ));
                }
                s
            }
            ComposeAction::Up {
                cmd, check_12069, ..
            } => {
                let why = match check_12069 {
                    Check12069::None => "",
                    Check12069::PlainIfSafe => {
                        " (compose #12069: without --no-deps when `docker compose --dry-run up` shows it touches no other service)"
                    }
                    Check12069::Background => {
                        " (compose #12069: `docker compose --dry-run up` runs in the background during the health gate)"
                    }
                };
                format!("{}{why}", cmd.display())
            }
            ComposeAction::Gate { services } => format!(
                "health gate: {}",
                join_with(services.iter().map(GateCheck::describe), "; ")
            ),
            ComposeAction::Rollback {
                services,
                restore_from,
                ..
            } => {
                let each = join(services.iter().map(|b| match &b.to {
                    Some(tag) => format!("{} on {tag}", b.service),
                    None => format!("{} stopped (nothing ran before)", b.service),
                }));
                let files = restore_from
                    .map(|k| format!(", with release {k}'s compose and env files"))
                    .unwrap_or_default();
                format!(
                    "put each service that failed its gate back on what ran before: {each}{files}; then their health gate (after a signal: at once, without one)"
                )
            }
            ComposeAction::Finish {
                release,
                superseded,
                keep,
            } => format!(
                "release tags of what passed, the record of release {} (durably){}, retention (the newest {keep} releases and their tags are kept), audit log",
                release_word(*release),
                superseded
                    .map(|s| format!(", release {s} superseded when every service passed"))
                    .unwrap_or_default()
            ),
        }
    }
}

impl Files {
    fn describe(&self) -> String {
        let mut s = match self.restore_from {
            Some(k) => format!(
                "restore release {k}'s compose and env files into {} and copy them to {}",
                self.dir, self.copy_dir
            ),
            None => format!(
                "install {} into {} and copy them to {}",
                join(self.uploads.iter().map(|u| match u.mode {
                    0o644 => u.local.clone(),
                    m => format!("{} ({m:o})", u.local),
                })),
                self.dir,
                self.copy_dir
            ),
        };
        if !self.secrets.is_empty() {
            s.push_str(&format!(
                "; the secrets files of {} (600)",
                join(self.secrets.iter().cloned())
            ));
        }
        if !self.dropped.is_empty() {
            s.push_str(&format!(
                "; no secrets file for {} (removed if there is one)",
                join(self.dropped.iter().cloned())
            ));
        }
        s.push_str(&format!("; write {}", super::OVERRIDE_FILE));
        if !self.pins.is_empty() {
            s.push_str(&format!(
                " pinning {}",
                join(self.pins.iter().map(|(k, v)| format!("{k}={v}")))
            ));
        }
        s
    }
}

impl GateCheck {
    fn describe(&self) -> String {
        let http = self
            .http
            .as_ref()
            .map(|h| format!(" and {h}"))
            .unwrap_or_default();
        format!(
            "{} running (healthy, with a healthcheck){http} for a {:.1}s stability window, within {}s",
            self.service,
            self.window_ms as f64 / 1000.0,
            self.timeout_secs
        )
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    join_with(items, ", ")
}

fn join_with(items: impl Iterator<Item = String>, sep: &str) -> String {
    items.collect::<Vec<_>>().join(sep)
}
