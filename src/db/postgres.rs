//! PostgreSQL through the synchronous `postgres` crate (rust-postgres), with TLS by rustls as the
//! URL's `sslmode` and `sslrootcert` say (libpq's meaning, default `prefer`; see `tls.rs`).
//!
//! The lock is a session advisory lock taken by a `pg_try_advisory_lock` retry loop on a dedicated
//! connection: never a blocking `pg_advisory_lock`, which deadlocks against CREATE INDEX
//! CONCURRENTLY (reference/migrations.md §1.4). It is released by `unlock`, on drop, and by the
//! server when the connection closes. Each migration runs with its row in one transaction, sent
//! as one batch (one round trip per migration); a no-transaction file runs statement by
//! statement, then its row is recorded. Backups are
//! `pg_dump -Fc` run on this machine and verified with `pg_restore -l` and `pg_restore -f /dev/null`.
//! The password reaches pg_dump through `PGPASSWORD` in its environment, never its command line
//! (which `ps` shows to every user of the machine). pg_dump is libpq: it reads the same `sslmode`
//! and `sslrootcert` from the URL; for `verify-ca`/`verify-full` without `sslrootcert` it is given
//! the system's CA bundle (`PGSSLROOTCERT`), as this side uses the system's roots then.

use super::tls::{self, SslMode, TlsOptions};
use super::{Bookkeeping, Database, DbError, create_table_sql, now_rfc3339};
use crate::cmd::{Cmd, Secret};
use crate::exec::{Executor, local::LocalExecutor};
use crate::migrate::{AppliedRow, SqlFile, TABLE, split_statements, statement_at};
use postgres::{Client, Config};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The advisory lock key: the first 8 bytes of sha256("deploy_action_migrations"), scoped by the
/// server to the current database.
pub fn lock_key() -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(TABLE.as_bytes());
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// What opens a migration's batch (error positions are shifted by its length).
const BATCH_PREFIX: &str = "BEGIN;\n";

pub struct PgDatabase {
    url: Secret,
    config: Config,
    tls: tls::Connector,
    tls_options: TlsOptions,
    client: Client,
    lock_conn: Option<Client>,
    label: String,
    application_name: String,
}

/// A PostgreSQL tool (`pg_dump`, `pg_restore`) from DEPLOY_PG_BIN, else from PATH.
pub fn tool(name: &str) -> String {
    match crate::env_vars::get(crate::env_vars::DEPLOY_PG_BIN) {
        Some(d) => format!("{}/{name}", d.trim_end_matches('/')),
        None => name.to_string(),
    }
}

/// `pg_dump -Fc` of the database at `url` into `dest`. The password goes in `PGPASSWORD` (a
/// secret in the child's environment), never in the arguments that `ps` shows.
pub fn pg_dump_cmd(url: &str, dest: &str) -> Cmd {
    let mut dbname = url_without_password(url);
    let bundle = system_roots_for_libpq(url);
    if bundle.is_some() {
        dbname = without_param(&dbname, "sslrootcert");
    }
    let mut cmd = Cmd::new(tool("pg_dump"))
        .args(["-Fc", "--no-password", "-f", dest])
        .arg("--dbname")
        .arg(dbname);
    if let Some(pw) = url_password(url) {
        cmd = cmd.env("PGPASSWORD", Secret::new(pw));
    }
    if let Some(bundle) = bundle {
        cmd = cmd.env("PGSSLROOTCERT", bundle);
    }
    cmd
}

/// For `verify-ca`/`verify-full` checked against the system's roots (no `sslrootcert`, or
/// `sslrootcert=system`, which libpq before 16 reads as a file name): the system's CA bundle,
/// since libpq would otherwise look for `~/.postgresql/root.crt`.
fn system_roots_for_libpq(url: &str) -> Option<String> {
    let (_, opts) = tls::split_url(url).ok()?;
    let verify = matches!(opts.mode, SslMode::VerifyCa | SslMode::VerifyFull);
    if !verify || opts.roots() != tls::Roots::System {
        return None;
    }
    let candidates = [
        crate::env_vars::get(crate::env_vars::SSL_CERT_FILE),
        Some("/etc/ssl/certs/ca-certificates.crt".into()),
        Some("/etc/pki/tls/certs/ca-bundle.crt".into()),
        Some("/etc/ssl/cert.pem".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| Path::new(p).is_file())
}

/// The URL without the query parameter `key`.
fn without_param(url: &str, key: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k) != key)
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// The URL with the password taken out of both places it can be (`user:pw@`, `?password=`).
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let auth = match auth.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{hosts}")
        }
        None => auth.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{auth}{tail}")
}

