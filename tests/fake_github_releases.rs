// The GitHub git-data and deployments API (tags, refs, deployments, statuses) for the release ledger.
//! A local GitHub REST API for tests, following the published protocol for the endpoints the tool
//! uses: git tag objects (`POST /repos/{o}/{r}/git/tags`), refs (`POST …/git/refs`,
//! `PATCH …/git/refs/tags/{tag}` with `force`, 422 "Reference does not exist" when missing,
//! 422 "Reference already exists" on a duplicate create), deployments and deployment statuses.
//! Every request is logged; faults are injected by method and path prefix.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
pub struct State {
    pub log: Vec<Request>,
    /// tag object sha → tag object.
    pub tag_objects: BTreeMap<String, Value>,
    /// `refs/tags/x` → sha.
    pub refs: BTreeMap<String, String>,
    pub deployments: Vec<Value>,
    /// deployment id → statuses in order.
    pub statuses: BTreeMap<u64, Vec<Value>>,
    /// (method, path prefix, HTTP status): the next matching request fails once.
    pub faults: Vec<(String, String, u16)>,
    next_id: u64,
}

pub struct FakeGitHub {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    pub fn start() -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..Default::default()
        }));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakeGitHub { url, state }
    }

    pub fn fail_once(&self, method: &str, path_prefix: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((method.into(), path_prefix.into(), status));
    }

    pub fn log(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut len = 0usize;
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, resp) = handle(state, &method, &path, &auth, body);
    let text = resp.to_string();
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn sha_of(v: &Value) -> String {
    blake3::hash(v.to_string().as_bytes()).to_hex()[..40].to_string()
}

fn handle(state: &Mutex<State>, method: &str, path: &str, auth: &str, body: Value) -> (u16, Value) {
    let mut st = state.lock().unwrap();
    st.log.push(Request {
        method: method.into(),
        path: path.into(),
        authorization: auth.into(),
        body: body.clone(),
    });
    if let Some(i) = st
        .faults
        .iter()
        .position(|(m, p, _)| m == method && path.starts_with(p.as_str()))
    {
        let (_, _, code) = st.faults.remove(i);
        return (code, json!({"message": "injected fault"}));
    }
    if !auth.starts_with("Bearer ") {
        return (401, json!({"message": "Requires authentication"}));
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if seg.len() < 4 || seg[0] != "repos" {
        return (404, json!({"message": "Not Found"}));
    }
    let rest = &seg[3..];
    let unprocessable = |m: &str| (422, json!({"message": m}));
    match (method, rest) {
        ("POST", ["git", "tags"]) => {
            for k in ["tag", "message", "object", "type"] {
                if body.get(k).and_then(Value::as_str).is_none() {
                    return unprocessable(&format!("Invalid request: \"{k}\" wasn't supplied."));
                }
            }
            let sha = sha_of(&body);
            let mut obj = body.clone();
            obj["sha"] = json!(sha);
            obj["object"] = json!({"sha": body["object"], "type": body["type"]});
            st.tag_objects.insert(sha.clone(), obj.clone());
            (201, obj)
        }
        ("POST", ["git", "refs"]) => {
            let (Some(r), Some(sha)) = (
                body.get("ref").and_then(Value::as_str),
                body.get("sha").and_then(Value::as_str),
            ) else {
                return unprocessable("Invalid request");
            };
            if !r.starts_with("refs/") || r.matches('/').count() < 2 {
                return unprocessable("Reference name is invalid");
            }
            if st.refs.contains_key(r) {
                return unprocessable("Reference already exists");
            }
            st.refs.insert(r.into(), sha.into());
            (201, json!({"ref": r, "object": {"sha": sha}}))
        }
        ("PATCH", ["git", "refs", tail @ ..]) => {
            let r = format!("refs/{}", tail.join("/"));
            let Some(sha) = body.get("sha").and_then(Value::as_str) else {
                return unprocessable("Invalid request");
            };
            if !st.refs.contains_key(&r) {
                return unprocessable("Reference does not exist");
            }
            if body.get("force") != Some(&json!(true)) && st.refs[&r] != sha {
                return unprocessable("Update is not a fast forward");
            }
            st.refs.insert(r.clone(), sha.into());
            (200, json!({"ref": r, "object": {"sha": sha}}))
        }
        ("POST", ["deployments"]) => {
            if body.get("ref").and_then(Value::as_str).is_none() {
                return unprocessable("Invalid request: \"ref\" wasn't supplied.");
            }
            st.next_id += 1;
            let id = st.next_id;
            let mut d = body.clone();
            d["id"] = json!(id);
            st.deployments.push(d.clone());
            (201, d)
        }
        ("POST", ["deployments", id, "statuses"]) => {
            let Ok(id) = id.parse::<u64>() else {
                return (404, json!({"message": "Not Found"}));
            };
            if !st.deployments.iter().any(|d| d["id"] == json!(id)) {
                return (404, json!({"message": "Not Found"}));
            }
            let ok = [
                "error",
                "failure",
                "inactive",
                "in_progress",
                "queued",
                "pending",
                "success",
            ];
            if !body
                .get("state")
                .and_then(Value::as_str)
                .is_some_and(|s| ok.contains(&s))
            {
                return unprocessable("Invalid request: state");
            }
            st.statuses.entry(id).or_default().push(body.clone());
            (201, body)
        }
        _ => (404, json!({"message": "Not Found"})),
    }
}
