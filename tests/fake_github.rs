//! A local GitHub REST API for the tests, following the published protocol (API version
//! 2022-11-28) for every endpoint the tool uses, with response bodies in the documented shapes
//! (octocrab's typed models parse them):
//!
//! - approvals: `GET /repos/{o}/{r}/actions/runs/{id}/approvals` (every run exists; its reviews
//!   are the ones a test adds);
//! - approval issues: `POST …/issues`, `PATCH …/issues/{n}` (`state`), `POST …/issues/{n}/comments`,
//!   `GET …/issues/{n}/comments` paginated by `per_page` (default 30, at most 100) and `page`, with
//!   a `Link` header (`rel="next"`, `"last"`, `"first"`, `"prev"`);
//! - git data: `POST …/git/tags` (tag objects), `GET …/git/tags/{sha}` (404 when unknown),
//!   `POST …/git/refs` (422 "Reference already exists"), `PATCH …/git/refs/{ref}` (422 "Reference
//!   does not exist", 422 "Update is not a fast forward" without `force`), `GET
//!   …/git/matching-refs/{prefix}` (sorted by name, `[]` when nothing matches);
//! - deployments: `POST …/deployments` (422 without `ref` or for an unknown ref; 409 "Commit status
//!   checks failed" when `required_contexts` is left out, because in Actions the running job's own
//!   pending check counts), `POST …/deployments/{id}/statuses` (404 for an unknown deployment, 422
//!   for an unknown state).
//!
//! Requests without `Authorization: Bearer <token>` (or `token <token>`) get 401, without a
//! `User-Agent` 403, with another `X-GitHub-Api-Version` 400. Every request is logged; faults are
//! injected per method and path prefix, a number of times, with headers (`retry-after`), a body, or
//! a dropped connection. A small threaded HTTP/1.1 server on 127.0.0.1:0 (std::net, one connection
//! per request).

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Comments to serve on an issue, computed from its body (so a test can quote its plan hash).
pub type Comments = Box<dyn Fn(&str) -> Vec<Value> + Send + Sync>;

/// The one date every object carries.
const DATE: &str = "2026-01-01T00:00:00Z";
const API_VERSION: &str = "2022-11-28";
const RATE_LIMIT: u64 = 1000;

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    pub authorization: String,
    pub user_agent: String,
    pub accept: String,
    pub api_version: String,
    /// The JSON body, `Null` when there is none.
    pub body: Value,
}

/// Answer a matching request with something else than the real response.
#[derive(Clone, Debug)]
pub struct Fault {
    method: String,
    path_prefix: String,
    /// 0: drop the connection without answering.
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    times: usize,
}

impl Fault {
    /// `status` once for requests of `method` whose target starts with `path_prefix`.
    pub fn new(method: &str, path_prefix: &str, status: u16) -> Fault {
        Fault {
            method: method.into(),
            path_prefix: path_prefix.into(),
            status,
            headers: Vec::new(),
            body: json!({"message": "injected fault"}),
            times: 1,
        }
    }
    /// The connection is closed without an answer.
    pub fn reset(method: &str, path_prefix: &str) -> Fault {
        Fault::new(method, path_prefix, 0)
    }
    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: Value) -> Fault {
        self.body = body;
        self
    }
}

pub struct State {
    pub log: Vec<Request>,
    /// Reviews of every run (`review()`), as `…/approvals` lists them.
    pub reviews: Vec<Value>,
    /// People's comments on an issue, from its body; the tool's own comments follow them.
    pub comments: Comments,
    /// number → the issue as the API shows it.
    pub issues: BTreeMap<u64, Value>,
    /// issue number → comments posted through the API.
    pub posted: BTreeMap<u64, Vec<Value>>,
    /// tag object sha → the tag object as the API shows it.
    pub tag_objects: BTreeMap<String, Value>,
    /// `refs/tags/x` → sha.
    pub refs: BTreeMap<String, String>,
    /// Deployments as requested, with the `id` given to each.
    pub deployments: Vec<Value>,
    /// deployment id → statuses as requested, in order.
    pub statuses: BTreeMap<u64, Vec<Value>>,
    pub faults: Vec<Fault>,
    next_id: u64,
}