/// The password in a PostgreSQL URL, to register with the masker before anything prints.
pub fn url_password(url: &str) -> Option<String> {
    // Without the TLS parameters, which the driver's parser does not know (verify-full, sslrootcert).
    let (url, _) = tls::split_url(url).ok()?;
    Config::from_str(&url).ok().and_then(|c| {
        c.get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    })
}

/// A failed connection, saying so plainly when the server's TLS certificate was refused.
fn connect_error(label: &str, e: &postgres::Error, tls: &TlsOptions) -> DbError {
    let mut msg = format!("{label}: {}", pg_message(e));
    if let Some(rustls::Error::InvalidCertificate(why)) = tls::tls_error(e) {
        use rustls::CertificateError as C;
        let hint = match why {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "connect by a name the certificate is issued for, or use sslmode=verify-ca to check the chain only"
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                "the certificate is outside its validity period (or this machine's clock is wrong)"
            }
            _ => "give the CA that signed it with sslrootcert=<file> in the URL",
        };
        msg.push_str(&format!(
            "\nthe server's TLS certificate was refused when checked for {}: {hint}",
            tls.describe()
        ));
    }
    DbError::Connect(msg)
}

fn label_of(config: &Config, tls: &TlsOptions) -> String {
    let user = config.get_user().unwrap_or("?");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    let unix = matches!(
        config.get_hosts().first(),
        Some(postgres::config::Host::Unix(_))
    );
    if unix {
        format!("{user}@{host}:{port}/{db}")
    } else {
        format!("{user}@{host}:{port}/{db} ({})", tls.describe())
    }
}

