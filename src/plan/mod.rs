//! Plans: pure functions from (settings, manifest, affected units, state read from the target) to a
//! list of [`Step`]s. No I/O here: `plan` and `--dry-run` print exactly the steps an executor runs.

pub mod build;
pub mod stages;
pub mod test;

use crate::cmd::Cmd;
use crate::diag::Span;
use crate::manifest::Host;
use serde::Serialize;

/// What a stage would do, in order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// One unit of work, as data.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Stable id for reporting (`build:api`, `up:api@deploy@host:22`).
    pub id: String,
    /// The stage this step belongs to (`build`, `test`, `up`, …).
    pub stage: String,
    /// The unit (service, site, `migrations`) the step works for, if any.
    pub unit: Option<String>,
    pub target: Target,
    pub action: Action,
    /// Why this step is in the plan, in a few words.
    pub why: String,
    /// The manifest entry that configured it.
    #[serde(skip)]
    pub origin: Option<Span>,
}

/// Where a step runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The machine running deploy-action (the runner or laptop).
    Local,
    /// A host of the environment.
    Host(#[serde(serialize_with = "ser_host")] Host),
}

fn ser_host<S: serde::Serializer>(h: &Host, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&h.to_string())
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Target::Local => "local".into(),
            Target::Host(h) => h.label(),
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Run a command.
    Run {
        #[serde(serialize_with = "ser_cmd")]
        cmd: Cmd,
    },
    /// Write a file on the target.
    Upload {
        local: String,
        remote: String,
        mode: u32,
    },
    /// An HTTP request whose answer is checked.
    HttpCheck {
        url: String,
        expect_status: u16,
        contains: Option<String>,
        timeout_secs: u64,
    },
    /// A call to a SaaS API (Cloudflare, GitHub), described.
    ApiCall {
        service: String,
        description: String,
    },
    /// Wait for an approval.
    Approval {
        environment: String,
        plan_hash: String,
    },
}

fn ser_cmd<S: serde::Serializer>(c: &Cmd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.display())
}

impl Step {
    /// One line for people: what runs where.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Run { cmd } => cmd.display(),
            Action::Upload { local, remote, .. } => format!("upload {local} -> {remote}"),
            Action::HttpCheck {
                url,
                expect_status,
                contains,
                ..
            } => match contains {
                Some(c) => format!("GET {url} expect {expect_status} containing {c:?}"),
                None => format!("GET {url} expect {expect_status}"),
            },
            Action::ApiCall {
                service,
                description,
            } => format!("{service}: {description}"),
            Action::Approval {
                environment,
                plan_hash,
            } => {
                format!("approval for {environment} (plan {plan_hash})")
            }
        }
    }
}
