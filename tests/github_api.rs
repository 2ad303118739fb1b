//! The GitHub client (`api::github`) against the local fake: the requests it sends (headers,
//! bodies, pagination), what it makes of the answers (refs, tag objects, reviews, comments), and
//! its one retry loop (transient statuses and dropped connections retried, the rest not).

use crate::fake_github::{FakeGitHub, Fault, comment, review};
use deploy_action::api::github::{GitHub, GitHubError, GitRef, TagObject};
use deploy_action::api::retry::RetryPolicy;
use deploy_action::cmd::Secret;
use serde_json::json;

fn client(fake: &FakeGitHub) -> GitHub {
    GitHub::new(&fake.url, Secret::new(&fake.token), "o/shop")
        .unwrap()
        .with_retry_policy(RetryPolicy {
            no_delay: true,
            ..RetryPolicy::default()
        })
}

fn status_of(e: &GitHubError) -> u16 {
    match e {
        GitHubError::Http { status, .. } => *status,
        GitHubError::Config(_) => panic!("not an HTTP error: {e}"),
    }
}

const C1: &str = "1111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222";

#[test]
fn matching_refs_list_tags_under_a_prefix_and_tag_objects_dereference() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    assert_eq!(
        gh.list_matching_refs("tags/deploy/production/").unwrap(),
        vec![],
        "no match is an empty list"
    );
    let t1 = gh
        .create_tag_object("deploy/production/1", "{\"number\":1}", C1)
        .unwrap();
    gh.set_tag_ref("deploy/production/1", &t1).unwrap();
    let t2 = gh
        .create_tag_object("deploy/production/2", "{\"number\":2}", C2)
        .unwrap();
    gh.set_tag_ref("deploy/production/2", &t2).unwrap();
    gh.set_tag_ref("production", &t2).unwrap();
    // A lightweight tag someone pushed, and a tag of another environment.
    fake.set_ref("tags/deploy/production/manual", C1);
    fake.set_ref("tags/deploy/staging/1", C1);

    let refs = gh.list_matching_refs("tags/deploy/production/").unwrap();
    assert_eq!(
        refs,
        vec![
            GitRef {
                name: "refs/tags/deploy/production/1".into(),
                sha: t1.clone(),
                object_type: "tag".into()
            },
            GitRef {
                name: "refs/tags/deploy/production/2".into(),
                sha: t2.clone(),
                object_type: "tag".into()
            },
            GitRef {
                name: "refs/tags/deploy/production/manual".into(),
                sha: C1.into(),
                object_type: "commit".into()
            },
        ]
    );
    // A `refs/` prefix means the same.
    assert_eq!(
        gh.list_matching_refs("refs/tags/deploy/production/")
            .unwrap(),
        refs
    );
    assert_eq!(
        gh.get_tag_object(&refs[1].sha).unwrap(),
        TagObject {
            tag: "deploy/production/2".into(),
            message: "{\"number\":2}".into(),
            object_sha: C2.into()
        }
    );
    let missing = gh.get_tag_object(C2).unwrap_err();
    assert_eq!(status_of(&missing), 404, "{missing}");
    assert!(
        missing.to_string().contains("/repos/o/shop/git/tags/"),
        "{missing}"
    );
    let log = fake.log();
    assert!(
        log.contains(&"GET /repos/o/shop/git/matching-refs/tags/deploy/production/".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("GET /repos/o/shop/git/tags/{t2}")),
        "{log:?}"
    );
}

#[test]
fn every_request_names_the_tool_the_api_version_and_the_token() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    gh.list_matching_refs("tags/").unwrap();
    gh.create_tag_object("t", "m", C1).unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r.user_agent,
            format!("deploy-action/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(r.accept, "application/vnd.github+json");
        assert_eq!(r.api_version, "2022-11-28");
        assert_eq!(r.authorization, format!("Bearer {}", fake.token));
    }
    assert_eq!(
        requests[1].body,
        json!({"tag": "t", "message": "m", "object": C1, "type": "commit"})
    );
}

