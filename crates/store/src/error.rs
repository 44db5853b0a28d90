//! What can go wrong in a store, and what a caller should do about it: [`StoreError::heals`]
//! says whether retrying can help, [`StoreError::is_usage`] whether it is the user's setup
//! (a path, a connection string, a role, a database) — fatal at start, exit 3.

use std::path::PathBuf;
use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: no such directory (create it, or give another path)", .path.display())]
    MissingDirectory { path: PathBuf },
    #[error("{}: no such file (run `netvantage agent` first, or give --sqlite)", .path.display())]
    NotFound { path: PathBuf },
    #[error("{location}: not a netvantage store ({why}); left untouched")]
    NotAStore { location: String, why: String },
    #[error(
        "{location}: written by a newer netvantage (schema version {found}; this one knows up to {known}); upgrade netvantage to write to it"
    )]
    TooNew {
        location: String,
        found: i32,
        known: i32,
    },
    #[error(
        "{}: its write-ahead log ({}-wal) holds rows this user can't apply (no -shm, and no right to create one); run this as the agent's user, or start the agent once to fold the log in",
        .path.display(), .path.display()
    )]
    UnreadableLog { path: PathBuf },
    #[error("{location}: opened for reading only")]
    ReadOnly { location: String },
    #[error("{}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("postgres: bad connection string: {0}")]
    BadConnectionString(String),
    #[error(transparent)]
    Password(#[from] crate::pgpass::PasswordError),
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error("record {id}: {why}")]
    Unstorable { id: uuid::Uuid, why: String },
    #[error("{location}: stored row {row}: {why}")]
    BadRow {
        location: String,
        row: String,
        why: String,
    },
}

impl StoreError {
    /// Retrying the same operation later can succeed: the server is restarting, refuses
    /// connections for now, is out of a resource, or lost a serialization race; the SQLite
    /// file is locked by another writer, or its disk is full (and may be freed).
    pub fn heals(&self) -> bool {
        match self {
            StoreError::Postgres(e) => e.kind() == PgErrorKind::Transient,
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                )
            ),
            _ => false,
        }
    }

    /// The user's setup is wrong (a path, the file given, a connection string, a role, a
    /// database, a privilege): nothing to retry, say so and exit 3.
    pub fn is_usage(&self) -> bool {
        match self {
            StoreError::MissingDirectory { .. }
            | StoreError::NotFound { .. }
            | StoreError::NotAStore { .. }
            | StoreError::TooNew { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::UnreadableLog { .. }
            | StoreError::BadConnectionString(_)
            | StoreError::Password(_) => true,
            StoreError::Postgres(e) => matches!(
                e.kind(),
                PgErrorKind::Authentication
                    | PgErrorKind::MissingDatabase
                    | PgErrorKind::MissingPrivilege
            ),
            StoreError::Sqlite { .. }
            | StoreError::Io { .. }
            | StoreError::Unstorable { .. }
            | StoreError::BadRow { .. } => false,
        }
    }

    pub(crate) fn sqlite(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Sqlite { path, source }
    }
}

/// What a PostgreSQL error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgErrorKind {
    /// The server refused the role or its credentials (SQLSTATE class 28).
    Authentication,
    /// The database named in the connection string doesn't exist (3D000).
    MissingDatabase,
    /// The role lacks a privilege it needs (42501).
    MissingPrivilege,
    /// Can heal: no connection (refused, reset, closed), the server shutting down or not yet
    /// accepting connections, out of resources, or a serialization failure or deadlock.
    Transient,
    /// Anything else: a retry would fail the same way.
    Other,
}

/// A PostgreSQL error with what it was doing; shows the server's SQLSTATE and message.
#[derive(Debug, thiserror::Error)]
#[error("postgres: {doing}: {}", describe(.source))]
pub struct PgError {
    pub doing: &'static str,
    #[source]
    pub source: tokio_postgres::Error,
}

impl PgError {
    pub fn new(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        move |source| PgError { doing, source }
    }

    /// The server's SQLSTATE, when the server answered.
    pub fn code(&self) -> Option<&SqlState> {
        self.source.code()
    }

    pub fn kind(&self) -> PgErrorKind {
        let Some(db) = self.source.as_db_error() else {
            // No answer from the server: the connection failed, broke, timed out or was closed
            // (heals); the client found no credentials to send (the user's setup); or the
            // client refused something (a bug: no retry fixes it). The driver's kinds are
            // private, its words are not.
            let io = std::error::Error::source(&self.source)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
            let words = self.source.to_string();
            return if io || self.source.is_closed() || words.starts_with("timeout") {
                PgErrorKind::Transient
            } else if words.starts_with("authentication") || words.starts_with("invalid config") {
                PgErrorKind::Authentication
            } else {
                PgErrorKind::Other
            };
        };
        let code = db.code();
        let class = &code.code()[..2];
        if class == "28" {
            PgErrorKind::Authentication
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            PgErrorKind::MissingDatabase
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            PgErrorKind::MissingPrivilege
        } else if matches!(class, "08" | "53" | "58")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                // "database … is not currently accepting connections"
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            ]
            .contains(code)
        {
            PgErrorKind::Transient
        } else {
            PgErrorKind::Other
        }
    }
}

/// `28P01 password authentication failed for user "nv" (detail: …; hint: …)` when the server
/// answered, the driver's own words otherwise (with their cause: "connection refused").
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}", db.code().code(), db.message());
        let extra: Vec<String> = [("detail", db.detail()), ("hint", db.hint())]
            .into_iter()
            .filter_map(|(what, text)| text.map(|t| format!("{what}: {t}")))
            .collect();
        if !extra.is_empty() {
            text.push_str(&format!(" ({})", extra.join("; ")));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}
