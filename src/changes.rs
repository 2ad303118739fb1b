//! Change detection: which units a commit range touches.
//!
//! The affected units are those whose `paths:` globs match a file listed by
//! `git diff --name-only BASE HEAD` (relative to the repository root, the directory holding deploy.yml).
//! `--all` and `--only` override. Everything here is pure (glob matching, reading the GitHub event,
//! choosing the base); [`git`] is the reader: it runs git through an
//! [`Executor`](crate::exec::Executor) (the diff goes to a file and is read back entry by entry, so a
//! 100k-file diff never sits in memory), reads the event payload, and hands the rest to the pure
//! part. It stays out of printing: the caller reports.
//!
//! Range semantics: for a pull request and for `--base REF` we diff from the merge base
//! (`git diff BASE...HEAD`), so changes that landed on the base branch after the branch was cut do not
//! count — what users mean by "what this branch changes". For a push we diff the trees of the pushed
//! range (`before` → HEAD) directly, so a force push is compared with what was there before it.

pub mod git;

use crate::diag::suggest;
use crate::manifest::Manifest;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

/// The units a run acts on, and how they were chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// Affected unit names, in manifest order (services, sites, `migrations`).
    pub units: Vec<String>,
    /// The base commit the diff started from (resolved sha), when there was a diff.
    pub base: Option<String>,
    /// The commit acted on (`git rev-parse HEAD`).
    pub head: String,
    pub reason: Reason,
    /// How many files the diff listed (0 when no diff ran).
    pub changed_files: usize,
    /// Why a preferred base was not used (the live release's commit is not in this clone, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Affected {
    pub fn contains(&self, unit: &str) -> bool {
        self.units.iter().any(|u| u == unit)
    }
}

/// Why these units were chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// `git diff` from a base; `from` says where the base came from.
    Diff { from: BaseFrom, range: String },
    /// `--all`.
    All,
    /// `--only NAME…`.
    Only,
    /// HEAD has no parent: every unit is new.
    FirstCommit,
    /// A push that created a branch (`before` is all zeros): nothing to compare with.
    NewBranch,
}

impl Reason {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Reason::Diff { from, range } => format!("files changed in {range} ({})", from.describe()),
            Reason::All => "--all: every unit".into(),
            Reason::Only => "--only: the units named".into(),
            Reason::FirstCommit => {
                "HEAD is the repository's first commit: every unit is affected".into()
            }
            Reason::NewBranch => {
                "the push created a new branch (event `before` is all zeros), so there is nothing to \
                 compare with: every unit is affected"
                    .into()
            }
        }
    }
}

/// Where the base of the diff came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseFrom {
    /// `--base REF`.
    Flag,
    /// The `before` of a GitHub push event.
    PushEvent,
    /// `pull_request.base.sha` of a GitHub pull_request(_target) event.
    PullRequestEvent,
    /// The default, `HEAD~1`.
    Parent,
    /// The commit of the environment's live release: what the environment runs now.
    LiveRelease,
}

impl BaseFrom {
    pub fn describe(self) -> &'static str {
        match self {
            BaseFrom::Flag => "base from --base",
            BaseFrom::PushEvent => "base: the push event's `before`",
            BaseFrom::PullRequestEvent => "base: the pull request's base commit",
            BaseFrom::Parent => "base: HEAD~1",
            BaseFrom::LiveRelease => "base: the commit of the environment's live release",
        }
    }

    /// Whether to diff from the merge base (`BASE...HEAD`) rather than the tree of BASE.
    pub fn merge_base(self) -> bool {
        matches!(self, BaseFrom::Flag | BaseFrom::PullRequestEvent)
    }
}

/// A change-detection error: bad input or a repository that cannot answer. Exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesError {
    pub message: String,
    pub help: Option<String>,
}

impl ChangesError {
    fn new(message: impl Into<String>, help: Option<String>) -> Self {
        ChangesError {
            message: message.into(),
            help,
        }
    }
}

impl std::fmt::Display for ChangesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChangesError {}

