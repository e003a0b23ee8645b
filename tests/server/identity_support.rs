//! A small identity server made by the test (the Identity Service API v2 as Hearth uses
//! it): served over TLS by a [`TestRemote`] at `localhost:PORT`, with its own ed25519
//! key that really signs what it vouches for. It keeps bindings and stored invitations,
//! answers hashed lookups (`sha256` only, so an unhashed lookup finds nothing), and
//! calls a homeserver's `/3pid/onbind` when the test binds an address.
//!
//! ```ignore
//! let is = IdentityServer::start();
//! is.bind_quietly("email", "bob@example.org", &bob.id);   // known before the invite
//! let (status, _) = is.bind(&server, "email", "bob@example.org", &bob.id); // calls onbind
//! ```

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ruma::CanonicalJsonObject;
use ruma::signatures::Ed25519KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::federation_support::TestRemote;
use crate::harness::TestServer;

/// What a client gives as `id_access_token`.
pub const ACCESS_TOKEN: &str = "is-access-token";
const PEPPER: &str = "hearth-pepper";

struct Invite {
    medium: String,
    address: String,
    room_id: String,
    sender: String,
    token: String,
}

struct IsState {
    name: String,
    key: Ed25519KeyPair,
    /// Public keys (base64) the server still vouches for.
    valid: Vec<String>,
    bindings: HashMap<(String, String), String>,
    sessions: HashMap<String, (String, String)>,
    invites: Vec<Invite>,
    /// The `Authorization` header of each unbind request.
    unbind_auth: Vec<Option<String>>,
    next: u64,
}

type Shared = Arc<Mutex<IsState>>;

fn new_key() -> Ed25519KeyPair {
    let doc = Ed25519KeyPair::generate();
    Ed25519KeyPair::from_der(&doc, "0".to_owned()).unwrap()
}

fn public_b64(key: &Ed25519KeyPair) -> String {
    STANDARD_NO_PAD.encode(key.public_key())
}

fn sign(name: &str, key: &Ed25519KeyPair, value: &mut Value) {
    let mut object: CanonicalJsonObject = serde_json::from_value(value.clone()).unwrap();
    ruma::signatures::sign_json(name, key, &mut object).unwrap();
    *value = serde_json::to_value(object).unwrap();
}

fn hash(address: &str, medium: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("{address} {medium} {PEPPER}").as_bytes(),
    ))
}

fn error(status: StatusCode, errcode: &str) -> Response {
    (
        status,
        Json(json!({ "errcode": errcode, "error": errcode })),
    )
        .into_response()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {ACCESS_TOKEN}"))
}

async fn hash_details(headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    }
    Json(json!({ "lookup_pepper": PEPPER, "algorithms": ["sha256"] })).into_response()
}

async fn lookup(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    }
    if body["algorithm"] != "sha256" {
        return error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    if body["pepper"] != PEPPER {
        return error(StatusCode::BAD_REQUEST, "M_INVALID_PEPPER");
    }
    let state = state.lock().unwrap();
    let mut mappings = serde_json::Map::new();
    for wanted in body["addresses"].as_array().cloned().unwrap_or_default() {
        for ((medium, address), mxid) in &state.bindings {
            if wanted == hash(address, medium) {
                mappings.insert(wanted.as_str().unwrap().to_owned(), json!(mxid));
            }
        }
    }
    Json(json!({ "mappings": mappings })).into_response()
}

async fn store_invite(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    }
    let mut state = state.lock().unwrap();
    state.next += 1;
    let token = format!("tok{}", state.next);
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    state.invites.push(Invite {
        medium: text("medium"),
        address: text("address"),
        room_id: text("room_id"),
        sender: text("sender"),
        token: token.clone(),
    });
    let url = format!("https://{}/_matrix/identity/v2/pubkey/isvalid", state.name);
    let public = public_b64(&state.key);
    Json(json!({
        "token": token,
        "display_name": "b...@e...",
        "public_keys": [{ "public_key": public, "key_validity_url": url }],
        "public_key": public,
    }))
    .into_response()
}

async fn is_valid(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let state = state.lock().unwrap();
    let valid = query
        .get("public_key")
        .is_some_and(|k| state.valid.contains(k));
    Json(json!({ "valid": valid }))
}

async fn bind(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorised(&headers) {
        return error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    }
    let mut state = state.lock().unwrap();
    let Some((medium, address)) = body["sid"]
        .as_str()
        .and_then(|sid| state.sessions.get(sid).cloned())
    else {
        return error(StatusCode::BAD_REQUEST, "M_NO_VALID_SESSION");
    };
    let mxid = body["mxid"].as_str().unwrap_or_default().to_owned();
    state
        .bindings
        .insert((medium.clone(), address.clone()), mxid.clone());
    let mut answer = json!({
        "medium": medium, "address": address, "mxid": mxid,
        "not_before": 0, "not_after": 4_582_425_849_161_u64, "ts": 0,
    });
    sign(&state.name, &state.key, &mut answer);
    Json(answer).into_response()
}

