//! `nv-testfleet`: a simulated fleet for netvantage's tests and benchmarks. Run it inside a
//! network namespace made for the purpose (`ip netns exec NS nv-testfleet ...`): it touches the
//! firewall and sysctls of whatever namespace it runs in, so never run it in the host's own.
//!
//! - Every 127.0.0.0/8 address (and ::1) on `--port` is **up**: one wildcard listener accepts
//!   and closes, so a 100k-host fleet costs one socket, not 100k.
//! - `--refused` addresses get a TCP reset (nftables `reject with tcp reset`).
//! - `--blackhole` addresses have their SYNs dropped, so a connect times out.
//! - `--unreachable` addresses get an ICMP host-unreachable.
//! - `--flap` addresses alternate: up for `--flap-period`, refused for the next, and so on.
//! - `--outage NET=KIND@START+DOWN[/EVERY]` takes `NET` (an address or CIDR) down as `KIND`
//!   (`refused`, `blackhole` or `unreachable`) `START` ms after `ready`, for `DOWN` ms, and again
//!   every `EVERY` ms when given: a subnet going dark for a window, a host in a restart loop.
//! - `--dns ADDR:PORT` serves `--zone NAME=IP[,IP...]` records (A and AAAA); any other name is
//!   NXDOMAIN. `--zone-alternate NAME=IPS|IPS` answers the two sets in turn, and
//!   `--zone-flaky NAME=IPS` answers NXDOMAIN to every other A query.
//!
//! Prints `ready` on stdout once everything is in place, then runs until killed.

use anyhow::{Context, Result, bail};
use clap::Parser;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use ipnet::IpNet;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Parser, Debug)]
struct Args {
    /// The TCP port every simulated host serves.
    #[arg(long)]
    port: u16,
    /// Addresses or CIDRs that refuse (RST).
    #[arg(long, value_parser = parse_net)]
    refused: Vec<IpNet>,
    /// File with one address or CIDR per line that refuse.
    #[arg(long)]
    refused_file: Option<PathBuf>,
    /// Addresses or CIDRs whose SYNs are dropped.
    #[arg(long, value_parser = parse_net)]
    blackhole: Vec<IpNet>,
    /// File with one address or CIDR per line whose SYNs are dropped.
    #[arg(long)]
    blackhole_file: Option<PathBuf>,
    /// Addresses or CIDRs answered with ICMP host-unreachable.
    #[arg(long, value_parser = parse_net)]
    unreachable: Vec<IpNet>,
    /// Addresses that alternate between up and refused.
    #[arg(long)]
    flap: Vec<IpAddr>,
    /// How long a flapping address stays in each state.
    #[arg(long, default_value = "1000")]
    flap_period_ms: u64,
    /// Serve DNS on this UDP address.
    #[arg(long)]
    dns: Option<SocketAddr>,
    /// DNS records: NAME=IP[,IP...] (repeatable).
    #[arg(long)]
    zone: Vec<String>,
    /// A name whose A answers alternate between two sets: NAME=IP[,IP...]|IP[,IP...].
    #[arg(long)]
    zone_alternate: Vec<String>,
    /// A name answered NXDOMAIN on every other A query: NAME=IP[,IP...].
    #[arg(long)]
    zone_flaky: Vec<String>,
    /// Timed outages: NET=KIND@START+DOWN[/EVERY], times in ms after `ready` (repeatable).
    #[arg(long, value_parser = parse_outage)]
    outage: Vec<Outage>,
    /// TTL of served records, seconds.
    #[arg(long, default_value_t = 1)]
    ttl: u32,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut refused = args.refused.clone();
    refused.extend(read_nets(args.refused_file.as_ref())?);
    let mut blackhole = args.blackhole.clone();
    blackhole.extend(read_nets(args.blackhole_file.as_ref())?);

    // Per-namespace sysctls: a deep accept queue so a fast sweep's SYNs are never dropped.
    for (path, value) in [
        ("/proc/sys/net/core/somaxconn", "65535"),
        ("/proc/sys/net/ipv4/tcp_max_syn_backlog", "65535"),
    ] {
        let _ = std::fs::write(path, value);
    }
    run_nft(&ruleset(args.port, &refused, &blackhole, &args.unreachable))?;
    let outages = args.outage.clone();

