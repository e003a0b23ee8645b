//! Start-up and shutdown: open the store, load the key, serve (HTTPS when a certificate
//! is configured, plain HTTP otherwise) until a signal.

mod check;
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
    let store = Store::open(&config.data.join("db"), config.sync_writes)?;
    let keys = ServerKeys::load_or_create(&config.data, &config.server_name)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    crate::api::web::log_status(&config.web_client_dir);
    let services = Arc::new(Services::new(config, store, keys)?);
    services.start_workers()?;
    let app =
        crate::api::router(services.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(
        addr = %listener.local_addr()?,
        server_name = %services.server_name(),
        tls = tls.is_some(),
        "hearth is listening"
    );
    let shutdown = {
        let services = services.clone();
        async move {
            shutdown_signal().await;
            // Long-polls and sockets would otherwise hold the shutdown for their timeout.
            services.begin_shutdown();
        }
    };
    match tls {
        None => {
            // Sync answers and socket frames are small and latency-bound: Nagle's
            // algorithm would hold one back until the previous is acknowledged.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            tokio::spawn({
                let handle = handle.clone();
                async move {
                    shutdown.await;
                    handle.graceful_shutdown(None);
                }
            });
            let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls)))
                .acceptor(NoDelayAcceptor::new());
            axum_server::from_tcp(listener.into_std()?)?
                .acceptor(acceptor)
                .handle(handle)
                .serve(app)
                .await?;
        }
    }
    tracing::info!("requests finished; flushing the store");
    services.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
