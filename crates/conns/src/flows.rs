//! Conntrack messages → "new connection" and "refused attempt" facts. Pure: the messages and
//! this host's addresses are handed in.
//!
//! The tracker keeps the TCP flows it knows to be alive (reported and not yet destroyed). That
//! one set gives three guarantees:
//! - **no connection reported twice**: a NEW for a flow already alive is ignored, which is what
//!   happens after a re-sync, when a flow arrives both in the dump and as an event queued
//!   behind it;
//! - **refused attempts**: with `ct event set new,reply,destroy` the kernel sends one UPDATE
//!   when a flow sees its first reply that is not a reset; a flow destroyed with none was
//!   answered only by an RST (conntrack kills such an entry at once), i.e. the port was closed;
//! - **re-sync after an overrun**: flows in the dump that are not alive are reported (they
//!   started while events were lost), and alive flows missing from the dump are forgotten
//!   (their DESTROY was lost).

use crate::ctnetlink::{CtKind, CtMessage, Flow};
use crate::entry::{TcpState, normalize_ip};
use crate::table::{Direction, NewConnection};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug)]
struct Alive {
    direction: Direction,
    /// A reply other than a lone RST was seen (or the flow came from a dump, so unknown).
    answered: bool,
}

/// What a batch of messages produced. Reused between batches ([`Batch::clear`]).
#[derive(Debug, Default)]
pub struct Batch {
    pub new: Vec<NewConnection>,
    /// Inbound attempts answered only by a reset, as (source address, local port).
    pub refused: Vec<(IpAddr, u16)>,
    /// Flows between two addresses that are neither of this host's (forwarded), not reported.
    pub forwarded: u64,
    /// NEW events for flows already alive (after a re-sync), ignored.
    pub duplicates: u64,
}

impl Batch {
    pub fn clear(&mut self) {
        self.new.clear();
        self.refused.clear();
        self.forwarded = 0;
        self.duplicates = 0;
    }
}

#[derive(Debug, Default)]
pub struct FlowTracker {
    alive: HashMap<Flow, Alive, foldhash::fast::RandomState>,
    own: HashSet<IpAddr>,
}

impl FlowTracker {
    /// Replaces this host's addresses, which orient flows (re-read at every poll).
    pub fn set_own_addresses(&mut self, own: impl IntoIterator<Item = IpAddr>) {
        self.own = own.into_iter().map(normalize_ip).collect();
    }

    /// Flows alive now (reported, not destroyed).
    pub fn alive(&self) -> usize {
        self.alive.len()
    }

    /// Inbound when it arrives at one of this host's addresses (loopback included, as the
    /// accepting side of a local connection), outbound when it leaves from one; `None` when
    /// it only passes through.
    fn direction(&self, flow: &Flow) -> Option<Direction> {
        if self.own.contains(&normalize_ip(flow.destination.ip())) {
            Some(Direction::Inbound)
        } else if self.own.contains(&normalize_ip(flow.source.ip())) {
            Some(Direction::Outbound)
        } else {
            None
        }
    }

    fn report(&mut self, flow: Flow, answered: bool, batch: &mut Batch) {
        let Some(direction) = self.direction(&flow) else {
            batch.forwarded += 1;
            return;
        };
        self.alive.insert(
            flow,
            Alive {
                direction,
                answered,
            },
        );
        batch.new.push(NewConnection {
            source: flow.source,
            destination: flow.destination,
            direction,
            // Where each end stands when the first SYN passed.
            state: match direction {
                Direction::Inbound => TcpState::SynRecv,
                Direction::Outbound => TcpState::SynSent,
            },
        });
    }

    /// Applies one event.
    pub fn apply(&mut self, message: CtMessage, batch: &mut Batch) {
        let flow = message.flow;
        match message.kind {
            CtKind::New | CtKind::Dumped => {
                if self.alive.contains_key(&flow) {
                    batch.duplicates += 1;
                } else {
                    self.report(flow, message.kind == CtKind::Dumped, batch);
                }
            }
            CtKind::Update => {
                if let Some(alive) = self.alive.get_mut(&flow) {
                    alive.answered = true;
                }
            }
            CtKind::Destroy => {
                if let Some(alive) = self.alive.remove(&flow)
                    && !alive.answered
                    && alive.direction == Direction::Inbound
                {
                    batch
                        .refused
                        .push((flow.source.ip(), flow.destination.port()));
                }
            }
        }
    }

