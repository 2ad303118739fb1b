//! A local GitHub REST API for the approval gate, following the published protocol: the run's
//! deployment reviews (`GET /repos/{o}/{r}/actions/runs/{id}/approvals`), issue creation, issue
//! comments (paginated with `per_page`/`page`), new comments and closing an issue. Threaded
//! `std::net` server; every request is logged; requests without the bearer token get 401.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Comments to serve, computed from the approval issue's body (so a test can quote its plan hash).
pub type Comments = Box<dyn Fn(&str) -> Vec<Value> + Send + Sync>;

pub struct FakeGitHub {
    pub url: String,
    pub token: String,
    state: Arc<State>,
}

struct State {
    token: String,
    approvals: Value,
    comments: Comments,
    log: Mutex<Vec<String>>,
    issue_body: Mutex<Option<String>>,
    closed: Mutex<bool>,
}

impl FakeGitHub {
    pub fn start(approvals: Value, comments: Comments) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token = "ghs_fake_token_for_tests_1234".to_string();
        let state = Arc::new(State {
            token: token.clone(),
            approvals,
            comments,
            log: Mutex::new(Vec::new()),
            issue_body: Mutex::new(None),
            closed: Mutex::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || handle(stream, &s));
            }
        });
        FakeGitHub { url, token, state }
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn issue_body(&self) -> Option<String> {
        self.state.issue_body.lock().unwrap().clone()
    }

    pub fn closed(&self) -> bool {
        *self.state.closed.lock().unwrap()
    }
}

fn handle(stream: std::net::TcpStream, s: &State) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut length = 0;
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.log.lock().unwrap().push(format!("{method} {target}"));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, reply) = if auth != format!("Bearer {}", s.token) {
        (401, json!({"message": "Bad credentials"}))
    } else {
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["repos", _, _, "actions", "runs", _, "approvals"]) => {
                (200, s.approvals.clone())
            }
            ("POST", ["repos", o, r, "issues"]) => {
                *s.issue_body.lock().unwrap() =
                    body.get("body").and_then(Value::as_str).map(String::from);
                (
                    201,
                    json!({"number": 1, "html_url": format!("https://github.com/{o}/{r}/issues/1"), "state": "open"}),
                )
            }
            ("GET", ["repos", _, _, "issues", "1", "comments"]) => {
                let issue = s.issue_body.lock().unwrap().clone().unwrap_or_default();
                let all = (s.comments)(&issue);
                let q = |k: &str| {
                    query
                        .split('&')
                        .find_map(|p| p.strip_prefix(&format!("{k}=")))
                        .and_then(|v| v.parse::<usize>().ok())
                };
                let per = q("per_page").unwrap_or(30);
                let page = q("page").unwrap_or(1);
                let items: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
                (200, Value::Array(items))
            }
            ("POST", ["repos", _, _, "issues", "1", "comments"]) => (201, json!({"id": 99})),
            ("PATCH", ["repos", _, _, "issues", "1"]) => {
                *s.closed.lock().unwrap() = body.get("state") == Some(&json!("closed"));
                (200, json!({"number": 1, "state": "closed"}))
            }
            _ => (404, json!({"message": "Not Found"})),
        }
    };
    let text = reply.to_string();
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// An issue comment as the API returns it.
pub fn comment(login: &str, body: &str) -> Value {
    json!({
        "id": 1, "body": body, "user": {"login": login},
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "html_url": "https://github.com/o/r/issues/1#issuecomment-1",
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