    let listeners = listen(args.port)?;
    for listener in listeners {
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            }
        });
    }
    if let Some(dns_addr) = args.dns {
        let mut zone = Zone::default();
        for (name, ips) in parse_zone(&args.zone)? {
            zone.names.insert(name, Answers::Fixed(ips));
        }
        for (name, sets) in parse_zone_sets(&args.zone_alternate)? {
            zone.names.insert(name, Answers::Alternate(sets));
        }
        for (name, ips) in parse_zone(&args.zone_flaky)? {
            zone.names.insert(name, Answers::Flaky(ips));
        }
        let socket = tokio::net::UdpSocket::bind(dns_addr)
            .await
            .with_context(|| format!("bind DNS {dns_addr}"))?;
        let ttl = args.ttl;
        tokio::spawn(async move { serve_dns(socket, zone, ttl).await });
    }
    println!("ready");
    std::io::stdout().flush()?;
    if !outages.is_empty() {
        tokio::spawn(async move {
            if let Err(err) = run_outages(&outages).await {
                eprintln!("nv-testfleet: outages stopped: {err:#}");
            }
        });
    }

    if args.flap.is_empty() {
        std::future::pending::<()>().await;
    }
    let period = Duration::from_millis(args.flap_period_ms);
    let mut refusing = false;
    loop {
        tokio::time::sleep(period).await;
        refusing = !refusing;
        let verb = if refusing { "add" } else { "delete" };
        let mut script = String::new();
        for ip in &args.flap {
            let set = if ip.is_ipv4() { "refused4" } else { "refused6" };
            script.push_str(&format!("{verb} element inet nvfleet {set} {{ {ip} }}\n"));
        }
        run_nft(&script)?;
    }
}

fn read_nets(path: Option<&PathBuf>) -> Result<Vec<IpNet>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| parse_net(l).map_err(anyhow::Error::msg))
        .collect()
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("bad address or CIDR {text:?}"))
}

fn ruleset(port: u16, refused: &[IpNet], blackhole: &[IpNet], unreachable: &[IpNet]) -> String {
    let elements = |family_v4: bool, nets: &[IpNet]| {
        let list: Vec<String> = nets
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == family_v4)
            .map(|n| n.to_string())
            .collect();
        if list.is_empty() {
            String::new()
        } else {
            format!("elements = {{ {} }}", list.join(", "))
        }
    };
    format!(
        "table inet nvfleet {{
  set refused4 {{ type ipv4_addr; flags interval; {r4} }}
  set refused6 {{ type ipv6_addr; flags interval; {r6} }}
  set blackhole4 {{ type ipv4_addr; flags interval; {b4} }}
  set blackhole6 {{ type ipv6_addr; flags interval; {b6} }}
  set unreachable4 {{ type ipv4_addr; flags interval; {u4} }}
  set unreachable6 {{ type ipv6_addr; flags interval; {u6} }}
  set outage_refused4 {{ type ipv4_addr; flags interval; }}
  set outage_refused6 {{ type ipv6_addr; flags interval; }}
  set outage_blackhole4 {{ type ipv4_addr; flags interval; }}
  set outage_blackhole6 {{ type ipv6_addr; flags interval; }}
  set outage_unreachable4 {{ type ipv4_addr; flags interval; }}
  set outage_unreachable6 {{ type ipv6_addr; flags interval; }}
  chain input {{
    type filter hook input priority 0; policy accept;
{rules}  }}
}}
",
        rules = rules(port),
        r4 = elements(true, refused),
        r6 = elements(false, refused),
        b4 = elements(true, blackhole),
        b6 = elements(false, blackhole),
        u4 = elements(true, unreachable),
        u6 = elements(false, unreachable),
    )
}

