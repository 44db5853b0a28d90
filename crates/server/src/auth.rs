//! Optional read-only access control: bearer tokens and basic-auth users with bcrypt hashes,
//! read from a file or an environment variable — never from the command line, where `ps`
//! shows them (issue 15 item 8). `/healthz` stays open (the server skips it).
//!
//! The credentials text has one entry a line (`;` also separates entries, for an environment
//! variable); blank lines and `#` comments are skipped:
//!
//! ```text
//! # a bearer token (at least 16 characters)
//! token 3f9a0c4e8b7d1f2a6c5e
//! # a user, as `htpasswd -B` writes it
//! alice:$2y$10$WZ5iu0f0Y8nE0D6bqj1t5uYz0n8lO3O5k3Xn4jQ8o1bQ7Qm9n2s0e
//! ```
//!
//! Tokens are kept as SHA-256 digests and compared in constant time. A bcrypt check costs tens
//! of milliseconds by design, so it runs on the blocking pool and a credential that passed is
//! remembered (as a digest) and not checked again.

use crate::handler::{Authorize, Response, problem};
use base64::Engine;
use futures::future::BoxFuture;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The shortest bearer token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// How many passed basic-auth credentials are remembered.
const REMEMBERED: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set or not UTF-8")]
    Env(String),
    #[error("{origin}:{line}: {detail}")]
    Entry {
        origin: String,
        line: usize,
        detail: String,
    },
    #[error("{0}: no token and no user; give at least one, or turn auth off")]
    Empty(String),
}

/// Who may read.
#[derive(Debug)]
pub struct ReadOnlyAuth {
    token_digests: Vec<[u8; 32]>,
    users: Vec<(String, String)>,
    passed: Mutex<HashSet<[u8; 32]>>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal without an early exit, so timing doesn't tell how much of a digest matched.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ReadOnlyAuth {
    /// Parses credentials `text`; `origin` names it in errors (a path or `$VAR`).
    pub fn parse(text: &str, origin: &str) -> Result<ReadOnlyAuth, AuthError> {
        let mut token_digests = Vec::new();
        let mut users: Vec<(String, String)> = Vec::new();
        let entries = text
            .lines()
            .enumerate()
            .flat_map(|(n, line)| line.split(';').map(move |entry| (n + 1, entry.trim())));
        for (line, entry) in entries {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let error = |detail: String| AuthError::Entry {
                origin: origin.to_string(),
                line,
                detail,
            };
            if let Some(token) = entry.strip_prefix("token ") {
                let token = token.trim();
                if token.len() < MIN_TOKEN_LEN {
                    return Err(error(format!(
                        "the token is {} characters; use at least {MIN_TOKEN_LEN}",
                        token.len()
                    )));
                }
                token_digests.push(digest(token.as_bytes()));
                continue;
            }
            let Some((user, hash)) = entry.split_once(':') else {
                return Err(error(
                    "expected `token TOKEN` or `user:$2y$…` (a bcrypt hash, as `htpasswd -B` writes)"
                        .to_string(),
                ));
            };
            let bcrypt_prefix = ["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|p| hash.starts_with(p));
            if user.is_empty() || !bcrypt_prefix || hash.len() != 60 {
                return Err(error(format!(
                    "user {user:?}: the password must be a bcrypt hash ($2y$…, 60 characters); plain passwords are not accepted"
                )));
            }
            if users.iter().any(|(u, _)| u == user) {
                return Err(error(format!("user {user:?} is listed twice")));
            }
            users.push((user.to_string(), hash.to_string()));
        }
        if token_digests.is_empty() && users.is_empty() {
            return Err(AuthError::Empty(origin.to_string()));
        }
        Ok(ReadOnlyAuth {
            token_digests,
            users,
            passed: Mutex::new(HashSet::new()),
        })
    }

    pub fn from_file(path: &Path) -> Result<ReadOnlyAuth, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the auth file is readable by other users; chmod 600 it"
                );
            }
        }
        ReadOnlyAuth::parse(&text, &path.display().to_string())
    }

    pub fn from_env(var: &str) -> Result<ReadOnlyAuth, AuthError> {
        let text = std::env::var(var).map_err(|_| AuthError::Env(var.to_string()))?;
        ReadOnlyAuth::parse(&text, &format!("${var}"))
    }

    fn challenge(&self) -> Response {
        let mut response = problem(
            StatusCode::UNAUTHORIZED,
            "this status page needs credentials (a bearer token or a user)",
            None,
        );
        let mut schemes = Vec::new();
        if !self.users.is_empty() {
            schemes.push("Basic realm=\"netvantage\", charset=\"UTF-8\"");
        }
        if !self.token_digests.is_empty() {
            schemes.push("Bearer realm=\"netvantage\"");
        }
        for scheme in schemes {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }

    async fn check(&self, value: &str) -> bool {
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let offered = digest(credentials.as_bytes());
            // Every token is compared, so timing doesn't tell which one nearly matched.
            return self
                .token_digests
                .iter()
                .fold(false, |found, known| found | same(known, &offered));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let remembered = digest(value.as_bytes());
        if self
            .passed
            .lock()
            .is_ok_and(|passed| passed.contains(&remembered))
        {
            return true;
        }
        let Some((user, password)) = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| {
                let (user, password) = text.split_once(':')?;
                Some((user.to_string(), password.to_string()))
            })
        else {
            return false;
        };
        let Some(hash) = self
            .users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, h)| h.clone())
        else {
            return false;
        };
        let verified = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if verified && let Ok(mut passed) = self.passed.lock() {
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(remembered);
        }
        verified
    }
}

