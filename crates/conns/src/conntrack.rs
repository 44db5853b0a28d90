//! The conntrack event source: a NETLINK_NETFILTER socket subscribed to the conntrack groups
//! for new, updated and destroyed entries, read by a thread of its own so a connection that
//! lives a millisecond is seen whenever the watcher's next poll comes.
//!
//! The reader thread decodes each datagram ([`crate::ctnetlink`]) into a queue the watcher
//! drains. When the kernel could not deliver events because the socket's receive buffer was
//! full, the next read fails with `ENOBUFS`: the thread queues an [`Item::Overrun`], reads the
//! socket empty (until then the kernel drops events without a second ENOBUFS), dumps the whole
//! table on a second socket and queues the dump ([`Item::Resync`]) for
//! [`crate::flows::FlowTracker::resync`]. If the watcher falls so far
//! behind that the queue reaches its cap, the thread stops reading, so the kernel's buffer
//! fills and the loss becomes such a counted overrun rather than unbounded memory.

use crate::ctnetlink::{self, CtKind, CtMessage, DecodeError, Flow};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const NETLINK_NETFILTER: i32 = 12;
/// A conntrack event is a few hundred bytes; one datagram holds one event, a dump reply many.
const RECV_BUF: usize = 64 * 1024;
/// How often the reader looks at its stop flag while no event comes.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Events waiting for the watcher, at most (about 40 bytes each).
const MAX_QUEUED: usize = 4 << 20;

/// The default kernel receive buffer for the event socket: enough for ~20,000 events
/// (an event's buffer costs ~1 KiB of kernel memory) while the reader thread is not scheduled.
pub const DEFAULT_BUFFER: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    #[error(
        "conntrack events need CAP_NET_ADMIN ({0}); run as root or grant the capability \
         (setcap cap_net_admin+ep), or use --source netlink or --source proc, which need no privilege"
    )]
    Permission(#[source] io::Error),
    #[error(
        "this kernel offers no conntrack netlink ({0}): it needs CONFIG_NF_CT_NETLINK \
         (module nf_conntrack_netlink); use --source netlink or --source proc instead"
    )]
    Unsupported(#[source] io::Error),
    #[error("conntrack netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("conntrack table dump: {0}")]
    Decode(#[from] DecodeError),
}

/// What the reader hands the watcher, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(CtMessage),
    /// Events were lost (ENOBUFS); a [`Item::Resync`] follows.
    Overrun,
    /// The whole table as dumped after an overrun (and once at start: the baseline).
    Resync(Vec<Flow>),
    /// The reader stopped on an error it cannot recover from.
    Failed(String),
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Vec<Item>>,
    stop: AtomicBool,
}

/// The running reader. Dropping it stops the thread.
#[derive(Debug)]
pub struct ConntrackSource {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn netfilter_socket() -> Result<OwnedFd, ConntrackError> {
    // SAFETY: plain socket(2) call; the result is checked before it is wrapped.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        let err = last_error();
        return Err(match err.raw_os_error() {
            Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => ConntrackError::Unsupported(err),
            Some(libc::EPERM | libc::EACCES) => ConntrackError::Permission(err),
            _ => ConntrackError::Io(err),
        });
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_int(fd: &OwnedFd, level: i32, option: i32, value: i32) -> io::Result<()> {
    // SAFETY: value outlives the call; its size is given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(last_error()) } else { Ok(()) }
}

fn bind(fd: &OwnedFd, groups: u32) -> Result<(), ConntrackError> {
    // SAFETY: an all-zero sockaddr_nl is valid; we then set the family and groups.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = groups;
    // SAFETY: addr outlives the call; its size is given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = last_error();
    Err(match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => ConntrackError::Permission(err),
        Some(libc::ENOENT | libc::EPROTONOSUPPORT) => ConntrackError::Unsupported(err),
        _ => ConntrackError::Io(err),
    })
}

/// recv(2) of one datagram; `flags` adds MSG_DONTWAIT and the like.
fn recv(fd: &OwnedFd, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    // SAFETY: buf is a live, writable buffer of buf.len() bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(last_error())
    } else {
        Ok(n as usize)
    }
}

/// A dump of every TCP flow in the table, on a socket of its own (so it never mixes with
/// events).
pub struct Dumper {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
}

impl Dumper {
    pub fn open() -> Result<Dumper, ConntrackError> {
        let fd = netfilter_socket()?;
        bind(&fd, 0)?;
        Ok(Dumper {
            fd,
            buf: vec![0; RECV_BUF],
            seq: 0,
        })
    }

