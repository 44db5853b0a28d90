//! nftables through `nft -j -f -`: commands are JSON values built here and written to nft's
//! stdin, so an address is always a JSON string, never text spliced into a rule or a shell.
//!
//! Everything lives in the table `inet netvantage`, with two timeout sets (`blocked_v4` of
//! addresses, `blocked_v6` of prefixes: an interval set, so a /64 is one element) and one
//! input chain that drops their members. With `--source conntrack` two more chains switch
//! conntrack on for this network namespace ([`conntrack_commands`]). No other table is touched.

use ipnet::IpNet;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "netvantage";
pub const SET_V4: &str = "blocked_v4";
pub const SET_V6: &str = "blocked_v6";
pub const CHAIN: &str = "input";
pub const TRACK_CHAINS: [(&str, &str); 2] = [
    ("track_prerouting", "prerouting"),
    ("track_output", "output"),
];

/// Before the usual `filter` priority (0), so a blocked scanner is dropped before any other
/// rule on this host accepts it.
const CHAIN_PRIORITY: i32 = -10;

fn batch(commands: Vec<Value>) -> Value {
    json!({ "nftables": commands })
}

fn drop_rule(protocol: &str, set: &str) -> Value {
    json!({ "add": { "rule": {
        "family": FAMILY, "table": TABLE, "chain": CHAIN,
        "expr": [
            { "match": { "op": "==",
                "left": { "payload": { "protocol": protocol, "field": "saddr" } },
                "right": format!("@{set}") } },
            { "drop": null }
        ]
    } } })
}

/// Creates (or re-creates, idempotently) the table, sets and chain. The chain is flushed first
/// so a restart does not stack duplicate rules; set elements from a `--keep-rules` run survive.
pub fn setup_commands() -> Value {
    batch(vec![
        json!({ "add": { "table": { "family": FAMILY, "name": TABLE } } }),
        json!({ "add": { "set": { "family": FAMILY, "table": TABLE, "name": SET_V4,
            "type": "ipv4_addr", "flags": ["timeout"] } } }),
        json!({ "add": { "set": { "family": FAMILY, "table": TABLE, "name": SET_V6,
            "type": "ipv6_addr", "flags": ["interval", "timeout"] } } }),
        json!({ "add": { "chain": { "family": FAMILY, "table": TABLE, "name": CHAIN,
            "type": "filter", "hook": "input", "prio": CHAIN_PRIORITY, "policy": "accept" } } }),
        json!({ "flush": { "chain": { "family": FAMILY, "table": TABLE, "name": CHAIN } } }),
        drop_rule("ip", SET_V4),
        drop_rule("ip6", SET_V6),
    ])
}

/// nft set timeouts are whole seconds; a partial second rounds up so a block is never shorter
/// than asked, and never zero (which would mean "no timeout").
pub fn ttl_seconds(ttl: Duration) -> u64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    secs.max(1)
}

/// Conntrack tracks nothing in a namespace until a rule needs it. These chains are that rule:
/// every new flow (arriving, or leaving from this host) gets the event mask
/// `new,reply,destroy`, which both switches tracking on and keeps the events to three per
/// connection (the kernel would otherwise also report every TCP state change). `reply` is
/// what tells a refused attempt from an answered one (see `flows`). Before the default
/// filter priority and after conntrack's own (-200).
pub fn conntrack_commands() -> Value {
    let mut commands = vec![json!({ "add": { "table": { "family": FAMILY, "name": TABLE } } })];
    for (chain, hook) in TRACK_CHAINS {
        commands.push(
            json!({ "add": { "chain": { "family": FAMILY, "table": TABLE,
            "name": chain, "type": "filter", "hook": hook, "prio": CHAIN_PRIORITY,
            "policy": "accept" } } }),
        );
        commands.push(
            json!({ "flush": { "chain": { "family": FAMILY, "table": TABLE,
            "name": chain } } }),
        );
        commands.push(json!({ "add": { "rule": {
            "family": FAMILY, "table": TABLE, "chain": chain,
            "expr": [
                { "match": { "op": "in", "left": { "ct": { "key": "state" } }, "right": "new" } },
                { "mangle": { "key": { "ct": { "key": "event" } },
                    "value": ["new", "reply", "destroy"] } }
            ]
        } } }));
    }
    batch(commands)
}

/// An IPv4 target is one address of `blocked_v4`; an IPv6 one a prefix of `blocked_v6`
/// (a /128 for a single address).
pub fn block_commands(target: IpNet, ttl: Duration) -> Value {
    let (set, val) = match target {
        IpNet::V4(net) => (SET_V4, json!(net.addr().to_string())),
        IpNet::V6(net) if net.prefix_len() == 128 => (SET_V6, json!(net.addr().to_string())),
        IpNet::V6(net) => (
            SET_V6,
            json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix_len() } }),
        ),
    };
    batch(vec![json!({ "add": { "element": {
        "family": FAMILY, "table": TABLE, "name": set,
        "elem": [ { "elem": { "val": val, "timeout": ttl_seconds(ttl) } } ]
    } } })])
}

