//! `--resolve` pins and address families: which addresses a name stands for without asking
//! the DNS. One parser for every probe, so `ports` and `http` read a pin the same way.

use std::collections::HashMap;
use std::net::IpAddr;

/// Which address families to check for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    /// A records; AAAA only when there are no A records (what most clients end up using).
    #[default]
    Auto,
    V4,
    V6,
    /// Every A and AAAA record.
    Both,
}

/// One `--resolve` pin: `name` (on `port`, or on every port) is `addresses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lower-cased, without a trailing dot or brackets.
    pub host: String,
    pub port: Option<u16>,
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --resolve {input:?}: {problem} (expected HOST:ADDR or HOST:PORT:ADDR[,ADDR...], e.g. web.example:443:127.0.0.1)"
)]
pub struct PinError {
    pub input: String,
    pub problem: &'static str,
}

impl std::str::FromStr for Pin {
    type Err = PinError;

    /// `HOST:ADDR` pins the name on every port; curl's `HOST:PORT:ADDR[,ADDR...]` on one port.
    /// Hosts and addresses may be bracketed (`[::1]`); a bare IPv6 address works too.
    fn from_str(input: &str) -> Result<Pin, PinError> {
        let fail = |problem| PinError {
            input: input.to_string(),
            problem,
        };
        let (host, rest) = match input.strip_prefix('[') {
            Some(bracketed) => {
                let (host, rest) = bracketed.split_once(']').ok_or(fail("unclosed '['"))?;
                (host, rest.strip_prefix(':').ok_or(fail("no address"))?)
            }
            None => input.split_once(':').ok_or(fail("no address"))?,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(fail("empty host"));
        }
        let parse_addresses = |text: &str| -> Option<Vec<IpAddr>> {
            text.split(',')
                .map(|a| a.trim_start_matches('[').trim_end_matches(']').parse().ok())
                .collect()
        };
        // `HOST:ADDR` first (an IPv6 address has colons of its own), then `HOST:PORT:ADDR`.
        if let Some(addresses) = parse_addresses(rest) {
            return Ok(Pin {
                host,
                port: None,
                addresses,
            });
        }
        let (port, addresses) = rest.split_once(':').ok_or(fail("no address"))?;
        let port = match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(fail("the port must be 1-65535")),
        };
        let addresses =
            parse_addresses(addresses).ok_or(fail("the address must be an IP address"))?;
        Ok(Pin {
            host,
            port: Some(port),
            addresses,
        })
    }
}

/// Every pin of a run. Several pins for one name (and port) make a round-robin set, checked
/// like a name with several address records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    by_name: HashMap<String, Vec<PortPin>>,
}

/// The addresses pinned for one name on one port (`None`: on every port).
type PortPin = (Option<u16>, Vec<IpAddr>);

impl Pins {
    pub fn add(&mut self, pin: Pin) {
        let entries = self.by_name.entry(pin.host).or_default();
        match entries.iter_mut().find(|(port, _)| *port == pin.port) {
            Some((_, addresses)) => {
                for address in pin.addresses {
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
            }
            None => entries.push((pin.port, pin.addresses)),
        }
    }

    /// The pinned addresses of `name` on `port`: a pin for that port, else one for every port.
    pub fn lookup(&self, name: &str, port: u16) -> Option<&[IpAddr]> {
        let entries = self.by_name.get(name)?;
        entries
            .iter()
            .find(|(p, _)| *p == Some(port))
            .or_else(|| entries.iter().find(|(p, _)| p.is_none()))
            .map(|(_, addresses)| addresses.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl FromIterator<Pin> for Pins {
    fn from_iter<I: IntoIterator<Item = Pin>>(iter: I) -> Pins {
        let mut pins = Pins::default();
        for pin in iter {
            pins.add(pin);
        }
        pins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(text: &str) -> Pin {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn pins_accept_both_forms_brackets_and_lists() {
        assert_eq!(
            pin("Web.example:127.0.0.2"),
            Pin {
                host: "web.example".into(),
                port: None,
                addresses: vec![ip("127.0.0.2")]
            }
        );
        assert_eq!(pin("web:443:127.0.0.3").port, Some(443));
        assert_eq!(pin("web:[::1]").addresses, [ip("::1")]);
        assert_eq!(pin("web:80:[::1]").addresses, [ip("::1")]);
        assert_eq!(pin("web:::1").addresses, [ip("::1")]);
        assert_eq!(pin("www.x.com:8080:::1").addresses, [ip("::1")]);
        assert_eq!(
            pin("web:443:127.0.0.1,127.0.0.2").addresses,
            [ip("127.0.0.1"), ip("127.0.0.2")]
        );
        let v6_host = pin("[::2]:80:127.0.0.2");
        assert_eq!((v6_host.host.as_str(), v6_host.port), ("::2", Some(80)));
        for bad in [
            "web",
            ":1.2.3.4",
            "web:nope",
            "web:99999:1.2.3.4",
            "fetch.com:443",
            "fetch.com:0:127.0.0.1",
            "h:443:localhost",
            "[::1:80:1.2.3.4",
        ] {
            let err = bad.parse::<Pin>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn a_pin_for_the_port_wins_over_a_pin_for_every_port() {
        let pins: Pins = [
            pin("a.com:127.0.0.1"),
            pin("a.com:80:127.0.0.2"),
            pin("a.com:80:127.0.0.3"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            pins.lookup("a.com", 80),
            Some(&[ip("127.0.0.2"), ip("127.0.0.3")][..])
        );
        assert_eq!(pins.lookup("a.com", 443), Some(&[ip("127.0.0.1")][..]));
        assert_eq!(pins.lookup("b.com", 443), None);
        let port_only: Pins = [pin("c.com:443:127.0.0.4")].into_iter().collect();
        assert_eq!(
            port_only.lookup("c.com", 8443),
            None,
            "the port is honoured"
        );
    }
}
