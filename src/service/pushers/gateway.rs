//! The HTTP client for push gateways. A gateway URL is chosen by the user who sets the
//! pusher, so requests to it pass the same SSRF guard as federation
//! (`federation.ip_range_denylist`): no loopback, private or link-local address is
//! posted to, whether the URL names it as an IP literal or through a hostname, and no
//! redirect is followed (a redirect is an answer like any other that is not a success).
//!
//! Notify requests go out over HTTP/1.1 ([`super::http1`]) on a kept-alive connection to
//! the gateway's origin (scheme, host and port), taken from a pool and put back once the
//! answers are read: several requests to one origin are written together, pipelined
//! ([`GatewayClient::post_batch`]), by the calling task itself, with no client layers
//! between. HTTPS is rustls with the same trust as before (the Mozilla roots of
//! `webpki-roots` and `federation.extra_ca_files`, ALPN `http/1.1`). Requests that a
//! kept-alive connection leaves unanswered (the gateway closed it while idle) are sent
//! again on a new connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::http1::{self, Io};
use crate::config::IpRange;
use crate::service::federation::guard::IpGuard;
use crate::service::federation::resolve::lookup_ips;

pub use super::http1::Answer;

/// How long an idle connection is kept: under the usual servers' keep-alive timeouts.
const IDLE_FOR: Duration = Duration::from_secs(50);
/// The most idle connections kept per origin (one per worker sending at once).
const MAX_IDLE: usize = 1024;
/// How long an origin that broke a pipelined connection is sent one request per exchange
/// before it is tried with batches again: a gateway restarted, upgraded or behind a
/// proxy that had a bad moment is not kept off batches for the life of the server.
const UNPIPELINED_FOR: Duration = Duration::from_secs(15 * 60);

pub struct GatewayClient {
    guard: Arc<IpGuard>,
    tls: TlsConnector,
    timeout: Duration,
    idle: Mutex<HashMap<Origin, Vec<(Instant, Conn)>>>,
    /// Origins that broke a pipelined connection, with when: their requests go one per
    /// exchange for [`UNPIPELINED_FOR`] from then.
    one_at_a_time: Mutex<HashMap<Origin, Instant>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// Where a gateway is: requests to one origin share its connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    tls: bool,
    host: Host,
    port: u16,
}

struct Conn {
    io: Io,
    buf: Vec<u8>,
}

/// A gateway URL made ready for requests (once per pusher worker).
pub struct Target {
    pub(super) origin: Origin,
    /// The request's head up to the value of `Content-Length`.
    head: Vec<u8>,
}

