//! Test support for federation: a test certificate authority, Hearth servers that serve
//! TLS on their `localhost:PORT` server name and trust each other, and a hand-made
//! remote server identity whose key the test process holds.
//!
//! ```ignore
//! let a = federating_server();                // https, server name localhost:PORT_A
//! let b = federating_server();
//! let remote = TestRemote::start();           // serves its key at localhost:PORT_R
//! let (status, body) = remote.request(&a, "GET", "/_matrix/federation/v1/query/profile?user_id=...", None);
//! ```

#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use reqwest::blocking::Client;
use ruma::CanonicalJsonObject;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};

use crate::harness::{StartOptions, TestServer, TlsFiles, into_json};

/// The test process's certificate authority; every server certificate of a test run is
/// issued by it, so one CA file makes every test server trusted.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Hearth test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    })
}

impl TestCa {
    /// A new certificate for `localhost` and `127.0.0.1` and its key, as PEM.
    pub fn issue_pem(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A new certificate written to files, with a copy of the CA beside it; the files
    /// live as long as the returned value (and its clones).
    pub fn issue(&self) -> TlsFiles {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = self.issue_pem();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        std::fs::write(&ca, &self.cert_pem).unwrap();
        TlsFiles {
            cert,
            key,
            ca,
            ca_pem: self.cert_pem.clone(),
            _dir: Some(Arc::new(dir)),
        }
    }
}

/// The settings of a test network: the test CA trusted and loopback allowed.
pub fn test_network_env(tls: &TlsFiles) -> Vec<(String, String)> {
    vec![
        (
            "HEARTH_FEDERATION__EXTRA_CA_FILES".to_owned(),
            format!("[{:?}]", tls.ca.display().to_string()),
        ),
        (
            "HEARTH_FEDERATION__IP_RANGE_DENYLIST".to_owned(),
            "[]".to_owned(),
        ),
    ]
}

/// A Hearth server named `localhost:PORT` serving HTTPS on that port, on the test network.
pub fn federating_server() -> TestServer {
    federating_server_with_env(&[])
}

/// As [`federating_server`], with extra `HEARTH_*` settings (they win over the test
/// network's own).
pub fn federating_server_with_env(env: &[(&str, &str)]) -> TestServer {
    let tls = test_ca().issue();
    let mut all = test_network_env(&tls);
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestServer::start_with(StartOptions {
        env: all,
        tls: Some(tls),
    })
}

/// A blocking client that trusts the test CA.
pub fn tls_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .add_root_certificate(
            reqwest::Certificate::from_pem(test_ca().cert_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap()
}

/// How [`TestRemote::request_with`] authenticates a request.
#[derive(Clone, Debug)]
pub enum Signing {
    /// Signed with the published key, for the server it is sent to.
    Correct,
    /// No `Authorization` header.
    Unsigned,
    /// Signed under the published key ID by another key.
    WrongKey,
    /// Signed with a key ID the remote does not publish.
    UnknownKeyId,
    /// Signed correctly, but for another destination.
    Destination(String),
    /// Signed over this body, but sent with the real one.
    SignedBody(Value),
    /// This exact `Authorization` header.
    Header(String),
}

/// A remote homeserver made by the test: an ed25519 key, the server name
/// `localhost:PORT`, and `/_matrix/key/v2/server` served over TLS on that port (with any
/// extra routes the test gives). It signs JSON and events with its key and sends
/// X-Matrix-signed requests to Hearth servers.
pub struct TestRemote {
    pub port: u16,
    key: Arc<Ed25519KeyPair>,
    key_id: String,
    other_key: Ed25519KeyPair,
    client: Client,
    handle: axum_server::Handle<std::net::SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
    _tls: TlsFiles,
}

pub const REMOTE_KEY_ID: &str = "ed25519:remote1";

fn new_key(version: &str) -> Ed25519KeyPair {
    let document = Ed25519KeyPair::generate();
    Ed25519KeyPair::from_der(&document, version.to_owned()).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn sign_value(entity: &str, key: &Ed25519KeyPair, value: &mut Value) {
    let mut object: CanonicalJsonObject = serde_json::from_value(value.clone()).unwrap();
    ruma::signatures::sign_json(entity, key, &mut object).unwrap();
    *value = serde_json::to_value(object).unwrap();
}

impl TestRemote {
    pub fn start() -> Self {
        Self::start_with_routes(Router::new())
    }

    /// Starts with `routes` served beside the key endpoint (e.g. federation endpoints
    /// the remote should answer).
    pub fn start_with_routes(routes: Router) -> Self {
        Self::start_with(|_| routes)
    }

    /// Starts with the routes `routes` makes, given the remote's signer (for routes
    /// that answer with events the remote signs).
    pub fn start_with(routes: impl FnOnce(RemoteSigner) -> Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server_name = format!("localhost:{port}");
        let key = Arc::new(new_key("remote1"));
        let routes = routes(RemoteSigner {
            server_name: server_name.clone(),
            key: key.clone(),
        });
        let tls = test_ca().issue();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = axum_server::Handle::new();
        let app = {
            let key = key.clone();
            let server_name = server_name.clone();
            routes.route(
                "/_matrix/key/v2/server",
                get(move || {
                    let key = key.clone();
                    let server_name = server_name.clone();
                    async move { axum::Json(published_keys(&server_name, &key)) }
                }),
            )
        };
        {
            let (cert, key_path) = (tls.cert.clone(), tls.key.clone());
            let handle = handle.clone();
            runtime.spawn(async move {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key_path)
                    .await
                    .unwrap();
                axum_server::from_tcp_rustls(listener, config)
                    .unwrap()
                    .handle(handle)
                    .serve(app.into_make_service())
                    .await
                    .unwrap();
            });
        }
        Self {
            port,
            key,
            key_id: REMOTE_KEY_ID.to_owned(),
            other_key: new_key("remote1"),
            client: tls_client(),
            handle,
            runtime: Some(runtime),
            _tls: tls,
        }
    }

    pub fn server_name(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as unpadded base64.
    pub fn public_key_base64(&self) -> String {
        ruma::serde::Base64::<ruma::serde::base64::Standard>::new(self.key.public_key().to_vec())
            .encode()
    }

    /// What the remote answers at `/_matrix/key/v2/server`.
    pub fn published_keys(&self) -> Value {
        published_keys(&self.server_name(), &self.key)
    }

    /// Adds the remote's signature to a JSON object.
    pub fn sign_json(&self, value: &mut Value) {
        sign_value(&self.server_name(), &self.key, value);
    }

    /// Adds the content hash and the remote's signature to a PDU of `room_version`.
    pub fn sign_event(&self, event: &mut Value, room_version: &str) {
        let version = ruma::RoomVersionId::try_from(room_version).unwrap();
        let rules = version.rules().expect("a known room version");
        let mut object: CanonicalJsonObject = serde_json::from_value(event.clone()).unwrap();
        ruma::signatures::hash_and_sign_event(
            &self.server_name(),
            &*self.key,
            &mut object,
            &rules.redaction,
        )
        .unwrap();
        *event = serde_json::to_value(object).unwrap();
    }

    /// The `Authorization` header for a request, as the spec builds it.
    pub fn authorization(
        &self,
        method: &str,
        uri: &str,
        destination: &str,
        content: Option<&Value>,
    ) -> String {
        self.authorization_with(&self.key, &self.key_id, method, uri, destination, content)
    }

    fn authorization_with(
        &self,
        key: &Ed25519KeyPair,
        key_id: &str,
        method: &str,
        uri: &str,
        destination: &str,
        content: Option<&Value>,
    ) -> String {
        let origin = self.server_name();
        let mut object = json!({
            "method": method,
            "uri": uri,
            "origin": origin,
            "destination": destination,
        });
        if let Some(content) = content {
            object["content"] = content.clone();
        }
        sign_value(&origin, key, &mut object);
        let sig = object["signatures"][&origin]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        format!(
            "X-Matrix origin=\"{origin}\",destination=\"{destination}\",key=\"{key_id}\",sig=\"{sig}\""
        )
    }

    /// A correctly signed request to `server`; `path` includes any query string.
    pub fn request(
        &self,
        server: &TestServer,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.request_with(server, method, path, body, Signing::Correct)
    }

    /// A request to `server` authenticated as `signing` says.
    pub fn request_with(
        &self,
        server: &TestServer,
        method: &str,
        path: &str,
        body: Option<&Value>,
        signing: Signing,
    ) -> (u16, Value) {
        let destination = server.server_name();
        let header = match signing {
            Signing::Correct => Some(self.authorization(method, path, &destination, body)),
            Signing::Unsigned => None,
            Signing::WrongKey => Some(self.authorization_with(
                &self.other_key,
                &self.key_id,
                method,
                path,
                &destination,
                body,
            )),
            Signing::UnknownKeyId => {
                let key = new_key("unpublished");
                Some(self.authorization_with(
                    &key,
                    "ed25519:unpublished",
                    method,
                    path,
                    &destination,
                    body,
                ))
            }
            Signing::Destination(other) => Some(self.authorization(method, path, &other, body)),
            Signing::SignedBody(signed) => {
                Some(self.authorization(method, path, &destination, Some(&signed)))
            }
            Signing::Header(header) => Some(header),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, server.url(path));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(body).unwrap());
        }
        into_json(request.send().unwrap())
    }
}

/// The remote's signing key, for routes that answer with events the remote signs.
#[derive(Clone)]
pub struct RemoteSigner {
    pub server_name: String,
    key: Arc<Ed25519KeyPair>,
}

impl RemoteSigner {
    /// Adds the content hash and the remote's signature to a PDU of `room_version`.
    pub fn sign_event(&self, event: &mut Value, room_version: &str) {
        let version = ruma::RoomVersionId::try_from(room_version).unwrap();
        let rules = version.rules().expect("a known room version");
        let mut object: CanonicalJsonObject = serde_json::from_value(event.clone()).unwrap();
        ruma::signatures::hash_and_sign_event(
            &self.server_name,
            &*self.key,
            &mut object,
            &rules.redaction,
        )
        .unwrap();
        *event = serde_json::to_value(object).unwrap();
    }
}

fn published_keys(server_name: &str, key: &Ed25519KeyPair) -> Value {
    let public =
        ruma::serde::Base64::<ruma::serde::base64::Standard>::new(key.public_key().to_vec());
    let mut body = json!({
        "server_name": server_name,
        "valid_until_ts": now_ms() + 24 * 3600 * 1000,
        "verify_keys": { REMOTE_KEY_ID: { "key": public.encode() } },
        "old_verify_keys": {},
    });
    sign_value(server_name, key, &mut body);
    body
}

impl Drop for TestRemote {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
