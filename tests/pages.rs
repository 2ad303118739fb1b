//! `deploy-action pages` against the local Cloudflare API (tests/fake_cloudflare.rs): the manifest
//! and content types wrangler would produce for a site with tricky names, first and unchanged
//! deploys, every injected fault survived with one deployment, failures that exit non-zero, limits
//! checked before any upload, the token masked.

use crate::fake_cloudflare::State;
use crate::fake_cloudflare::{ACCOUNT, FakeCloudflare, Fault, Outcome, Route, TOKEN};
use crate::harness::{Outcome as RunOutcome, Project};

fn cf_count(st: &State, route: Route) -> usize {
    st.requests.iter().filter(|(r, _)| *r == route).count()
}

const HELLO: &str = "0c96efd2ce058760209b8820885dc97f";
const LICENSE: &str = "156977954e7441519da96d8dd9f46d71";
const STYLE: &str = "b6f572fcd09f004c30a514c8388ea118";
const LOGO_PNG: &str = "2082190357cfd3617ccfe04f340c6247";

/// A site with the names that trip uploaders up.
fn tricky_site() -> Project {
    let p = Project::new();
    for (rel, content) in [
        ("site/index.html", "<h1>hi</h1>\n"),
        ("site/assets/hello world.txt", "hello with space\n"),
        ("site/assets/LICENSE", "no extension\n"),
        ("site/assets/copy of hello.txt", "hello with space\n"),
        (
            "site/css/style.css",
            "body { font-family: sans-serif; color: #333; }\n",
        ),
        ("site/logo.png", "foobar"),
        ("site/LOGO.PNG", "foobar"),
        ("site/日本語/ページ.html", "<p>こんにちは</p>\n"),
        ("site/json", "{}\n"),
        (
            "site/.well-known/security.txt",
            "Contact: mailto:sec@example.com\n",
        ),
        ("site/.well-known/.DS_Store", "ds"),
        ("site/.DS_Store", "ds"),
        ("site/assets/.DS_Store", "ds"),
        ("site/.env", "NOT_A_SECRET=1\n"),
        ("site/node_modules/a.js", "a"),
        ("site/a/b/node_modules/x.js", "x"),
        ("site/.hidden/node_modules/k.js", "k"),
        ("site/.git/HEAD", "ref: refs/heads/main\n"),
        ("site/sub/.git/config", "[core]\n"),
        ("site/functions/api.js", "export default {}\n"),
        ("site/sub/functions/kept.js", "k\n"),
        ("site/sub/_headers", "nested headers are assets\n"),
        ("site/_headers", "/*\n  X-Frame-Options: DENY\n"),
        ("site/_redirects", ""),
        ("site/NODE_MODULES/upper.js", "u"),
    ] {
        p.file(rel, content);
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("assets/hello world.txt", p.path().join("site/link.txt"))
            .unwrap();
        std::os::unix::fs::symlink("css", p.path().join("site/linkdir")).unwrap();
    }
    p
}

const BASE_ARGS: &[&str] = &[
    "pages",
    "--project",
    "shop-web",
    "--dir",
    "site",
    "--commit-hash",
    "0123abcd",
    "--commit-message",
    "first deploy",
    "--commit-dirty",
    "false",
];

/// The binary in `p`, its hash cache kept in the project (not in the developer's home).
fn run(p: &Project, args: &[&str]) -> crate::harness::Run {
    p.run(args).env(
        "DEPLOY_PAGES_HASH_CACHE",
        p.path().join(".hash-cache").to_string_lossy(),
    )
}

fn deploy(p: &Project, cf: &FakeCloudflare, branch: &str) -> RunOutcome {
    let mut args = BASE_ARGS.to_vec();
    args.extend(["--branch", branch]);
    run(p, &args).envs(cf.env()).go()
}

