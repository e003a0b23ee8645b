//! Server discovery (spec "Resolving server names"): from a server name to the addresses
//! to connect to, the name the certificate must be valid for (and the TLS SNI), and the
//! `Host` header.
//!
//! The order is the spec's: an IP literal is used as it is; a hostname with an explicit
//! port is looked up (A/AAAA, `/etc/hosts` included); otherwise
//! `https://<hostname>/.well-known/matrix/server` may delegate to another name, which is
//! resolved by the same IP-literal and port steps, then SRV `_matrix-fed._tcp`, then the
//! deprecated `_matrix._tcp`, then port 8448. The SSRF guard drops every denied address
//! before anything connects to it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::TokioResolver;
use ruma::{OwnedServerName, ServerName};
use tokio::sync::OnceCell;

use super::OutboundError;
use super::guard::IpGuard;
use super::wellknown::{WellKnown, WellKnownFetcher};

/// The port of the spec when nothing else gives one.
pub const DEFAULT_PORT: u16 = 8448;

/// Where and how to reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The server name the request is for (before any delegation).
    pub server_name: OwnedServerName,
    /// The name the certificate must be valid for, sent as SNI: a hostname, or an IP
    /// address (then no SNI is sent and the certificate must name the address).
    pub tls_name: Host,
    /// The port to connect to.
    pub port: u16,
    /// The `Host` header the spec asks for.
    pub host_header: String,
    /// The addresses to connect to, in order, all allowed by the SSRF guard.
    pub addrs: Vec<IpAddr>,
}

/// A hostname or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// The host as it appears in a URL (`[::1]` for IPv6).
    pub fn url_host(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// Splits a server name (or a delegated name from `.well-known`) into host and port.
/// Accepts the grammar of the spec's appendix: `hostname`, `1.2.3.4`, `[::1]`, each
/// with an optional `:port`.
pub fn split_server_name(name: &str) -> Option<(Host, Option<u16>)> {
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((Host::Ip(IpAddr::V6(ip)), port));
    } else {
        match name.rsplit_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (name, None),
        }
    };
    if host.is_empty() || host.len() > 255 {
        return None;
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Some((Host::Ip(IpAddr::V4(ip)), port));
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| (Host::Name(host.to_ascii_lowercase()), port))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

/// The first discovery steps, which need no network: an IP literal or an explicit port
/// decide everything but the address lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstStep {
    /// Connect here (a hostname still needs its A/AAAA lookup).
    Direct {
        tls_name: Host,
        port: u16,
        host_header: String,
    },
    /// A hostname without a port: ask `.well-known`, then SRV.
    Delegation { hostname: String },
}

