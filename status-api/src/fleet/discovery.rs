//! Who the peers are: `--peers` (`DOCKWARDEN_PEERS`) is a comma-separated list of
//! `host:port`, each resolved to every address it has and resolved again every
//! [`RESOLVE_EVERY`], so nodes that come and go are followed. The orchestrator does the
//! discovery: on Swarm `tasks.status-api:8080` resolves to the status-api task of every node
//! (on the stack's overlay network); on Kubernetes a headless Service
//! (`status-api-peers:8080`) resolves to every pod. A fixed list (`10.0.0.5:8080,10.0.0.6:8080`)
//! works anywhere. This node's own address may be among them: the poller recognises itself
//! by its instance token and never asks itself over the network.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// How often names are resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(10);

/// `--peers`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// `host:port` entries as given.
    pub entries: Vec<String>,
}

impl Peers {
    /// Parses `host:port[,host:port...]`; `None` for an empty value (no fleet).
    pub fn parse(value: &str) -> Result<Option<Peers>, String> {
        let entries: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        for e in &entries {
            let bad = |why: &str| {
                format!(
                    "--peers (DOCKWARDEN_PEERS) entry {e:?}: {why}; expected HOST:PORT, e.g. tasks.status-api:8080"
                )
            };
            let (host, port) = e.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(bad("no host name"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad("bad port")),
            }
        }
        Ok(Some(Peers { entries }))
    }

    /// What the peers are, for messages.
    pub fn describe(&self) -> String {
        self.entries.join(",")
    }

    /// Resolves every entry. An entry that fails keeps `previous`'s addresses for it (a DNS
    /// blip must not make nodes vanish) and is reported in the error.
    pub async fn resolve(&self, previous: &Resolved) -> Resolved {
        let mut out = Resolved::default();
        let mut errors = Vec::new();
        for e in &self.entries {
            match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(e.as_str())).await {
                Ok(Ok(addrs)) => {
                    let addrs: BTreeSet<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        errors.push(format!("{e} resolves to no address"));
                    }
                    out.by_entry.push((e.clone(), addrs));
                }
                Ok(Err(err)) => {
                    errors.push(format!("cannot resolve {e}: {err}"));
                    out.by_entry.push((e.clone(), previous.of(e)));
                }
                Err(_) => {
                    errors.push(format!("cannot resolve {e}: no answer within 5 s"));
                    out.by_entry.push((e.clone(), previous.of(e)));
                }
            }
        }
        out.error = (!errors.is_empty()).then(|| errors.join("; "));
        out
    }
}

/// The addresses the entries resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    by_entry: Vec<(String, BTreeSet<SocketAddr>)>,
    /// Why some entry could not be resolved this time.
    pub error: Option<String>,
}

impl Resolved {
    fn of(&self, entry: &str) -> BTreeSet<SocketAddr> {
        self.by_entry
            .iter()
            .find(|(e, _)| e == entry)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// Every address, once.
    pub fn addresses(&self) -> BTreeSet<SocketAddr> {
        self.by_entry
            .iter()
            .flat_map(|(_, a)| a.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_lists() {
        assert_eq!(Peers::parse("").unwrap(), None);
        assert_eq!(Peers::parse(" , ").unwrap(), None);
        let p = Peers::parse("tasks.status-api:8080").unwrap().unwrap();
        assert_eq!(p.entries, ["tasks.status-api:8080"]);
        let p = Peers::parse("10.0.0.5:8080, 10.0.0.6:8081,[::1]:9")
            .unwrap()
            .unwrap();
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.describe(), "10.0.0.5:8080,10.0.0.6:8081,[::1]:9");
        for bad in [
            "tasks.status-api",
            "host:0",
            "host:http",
            ":8080",
            "http://x:1",
            "a b:1",
        ] {
            let e = Peers::parse(bad).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn resolves_and_keeps_addresses_through_a_failure() {
        let p = Peers::parse("127.0.0.1:1,localhost:2").unwrap().unwrap();
        let r = p.resolve(&Resolved::default()).await;
        assert!(r.addresses().contains(&"127.0.0.1:1".parse().unwrap()), "{r:?}");
        assert!(r.addresses().iter().any(|a| a.port() == 2), "{r:?}");
        let bad = Peers::parse("127.0.0.1:1,dwtest-fleet-no-such-host.invalid:3")
            .unwrap()
            .unwrap();
        let mut prev = Resolved::default();
        prev.by_entry.push((
            "dwtest-fleet-no-such-host.invalid:3".into(),
            ["127.0.0.9:3".parse().unwrap()].into(),
        ));
        let r = bad.resolve(&prev).await;
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("no-such-host")),
            "{r:?}"
        );
        assert!(
            r.addresses().contains(&"127.0.0.9:3".parse().unwrap()),
            "kept: {r:?}"
        );
    }
}