impl Target {
    /// The request: the head and `body`.
    pub(super) fn request(&self, body: &[u8]) -> Vec<u8> {
        let mut request = Vec::with_capacity(self.head.len() + 24 + body.len());
        request.extend_from_slice(&self.head);
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        request
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The TLS configuration reqwest built for gateways before: the process's default
/// crypto provider or ring, TLS 1.2 and 1.3, the Mozilla roots and `extra_ca_files`.
fn tls_config(extra_ca_files: &[std::path::PathBuf]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_ca_files {
        let pem = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read federation.extra_ca_files entry {}: {e}",
                path.display()
            )
        })?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!("{} is not a PEM certificate file: {e}", path.display())
            })?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no PEM certificate", path.display());
        }
        for cert in certs {
            roots.add(cert)?;
        }
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl GatewayClient {
    /// `extra_ca_files` (`federation.extra_ca_files`) are trusted beside the Mozilla
    /// roots, as for Web Push services.
    pub fn new(
        denylist: Vec<IpRange>,
        extra_ca_files: &[std::path::PathBuf],
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            guard: Arc::new(IpGuard::new(denylist)),
            tls: TlsConnector::from(Arc::new(tls_config(extra_ca_files)?)),
            timeout,
            idle: Mutex::new(HashMap::new()),
            one_at_a_time: Mutex::new(HashMap::new()),
        })
    }

    /// The URL's host when it is an IP literal in the denylist (the name lookups never
    /// see literals, so they are checked here).
    pub fn denied_literal(&self, url: &reqwest::Url) -> Option<IpAddr> {
        self.guard.denied_literal(url)
    }

    /// Makes a gateway URL ready for [`GatewayClient::post`]; an error (a text for the
    /// log) for a URL that cannot be posted to.
    pub fn target(&self, url: &str) -> Result<Target, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad gateway URL: {e}"))?;
        if let Some(ip) = self.denied_literal(&url) {
            return Err(format!(
                "the gateway's address {ip} is in federation.ip_range_denylist"
            ));
        }
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("bad gateway URL: the scheme {other}")),
        };
        let host = match url.host_str() {
            // An IPv6 literal is in brackets.
            Some(host) => match host.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(host.to_owned()),
            },
            None => return Err("bad gateway URL: no host".to_owned()),
        };
        let port = url
            .port_or_known_default()
            .ok_or("bad gateway URL: no port")?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        let head = format!(
            "POST {}{query} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: hearth/{}\r\nContent-Type: application/json\r\nContent-Length: ",
            url.path(),
            env!("CARGO_PKG_VERSION"),
        );
        Ok(Target {
            origin: Origin { tls, host, port },
            head: head.into_bytes(),
        })
    }

    /// POSTs `body` (JSON) to the gateway; an error is a text for the log. The whole
    /// exchange, connecting included, has the client's timeout.
    pub async fn post(&self, target: &Target, body: &[u8]) -> Result<Answer, String> {
        let (mut answers, _) = self
            .post_batch(&target.origin, &[target.request(body)])
            .await;
        answers.pop().unwrap_or_else(|| Err("no answer".to_owned()))
    }

    /// Sends requests to one origin pipelined (HTTP/1.1): all of them written at once on
    /// one connection, the answers read in their order. One result per request, in
    /// order; the whole batch has the client's timeout.
    ///
    /// Requests left unanswered when a connection ends (the gateway closed it, said
    /// `Connection: close`, or its answer broke off) are written again on another
    /// connection; a request whose answer had begun is not (it fails). An origin that
    /// closes a pipelined connection without a word after answering part of it is sent
    /// one request per exchange for [`UNPIPELINED_FOR`].
    ///
    /// Also returns the mean time between consecutive answers on one connection, when
    /// there were two: how long the gateway takes per request it is sent pipelined.
    pub(super) async fn post_batch(
        &self,
        origin: &Origin,
        requests: &[Vec<u8>],
    ) -> (Vec<Result<Answer, String>>, Option<Duration>) {
        let mut results = Vec::with_capacity(requests.len());
        let mut gaps = Gaps::default();
        let done = tokio::time::timeout(
            self.timeout,
            self.batch(origin, requests, &mut results, &mut gaps),
        )
        .await;
        if done.is_err() {
            if !results.is_empty() && results.len() < requests.len() {
                // Part answered, then silence: perhaps the gateway reads one at a time.
                self.stop_pipelining(origin);
            }
            let error = format!("no answer within {:?}", self.timeout);
            results.resize_with(requests.len(), || Err(error.clone()));
        }
        (results, gaps.mean())
    }

    /// Whether requests to `origin` may be pipelined.
    pub(super) fn pipelines(&self, origin: &Origin) -> bool {
        self.pipelines_at(origin, Instant::now())
    }

    fn pipelines_at(&self, origin: &Origin, now: Instant) -> bool {
        let mut one_at_a_time = lock(&self.one_at_a_time);
        match one_at_a_time.get(origin) {
            None => true,
            Some(&since) if now.duration_since(since) >= UNPIPELINED_FOR => {
                one_at_a_time.remove(origin);
                true
            }
            Some(_) => false,
        }
    }

    /// `origin` broke a pipelined connection: one request per exchange for a while.
    fn stop_pipelining(&self, origin: &Origin) {
        lock(&self.one_at_a_time).insert(origin.clone(), Instant::now());
    }

    async fn batch(
        &self,
        origin: &Origin,
        requests: &[Vec<u8>],
        results: &mut Vec<Result<Answer, String>>,
        gaps: &mut Gaps,
    ) {
        while results.len() < requests.len() {
            let rest = &requests[results.len()..];
            let (mut conn, fresh) = match self.take_idle(origin) {
                Some(conn) => (conn, false),
                None => match self.connect(origin).await {
                    Ok(conn) => (conn, true),
                    Err(e) => {
                        results.resize_with(requests.len(), || Err(e.clone()));
                        return;
                    }
                },
            };
            let sending = if !self.pipelines(origin) {
                &rest[..1]
            } else {
                rest
            };
            let before = results.len();
            let mut kept = true;
            let mut broke = None;
            match http1::write(&mut conn.io, &sending.concat()).await {
                Err(failed) => broke = Some(failed),
                Ok(()) => {
                    let mut last = None;
                    for _ in sending {
                        match http1::read_answer(&mut conn.io, &mut conn.buf).await {
                            Ok((answer, keep_alive)) => {
                                let now = Instant::now();
                                if let Some(last) = last {
                                    gaps.add(now - last);
                                }
                                last = Some(now);
                                results.push(Ok(answer));
                                if !keep_alive {
                                    kept = false;
                                    break;
                                }
                            }
                            Err(failed) => {
                                broke = Some(failed);
                                break;
                            }
                        }
                    }
                }
            }
            let answered = results.len() - before;
            let Some(failed) = broke else {
                // Anything after the answers was not asked for: the connection goes.
                if kept && conn.buf.is_empty() {
                    self.put_idle(origin, conn);
                }
                continue;
            };
            if failed.answered {
                // This request's answer broke off: it fails; the rest go again.
                results.push(Err(failed.error));
            } else if answered > 0 {
                // Closed after answering part of a pipelined batch.
                self.stop_pipelining(origin);
            } else if fresh {
                // A new connection that answered nothing: the gateway is not there.
                results.resize_with(requests.len(), || Err(failed.error.clone()));
                return;
            }
            // Else a kept connection that was closed while idle: the batch goes on a
            // new one.
        }
    }

    /// The most recently used idle connection to `origin` that is not too old.
    fn take_idle(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        let conns = idle.get_mut(origin)?;
        let (since, conn) = conns.pop()?;
        if since.elapsed() < IDLE_FOR {
            return Some(conn);
        }
        // The others are older still.
        conns.clear();
        None
    }

    fn put_idle(&self, origin: &Origin, conn: Conn) {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        let conns = match idle.get_mut(origin) {
            Some(conns) => conns,
            None => idle.entry(origin.clone()).or_default(),
        };
        let stale = conns
            .iter()
            .take_while(|(since, _)| now.duration_since(*since) >= IDLE_FOR)
            .count();
        conns.drain(..stale);
        if conns.len() < MAX_IDLE {
            conns.push((now, conn));
        }
    }

    /// A new connection: the name looked up through the guard, the addresses tried in
    /// order.
    async fn connect(&self, origin: &Origin) -> Result<Conn, String> {
        let addrs = match &origin.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                let found = lookup_ips(name)
                    .await
                    .map_err(|e| format!("cannot look up {name}: {e}"))?;
                let allowed: Vec<IpAddr> = found
                    .into_iter()
                    .filter(|ip| !self.guard.is_denied(*ip))
                    .collect();
                if allowed.is_empty() {
                    return Err(format!(
                        "every address of {name} is in federation.ip_range_denylist"
                    ));
                }
                allowed
            }
        };
        let mut last_error = None;
        let mut tcp = None;
        for ip in addrs {
            match TcpStream::connect((ip, origin.port)).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last_error = Some(format!("cannot connect to {ip}: {e}")),
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_error.unwrap_or_default());
        };
        let _ = tcp.set_nodelay(true);
        let io = if origin.tls {
            let name = match &origin.host {
                Host::Name(name) => ServerName::try_from(name.clone())
                    .map_err(|e| format!("bad gateway host {name}: {e}"))?,
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            };
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with the gateway failed: {}", with_causes(&e)))?;
            Io::Tls(Box::new(stream))
        } else {
            Io::Plain(tcp)
        };
        Ok(Conn {
            io,
            buf: Vec::new(),
        })
    }
}

