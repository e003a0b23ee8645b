//! The ways a client receives and sends: long-poll `/sync` with HTTP sends, the sync
//! WebSocket (`spec/websocket-sync.md`) with sends as `send` frames, and sliding sync
//! (`sliding.rs`) with HTTP sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::e2ee::{Keys, Traffic};
use crate::matrix::{Api, Client, INITIAL_FILTER, SyncBody};
use crate::profile::{Profile, Schedule};
use crate::run::{CpuUse, Received, Run, Summary};
use crate::server;
use crate::sliding::{self, Position};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    LongPoll,
    WebSocket,
    Sliding,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "long-poll",
            Transport::WebSocket => "websocket",
            Transport::Sliding => "sliding",
        }
    }
}

/// Everything a measured run needs to know about the set-up server.
pub struct Setup {
    pub api: Api,
    pub server_pid: u32,
    pub port: u16,
    pub clients: Arc<Vec<Client>>,
    pub room_ids: Vec<String>,
    /// Number of clients in each room.
    pub members: Vec<usize>,
    /// The server's memory once set up, before any sync.
    pub memory: Option<server::Memory>,
    pub profile: Profile,
    /// Each client's `filter` for its measured syncs: the ID of the filter it uploaded,
    /// or the profile's inline filter.
    pub filters: Vec<String>,
    /// The devices' keys, with `--e2ee`.
    pub e2ee: Option<Arc<Keys>>,
}

pub struct Load {
    pub rate: f64,
    pub schedule: Schedule,
    pub drain: Duration,
}

