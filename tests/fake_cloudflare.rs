//! A faithful local Cloudflare Pages API for the tests (reference cloudflare-pages.md §13): v4
//! envelopes under `/client/v4`, upload tokens whose payload carries `exp` and
//! `max_file_count_allowed`, a content-addressed store, production/preview by branch, request
//! counting, limits enforced, and fault injection per route and per Nth request.
//!
//! A small threaded HTTP/1.1 server on 127.0.0.1:0 (std::net, one connection per request).

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub const TOKEN: &str = "cf-test-token-5ecr3t";
pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// Which route a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Project,
    UploadToken,
    CheckMissing,
    Upload,
    UpsertHashes,
    CreateDeployment,
    GetDeployment,
    ListDeployments,
    Logs,
    Rollback,
    Unknown,
}

/// What to answer instead of the real response.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 401 `{"code":8000013}`.
    JwtUnauthorized,
    /// 403 with the plain-text body `Expired JWT`.
    ExpiredJwtText,
    /// 429 with `Retry-After: <secs>`.
    RateLimited(u64),
    /// 502 with an HTML body.
    Html502,
    /// 524 (a Cloudflare gateway timeout), HTML body.
    Gateway524,
    /// 500 `{"code":8000000}`.
    Unknown8000000,
    /// 404 `{"code":8000007}`.
    ProjectNotFound,
    /// Close the connection without answering.
    Reset,
    /// Do what was asked (create the deployment, say), then close the connection without
    /// answering: the answer is lost on the way back.
    DoThenReset,
}

/// How deployments end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Stuck,
}

#[derive(Default)]
pub struct State {
    pub production_branch: String,
    /// key → (content type, bytes).
    pub store: HashMap<String, (String, Vec<u8>)>,
    /// Hashes registered by upsert-hashes.
    pub upserted: HashSet<String>,
    pub issued: HashSet<String>,
    pub token_ttl: i64,
    /// Each token is accepted this many times, then answered `403 Expired JWT` (a token that
    /// expires mid-upload, without waiting for the clock).
    pub token_uses: Option<usize>,
    /// Accepted uses per token.
    pub token_used: HashMap<String, usize>,
    /// Tokens refused because they were used up.
    pub tokens_expired: usize,
    pub max_files: u64,
    pub deployments: Vec<Value>,
    /// Per deployment: the multipart text fields and file parts received.
    pub deployment_parts: Vec<BTreeMap<String, Vec<u8>>>,
    /// Manifest entries whose hash was not stored or did not match the path and bytes.
    pub broken: Vec<String>,
    /// Protocol violations seen (limits, key order, auth); a test asserts it stays empty.
    pub violations: Vec<String>,
    pub requests: Vec<(Route, String)>,
    /// Files per upload request.
    pub upload_sizes: Vec<usize>,
    /// Upload requests being handled now (ids), the most seen at once, and those that were in
    /// flight when the first 524 was answered (they may finish alongside the next ones).
    pub uploads_in_flight: HashSet<usize>,
    pub max_uploads_in_flight: usize,
    pub gateway_served: bool,
    pub in_flight_at_gateway: HashSet<usize>,
    /// The most uploads at once that started after the first 524 (those in flight then excluded).
    pub max_uploads_in_flight_after_gateway: usize,
    /// Hold the first upload until a second one arrives (proves the client uploads in parallel),
    /// and every later upload this long, so overlapping requests would be seen.
    pub hold_first_upload_for_company: bool,
    pub upload_hold_ms: u64,
    faults: Vec<(Route, usize, Fault)>,
    always: Vec<(Route, Fault)>,
    pub outcome: Option<Outcome>,
    /// The id of the deployment production serves: the newest successful production deployment,
    /// or the target of the last rollback.
    pub canonical: Option<String>,
}

pub struct FakeCloudflare {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeCloudflare {
    pub fn start() -> FakeCloudflare {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            production_branch: "main".into(),
            token_ttl: 600,
            max_files: 20_000,
            outcome: Some(Outcome::Success),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = Arc::clone(&st);
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        FakeCloudflare { port, state, stop }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port)
    }

