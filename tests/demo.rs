//! The README's first command, `bash scripts/demo.sh`, run as a new user runs it: the demo in
//! examples/demo deployed to the `local` environment (compose on this machine, SQLite), one
//! service changed and deployed again (only it restarts), then rolled back. The script checks its
//! own result (its last line) and exits non-zero when any step fails.

use crate::harness::{BIN, services};
use std::process::Command;

#[test]
fn the_readmes_demo_deploys_changes_one_service_and_rolls_it_back() {
    services::require_docker();
    let dir = tempfile::Builder::new()
        .prefix("da-demo-")
        .tempdir()
        .unwrap();
    let work = dir.path().join("demo");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/demo.sh"))
        .env("DEMO_DIR", &work)
        .env("DEPLOY_ACTION_BIN", BIN)
        .output()
        .expect("bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Leave nothing running: the demo's compose project, whatever happened.
    let _ = Command::new("sh")
        .arg("-c")
        .arg("docker ps -aq --filter label=com.docker.compose.project=deploy-action-demo | xargs -r docker rm -f >/dev/null 2>&1; docker network rm deploy-action-demo_default >/dev/null 2>&1; true")
        .status();
    assert!(
        out.status.success(),
        "scripts/demo.sh failed ({}):\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains("(unchanged: yes)"), "{stdout}");
    assert!(
        stdout.contains("rolling local back from release 3 to release 2"),
        "{stdout}"
    );
}
