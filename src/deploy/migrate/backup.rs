//! The verified backup `migrate` writes before it changes a guarded database (per `backup:`):
//! written 0600 into a 0700 directory, verified by the driver (`Database::backup`), then the
//! environment's older backups pruned to `--keep-backups`. Any failure stops the run before a
//! migration runs.

use super::Options;
use super::report::version_text;
use crate::db::{Database, DbError};
use crate::error::{Error, RemoteFailure, Result};
use crate::manifest::Environment;
use std::path::{Path, PathBuf};

/// Where the backups of `env` go: `--backup-dir`, else `.deploy-action/backups/<env>/` in the
/// working directory.
pub fn dir(opts: &Options, env: &Environment) -> PathBuf {
    opts.backup_dir
        .clone()
        .unwrap_or_else(|| opts.workdir.join(".deploy-action/backups").join(&env.name))
}

/// Writes and verifies a backup, then prunes old ones (keeping `opts.keep_backups`). Any failure
/// stops the migration. Returns the path and how it was verified. A backup holds the whole
/// database: it is written 0600 into a 0700 directory (created so, or tightened).
pub fn write(
    opts: &Options,
    env: &Environment,
    db: &mut dyn Database,
    version: Option<u64>,
) -> Result<(PathBuf, String)> {
    let dir = dir(opts, env);
    let unwritten = |what: String, e: std::io::Error| Error::Io {
        what,
        path: Some(dir.clone()),
        message: format!("{e}; nothing was migrated"),
    };
    private_dir(&dir).map_err(|e| {
        let what = format!(
            "backup failed: cannot make {} a private (0700) directory",
            dir.display()
        );
        unwritten(what, e)
    })?;
    let stamp = crate::db::now_rfc3339().replace([':', '-'], "");
    let ext = db.backup_extension();
    let stem = format!("{}-{stamp}-v{}", env.name, version_text(version));
    let path = new_private_file(&dir, &stem, ext).map_err(|e| {
        let what = format!("backup failed: cannot create a file in {}", dir.display());
        unwritten(what, e)
    })?;
    let how = db.backup(&path).and_then(|how| {
        // A tool may have replaced the file: it stays private whatever wrote it.
        set_mode(&path, 0o600)
            .map(|()| how)
            .map_err(|e| DbError::Backup(format!("{}: {e}", path.display())))
    });
    let how = match how {
        Ok(how) => how,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            let said = format!("{e}; nothing was migrated");
            return Err(RemoteFailure::new("the database", "", said)
                .unit(crate::manifest::MIGRATIONS_UNIT)
                .into());
        }
    };
    prune_backups(&dir, &env.name, ext, opts.keep_backups.max(1));
    Ok((path, how))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates `dir` and its missing parents with mode 0700; an existing `dir` open to group or
/// others is tightened to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

/// Creates `<stem>.<ext>` in `dir` (`<stem>-2.<ext>`, … when taken) exclusively, with mode 0600
/// from the start, and returns its path.
fn new_private_file(dir: &Path, stem: &str, ext: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    for n in 1..=1000 {
        let path = match n {
            1 => dir.join(format!("{stem}.{ext}")),
            n => dir.join(format!("{stem}-{n}.{ext}")),
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{stem}.{ext} and 999 numbered variants exist"),
    ))
}

/// Whether `name` is a backup of environment `env` written by [`write`]:
/// `<env>-<YYYYMMDDTHHMMSSZ>-v<version|none>[-<n>].<ext>`. Only the exact shape counts, so the
/// backups of `prod-eu` are never taken for those of `prod` in a shared directory.
pub fn is_backup_of(name: &str, env: &str, ext: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(env)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_suffix('.'))
    else {
        return false;
    };
    let b = rest.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|s| !s.is_empty() && s.iter().all(u8::is_ascii_digit))
    };
    let stamp =
        b.len() > 18 && digits(0..8) && b[8] == b'T' && digits(9..15) && &b[15..18] == b"Z-v";
    if !stamp {
        return false;
    }
    let mut parts = rest[18..].splitn(2, '-');
    let version = parts.next().unwrap_or_default();
    let version_ok = version == "none" || digits(18..18 + version.len());
    let n_ok = parts
        .next()
        .is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    version_ok && n_ok
}

/// Keeps the newest `keep` backups of `env` in `dir`: newest by modification time, then by name
/// (two backups in the same second have the same time stamp in their names). Other files, and the
/// backups of other environments sharing the directory, are left alone.
pub fn prune_backups(dir: &Path, env: &str, ext: &str, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            is_backup_of(&name, env, ext).then_some((modified, name))
        })
        .collect();
    files.sort();
    let extra = files.len().saturating_sub(keep);
    for (_, name) in files.into_iter().take(extra) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_of_prod_are_not_those_of_prod_eu() {
        let ext = "sqlite3";
        assert!(is_backup_of(
            "prod-20240229T123456Z-v3.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-20240229T123456Z-vnone.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-20240229T123456Z-v3-2.sqlite3",
            "prod",
            ext
        ));
        assert!(is_backup_of(
            "prod-eu-20240229T123456Z-v3.sqlite3",
            "prod-eu",
            ext
        ));
        for other in [
            "prod-eu-20240229T123456Z-v3.sqlite3",
            "prod-20240229T123456Z-v3.dump",
            "prod-20240229T123456Z-v3-.sqlite3",
            "prod-2024022T123456Z-v3.sqlite3",
            "prod-20240229T123456Z-vx.sqlite3",
            "prod-notes.sqlite3",
            "prod.sqlite3",
        ] {
            assert!(!is_backup_of(other, "prod", ext), "{other}");
        }
    }

    #[test]
    fn new_files_are_private_and_never_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let first = new_private_file(&dir, "prod-x-v1", "dump").unwrap();
        let second = new_private_file(&dir, "prod-x-v1", "dump").unwrap();
        assert_eq!(first.file_name().unwrap(), "prod-x-v1.dump");
        assert_eq!(second.file_name().unwrap(), "prod-x-v1-2.dump");
        assert_eq!(mode(&first), 0o600);
    }

    #[test]
    fn the_directory_is_the_flag_or_the_environments_own() {
        let env = crate::changes::tests::sample().environments["staging"].clone();
        let mut opts = Options::new("/repo", "/work");
        assert_eq!(
            dir(&opts, &env),
            Path::new("/work/.deploy-action/backups/staging")
        );
        opts.backup_dir = Some("/b".into());
        assert_eq!(dir(&opts, &env), Path::new("/b"));
    }
}
