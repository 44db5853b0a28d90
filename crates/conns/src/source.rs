//! Where the socket table comes from: the text files under `/proc/net` or a NETLINK_SOCK_DIAG
//! dump. Both hand every socket to a callback, so a poll allocates nothing per entry.

use crate::entry::SocketEntry;
use crate::netlink::InetDiag;
use crate::procnet::{self, LineError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("NETLINK_SOCK_DIAG dump failed: {0}")]
    Netlink(#[source] io::Error),
}

/// What a read found besides the entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStats {
    pub entries: u64,
    pub malformed: u64,
    /// The first malformed line of this read: file, 1-based line number, reason.
    pub first_malformed: Option<(PathBuf, usize, LineError)>,
}

pub trait Source: Send {
    /// Reads the whole table once, handing each socket to `sink`.
    fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError> {
        (**self).read(sink)
    }
}

/// Reads `<root>/net/tcp` and `<root>/net/tcp6`. `root` is `/proc` normally, or wherever a
/// container mounted the host's `/proc`. A missing `tcp6` means IPv6 is disabled and is not an
/// error; a missing `tcp` is.
#[derive(Debug)]
pub struct ProcSource {
    files: [PathBuf; 2],
    /// Reused between polls: at 100,000 sockets the text is ~15 MB.
    buf: Vec<u8>,
}

impl ProcSource {
    pub fn new(root: impl AsRef<Path>) -> ProcSource {
        let net = root.as_ref().join("net");
        ProcSource {
            files: [net.join("tcp"), net.join("tcp6")],
            buf: Vec::new(),
        }
    }
}

impl Source for ProcSource {
    fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError> {
        let mut stats = ReadStats::default();
        for (index, path) in self.files.iter().enumerate() {
            self.buf.clear();
            match read_table(path, &mut self.buf) {
                Ok(_) => {}
                Err(err) if index == 1 && err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(SourceError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            }
            let table = procnet::parse_table(&self.buf, &mut *sink);
            stats.entries += table.entries;
            stats.malformed += table.malformed;
            if stats.first_malformed.is_none() {
                stats.first_malformed = table
                    .first_malformed
                    .map(|(line, err)| (path.clone(), line, err));
            }
        }
        Ok(stats)
    }
}

/// Largest socket table read (about 1.7 million sockets): anything larger is not one.
pub const MAX_TABLE_BYTES: u64 = 256 << 20;

/// Reads a socket table file whole. Only a regular file (procfs's count as such) is read: a
/// FIFO would block the monitor and `/dev/zero` would eat memory, so both are refused, and
/// the read is bounded by [`MAX_TABLE_BYTES`] whatever the file claims.
fn read_table(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // Non-blocking open: opening a FIFO without a writer would otherwise wait for one.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a socket table file"),
        ));
    }
    file.take(MAX_TABLE_BYTES + 1).read_to_end(buf)?;
    if buf.len() as u64 > MAX_TABLE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB: not a socket table",
                MAX_TABLE_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// The same table through NETLINK_SOCK_DIAG (what `ss` uses): binary records, no text to
/// format or parse, IPv4 and IPv6 in one dump. It sees the network namespace of the process,
/// not a `--proc-root`.
#[derive(Debug)]
pub struct NetlinkSource {
    diag: InetDiag,
}

impl NetlinkSource {
    pub fn open() -> Result<NetlinkSource, SourceError> {
        Ok(NetlinkSource {
            diag: InetDiag::open().map_err(SourceError::Netlink)?,
        })
    }
}

impl Source for NetlinkSource {
    fn read(&mut self, sink: &mut dyn FnMut(SocketEntry)) -> Result<ReadStats, SourceError> {
        let mut entries = 0u64;
        let mut count = |entry| {
            entries += 1;
            sink(entry)
        };
        self.diag
            .dump_all_tcp(&mut count)
            .map_err(SourceError::Netlink)?;
        Ok(ReadStats {
            entries,
            ..ReadStats::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tcp_names_the_file_and_missing_tcp6_is_fine() {
        let dir = std::env::temp_dir().join(format!("nvc-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut source = ProcSource::new(&dir);
        let err = source.read(&mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("net/tcp"), "{err}");
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::write(
            dir.join("net/tcp"),
            "  sl  local_address rem_address   st\n   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 20185 1 0000000000000000 100 0 0 10 0\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        let stats = source.read(&mut |e| seen.push(e)).unwrap();
        assert_eq!((stats.entries, stats.malformed, seen.len()), (1, 0, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 15, item 12: a FIFO as `net/tcp` (no writer: an open would wait for ever) and
    /// `/dev/zero` (an endless read) are refused at once, naming the file.
    #[test]
    fn a_fifo_or_a_device_as_the_table_is_refused_without_blocking_or_reading() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        let tcp = dir.path().join("net/tcp");
        let path = std::ffi::CString::new(tcp.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let err = ProcSource::new(dir.path()).read(&mut |_| {}).unwrap_err();
        assert!(
            err.to_string().contains("a FIFO") && err.to_string().contains("net/tcp"),
            "{err}"
        );
        std::fs::remove_file(&tcp).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &tcp).unwrap();
        let err = ProcSource::new(dir.path()).read(&mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
    }
}