#[test]
fn tricky_names_give_wranglers_manifest_and_content_types() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    let out_file = p.path().join("gh-output");
    let summary_file = p.path().join("gh-summary");
    let mut args = BASE_ARGS.to_vec();
    args.extend(["--branch", "main"]);
    let out = run(&p, &args)
        .envs(cf.env())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", out_file.to_string_lossy())
        .env("GITHUB_STEP_SUMMARY", summary_file.to_string_lossy())
        .go();
    out.status(0);
    cf.assert_clean();

    let manifest = cf.manifest(0);
    let keys: Vec<&str> = manifest.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "/.env",
            "/.hidden/node_modules/k.js",
            "/.well-known/.DS_Store",
            "/.well-known/security.txt",
            "/LOGO.PNG",
            "/NODE_MODULES/upper.js",
            "/assets/LICENSE",
            "/assets/copy of hello.txt",
            "/assets/hello world.txt",
            "/css/style.css",
            "/index.html",
            "/json",
            "/link.txt",
            "/linkdir/style.css",
            "/logo.png",
            "/sub/_headers",
            "/sub/functions/kept.js",
            "/日本語/ページ.html",
        ]
    );
    assert_eq!(manifest["/assets/hello world.txt"], HELLO);
    assert_eq!(manifest["/assets/copy of hello.txt"], HELLO);
    assert_eq!(manifest["/link.txt"], HELLO);
    assert_eq!(manifest["/assets/LICENSE"], LICENSE);
    assert_eq!(manifest["/css/style.css"], STYLE);
    assert_eq!(manifest["/linkdir/style.css"], STYLE);
    assert_eq!(manifest["/logo.png"], LOGO_PNG);
    assert_ne!(
        manifest["/LOGO.PNG"], LOGO_PNG,
        "the extension's case is hashed"
    );

    for (path, ctype) in [
        ("/assets/hello world.txt", "text/plain"),
        ("/assets/LICENSE", "application/octet-stream"),
        ("/css/style.css", "text/css"),
        ("/LOGO.PNG", "image/png"),
        ("/json", "application/json"),
        ("/index.html", "text/html"),
        ("/日本語/ページ.html", "text/html"),
        ("/.well-known/security.txt", "text/plain"),
        ("/.env", "application/octet-stream"),
        ("/sub/_headers", "application/octet-stream"),
        ("/NODE_MODULES/upper.js", "application/javascript"),
    ] {
        assert_eq!(
            cf.content_type_of(&manifest[path]).as_deref(),
            Some(ctype),
            "{path}"
        );
    }

    // Root _headers goes as a file part; the empty _redirects does not go at all.
    assert_eq!(
        cf.part(0, "_headers").as_deref(),
        Some("/*\n  X-Frame-Options: DENY\n")
    );
    assert_eq!(
        cf.part(0, "_headers#content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(cf.part(0, "_redirects"), None);
    assert_eq!(cf.part(0, "branch").as_deref(), Some("main"));
    assert_eq!(cf.part(0, "commit_hash").as_deref(), Some("0123abcd"));
    assert_eq!(
        cf.part(0, "commit_message").as_deref(),
        Some("first deploy")
    );
    assert_eq!(cf.part(0, "commit_dirty").as_deref(), Some("false"));

    // Identical bytes with the same extension are uploaded once.
    assert_eq!(cf.count(Route::CreateDeployment), 1);
    assert_eq!(cf.count(Route::UpsertHashes), 1);
    let d = &cf.deployments()[0];
    assert_eq!(d["environment"], "production");
    let url = d["url"].as_str().unwrap();
    out.stdout_has(url).stdout_has("production");
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        outputs.contains(&format!("deployment-url={url}\n")),
        "{outputs}"
    );
    assert!(outputs.contains(&format!("deployment-id={}\n", d["id"].as_str().unwrap())));
    assert!(outputs.contains("alias-url=\n"), "{outputs}");
    let summary = std::fs::read_to_string(&summary_file).unwrap();
    assert!(summary.contains(url), "{summary}");
    // .env is published, as wrangler does, but not silently.
    out.stdout_has("::warning::").stdout_has(".env");
}

#[test]
fn unchanged_redeploy_uploads_nothing_and_preview_gets_its_alias() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    deploy(&p, &cf, "main").status(0);
    let uploads_after_first = cf.count(Route::Upload);
    assert!(uploads_after_first >= 1);

    let out = deploy(&p, &cf, "feature/Foo_Bar");
    out.status(0);
    assert_eq!(
        cf.count(Route::Upload),
        uploads_after_first,
        "nothing re-uploaded"
    );
    assert_eq!(
        cf.count(Route::UpsertHashes),
        2,
        "upsert-hashes is always sent"
    );
    assert_eq!(cf.count(Route::CreateDeployment), 2);
    cf.assert_clean();
    let d = &cf.deployments()[1];
    assert_eq!(d["environment"], "preview");
    out.stdout_has("preview")
        .stdout_has("https://feature-foo-bar.shop-web.pages.dev")
        .stdout_has("0 of 15 distinct files to upload");
    assert_eq!(cf.manifest(0), cf.manifest(1));
}

#[test]
fn each_fault_is_survived_with_one_deployment() {
    let faults = [
        (Route::Upload, Fault::JwtUnauthorized),
        (Route::CheckMissing, Fault::ExpiredJwtText),
        (Route::Upload, Fault::ExpiredJwtText),
        (Route::Upload, Fault::RateLimited(2)),
        (Route::Upload, Fault::Html502),
        (Route::Upload, Fault::Gateway524),
        (Route::Upload, Fault::Reset),
        (Route::CheckMissing, Fault::Html502),
        (Route::UpsertHashes, Fault::JwtUnauthorized),
        (Route::Project, Fault::RateLimited(1)),
        (Route::UploadToken, Fault::Html502),
        (Route::CreateDeployment, Fault::Unknown8000000),
        (Route::GetDeployment, Fault::Html502),
    ];
    for (route, fault) in faults {
        let p = tricky_site();
        let cf = FakeCloudflare::start();
        cf.fault(route, 1, fault.clone());
        let out = deploy(&p, &cf, "main");
        assert_eq!(
            out.status, 0,
            "{route:?} {fault:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(cf.deployments().len(), 1, "{route:?} {fault:?}");
        assert!(cf.count(route) >= 2, "{route:?} {fault:?} was retried");
        cf.assert_clean();
    }
}

#[test]
fn token_expiry_429_and_502_in_one_run_end_with_one_deployment() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.fault(Route::CheckMissing, 1, Fault::ExpiredJwtText)
        .fault(Route::Upload, 1, Fault::RateLimited(2))
        .fault(Route::Upload, 2, Fault::Html502)
        .fault(Route::Upload, 3, Fault::JwtUnauthorized);
    deploy(&p, &cf, "main").status(0);
    assert_eq!(cf.deployments().len(), 1);
    assert!(cf.count(Route::UploadToken) >= 3, "the token was refreshed");
    cf.assert_clean();
}