/// The times between consecutive answers to pipelined requests.
#[derive(Default)]
struct Gaps {
    total: Duration,
    count: u32,
}

impl Gaps {
    fn add(&mut self, gap: Duration) {
        self.total += gap;
        self.count += 1;
    }

    fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| self.total / self.count)
    }
}

/// An error and its causes, which reqwest's own text leaves out (a refused address is
/// one of them).
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::*;
    use crate::config::default_ip_range_denylist;

    /// A listener that must never be connected to.
    fn bait() -> (std::net::TcpListener, u16) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    /// The notify URL of a test gateway on a loopback port, made ready.
    fn local_target(client: &GatewayClient, port: u16) -> Target {
        client
            .target(&format!("http://127.0.0.1:{port}/_matrix/push/v1/notify"))
            .unwrap()
    }

    async fn post(client: &GatewayClient, url: &str, body: &[u8]) -> Result<Answer, String> {
        let target = client.target(url)?;
        client.post(&target, body).await
    }

    #[tokio::test]
    async fn denied_addresses_are_refused_by_literal_and_by_name() {
        let client =
            GatewayClient::new(default_ip_range_denylist(), &[], Duration::from_secs(5)).unwrap();
        let (listener, port) = bait();
        let body = br#"{"notification":{}}"#;
        for url in [
            format!("http://127.0.0.1:{port}/_matrix/push/v1/notify"),
            format!("http://[::ffff:127.0.0.1]:{port}/_matrix/push/v1/notify"),
            format!("http://localhost:{port}/_matrix/push/v1/notify"),
        ] {
            let error = post(&client, &url, body).await.unwrap_err();
            assert!(error.contains("ip_range_denylist"), "{url}: {error}");
        }
        // Every request has finished; none reached the listener.
        assert!(listener.accept().is_err());

        let literal = reqwest::Url::parse("http://10.1.2.3/_matrix/push/v1/notify").unwrap();
        assert_eq!(
            client.denied_literal(&literal),
            Some("10.1.2.3".parse().unwrap())
        );
        let public =
            reqwest::Url::parse("https://push.example.org/_matrix/push/v1/notify").unwrap();
        assert_eq!(client.denied_literal(&public), None);
    }

    #[tokio::test]
    async fn an_empty_denylist_lets_loopback_through() {
        let client = GatewayClient::new(Vec::new(), &[], Duration::from_secs(5)).unwrap();
        let (listener, port) = bait();
        listener.set_nonblocking(false).unwrap();
        let accepted = std::thread::spawn(move || listener.accept().is_ok());
        let url = format!("http://127.0.0.1:{port}/_matrix/push/v1/notify");
        // The listener never answers; the connection having been made is the point.
        let _ = tokio::time::timeout(Duration::from_millis(500), post(&client, &url, b"{}")).await;
        assert!(accepted.join().unwrap());
    }

    /// Reads one request (its head, as text, and its body) from a test gateway's
    /// connection; `None` at the connection's end.
    async fn read_request(
        stream: &mut (impl AsyncBufReadExt + AsyncReadExt + Unpin),
    ) -> Option<(String, Vec<u8>)> {
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return None;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        Some((head, body))
    }

    /// A gateway that answers the first request of the server with a chunked body, the
    /// others with a length, each connection's second request being its last (the
    /// connection is then closed, as a gateway closes an idle one).
    async fn closing_gateway() -> (u16, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            let answered = Arc::new(AtomicUsize::new(0));
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (answered, seen) = (answered.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    for _ in 0..2 {
                        let Some((head, body)) = read_request(&mut stream).await else {
                            return;
                        };
                        lock(&seen).push(head + std::str::from_utf8(&body).unwrap());
                        let answer: &[u8] = if answered.fetch_add(1, Ordering::SeqCst) == 0 {
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"re\r\nE\r\njected\":[\"k\"]}\r\n0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"rejected\":[]}"
                        };
                        stream.get_mut().write_all(answer).await.unwrap();
                    }
                });
            }
        });
        (port, accepted, heads)
    }

    #[tokio::test]
    async fn connections_are_kept_and_one_closed_meanwhile_is_replaced() {
        let (port, accepted, heads) = closing_gateway().await;
        let client = GatewayClient::new(Vec::new(), &[], Duration::from_secs(30)).unwrap();
        let target = local_target(&client, port);
        let first = client.post(&target, b"{\"n\":1}").await.unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body, br#"{"rejected":["k"]}"#);
        // The second goes on the same connection, which the gateway then closes.
        let second = client.post(&target, b"{\"n\":2}").await.unwrap();
        assert_eq!(second.body, br#"{"rejected":[]}"#);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The third finds its kept connection closed and is sent on a new one.
        let third = client.post(&target, b"{\"n\":3}").await.unwrap();
        assert_eq!(third.body, br#"{"rejected":[]}"#);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let heads = lock(&heads).clone();
        assert_eq!(heads.len(), 3);
        assert_eq!(
            heads[0],
            format!(
                "POST /_matrix/push/v1/notify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: hearth/{}\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{{\"n\":1}}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(heads[2].ends_with("{\"n\":3}"));
    }

    /// A gateway that answers each request with its body, in order, and ends a
    /// connection after `per_connection` requests: saying so in that answer
    /// (`Connection: close`) when `announced`, else just closing it. Counts connections.
    async fn echo_gateway(per_connection: usize, announced: bool) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    for n in 1..=per_connection {
                        let Some((_, body)) = read_request(&mut stream).await else {
                            return;
                        };
                        let close = if n == per_connection && announced {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\n{close}Content-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let answer = [head.as_bytes(), &body].concat();
                        if stream.get_mut().write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    fn bodies(results: Vec<Result<Answer, String>>) -> Vec<String> {
        results
            .into_iter()
            .map(|r| String::from_utf8(r.unwrap().body).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_goes_pipelined_on_one_connection_and_its_answers_in_order() {
        let (port, accepted) = echo_gateway(usize::MAX, false).await;
        let client = GatewayClient::new(Vec::new(), &[], Duration::from_secs(30)).unwrap();
        let target = local_target(&client, port);
        let requests: Vec<Vec<u8>> = (0..5)
            .map(|n| target.request(format!("{{\"n\":{n}}}").as_bytes()))
            .collect();
        let (answers, gap) = client.post_batch(&target.origin, &requests).await;
        assert!(gap.is_some());
        let expected: Vec<String> = (0..5).map(|n| format!("{{\"n\":{n}}}")).collect();
        assert_eq!(bodies(answers), expected);
        // The connection is kept for the next batch.
        let (answers, _) = client.post_batch(&target.origin, &requests[..2]).await;
        assert_eq!(bodies(answers), expected[..2]);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn requests_left_unanswered_go_again_on_new_connections() {
        // Two answers, then `Connection: close`: the rest goes on a new connection, and
        // the origin is still sent batches.
        let (port, accepted) = echo_gateway(2, true).await;
        let client = GatewayClient::new(Vec::new(), &[], Duration::from_secs(30)).unwrap();
        let target = local_target(&client, port);
        let requests: Vec<Vec<u8>> = (0..5)
            .map(|n| target.request(format!("{n}").as_bytes()))
            .collect();
        let (answers, _) = client.post_batch(&target.origin, &requests).await;
        assert_eq!(bodies(answers), ["0", "1", "2", "3", "4"]);
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert!(client.pipelines(&target.origin));

        // One answer, then the connection closes without a word: the origin is sent one
        // request per exchange from then on, and every request is answered.
        let (port, accepted) = echo_gateway(1, false).await;
        let target = local_target(&client, port);
        let (answers, _) = client.post_batch(&target.origin, &requests).await;
        assert_eq!(bodies(answers), ["0", "1", "2", "3", "4"]);
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        assert!(!client.pipelines(&target.origin));
        // For a while: then it is sent batches again.
        let later = Instant::now() + UNPIPELINED_FOR;
        assert!(!client.pipelines_at(&target.origin, later - Duration::from_secs(60)));
        assert!(client.pipelines_at(&target.origin, later));
        assert!(client.pipelines(&target.origin));

        // Nobody there: every request fails, with the reason.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let target = local_target(&client, port);
        let (answers, _) = client.post_batch(&target.origin, &requests[..3]).await;
        assert_eq!(answers.len(), 3);
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_err_and(|e| e.contains("connect")))
        );
    }

    /// A certificate authority and a certificate it issued for `localhost`, as PEM.
    fn localhost_certificate() -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (ca_pem, cert.pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn https_gateways_are_trusted_through_the_extra_ca_files() {
        let (ca_pem, cert_pem, key_pem) = localhost_certificate();
        let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(stream) = acceptor.accept(stream).await else {
                    continue;
                };
                let mut stream = BufReader::new(stream);
                read_request(&mut stream).await.unwrap();
                let answer =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"rejected\":[\"tls\"]}";
                stream.get_mut().write_all(answer).await.unwrap();
                stream.get_mut().flush().await.unwrap();
            }
        });
        let url = format!("https://localhost:{port}/_matrix/push/v1/notify");
        // Without the CA the certificate is refused.
        let untrusting = GatewayClient::new(Vec::new(), &[], Duration::from_secs(30)).unwrap();
        let error = post(&untrusting, &url, b"{}").await.unwrap_err();
        assert!(error.contains("TLS"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let client = GatewayClient::new(Vec::new(), &[ca_file], Duration::from_secs(30)).unwrap();
        let answer = post(&client, &url, b"{}").await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, br#"{"rejected":["tls"]}"#);
    }
}