impl PgDatabase {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, or `?host=/socket/dir`), over TLS
    /// as its `sslmode` says. A URL that cannot be used is [`DbError::Config`].
    pub fn connect(url: &str, application_name: &str) -> Result<PgDatabase, DbError> {
        let invalid = |e: String| DbError::Config(format!("the database URL is not valid: {e}"));
        let (driver_url, tls_options) = tls::split_url(url).map_err(invalid)?;
        let mut config = Config::from_str(&driver_url).map_err(|e| invalid(e.to_string()))?;
        config.application_name(application_name);
        config.connect_timeout(Duration::from_secs(15));
        let unix_only = config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, postgres::config::Host::Unix(_)));
        // No TLS over a socket, whatever sslmode says (the server never offers it there).
        config.ssl_mode(if unix_only && !config.get_hosts().is_empty() {
            postgres::config::SslMode::Disable
        } else {
            tls_options.mode.driver()
        });
        let tls = tls::connector(&tls_options).map_err(DbError::Config)?;
        let label = label_of(&config, &tls_options);
        let client = config
            .connect(tls.clone())
            .map_err(|e| connect_error(&label, &e, &tls_options))?;
        Ok(PgDatabase {
            url: Secret::new(url),
            config,
            tls,
            tls_options,
            client,
            lock_conn: None,
            label,
            application_name: application_name.to_string(),
        })
    }

    fn other(e: postgres::Error) -> DbError {
        DbError::Other(pg_message(&e))
    }

    fn lock_holder(&mut self) -> Option<String> {
        let row = self
            .client
            .query_opt(
                "SELECT a.application_name, a.pid, a.client_addr::text, a.backend_start::text
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
                    AND l.objid = ($1::bigint & 4294967295)::oid
                  LIMIT 1",
                &[&lock_key()],
            )
            .ok()??;
        let app: Option<String> = row.get(0);
        let pid: i32 = row.get(1);
        let addr: Option<String> = row.get(2);
        let since: Option<String> = row.get(3);
        Some(format!(
            "held by `{}` (pid {pid}{}{})",
            app.unwrap_or_default(),
            addr.map(|a| format!(", from {a}")).unwrap_or_default(),
            since
                .map(|s| format!(", connected since {s}"))
                .unwrap_or_default()
        ))
    }

    fn statement_error(e: &postgres::Error, sql: &str, single: Option<&str>) -> DbError {
        let statement = match (single, e.as_db_error().and_then(|d| d.position())) {
            (Some(s), _) => Some(s.to_string()),
            (None, Some(postgres::error::ErrorPosition::Original(p))) => {
                statement_at(sql, *p as usize)
            }
            _ => None,
        };
        DbError::Statement {
            statement,
            message: pg_message(e),
        }
    }

    /// A runtime error carries no position: replay the statements one by one in a transaction
    /// that is always rolled back, and name the first that fails with the same SQLSTATE.
    fn replay_to_find(&mut self, sql: &str, original: &postgres::Error) -> Option<String> {
        let code = original.code()?.clone();
        let mut tx = self.client.transaction().ok()?;
        for (_, stmt) in split_statements(sql) {
            if let Err(e) = tx.batch_execute(&stmt) {
                return (e.code() == Some(&code)).then_some(stmt);
            }
        }
        None
    }

    fn record(
        client: &mut impl postgres::GenericClient,
        book: &Bookkeeping,
        ms: u64,
    ) -> Result<(), postgres::Error> {
        match book {
            Bookkeeping::Insert {
                version,
                name,
                checksum,
                applied_by,
                release,
            } => client.execute(
                &format!(
                    "INSERT INTO {TABLE} (version, name, checksum, applied_at, duration_ms, applied_by, release) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[
                    &(*version as i64),
                    name,
                    checksum,
                    &now_rfc3339(),
                    &(ms as i64),
                    applied_by,
                    release,
                ],
            ),
            Bookkeeping::Delete { version } => client.execute(
                &format!("DELETE FROM {TABLE} WHERE version = $1"),
                &[&(*version as i64)],
            ),
        }
        .map(|_| ())
    }
}

/// The server's message with its SQLSTATE, detail and hint; else the client error.
pub fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                d.severity(),
                d.message(),
                d.code().code()
            );
            if let Some(detail) = d.detail() {
                s.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = d.hint() {
                s.push_str(&format!("\nHINT: {hint}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(cause) = src {
                s.push_str(&format!(": {cause}"));
                src = cause.source();
            }
            s
        }
    }
}

impl Database for PgDatabase {
    fn describe(&self) -> String {
        format!("postgres {}", self.label)
    }

