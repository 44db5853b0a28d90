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
//! - `--dns ADDR:PORT` serves `--zone NAME=IP[,IP...]` records (A and AAAA); any other name is
//!   NXDOMAIN.
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
        let zone = parse_zone(&args.zone)?;
        let socket = tokio::net::UdpSocket::bind(dns_addr)
            .await
            .with_context(|| format!("bind DNS {dns_addr}"))?;
        let ttl = args.ttl;
        tokio::spawn(async move { serve_dns(socket, zone, ttl).await });
    }
    println!("ready");
    std::io::stdout().flush()?;

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
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {port} ip daddr @blackhole4 drop
    tcp dport {port} ip6 daddr @blackhole6 drop
    tcp dport {port} ip daddr @unreachable4 reject with icmpx type host-unreachable
    tcp dport {port} ip6 daddr @unreachable6 reject with icmpx type host-unreachable
    tcp dport {port} ip daddr @refused4 reject with tcp reset
    tcp dport {port} ip6 daddr @refused6 reject with tcp reset
  }}
}}
",
        r4 = elements(true, refused),
        r6 = elements(false, refused),
        b4 = elements(true, blackhole),
        b6 = elements(false, blackhole),
        u4 = elements(true, unreachable),
        u6 = elements(false, unreachable),
    )
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

async fn serve_dns(socket: tokio::net::UdpSocket, zone: HashMap<String, Vec<IpAddr>>, ttl: u32) {
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
            match zone.get(&name) {
                None => response.metadata.response_code = ResponseCode::NXDomain,
                Some(ips) => {
                    for ip in ips {
                        let rdata = match (ip, question.query_type()) {
                            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
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