impl Authorize for ReadOnlyAuth {
    fn authorize<'a>(&'a self, head: &'a Parts) -> BoxFuture<'a, Result<(), Response>> {
        Box::pin(async move {
            let Some(value) = head
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Err(self.challenge());
            };
            if self.check(value).await {
                Ok(())
            } else {
                Err(self.challenge())
            }
        })
    }
}

impl Authorize for Arc<ReadOnlyAuth> {
    fn authorize<'a>(&'a self, head: &'a Parts) -> BoxFuture<'a, Result<(), Response>> {
        self.as_ref().authorize(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).expect("hash")
    }

    fn head(authorization: Option<&str>) -> Parts {
        let mut builder = hyper::Request::builder().uri("/");
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[tokio::test]
    async fn tokens_and_bcrypt_users_pass_and_nothing_else_does() {
        let text = format!(
            "# readers\ntoken 0123456789abcdef0123\nalice:{}\n",
            hash("correct horse")
        );
        let auth = ReadOnlyAuth::parse(&text, "auth.txt").unwrap();
        let allowed = [
            "Bearer 0123456789abcdef0123".to_string(),
            basic("alice", "correct horse"),
            basic("alice", "correct horse"), // remembered the second time
        ];
        for value in &allowed {
            assert!(auth.authorize(&head(Some(value))).await.is_ok(), "{value}");
        }
        for value in [
            None,
            Some("Bearer 0123456789abcdef0124".to_string()),
            Some(basic("alice", "wrong")),
            Some(basic("bob", "correct horse")),
            Some("Basic !!!".to_string()),
            Some("Digest x".to_string()),
        ] {
            let refusal = auth
                .authorize(&head(value.as_deref()))
                .await
                .expect_err("refused");
            assert_eq!(refusal.status(), StatusCode::UNAUTHORIZED, "{value:?}");
            let schemes: Vec<_> = refusal
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .collect();
            assert_eq!(schemes.len(), 2);
        }
    }

    #[test]
    fn bad_entries_are_refused_with_their_line() {
        let cases = [
            ("token short", 1, "at least 16"),
            ("\n\nalice:secret", 3, "bcrypt hash"),
            ("nonsense", 1, "expected `token TOKEN`"),
        ];
        for (text, line, words) in cases {
            match ReadOnlyAuth::parse(text, "f") {
                Err(AuthError::Entry {
                    line: got, detail, ..
                }) => {
                    assert_eq!(got, line, "{text:?}");
                    assert!(detail.contains(words), "{detail}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            ReadOnlyAuth::parse("# nothing\n", "f"),
            Err(AuthError::Empty(_))
        ));
    }

    #[test]
    fn an_environment_variable_may_hold_entries_separated_by_semicolons() {
        let text = format!("token 0123456789abcdef0123; bob:{}", hash("pw"));
        let auth = ReadOnlyAuth::parse(&text, "$NETVANTAGE_AUTH").unwrap();
        assert_eq!(auth.token_digests.len(), 1);
        assert_eq!(auth.users.len(), 1);
    }
}
