//! The real services of the test environment (scripts/test-env.sh): sshd on loopback, dockerd with
//! compose v2 and v1, PostgreSQL. A test that needs one and finds it missing FAILS, naming the setup
//! command; it never skips.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The command that installs and starts every test service.
pub const SETUP: &str = "bash scripts/test-env.sh up";

/// The state directory written by scripts/test-env.sh.
pub fn state_dir() -> PathBuf {
    std::env::var_os("DA_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/deploy-action-test"))
}

/// The variables of the test environment (`<state>/env`); panics with the setup command when the
/// environment was never set up.
#[track_caller]
pub fn env() -> BTreeMap<String, String> {
    let path = state_dir().join("env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "the test environment is not set up ({} is missing): run `{SETUP}`",
            path.display()
        )
    });
    let vars: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(
        vars.get("DA_TEST_READY").map(String::as_str),
        Some("1"),
        "the test environment is incomplete: run `{SETUP}`"
    );
    vars
}

/// One variable of the test environment.
#[track_caller]
pub fn var(name: &str) -> String {
    env()
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing from the test environment: run `{SETUP}`"))
}

/// Fails unless sshd answers on the test port.
#[track_caller]
pub fn require_sshd() {
    let port = var("DA_TEST_SSH_PORT");
    let addr = format!("127.0.0.1:{port}");
    if std::net::TcpStream::connect_timeout(
        &addr.parse().unwrap(),
        std::time::Duration::from_secs(3),
    )
    .is_err()
    {
        panic!("sshd is not listening on {addr}: run `{SETUP}`");
    }
}

/// Fails unless the Docker engine answers.
#[track_caller]
pub fn require_docker() {
    let ok = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "the Docker engine is not running: run `{SETUP}`");
}

/// Fails unless PostgreSQL accepts connections; returns its URL.
#[track_caller]
pub fn require_postgres() -> String {
    let url = var("DA_TEST_PG_URL");
    let bin = var("DA_TEST_PG_BIN");
    let ok = std::process::Command::new(format!("{bin}/psql"))
        .args([url.as_str(), "-qAtc", "select 1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "PostgreSQL is not accepting connections at the test URL: run `{SETUP}`"
    );
    url
}

/// Fails unless the test registry (`DA_TEST_REGISTRY`, e.g. `127.0.0.1:5005`) answers the
/// registry API; returns its address.
#[track_caller]
pub fn require_registry() -> String {
    let addr = var("DA_TEST_REGISTRY");
    let ok = std::process::Command::new("curl")
        .args(["-fsS", "-m", "5", "-o", "/dev/null"])
        .arg(format!("http://{addr}/v2/"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the container registry does not answer on http://{addr}/v2/: run `{SETUP}`"
    );
    addr
}
