//! The HTTP/1.1 serving loop: hyper's connection driver with the limits a hostile client
//! meets (head timeout and size, open connections), graceful shutdown, and the peer address
//! for each request.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use tokio::net::TcpListener;

use crate::config;

/// What one client connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Time to send a request's head, from when the server waits for one (so also the most a
    /// kept-alive connection sits idle).
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `ops` sets, the connection cap derived from the open-file limit if unset.
    pub fn from_settings(ops: &config::OpsSettings) -> ConnectionLimits {
        let max_connections = ops.max_connections.unwrap_or_else(|| {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            config::default_max_connections(soft)
        });
        ConnectionLimits {
            max_connections,
            header_timeout: Duration::from_secs(ops.header_timeout_seconds),
        }
    }
}

/// The largest request head (request line and headers) read: a browser's is 1–3 KiB, and
/// hyper would otherwise buffer up to ~400 KiB per connection for one that never ends.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `router` over HTTP/1.1 until `shutdown` completes, then lets the open connections
/// finish (the caller bounds how long).
///
/// This is `axum::serve` without HTTP/2 detection. To tell HTTP/2 from HTTP/1.1 it reads the
/// first 24 bytes of each connection on their own, and hyper's read buffer, asked for 8 KiB
/// more with those bytes still in it, doubles to 16 KiB and stays so for the connection's life
/// (a heap profile of 500 waiting browsers: 9.4 MB of read buffers). Browsers reach wxlogin
/// over HTTP/1.1 anyway: directly without TLS, or from nginx, which speaks HTTP/1.1 to its
/// upstreams.
///
/// A client can't hold a connection for nothing: the head of each request must arrive within
/// `limits.header_timeout` of the server starting to wait for it (hyper's timer also closes a
/// kept-alive connection that idles that long), it may be at most [`MAX_HEAD_BYTES`], and past
/// `limits.max_connections` new connections are closed at once rather than queued, so the
/// process keeps file descriptors for its database and for the connections it has. A response
/// being streamed (a waiting browser's events) is not a request being read: it is unaffected.
pub async fn serve_http1(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::{ConnectInfo, Request};
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let slots = Arc::new(tokio::sync::Semaphore::new(
        limits
            .max_connections
            .min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let mut refused = 0u64;
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // As axum::serve: a connection that died in the backlog is nothing; other
                    // errors (out of file descriptors, say) get a pause before trying again.
                    let gone = matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                    );
                    if !gone {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: closed now (dropping the stream), so the client learns at once and the
            // descriptor is free again. Logged once per 1,000, not once per connection.
            if refused.is_multiple_of(1000) {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached; new connections are closed"
                );
            }
            refused += 1;
            drop(stream);
            continue;
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}