#[test]
fn a_wrong_token_is_401_and_never_shown() {
    let fake = FakeGitHub::start();
    let token = "ghs_wrongWRONGwrong0123";
    let gh = GitHub::new(&fake.url, Secret::new(token), "o/shop").unwrap();
    let e = gh.list_matching_refs("tags/").unwrap_err();
    assert_eq!(status_of(&e), 401);
    assert!(e.to_string().contains("Bad credentials"), "{e}");
    assert!(!e.to_string().contains(token) && !format!("{e:?}").contains(token));
    assert_eq!(fake.log().len(), 1, "a 401 is not retried");
}

#[test]
fn pointer_tags_are_created_then_moved_with_force() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    gh.set_tag_ref("production", C1).unwrap();
    gh.set_tag_ref("production", C2).unwrap();
    assert_eq!(fake.state.lock().unwrap().refs["refs/tags/production"], C2);
    let log: Vec<(String, String, serde_json::Value)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.body))
        .collect();
    assert_eq!(
        log,
        vec![
            (
                "PATCH".into(),
                "/repos/o/shop/git/refs/tags/production".into(),
                json!({"sha": C1, "force": true})
            ),
            (
                "POST".into(),
                "/repos/o/shop/git/refs".into(),
                json!({"ref": "refs/tags/production", "sha": C1})
            ),
            (
                "PATCH".into(),
                "/repos/o/shop/git/refs/tags/production".into(),
                json!({"sha": C2, "force": true})
            ),
        ]
    );
    // Some GitHub versions answer 404 for a missing ref: also a create.
    fake.fail_once("PATCH", "/repos/o/shop/git/refs/tags/staging", 404);
    gh.set_tag_ref("staging", C1).unwrap();
    assert_eq!(fake.state.lock().unwrap().refs["refs/tags/staging"], C1);
}

#[test]
fn deployments_skip_auto_merge_and_status_checks() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    let id = gh
        .create_deployment(
            C1,
            "production",
            "deploy",
            "release 3",
            &json!({"release": 3}),
        )
        .unwrap();
    gh.deployment_status(
        id,
        "success",
        Some("https://github.com/o/shop/actions/runs/9"),
        Some("https://example.com"),
        "release 3 live",
    )
    .unwrap();
    let st = fake.state.lock().unwrap();
    let d = &st.deployments[0];
    assert_eq!(d["id"], id);
    assert_eq!(d["ref"], C1);
    assert_eq!(d["auto_merge"], false);
    assert_eq!(d["required_contexts"], json!([]));
    assert_eq!(d["production_environment"], true);
    assert_eq!(d["payload"], json!({"release": 3}));
    assert_eq!(
        st.statuses[&id],
        vec![json!({
            "state": "success", "description": "release 3 live",
            "log_url": "https://github.com/o/shop/actions/runs/9",
            "environment_url": "https://example.com",
        })]
    );
    drop(st);
    let e = gh
        .deployment_status(id, "done", None, None, "x")
        .unwrap_err();
    assert!(
        e.to_string().contains("not a deployment status state"),
        "{e}"
    );
    let e = gh
        .deployment_status(id + 1, "success", None, None, "x")
        .unwrap_err();
    assert_eq!(status_of(&e), 404);
}

#[test]
fn a_202_auto_merge_answer_is_an_error_not_a_deployment() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    fake.fault(
        Fault::new("POST", "/repos/o/shop/deployments", 202)
            .body(json!({"message": "Auto-merged main into topic-branch on deployment."})),
    );
    let e = gh
        .create_deployment(C1, "staging", "deploy", "x", &json!({}))
        .unwrap_err();
    assert_eq!(status_of(&e), 0, "{e}");
    assert!(e.to_string().contains("unexpected answer"), "{e}");
    assert_eq!(fake.log().len(), 1, "not retried: {e}");
    assert!(fake.state.lock().unwrap().deployments.is_empty());
}