    fn applied(&mut self) -> Result<Vec<AppliedRow>, DbError> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&TABLE])
            .map_err(Self::other)?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT version, name, checksum, applied_at, duration_ms, applied_by, release FROM {TABLE} ORDER BY version"
                ),
                &[],
            )
            .map_err(Self::other)?;
        // try_get, never get: the table is outside data (made by hand, or by an older tool) and a
        // NULL or another column type must be an error, not a panic.
        let row = |r: &postgres::Row| -> Result<AppliedRow, postgres::Error> {
            Ok(AppliedRow {
                version: r.try_get::<_, i64>(0)? as u64,
                name: r.try_get(1)?,
                checksum: r.try_get(2)?,
                applied_at: r.try_get(3)?,
                duration_ms: r.try_get(4)?,
                applied_by: r.try_get(5)?,
                release: r.try_get(6)?,
            })
        };
        rows.iter()
            .map(row)
            .collect::<Result<_, _>>()
            .map_err(|e| DbError::Other(format!("{TABLE} cannot be read: {}", pg_message(&e))))
    }

    fn ensure_table(&mut self) -> Result<(), DbError> {
        // IF NOT EXISTS still races on the catalog between two first runs; the lock is held here.
        self.client
            .batch_execute(&create_table_sql())
            .map_err(Self::other)
    }

    fn lock(&mut self, wait: Duration) -> Result<(), DbError> {
        let mut config = self.config.clone();
        config.application_name(&format!("{} (lock)", self.application_name));
        let mut conn = config
            .connect(self.tls.clone())
            .map_err(|e| connect_error(&self.label, &e, &self.tls_options))?;
        let started = Instant::now();
        loop {
            let got: bool = conn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key()])
                .map_err(Self::other)?
                .get(0);
            if got {
                self.lock_conn = Some(conn);
                return Ok(());
            }
            if started.elapsed() >= wait {
                return Err(DbError::LockTimeout {
                    waited: started.elapsed(),
                    holder: self.lock_holder(),
                });
            }
            let left = wait.saturating_sub(started.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if let Some(mut conn) = self.lock_conn.take() {
            conn.query_one("SELECT pg_advisory_unlock($1)", &[&lock_key()])
                .map_err(Self::other)?;
            let _ = conn.close();
        }
        Ok(())
    }

    fn run(&mut self, file: &SqlFile, book: &Bookkeeping) -> Result<u64, DbError> {
        let started = Instant::now();
        if file.no_transaction {
            for (_, stmt) in split_statements(&file.sql) {
                self.client
                    .batch_execute(&stmt)
                    .map_err(|e| Self::statement_error(&e, &file.sql, Some(&stmt)))?;
            }
            let ms = started.elapsed().as_millis() as u64;
            Self::record(&mut self.client, book, ms).map_err(Self::other)?;
            return Ok(ms);
        }
        // One round trip: BEGIN, the file, its row (server clock) and COMMIT in one simple-query
        // batch. A failing statement aborts the rest; ROLLBACK then ends the aborted transaction
        // (after a syntax error nothing ran and it only warns).
        let mut batch = String::with_capacity(file.sql.len() + 512);
        batch.push_str(BATCH_PREFIX);
        batch.push_str(&file.sql);
        batch.push_str("\n;\n");
        batch.push_str(&super::pg_record_sql(book));
        batch.push_str("COMMIT;\n");
        if let Err(e) = self.client.batch_execute(&batch) {
            let _ = self.client.batch_execute("ROLLBACK");
            let in_file = match e.as_db_error().and_then(|d| d.position()) {
                Some(postgres::error::ErrorPosition::Original(p)) => (*p as usize)
                    .checked_sub(BATCH_PREFIX.chars().count())
                    .filter(|p| (1..=file.sql.chars().count()).contains(p))
                    .and_then(|p| statement_at(&file.sql, p)),
                _ => None,
            };
            let statement = match in_file {
                Some(s) => Some(s),
                // A runtime error carries no position: name the statement (failures only).
                None => self.replay_to_find(&file.sql, &e),
            };
            return Err(DbError::Statement {
                statement,
                message: pg_message(&e),
            });
        }
        Ok(started.elapsed().as_millis() as u64)
    }

    fn rebaseline(&mut self, version: u64, checksum: &str) -> Result<(), DbError> {
        self.client
            .execute(
                &format!("UPDATE {TABLE} SET checksum = $1 WHERE version = $2"),
                &[&checksum, &(version as i64)],
            )
            .map(|_| ())
            .map_err(Self::other)
    }

    fn backup(&mut self, dest: &Path) -> Result<String, DbError> {
        let dest_s = dest.display().to_string();
        let mut exec = LocalExecutor;
        let dump = pg_dump_cmd(self.url.expose(), &dest_s);
        let out = exec
            .capture(&dump)
            .map_err(|e| DbError::Backup(format!("pg_dump: {e}")))?;
        if !out.success() {
            return Err(DbError::Backup(format!(
                "pg_dump exited with {}: {}",
                out.status,
                out.stderr_tail(5)
            )));
        }
        match verify_dump(&mut exec, &tool("pg_restore"), &dest_s) {
            Ok(()) => Ok("pg_restore -l and -f /dev/null on this machine".into()),
            Err(VerifyError::Unusable(why)) => Err(DbError::Backup(format!(
                "cannot verify {dest_s}: {why} (install the PostgreSQL client tools as new as the server, or set DEPLOY_PG_BIN)"
            ))),
            Err(VerifyError::Failed(e)) => Err(e),
        }
    }

    fn backup_extension(&self) -> &'static str {
        "dump"
    }

    fn dialect(&self) -> crate::migrate::tx_control::Dialect {
        crate::migrate::tx_control::Dialect::Postgres
    }
}