/// The input chain: each set drops, answers ICMP unreachable or resets, the timed outages'
/// sets first.
fn rules(port: u16) -> String {
    let mut rules = String::new();
    for prefix in ["outage_", ""] {
        for (kind, action) in [
            ("blackhole", "drop"),
            ("unreachable", "reject with icmpx type host-unreachable"),
            ("refused", "reject with tcp reset"),
        ] {
            for (family, set) in [("ip", 4), ("ip6", 6)] {
                rules.push_str(&format!(
                    "    tcp dport {port} {family} daddr @{prefix}{kind}{set} {action}\n"
                ));
            }
        }
    }
    rules
}

fn run_nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running nft (apt-get install nftables)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("nft failed ({status}) on:\n{script}");
    }
    Ok(())
}

fn listen(port: u16) -> Result<Vec<tokio::net::TcpListener>> {
    let mut listeners = Vec::new();
    for addr in [
        SocketAddr::from(([0, 0, 0, 0], port)),
        SocketAddr::from(([0u16; 8], port)),
    ] {
        let domain = socket2::Domain::for_address(addr);
        let socket =
            socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("bind {addr}"))?;
        socket.listen(65535)?;
        listeners.push(tokio::net::TcpListener::from_std(socket.into())?);
    }
    Ok(listeners)
}

fn parse_zone(entries: &[String]) -> Result<HashMap<String, Vec<IpAddr>>> {
    let mut zone = HashMap::new();
    for entry in entries {
        let (name, ips) = entry
            .split_once('=')
            .with_context(|| format!("bad --zone {entry:?}"))?;
        let ips: Vec<IpAddr> = ips
            .split(',')
            .map(|ip| ip.trim().parse())
            .collect::<Result<_, _>>()?;
        zone.insert(name.trim_end_matches('.').to_ascii_lowercase(), ips);
    }
    Ok(zone)
}

/// The names the DNS server answers, and how.
#[derive(Default)]
struct Zone {
    names: HashMap<String, Answers>,
    /// A queries seen per name (for the alternating and flaky answers).
    queries: HashMap<String, u64>,
}

enum Answers {
    Fixed(Vec<IpAddr>),
    /// The two sets in turn, one per A query.
    Alternate([Vec<IpAddr>; 2]),
    /// NXDOMAIN on every other A query (the second, fourth, ...).
    Flaky(Vec<IpAddr>),
}

impl Zone {
    /// The addresses for one query, or `None` for NXDOMAIN.
    fn answer(&mut self, name: &str, query_type: RecordType) -> Option<Vec<IpAddr>> {
        let answers = self.names.get(name)?;
        let count = if query_type == RecordType::A {
            let n = self.queries.entry(name.to_string()).or_default();
            *n += 1;
            *n
        } else {
            self.queries.get(name).copied().unwrap_or(1)
        };
        match answers {
            Answers::Fixed(ips) => Some(ips.clone()),
            Answers::Alternate(sets) => Some(sets[(count as usize + 1) % 2].clone()),
            Answers::Flaky(ips) => (count % 2 == 1).then(|| ips.clone()),
        }
    }
}