#[test]
fn transient_failures_are_retried_in_one_loop_and_counted() {
    let fake = FakeGitHub::start();
    let gh = client(&fake);
    fake.fault(
        Fault::new("POST", "/repos/o/shop/deployments", 502)
            .header("Retry-After", "0")
            .times(2),
    );
    fake.fault(Fault::reset("POST", "/repos/o/shop/deployments"));
    fake.fault(
        Fault::new("POST", "/repos/o/shop/deployments", 429)
            .header("Retry-After", "0")
            .body(json!({"message": "You have exceeded a secondary rate limit."})),
    );
    let id = gh
        .create_deployment(C1, "staging", "deploy", "x", &json!({}))
        .unwrap();
    assert_eq!(
        fake.log()
            .iter()
            .filter(|l| *l == "POST /repos/o/shop/deployments")
            .count(),
        5,
        "two 502s, a dropped connection and a 429, then the deployment"
    );
    assert_eq!(fake.state.lock().unwrap().deployments.len(), 1);
    assert!(id > 0);

    // A 403 secondary rate limit with retry-after is retried; a plain 403 is not.
    fake.fault(
        Fault::new("GET", "/repos/o/shop/git/matching-refs/", 403).header("Retry-After", "0"),
    );
    gh.list_matching_refs("tags/").unwrap();
    fake.fail_once("GET", "/repos/o/shop/git/matching-refs/", 403);
    let e = gh.list_matching_refs("tags/").unwrap_err();
    assert_eq!(status_of(&e), 403, "{e}");
    assert!(!e.to_string().contains("retr"), "{e}");
}

#[test]
fn retries_are_bounded_and_reported() {
    let fake = FakeGitHub::start();
    let gh = GitHub::new(&fake.url, Secret::new(&fake.token), "o/shop")
        .unwrap()
        .with_retry_policy(
            RetryPolicy {
                no_delay: true,
                ..RetryPolicy::default()
            }
            .with_max_retries(2),
        );
    fake.fault(Fault::new("GET", "/repos/o/shop/git/tags/", 503).times(10));
    let e = gh.get_tag_object(C1).unwrap_err();
    assert_eq!(status_of(&e), 503);
    assert_eq!(fake.log().len(), 3, "the first attempt and two retries");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "GET /repos/o/shop/git/tags/{C1}: HTTP 503: injected fault (failed after 2 retries in "
        )),
        "{text}"
    );
    // A 422 is final at once.
    fake.fail_once("POST", "/repos/o/shop/git/tags", 422);
    let e = gh.create_tag_object("t", "m", C1).unwrap_err();
    assert_eq!(status_of(&e), 422);
    assert_eq!(fake.log().len(), 4);
}

#[test]
fn reviews_and_every_page_of_comments() {
    let fake = FakeGitHub::start()
        .reviews(vec![review("erin", "approved", "production", "ship it")])
        .comments(|_| {
            (0..230)
                .map(|i| comment(if i % 2 == 0 { "alice" } else { "bob" }, &format!("c{i}")))
                .collect()
        });
    let gh = client(&fake);
    let reviews = gh.run_approvals("7").unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["user"]["login"], "erin");
    assert_eq!(reviews[0]["environments"][0]["name"], "production");
    assert_eq!(reviews[0]["comment"], "ship it");

    let (number, url) = gh.create_issue("Approve", "Plan hash: `abc`").unwrap();
    assert_eq!(number, 1);
    assert!(url.ends_with("/o/shop/issues/1"), "{url}");
    gh.comment(number, "noted").unwrap();
    let comments = gh.issue_comments(number).unwrap();
    assert_eq!(comments.len(), 231);
    assert_eq!(comments[0]["body"], "c0");
    assert_eq!(comments[229]["user"]["login"], "bob");
    assert_eq!(comments[230]["body"], "noted");
    assert_eq!(comments[0]["created_at"], comments[0]["updated_at"]);
    let pages: Vec<String> = fake
        .log()
        .into_iter()
        .filter(|l| l.starts_with("GET /repos/o/shop/issues/1/comments"))
        .collect();
    assert_eq!(
        pages,
        [
            "GET /repos/o/shop/issues/1/comments?per_page=100&page=1",
            "GET /repos/o/shop/issues/1/comments?per_page=100&page=2",
            "GET /repos/o/shop/issues/1/comments?per_page=100&page=3",
        ]
    );
    gh.close_issue(number).unwrap();
    assert!(fake.closed());
    assert_eq!(status_of(&gh.close_issue(9).unwrap_err()), 404);
}