/// How long the senders' answers are awaited after sending stops.
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Runs one transport from fresh sync positions and computes its figures.
/// `first_id` is the bench ID of its first message, distinct from every earlier run's.
pub async fn measure(
    setup: &Setup,
    transport: Transport,
    load: &Load,
    first_id: u64,
) -> Result<Summary> {
    let clients = &setup.clients;
    eprintln!("[{}] initial sync of each client", transport.name());
    let (since, positions) = match transport {
        Transport::Sliding => (Vec::new(), setup.sliding_starts().await?),
        _ => (setup.initial_syncs().await?, Vec::new()),
    };
    let schedule = &load.schedule;
    let rooms = schedule
        .sender
        .iter()
        .map(|&sender| clients[sender].room as u32)
        .collect();
    let run = Arc::new(Run::new(first_id, rooms));
    let e2ee = setup.e2ee.as_ref().map(|keys| {
        Arc::new(Traffic::new(
            keys.clone(),
            setup.api.clone(),
            clients.clone(),
            setup.room_ids.len(),
            run.clone(),
        ))
    });
    let (stop, stopped) = watch::channel(false);

    eprintln!(
        "[{}] starting {} receivers",
        transport.name(),
        clients.len()
    );
    let mut receivers: Vec<JoinHandle<Received>> = Vec::with_capacity(clients.len());
    let mut sockets = Vec::new();
    match transport {
        Transport::LongPoll => {
            for (index, since) in since.into_iter().enumerate() {
                receivers.push(tokio::spawn(long_poll(
                    setup.api.clone(),
                    setup.clients.clone(),
                    index,
                    since,
                    setup.filters[index].clone(),
                    run.clone(),
                    e2ee.clone(),
                    stopped.clone(),
                )));
            }
        }
        Transport::Sliding => {
            for (index, position) in positions.into_iter().enumerate() {
                receivers.push(tokio::spawn(sliding::poll(
                    setup.api.clone(),
                    setup.clients.clone(),
                    index,
                    position,
                    run.clone(),
                    e2ee.clone(),
                    stopped.clone(),
                )));
            }
        }
        Transport::WebSocket => {
            let mut ready = Vec::with_capacity(clients.len());
            for ((client, since), filter) in clients.iter().zip(since).zip(&setup.filters) {
                let url = reqwest::Url::parse_with_params(
                    &format!(
                        "ws://127.0.0.1:{}/_matrix/client/unstable/org.hearth.sync/ws",
                        setup.port
                    ),
                    &[
                        ("access_token", client.token.as_str()),
                        ("since", since.as_str()),
                        ("filter", filter.as_str()),
                    ],
                )?;
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                let (ready_tx, ready_rx) = oneshot::channel();
                sockets.push(out_tx);
                ready.push(ready_rx);
                receivers.push(tokio::spawn(socket(
                    url.to_string(),
                    run.clone(),
                    e2ee.clone().map(|traffic| (traffic, sockets.len() - 1)),
                    out_rx,
                    ready_tx,
                    stopped.clone(),
                )));
            }
            // Sending starts once every socket has had its first update.
            for (index, ready) in ready.into_iter().enumerate() {
                let answer = tokio::time::timeout(Duration::from_secs(60), ready)
                    .await
                    .map_err(|_| anyhow!("no first sync frame within 60 s"))
                    .and_then(|r| r.map_err(|_| anyhow!("socket task ended")))
                    .and_then(|r| r.map_err(|e| anyhow!(e)));
                if let Err(error) = answer {
                    let _ = stop.send(true);
                    bail!(
                        "socket of {} did not start: {error:#}",
                        clients[index].user_id
                    );
                }
            }
        }
    }

    // The receivers' first requests (200 long-polls or sliding syncs arriving in the same
    // moment) keep the server's core busy for a few hundred milliseconds: a start no real
    // set of clients makes together, and not what the run measures. Sending starts once
    // they are parked.
    let waited = server_settled(setup.server_pid).await?;
    eprintln!(
        "[{}] the server was idle {} ms after the receivers started",
        transport.name(),
        waited.as_millis()
    );
    eprintln!(
        "[{}] sending {} messages at {} msg/s ({} arrivals)",
        transport.name(),
        schedule.len(),
        load.rate,
        match setup.profile {
            Profile::Basic => "evenly spaced",
            Profile::Element => "Poisson",
        }
    );
    let server_cpu = server::cpu_time(Some(setup.server_pid))?;
    let bench_cpu = server::cpu_time(None)?;
    let started = Instant::now();
    let event_type = match e2ee {
        Some(_) => "m.room.encrypted",
        None => "m.room.message",
    };
    let sent_at = pace(&run, &schedule.at, |index, bench_id| {
        let sender = schedule.sender[index];
        let client = &clients[sender];
        let room_id = setup.room_ids[client.room].clone();
        let content = setup.profile.message_content(bench_id);
        let run = run.clone();
        let e2ee = e2ee.clone();
        match transport {
            Transport::LongPoll | Transport::Sliding => {
                let api = setup.api.clone();
                let token = client.token.clone();
                tokio::spawn(async move {
                    let content = match e2ee {
                        Some(e2ee) => {
                            let session = e2ee.before_send(sender).await;
                            e2ee.megolm_content(sender, &session, bench_id)
                        }
                        None => content,
                    };
                    let result = api
                        .send_event(&token, &room_id, event_type, bench_id, &content)
                        .await;
                    if let Err(error) = &result {
                        run.error(format!("send: {error:#}"));
                    }
                    run.answered(index, result.is_ok());
                });
            }
            Transport::WebSocket => {
                let socket = sockets[sender].clone();
                let user_id = client.user_id.clone();
                let frame = move |content| {
                    let frame = json!({
                        "type": "send",
                        "request_id": format!("s{index}"),
                        "room_id": room_id,
                        "event_type": event_type,
                        "txn_id": format!("b{bench_id}"),
                        "content": content,
                    });
                    if socket.send(frame.to_string()).is_err() {
                        run.error(format!("send: socket of {user_id} is closed"));
                        run.answered(index, false);
                    }
                };
                match e2ee {
                    // The room key goes first, over HTTP, as the client would send it.
                    Some(e2ee) => {
                        tokio::spawn(async move {
                            let session = e2ee.before_send(sender).await;
                            frame(e2ee.megolm_content(sender, &session, bench_id));
                        });
                    }
                    None => frame(content),
                }
            }
        }
    })
    .await;
    let sending_ended = Instant::now();
    let cpu = CpuUse {
        server: server::cpu_time(Some(setup.server_pid))?.saturating_sub(server_cpu),
        bench: server::cpu_time(None)?.saturating_sub(bench_cpu),
        wall: sending_ended - started,
    };

    eprintln!("[{}] draining", transport.name());
    run.drain(&setup.members, sending_ended, load.drain, ANSWER_WAIT)
        .await;
    let _ = stop.send(true);
    let mut received = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        received.push(receiver.await.context("receiver task")?);
    }
    let memory = server::memory(setup.server_pid).ok();
    let mut summary = Summary::compute(
        &run,
        &sent_at,
        clients,
        &setup.members,
        received,
        cpu,
        memory,
        transport == Transport::Sliding,
    );
    summary.e2ee = e2ee.map(|traffic| traffic.figures());
    Ok(summary)
}

