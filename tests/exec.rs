//! `exec` over the real sshd of the test environment (and `local`): streaming with host prefixes,
//! per-host results, strict host keys (wrong, unknown, hashed), key sources, secrets never printed,
//! clear connection errors; and an upload round trip through the SSH executor.

use crate::harness::{Project, Run, services};

fn ssh_url() -> String {
    format!("ssh://root@127.0.0.1:{}", services::var("DA_TEST_SSH_PORT"))
}

/// A project whose `staging` environment has these hosts.
fn project(hosts: &[&str]) -> Project {
    services::require_sshd();
    let p = Project::new();
    let list: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    p.manifest(&format!(
        "version: 1\nproject: t\nenvironments:\n  staging:\n    hosts: [{}]\n    dir: /tmp\n",
        list.join(", ")
    ));
    p
}

/// `exec --env staging -- ARGS` with the test key and known_hosts, and a HOME without keys.
fn exec(p: &Project, args: &[&str]) -> Run {
    let mut all = vec!["exec", "--env", "staging", "--"];
    all.extend_from_slice(args);
    p.run(&all)
        .env("HOME", p.path().display().to_string())
        .env(
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_FILE"),
        )
        .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
}

#[test]
fn runs_on_ssh_and_local_with_host_prefixes() {
    let url = ssh_url();
    let p = project(&[&url, "local"]);
    let out = exec(&p, &["sh", "-c", "echo out-$((40+2)); echo err-line >&2"]).go();
    out.status(0)
        .stdout_has("root@127.0.0.1:2222 | out-42")
        .stdout_has("local | out-42")
        .stderr_has("root@127.0.0.1:2222 | err-line")
        .stderr_has("local | err-line");
    // Both hosts in the table, both ok.
    let table: Vec<&str> = out.stdout.lines().filter(|l| l.ends_with(" ok")).collect();
    assert_eq!(table.len(), 2, "{}", out.stdout);
}

#[test]
fn a_failing_command_fails_with_the_per_host_table() {
    let url = ssh_url();
    let p = project(&[&url, "local"]);
    let out = exec(
        &p,
        &["sh", "-c", "if [ -n \"$SSH_CONNECTION\" ]; then exit 7; fi"],
    )
    .go();
    out.status(1)
        .stdout_has("host                 exit status  duration  result")
        .stderr_has("exec failed on 1 of 2 hosts: root@127.0.0.1:2222");
    let ssh_row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("root@127.0.0.1:2222  "))
        .unwrap();
    assert!(
        ssh_row.contains(" 7 ") && ssh_row.ends_with("FAILED"),
        "{ssh_row}"
    );
    let local_row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("local  "))
        .unwrap();
    assert!(local_row.ends_with("ok"), "{local_row}");
}

#[test]
fn large_output_on_both_streams_does_not_deadlock() {
    let url = ssh_url();
    let p = project(&[&url]);
    let script = "i=0; while [ $i -lt 3000 ]; do echo \"o$i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; echo \"e$i yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\" >&2; i=$((i+1)); done";
    let out = exec(&p, &["sh", "-c", script]).go();
    out.status(0)
        .stdout_has("| o2999 xxx")
        .stderr_has("| e2999 yyy");
    assert_eq!(out.stdout.matches("| o").count(), 3000);
}

#[test]
fn a_wrong_host_key_is_refused_before_any_command_runs() {
    let url = ssh_url();
    let p = project(&[&url]);
    let marker = p.path().join("marker");
    let out = exec(&p, &["touch", marker.to_str().unwrap()])
        .env(
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_WRONG_FILE"),
        )
        .go();
    out.status(1)
        .stderr_has("root@127.0.0.1:2222: host key refused")
        .stderr_has("[127.0.0.1]:2222 has CHANGED")
        .stderr_has(&services::var("DA_TEST_HOST_FINGERPRINT"))
        .stderr_has("ssh-keyscan -p 2222 127.0.0.1")
        .stdout_has("UNREACHABLE (host key refused)");
    assert!(
        !marker.exists(),
        "the command ran despite the wrong host key"
    );

    // DEPLOY_SSH_ACCEPT_NEW never accepts a changed key.
    exec(&p, &["touch", marker.to_str().unwrap()])
        .env(
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_WRONG_FILE"),
        )
        .env("DEPLOY_SSH_ACCEPT_NEW", "1")
        .go()
        .status(1)
        .stderr_has("has CHANGED");
    assert!(!marker.exists());
}