    pub fn dump(&mut self) -> Result<Vec<Flow>, ConntrackError> {
        self.seq = self.seq.wrapping_add(1);
        let req = ctnetlink::dump_request(self.seq);
        // SAFETY: req outlives the call; the kernel is the default destination of a bound
        // netlink socket (pid 0), so send(2) needs no address.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            let err = last_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => ConntrackError::Permission(err),
                _ => ConntrackError::Io(err),
            });
        }
        let mut flows = Vec::new();
        loop {
            let n = match recv(&self.fd, &mut self.buf, 0) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                    return Err(ConntrackError::Permission(err));
                }
                Err(err) => return Err(err.into()),
            };
            let decoded = ctnetlink::decode(&self.buf[..n], &mut |m| {
                if m.kind == CtKind::Dumped {
                    flows.push(m.flow);
                }
            })
            .map_err(|err| match err {
                DecodeError::Kernel(libc::EPERM) => {
                    ConntrackError::Permission(io::Error::from_raw_os_error(libc::EPERM))
                }
                other => other.into(),
            })?;
            if decoded.done {
                return Ok(flows);
            }
        }
    }
}

impl ConntrackSource {
    /// Subscribes to the events with a kernel receive buffer of `buffer` bytes (root may pass
    /// `net.core.rmem_max`; SO_RCVBUFFORCE is tried first), takes the baseline dump, and
    /// starts the reader. Fails before anything runs when the capability or the kernel
    /// support is missing.
    pub fn open(buffer: usize) -> Result<ConntrackSource, ConntrackError> {
        let events = netfilter_socket()?;
        let size = i32::try_from(buffer).unwrap_or(i32::MAX);
        if set_int(&events, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            set_int(&events, libc::SOL_SOCKET, libc::SO_RCVBUF, size)?;
        }
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: READ_TIMEOUT.as_micros() as libc::suseconds_t,
        };
        // SAFETY: timeout outlives the call; its size is given.
        let rc = unsafe {
            libc::setsockopt(
                events.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(last_error().into());
        }
        bind(
            &events,
            ctnetlink::GROUP_NEW | ctnetlink::GROUP_UPDATE | ctnetlink::GROUP_DESTROY,
        )?;
        // Subscribed first, dumped second: a flow that starts in between is in both, and the
        // tracker drops the second sighting.
        let mut dumper = Dumper::open()?;
        let baseline = dumper.dump()?;
        let shared = Arc::new(Shared::default());
        shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Item::Resync(baseline));
        let reader = shared.clone();
        let thread = std::thread::Builder::new()
            .name("conntrack-events".into())
            .spawn(move || read_events(&events, &mut dumper, &reader))?;
        Ok(ConntrackSource {
            shared,
            thread: Some(thread),
        })
    }

    /// Moves everything queued since the last call into `out` (cleared first), in order.
    pub fn drain(&self, out: &mut Vec<Item>) {
        out.clear();
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *queue, out);
    }
}

impl Drop for ConntrackSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_events(events: &OwnedFd, dumper: &mut Dumper, shared: &Shared) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut local: Vec<Item> = Vec::with_capacity(1024);
    let flush = |local: &mut Vec<Item>| -> usize {
        let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.append(local);
        queue.len()
    };
    while !shared.stop.load(Ordering::Relaxed) {
        // Drain without blocking, hand the batch over when the socket is empty, then wait.
        let read = match recv(events, &mut buf, libc::MSG_DONTWAIT) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if flush(&mut local) >= MAX_QUEUED {
                    // The watcher is far behind: let the kernel buffer fill (a counted
                    // overrun) instead of growing without bound.
                    std::thread::sleep(READ_TIMEOUT);
                    continue;
                }
                recv(events, &mut buf, 0)
            }
            other => other,
        };
        match read {
            Ok(n) => {
                if let Err(err) =
                    ctnetlink::decode(&buf[..n], &mut |m| local.push(Item::Message(m)))
                {
                    tracing::warn!("skipped an undecodable conntrack event: {err}");
                }
                // A steady stream never lets the socket run empty: hand over in slices too.
                if local.len() >= 4096 && flush(&mut local) >= MAX_QUEUED {
                    std::thread::sleep(READ_TIMEOUT);
                }
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                local.push(Item::Overrun);
                // The kernel reports ENOBUFS once per congestion and keeps dropping silently
                // until the queue has been read empty. Empty it first, so that every event
                // lost from here on either predates the dump (and the dump has its flow) or
                // raises a new ENOBUFS.
                loop {
                    match recv(events, &mut buf, libc::MSG_DONTWAIT) {
                        Ok(n) => {
                            let _ =
                                ctnetlink::decode(&buf[..n], &mut |m| local.push(Item::Message(m)));
                        }
                        Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {}
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                match dumper.dump() {
                    Ok(flows) => local.push(Item::Resync(flows)),
                    Err(err) => {
                        local.push(Item::Failed(format!("re-sync after an overrun: {err}")));
                        flush(&mut local);
                        return;
                    }
                }
                flush(&mut local);
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(err) => {
                local.push(Item::Failed(format!("reading conntrack events: {err}")));
                flush(&mut local);
                return;
            }
        }
    }
}