async fn unbind(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = state.lock().unwrap();
    state.unbind_auth.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    let key = (
        body["threepid"]["medium"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["threepid"]["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    if state.bindings.get(&key).map(String::as_str) != body["mxid"].as_str() {
        return error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    state.bindings.remove(&key);
    Json(json!({})).into_response()
}

pub struct IdentityServer {
    state: Shared,
    remote: TestRemote,
}

impl IdentityServer {
    pub fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(IsState {
            name: String::new(),
            key: new_key(),
            valid: Vec::new(),
            bindings: HashMap::new(),
            sessions: HashMap::new(),
            invites: Vec::new(),
            unbind_auth: Vec::new(),
            next: 0,
        }));
        {
            let mut s = state.lock().unwrap();
            let public = public_b64(&s.key);
            s.valid.push(public);
        }
        let shared = state.clone();
        let remote = TestRemote::start_with(move |signer| {
            shared.lock().unwrap().name = signer.server_name.clone();
            Router::new()
                .route("/_matrix/identity/v2/hash_details", get(hash_details))
                .route("/_matrix/identity/v2/lookup", post(lookup))
                .route("/_matrix/identity/v2/store-invite", post(store_invite))
                .route("/_matrix/identity/v2/pubkey/isvalid", get(is_valid))
                .route("/_matrix/identity/v2/3pid/bind", post(bind))
                .route("/_matrix/identity/v2/3pid/unbind", post(unbind))
                .with_state(shared)
        });
        Self { state, remote }
    }

    /// The `id_server` clients name: `localhost:PORT`.
    pub fn name(&self) -> String {
        self.remote.server_name()
    }

    /// A validated session for an address, for `/account/3pid/bind`.
    pub fn validated_session(&self, medium: &str, address: &str) -> String {
        let mut state = self.state.lock().unwrap();
        state.next += 1;
        let sid = format!("session{}", state.next);
        state
            .sessions
            .insert(sid.clone(), (medium.to_owned(), address.to_owned()));
        sid
    }

    /// Binds an address here without telling any homeserver.
    pub fn bind_quietly(&self, medium: &str, address: &str, mxid: &str) {
        self.state
            .lock()
            .unwrap()
            .bindings
            .insert((medium.to_owned(), address.to_owned()), mxid.to_owned());
    }

    pub fn lookup(&self, medium: &str, address: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .bindings
            .get(&(medium.to_owned(), address.to_owned()))
            .cloned()
    }

    /// Binds an address and returns the `/3pid/onbind` body for it, with each stored
    /// invitation signed by the current key.
    pub fn bind_and_sign(&self, medium: &str, address: &str, mxid: &str) -> Value {
        self.bind_quietly(medium, address, mxid);
        let state = self.state.lock().unwrap();
        let invites: Vec<Value> = state
            .invites
            .iter()
            .filter(|i| i.medium == medium && i.address == address)
            .map(|i| {
                let mut signed = json!({ "mxid": mxid, "token": i.token });
                sign(&state.name, &state.key, &mut signed);
                json!({
                    "medium": i.medium, "address": i.address, "mxid": mxid,
                    "room_id": i.room_id, "sender": i.sender, "signed": signed,
                })
            })
            .collect();
        let mut body = json!({
            "medium": medium, "address": address, "mxid": mxid, "invites": invites,
        });
        sign(&state.name, &state.key, &mut body);
        body
    }

    /// Binds an address and calls the homeserver's `/3pid/onbind` (as `POST`, as identity
    /// servers do).
    pub fn bind(
        &self,
        server: &TestServer,
        medium: &str,
        address: &str,
        mxid: &str,
    ) -> (u16, Value) {
        let body = self.bind_and_sign(medium, address, mxid);
        onbind(server, &body)
    }

    /// Signs `value` with the current key (a `third_party_signed` block for `/join`).
    pub fn sign(&self, value: &mut Value) {
        let state = self.state.lock().unwrap();
        sign(&state.name, &state.key, value);
    }

    /// A new key: what was signed before no longer verifies with it.
    pub fn rotate_key(&self) {
        let mut state = self.state.lock().unwrap();
        state.key = new_key();
        let public = public_b64(&state.key);
        state.valid.push(public);
    }

    /// Every key but the current one is no longer vouched for.
    pub fn revoke_old_keys(&self) {
        let mut state = self.state.lock().unwrap();
        state.valid = vec![public_b64(&state.key)];
    }

    /// The `Authorization` headers unbind requests came with.
    pub fn unbind_auth(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().unbind_auth.clone()
    }
}

pub fn onbind(server: &TestServer, body: &Value) -> (u16, Value) {
    server.post("/_matrix/federation/v1/3pid/onbind", None, body)
}