#[test]
fn hashed_known_hosts_entries_work() {
    let url = ssh_url();
    let p = project(&[&url]);
    exec(&p, &["echo", "hashed-ok"])
        .env(
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_HASHED_FILE"),
        )
        .go()
        .status(0)
        .stdout_has("root@127.0.0.1:2222 | hashed-ok");
}

#[test]
fn known_hosts_as_text_works() {
    let url = ssh_url();
    let p = project(&[&url]);
    let text = std::fs::read_to_string(services::var("DA_TEST_KNOWN_HOSTS_FILE")).unwrap();
    exec(&p, &["echo", "text-ok"])
        .env("DEPLOY_KNOWN_HOSTS", text)
        .go()
        .status(0)
        .stdout_has("| text-ok");
}

#[test]
fn an_unknown_host_key_is_refused_unless_accept_new() {
    let url = ssh_url();
    let p = project(&[&url]);
    let marker = p.path().join("marker");
    let other = "other.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIJtTINt2aSF3FLls7PSAfxQYUe59uXusD9HMLuPjY9\n";
    let fp = services::var("DA_TEST_HOST_FINGERPRINT");
    exec(&p, &["touch", marker.to_str().unwrap()])
        .env("DEPLOY_KNOWN_HOSTS", other)
        .go()
        .status(1)
        .stderr_has("the host key of [127.0.0.1]:2222 is not known")
        .stderr_has(&fp)
        .stderr_has("DEPLOY_SSH_ACCEPT_NEW=1");
    assert!(!marker.exists());

    exec(&p, &["touch", marker.to_str().unwrap()])
        .env("DEPLOY_KNOWN_HOSTS", other)
        .env("DEPLOY_SSH_ACCEPT_NEW", "1")
        .go()
        .status(0)
        .stdout_has("warning: root@127.0.0.1:2222: accepting the unknown host key")
        .stdout_has(&fp);
    assert!(marker.exists());
}

#[test]
fn key_text_works_and_is_never_printed() {
    let url = ssh_url();
    let p = project(&[&url]);
    let key = std::fs::read_to_string(services::var("DA_TEST_SSH_KEY_FILE")).unwrap();
    let body: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 8)
        .collect();
    assert!(!body.is_empty());
    let base = |p: &Project| {
        exec(p, &["sh", "-c", "echo key-ok; echo \"$0\"", &key])
            .env("DEPLOY_SSH_KEY_FILE", "")
            .env("DEPLOY_SSH_KEY", &key)
    };

    let out = base(&p).go();
    out.status(0).stdout_has("| key-ok");
    for l in &body {
        out.nowhere(l);
    }

    // In Actions: only inside ::add-mask:: lines, and masked in relayed output.
    let gh_out = p.path().join("gh-output");
    let gh_sum = p.path().join("gh-summary");
    let out = base(&p)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", gh_out.display().to_string())
        .env("GITHUB_STEP_SUMMARY", gh_sum.display().to_string())
        .go();
    out.status(0).stdout_has("| key-ok");
    assert!(out.stdout.contains("::add-mask::"), "{}", out.stdout);
    for l in &body {
        for line in out.stdout.lines().filter(|x| x.contains(l)) {
            assert!(line.starts_with("::add-mask::"), "key printed: {line}");
        }
        assert!(!out.stderr.contains(l), "key on stderr");
        let summary = std::fs::read_to_string(&gh_sum).unwrap_or_default();
        assert!(!summary.contains(l), "key in the job summary");
    }
}

#[test]
fn a_missing_key_is_a_clear_error() {
    let url = ssh_url();
    let p = project(&[&url]);
    exec(&p, &["true"])
        .env("DEPLOY_SSH_KEY_FILE", "")
        .go()
        .status(1)
        .stderr_has(
            "root@127.0.0.1:2222: authentication failed: no SSH key to log in as root@127.0.0.1",
        )
        .stderr_has("DEPLOY_SSH_KEY");
    let missing = p.path().join("nope");
    exec(&p, &["true"])
        .env("DEPLOY_SSH_KEY_FILE", missing.display().to_string())
        .go()
        .status(1)
        .stderr_has(&format!(
            "DEPLOY_SSH_KEY_FILE={}: no such file",
            missing.display()
        ));
}

