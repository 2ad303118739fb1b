//! `exec --env E -- CMD...`: run one command on every host of an environment in parallel (one
//! thread per host), output prefixed by host, a per-host result table, exit 1 if any host failed
//! or could not be reached (the others still run and are reported). `--dry-run` prints the
//! command per host and runs nothing.

use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::error::{Error, Noun, Result};
use crate::exec::dry_run::Recording;
use crate::exec::pool::ExecutorPool;
use crate::manifest::Host;
use crate::report::Summary;
use crate::settings::ExecSettings;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One host's result, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct HostResult {
    pub host: String,
    /// ok | failed | unreachable | dry_run
    pub result: &'static str,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A few words for the table (`host key refused`).
    #[serde(skip)]
    pub reason: Option<&'static str>,
}

pub fn run(ctx: &Ctx, args: &ExecSettings) -> Result<()> {
    let manifest = ctx.load_manifest()?;
    let env = ctx.settings.environment(&manifest)?;
    if env.hosts.is_empty() {
        return Err(Error::usage(format!(
            "environment `{}` has no hosts to run on",
            env.name
        )));
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Error::usage("give the command after `--`"));
    };
    let cmd = Cmd::new(program.clone()).args(rest.iter().cloned());
    let r = &ctx.report;
    let dry = ctx.settings.dry_run;
    r.stage_start(if dry { "exec (dry run)" } else { "exec" }, Some(&env.name));

    let recording = Recording::default();
    let pool = if dry {
        ExecutorPool::dry_run(recording.clone())
    } else {
        ExecutorPool::new()
    };
    let warn = |m: &str| r.warn(m);
    let results: Vec<HostResult> = std::thread::scope(|s| {
        let handles: Vec<_> = env
            .hosts
            .iter()
            .map(|host| {
                let (pool, cmd, warn) = (&pool, &cmd, &warn);
                s.spawn(move || run_on(ctx, pool, host, cmd, warn, dry))
            })
            .collect();
        handles
            .into_iter()
            .zip(&env.hosts)
            .map(|(h, host)| {
                h.join().unwrap_or_else(|_| HostResult {
                    host: host.label(),
                    result: "failed",
                    exit_code: None,
                    duration_ms: 0,
                    error: Some("internal error: the host's thread panicked".into()),
                    reason: Some("internal error"),
                })
            })
            .collect()
    });

    if dry {
        for rec in recording.list() {
            if let crate::exec::dry_run::Recorded::Run { host, command, .. } = rec {
                r.info(&format!("{host}: would run: {command}"));
            }
        }
    }

    let mut table = Summary::new(
        format!("exec on {} ({})", env.name, cmd.display()),
        &["host", "exit status", "duration", "result"],
    );
    for res in &results {
        table.row([
            res.host.clone(),
            res.exit_code.map_or("-".into(), |c| c.to_string()),
            format_duration(Duration::from_millis(res.duration_ms)),
            match (&res.reason, res.result) {
                (Some(why), _) => format!("{} ({why})", res.result.to_uppercase()),
                (None, "failed") => "FAILED".to_string(),
                (None, other) => other.to_string(),
            },
        ]);
    }
    r.summary(&table);
    let bad: Vec<String> = results
        .iter()
        .filter(|x| matches!(x.result, "failed" | "unreachable"))
        .map(|x| x.host.clone())
        .collect();
    if ctx.settings.json {
        r.json_document(&serde_json::json!({
            "environment": env.name,
            "command": cmd.display(),
            "dry_run": dry,
            "ok": bad.is_empty(),
            "hosts": results,
        }));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed {
            stage: "exec".into(),
            failed: bad,
            of: results.len(),
            noun: Noun::Host,
        })
    }
}

fn run_on(
    ctx: &Ctx,
    pool: &ExecutorPool,
    host: &Host,
    cmd: &Cmd,
    warn: &(dyn Fn(&str) + Sync),
    dry: bool,
) -> HostResult {
    let label = host.label();
    let r = &ctx.report;
    let start = Instant::now();
    let outcome = pool.get(host, warn).and_then(|ex| {
        let mut ex = ex.lock().expect("executor lock");
        ex.run(cmd, None, &mut |stream, line| r.relay(&label, stream, line))
    });
    let duration_ms = start.elapsed().as_millis() as u64;
    match outcome {
        Ok(code) => HostResult {
            host: label,
            result: match (dry, code) {
                (true, _) => "dry_run",
                (false, 0) => "ok",
                _ => "failed",
            },
            exit_code: (!dry).then_some(code),
            duration_ms,
            error: None,
            reason: None,
        },
        Err(e) => {
            use crate::exec::ExecError as E;
            let (unreachable, reason) = match &e {
                E::Connect { .. } => (true, "cannot connect"),
                E::HostKey { .. } => (true, "host key refused"),
                E::Auth { .. } => (true, "authentication failed"),
                E::Spawn { .. } => (false, "cannot start"),
                E::Io { .. } => (false, "connection error"),
            };
            let error = Some(first_line(&e.to_string()));
            ctx.report_error(&Error::Exec(e));
            HostResult {
                host: label,
                result: if unreachable { "unreachable" } else { "failed" },
                exit_code: None,
                duration_ms,
                error,
                reason: Some(reason),
            }
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
