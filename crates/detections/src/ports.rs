//! Ports that may be open to the internet on purpose (`ALLOWED_PUBLIC_PORTS`): entries `tcp:N`,
//! `udp:N`, `tcp:N-M` (or `udp:N-M`) and `icmp`, separated by commas.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    /// The protocol of a security-group rule's `ipProtocol` (a name or IANA number); `None` for
    /// `-1` (every protocol) and anything else no allowlist entry can name.
    pub fn of_rule(text: &str) -> Option<Protocol> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" | "6" => Some(Protocol::Tcp),
            "udp" | "17" => Some(Protocol::Udp),
            "icmp" | "1" => Some(Protocol::Icmp),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// One allowlisted protocol and port range (ICMP has no ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allowed {
    protocol: Protocol,
    from: u16,
    to: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPorts(Vec<Allowed>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ALLOWED_PUBLIC_PORTS: {entry:?} is not tcp:N, udp:N, tcp:N-M, udp:N-M or icmp")]
pub struct PortsError {
    pub entry: String,
}

/// The allowlist when none is given: the web's ports.
pub const DEFAULT_PUBLIC_PORTS: &str = "tcp:80,tcp:443";

impl PublicPorts {
    pub fn parse(text: &str) -> Result<PublicPorts, PortsError> {
        let mut allowed = Vec::new();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let bad = || PortsError {
                entry: entry.to_owned(),
            };
            if entry.eq_ignore_ascii_case("icmp") {
                allowed.push(Allowed {
                    protocol: Protocol::Icmp,
                    from: 0,
                    to: u16::MAX,
                });
                continue;
            }
            let (protocol, ports) = entry.split_once(':').ok_or_else(bad)?;
            let protocol = match protocol.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return Err(bad()),
            };
            let (from, to) = match ports.split_once('-') {
                Some((from, to)) => (from, to),
                None => (ports, ports),
            };
            let port = |text: &str| text.trim().parse::<u16>().ok();
            let (Some(from), Some(to)) = (port(from), port(to)) else {
                return Err(bad());
            };
            if from > to {
                return Err(bad());
            }
            allowed.push(Allowed { protocol, from, to });
        }
        Ok(PublicPorts(allowed))
    }

    /// Whether a rule opening `protocol` ports `from`..=`to` opens only allowlisted ports.
    pub fn allows(&self, protocol: Option<Protocol>, from: i64, to: i64) -> bool {
        let Some(protocol) = protocol else {
            return false;
        };
        self.0.iter().any(|allowed| {
            allowed.protocol == protocol
                && (protocol == Protocol::Icmp
                    || (i64::from(allowed.from) <= from && to <= i64::from(allowed.to)))
        })
    }
}

impl Default for PublicPorts {
    fn default() -> Self {
        PublicPorts::parse(DEFAULT_PUBLIC_PORTS).expect("the default allowlist parses")
    }
}

impl fmt::Display for PublicPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .0
            .iter()
            .map(
                |allowed| match (allowed.protocol, allowed.from == allowed.to) {
                    (Protocol::Icmp, _) => "icmp".to_owned(),
                    (protocol, true) => format!("{}:{}", protocol.name(), allowed.from),
                    (protocol, false) => {
                        format!("{}:{}-{}", protocol.name(), allowed.from, allowed.to)
                    }
                },
            )
            .collect();
        f.write_str(&entries.join(","))
    }
}

/// How a rule's protocol and ports read to a person: `tcp/22`, `tcp/8000-8080`, `all traffic`.
pub fn describe_ports(protocol: &str, from: Option<i64>, to: Option<i64>) -> String {
    match (Protocol::of_rule(protocol), from, to) {
        (None, _, _) if protocol == "-1" => "all traffic".to_owned(),
        (Some(Protocol::Icmp), _, _) => "icmp".to_owned(),
        (_, Some(from), Some(to)) if from == to => format!("{protocol}/{from}"),
        (_, Some(-1), _) | (_, _, Some(-1)) | (_, None, _) | (_, _, None) => {
            format!("{protocol}/all ports")
        }
        (_, Some(from), Some(to)) => format!("{protocol}/{from}-{to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_the_web_only() {
        let ports = PublicPorts::default();
        assert!(ports.allows(Some(Protocol::Tcp), 443, 443));
        assert!(ports.allows(Some(Protocol::Tcp), 80, 80));
        assert!(!ports.allows(Some(Protocol::Tcp), 22, 22));
        assert!(!ports.allows(Some(Protocol::Tcp), 80, 443));
        assert!(!ports.allows(Some(Protocol::Udp), 443, 443));
        assert!(!ports.allows(None, 443, 443));
        assert_eq!(ports.to_string(), DEFAULT_PUBLIC_PORTS);
    }

    #[test]
    fn ranges_udp_and_icmp() {
        let ports = PublicPorts::parse("tcp:8000-8080, udp:53,icmp").unwrap();
        assert!(ports.allows(Some(Protocol::Tcp), 8000, 8080));
        assert!(ports.allows(Some(Protocol::Tcp), 8010, 8011));
        assert!(!ports.allows(Some(Protocol::Tcp), 7999, 8000));
        assert!(ports.allows(Some(Protocol::Udp), 53, 53));
        assert!(ports.allows(Some(Protocol::Icmp), -1, -1));
        assert_eq!(PublicPorts::parse("").unwrap(), PublicPorts(vec![]));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["tcp", "tcp:x", "sctp:1", "tcp:9-8", "tcp:70000", "tcp:1-"] {
            assert_eq!(
                PublicPorts::parse(&format!("tcp:443,{bad}")).unwrap_err(),
                PortsError { entry: bad.into() }
            );
        }
    }

    #[test]
    fn ports_read_plainly() {
        assert_eq!(describe_ports("tcp", Some(22), Some(22)), "tcp/22");
        assert_eq!(describe_ports("tcp", Some(0), Some(65535)), "tcp/0-65535");
        assert_eq!(describe_ports("-1", Some(-1), Some(-1)), "all traffic");
        assert_eq!(describe_ports("icmp", Some(-1), Some(-1)), "icmp");
        assert_eq!(describe_ports("udp", None, None), "udp/all ports");
    }
}