/// Why a dump could not be verified.
#[derive(Debug)]
pub enum VerifyError {
    /// This pg_restore cannot judge the archive: it is missing, or older than the pg_dump that
    /// wrote it ("unsupported version … in file header").
    Unusable(String),
    /// The archive is damaged or incomplete.
    Failed(DbError),
}

/// Verifies a custom-format dump: `pg_restore -l` lists a table of contents and
/// `pg_restore -f /dev/null` reads every entry (a truncated archive passes `-l` but not this).
pub fn verify_dump(
    exec: &mut dyn Executor,
    pg_restore: &str,
    path: &str,
) -> Result<(), VerifyError> {
    for (args, what) in [
        (vec!["-l", path], "pg_restore -l"),
        (vec!["-f", "/dev/null", path], "pg_restore -f /dev/null"),
    ] {
        let out = match exec.capture(&Cmd::new(pg_restore).args(args)) {
            Ok(out) => out,
            Err(crate::exec::ExecError::Spawn { message, .. }) => {
                return Err(VerifyError::Unusable(format!("{pg_restore}: {message}")));
            }
            Err(e) => return Err(VerifyError::Failed(DbError::Backup(format!("{what}: {e}")))),
        };
        if !out.success() {
            let tail = out.stderr_tail(5);
            if tail.contains("unsupported version") {
                return Err(VerifyError::Unusable(format!(
                    "{pg_restore} is older than the archive: {tail}"
                )));
            }
            return Err(VerifyError::Failed(DbError::Backup(format!(
                "verification of {path} failed ({what} exited with {}): {tail}",
                out.status
            ))));
        }
    }
    Ok(())
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = self.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::{pg_dump_cmd, url_without_password};

    #[test]
    fn pg_dump_gets_the_password_in_its_environment_only() {
        let cmd = pg_dump_cmd("postgres://app:s3cret@127.0.0.1:5432/app", "/tmp/x.dump");
        assert!(
            cmd.args.iter().all(|a| !a.expose().contains("s3cret")),
            "{:?}",
            cmd.argv_exposed()
        );
        assert!(
            cmd.args
                .iter()
                .any(|a| a.expose() == "postgres://app@127.0.0.1:5432/app")
        );
        let (k, v) = &cmd.env[0];
        assert_eq!((k.as_str(), v.expose()), ("PGPASSWORD", "s3cret"));
        assert_eq!(v.display(), "***");
        assert!(
            pg_dump_cmd("postgres://app@/app?host=/run/pg", "/tmp/x")
                .env
                .is_empty()
        );
        // With TLS parameters the driver's own parser would refuse, the password still goes.
        let cmd = pg_dump_cmd(
            "postgres://app:s3cret@db/app?sslmode=verify-full&sslrootcert=/ca.pem",
            "/tmp/x",
        );
        let (k, v) = &cmd.env[0];
        assert_eq!((k.as_str(), v.expose()), ("PGPASSWORD", "s3cret"));
        assert!(
            cmd.args
                .iter()
                .any(|a| a.expose()
                    == "postgres://app@db/app?sslmode=verify-full&sslrootcert=/ca.pem")
        );
    }

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            url_without_password("postgres://app:s3cret@db.example.com:5432/app?sslmode=disable"),
            "postgres://app@db.example.com:5432/app?sslmode=disable"
        );
        assert_eq!(
            url_without_password("postgres://app:pw@/app?host=/run/postgresql&password=pw2"),
            "postgres://app@/app?host=/run/postgresql"
        );
        assert_eq!(
            url_without_password("postgresql://app@localhost/app"),
            "postgresql://app@localhost/app"
        );
        assert_eq!(
            url_without_password("postgres://localhost/app?password=x&port=5433"),
            "postgres://localhost/app?port=5433"
        );
    }
}