#[test]
fn a_rejected_key_names_the_key_and_the_user() {
    let url = ssh_url();
    let p = project(&[&url]);
    let key = p.path().join("other_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    exec(&p, &["true"])
        .env("DEPLOY_SSH_KEY_FILE", key.display().to_string())
        .go()
        .status(1)
        .stderr_has(&format!(
            "root@127.0.0.1 rejected the key file {}",
            key.display()
        ));
}

#[test]
fn an_unreachable_port_is_a_clear_error_and_other_hosts_still_run() {
    let p = project(&["ssh://root@127.0.0.1:1", "local"]);
    exec(&p, &["echo", "still-here"])
        .go()
        .status(1)
        .stderr_has("root@127.0.0.1:1: cannot connect: connection refused by 127.0.0.1:1")
        .stdout_has("local | still-here")
        .stdout_has("UNREACHABLE (cannot connect)");
}

#[test]
fn dry_run_prints_per_host_and_runs_nothing() {
    let url = ssh_url();
    let p = project(&[&url, "local"]);
    let marker = p.path().join("marker");
    let mut args = vec!["--dry-run", "exec", "--env", "staging", "--", "touch"];
    args.push(marker.to_str().unwrap());
    p.run(&args)
        .go()
        .status(0)
        .stdout_has("root@127.0.0.1:2222: would run: touch")
        .stdout_has("local: would run: touch");
    assert!(!marker.exists());
}

#[test]
fn json_prints_per_host_results() {
    let url = ssh_url();
    let p = project(&[&url, "local"]);
    let args = [
        "--json", "exec", "--env", "staging", "--", "sh", "-c", "exit 3",
    ];
    let out = p
        .run(&args)
        .env("HOME", p.path().display().to_string())
        .env(
            "DEPLOY_KNOWN_HOSTS_FILE",
            services::var("DA_TEST_KNOWN_HOSTS_FILE"),
        )
        .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
        .go();
    out.status(1);
    let v = out.json();
    assert_eq!(v["ok"], false);
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0]["host"], "root@127.0.0.1:2222");
    assert_eq!(hosts[0]["exit_code"], 3);
    assert_eq!(hosts[1]["result"], "failed");
}

#[test]
fn unknown_env_or_no_hosts_is_exit_2() {
    let p = project(&["local"]);
    p.run(&["exec", "--env", "stagign", "--", "true"])
        .go()
        .status(2)
        .stderr_has("unknown environment `stagign`");
    let q = Project::new();
    q.manifest("version: 1\nproject: t\nenvironments:\n  empty:\n    hosts: []\n    dir: /tmp\n");
    let out = q.run(&["exec", "--env", "empty", "--", "true"]).go();
    out.status(2);
}

#[test]
fn upload_round_trip_over_ssh() {
    use deploy_action::exec::Executor;
    use deploy_action::exec::ssh::{SshConfig, SshExecutor, SshTarget};
    services::require_sshd();
    let cfg = SshConfig {
        key_file: Some(services::var("DA_TEST_SSH_KEY_FILE")),
        known_hosts_file: Some(services::var("DA_TEST_KNOWN_HOSTS_FILE")),
        ..Default::default()
    };
    let target = SshTarget {
        user: "root".into(),
        host: "127.0.0.1".into(),
        port: services::var("DA_TEST_SSH_PORT").parse().unwrap(),
    };
    let mut ex = SshExecutor::connect_with(&target, &cfg, &|_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub dir/file.txt");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ex.upload(path.to_str().unwrap(), &data, 0o640).unwrap();
    // Read it back through the same session (a second channel on one connection).
    let out = ex
        .capture(&deploy_action::cmd::Cmd::new("cat").arg(path.to_str().unwrap()))
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout, data);
    let mode = ex
        .capture(&deploy_action::cmd::Cmd::new("stat").args(["-c", "%a", path.to_str().unwrap()]))
        .unwrap();
    assert_eq!(mode.stdout_str().trim(), "640");
    // stdin through `run`, and a signal-killed command is non-zero.
    let mut lines = Vec::new();
    let mut input: &[u8] = b"line1\nline2";
    let status = ex
        .run(
            &deploy_action::cmd::Cmd::new("cat"),
            Some(&mut input),
            &mut |_, l| lines.push(l.to_string()),
        )
        .unwrap();
    assert_eq!(status, 0);
    assert_eq!(lines, ["line1", "line2"]);
    let killed = ex
        .capture(&deploy_action::cmd::Cmd::shell("kill -9 $$"))
        .unwrap();
    assert_ne!(killed.status, 0);
}

