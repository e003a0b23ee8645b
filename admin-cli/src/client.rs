//! The admin API over HTTP, and every way a command can fail, each one line.

use std::cell::OnceCell;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::Response;
use serde_json::Value;

use crate::Cli;
use crate::token;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8008";

#[derive(Debug)]
pub enum Failure {
    /// The command line asks for something that cannot be done (exit 2).
    Usage(String),
    /// No server answered.
    Unreachable {
        server: String,
        detail: String,
    },
    NoToken,
    /// The server answered with a Matrix error.
    Server {
        status: u16,
        errcode: String,
        message: String,
    },
    /// Something on this machine: files, the data directory.
    Local(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(text) | Failure::Local(text) => f.write_str(text),
            Failure::Unreachable { server, detail } => write!(
                f,
                "cannot reach the server at {server} ({detail}); is hearth running there?"
            ),
            Failure::NoToken => f.write_str(
                "no access token: run `hearthctl login`, set HEARTHCTL_TOKEN, or pass --token-file",
            ),
            Failure::Server {
                status,
                errcode,
                message,
            } => match errcode.as_str() {
                "M_UNKNOWN_TOKEN" => write!(
                    f,
                    "the server did not accept the access token ({errcode}); log in again with `hearthctl login`"
                ),
                "M_MISSING_TOKEN" => write!(f, "the server wants an access token ({errcode})"),
                "M_USER_LOCKED" => write!(f, "your admin account is locked ({errcode})"),
                "M_FORBIDDEN" => write!(f, "refused ({errcode}): {message}"),
                "M_NOT_FOUND" => write!(f, "not found ({errcode}): {message}"),
                _ => write!(f, "{message} ({errcode}, HTTP {status})"),
            },
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub struct Client {
    http: reqwest::blocking::Client,
    server: String,
    token: String,
    pub json: bool,
    server_name: OnceCell<String>,
}

/// Percent-encodes one path segment (user and room IDs hold `@!:#`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The HTTP client, trusting the certificate authorities in `--ca-file` besides the
/// usual roots (for a server whose certificate a private CA issued).
pub fn http_client(cli: &Cli) -> Result<reqwest::blocking::Client, Failure> {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("hearthctl/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &cli.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Failure::Local(format!("cannot read the CA file {}: {e}", path.display()))
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Failure::Local(format!("{} holds no PEM certificate: {e}", path.display()))
        })?;
        if certificates.is_empty() {
            return Err(Failure::Local(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| Failure::Local(format!("cannot set up HTTP: {e}")))
}

/// The server to talk to: `--server`/`HEARTHCTL_SERVER`, else the logged-in one.
pub fn server_url(cli: &Cli, saved: Option<&token::Session>) -> String {
    cli.server
        .clone()
        .or_else(|| saved.map(|s| s.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Sends a request and reads its JSON answer, turning failures into [`Failure`]s.
pub fn call(
    http: &reqwest::blocking::Client,
    server: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let mut request = http.request(method, format!("{server}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().map_err(|e| Failure::Unreachable {
        server: server.to_owned(),
        detail: root_cause(&e),
    })?;
    read(response, server)
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn read(response: Response, server: &str) -> Result<Value, Failure> {
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return body.ok_or_else(|| {
            Failure::Local(format!(
                "the server at {server} answered HTTP {status} without JSON; is it a Hearth server?"
            ))
        });
    }
    match body {
        Some(body) if body["errcode"].is_string() => Err(Failure::Server {
            status,
            errcode: body["errcode"].as_str().unwrap_or_default().to_owned(),
            message: body["error"].as_str().unwrap_or_default().to_owned(),
        }),
        _ => Err(Failure::Local(format!(
            "the server at {server} answered HTTP {status} without a Matrix error; is it a Hearth server?"
        ))),
    }
}

impl Client {
    /// The server and token from the command line, the environment or `hearthctl login`.
    pub fn new(cli: &Cli) -> Result<Self, Failure> {
        let saved = token::load()?;
        let token = if let Some(path) = &cli.token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Local(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?;
            text.trim().to_owned()
        } else if let Some(token) = std::env::var("HEARTHCTL_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            token.trim().to_owned()
        } else if let Some(saved) = &saved {
            saved.access_token.clone()
        } else {
            return Err(Failure::NoToken);
        };
        if token.is_empty() {
            return Err(Failure::NoToken);
        }
        Ok(Self {
            http: http_client(cli)?,
            server: server_url(cli, saved.as_ref()),
            token,
            json: cli.json,
            server_name: OnceCell::new(),
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(Method::GET, path, None)
    }

    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        call(
            &self.http,
            &self.server,
            method,
            path,
            Some(&self.token),
            body,
        )
    }

    /// A full user ID: as given, or a local part completed with the server's name (asked
    /// of the server once, from the caller's own user ID).
    pub fn user_id(&self, user: &str) -> Result<String, Failure> {
        if user.starts_with('@') {
            return Ok(user.to_owned());
        }
        if let Some(name) = self.server_name.get() {
            return Ok(format!("@{}:{name}", user.to_lowercase()));
        }
        let me = self.get("/_matrix/client/v3/account/whoami")?;
        let name = me["user_id"]
            .as_str()
            .and_then(|id| id.split_once(':'))
            .map(|(_, name)| name.to_owned())
            .ok_or_else(|| Failure::Local("the server did not say who you are".into()))?;
        let _ = self.server_name.set(name.clone());
        Ok(format!("@{}:{name}", user.to_lowercase()))
    }
}
