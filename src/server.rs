//! Start-up and shutdown: open the store, load the key, serve until a signal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::service::Services;
use crate::service::keys::ServerKeys;
use crate::store::Store;

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create data directory {}", config.data.display()))?;
    let store = Store::open(&config.data.join("db"), config.sync_writes)?;
    let keys = ServerKeys::load_or_create(&config.data, &config.server_name)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    crate::api::web::log_status(&config.web_client_dir);
    let services = Arc::new(Services::new(config, store, keys)?);
    tokio::spawn(services.clone().presence_idle_loop());
    let app = crate::api::router(services.clone());
    tracing::info!(
        addr = %listener.local_addr()?,
        server_name = %services.server_name(),
        "hearth is listening"
    );
    // Sync answers and socket frames are small and latency-bound: Nagle's algorithm
    // would hold one back until the previous is acknowledged.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let services = services.clone();
        async move {
            shutdown_signal().await;
            // Long-polls and sockets would otherwise hold the shutdown for their timeout.
            services.begin_shutdown();
        }
    })
    .await?;
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