#[test]
fn a_token_refused_forever_fails_after_bounded_refreshes() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.always(Route::CheckMissing, Fault::JwtUnauthorized);
    let out = deploy(&p, &cf, "main");
    out.status(1).stderr_has("upload token was refused");
    assert!(cf.count(Route::UploadToken) <= 1 + 5);
    assert_eq!(cf.deployments().len(), 0);
}

#[test]
fn persistent_5xx_fails_saying_how_hard_it_tried() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.always(Route::Upload, Fault::Html502);
    let out = deploy(&p, &cf, "main");
    out.status(1)
        .stderr_has("failed after 5 retries")
        .stderr_has("502 Bad Gateway");
    assert_eq!(
        cf.deployments().len(),
        0,
        "no deployment after a failed upload"
    );
}

#[test]
fn a_failed_deployment_exits_1_with_its_log_line_and_the_token_masked() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    // The fake's log line quotes the bearer token: it must come out as ***.
    cf.set(|s| s.outcome = Some(Outcome::Failure));
    let out = deploy(&p, &cf, "main");
    out.status(1)
        .stderr_has("failed: Error: deploying assets failed (token ***)")
        .nowhere(TOKEN);
}

#[test]
fn a_deployment_that_never_finishes_is_not_a_success() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.set(|s| s.outcome = Some(Outcome::Stuck));
    deploy(&p, &cf, "main")
        .status(1)
        .stderr_has("did not reach a final status");
}

#[test]
fn a_file_over_25_mib_is_named_before_any_request() {
    let p = Project::new();
    p.file("site/index.html", "<h1>hi</h1>");
    std::fs::create_dir_all(p.path().join("site/media")).unwrap();
    let f = std::fs::File::create(p.path().join("site/media/big movie.mp4")).unwrap();
    f.set_len(25 * 1024 * 1024 + 1).unwrap();
    let cf = FakeCloudflare::start();
    deploy(&p, &cf, "main")
        .status(2)
        .stderr_has("Pages only supports files up to 25 MiB in size")
        .stderr_has("media/big movie.mp4 is 25.00 MiB");
    assert_eq!(cf.total_requests(), 0);
}

#[test]
fn the_file_count_limit_comes_from_the_upload_token() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.set(|s| s.max_files = 5);
    deploy(&p, &cf, "main")
        .status(2)
        .stderr_has("up to 5 files")
        .stderr_has("max_file_count_allowed");
    assert_eq!(cf.count(Route::Upload), 0);
    assert_eq!(cf.count(Route::CheckMissing), 0);
}

#[test]
fn missing_credentials_and_unknown_projects_are_input_errors() {
    let p = tricky_site();
    let mut args = BASE_ARGS.to_vec();
    args.extend(["--branch", "main"]);
    run(&p, &args)
        .go()
        .status(2)
        .stderr_has("CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID must be set");

    let cf = FakeCloudflare::start();
    cf.always(Route::Project, Fault::ProjectNotFound);
    deploy(&p, &cf, "main")
        .status(2)
        .stderr_has("Pages project `shop-web` not found")
        .nowhere(TOKEN);
}

#[test]
fn no_branch_outside_git_is_refused_rather_than_deploying_to_production() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    run(&p, BASE_ARGS)
        .envs(cf.env())
        .go()
        .status(2)
        .stderr_has("pass --branch");
    assert_eq!(cf.total_requests(), 0);
}

#[test]
fn dry_run_lists_files_hashes_and_types_without_network() {
    let p = tricky_site();
    let mut args = vec!["--dry-run"];
    args.extend(BASE_ARGS);
    let out = run(&p, &args).go();
    out.status(0)
        .stdout_has("/assets/hello world.txt")
        .stdout_has(HELLO)
        .stdout_has("text/plain")
        .stdout_has("`_headers` would be sent")
        .stdout_has("18 files (15 distinct)");
    assert!(!out.stdout.contains("/node_modules/a.js"));
}