#[test]
fn r10_workflow_command_injection_from_exec_output_is_defused() {
    let url = ssh_url();
    let p = project(&[&url, "local"]);
    for json in [false, true] {
        let mut args = vec![];
        if json {
            args.push("--json");
        }
        let mut all = vec!["exec", "--env", "staging"];
        all.extend(&args);
        all.extend([
            "--",
            "sh",
            "-c",
            r"printf 'ok\r::add-mask::PLANTED\n'; printf 'e\r::warning::FORGED\n' >&2; printf '\033[2K##[error]FORGED\n'",
        ]);
        let out = p
            .run(&all)
            .env("HOME", p.path().display().to_string())
            .env(
                "DEPLOY_KNOWN_HOSTS_FILE",
                services::var("DA_TEST_KNOWN_HOSTS_FILE"),
            )
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
            .env("GITHUB_ACTIONS", "true")
            .go();
        out.status(0);
        crate::harness::runner::assert_no_forged(&out.stdout, &out.stderr, "PLANTED");
        crate::harness::runner::assert_no_forged(&out.stdout, &out.stderr, "FORGED");
        let relayed = if json { &out.stderr } else { &out.stdout };
        for host in ["root@127.0.0.1:2222", "local"] {
            assert!(
                relayed.contains(&format!("{host} | ::add-mask::PLANTED")),
                "{relayed}"
            );
            assert!(relayed.contains(&format!("{host} | ::warning::FORGED")));
        }
    }
}

/// An SSH executor on the test sshd.
fn ssh_executor() -> deploy_action::exec::ssh::SshExecutor {
    use deploy_action::exec::ssh::{SshConfig, SshExecutor, SshTarget};
    services::require_sshd();
    let cfg = SshConfig {
        key_file: Some(services::var("DA_TEST_SSH_KEY_FILE")),
        known_hosts_file: Some(services::var("DA_TEST_KNOWN_HOSTS_FILE")),
        ..Default::default()
    };
    let target = SshTarget {
        user: "root".into(),
        host: "127.0.0.1".into(),
        port: services::var("DA_TEST_SSH_PORT").parse().unwrap(),
    };
    SshExecutor::connect_with(&target, &cfg, &|_| {}).unwrap()
}

/// Runs `check` with a fresh executor of each kind: over SSH (a new session each call) and local.
fn each_executor(check: impl Fn(&str, &dyn Fn() -> Box<dyn deploy_action::exec::Executor + Send>)) {
    check("ssh", &|| Box::new(ssh_executor()));
    check("local", &|| {
        Box::new(deploy_action::exec::local::LocalExecutor)
    });
}

#[test]
fn r10_an_upload_never_follows_a_symlink_planted_at_its_temporary_name() {
    use std::os::unix::fs::PermissionsExt;
    each_executor(|kind, make| {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("app.env");
        // The fixed temporary names of the old uploads (SSH and Script; local).
        for planted in [
            format!("{}.deploy-action-tmp", path.display()),
            format!("{}/app.tmp-{}", dir.path().display(), std::process::id()),
        ] {
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        let mut ex = make();
        ex.upload(path.to_str().unwrap(), b"SECRET=1\n", 0o600)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{kind}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "SECRET=1\n",
            "{kind}"
        );
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{kind}");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{kind}: the mode asked for"
        );
        // A symlink at the target itself is replaced, not written through.
        let linked = dir.path().join("linked.yml");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        ex.upload(linked.to_str().unwrap(), b"x: 1\n", 0o644)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious\n",
            "{kind}"
        );
        assert!(
            std::fs::symlink_metadata(&linked).unwrap().is_file(),
            "{kind}"
        );
        assert_eq!(
            std::fs::symlink_metadata(&linked)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644,
            "{kind}"
        );
        // No temporary file is left behind.
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("deploy-action-") && !n.ends_with("-tmp"))
            .collect();
        assert!(left.is_empty(), "{kind}: {left:?}");
    });
}