/// Steps 1 and 2 of the spec (and 3.1 and 3.2 for a delegated name, whose `Host` header
/// is the delegated name as written).
pub fn first_step(name: &str) -> Option<FirstStep> {
    let (host, port) = split_server_name(name)?;
    Some(match (host, port) {
        (Host::Ip(ip), port) => FirstStep::Direct {
            tls_name: Host::Ip(ip),
            port: port.unwrap_or(DEFAULT_PORT),
            host_header: name.to_owned(),
        },
        (Host::Name(host), Some(port)) => FirstStep::Direct {
            tls_name: Host::Name(host),
            port,
            host_header: name.to_owned(),
        },
        (Host::Name(hostname), None) => FirstStep::Delegation { hostname },
    })
}

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// Orders SRV answers as RFC 2782 asks: lowest priority first, and within a priority a
/// random order weighted by `weight` (`roll` gives the random numbers, for tests). A
/// single `.` target means "no service here" and gives nothing.
pub fn order_srv(mut targets: Vec<SrvTarget>, mut roll: impl FnMut(u32) -> u32) -> Vec<SrvTarget> {
    if targets.len() == 1 && targets[0].target.trim_end_matches('.').is_empty() {
        return Vec::new();
    }
    targets.retain(|t| !t.target.trim_end_matches('.').is_empty());
    targets.sort_by_key(|t| t.priority);
    let mut out = Vec::with_capacity(targets.len());
    let mut rest = targets.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|t| t.priority == first.priority)
            .count();
        let mut group: Vec<SrvTarget> = rest[..same].to_vec();
        rest = &rest[same..];
        while !group.is_empty() {
            let total: u32 = group.iter().map(|t| u32::from(t.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut r = roll(total) % total;
                group
                    .iter()
                    .position(|t| {
                        let w = u32::from(t.weight);
                        if r < w {
                            true
                        } else {
                            r -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

/// Resolves server names, with the discovered destinations cached for a while.
pub struct Resolver {
    guard: Arc<IpGuard>,
    well_known: WellKnownFetcher,
    dns: OnceCell<Option<TokioResolver>>,
    cache: Mutex<HashMap<OwnedServerName, (Destination, Instant)>>,
}

/// How long a discovered destination is reused before discovery runs again (the
/// `.well-known` answer has its own, longer cache).
const DESTINATION_TTL: Duration = Duration::from_secs(10 * 60);
/// Past this many cached destinations, expired ones are dropped.
const MAX_CACHED: usize = 10_000;

impl Resolver {
    pub fn new(guard: Arc<IpGuard>, well_known: WellKnownFetcher) -> Self {
        Self {
            guard,
            well_known,
            dns: OnceCell::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Where to send requests for `server`.
    pub async fn resolve(&self, server: &ServerName) -> Result<Destination, OutboundError> {
        if let Some((dest, at)) = self.lock_cache().get(server)
            && at.elapsed() < DESTINATION_TTL
        {
            return Ok(dest.clone());
        }
        let dest = self.discover(server).await?;
        let mut cache = self.lock_cache();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| at.elapsed() < DESTINATION_TTL);
        }
        cache.insert(server.to_owned(), (dest.clone(), Instant::now()));
        Ok(dest)
    }

    fn lock_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<OwnedServerName, (Destination, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was discovered for `server`, e.g. after its connection failed.
    pub fn forget(&self, server: &ServerName) {
        self.lock_cache().remove(server);
    }

    async fn discover(&self, server: &ServerName) -> Result<Destination, OutboundError> {
        let name = server.as_str();
        let unresolvable = |detail: &str| OutboundError::Unresolvable {
            server: server.to_owned(),
            detail: detail.to_owned(),
        };
        match first_step(name).ok_or_else(|| unresolvable("not a valid server name"))? {
            FirstStep::Direct {
                tls_name,
                port,
                host_header,
            } => self.finish(server, tls_name, port, host_header).await,
            FirstStep::Delegation { hostname } => {
                match self.well_known.get(server, &hostname).await {
                    WellKnown::Delegated(delegated) => {
                        self.resolve_delegated(server, &delegated).await
                    }
                    WellKnown::None => self.resolve_by_srv(server, &hostname).await,
                }
            }
        }
    }

    /// Step 3's sub-steps for the name `.well-known` delegated to.
    async fn resolve_delegated(
        &self,
        server: &ServerName,
        delegated: &str,
    ) -> Result<Destination, OutboundError> {
        match first_step(delegated) {
            Some(FirstStep::Direct {
                tls_name,
                port,
                host_header,
            }) => self.finish(server, tls_name, port, host_header).await,
            Some(FirstStep::Delegation { hostname }) => {
                self.resolve_by_srv(server, &hostname).await
            }
            None => Err(OutboundError::Unresolvable {
                server: server.to_owned(),
                detail: format!(".well-known delegates to {delegated:?}, not a server name"),
            }),
        }
    }

    /// SRV `_matrix-fed._tcp`, then `_matrix._tcp`, then port 8448; the certificate and
    /// `Host` header stay `hostname` whatever the SRV target.
    async fn resolve_by_srv(
        &self,
        server: &ServerName,
        hostname: &str,
    ) -> Result<Destination, OutboundError> {
        for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
            let targets = self.srv_lookup(&format!("{service}.{hostname}.")).await;
            if targets.is_empty() {
                continue;
            }
            let mut last_error = None;
            for target in targets {
                match self.lookup_allowed(server, &target.target).await {
                    Ok(addrs) => {
                        return Ok(Destination {
                            server_name: server.to_owned(),
                            tls_name: Host::Name(hostname.to_owned()),
                            port: target.port,
                            host_header: hostname.to_owned(),
                            addrs,
                        });
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            if let Some(e) = last_error {
                return Err(e);
            }
        }
        self.finish(
            server,
            Host::Name(hostname.to_owned()),
            DEFAULT_PORT,
            hostname.to_owned(),
        )
        .await
    }

    async fn finish(
        &self,
        server: &ServerName,
        tls_name: Host,
        port: u16,
        host_header: String,
    ) -> Result<Destination, OutboundError> {
        let addrs = match &tls_name {
            Host::Ip(ip) => {
                self.guard.check(server, *ip)?;
                vec![*ip]
            }
            Host::Name(name) => self.lookup_allowed(server, name).await?,
        };
        Ok(Destination {
            server_name: server.to_owned(),
            tls_name,
            port,
            host_header,
            addrs,
        })
    }

    /// A/AAAA (and `/etc/hosts`) as the system resolves them, less denied addresses.
    async fn lookup_allowed(
        &self,
        server: &ServerName,
        host: &str,
    ) -> Result<Vec<IpAddr>, OutboundError> {
        let host = host.trim_end_matches('.');
        let found = lookup_ips(host)
            .await
            .map_err(|e| OutboundError::Unresolvable {
                server: server.to_owned(),
                detail: format!("cannot look up {host}: {e}"),
            })?;
        self.guard.filter(server, found)
    }

    async fn srv_lookup(&self, name: &str) -> Vec<SrvTarget> {
        let Some(dns) = self
            .dns
            .get_or_init(|| async {
                match TokioResolver::builder_tokio().and_then(|b| b.build()) {
                    Ok(resolver) => Some(resolver),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS resolver for SRV lookups; federation uses .well-known and port 8448 only");
                        None
                    }
                }
            })
            .await
        else {
            return Vec::new();
        };
        let lookup = match tokio::time::timeout(Duration::from_secs(10), dns.srv_lookup(name)).await
        {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(e)) => {
                if !e.is_no_records_found() {
                    tracing::debug!(%name, error = %e, "SRV lookup failed");
                }
                return Vec::new();
            }
            Err(_) => {
                tracing::debug!(%name, "SRV lookup timed out");
                return Vec::new();
            }
        };
        let targets = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                hickory_resolver::proto::rr::RData::SRV(srv) => Some(SrvTarget {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        order_srv(targets, |n| {
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..n.max(1))
        })
    }
}

/// The system's answer for `host` (`getaddrinfo`: `/etc/hosts`, then DNS), in its order,
/// without duplicates.
pub async fn lookup_ips(host: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in tokio::net::lookup_host((host, 0)).await? {
        if !out.contains(&addr.ip()) {
            out.push(addr.ip());
        }
    }
    Ok(out)
}

/// How long a `.well-known` answer is kept, from its `Cache-Control` or `Expires`
/// headers: the spec's default of 24 hours without them, never more than 48 hours, and
/// (as Synapse) never less than 5 minutes.
pub fn cache_lifetime(
    cache_control: Option<&str>,
    expires: Option<&str>,
    now: SystemTime,
) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(24 * 3600);
    const MAX: Duration = Duration::from_secs(48 * 3600);
    const MIN: Duration = Duration::from_secs(5 * 60);
    let from_cache_control = cache_control.and_then(|value| {
        let mut max_age = None;
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-store" || directive == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some(secs) = directive.strip_prefix("max-age=") {
                max_age = secs
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
        max_age
    });
    let lifetime = from_cache_control
        .or_else(|| {
            let expires = httpdate_parse(expires?)?;
            Some(expires.duration_since(now).unwrap_or(Duration::ZERO))
        })
        .unwrap_or(DEFAULT);
    lifetime.clamp(MIN, MAX)
}

/// How long a failed `.well-known` lookup is remembered: an invalid answer for an hour
/// (the spec's recommendation), an unreachable host for 2 minutes doubling with each
/// failure in a row up to the same hour.
pub fn error_lifetime(invalid_answer: bool, failures_in_a_row: u32) -> Duration {
    const HOUR: Duration = Duration::from_secs(3600);
    if invalid_answer {
        return HOUR;
    }
    let doublings = failures_in_a_row.saturating_sub(1).min(5);
    (Duration::from_secs(120) * 2u32.pow(doublings)).min(HOUR)
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, the only form RFC 9110 lets
/// senders use).
fn httpdate_parse(text: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1970..=9999).contains(&year) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since the epoch, by the civil-from-days inverse (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