#[test]
fn the_client_lists_and_rolls_back_production_deployments() {
    use deploy_action::api::cloudflare::{Cloudflare, Config};
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    deploy(&p, &cf, "main").status(0);
    p.file("site/index.html", "<h1>v2</h1>\n");
    deploy(&p, &cf, "main").status(0);
    deploy(&p, &cf, "preview-x").status(0);

    let client = Cloudflare::new(
        Config {
            base_url: cf.base_url(),
            account_id: ACCOUNT.into(),
            api_token: TOKEN.into(),
        },
        deploy_action::api::http::HttpClient::builder()
            .build()
            .unwrap(),
        deploy_action::api::retry::RetryPolicy::default(),
    );
    let prod = client
        .list_deployments("shop-web", Some("production"))
        .unwrap();
    assert_eq!(prod.len(), 2);
    assert!(prod.iter().all(|d| d.environment == "production"));
    let previous = &prod[1];
    let back = client.rollback("shop-web", &previous.id).unwrap();
    assert_eq!(back.id, previous.id);
    let preview = client
        .list_deployments("shop-web", Some("preview"))
        .unwrap();
    assert_eq!(preview.len(), 1);
    assert!(client.rollback("shop-web", &preview[0].id).is_err());
    assert_eq!(
        client
            .get_project("shop-web")
            .unwrap()
            .production_branch
            .as_deref(),
        Some("main")
    );
}

/// `n` small distinct files under `site/p/<i % 100>/` (written directly: faster than `Project::file`).
fn many_files(p: &Project, n: usize) {
    for d in 0..100.min(n) {
        std::fs::create_dir_all(p.path().join(format!("site/p/{d}"))).unwrap();
    }
    for i in 0..n {
        std::fs::write(
            p.path().join(format!("site/p/{}/{i}.html", i % 100)),
            format!("<p>{i}</p>"),
        )
        .unwrap();
    }
}

#[test]
fn a_big_site_with_short_lived_tokens_and_a_524_goes_one_upload_at_a_time() {
    // 12,100 files make 7 upload buckets (2,000 files each at most).
    //
    // Tokens: every upload token is good for one request, then the server answers
    // `403 Expired JWT` as the real one does, so the run goes through a dozen tokens. Tokens that
    // worked and then expired are not "refused": only fresh tokens refused in a row count against
    // the bound of 5.
    //
    // 524: the first upload is held until a second one arrives (the client uploads in parallel),
    // then answered 524. From then on no upload may start while another runs (those already in
    // flight at the 524 may finish); each later upload is held 20 ms so an overlap would show.
    let p = Project::new();
    many_files(&p, 12_100);
    let cf = FakeCloudflare::start();
    cf.set(|s| {
        s.token_uses = Some(1);
        s.hold_first_upload_for_company = true;
        s.upload_hold_ms = 20;
    })
    .fault(Route::Upload, 1, Fault::Gateway524);
    let out = deploy(&p, &cf, "main");
    out.status(0).stdout_has("one at a time");
    assert_eq!(cf.deployments().len(), 1);
    cf.assert_clean();
    let st = cf.state.lock().unwrap();
    assert_eq!(st.upload_sizes.len(), 7, "{:?}", st.upload_sizes);
    assert_eq!(st.upload_sizes.iter().sum::<usize>(), 12_100);
    assert!(
        st.upload_sizes.iter().all(|&n| n <= 2000),
        "{:?}",
        st.upload_sizes
    );
    assert!(
        st.tokens_expired > 5,
        "{} tokens expired",
        st.tokens_expired
    );
    assert!(
        cf_count(&st, Route::UploadToken) > 1 + 5,
        "more tokens than the old per-run bound of 5 refreshes"
    );
    assert!(st.gateway_served);
    assert!(
        st.max_uploads_in_flight >= 2,
        "uploads ran in parallel before the 524"
    );
    assert_eq!(
        st.max_uploads_in_flight_after_gateway, 1,
        "one upload at a time after the 524"
    );
}

#[test]
fn branch_and_commit_come_from_actions_then_git_never_a_detached_head() {
    let cf = FakeCloudflare::start();
    let p = Project::git();
    p.file("site/index.html", "<h1>hi</h1>\n");
    let sha = p.commit("Add the site\n\nWith a body.");
    let args = ["pages", "--project", "shop-web", "--dir", "site"];

    // In Actions, a pull request's head branch wins over the ref name.
    run(&p, &args)
        .envs(cf.env())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_HEAD_REF", "feature/login")
        .env("GITHUB_REF_NAME", "42/merge")
        .go()
        .status(0);
    assert_eq!(cf.part(0, "branch").as_deref(), Some("feature/login"));
    assert_eq!(cf.part(0, "commit_hash").as_deref(), Some(sha.as_str()));
    assert_eq!(
        cf.part(0, "commit_message").as_deref(),
        Some("Add the site\n\nWith a body.")
    );
    assert_eq!(cf.part(0, "commit_dirty").as_deref(), Some("false"));

    // Locally: the checked-out branch, and a dirty tree is reported.
    p.file("untracked.txt", "x");
    run(&p, &args).envs(cf.env()).go().status(0);
    assert_eq!(cf.part(1, "branch").as_deref(), Some("main"));
    assert_eq!(cf.part(1, "commit_dirty").as_deref(), Some("true"));
    assert_eq!(cf.deployments()[1]["environment"], "production");

    // A detached HEAD is refused rather than sent as the branch `HEAD`.
    p.git_cmd(&["checkout", "-q", "--detach"]);
    run(&p, &args)
        .envs(cf.env())
        .go()
        .status(2)
        .stderr_has("detached HEAD");
    assert_eq!(cf.deployments().len(), 2);
}