pub fn teardown_commands() -> Value {
    batch(vec![
        json!({ "delete": { "table": { "family": FAMILY, "name": TABLE } } }),
    ])
}

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run {program}: {source} (install it with: apt-get install nftables)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Runs nft. Blocking (a few milliseconds per call); callers on an async runtime move it off
/// the reactor.
#[derive(Clone, Debug)]
pub struct Firewall {
    program: PathBuf,
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            program: PathBuf::from("nft"),
        }
    }
}

impl Firewall {
    pub fn with_program(program: impl Into<PathBuf>) -> Firewall {
        Firewall {
            program: program.into(),
        }
    }

    pub fn run(&self, commands: &Value) -> Result<(), NftError> {
        let program = self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Spawn {
                program: program.clone(),
                source,
            })?;
        let written = child
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(commands.to_string().as_bytes()));
        let output = child.wait_with_output().map_err(|source| NftError::Spawn {
            program: program.clone(),
            source,
        })?;
        if let Some(Err(source)) = written
            && output.status.success()
        {
            return Err(NftError::Spawn { program, source });
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(NftError::Failed {
                program,
                status: output.status,
                stderr,
            });
        }
        Ok(())
    }

    pub fn setup(&self) -> Result<(), NftError> {
        self.run(&setup_commands())
    }

    pub fn block(&self, target: IpNet, ttl: Duration) -> Result<(), NftError> {
        self.run(&block_commands(target, ttl))
    }

    /// Switches conntrack on in this network namespace ([`conntrack_commands`]).
    pub fn track_connections(&self) -> Result<(), NftError> {
        self.run(&conntrack_commands())
    }

    pub fn teardown(&self) -> Result<(), NftError> {
        self.run(&teardown_commands())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_puts_the_address_in_the_set_of_its_family_as_a_json_string() {
        let v4 = block_commands("198.18.0.2/32".parse().unwrap(), Duration::from_secs(3600));
        let elem = &v4["nftables"][0]["add"]["element"];
        assert_eq!(elem["name"], SET_V4);
        assert_eq!(elem["table"], TABLE);
        assert_eq!(elem["elem"][0]["elem"]["val"], "198.18.0.2");
        assert_eq!(elem["elem"][0]["elem"]["timeout"], 3600);
        let v6 = block_commands("2001:db8::2/128".parse().unwrap(), Duration::from_secs(1));
        assert_eq!(v6["nftables"][0]["add"]["element"]["name"], SET_V6);
        assert_eq!(
            v6["nftables"][0]["add"]["element"]["elem"][0]["elem"]["val"],
            "2001:db8::2"
        );
        let prefix = block_commands(
            "2001:db8:1:2::9/64".parse().unwrap(),
            Duration::from_secs(1),
        );
        assert_eq!(
            prefix["nftables"][0]["add"]["element"]["elem"][0]["elem"]["val"],
            json!({ "prefix": { "addr": "2001:db8:1:2::", "len": 64 } })
        );
    }

    #[test]
    fn conntrack_chains_live_in_our_table_and_set_the_event_mask() {
        let commands = conntrack_commands();
        let commands = commands["nftables"].as_array().unwrap();
        for command in commands {
            let inner = command.as_object().unwrap().values().next().unwrap();
            let inner = inner.as_object().unwrap().values().next().unwrap();
            assert!(
                inner["table"] == TABLE || inner["name"] == TABLE,
                "{command}"
            );
        }
        let rules: Vec<_> = commands
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .collect();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["expr"][1]["mangle"]["value"],
            json!(["new", "reply", "destroy"])
        );
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(ttl_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_seconds(Duration::from_secs(3600)), 3600);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn setup_touches_only_our_table() {
        let setup = setup_commands();
        let commands = setup["nftables"].as_array().unwrap();
        assert_eq!(commands.len(), 7);
        for command in commands {
            let object = command.as_object().unwrap().values().next().unwrap();
            let inner = object.as_object().unwrap().values().next().unwrap();
            let table = inner.get("table").or_else(|| inner.get("name")).unwrap();
            assert!(table == TABLE || inner["table"] == TABLE, "{command}");
            assert_eq!(inner["family"], FAMILY);
        }
        assert_eq!(
            teardown_commands()["nftables"][0]["delete"]["table"]["name"],
            TABLE
        );
    }
}
