//! A push gateway stand-in for the pusher tests: an HTTP server in the test process on a
//! loopback port that records every `POST /_matrix/push/v1/notify` body and answers as
//! the test scripts it (a status code, or rejecting pushkeys), else 200 `{"rejected": []}`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::ClosedPort;

pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// How the gateway answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    Reject(Vec<String>),
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Value>>,
    arrived: Condvar,
    answers: Mutex<VecDeque<Answer>>,
    /// Pushkeys rejected whenever a request is for them (after the scripted answers).
    rejecting: Mutex<Vec<String>>,
}

pub struct Gateway {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn notify(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let pushkey = body["notification"]["devices"][0]["pushkey"].as_str();
    let answer = shared.answers.lock().unwrap().pop_front().or_else(|| {
        let rejecting = shared.rejecting.lock().unwrap();
        pushkey
            .filter(|key| rejecting.iter().any(|r| r == key))
            .map(|key| Answer::Reject(vec![key.to_owned()]))
    });
    shared.received.lock().unwrap().push(body);
    shared.arrived.notify_all();
    match answer {
        Some(Answer::Status(code)) => (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"error": "scripted failure"})),
        ),
        Some(Answer::Reject(keys)) => (StatusCode::OK, Json(json!({ "rejected": keys }))),
        None => (StatusCode::OK, Json(json!({"rejected": []}))),
    }
}

impl Gateway {
    /// Listens on a free port.
    pub fn start() -> Self {
        Self::serve(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), [])
    }

    /// Listens on a port held closed until now, with the first answers scripted before
    /// any request can arrive.
    pub fn start_at(closed: ClosedPort, answers: impl IntoIterator<Item = Answer>) -> Self {
        Self::serve(closed.listen(), answers)
    }

    fn serve(listener: std::net::TcpListener, answers: impl IntoIterator<Item = Answer>) -> Self {
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        shared.answers.lock().unwrap().extend(answers);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .route(NOTIFY_PATH, post(notify))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Gateway {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        url_on(self.port)
    }

    /// The next requests get these answers, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.answers.lock().unwrap().extend(answers);
    }

    /// Every request for this pushkey is answered by rejecting it.
    pub fn reject(&self, pushkey: &str) {
        self.shared
            .rejecting
            .lock()
            .unwrap()
            .push(pushkey.to_owned());
    }

    /// Waits until at least `n` requests arrived (failing after a generous minute).
    #[track_caller]
    pub fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut received = self.shared.received.lock().unwrap();
        while received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {} of {n} notifies arrived: {received:?}",
                received.len()
            );
            received = self.shared.arrived.wait_timeout(received, left).unwrap().0;
        }
        received.clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn url_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}{NOTIFY_PATH}")
}
