//! Start-up and shutdown: open the store, load the key, serve (HTTPS when a certificate
//! is configured, plain HTTP otherwise) until a signal.

mod check;
mod memory;
mod stalls;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::config::Config;
use crate::service::Services;
use crate::service::keys::ServerKeys;
use crate::store::Store;

pub use check::check_config;

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create data directory {}", config.data.display()))?;
    // Certificate problems are start-up errors, reported before anything else is opened.
    let tls = match config.tls.paths() {
        Some((cert, key)) => Some(tls::server_config(cert, key)?),
        None => None,
    };
    // Listened for before anything starts, so that a signal during start-up is a clean
    // shutdown once the server is up.
    let signalled = shutdown_signal()?;
    let store = Store::open(&config.data.join("db"), config.sync_writes)?;
    let keys = ServerKeys::load_or_create(&config.data, &config.server_name)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    crate::api::web::log_status(&config.web_client_dir);
    let header_read_secs = config.limits.header_read_secs;
    let services = Arc::new(Services::new(config, store, keys)?);
    services.start_workers()?;
    tokio::spawn(stalls::watch(services.shutdown_started()));
    memory::return_start_up_heap();
    // Once the workers' first passes (resumed queues, first ticks) have run too.
    tokio::spawn(async {
        tokio::time::sleep(memory::START_UP_SETTLED).await;
        memory::release_start_up_code();
    });
    let app = axum::ServiceExt::<axum::http::Request<_>>::into_make_service_with_connect_info::<
        SocketAddr,
    >(crate::api::router(services.clone()));
    tracing::info!(
        addr = %listener.local_addr()?,
        server_name = %services.server_name(),
        tls = tls.is_some(),
        "hearth is listening"
    );
    let shutdown = {
        let services = services.clone();
        async move {
            signalled.await;
            // Long-polls and sockets would otherwise hold the shutdown for their timeout.
            services.begin_shutdown();
        }
    };
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.await;
            handle.graceful_shutdown(None);
        }
    });
    // Sync answers and socket frames are small and latency-bound: Nagle's algorithm
    // would hold one back until the previous is acknowledged (NoDelayAcceptor).
    let server = axum_server::from_tcp(listener.into_std()?)?.handle(handle);
    match tls {
        None => {
            let mut server = server.acceptor(NoDelayAcceptor::new());
            limit_slow_clients(server.http_builder(), header_read_secs);
            server.serve(app).await?;
        }
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls)))
                .acceptor(NoDelayAcceptor::new());
            let mut server = server.acceptor(acceptor);
            limit_slow_clients(server.http_builder(), header_read_secs);
            server.serve(app).await?;
        }
    }
    tracing::info!("requests finished; flushing the store");
    services.shutdown();
    Ok(())
}

/// The most request header lines accepted.
const MAX_HEADERS: usize = 100;

/// `limits.header_read_secs`: how long a client may take over a request's head (slow
/// loris); the body has `limits.body_read_secs` (see `api::body_limits`).
fn limit_slow_clients(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_read_secs: u64,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(header_read_secs))
        .max_headers(MAX_HEADERS);
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered now, before the first request is served: a SIGTERM that arrives while
    // the server starts then shuts it down cleanly instead of killing it (the default
    // action, while no handler is registered yet).
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}
