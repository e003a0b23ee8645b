//! The SSRF guard: `federation.ip_range_denylist` applied to every address before a
//! connection is made to it, whether discovery found it or the HTTP client looks a name
//! up itself (a `.well-known` redirect, say).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use ruma::ServerName;

use super::OutboundError;
use super::resolve::lookup_ips;
use crate::config::IpRange;

pub struct IpGuard {
    denylist: Vec<IpRange>,
}

impl IpGuard {
    pub fn new(denylist: Vec<IpRange>) -> Self {
        Self { denylist }
    }

    pub fn is_denied(&self, ip: IpAddr) -> bool {
        self.denylist.iter().any(|range| range.contains(ip))
    }

    /// The URL's host when it is an IP literal this guard denies (a resolver never sees
    /// literals, so clients check them with this before connecting).
    pub fn denied_literal(&self, url: &reqwest::Url) -> Option<IpAddr> {
        let host = url.host_str()?;
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        self.is_denied(ip).then_some(ip)
    }

    /// Refuses `ip` for `server` if it is denied.
    pub fn check(&self, server: &ServerName, ip: IpAddr) -> Result<(), OutboundError> {
        if self.is_denied(ip) {
            return Err(OutboundError::Denied {
                server: server.to_owned(),
                addr: ip,
            });
        }
        Ok(())
    }

    /// The allowed addresses among `found`; an error if there are none.
    pub fn filter(
        &self,
        server: &ServerName,
        found: Vec<IpAddr>,
    ) -> Result<Vec<IpAddr>, OutboundError> {
        let Some(&first) = found.first() else {
            return Err(OutboundError::Unresolvable {
                server: server.to_owned(),
                detail: "the name has no addresses".into(),
            });
        };
        let allowed: Vec<IpAddr> = found
            .into_iter()
            .filter(|ip| !self.is_denied(*ip))
            .collect();
        if allowed.is_empty() {
            return Err(OutboundError::Denied {
                server: server.to_owned(),
                addr: first,
            });
        }
        Ok(allowed)
    }
}

/// The HTTP client's name lookups. A hostname that discovery resolved is "pinned" to
/// the addresses discovery chose (an SRV target's, say, while the URL and certificate
/// keep the server's hostname); any other name is looked up as the system does. Denied
/// addresses are dropped either way.
pub struct GuardedDns {
    guard: Arc<IpGuard>,
    pins: Mutex<HashMap<String, Vec<IpAddr>>>,
}

/// The guard refused every address of a name.
#[derive(Debug, thiserror::Error)]
#[error("every address of {0} is in federation.ip_range_denylist")]
pub struct DeniedName(pub String);

impl GuardedDns {
    pub fn new(guard: Arc<IpGuard>) -> Self {
        Self {
            guard,
            pins: Mutex::new(HashMap::new()),
        }
    }

    /// Makes connections to `host` go to `addrs` (already checked by the guard).
    pub fn pin(&self, host: &str, addrs: &[IpAddr]) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        if pins.get(host).map(Vec::as_slice) != Some(addrs) {
            pins.insert(host.to_owned(), addrs.to_vec());
        }
    }

    fn pinned(&self, host: &str) -> Option<Vec<IpAddr>> {
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.get(host).cloned()
    }
}

/// An HTTP client for URLs someone else chose (push gateways, files Giphy names): names
/// are looked up through the guard, no redirect is followed and no proxy is used (a
/// proxy would look names up past the guard). IP literals are for the caller to check
/// with [`IpGuard::denied_literal`].
pub fn guarded_client(guard: Arc<IpGuard>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedDns::new(guard)))
        .redirect(reqwest::redirect::Policy::none())
}

impl reqwest::dns::Resolve for GuardedDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let pinned = self.pinned(&host);
        let guard = self.guard.clone();
        Box::pin(async move {
            let found = match pinned {
                Some(addrs) => addrs,
                None => lookup_ips(&host).await?,
            };
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| !guard.is_denied(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(DeniedName(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_ip_range_denylist;

    #[test]
    fn the_guard_keeps_allowed_addresses_and_names_a_denied_one() {
        let guard = IpGuard::new(default_ip_range_denylist());
        let server = ServerName::parse("example.org").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            guard
                .filter(&server, vec![ip("127.0.0.1"), ip("93.184.216.34")])
                .unwrap(),
            vec![ip("93.184.216.34")]
        );
        match guard.filter(&server, vec![ip("127.0.0.1"), ip("::1")]) {
            Err(OutboundError::Denied { addr, .. }) => assert_eq!(addr, ip("127.0.0.1")),
            other => panic!("expected a denial, got {other:?}"),
        }
        assert!(matches!(
            guard.filter(&server, vec![]),
            Err(OutboundError::Unresolvable { .. })
        ));
        assert!(guard.check(&server, ip("10.0.0.1")).is_err());
        assert!(guard.check(&server, ip("1.1.1.1")).is_ok());
        let open = IpGuard::new(Vec::new());
        assert!(open.check(&server, ip("127.0.0.1")).is_ok());
    }
}