#[test]
fn a_worker_file_goes_as_wranglers_worker_bundle_with_its_routes() {
    let p = tricky_site();
    p.file(
        "site/_worker.js",
        "export default { fetch() { return new Response(\"hi\") } }\n",
    )
    .file(
        "site/_routes.json",
        r#"{"version":1,"include":["/api/*"],"exclude":[]}"#,
    );
    let cf = FakeCloudflare::start();
    let out = deploy(&p, &cf, "main");
    out.status(0);
    cf.assert_clean();
    // wrangler 4's parts, in its order; no legacy `_worker.js` part.
    assert_eq!(
        cf.part(0, "#order").as_deref(),
        Some(
            "manifest,branch,commit_message,commit_hash,commit_dirty,_headers,_worker.bundle,_routes.json"
        )
    );
    for name in ["_worker.bundle", "_routes.json"] {
        assert_eq!(
            cf.part(0, &format!("{name}#content-type")).as_deref(),
            Some("application/octet-stream"),
            "{name}"
        );
    }
    let bundle = cf.state.lock().unwrap().deployment_parts[0]["_worker.bundle"].clone();
    assert_eq!(
        crate::fake_cloudflare::worker_modules(&bundle).unwrap(),
        ["_worker.js"]
    );
    assert!(String::from_utf8_lossy(&bundle).contains("{\"main_module\":\"_worker.js\"}"));
    assert_eq!(
        cf.part(0, "_routes.json").as_deref(),
        Some(r#"{"version":1,"include":["/api/*"],"exclude":[]}"#)
    );
    // The Worker and its routes are not assets.
    assert!(!cf.manifest(0).contains_key("/_worker.js"));
    assert!(!cf.manifest(0).contains_key("/_routes.json"));
}

#[test]
fn a_worker_directory_goes_as_its_modules() {
    let p = Project::new();
    p.file("site/index.html", "<h1>hi</h1>\n")
        .file(
            "site/_worker.js/index.js",
            "import {x} from \"./lib/util.js\";\nexport default { fetch() { return new Response(x) } }\n",
        )
        .file("site/_worker.js/lib/util.js", "export const x = \"hi\";\n")
        .file("site/_worker.js/lib/t.txt", "text module\n")
        .file("site/_worker.js/README.md", "not a module\n");
    let cf = FakeCloudflare::start();
    let out = deploy(&p, &cf, "feature/x");
    out.status(0);
    cf.assert_clean();
    let bundle = cf.state.lock().unwrap().deployment_parts[0]["_worker.bundle"].clone();
    assert_eq!(
        crate::fake_cloudflare::worker_modules(&bundle).unwrap(),
        ["index.js", "lib/t.txt", "lib/util.js"]
    );
    assert_eq!(cf.part(0, "_routes.json"), None);
    assert_eq!(
        cf.manifest(0).keys().collect::<Vec<_>>(),
        ["/index.html"],
        "the Worker's files are not assets"
    );
}

#[test]
fn a_bad_worker_or_routes_file_is_named_before_any_request() {
    let cases = [
        (
            "site/_routes.json",
            r#"{"version":1,"include":["/api/*","/api/users"],"exclude":[]}"#,
            "Overlapping rules",
        ),
        ("site/_routes.json", "{not json", "not valid JSON"),
        (
            "site/_routes.json",
            r#"{"version":1,"include":["api"],"exclude":[]}"#,
            "must start with '/'",
        ),
    ];
    for (file, content, want) in cases {
        let p = Project::new();
        p.file("site/index.html", "<h1>hi</h1>\n")
            .file("site/_worker.js", "export default {}\n")
            .file(file, content);
        let cf = FakeCloudflare::start();
        deploy(&p, &cf, "main")
            .status(2)
            .stderr_has("Invalid _routes.json file found at: ")
            .stderr_has("site/_routes.json")
            .stderr_has(want);
        assert_eq!(cf.total_requests(), 0, "{want}");
    }
    let p = Project::new();
    p.file("site/index.html", "<h1>hi</h1>\n")
        .file("site/_worker.js/main.js", "export default {}\n");
    let cf = FakeCloudflare::start();
    deploy(&p, &cf, "main")
        .status(2)
        .stderr_has("_worker.js")
        .stderr_has("needs an `index.js`");
    assert_eq!(cf.total_requests(), 0);
}

#[test]
fn a_lost_answer_to_the_deployment_post_never_makes_a_second_deployment() {
    // The server created the deployment and the connection dropped before the answer: the
    // client finds it in the project's list and adopts it.
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    cf.fault(Route::CreateDeployment, 1, Fault::DoThenReset);
    let out = deploy(&p, &cf, "main");
    out.status(0)
        .stdout_has("the answer to the deployment request was lost");
    assert_eq!(cf.deployments().len(), 1, "no duplicate");
    assert_eq!(cf.count(Route::CreateDeployment), 1, "no second POST");
    let id = cf.deployments()[0]["id"].as_str().unwrap().to_string();
    out.stdout_has(&id);
    cf.assert_clean();

    // The same with a deployment of the same commit and branch made just before: that one is
    // not mistaken for ours.
    let cf = FakeCloudflare::start();
    deploy(&p, &cf, "main").status(0);
    cf.fault(Route::CreateDeployment, 2, Fault::DoThenReset);
    let out = deploy(&p, &cf, "main");
    out.status(0);
    assert_eq!(cf.deployments().len(), 2);
    let second = cf.deployments()[1]["id"].as_str().unwrap().to_string();
    out.stdout_has(&format!("id:    {second}"));

    // Dropped before anything was created: the POST is sent again, one deployment results.
    let cf = FakeCloudflare::start();
    cf.fault(Route::CreateDeployment, 1, Fault::Reset);
    deploy(&p, &cf, "main").status(0);
    assert_eq!(cf.deployments().len(), 1);
    assert_eq!(cf.count(Route::CreateDeployment), 2);
}

const TWO_SITES: &str = r#"version: 1
project: shop
environments:
  staging:
    hosts: ["local"]
    dir: /srv/shop
sites:
  web:
    project: shop-web
    dir: clients/web/dist
    paths: ["clients/web/**"]
  docs:
    project: shop-docs
    dir: clients/docs/dist
    paths: ["clients/docs/**"]
"#;

#[test]
fn only_the_sites_the_changes_affect_are_deployed() {
    let p = Project::git();
    p.manifest(TWO_SITES)
        .file("clients/web/dist/index.html", "<h1>web</h1>\n")
        .file("clients/docs/dist/index.html", "<h1>docs</h1>\n");
    p.commit("two sites");
    p.file("clients/docs/dist/index.html", "<h1>docs v2</h1>\n");
    p.commit("docs only");
    let cf = FakeCloudflare::start();
    let out_file = p.path().join("gh-output");
    let run = |args: &[&str]| {
        run(&p, args)
            .envs(cf.env())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_REF_NAME", "main")
            .env("GITHUB_OUTPUT", out_file.to_string_lossy())
            .go()
    };
    // HEAD~1..HEAD touched docs only.
    let out = run(&["pages", "--env", "staging"]);
    out.status(0).stdout_has("affected sites: docs");
    let projects: Vec<String> = cf
        .deployments()
        .iter()
        .map(|d| d["project_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(projects, ["shop-docs"]);
    // Every deployment is listed in the `pages` output, the last one in the contract outputs.
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    let pages_line = outputs
        .lines()
        .find(|l| l.starts_with("pages="))
        .unwrap_or_else(|| panic!("{outputs}"));
    let pages: serde_json::Value = serde_json::from_str(&pages_line["pages=".len()..]).unwrap();
    assert_eq!(pages["docs"]["project"], "shop-docs");
    assert!(pages.get("web").is_none());
    assert!(outputs.contains("deployment-url=https://"), "{outputs}");

    // --base from the first commit: both; --only and --all override.
    std::fs::remove_file(&out_file).unwrap();
    run(&["pages", "--env", "staging", "--base", "HEAD~2"]).status(0);
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    assert!(outputs.contains("\"web\""), "{outputs}");
    assert!(outputs.contains("\"docs\""), "{outputs}");
    assert_eq!(cf.deployments().len(), 3);
    run(&["pages", "--env", "staging", "--only", "web"]).status(0);
    assert_eq!(cf.deployments()[3]["project_name"], "shop-web");
    run(&["pages", "--env", "staging", "--all"]).status(0);
    assert_eq!(cf.deployments().len(), 6);
    run(&["pages", "--env", "staging", "--only", "wbe"])
        .status(2)
        .stderr_has("did you mean `web`");

    // Nothing of the sites changed: nothing deployed.
    p.file("README.md", "readme\n");
    p.commit("readme");
    run(&["pages", "--env", "staging"])
        .status(0)
        .stdout_has("affected sites: none");
    assert_eq!(cf.deployments().len(), 6);
}

/// `pages` run in-process against the fake, to get the `PagesState` it returns.
fn deploy_in_process(
    cf: &FakeCloudflare,
    dir: &std::path::Path,
    branch: &str,
) -> deploy_action::state::PagesState {
    use deploy_action::context::Ctx;
    use deploy_action::settings::PagesSettings;
    let ctx = Ctx::new(
        deploy_action::settings::Settings::default(),
        deploy_action::report::Report::buffered(false, None),
    );
    let args = PagesSettings {
        branch: Some(branch.into()),
        commit_hash: Some("0123abcd".into()),
        commit_message: Some("deploy".into()),
        commit_dirty: Some(false),
        no_build: true,
        concurrency: 3,
        dir: Some(dir.to_path_buf()),
        project: Some("shop-web".into()),
        wait_timeout: 60,
    };
    let mut out = deploy_action::deploy::pages::run_with(&args, &ctx, &|| Ok(client(cf))).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).1
}

fn client(cf: &FakeCloudflare) -> deploy_action::api::cloudflare::Cloudflare {
    use deploy_action::api::cloudflare::{Cloudflare, Config};
    Cloudflare::new(
        Config {
            base_url: cf.base_url(),
            account_id: ACCOUNT.into(),
            api_token: TOKEN.into(),
        },
        deploy_action::api::http::HttpClient::builder()
            .build()
            .unwrap(),
        deploy_action::api::retry::RetryPolicy {
            no_delay: true,
            ..Default::default()
        },
    )
}

fn git_for(branch: &str) -> deploy_action::deploy::pages::GitMeta {
    deploy_action::deploy::pages::GitMeta {
        branch: Some(branch.into()),
        commit_hash: Some("0123abcd".into()),
        commit_message: Some("promote".into()),
        commit_dirty: Some(false),
    }
}

#[test]
fn a_recorded_deployment_is_redeployed_to_production_without_uploads() {
    use deploy_action::deploy::pages::redeploy;
    let p = tricky_site();
    p.file("site/_worker.js", "export default {}\n").file(
        "site/_routes.json",
        r#"{"version":1,"include":["/*"],"exclude":["/static/*"]}"#,
    );
    let cf = FakeCloudflare::start();
    let preview = deploy_in_process(&cf, &p.path().join("site"), "staging");
    assert_eq!(preview.environment, "preview");
    assert_eq!(preview.branch.as_deref(), Some("staging"));
    assert_eq!(
        preview.special_files.keys().collect::<Vec<_>>(),
        ["_headers", "_routes.json", "_worker.bundle"]
    );
    assert!(preview.special_files_omitted.is_empty());
    // The record alone: the site directory is gone.
    drop(p);
    let uploads = cf.count(Route::Upload);

    let prod = redeploy(
        &client(&cf),
        &preview,
        &git_for("main"),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(cf.count(Route::Upload), uploads, "nothing uploaded");
    assert_eq!(prod.environment, "production");
    assert_ne!(prod.deployment_id, preview.deployment_id);
    assert_eq!(prod.manifest, preview.manifest);
    assert_eq!(prod.special_files, preview.special_files);
    assert_eq!(cf.deployments().len(), 2);
    assert_eq!(cf.deployments()[1]["id"], prod.deployment_id.as_str());
    assert_eq!(cf.manifest(1), cf.manifest(0));
    for part in ["_headers", "_worker.bundle", "_routes.json", "#order"] {
        assert_eq!(cf.part(1, part), cf.part(0, part), "{part}");
    }
    assert_eq!(cf.part(1, "branch").as_deref(), Some("main"));
    cf.assert_clean();
}

#[test]
fn a_redeploy_refuses_what_it_cannot_send() {
    use deploy_action::deploy::pages::redeploy;
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    let state = deploy_in_process(&cf, &p.path().join("site"), "staging");
    let wait = std::time::Duration::from_secs(60);

    // Cloudflare lost a file: named, nothing deployed.
    let lost = state.manifest["/css/style.css"].clone();
    cf.set(|s| {
        s.store.remove(&lost);
        s.upserted.remove(&lost);
    });
    let e = redeploy(&client(&cf), &state, &git_for("main"), wait)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no longer has 2 of its files"), "{e}");
    assert!(
        e.contains("/css/style.css") && e.contains("/linkdir/style.css"),
        "{e}"
    );
    assert_eq!(cf.deployments().len(), 1);

    // Special files too big to record: refused before any request.
    let requests = cf.total_requests();
    let mut big = state.clone();
    big.special_files.clear();
    big.special_files_omitted = vec!["_worker.bundle".into()];
    let e = redeploy(&client(&cf), &big, &git_for("main"), wait).unwrap_err();
    assert_eq!(e.exit().code(), 2);
    assert!(
        e.to_string()
            .contains("does not hold its special files (_worker.bundle"),
        "{e}"
    );
    // No branch: refused (it would deploy to production).
    let e = redeploy(&client(&cf), &state, &git_for(""), wait).unwrap_err();
    assert!(e.to_string().contains("no branch"), "{e}");
    assert_eq!(cf.total_requests(), requests);
}

#[test]
fn special_files_too_big_for_the_record_are_marked_omitted() {
    let p = Project::new();
    p.file("site/index.html", "<h1>hi</h1>\n").file(
        "site/_worker.js",
        &format!("export default {{}}\n//{}\n", "x".repeat(300 * 1024)),
    );
    let cf = FakeCloudflare::start();
    let state = deploy_in_process(&cf, &p.path().join("site"), "main");
    assert!(state.special_files.is_empty());
    assert_eq!(state.special_files_omitted, ["_worker.bundle"]);
}

#[test]
fn production_is_rolled_back_to_a_recorded_deployment() {
    use deploy_action::deploy::pages::rollback_to;
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    let v1 = deploy_in_process(&cf, &p.path().join("site"), "main");
    p.file("site/index.html", "<h1>v2</h1>\n");
    let v2 = deploy_in_process(&cf, &p.path().join("site"), "main");
    assert_ne!(v1.deployment_id, v2.deployment_id);

    let back = rollback_to(&client(&cf), &v1).unwrap();
    assert_eq!(back.deployment_id, v1.deployment_id);
    assert_eq!(back.environment, "production");
    assert_eq!(back.manifest, v1.manifest);
    assert_eq!(cf.count(Route::Rollback), 1);
    assert_eq!(cf.deployments().len(), 2, "nothing new deployed");

    // A preview cannot be rolled back to.
    let preview = deploy_in_process(&cf, &p.path().join("site"), "feature");
    let e = rollback_to(&client(&cf), &preview).unwrap_err();
    assert_eq!(e.exit().code(), 2);
    assert!(e.to_string().contains("preview deployment"), "{e}");
    assert_eq!(cf.count(Route::Rollback), 1);
}

/// The `steps` of a `--json` document: (id, how it was walked, description).
fn steps_of(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {doc:#}"))
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("id"), text("walked"), text("describe"))
        })
        .collect()
}

/// Issue 11, the plan is the whole run: `pages --dry-run` walks exactly the steps the real run
/// then takes against the local Cloudflare API, in order and with the same descriptions — two
/// sites, a build, a guarded environment approved through GitHub, the GitHub deployment and the
/// release record — and `plan --env` lists the same steps. The traces are in `--json`.
#[test]
fn i11_a_dry_run_of_pages_walks_the_steps_the_real_run_takes() {
    use crate::fake_github::{FakeGitHub, comment, hash_in};
    let host = tempfile::tempdir().unwrap();
    let p = Project::git();
    p.manifest(&format!(
        "version: 1\nproject: shop\nenvironments:\n  production:\n    hosts: [\"local\"]\n    dir: {}\n    approval: required\n    approvers: [alice]\nsites:\n  web:\n    project: shop-web\n    dir: clients/web/dist\n    build: \"echo built > clients/web/dist/built.txt\"\n    production_branch: main\n  docs:\n    project: shop-docs\n    dir: clients/docs/dist\n",
        host.path().display()
    ))
    .file("clients/web/dist/index.html", "<h1>web</h1>\n")
    .file("clients/docs/dist/index.html", "<h1>docs</h1>\n");
    p.commit("two sites");
    let cf = FakeCloudflare::start();
    let gh = FakeGitHub::start()
        .comments(|issue| vec![comment("alice", &format!("approve {}", hash_in(issue)))]);
    let pages = |extra: &[&str]| {
        let mut args = vec!["pages", "--env", "production", "--all", "--branch", "main"];
        args.extend(extra);
        run(&p, &args)
            .envs(cf.env())
            .envs(crate::guard::actions_env(&p, &gh, "dave"))
            .go()
    };

    let dry = pages(&["--dry-run", "--json"]);
    dry.status(0).stderr_has("/index.html");
    assert_eq!(cf.total_requests(), 0, "a dry run sends nothing");
    assert!(
        !p.path().join("clients/web/dist/built.txt").exists(),
        "a dry run records the build, and runs nothing"
    );
    let real = pages(&["--json"]);
    real.status(0).stderr_has("approved by alice");
    assert!(p.path().join("clients/web/dist/built.txt").exists());
    assert_eq!(cf.deployments().len(), 2);

    let (dry, real) = (steps_of(&dry.json()), steps_of(&real.json()));
    let ids: Vec<&str> = real.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pages:rules",
            "pages:web:build",
            "pages:web:walk",
            "pages:docs:walk",
            "pages:git",
            "pages:approval",
            "pages:start",
            "pages:web:check-missing",
            "pages:web:upload",
            "pages:web:upsert-hashes",
            "pages:web:deploy",
            "pages:web:wait",
            "pages:docs:check-missing",
            "pages:docs:upload",
            "pages:docs:upsert-hashes",
            "pages:docs:deploy",
            "pages:docs:wait",
            "pages:record",
        ]
    );
    assert_eq!(dry, real, "the same steps, walked the same way");
    assert!(real.iter().all(|(_, walked, _)| walked == "performed"));

    // `plan` shows the same steps, in the same words.
    let plan = p
        .run(&["plan", "--env", "production", "--all", "--json"])
        .go();
    plan.status(0);
    let doc = plan.json();
    let planned: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == "pages")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ids);
    let text = p.run(&["plan", "--env", "production", "--all"]).go();
    for (_, _, describe) in &real {
        text.stdout_has(describe);
    }

    // The record step recorded the release; the start step made the GitHub deployment.
    let tasks: Vec<String> = gh
        .state
        .lock()
        .unwrap()
        .deployments
        .iter()
        .map(|d| d["task"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tasks, ["deploy:pages"]);
    assert!(host.path().join(".deploy-action/releases/1.json").exists());
}

/// Issue 11: a directory deployed without a manifest walks the same steps dry and for real.
#[test]
fn i11_a_dry_run_of_a_directory_walks_the_steps_the_real_run_takes() {
    let p = tricky_site();
    let cf = FakeCloudflare::start();
    let mut args = BASE_ARGS.to_vec();
    args.extend(["--branch", "main", "--json"]);
    let real = run(&p, &args).envs(cf.env()).go();
    real.status(0);
    args.push("--dry-run");
    let dry = run(&p, &args).go();
    dry.status(0);
    let (dry, real) = (steps_of(&dry.json()), steps_of(&real.json()));
    let ids: Vec<&str> = dry.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pages:shop-web:walk",
            "pages:git",
            "pages:shop-web:check-missing",
            "pages:shop-web:upload",
            "pages:shop-web:upsert-hashes",
            "pages:shop-web:deploy",
            "pages:shop-web:wait",
        ]
    );
    assert_eq!(dry, real);
    assert_eq!(cf.deployments().len(), 1);
}
