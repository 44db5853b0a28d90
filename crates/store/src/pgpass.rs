//! Where the PostgreSQL password comes from. Never the connection string: `--postgres
//! 'password=…'` is visible in `ps` to every user of the host. In order, as libpq does: a
//! password the caller read from a file it was given (`--postgres-password-file`), the
//! `PGPASSWORD` environment variable, then the password file named by `PGPASSFILE` (default
//! `~/.pgpass`), whose lines are `host:port:database:user:password` with `*` for any value.
//!
//! Pure apart from reading the password file: the environment is passed in, so every rule is
//! a unit test.

use std::path::{Path, PathBuf};

/// What a password file line is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

/// The password of the first line of a libpq password file that matches `login`.
/// `#` starts a comment line; `\:` and `\\` are a literal colon and backslash.
pub fn lookup(text: &str, login: &Login) -> Option<String> {
    let port = login.port.to_string();
    let wanted = [
        login.host.as_str(),
        port.as_str(),
        login.database.as_str(),
        login.user.as_str(),
    ];
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            let [host, port, database, user, password] = fields.as_slice() else {
                return None;
            };
            let matches = [host, port, database, user]
                .iter()
                .zip(wanted)
                .all(|(field, wanted)| field.as_str() == "*" || field.as_str() == wanted);
            matches.then(|| password.clone())
        })
}

/// Splits on unescaped colons, unescaping `\:` and `\\`. The password (the fifth field) takes
/// the rest of the line, colons included, as libpq reads it.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Why no password could be had from where the user pointed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error(
        "postgres: the connection string holds a password, which every user of this host can read in `ps`; set PGPASSWORD, or put it in a file given with --postgres-password-file (or libpq's PGPASSFILE / ~/.pgpass)"
    )]
    InConnectionString,
    #[error("{}: cannot read the password file: {why}", .path.display())]
    Unreadable { path: PathBuf, why: String },
    #[error(
        "{}: the password file can be read by others (mode {mode:o}); make it owner-only: chmod 600 {}",
        .path.display(), .path.display()
    )]
    NotPrivate { path: PathBuf, mode: u32 },
}

/// The password to log in with, or `None` to try without one (trust or peer authentication).
/// `given` is what the caller read from `--postgres-password-file`; `env` reads a variable.
pub fn resolve(
    in_connection_string: bool,
    given: Option<&str>,
    login: &Login,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, PasswordError> {
    if in_connection_string {
        return Err(PasswordError::InConnectionString);
    }
    if let Some(password) = given {
        return Ok(Some(password.to_string()));
    }
    if let Some(password) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
        return Ok(Some(password));
    }
    // A file named in PGPASSFILE must be there; the default ~/.pgpass only if it exists.
    let (path, named) = match env("PGPASSFILE").filter(|p| !p.is_empty()) {
        Some(path) => (PathBuf::from(path), true),
        None => match env("HOME") {
            Some(home) => (Path::new(&home).join(".pgpass"), false),
            None => return Ok(None),
        },
    };
    let text = match read_private(&path) {
        Ok(text) => text,
        Err(PasswordError::Unreadable { .. }) if !named && !path.exists() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(lookup(&text, login))
}

/// Reads a password file that only its owner can read (libpq refuses others too).
pub fn read_private(path: &Path) -> Result<String, PasswordError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |e: std::io::Error| PasswordError::Unreadable {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let mode = std::fs::metadata(path)
        .map_err(unreadable)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(PasswordError::NotPrivate {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn login() -> Login {
        Login {
            host: "db.example".into(),
            port: 5432,
            database: "netvantage".into(),
            user: "nv".into(),
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_first_matching_line_wins_and_stars_match_anything() {
        let text = "# comment\nother:5432:*:nv:wrong\ndb.example:5432:netvantage:nv:pa\\:ss:word\n*:*:*:*:fallback\n";
        assert_eq!(lookup(text, &login()).as_deref(), Some("pa:ss:word"));
        let elsewhere = Login {
            host: "x".into(),
            ..login()
        };
        assert_eq!(lookup(text, &elsewhere).as_deref(), Some("fallback"));
        assert_eq!(lookup("db.example:5433:*:*:p\n", &login()), None);
        assert_eq!(lookup("too:few:fields\n", &login()), None);
    }

    #[test]
    fn a_password_in_the_connection_string_is_refused_whatever_else_is_set() {
        let env = env_of(&[("PGPASSWORD", "s3cret")]);
        let refused = resolve(true, Some("given"), &login(), &env).unwrap_err();
        assert_eq!(refused, PasswordError::InConnectionString);
        assert!(refused.to_string().contains("PGPASSWORD"), "{refused}");
    }

    #[test]
    fn a_given_password_beats_the_environment_which_beats_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:*:*:from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = file.to_str().unwrap();
        let all = env_of(&[("PGPASSWORD", "from-env"), ("PGPASSFILE", file)]);
        assert_eq!(
            resolve(false, Some("given"), &login(), &all).unwrap(),
            Some("given".into())
        );
        assert_eq!(
            resolve(false, None, &login(), &all).unwrap(),
            Some("from-env".into())
        );
        let file_only = env_of(&[("PGPASSFILE", file)]);
        assert_eq!(
            resolve(false, None, &login(), &file_only).unwrap(),
            Some("from-file".into())
        );
    }

    #[test]
    fn a_missing_default_file_means_no_password_but_a_named_one_must_exist_and_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(
            resolve(false, None, &login(), &env_of(&[("HOME", home)])).unwrap(),
            None
        );
        let missing = dir.path().join("nope");
        let env = env_of(&[("PGPASSFILE", missing.to_str().unwrap())]);
        assert!(matches!(
            resolve(false, None, &login(), &env),
            Err(PasswordError::Unreadable { .. })
        ));
        let open = dir.path().join("open");
        std::fs::write(&open, "*:*:*:*:p\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = env_of(&[("PGPASSFILE", open.to_str().unwrap())]);
        let refused = resolve(false, None, &login(), &env).unwrap_err();
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
    }
}