    /// The environment a run needs to talk to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLOUDFLARE_API_TOKEN", TOKEN.to_string()),
            ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_string()),
            ("CLOUDFLARE_API_BASE_URL", self.base_url()),
        ]
    }

    /// Answers the `nth` (1-based) request of `route` with `fault`.
    pub fn fault(&self, route: Route, nth: usize, fault: Fault) -> &Self {
        self.state.lock().unwrap().faults.push((route, nth, fault));
        self
    }

    /// Answers every request of `route` with `fault`.
    pub fn always(&self, route: Route, fault: Fault) -> &Self {
        self.state.lock().unwrap().always.push((route, fault));
        self
    }

    pub fn set<F: FnOnce(&mut State)>(&self, f: F) -> &Self {
        f(&mut self.state.lock().unwrap());
        self
    }

    pub fn count(&self, route: Route) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(r, _)| *r == route)
            .count()
    }

    pub fn total_requests(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    pub fn deployments(&self) -> Vec<Value> {
        self.state.lock().unwrap().deployments.clone()
    }

    /// The manifest of deployment `i`.
    pub fn manifest(&self, i: usize) -> BTreeMap<String, String> {
        let st = self.state.lock().unwrap();
        serde_json::from_slice(&st.deployment_parts[i]["manifest"]).unwrap()
    }

    pub fn part(&self, i: usize, name: &str) -> Option<String> {
        let st = self.state.lock().unwrap();
        st.deployment_parts[i]
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn content_type_of(&self, hash: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .store
            .get(hash)
            .map(|(c, _)| c.clone())
    }

    /// Asserts the client kept to the protocol and every deployed path serves its bytes.
    #[track_caller]
    pub fn assert_clean(&self) {
        let st = self.state.lock().unwrap();
        assert!(
            st.violations.is_empty(),
            "protocol violations: {:?}",
            st.violations
        );
        assert!(
            st.broken.is_empty(),
            "broken manifest entries: {:?}",
            st.broken
        );
    }
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn ok(result: Value) -> Response {
    json_resp(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn err(status: u16, code: i64, message: &str) -> Response {
    json_resp(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
    )
}

fn json_resp(status: u16, v: Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        headers: vec![],
        body: serde_json::to_vec(&v).unwrap(),
    }
}

fn text(status: u16, content_type: &'static str, body: &str) -> Response {
    Response {
        status,
        content_type,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let Some(crate::harness::http::Incoming {
        method,
        target,
        headers,
        body,
    }) = crate::harness::http::read_request(conn)?
    else {
        return Ok(None);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Some(Request {
        method,
        path: percent_decode(&path),
        query,
        headers,
        body,
    }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(mut conn: TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    let Some(req) = read_request(&mut conn)? else {
        return Ok(());
    };
    let route = route_of(&req);
    let (fault, n) = {
        let mut s = st.lock().unwrap();
        s.requests
            .push((route, format!("{} {}", req.method, req.path)));
        let n = s.requests.iter().filter(|(r, _)| *r == route).count();
        let fault = s
            .faults
            .iter()
            .find(|(r, nth, _)| *r == route && *nth == n)
            .map(|(_, _, f)| f.clone())
            .or_else(|| {
                s.always
                    .iter()
                    .find(|(r, _)| *r == route)
                    .map(|(_, f)| f.clone())
            });
        (fault, n)
    };
    if route == Route::Upload {
        upload_arrives(st, n);
    }
    let resp = match fault {
        Some(Fault::Reset) => {
            upload_leaves(st, route, n, false);
            return Ok(()); // drop the connection unanswered
        }
        Some(Fault::DoThenReset) => {
            let _ = answer(&req, route, st);
            upload_leaves(st, route, n, false);
            return Ok(());
        }
        Some(f) => fault_response(&f),
        None => answer(&req, route, st),
    };
    // The request is over for the server before its answer goes out, so the client's next request
    // never overlaps with it.
    upload_leaves(st, route, n, resp.status == 524);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(&resp.body)?;
    conn.flush()
}

/// Upload `n` starts: count what runs alongside it, and hold it as the test asked.
fn upload_arrives(st: &Mutex<State>, n: usize) {
    let (hold_first, hold_ms) = {
        let mut s = st.lock().unwrap();
        s.uploads_in_flight.insert(n);
        s.max_uploads_in_flight = s.max_uploads_in_flight.max(s.uploads_in_flight.len());
        if s.gateway_served {
            let after = s
                .uploads_in_flight
                .iter()
                .filter(|i| !s.in_flight_at_gateway.contains(i))
                .count();
            s.max_uploads_in_flight_after_gateway =
                s.max_uploads_in_flight_after_gateway.max(after);
        }
        (s.hold_first_upload_for_company && n == 1, s.upload_hold_ms)
    };
    if hold_first {
        // Wait (bounded) for a second upload to arrive: a parallel client sends one.
        for _ in 0..2000 {
            if st.lock().unwrap().uploads_in_flight.len() > 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    } else if hold_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(hold_ms));
    }
}

fn upload_leaves(st: &Mutex<State>, route: Route, n: usize, gateway: bool) {
    if route != Route::Upload {
        return;
    }
    let mut s = st.lock().unwrap();
    s.uploads_in_flight.remove(&n);
    if gateway && !s.gateway_served {
        s.gateway_served = true;
        s.in_flight_at_gateway = s.uploads_in_flight.clone();
    }
}

fn fault_response(f: &Fault) -> Response {
    match f {
        Fault::JwtUnauthorized => err(401, 8_000_013, "Authorization failed"),
        Fault::ExpiredJwtText => text(403, "text/plain", "Expired JWT"),
        Fault::RateLimited(secs) => {
            let mut r = err(
                429,
                971,
                "Please wait and consider throttling your request speed",
            );
            r.headers.push(("Retry-After".into(), secs.to_string()));
            r
        }
        Fault::Html502 => text(
            502,
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>",
        ),
        Fault::Gateway524 => text(
            524,
            "text/html",
            "<html><body>error code: 524</body></html>",
        ),
        Fault::Unknown8000000 => err(500, 8_000_000, "An unknown error occurred"),
        Fault::ProjectNotFound => err(404, 8_000_007, "Project not found."),
        Fault::Reset | Fault::DoThenReset => unreachable!(),
    }
}

fn route_of(req: &Request) -> Route {
    let p = req.path.strip_prefix("/client/v4").unwrap_or("");
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["pages", "assets", "check-missing"]) => Route::CheckMissing,
        ("POST", ["pages", "assets", "upload"]) => Route::Upload,
        ("POST", ["pages", "assets", "upsert-hashes"]) => Route::UpsertHashes,
        ("GET", ["accounts", _, "pages", "projects", _]) => Route::Project,
        ("GET", ["accounts", _, "pages", "projects", _, "upload-token"]) => Route::UploadToken,
        ("POST", ["accounts", _, "pages", "projects", _, "deployments"]) => Route::CreateDeployment,
        ("GET", ["accounts", _, "pages", "projects", _, "deployments"]) => Route::ListDeployments,
        ("GET", ["accounts", _, "pages", "projects", _, "deployments", _]) => Route::GetDeployment,
        (
            "GET",
            [
                "accounts",
                _,
                "pages",
                "projects",
                _,
                "deployments",
                _,
                "history",
                "logs",
            ],
        ) => Route::Logs,
        (
            "POST",
            [
                "accounts",
                _,
                "pages",
                "projects",
                _,
                "deployments",
                _,
                "rollback",
            ],
        ) => Route::Rollback,
        _ => Route::Unknown,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `2026-11-30T05:09:33Z` (Howard Hinnant's civil_from_days).
fn iso8601(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn jwt_ok(req: &Request, s: &State) -> bool {
    let Some(t) = bearer(req) else { return false };
    if !s.issued.contains(t) {
        return false;
    }
    let payload = t.split('.').nth(1).unwrap_or("");
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    claims["exp"].as_i64().is_none_or(|exp| exp > now())
}

fn answer(req: &Request, route: Route, st: &Mutex<State>) -> Response {
    let mut s = st.lock().unwrap();
    let segs: Vec<String> = req
        .path
        .split('/')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    let asset_route = matches!(
        route,
        Route::CheckMissing | Route::Upload | Route::UpsertHashes
    );
    if asset_route {
        if !jwt_ok(req, &s) {
            return err(401, 8_000_013, "Authorization failed");
        }
        if let Some(limit) = s.token_uses {
            let t = bearer(req).unwrap_or("").to_string();
            let used = s.token_used.entry(t).or_insert(0);
            if *used >= limit {
                s.tokens_expired += 1;
                return text(403, "text/plain", "Expired JWT");
            }
            *used += 1;
        }
    } else if route != Route::Unknown {
        if bearer(req) != Some(TOKEN) {
            return err(401, 10_000, "Authentication error");
        }
        if segs.get(3).map(String::as_str) != Some(ACCOUNT) {
            return err(403, 9109, "Unauthorized to access requested resource");
        }
    }
    let project = segs.get(6).cloned().unwrap_or_default();
    match route {
        Route::Unknown => err(404, 7003, "No route for that URI"),
        Route::Project => ok(json!({
            "id": "p-1", "name": project, "subdomain": format!("{project}.pages.dev"),
            "production_branch": s.production_branch,
            "deployment_configs": {"production": {"compatibility_date": "2024-01-01", "compatibility_flags": []},
                                   "preview": {"compatibility_date": "2024-01-01", "compatibility_flags": []}},
            "domains": [format!("{project}.pages.dev")],
        })),
        Route::UploadToken => {
            let claims = json!({"exp": now() + s.token_ttl, "max_file_count_allowed": s.max_files, "n": s.issued.len()});
            let enc =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let jwt = format!(
                "{}.{}.c2lnbmF0dXJl",
                enc(&json!({"alg":"HS256","typ":"JWT"})),
                enc(&claims)
            );
            s.issued.insert(jwt.clone());
            ok(json!({ "jwt": jwt }))
        }
        Route::CheckMissing => {
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let hashes: Vec<String> =
                serde_json::from_value(v["hashes"].clone()).unwrap_or_default();
            let missing: Vec<&String> = hashes
                .iter()
                .filter(|h| !s.store.contains_key(*h) && !s.upserted.contains(*h))
                .collect();
            ok(json!(missing))
        }
        Route::Upload => upload(req, &mut s),
        Route::UpsertHashes => {
            let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            for h in v["hashes"].as_array().into_iter().flatten() {
                let h = h.as_str().unwrap_or("").to_string();
                if !s.store.contains_key(&h) {
                    s.violations
                        .push(format!("upsert of a hash never uploaded: {h}"));
                }
                s.upserted.insert(h);
            }
            ok(Value::Null)
        }
        Route::CreateDeployment => create_deployment(req, &mut s, &project),
        Route::GetDeployment => {
            let id = &segs[8];
            match s.deployments.iter().find(|d| d["id"] == id.as_str()) {
                Some(d) => ok(d.clone()),
                None => err(404, 8_000_009, "Deployment not found"),
            }
        }
        Route::ListDeployments => {
            let env = req.query.strip_prefix("env=").unwrap_or("");
            let list: Vec<&Value> = s
                .deployments
                .iter()
                .rev()
                .filter(|d| env.is_empty() || d["environment"] == env)
                .collect();
            ok(json!(list))
        }
        Route::Logs => ok(
            json!({"total": 2, "includes_container_logs": false, "data": [
            {"line": "Initializing build environment", "ts": "2026-01-01T00:00:00Z"},
            {"line": format!("Error: deploying assets failed (token {})", bearer(req).unwrap_or("")), "ts": "2026-01-01T00:00:01Z"}]}),
        ),
        Route::Rollback => {
            let id = segs[8].clone();
            match s
                .deployments
                .iter()
                .find(|d| d["id"] == id.as_str())
                .cloned()
            {
                Some(d)
                    if d["environment"] == "production"
                        && d["latest_stage"]["status"] == "success" =>
                {
                    let mut d = d;
                    d["is_canonical"] = json!(true);
                    s.canonical = Some(id.clone());
                    ok(d)
                }
                Some(_) => err(
                    400,
                    8_000_034,
                    "Only successful production deployments can be rolled back to",
                ),
                None => err(404, 8_000_009, "Deployment not found"),
            }
        }
    }
}

fn upload(req: &Request, s: &mut State) -> Response {
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(&req.body) else {
        s.violations.push("upload body is not a JSON array".into());
        return err(400, 8_000_000, "bad body");
    };
    if entries.len() > 2000 {
        s.violations
            .push(format!("upload of {} files (> 2000)", entries.len()));
    }
    // Exact shape, as wrangler sends it: compact, keys in the order key, value, metadata, base64.
    let expected: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{{\"key\":{},\"value\":{},\"metadata\":{{\"contentType\":{}}},\"base64\":true}}",
                e["key"], e["value"], e["metadata"]["contentType"]
            )
        })
        .collect();
    if req.body != format!("[{}]", expected.join(",")).as_bytes() {
        s.violations.push(format!(
            "upload body not in wrangler's shape: {:.120}",
            String::from_utf8_lossy(&req.body)
        ));
    }
    let mut raw = 0usize;
    for e in &entries {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(e["value"].as_str().unwrap_or(""))
            .unwrap_or_default();
        if bytes.len() > 25 * 1024 * 1024 {
            s.violations
                .push(format!("file over 25 MiB uploaded: {}", e["key"]));
        }
        raw += bytes.len();
        let key = e["key"].as_str().unwrap_or("").to_string();
        if s.store.contains_key(&key) {
            s.violations.push(format!("hash uploaded twice: {key}"));
        }
        s.store.insert(
            key,
            (
                e["metadata"]["contentType"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                bytes,
            ),
        );
    }
    if raw > 40 * 1024 * 1024 {
        s.violations
            .push(format!("upload request of {raw} raw bytes (> 40 MiB)"));
    }
    s.upload_sizes.push(entries.len());
    ok(Value::Null)
}

/// One part of a multipart/form-data body.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub content: Vec<u8>,
}

/// The parts of a multipart/form-data body with the given boundary, in order.
pub fn split_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delim = format!("--{boundary}");
    let positions: Vec<usize> = find_all(body, delim.as_bytes());
    let mut out = Vec::new();
    for w in positions.windows(2) {
        let part = &body[w[0] + delim.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find_all(part, b"\r\n\r\n").first().copied() else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let attr = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(String::from)
        };
        out.push(Part {
            name: attr(" name").or_else(|| attr(";name")).unwrap_or_default(),
            filename: attr("filename"),
            content_type: head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            }),
            content: part[split + 4..].to_vec(),
        });
    }
    out
}

/// Splits the deployment POST into name → bytes, plus `<name>#content-type` for file parts and
/// `#order` (the part names in order, comma-separated).
fn multipart(req: &Request) -> BTreeMap<String, Vec<u8>> {
    let ct = req.headers.get("content-type").cloned().unwrap_or_default();
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    let parts = split_multipart(&req.body, boundary.trim_matches('"'));
    let order: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    out.insert("#order".to_string(), order.join(",").into_bytes());
    for p in &parts {
        if p.filename.is_some() {
            out.insert(
                format!("{}#content-type", p.name),
                p.content_type.clone().unwrap_or_default().into_bytes(),
            );
        }
        out.insert(p.name.clone(), p.content.clone());
    }
    out
}

/// Checks a `_worker.bundle` as the API would read it: a multipart body (its boundary on the
/// first line) with a `metadata` part naming `main_module`, that module present, every module
/// with a Workers module type. Returns the module names, or what is wrong.
pub fn worker_modules(bundle: &[u8]) -> Result<Vec<String>, String> {
    let first = bundle.split(|b| *b == b'\n').next().ok_or("empty bundle")?;
    let boundary = String::from_utf8_lossy(first)
        .trim_end_matches('\r')
        .strip_prefix("--")
        .ok_or("the bundle does not start with a boundary")?
        .to_string();
    if !bundle.ends_with(format!("--{boundary}--\r\n").as_bytes()) {
        return Err("the bundle does not end with its closing boundary".into());
    }
    let parts = split_multipart(bundle, &boundary);
    let meta = parts
        .iter()
        .find(|p| p.name == "metadata")
        .ok_or("no metadata part")?;
    let meta: Value = serde_json::from_slice(&meta.content).map_err(|e| e.to_string())?;
    let main = meta["main_module"].as_str().ok_or("no main_module")?;
    let modules: Vec<&Part> = parts.iter().filter(|p| p.name != "metadata").collect();
    if !modules.iter().any(|p| p.name == main) {
        return Err(format!("main module {main} missing"));
    }
    for m in &modules {
        let ok = matches!(
            m.content_type.as_deref(),
            Some(
                "application/javascript+module"
                    | "text/plain"
                    | "application/octet-stream"
                    | "application/wasm"
            )
        );
        if !ok || m.filename.as_deref() != Some(m.name.as_str()) {
            return Err(format!("module {} has a bad header", m.name));
        }
    }
    Ok(modules.iter().map(|m| m.name.clone()).collect())
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            v.push(i);
            i += needle.len();
        } else {
            i += 1;
        }
    }
    v
}

fn create_deployment(req: &Request, s: &mut State, project: &str) -> Response {
    let parts = multipart(req);
    let Some(manifest) = parts.get("manifest") else {
        return err(400, 8_000_000, "manifest missing");
    };
    let manifest: BTreeMap<String, String> = match serde_json::from_slice(manifest) {
        Ok(m) => m,
        Err(_) => return err(400, 8_000_000, "manifest is not JSON"),
    };
    if manifest.len() as u64 > s.max_files {
        s.violations
            .push(format!("deployment with {} files", manifest.len()));
    }
    // What the edge would serve: every path must map to stored bytes with the right hash.
    for (path, hash) in &manifest {
        match s.store.get(hash) {
            None => s.broken.push(format!("{path}: {hash} not stored")),
            Some((_, bytes)) => {
                let rel = path.trim_start_matches('/');
                let want = deploy_action::pages::asset_key(std::path::Path::new(rel), bytes);
                if &want != hash {
                    s.broken
                        .push(format!("{path}: hash {hash} but the bytes hash to {want}"));
                }
            }
        }
    }
    if parts.contains_key("_worker.js") && parts.contains_key("_worker.bundle") {
        return err(
            400,
            8_000_000,
            "_worker.js and _worker.bundle are mutually exclusive",
        );
    }
    if let Some(bundle) = parts.get("_worker.bundle") {
        if let Err(e) = worker_modules(bundle) {
            s.violations.push(format!("bad _worker.bundle: {e}"));
            return err(400, 8_000_000, "invalid _worker.bundle");
        }
        if bundle.len() > 25 * 1024 * 1024 {
            s.violations.push("_worker.bundle over 25 MiB".into());
        }
    }
    let branch = parts
        .get("branch")
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let environment = match &branch {
        Some(b) if *b != s.production_branch => "preview",
        _ => "production",
    };
    let n = s.deployments.len() + 1;
    let short = format!("{:08x}", 0xdeadbe00u32 + n as u32);
    let id = format!("{short}-0000-4000-8000-{:012}", n);
    let mut aliases = vec![];
    if let Some(b) = branch.as_ref().filter(|_| environment == "preview") {
        let alias: String = b
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(28)
            .collect();
        aliases.push(format!("https://{alias}.{project}.pages.dev"));
    }
    aliases.push("https://www.example.com".to_string());
    let status = match s.outcome.unwrap_or(Outcome::Success) {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Stuck => "active",
    };
    let text = |k: &str| {
        parts
            .get(k)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let d = json!({
        "id": id, "short_id": short, "project_id": "p-1", "project_name": project,
        "url": format!("https://{short}.{project}.pages.dev"),
        "environment": environment,
        "aliases": aliases,
        "latest_stage": {"name": "deploy", "status": status, "started_on": null, "ended_on": null},
        "stages": [],
        "deployment_trigger": {"type": "ad_hoc", "metadata": {
            "branch": branch, "commit_hash": text("commit_hash"), "commit_message": text("commit_message"),
            "commit_dirty": text("commit_dirty").map(|d| d == "true")}},
        "created_on": iso8601(now()),
    });
    if environment == "production" && status == "success" {
        s.canonical = Some(id.clone());
    }
    s.deployments.push(d.clone());
    s.deployment_parts.push(parts);
    // The POST itself answers while the deployment is still running.
    let mut first = d;
    first["latest_stage"] = json!({"name": "queued", "status": "active"});
    ok(first)
}