impl From<ChangesError> for crate::error::Error {
    fn from(e: ChangesError) -> Self {
        crate::error::Error::Usage {
            message: e.message,
            help: e.help,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Glob matching (pure)

/// All units' globs compiled into one [`GlobSet`], with a map from glob back to unit.
pub struct UnitMatcher {
    set: GlobSet,
    /// For each glob of the set, the index of its unit in `names`.
    owner: Vec<usize>,
    names: Vec<String>,
    hit: Vec<bool>,
    hits: usize,
    scratch: Vec<usize>,
}

impl UnitMatcher {
    /// Compiles `(unit, globs)` pairs. Globs are relative to the repository root: `*` stays within
    /// one path component, `**` crosses any number of them, a leading `./` or `/` is ignored, and a
    /// glob naming a directory (`services/api` or `services/api/`) also matches everything under it.
    pub fn new<'a, I, G>(units: I) -> Result<UnitMatcher, ChangesError>
    where
        I: IntoIterator<Item = (&'a str, G)>,
        G: IntoIterator<Item = &'a str>,
    {
        let mut builder = GlobSetBuilder::new();
        let mut owner = Vec::new();
        let mut names = Vec::new();
        for (i, (name, globs)) in units.into_iter().enumerate() {
            names.push(name.to_string());
            for glob in globs {
                for pattern in expand(glob) {
                    let g = GlobBuilder::new(&pattern)
                        .literal_separator(true)
                        .backslash_escape(true)
                        .build()
                        .map_err(|e| {
                            ChangesError::new(
                                format!("unit `{name}`: invalid glob `{glob}`: {}", e.kind()),
                                Some("globs use `*`, `?`, `[abc]`, `{a,b}` and `**`".into()),
                            )
                        })?;
                    builder.add(g);
                    owner.push(i);
                }
            }
        }
        let set = builder
            .build()
            .map_err(|e| ChangesError::new(format!("cannot compile the path globs: {e}"), None))?;
        let n = names.len();
        Ok(UnitMatcher {
            set,
            owner,
            names,
            hit: vec![false; n],
            hits: 0,
            scratch: Vec::new(),
        })
    }

    /// The matcher for every unit of a manifest.
    pub fn for_manifest(m: &Manifest) -> Result<UnitMatcher, ChangesError> {
        let units: Vec<(&str, Vec<&str>)> = m
            .units()
            .into_iter()
            .map(|(name, _)| {
                (
                    name,
                    m.unit_paths(name).iter().map(String::as_str).collect(),
                )
            })
            .collect();
        UnitMatcher::new(units.iter().map(|(n, g)| (*n, g.iter().copied())))
    }

    /// Records one changed path (relative to the repository root).
    pub fn add_path(&mut self, path: &str) {
        if self.all_hit() {
            return;
        }
        let path = path.strip_prefix("./").unwrap_or(path);
        self.set.matches_into(path, &mut self.scratch);
        for &g in &self.scratch {
            let u = self.owner[g];
            if !self.hit[u] {
                self.hit[u] = true;
                self.hits += 1;
            }
        }
    }

    /// True once every unit matched (the rest of a diff cannot change the answer).
    pub fn all_hit(&self) -> bool {
        self.hits == self.names.len()
    }

    /// The matched units, in the order they were given.
    pub fn matched(&self) -> Vec<String> {
        self.names
            .iter()
            .zip(&self.hit)
            .filter(|(_, h)| **h)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// The patterns one user glob stands for.
fn expand(glob: &str) -> Vec<String> {
    let g = glob.trim();
    let g = g.strip_prefix("./").unwrap_or(g);
    let g = g.trim_start_matches('/');
    let g = g.trim_end_matches('/');
    if g.is_empty() {
        return vec!["**".into()];
    }
    if g.ends_with("/**") || g == "**" {
        vec![g.to_string()]
    } else {
        vec![g.to_string(), format!("{g}/**")]
    }
}

/// Affected units of `m` for a list of changed paths (pure; used by [`detect`](git::detect) and by tests).
pub fn match_paths<'a>(
    m: &Manifest,
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, ChangesError> {
    let mut matcher = UnitMatcher::for_manifest(m)?;
    for p in paths {
        matcher.add_path(p);
    }
    Ok(matcher.matched())
}

// ---------------------------------------------------------------------------------------------
// --only and --all (pure)

/// The units named by `--only`, in manifest order; an unknown name is an error with a suggestion.
pub fn select_only(m: &Manifest, only: &[String]) -> Result<Vec<String>, ChangesError> {
    let units = m.units();
    let names: Vec<&str> = units.iter().map(|(n, _)| *n).collect();
    for wanted in only {
        if !names.contains(&wanted.as_str()) {
            let list = if names.is_empty() {
                "the manifest defines no units".to_string()
            } else {
                format!("units: {}", names.join(", "))
            };
            let help = match suggest::closest(wanted, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? {list}"),
                None => list,
            };
            return Err(ChangesError::new(
                format!("--only: unknown unit `{wanted}`"),
                Some(help),
            ));
        }
    }
    Ok(names
        .iter()
        .filter(|n| only.iter().any(|o| o == *n))
        .map(|n| n.to_string())
        .collect())
}

/// Every unit, in manifest order.
pub fn all_units(m: &Manifest) -> Vec<String> {
    m.units().into_iter().map(|(n, _)| n.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The GitHub event (pure)

/// What a GitHub event says about the base of the diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBase {
    /// Diff from this commit.
    Commit { sha: String, from: BaseFrom },
    /// A push that created a branch: everything is new.
    NewBranch,
    /// The event carries no base (workflow_dispatch, schedule …).
    None,
}

/// Reads the base from a GitHub event payload (`GITHUB_EVENT_NAME`, the JSON at `GITHUB_EVENT_PATH`).
pub fn event_base(event_name: &str, payload: &str) -> Result<EventBase, ChangesError> {
    let bad = |e: String| {
        ChangesError::new(
            format!("cannot read the GitHub event payload ({event_name}): {e}"),
            Some("pass --base REF to choose the base commit yourself".into()),
        )
    };
    let field = |v: &serde_json::Value, ptr: &str| {
        v.pointer(ptr)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    match event_name {
        "push" => {
            let v: serde_json::Value =
                serde_json::from_str(payload).map_err(|e| bad(e.to_string()))?;
            match field(&v, "/before") {
                Some(sha) if sha.bytes().all(|b| b == b'0') => Ok(EventBase::NewBranch),
                Some(sha) => Ok(EventBase::Commit {
                    sha,
                    from: BaseFrom::PushEvent,
                }),
                None => Err(bad("no `before` field".into())),
            }
        }
        "pull_request" | "pull_request_target" => {
            let v: serde_json::Value =
                serde_json::from_str(payload).map_err(|e| bad(e.to_string()))?;
            match field(&v, "/pull_request/base/sha") {
                Some(sha) => Ok(EventBase::Commit {
                    sha,
                    from: BaseFrom::PullRequestEvent,
                }),
                None => Err(bad("no `pull_request.base.sha` field".into())),
            }
        }
        _ => Ok(EventBase::None),
    }
}

/// The environment's live release, whose commit is the preferred base of a run on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseBase {
    pub env: String,
    pub number: u64,
    pub sha: String,
}

/// The base to diff from, in order of precedence: `--base`, the live release's commit (when it is
/// in the clone: `release_usable`), the GitHub event, `HEAD~1`. `None` means there is nothing to
/// compare with (a push that created a branch).
pub fn choose_base(
    flag: Option<&str>,
    release: Option<&ReleaseBase>,
    release_usable: bool,
    event: EventBase,
) -> Option<(String, BaseFrom)> {
    match (flag, release, event) {
        (Some(r), _, _) => Some((r.to_string(), BaseFrom::Flag)),
        (None, Some(rel), _) if release_usable => Some((rel.sha.clone(), BaseFrom::LiveRelease)),
        (None, _, EventBase::Commit { sha, from }) => Some((sha, from)),
        (None, _, EventBase::NewBranch) => None,
        (None, _, EventBase::None) => Some(("HEAD~1".into(), BaseFrom::Parent)),
    }
}

/// The message for a base commit that is not in the clone.
pub fn missing_base_error(base: &str, from: BaseFrom, shallow: bool) -> ChangesError {
    let what = match from {
        BaseFrom::Flag => format!("the base `{base}` (from --base)"),
        BaseFrom::PushEvent => format!("the push's previous commit {base}"),
        BaseFrom::PullRequestEvent => format!("the pull request's base commit {base}"),
        BaseFrom::Parent => "HEAD~1".to_string(),
        BaseFrom::LiveRelease => format!("the live release's commit {base}"),
    };
    let mut help = String::new();
    if shallow {
        help.push_str("this is a shallow clone without enough history. ");
    }
    help.push_str(
        "Fetch enough history: with actions/checkout set `fetch-depth: 0`, or run \
         `git fetch --deepen=50` (or `git fetch origin ",
    );
    help.push_str(if from == BaseFrom::Parent {
        "HEAD~1"
    } else {
        base
    });
    help.push_str("`); or pass --all / --only UNIT to skip change detection");
    ChangesError::new(format!("{what} is not in this clone"), Some(help))
}

/// The first 12 characters of a sha, for display (char-safe: shas come from outside data).
pub fn short(sha: &str) -> &str {
    sha.char_indices().nth(12).map_or(sha, |(i, _)| &sha[..i])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diag::{Source, Span};
    use crate::manifest::{
        Approval, BackupPolicy, Build, Engine, Environment, Host, Migrations, Service, Site,
    };
    use indexmap::IndexMap;

    /// A small manifest built in code: services `api` (docker build) and `worker` (command build),
    /// site `web`, migrations, and one environment `staging` on `local` + one SSH host.
    /// An `Affected` naming `units` (as `--all` would), for the planners' tests.
    pub(crate) fn affected(units: &[&str]) -> Affected {
        Affected {
            units: units.iter().map(|u| u.to_string()).collect(),
            base: None,
            head: "0123456789abcdef0123456789abcdef01234567".into(),
            reason: Reason::All,
            changed_files: 0,
            notes: Vec::new(),
        }
    }

    pub(crate) fn sample() -> Manifest {
        let mut services = IndexMap::new();
        services.insert(
            "api".to_string(),
            Service {
                name: "api".into(),
                span: Span::default(),
                compose_service: "api".into(),
                paths: vec!["services/api/**".into(), "libs/**".into()],
                build: Some(Build::Docker {
                    context: "services/api".into(),
                    dockerfile: "Dockerfile".into(),
                    image: "shop/api".into(),
                    span: Span::default(),
                }),
                test: Some("cargo test -p api".into()),
                health: None,
                secrets: vec![],
                pull: Default::default(),
                env: vec![],
            },
        );
        services.insert(
            "worker".to_string(),
            Service {
                name: "worker".into(),
                span: Span::default(),
                compose_service: "jobs".into(),
                paths: vec!["services/worker".into(), "*.toml".into()],
                build: Some(Build::Command {
                    command: "make worker".into(),
                    span: Span::default(),
                }),
                test: None,
                health: None,
                secrets: vec![],
                pull: Default::default(),
                env: vec![],
            },
        );
        let mut sites = IndexMap::new();
        sites.insert(
            "web".to_string(),
            Site {
                name: "web".into(),
                span: Span::default(),
                project: "shop-web".into(),
                dir: "clients/web/dist".into(),
                build: Some("npm ci && npm run build".into()),
                paths: vec!["clients/web/**".into()],
                production_branch: "main".into(),
                env: vec![],
            },
        );
        let mut environments = IndexMap::new();
        environments.insert(
            "staging".to_string(),
            Environment {
                name: "staging".into(),
                span: Span::default(),
                hosts: vec![
                    Host::Local,
                    Host::Ssh {
                        user: "deploy".into(),
                        host: "staging.example.com".into(),
                        port: 22,
                    },
                ],
                dir: "/srv/shop".into(),
                compose_files: vec!["compose.yml".into(), "compose.staging.yml".into()],
                compose_project: "shop".into(),
                approval: Approval::None,
                approvers: vec![],
                database: None,
                url: None,
                promote_from: None,
                keep_releases: 5,
                backup: BackupPolicy::Auto,
                min_approvals: 1,
                allow_self_approval: false,
                branches: vec![],
                secrets: vec![],
            },
        );
        Manifest {
            source: Source::new("deploy.yml", ""),
            version: 1,
            project: "shop".into(),
            environments,
            services,
            sites,
            migrations: Some(Migrations {
                span: Span::default(),
                dir: "migrations".into(),
                engine: Engine::Postgres,
                paths: vec!["migrations/**".into()],
            }),
        }
    }

    #[test]
    fn globs_match_per_unit_in_manifest_order() {
        let m = sample();
        let got = match_paths(&m, ["migrations/001.sql", "libs/x/y.rs"]).unwrap();
        assert_eq!(got, vec!["api", "migrations"]);
        assert_eq!(
            match_paths(&m, ["clients/web/src/app.ts"]).unwrap(),
            vec!["web"]
        );
        assert!(
            match_paths(&m, ["README.md", "docs/x.md"])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn star_stays_in_one_component_and_double_star_crosses() {
        let mut mt = UnitMatcher::new([("a", ["src/*.rs"])]).unwrap();
        mt.add_path("src/deep/x.rs");
        assert!(mt.matched().is_empty(), "* must not cross /");
        mt.add_path("src/x.rs");
        assert_eq!(mt.matched(), vec!["a"]);

        let mut mt = UnitMatcher::new([("a", ["**/Dockerfile"])]).unwrap();
        mt.add_path("Dockerfile");
        assert_eq!(mt.matched(), vec!["a"], "**/ matches at the root too");

        // `*.toml` is anchored at the root.
        let m = sample();
        assert_eq!(match_paths(&m, ["Cargo.toml"]).unwrap(), vec!["worker"]);
        assert!(match_paths(&m, ["sub/Cargo.toml"]).unwrap().is_empty());
    }

    #[test]
    fn a_directory_glob_matches_its_contents_and_prefixes_are_ignored() {
        let mut mt = UnitMatcher::new([
            ("a", vec!["./services/a/"]),
            ("b", vec!["/services/b"]),
            ("c", vec!["services/c"]),
        ])
        .unwrap();
        mt.add_path("services/a/main.go");
        mt.add_path("services/b/x/y");
        mt.add_path("services/cc/z");
        assert_eq!(mt.matched(), vec!["a", "b"]);
        mt.add_path("services/c");
        assert!(mt.all_hit());
    }

    #[test]
    fn braces_and_classes_work_and_bad_globs_are_errors() {
        let mut mt = UnitMatcher::new([("a", ["{x,y}/[ab].txt"])]).unwrap();
        mt.add_path("y/b.txt");
        assert_eq!(mt.matched(), vec!["a"]);
        let err = UnitMatcher::new([("api", ["src/[a"])])
            .err()
            .expect("unclosed class is an error");
        assert!(
            err.message.contains("unit `api`: invalid glob `src/[a`"),
            "{err:?}"
        );
    }

    #[test]
    fn only_keeps_manifest_order_and_suggests_for_typos() {
        let m = sample();
        assert_eq!(
            select_only(&m, &["migrations".into(), "api".into()]).unwrap(),
            vec!["api", "migrations"]
        );
        let err = select_only(&m, &["wrker".into()]).unwrap_err();
        assert_eq!(err.message, "--only: unknown unit `wrker`");
        assert!(
            err.help.unwrap().starts_with("did you mean `worker`?"),
            "suggestion"
        );
        assert_eq!(all_units(&m), vec!["api", "worker", "web", "migrations"]);
    }

    #[test]
    fn push_event_before_and_new_branch() {
        let sha = "a".repeat(40);
        assert_eq!(
            event_base("push", &format!(r#"{{"before":"{sha}","after":"b"}}"#)).unwrap(),
            EventBase::Commit {
                sha: sha.clone(),
                from: BaseFrom::PushEvent
            }
        );
        assert_eq!(
            event_base("push", &format!(r#"{{"before":"{}"}}"#, "0".repeat(40))).unwrap(),
            EventBase::NewBranch
        );
        assert!(event_base("push", "{}").is_err());
        assert!(
            event_base("push", "not json")
                .unwrap_err()
                .message
                .contains("push")
        );
    }

    #[test]
    fn pull_request_events_use_the_base_sha() {
        let payload =
            r#"{"pull_request":{"base":{"sha":"abc123","ref":"main"},"head":{"sha":"def"}}}"#;
        for name in ["pull_request", "pull_request_target"] {
            assert_eq!(
                event_base(name, payload).unwrap(),
                EventBase::Commit {
                    sha: "abc123".into(),
                    from: BaseFrom::PullRequestEvent
                }
            );
        }
        assert_eq!(
            event_base("workflow_dispatch", "{}").unwrap(),
            EventBase::None
        );
    }

    #[test]
    fn base_precedence_flag_then_live_release_then_event_then_parent() {
        let ev = EventBase::Commit {
            sha: "e".into(),
            from: BaseFrom::PushEvent,
        };
        let rel = ReleaseBase {
            env: "production".into(),
            number: 7,
            sha: "r".into(),
        };
        assert_eq!(
            choose_base(Some("main"), Some(&rel), true, ev.clone()),
            Some(("main".into(), BaseFrom::Flag))
        );
        assert_eq!(
            choose_base(Some("main"), None, false, EventBase::NewBranch),
            Some(("main".into(), BaseFrom::Flag)),
            "--base wins over a new-branch push"
        );
        assert_eq!(
            choose_base(None, Some(&rel), true, ev.clone()),
            Some(("r".into(), BaseFrom::LiveRelease))
        );
        assert_eq!(
            choose_base(None, Some(&rel), true, EventBase::NewBranch),
            Some(("r".into(), BaseFrom::LiveRelease)),
            "a live release is a base even for a push that created the branch"
        );
        assert_eq!(
            choose_base(None, Some(&rel), false, ev.clone()),
            Some(("e".into(), BaseFrom::PushEvent)),
            "a live release whose commit is not in the clone gives way to the event"
        );
        assert_eq!(
            choose_base(None, None, false, ev),
            Some(("e".into(), BaseFrom::PushEvent))
        );
        assert_eq!(choose_base(None, None, false, EventBase::NewBranch), None);
        assert_eq!(
            choose_base(None, None, false, EventBase::None),
            Some(("HEAD~1".into(), BaseFrom::Parent))
        );
        assert!(BaseFrom::PullRequestEvent.merge_base() && !BaseFrom::PushEvent.merge_base());
    }

    #[test]
    fn missing_base_says_how_to_fetch() {
        let e = missing_base_error("abc", BaseFrom::PushEvent, true);
        assert!(e.message.contains("abc is not in this clone"));
        let help = e.help.unwrap();
        assert!(help.contains("fetch-depth: 0"), "{help}");
        assert!(help.contains("git fetch --deepen="), "{help}");
        assert!(help.contains("git fetch origin abc"), "{help}");
        assert!(help.contains("shallow"), "{help}");
    }

    #[test]
    fn affected_serializes_reason_with_a_kind() {
        let a = Affected {
            units: vec!["api".into()],
            base: Some("b".into()),
            head: "h".into(),
            reason: Reason::Diff {
                from: BaseFrom::Parent,
                range: "b..h".into(),
            },
            changed_files: 3,
            notes: Vec::new(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["reason"]["kind"], "diff");
        assert_eq!(v["reason"]["from"], "parent");
        assert_eq!(v["changed_files"], 3);
    }
}
