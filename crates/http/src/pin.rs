//! `--resolve HOST:PORT:ADDR`: pin a name to an address, as curl does, so a config naming
//! production hosts can be pointed at a local server without touching DNS or the config.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lower-cased, without brackets.
    pub host: String,
    pub port: u16,
    pub addr: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --resolve {input:?}: {problem} (expected HOST:PORT:ADDR, e.g. fetch.com:443:127.0.0.1)"
)]
pub struct PinError {
    pub input: String,
    pub problem: String,
}

impl std::str::FromStr for Pin {
    type Err = PinError;

    fn from_str(input: &str) -> Result<Pin, PinError> {
        let fail = |problem: &str| PinError {
            input: input.to_string(),
            problem: problem.to_string(),
        };
        let (host, rest) = if let Some(bracketed) = input.strip_prefix('[') {
            let (host, rest) = bracketed
                .split_once(']')
                .ok_or_else(|| fail("unclosed '['"))?;
            (host, rest.strip_prefix(':').ok_or_else(|| fail("no port"))?)
        } else {
            input.split_once(':').ok_or_else(|| fail("no port"))?
        };
        if host.is_empty() {
            return Err(fail("empty host"));
        }
        let (port, addr) = rest.split_once(':').ok_or_else(|| fail("no address"))?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(fail("the port must be 1-65535")),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| fail("the address must be an IP address"))?;
        Ok(Pin {
            host: host.to_ascii_lowercase(),
            port,
            addr,
        })
    }
}

/// The pinned address for `host:port`, if any; the last pin given wins, as in curl.
pub fn lookup(pins: &[Pin], host: &str, port: u16) -> Option<IpAddr> {
    pins.iter()
        .rev()
        .find(|p| p.port == port && p.host.eq_ignore_ascii_case(host))
        .map(|p| p.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_ipv6() {
        let pin: Pin = "Fetch.com:443:127.0.0.1".parse().unwrap();
        assert_eq!(
            pin,
            Pin {
                host: "fetch.com".into(),
                port: 443,
                addr: "127.0.0.1".parse().unwrap()
            }
        );
        let pin: Pin = "www.x.com:8080:[::1]".parse().unwrap();
        assert_eq!(pin.addr, "::1".parse::<IpAddr>().unwrap());
        let pin: Pin = "www.x.com:8080:::1".parse().unwrap();
        assert_eq!(pin.addr, "::1".parse::<IpAddr>().unwrap());
        let pin: Pin = "[::2]:80:127.0.0.2".parse().unwrap();
        assert_eq!((pin.host.as_str(), pin.port), ("::2", 80));
    }

    #[test]
    fn refuses_malformed_pins() {
        for bad in [
            "fetch.com",
            "fetch.com:443",
            "fetch.com:0:127.0.0.1",
            "fetch.com:x:127.0.0.1",
            ":443:127.0.0.1",
            "h:443:localhost",
            "[::1:80:1.2.3.4",
        ] {
            let err = bad.parse::<Pin>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn lookup_matches_host_and_port_last_wins() {
        let pins: Vec<Pin> = [
            "a.com:443:127.0.0.1",
            "a.com:80:127.0.0.2",
            "a.com:443:127.0.0.3",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        assert_eq!(
            lookup(&pins, "A.com", 443),
            Some("127.0.0.3".parse().unwrap())
        );
        assert_eq!(
            lookup(&pins, "a.com", 80),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(lookup(&pins, "a.com", 8443), None);
        assert_eq!(lookup(&pins, "b.com", 443), None);
    }
}