pub struct FakeGitHub {
    pub url: String,
    pub token: String,
    pub state: Arc<Mutex<State>>,
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeGitHub {
    /// An empty repository: no reviews, no comments, no refs.
    pub fn start() -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let token = "ghs_fake_token_for_tests_1234".to_string();
        let state = Arc::new(Mutex::new(State {
            log: Vec::new(),
            reviews: Vec::new(),
            comments: Box::new(|_| Vec::new()),
            issues: BTreeMap::new(),
            posted: BTreeMap::new(),
            tag_objects: BTreeMap::new(),
            refs: BTreeMap::new(),
            deployments: Vec::new(),
            statuses: BTreeMap::new(),
            faults: Vec::new(),
            next_id: 1000,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, tok, base) = (state.clone(), stop.clone(), token.clone(), url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, tok, base) = (s.clone(), tok.clone(), base.clone());
                std::thread::spawn(move || serve(conn, &s, &tok, &base));
            }
        });
        FakeGitHub {
            url,
            token,
            state,
            port,
            stop,
        }
    }

    /// Adds reviews (`review()`) to every run's approval history.
    pub fn reviews(self, reviews: Vec<Value>) -> FakeGitHub {
        self.state.lock().unwrap().reviews.extend(reviews);
        self
    }

    /// The people's comments (`comment()`) on an issue, computed from its body.
    pub fn comments(self, f: impl Fn(&str) -> Vec<Value> + Send + Sync + 'static) -> FakeGitHub {
        self.state.lock().unwrap().comments = Box::new(f);
        self
    }

    pub fn fault(&self, fault: Fault) -> &Self {
        self.state.lock().unwrap().faults.push(fault);
        self
    }

    /// The next request of `method` whose target starts with `path_prefix` gets `status`.
    pub fn fail_once(&self, method: &str, path_prefix: &str, status: u16) {
        self.fault(Fault::new(method, path_prefix, status));
    }

    /// The `Authorization` header the fake accepts.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `METHOD target` of every request, in order.
    pub fn log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    /// The body of the first issue opened.
    pub fn issue_body(&self) -> Option<String> {
        let st = self.state.lock().unwrap();
        let issue = st.issues.values().next()?;
        issue["body"].as_str().map(String::from)
    }

    /// Whether the first issue opened is closed.
    pub fn closed(&self) -> bool {
        let st = self.state.lock().unwrap();
        st.issues
            .values()
            .next()
            .is_some_and(|i| i["state"] == "closed")
    }

    /// Points `refs/<name>` at `sha` as if it had been pushed.
    pub fn set_ref(&self, name: &str, sha: &str) {
        self.state
            .lock()
            .unwrap()
            .refs
            .insert(format!("refs/{name}"), sha.into());
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A user as the API shows it (`user`, `creator`).
pub fn user(login: &str) -> Value {
    let id = login
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        % 100_000_000;
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "", "url": api, "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"), "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": if login.ends_with("[bot]") { "Bot" } else { "User" }, "site_admin": false,
    })
}

/// Who the token belongs to.
fn token_owner() -> Value {
    user("github-actions[bot]")
}

/// An issue comment by `login`, as the API returns it (the fake numbers it when serving).
pub fn comment(login: &str, body: &str) -> Value {
    json!({
        "id": 1, "node_id": "IC_1", "url": "https://api.github.com/repos/o/r/issues/comments/1",
        "html_url": "https://github.com/o/r/issues/1#issuecomment-1",
        "issue_url": "https://api.github.com/repos/o/r/issues/1",
        "body": body, "user": user(login), "author_association": "COLLABORATOR",
        "created_at": DATE, "updated_at": DATE,
    })
}

/// A review of a run's deployment to `environment` (`state`: `approved` or `rejected`).
pub fn review(login: &str, state: &str, environment: &str, comment: &str) -> Value {
    json!({
        "environments": [{
            "id": 161_088_068, "node_id": "EN_1", "name": environment,
            "url": format!("https://api.github.com/repos/o/r/environments/{environment}"),
            "html_url": format!("https://github.com/o/r/deployments/activity_log?environments_filter={environment}"),
            "created_at": DATE, "updated_at": DATE,
        }],
        "state": state, "user": user(login), "comment": comment,
    })
}