    /// Replaces what is known with a dump of the table: flows in it that are not alive are
    /// reported (their NEW was lost), alive flows absent from it are forgotten.
    pub fn resync(&mut self, dumped: &[Flow], batch: &mut Batch) {
        let present: HashSet<&Flow> = dumped.iter().collect();
        self.alive.retain(|flow, _| present.contains(flow));
        for flow in dumped {
            if !self.alive.contains_key(flow) {
                self.report(*flow, true, batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(source: &str, destination: &str) -> Flow {
        Flow {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    fn msg(kind: CtKind, flow: Flow) -> CtMessage {
        CtMessage { kind, flow }
    }

    fn tracker() -> FlowTracker {
        let mut t = FlowTracker::default();
        t.set_own_addresses(["10.0.0.5".parse().unwrap(), "127.0.0.1".parse().unwrap()]);
        t
    }

    #[test]
    fn new_flows_are_oriented_by_this_hosts_addresses() {
        let mut t = tracker();
        let mut b = Batch::default();
        t.apply(
            msg(CtKind::New, flow("192.0.2.1:4000", "10.0.0.5:22")),
            &mut b,
        );
        t.apply(
            msg(CtKind::New, flow("10.0.0.5:4001", "192.0.2.1:443")),
            &mut b,
        );
        t.apply(
            msg(CtKind::New, flow("192.0.2.1:4002", "192.0.2.9:80")),
            &mut b,
        );
        let directions: Vec<_> = b.new.iter().map(|c| c.direction).collect();
        assert_eq!(directions, vec![Direction::Inbound, Direction::Outbound]);
        assert_eq!(b.forwarded, 1);
        assert_eq!(t.alive(), 2);
    }

    #[test]
    fn destroyed_without_a_reply_is_refused_and_answered_flows_are_not() {
        let mut t = tracker();
        let mut b = Batch::default();
        let refused = flow("192.0.2.1:4000", "10.0.0.5:81");
        let open = flow("192.0.2.1:4001", "10.0.0.5:80");
        let outbound = flow("10.0.0.5:4002", "192.0.2.1:81");
        for f in [refused, open, outbound] {
            t.apply(msg(CtKind::New, f), &mut b);
        }
        t.apply(msg(CtKind::Update, open), &mut b);
        for f in [refused, open, outbound] {
            t.apply(msg(CtKind::Destroy, f), &mut b);
        }
        assert_eq!(b.refused, vec![("192.0.2.1".parse().unwrap(), 81)]);
        assert_eq!(t.alive(), 0);
    }

    #[test]
    fn a_resync_reports_what_was_missed_once_and_forgets_what_ended() {
        let mut t = tracker();
        let mut b = Batch::default();
        let before = flow("192.0.2.1:4000", "10.0.0.5:80");
        let ended = flow("192.0.2.1:4001", "10.0.0.5:80");
        let missed = flow("192.0.2.1:4002", "10.0.0.5:80");
        t.apply(msg(CtKind::New, before), &mut b);
        t.apply(msg(CtKind::New, ended), &mut b);
        b.clear();
        // Events were lost: `ended` went away, `missed` arrived.
        t.resync(&[before, missed], &mut b);
        assert_eq!(b.new.len(), 1);
        assert_eq!(b.new[0].source, missed.source);
        // The NEW of `missed` was queued behind the dump: not reported again.
        t.apply(msg(CtKind::New, missed), &mut b);
        assert_eq!((b.new.len(), b.duplicates), (1, 1));
        // A dumped flow's answer is unknown: its end is not a refusal.
        t.apply(msg(CtKind::Destroy, missed), &mut b);
        t.apply(msg(CtKind::Destroy, ended), &mut b);
        assert!(b.refused.is_empty());
        assert_eq!(t.alive(), 1);
    }

    #[test]
    fn a_reused_tuple_after_its_destroy_is_a_new_connection() {
        let mut t = tracker();
        let mut b = Batch::default();
        let f = flow("192.0.2.1:4000", "10.0.0.5:80");
        t.apply(msg(CtKind::New, f), &mut b);
        t.apply(msg(CtKind::Destroy, f), &mut b);
        t.apply(msg(CtKind::New, f), &mut b);
        assert_eq!(b.new.len(), 2);
    }
}
