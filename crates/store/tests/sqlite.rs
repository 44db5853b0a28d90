//! What only the SQLite backend does: the file it creates, the files it refuses, and reading
//! a store this user can't write (issue 15, items 9 and 12).

mod support;

use netvantage_store::{SqliteStore, StoreError, TimeRange};
use netvantage_testkit::Scratch;
use std::path::Path;
use support::{as_user, file_mode, tcp};

const NOBODY: u32 = 65534;

fn stored_store(path: &Path) {
    let mut store = SqliteStore::open_writer(path).unwrap();
    let batch = [tcp("db:5432", 1_000, None), tcp("db:5432", 2_000, None)];
    assert_eq!(store.insert(&batch).unwrap().inserted, 2);
}

#[test]
fn the_agents_sink_thread_writes_through_the_synchronous_api() {
    let dir = Scratch::new();
    let path = dir.path().join("nv.db");
    let written = std::thread::spawn(move || {
        let mut store = SqliteStore::open_writer(&path).unwrap();
        let batch = [tcp("a:1", 1, None), tcp("a:1", 2, None)];
        let first = store.insert(&batch).unwrap();
        let again = store.insert(&batch).unwrap();
        (first.inserted, again.duplicates)
    })
    .join()
    .unwrap();
    assert_eq!(written, (2, 2));
}

#[test]
fn a_new_store_and_its_wal_files_are_owner_only() {
    let dir = Scratch::new();
    let path = dir.path().join("nv.db");
    let store = SqliteStore::open_writer(&path).unwrap();
    // While the writer is open its -wal and -shm exist too.
    for file in ["nv.db", "nv.db-wal", "nv.db-shm"] {
        assert_eq!(file_mode(&dir.path().join(file)), 0o600, "{file}");
    }
    drop(store);
}

#[test]
fn an_existing_store_keeps_the_mode_its_owner_gave_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    let path = dir.path().join("nv.db");
    stored_store(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    stored_store(&path);
    assert_eq!(file_mode(&path), 0o644);
}

#[test]
fn a_path_in_a_missing_directory_is_a_usage_error_and_creates_nothing() {
    let dir = Scratch::new();
    let path = dir.path().join("missing").join("nv.db");
    let refused = SqliteStore::open_writer(&path).err().expect("refused");
    assert!(
        matches!(&refused, StoreError::MissingDirectory { path } if path.ends_with("missing")),
        "{refused}"
    );
    assert!(refused.is_usage());
    assert!(
        refused.to_string().contains("no such directory"),
        "{refused}"
    );
    assert!(!dir.path().join("missing").exists());
}