async fn serve_dns(socket: tokio::net::UdpSocket, mut zone: Zone, ttl: u32) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        for question in &query.queries {
            response.add_query(question.clone());
            let name = question
                .name()
                .to_string()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match zone.answer(&name, question.query_type()) {
                None => response.metadata.response_code = ResponseCode::NXDomain,
                Some(ips) => {
                    for ip in ips {
                        let rdata = match (ip, question.query_type()) {
                            (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                            _ => continue,
                        };
                        response.add_answer(Record::from_rdata(
                            question.name().clone(),
                            ttl,
                            rdata,
                        ));
                    }
                }
            }
        }
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

/// `NAME=IP,IP|IP,IP` entries.
fn parse_zone_sets(entries: &[String]) -> Result<HashMap<String, [Vec<IpAddr>; 2]>> {
    let mut zone = HashMap::new();
    for entry in entries {
        let (name, sets) = entry
            .split_once('=')
            .with_context(|| format!("bad --zone-alternate {entry:?}"))?;
        let (a, b) = sets
            .split_once('|')
            .with_context(|| format!("--zone-alternate {entry:?} needs two sets: IPS|IPS"))?;
        let parse = |list: &str| -> Result<Vec<IpAddr>> {
            list.split(',')
                .map(|ip| {
                    ip.trim()
                        .parse()
                        .with_context(|| format!("bad address in {entry:?}"))
                })
                .collect()
        };
        zone.insert(
            name.trim_end_matches('.').to_ascii_lowercase(),
            [parse(a)?, parse(b)?],
        );
    }
    Ok(zone)
}

/// One `--outage`: `net` is down as `kind` from `start` for `down`, again every `every`.
#[derive(Debug, Clone)]
struct Outage {
    net: IpNet,
    kind: OutageKind,
    start: Duration,
    down: Duration,
    every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutageKind {
    Refused,
    Blackhole,
    Unreachable,
}

impl OutageKind {
    /// The nftables set: one per kind and family, apart from the fixed ones so that
    /// overlapping addresses never clash.
    fn set(self, v4: bool) -> String {
        let kind = match self {
            OutageKind::Refused => "refused",
            OutageKind::Blackhole => "blackhole",
            OutageKind::Unreachable => "unreachable",
        };
        format!("outage_{kind}{}", if v4 { 4 } else { 6 })
    }
}

/// `NET=KIND@START+DOWN[/EVERY]`, times in milliseconds.
fn parse_outage(text: &str) -> Result<Outage, String> {
    let bad = || format!("bad --outage {text:?}: expected NET=KIND@START+DOWN[/EVERY] (ms)");
    let (net, rest) = text.split_once('=').ok_or_else(bad)?;
    let (kind, times) = rest.split_once('@').ok_or_else(bad)?;
    let kind = match kind {
        "refused" => OutageKind::Refused,
        "blackhole" => OutageKind::Blackhole,
        "unreachable" => OutageKind::Unreachable,
        _ => return Err(bad()),
    };
    let (start, rest) = times.split_once('+').ok_or_else(bad)?;
    let (down, every) = match rest.split_once('/') {
        Some((down, every)) => (down, Some(every)),
        None => (rest, None),
    };
    let ms = |t: &str| {
        t.parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad())
    };
    let every = every.map(ms).transpose()?;
    let down = ms(down)?;
    if every.is_some_and(|e| e <= down) {
        return Err(format!("--outage {text:?}: EVERY must be longer than DOWN"));
    }
    Ok(Outage {
        net: parse_net(net)?,
        kind,
        start: ms(start)?,
        down,
        every,
    })
}

/// Applies the outages' starts and ends in time order, measured from now (`ready`). Repeating
/// outages go on until the fleet is killed. One `nft -i` takes every change as a line on its
/// stdin: starting `nft` for each would put its start-up (tens of milliseconds, far more on a
/// busy machine) between the schedule and the change, and blur the periods tests measure.
async fn run_outages(outages: &[Outage]) -> Result<()> {
    let mut nft = Command::new("nft")
        .arg("-i")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running nft -i (apt-get install nftables)")?;
    let mut changes = nft.stdin.take().context("nft -i stdin")?;
    let began = tokio::time::Instant::now();
    // (time, outage, going down) events; the next of each outage is computed as it passes.
    let mut next: Vec<(Duration, usize, bool)> = (0..outages.len())
        .map(|i| (outages[i].start, i, true))
        .collect();
    while let Some(&(at, i, down)) = next.iter().min_by_key(|e| e.0) {
        tokio::time::sleep_until(began + at).await;
        let outage = &outages[i];
        let verb = if down { "add" } else { "delete" };
        let set = outage.kind.set(matches!(outage.net, IpNet::V4(_)));
        writeln!(
            changes,
            "{verb} element inet nvfleet {set} {{ {} }}",
            outage.net
        )
        .and_then(|()| changes.flush())
        .context("nft -i went away")?;
        let position = next.iter().position(|e| e.1 == i && e.0 == at).unwrap_or(0);
        match (down, outage.every) {
            (true, _) => next[position] = (at + outage.down, i, false),
            (false, Some(every)) => next[position] = (at - outage.down + every, i, true),
            (false, None) => {
                next.remove(position);
            }
        }
    }
    Ok(())
}