#[test]
fn r10_two_concurrent_uploads_to_one_path_both_succeed_whole() {
    each_executor(|kind, make| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("compose.yml").display().to_string();
        let payloads: Vec<Vec<u8>> = (0..2u8).map(|w| vec![b'a' + w; 2 * 1024 * 1024]).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = payloads
                .iter()
                .map(|data| {
                    let mut ex = make();
                    let path = path.clone();
                    scope.spawn(move || {
                        for _ in 0..4 {
                            ex.upload(&path, data, 0o644)
                                .unwrap_or_else(|e| panic!("{kind}: {e}"));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        let got = std::fs::read(&path).unwrap();
        assert!(
            payloads.contains(&got),
            "{kind}: the file is neither upload whole ({} bytes)",
            got.len()
        );
    });
}

#[test]
fn r10_accept_new_remembers_the_key_so_the_next_run_checks_it() {
    use std::os::unix::fs::PermissionsExt;
    let url = ssh_url();
    let p = project(&[&url]);
    let fp = services::var("DA_TEST_HOST_FINGERPRINT");
    let home = p.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let run = |accept: bool| {
        let r = p
            .run(&["exec", "--env", "staging", "--", "true"])
            .env("HOME", home.display().to_string())
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"));
        if accept {
            r.env("DEPLOY_SSH_ACCEPT_NEW", "1").go()
        } else {
            r.go()
        }
    };
    run(false).status(1).stderr_has("is not known");

    // Accepted, said with the fingerprint, and written to ~/.ssh/known_hosts (0600 in a 0700 dir).
    let file = home.join(".ssh/known_hosts");
    run(true)
        .status(0)
        .stdout_has("accepting the unknown host key of [127.0.0.1]:2222")
        .stdout_has(&fp)
        .stdout_has(&format!("remembered in {}", file.display()));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&home.join(".ssh")), 0o700);
    let remembered = std::fs::read_to_string(&file).unwrap();
    assert_eq!(remembered.lines().count(), 1, "{remembered}");
    assert!(remembered.starts_with("[127.0.0.1]:2222 "), "{remembered}");

    // The next run checks it: no opt-in needed, nothing accepted or written again.
    let out = run(false);
    out.status(0);
    assert!(!out.stdout.contains("accepting"), "{}", out.stdout);
    run(true).status(0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), remembered);

    // A changed key is then refused, even with the opt-in, and the file is left alone.
    let wrong = std::fs::read_to_string(services::var("DA_TEST_KNOWN_HOSTS_WRONG_FILE")).unwrap();
    std::fs::write(&file, &wrong).unwrap();
    run(true)
        .status(1)
        .stderr_has("[127.0.0.1]:2222 has CHANGED");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), wrong);
}

#[test]
fn r10_accept_new_writes_to_known_hosts_file_and_says_when_it_cannot_remember() {
    let url = ssh_url();
    let p = project(&[&url]);
    let file = p.path().join("state/kh");
    let base = |r: Run| {
        r.env("HOME", p.path().display().to_string())
            .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
            .env("DEPLOY_SSH_ACCEPT_NEW", "1")
    };
    let args = ["exec", "--env", "staging", "--", "true"];
    base(p.run(&args))
        .env("DEPLOY_KNOWN_HOSTS_FILE", file.display().to_string())
        .go()
        .status(0)
        .stdout_has(&format!("remembered in {}", file.display()));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("[127.0.0.1]:2222 ")
    );
    assert!(
        !p.path().join(".ssh").exists(),
        "DEPLOY_KNOWN_HOSTS_FILE wins"
    );
    // Without the opt-in, the file now answers.
    p.run(&args)
        .env("HOME", p.path().display().to_string())
        .env("DEPLOY_SSH_KEY_FILE", services::var("DA_TEST_SSH_KEY_FILE"))
        .env("DEPLOY_KNOWN_HOSTS_FILE", file.display().to_string())
        .go()
        .status(0);

    // Known hosts given as text cannot be changed: accepted for this run, and the line to pin.
    let other = "other.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIJtTINt2aSF3FLls7PSAfxQYUe59uXusD9HMLuPjY9\n";
    base(p.run(&args))
        .env("DEPLOY_KNOWN_HOSTS", other)
        .go()
        .status(0)
        .stdout_has("it cannot be remembered, because the known hosts come from DEPLOY_KNOWN_HOSTS")
        .stdout_has("add this line to DEPLOY_KNOWN_HOSTS: [127.0.0.1]:2222 ");
    assert!(!p.path().join(".ssh").exists());
}