/// A SQLite file of some other program: a table, the default rollback journal.
fn foreign_file(path: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    std::fs::read(path).unwrap()
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_untouched() {
    let dir = Scratch::new();
    let path = dir.path().join("notes.db");
    let before = foreign_file(&path);
    for refused in [
        SqliteStore::open_writer(&path).err(),
        SqliteStore::open_reader(&path).err(),
    ] {
        let refused = refused.expect("refused");
        assert!(matches!(refused, StoreError::NotAStore { .. }), "{refused}");
        assert!(refused.is_usage());
        let text = refused.to_string();
        assert!(
            text.contains("not a netvantage store") && text.contains("notes"),
            "{text}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    assert!(!dir.path().join("notes.db-wal").exists(), "switched to WAL");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = Scratch::new();
    let path = dir.path().join("hosts.txt");
    std::fs::write(
        &path,
        "db1:5432\nthis is not a database, it is a host list\n".repeat(100),
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    for refused in [
        SqliteStore::open_writer(&path).err(),
        SqliteStore::open_reader(&path).err(),
    ] {
        let refused = refused.expect("refused");
        assert!(
            refused.to_string().contains("not a SQLite database"),
            "{refused}"
        );
        assert!(refused.is_usage());
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_missing_file_is_not_created_by_a_reader() {
    let dir = Scratch::new();
    let path = dir.path().join("nv.db");
    let refused = SqliteStore::open_reader(&path).err().expect("refused");
    assert!(matches!(refused, StoreError::NotFound { .. }), "{refused}");
    assert!(refused.is_usage());
    assert!(!path.exists());
}

#[test]
fn a_reader_reads_a_0644_store_another_user_owns() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("nv.db");
    stored_store(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&path, Some(1234), Some(1234)).unwrap();
    // As nobody: may read the file, may not write it or create files beside it.
    let seen = as_user(NOBODY, NOBODY, || {
        assert!(std::fs::File::create(dir.path().join("probe")).is_err());
        let store = SqliteStore::open_reader(&path).unwrap_or_else(|e| panic!("{e}"));
        store.observations(TimeRange::since(0)).unwrap().len()
    });
    assert_eq!(seen, 2);
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(created.len(), 1, "only nv.db: {created:?}");
}

#[test]
fn a_reader_reads_a_store_while_its_writer_is_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("nv.db");
    let mut writer = SqliteStore::open_writer(&path).unwrap();
    writer.insert(&[tcp("a:1", 1, None)]).unwrap();
    for file in ["nv.db", "nv.db-wal", "nv.db-shm"] {
        let file = dir.path().join(file);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let seen = as_user(NOBODY, NOBODY, || {
        let store = SqliteStore::open_reader(&path).unwrap_or_else(|e| panic!("{e}"));
        store.observations(TimeRange::since(0)).unwrap().len()
    });
    assert_eq!(seen, 1);
    writer.insert(&[tcp("a:1", 2, None)]).unwrap();
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyMount {
    at: std::path::PathBuf,
}

impl ReadOnlyMount {
    fn new(of: &Path, at: &Path) -> ReadOnlyMount {
        std::fs::create_dir(at).unwrap();
        let run = |args: &[&str]| {
            let status = std::process::Command::new("mount").args(args).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "mount {args:?} failed (needs root and util-linux's mount)"
            );
        };
        let (of, at_text) = (of.to_str().unwrap(), at.to_str().unwrap());
        run(&["--bind", of, at_text]);
        let mount = ReadOnlyMount {
            at: at.to_path_buf(),
        };
        run(&["-o", "remount,ro,bind", at_text]);
        mount
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_reader_reads_a_store_on_a_read_only_mount() {
    let dir = Scratch::new();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    stored_store(&files.join("nv.db"));
    let mount = ReadOnlyMount::new(&files, &dir.path().join("ro"));
    let path = mount.at.join("nv.db");
    let store = SqliteStore::open_reader(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.observations(TimeRange::since(0)).unwrap().len(), 2);
    drop(store);
    // A writer there fails with an error, not a panic.
    assert!(SqliteStore::open_writer(&path).is_err());
}

#[test]
fn a_log_left_by_a_killed_writer_is_not_silently_skipped_by_a_reader_that_cannot_apply_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new();
    let path = dir.join("nv.db");
    let mut writer = SqliteStore::open_writer(&path).unwrap();
    writer.insert(&[tcp("a:1", 1, None)]).unwrap();
    // A kill -9: the connection never closes, its log stays with the committed row in it.
    std::mem::forget(writer);
    let left = dir.join("left");
    std::fs::create_dir(&left).unwrap();
    for file in ["nv.db", "nv.db-wal"] {
        std::fs::copy(dir.join(file), left.join(file)).unwrap();
        std::fs::set_permissions(left.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = as_user(NOBODY, NOBODY, || {
        SqliteStore::open_reader(&left.join("nv.db")).err()
    });
    let refused = refused.expect("refused");
    assert!(
        matches!(refused, StoreError::UnreadableLog { .. }),
        "{refused}"
    );
    assert!(refused.is_usage());
    // The agent's user can read it (and sees the row the log holds).
    let store = SqliteStore::open_reader(&left.join("nv.db")).unwrap();
    assert_eq!(store.observations(TimeRange::since(0)).unwrap().len(), 1);
}