impl Setup {
    /// One sync without `since` per client, a few at a time; returns their `next_batch`.
    /// With an uploaded filter the first sync uses it, as the client it mimics does;
    /// otherwise a cheap one that only fetches the position.
    async fn initial_syncs(&self) -> Result<Vec<String>> {
        futures_util::stream::iter(self.clients.iter().zip(&self.filters))
            .map(|(client, filter)| async move {
                let filter = match self.profile.uploaded_filter() {
                    Some(_) => filter.as_str(),
                    None => INITIAL_FILTER,
                };
                self.api
                    .initial_sync_with(&client.token, filter)
                    .await
                    .with_context(|| format!("for {}", client.user_id))
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// A fresh sliding sync connection per client, a few at a time.
    async fn sliding_starts(&self) -> Result<Vec<Position>> {
        futures_util::stream::iter(self.clients.iter())
            .map(|client| sliding::start(&self.api, client))
            .buffered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

/// Waits until the server used at most a tenth of its core over 100 ms (at most 10 s);
/// returns how long that took.
async fn server_settled(pid: u32) -> Result<Duration> {
    const WINDOW: Duration = Duration::from_millis(100);
    let started = Instant::now();
    let mut before = server::cpu_time(Some(pid))?;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(WINDOW).await;
        let now = server::cpu_time(Some(pid))?;
        if now.saturating_sub(before) <= WINDOW / 10 {
            break;
        }
        before = now;
    }
    Ok(started.elapsed())
}

/// Calls `send(index, bench_id)` for each message of the run at its time in `at` (from
/// the start of sending) and returns when each was sent (the moment just before `send`,
/// on the run's clock). The schedule is fixed in advance, so a slow server does not slow
/// the sending.
pub async fn pace(run: &Run, at: &[Duration], mut send: impl FnMut(usize, u64)) -> Vec<u64> {
    let start = tokio::time::Instant::now();
    let mut sent_at = Vec::with_capacity(run.len());
    for (index, &offset) in at.iter().enumerate().take(run.len()) {
        tokio::time::sleep_until(start + offset).await;
        sent_at.push(run.now());
        send(index, run.first_id + index as u64);
    }
    sent_at
}

/// A long-poll client: `/sync?since=..&timeout=30000&filter=..` in a loop until `stop`.
/// With `e2ee`, it re-uploads one-time keys when its syncs say they run low.
#[allow(clippy::too_many_arguments)]
pub async fn long_poll(
    api: Api,
    clients: Arc<Vec<Client>>,
    index: usize,
    mut since: String,
    filter: String,
    run: Arc<Run>,
    e2ee: Option<Arc<Traffic>>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let client = &clients[index];
    let url = format!("{}/_matrix/client/v3/sync", api.base);
    let mut received = Received::default();
    loop {
        let request = api
            .http
            .get(&url)
            .query(&[
                ("since", since.as_str()),
                ("timeout", "30000"),
                ("filter", filter.as_str()),
            ])
            .bearer_auth(&client.token)
            .send();
        let answer = tokio::select! {
            answer = async {
                let response = request.await?;
                let status = response.status();
                let bytes = response.bytes().await?;
                anyhow::Ok((status, bytes, run.now()))
            } => answer,
            _ = stop.changed() => break,
        };
        let body = answer.and_then(|(status, bytes, at)| {
            if !status.is_success() {
                bail!("{status}: {}", String::from_utf8_lossy(&bytes));
            }
            let body: SyncBody = serde_json::from_slice(&bytes)?;
            Ok((body, at))
        });
        match body {
            Ok((body, at)) => {
                run.record(&body, at, &mut received);
                if let (Some(traffic), Some(counts)) = (&e2ee, &body.device_one_time_keys_count) {
                    traffic.one_time_key_count(index, counts);
                }
                match body.next_batch {
                    Some(next) => since = next,
                    None => run.error(format!("/sync for {}: no next_batch", client.user_id)),
                }
            }
            Err(error) => {
                run.error(format!("/sync for {}: {error:#}", client.user_id));
                // Do not spin on a server that keeps failing.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    received
}

/// A frame from the server on the sync socket.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    body: Option<SyncBody>,
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A socket client: records `sync` frames, forwards `outgoing` frames, and marks the
/// answers to its `send` requests (request ID `s<message index>`) until `stop`.
async fn socket(
    url: String,
    run: Arc<Run>,
    e2ee: Option<(Arc<Traffic>, usize)>,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    ready: oneshot::Sender<Result<(), String>>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut received = Received::default();
    // Without TCP_NODELAY, Nagle's algorithm holds a small frame back until the previous
    // one is acknowledged, which with delayed ACKs costs up to 40 ms.
    let connected = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await;
    let stream = match connected {
        Ok((stream, _)) => stream,
        Err(error) => {
            let _ = ready.send(Err(format!("connect: {error}")));
            return received;
        }
    };
    let (mut sink, mut stream) = stream.split();
    let mut ready = Some(ready);
    // Before the first update a failure means the socket did not start; after it, it is
    // an error of the run.
    let fail = |ready: &mut Option<oneshot::Sender<_>>, reason: String| match ready.take() {
        Some(ready) => {
            let _ = ready.send(Err(reason));
        }
        None => run.error(reason),
    };
    loop {
        tokio::select! {
            message = stream.next() => {
                let at = run.now();
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        fail(&mut ready, format!("server closed the socket: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => {
                        fail(&mut ready, format!("socket: {error}"));
                        break;
                    }
                    None => {
                        fail(&mut ready, "socket ended".to_owned());
                        break;
                    }
                };
                let frame: Frame = match serde_json::from_str(text.as_str()) {
                    Ok(frame) => frame,
                    Err(error) => {
                        run.error(format!("unreadable frame ({error}): {}", text.as_str()));
                        continue;
                    }
                };
                let sent_index = frame
                    .request_id
                    .as_deref()
                    .and_then(|id| id.strip_prefix('s'))
                    .and_then(|id| id.parse::<usize>().ok())
                    .filter(|&i| i < run.len());
                match (frame.kind.as_str(), sent_index) {
                    ("sync", _) => {
                        let body = frame.body.unwrap_or_default();
                        run.record(&body, at, &mut received);
                        if let (Some((traffic, index)), Some(counts)) =
                            (&e2ee, &body.device_one_time_keys_count)
                        {
                            traffic.one_time_key_count(*index, counts);
                        }
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    ("response", Some(index)) => {
                        let has_id = frame.body.is_some_and(|b| b.event_id.is_some());
                        if !has_id {
                            run.error(format!("send answer without event_id: {}", text.as_str()));
                        }
                        run.answered(index, has_id);
                    }
                    ("error", index) => {
                        let errcode = frame.errcode.unwrap_or_default();
                        let error = frame.error.unwrap_or_default();
                        run.error(format!("error frame for {:?}: {errcode}: {error}", frame.request_id));
                        if let Some(index) = index {
                            run.answered(index, false);
                        }
                    }
                    _ => run.error(format!("unexpected frame: {}", text.as_str())),
                }
            }
            Some(frame) = outgoing.recv() => {
                if let Err(error) = sink.send(Message::text(frame)).await {
                    run.error(format!("socket send: {error}"));
                    break;
                }
            }
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    received
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_kind_parse() {
        let sync: Frame = serde_json::from_str(
            r#"{"type":"sync","body":{"next_batch":"x","rooms":{"join":{"!r":{"timeline":{"events":[
                {"type":"m.room.message","content":{"body":"hi","org.hearth.bench.id":7}},
                {"type":"m.room.member","state_key":"@a:b","content":{"membership":"join"}}
            ],"limited":true}}}}}}"#,
        )
        .unwrap();
        let body = sync.body.unwrap();
        let room = &body.rooms.join["!r"];
        assert!(room.timeline.limited);
        assert_eq!(room.timeline.events[0].content.bench_id, Some(7));
        assert_eq!(room.timeline.events[1].content.bench_id, None);

        let response: Frame = serde_json::from_str(
            r#"{"type":"response","request_id":"s3","body":{"event_id":"$e"}}"#,
        )
        .unwrap();
        assert_eq!(response.request_id.as_deref(), Some("s3"));
        assert_eq!(response.body.unwrap().event_id.as_deref(), Some("$e"));

        let error: Frame = serde_json::from_str(
            r#"{"type":"error","request_id":null,"errcode":"M_NOT_JSON","error":"no"}"#,
        )
        .unwrap();
        assert_eq!(error.request_id, None);
        assert_eq!(error.errcode.as_deref(), Some("M_NOT_JSON"));
    }
}