/// The plan hash quoted in the approval issue's body.
pub fn hash_in(issue: &str) -> String {
    issue
        .split("Plan hash: `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .unwrap_or_default()
        .to_string()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn reply(status: u16, body: Value) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body,
    }
}

fn not_found() -> Response {
    reply(
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

fn unprocessable(message: &str) -> Response {
    reply(
        422,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": "422"}),
    )
}

use crate::harness::http::{Incoming, read_request};

fn serve(mut conn: TcpStream, state: &Mutex<State>, token: &str, base: &str) {
    let Ok(Some(req)) = read_request(&conn) else {
        return;
    };
    let Some(resp) = handle(state, token, base, req) else {
        return; // a dropped connection
    };
    let text = resp.body.to_string();
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-GitHub-Api-Version-Selected: {API_VERSION}\r\n",
        resp.status,
        text.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(text.as_bytes());
}

fn handle(state: &Mutex<State>, token: &str, base: &str, req: Incoming) -> Option<Response> {
    let header = |k: &str| req.headers.get(k).cloned().unwrap_or_default();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut st = state.lock().unwrap();
    st.log.push(Request {
        method: req.method.clone(),
        path: req.target.clone(),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
        accept: header("accept"),
        api_version: header("x-github-api-version"),
        body: body.clone(),
    });
    let used = st.log.len() as u64;
    let rate_headers = vec![
        ("X-RateLimit-Limit".to_string(), RATE_LIMIT.to_string()),
        (
            "X-RateLimit-Remaining".to_string(),
            RATE_LIMIT.saturating_sub(used).to_string(),
        ),
        ("X-RateLimit-Reset".to_string(), "1767229200".to_string()),
        ("X-RateLimit-Used".to_string(), used.to_string()),
        ("X-RateLimit-Resource".to_string(), "core".to_string()),
    ];
    if let Some(i) = st
        .faults
        .iter()
        .position(|f| f.method == req.method && req.target.starts_with(&f.path_prefix))
    {
        let fault = st.faults[i].clone();
        if fault.times <= 1 {
            st.faults.remove(i);
        } else {
            st.faults[i].times -= 1;
        }
        if fault.status == 0 {
            return None;
        }
        return Some(Response {
            status: fault.status,
            headers: fault.headers,
            body: fault.body,
        });
    }
    let mut resp = route(&mut st, token, base, &req, &body);
    resp.headers.extend(rate_headers);
    Some(resp)
}

fn route(st: &mut State, token: &str, base: &str, req: &Incoming, body: &Value) -> Response {
    let auth = req
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    if auth.is_empty() {
        return reply(
            401,
            json!({"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        );
    }
    if auth != format!("Bearer {token}") && auth != format!("token {token}") {
        return reply(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        );
    }
    if req.headers.get("user-agent").is_none_or(|v| v.is_empty()) {
        return reply(
            403,
            json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required)."}),
        );
    }
    if let Some(v) = req.headers.get("x-github-api-version")
        && v != API_VERSION
    {
        return reply(
            400,
            json!({"message": format!("API version {v} is not supported."), "documentation_url": "https://docs.github.com/rest/overview/api-versions"}),
        );
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["repos", owner, name, rest @ ..] = seg.as_slice() else {
        return not_found();
    };
    let repo = Repo {
        root: base.to_string(),
        api: format!("{base}/repos/{owner}/{name}"),
        html: format!("https://github.com/{owner}/{name}"),
    };
    match (req.method.as_str(), rest) {
        ("GET", ["actions", "runs", id, "approvals"]) if id.parse::<u64>().is_ok() => {
            reply(200, Value::Array(st.reviews.clone()))
        }
        ("POST", ["issues"]) => create_issue(st, &repo, body),
        ("PATCH", ["issues", n]) => update_issue(st, n, body),
        ("GET", ["issues", n, "comments"]) => list_comments(st, &repo, path, query, n),
        ("POST", ["issues", n, "comments"]) => create_comment(st, &repo, n, body),
        ("POST", ["git", "tags"]) => create_tag(st, &repo, body),
        ("GET", ["git", "tags", sha]) => match st.tag_objects.get(*sha) {
            Some(t) => reply(200, t.clone()),
            None => not_found(),
        },
        ("POST", ["git", "refs"]) => create_ref(st, &repo, body),
        ("PATCH", ["git", "refs", name @ ..]) if !name.is_empty() => {
            update_ref(st, &repo, &format!("refs/{}", name.join("/")), body)
        }
        ("GET", ["git", "matching-refs", prefix @ ..]) => {
            let prefix = format!("refs/{}", prefix.join("/"));
            let refs: Vec<Value> = st
                .refs
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(name, sha)| ref_json(st, &repo, name, sha))
                .collect();
            reply(200, Value::Array(refs))
        }
        ("POST", ["deployments"]) => create_deployment(st, &repo, body),
        ("POST", ["deployments", id, "statuses"]) => create_status(st, &repo, id, body),
        _ => not_found(),
    }
}

struct Repo {
    /// `http://127.0.0.1:port`
    root: String,
    /// `http://127.0.0.1:port/repos/o/r`
    api: String,
    /// `https://github.com/o/r`
    html: String,
}

fn next_id(st: &mut State) -> u64 {
    st.next_id += 1;
    st.next_id
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn str_field<'a>(body: &'a Value, k: &str) -> Option<&'a str> {
    body.get(k).and_then(Value::as_str)
}

fn missing(k: &str) -> Response {
    unprocessable(&format!("Invalid request.\n\n\"{k}\" wasn't supplied."))
}

fn create_issue(st: &mut State, repo: &Repo, body: &Value) -> Response {
    let Some(title) = str_field(body, "title") else {
        return missing("title");
    };
    let number = st.issues.len() as u64 + 1;
    let id = next_id(st);
    let issue = json!({
        "id": id, "node_id": format!("I_{id}"),
        "url": format!("{}/issues/{number}", repo.api),
        "repository_url": repo.api,
        "labels_url": format!("{}/issues/{number}/labels{{/name}}", repo.api),
        "comments_url": format!("{}/issues/{number}/comments", repo.api),
        "events_url": format!("{}/issues/{number}/events", repo.api),
        "html_url": format!("{}/issues/{number}", repo.html),
        "number": number, "state": "open", "state_reason": null, "title": title,
        "body": body.get("body").cloned().unwrap_or(Value::Null),
        "user": token_owner(), "labels": [], "assignee": null, "assignees": [],
        "milestone": null, "locked": false, "active_lock_reason": null, "comments": 0,
        "closed_at": null, "closed_by": null, "author_association": "NONE",
        "created_at": DATE, "updated_at": DATE,
    });
    st.issues.insert(number, issue.clone());
    reply(201, issue)
}

fn update_issue(st: &mut State, n: &str, body: &Value) -> Response {
    let Some(issue) = n.parse::<u64>().ok().and_then(|n| st.issues.get_mut(&n)) else {
        return not_found();
    };
    match str_field(body, "state") {
        None => {}
        Some("closed") => {
            issue["state"] = json!("closed");
            issue["state_reason"] = json!("completed");
            issue["closed_at"] = json!(DATE);
            issue["closed_by"] = token_owner();
        }
        Some("open") => {
            issue["state"] = json!("open");
            issue["state_reason"] = json!("reopened");
            issue["closed_at"] = Value::Null;
            issue["closed_by"] = Value::Null;
        }
        Some(other) => {
            return unprocessable(&format!(
                "Invalid request.\n\nstate: {other} is not a valid value."
            ));
        }
    }
    for k in ["title", "body"] {
        if let Some(v) = body.get(k) {
            issue[k] = v.clone();
        }
    }
    reply(200, issue.clone())
}

/// The people's comments then the ones posted through the API, numbered.
fn all_comments(st: &State, repo: &Repo, number: u64) -> Vec<Value> {
    let issue_body = st.issues[&number]["body"].as_str().unwrap_or_default();
    let mut all = (st.comments)(issue_body);
    all.extend(st.posted.get(&number).cloned().unwrap_or_default());
    for (i, c) in all.iter_mut().enumerate() {
        let id = number * 10_000 + i as u64 + 1;
        c["id"] = json!(id);
        c["node_id"] = json!(format!("IC_{id}"));
        c["url"] = json!(format!("{}/issues/comments/{id}", repo.api));
        c["html_url"] = json!(format!("{}/issues/{number}#issuecomment-{id}", repo.html));
        c["issue_url"] = json!(format!("{}/issues/{number}", repo.api));
    }
    all
}

fn list_comments(st: &State, repo: &Repo, path: &str, query: &str, n: &str) -> Response {
    let Some(number) = n.parse::<u64>().ok().filter(|n| st.issues.contains_key(n)) else {
        return not_found();
    };
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let per = param("per_page").unwrap_or(30).clamp(1, 100);
    let page = param("page").unwrap_or(1).max(1);
    let all = all_comments(st, repo, number);
    let last = all.len().div_ceil(per).max(1);
    let items: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
    let link = |p: usize, rel: &str| {
        format!(
            "<{}{path}?per_page={per}&page={p}>; rel=\"{rel}\"",
            repo.root
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut resp = reply(200, Value::Array(items));
    if !links.is_empty() {
        resp.headers.push(("Link".into(), links.join(", ")));
    }
    resp
}

fn create_comment(st: &mut State, repo: &Repo, n: &str, body: &Value) -> Response {
    let Some(number) = n.parse::<u64>().ok().filter(|n| st.issues.contains_key(n)) else {
        return not_found();
    };
    let Some(text) = str_field(body, "body") else {
        return missing("body");
    };
    let mut c = comment("github-actions[bot]", text);
    c["author_association"] = json!("NONE");
    st.posted.entry(number).or_default().push(c);
    let all = all_comments(st, repo, number);
    reply(201, all.last().cloned().unwrap_or(Value::Null))
}

fn sha_of(v: &Value) -> String {
    blake3::hash(v.to_string().as_bytes()).to_hex()[..40].to_string()
}

fn create_tag(st: &mut State, repo: &Repo, body: &Value) -> Response {
    for k in ["tag", "message", "object", "type"] {
        if str_field(body, k).is_none() {
            return missing(k);
        }
    }
    let object = str_field(body, "object").unwrap_or_default();
    let kind = str_field(body, "type").unwrap_or_default();
    if !["commit", "tree", "blob", "tag"].contains(&kind) {
        return unprocessable(&format!(
            "Invalid request.\n\n{kind} is not a member of [\"commit\", \"tree\", \"blob\", \"tag\"]."
        ));
    }
    if !is_sha(object) {
        return unprocessable("Object does not exist");
    }
    let sha = sha_of(body);
    let tagger = body.get("tagger").cloned().unwrap_or_else(|| {
        json!({"name": "github-actions[bot]", "email": "41898282+github-actions[bot]@users.noreply.github.com", "date": DATE})
    });
    let obj = json!({
        "node_id": format!("TAG_{sha}"), "tag": body["tag"], "sha": sha,
        "url": format!("{}/git/tags/{sha}", repo.api), "message": body["message"],
        "tagger": tagger,
        "object": {"sha": object, "type": kind, "url": format!("{}/git/{kind}s/{object}", repo.api)},
        "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
    });
    st.tag_objects.insert(sha, obj.clone());
    reply(201, obj)
}

fn ref_json(st: &State, repo: &Repo, name: &str, sha: &str) -> Value {
    let kind = if st.tag_objects.contains_key(sha) {
        "tag"
    } else {
        "commit"
    };
    json!({
        "ref": name, "node_id": format!("REF_{}", sha_of(&json!(name))),
        "url": format!("{}/git/{name}", repo.api),
        "object": {"sha": sha, "type": kind, "url": format!("{}/git/{kind}s/{sha}", repo.api)},
    })
}

fn create_ref(st: &mut State, repo: &Repo, body: &Value) -> Response {
    let Some(name) = str_field(body, "ref") else {
        return missing("ref");
    };
    let Some(sha) = str_field(body, "sha") else {
        return missing("sha");
    };
    if !name.starts_with("refs/") || name.matches('/').count() < 2 {
        return unprocessable("Reference name is invalid");
    }
    if !is_sha(sha) {
        return unprocessable("Object does not exist");
    }
    if st.refs.contains_key(name) {
        return unprocessable("Reference already exists");
    }
    st.refs.insert(name.into(), sha.into());
    reply(201, ref_json(st, repo, name, sha))
}

fn update_ref(st: &mut State, repo: &Repo, name: &str, body: &Value) -> Response {
    let Some(sha) = str_field(body, "sha") else {
        return missing("sha");
    };
    if !is_sha(sha) {
        return unprocessable("Object does not exist");
    }
    let Some(current) = st.refs.get(name) else {
        return unprocessable("Reference does not exist");
    };
    if body.get("force") != Some(&json!(true)) && current != sha {
        return unprocessable("Update is not a fast forward");
    }
    st.refs.insert(name.into(), sha.into());
    reply(200, ref_json(st, repo, name, sha))
}

/// A branch, tag or sha → the commit it names.
fn resolve(st: &State, r: &str) -> Option<String> {
    if is_sha(r) {
        return Some(r.to_string());
    }
    let sha = ["refs/heads/", "refs/tags/", ""]
        .iter()
        .find_map(|p| st.refs.get(&format!("{p}{r}")))?;
    match st.tag_objects.get(sha) {
        Some(tag) => tag["object"]["sha"].as_str().map(String::from),
        None => Some(sha.clone()),
    }
}

fn create_deployment(st: &mut State, repo: &Repo, body: &Value) -> Response {
    let Some(r) = str_field(body, "ref") else {
        return missing("ref");
    };
    let Some(sha) = resolve(st, r) else {
        return reply(
            422,
            json!({"message": format!("No ref found for: {r}"), "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment", "status": "422"}),
        );
    };
    if body.get("required_contexts").is_none() {
        // In Actions the running job's own check is pending, so "every context" never passes.
        return reply(
            409,
            json!({
                "message": format!("Conflict: Commit status checks failed for {r}."),
                "errors": [{"contexts": [{"context": "deploy", "state": "pending"}], "resource": "Deployment", "field": "required_contexts", "code": "invalid"}],
                "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment", "status": "409",
            }),
        );
    }
    let id = next_id(st);
    let environment = str_field(body, "environment").unwrap_or("production");
    let mut record = body.clone();
    record["id"] = json!(id);
    st.deployments.push(record);
    reply(
        201,
        json!({
            "url": format!("{}/deployments/{id}", repo.api), "id": id, "node_id": format!("DE_{id}"),
            "sha": sha, "ref": r, "task": str_field(body, "task").unwrap_or("deploy"),
            "payload": body.get("payload").cloned().unwrap_or(json!({})),
            "original_environment": environment, "environment": environment,
            "description": body.get("description").cloned().unwrap_or(Value::Null),
            "creator": token_owner(), "created_at": DATE, "updated_at": DATE,
            "statuses_url": format!("{}/deployments/{id}/statuses", repo.api),
            "repository_url": repo.api,
            "transient_environment": body.get("transient_environment").cloned().unwrap_or(json!(false)),
            "production_environment": body.get("production_environment").cloned().unwrap_or(json!(environment == "production")),
        }),
    )
}

fn create_status(st: &mut State, repo: &Repo, id: &str, body: &Value) -> Response {
    let Some(deployment) = id.parse::<u64>().ok().and_then(|id| {
        st.deployments
            .iter()
            .find(|d| d["id"] == json!(id))
            .cloned()
    }) else {
        return not_found();
    };
    let id = deployment["id"].as_u64().unwrap_or_default();
    let states = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ];
    let Some(state) = str_field(body, "state").filter(|s| states.contains(s)) else {
        return unprocessable("Invalid request.\n\nstate is not a valid deployment status state.");
    };
    let description = str_field(body, "description").unwrap_or_default();
    if description.chars().count() > 140 {
        return unprocessable("description is too long (maximum is 140 characters)");
    }
    st.statuses.entry(id).or_default().push(body.clone());
    let status_id = next_id(st);
    let log_url = str_field(body, "log_url")
        .or_else(|| str_field(body, "target_url"))
        .unwrap_or_default();
    reply(
        201,
        json!({
            "url": format!("{}/deployments/{id}/statuses/{status_id}", repo.api),
            "id": status_id, "node_id": format!("DES_{status_id}"), "state": state,
            "creator": token_owner(), "description": description,
            "environment": str_field(body, "environment").or_else(|| str_field(&deployment, "environment")).unwrap_or("production"),
            "target_url": log_url, "log_url": log_url,
            "environment_url": str_field(body, "environment_url").unwrap_or_default(),
            "created_at": DATE, "updated_at": DATE,
            "deployment_url": format!("{}/deployments/{id}", repo.api),
            "repository_url": repo.api,
        }),
    )
}
