//! The API's accept loop: its own connection limit, hyper's header-read
//! timeout, a guard on stalled response writes, and the counters of its
//! connections ([`ApiCounters`]).
//!
//! Promises, with [`ApiLimits`] `l`:
//! * at most `l.max_connections` connections are served at once; one more
//!   is accepted, answered `503` (best effort, without waiting) and closed
//!   at once, so a flood of API connections holds at most
//!   `l.max_connections` descriptors for longer than an accept;
//! * a connection whose request head is not whole `l.header_timeout` after
//!   its connect or its previous response is closed (hyper's
//!   `header_read_timeout`, which hyper also arms on an idle keep-alive
//!   connection);
//! * a response write that makes no progress for `l.request_timeout` ends
//!   the connection (a client that stops reading);
//! * head bytes are bounded by [`MAX_HEAD_BYTES`] (hyper answers 431);
//! * with `--api-tls-cert`, the TLS handshake must finish within
//!   `l.header_timeout` of the connect (inside the connection's slot).
//!
//! Request bodies and handling time are bounded in the router
//! (`super::router`).

use crate::config::ApiLimits;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;

/// The API's connection counters, shown by `GET /metrics` after the
/// collector's own.
#[derive(Debug, Default)]
pub struct ApiCounters {
    /// API connections accepted (TCP), refused ones included.
    pub connections_total: AtomicU64,
    /// API connections served now.
    pub connections_open: AtomicU64,
    /// API connections refused with 503: beyond `--api-max-connections`.
    pub connections_refused_total: AtomicU64,
}

impl ApiCounters {
    /// Appends the counters to `out` in Prometheus text.
    pub(super) fn render(&self, out: &mut String) {
        for (name, kind, help, v) in [
            ("api_connections_total", "counter", "API connections accepted (TCP), refused ones included.", &self.connections_total),
            ("api_connections_open", "gauge", "API connections served now.", &self.connections_open),
            ("api_connections_refused_total", "counter", "API connections refused with 503 (beyond --api-max-connections).", &self.connections_refused_total),
        ] {
            let _ = writeln!(out, "# HELP edge_collector_{name} {help}\n# TYPE edge_collector_{name} {kind}\nedge_collector_{name} {}", v.load(Ordering::Relaxed));
        }
    }
}

/// Largest request head (request line and headers) read into a
/// connection's buffer; hyper's own default is about 400 KiB.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// Least time between two warnings that the limit refuses connections.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// How long a shutdown waits for API requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The answer to a connection beyond the limit.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n";

/// Serves `app` on `listener` within `limits` until `stop` fires, then
/// lets requests in flight finish (bounded) and returns.
pub async fn run(listener: TcpListener, app: Router, limits: ApiLimits, counters: Arc<ApiCounters>, mut stop: watch::Receiver<bool>, tls: Option<Arc<crate::tls::Tls>>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    let mut warned: Option<std::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let refused = counters.connections_refused_total.fetch_add(1, Ordering::Relaxed) + 1;
            if warned.is_none_or(|t| t.elapsed() >= REFUSAL_WARNING_EVERY) {
                warned = Some(std::time::Instant::now());
                tracing::warn!(limit = limits.max_connections, refused, "the HTTP API is at --api-max-connections: refusing connections with 503 (warned at most once a minute)");
            }
            // Never waits: the descriptor is released now.
            let _ = stream.try_write(BUSY);
            drop(stream);
            continue;
        };
        let (app, counters, stop, tls) = (app.clone(), counters.clone(), stop.clone(), tls.clone());
        conns.spawn(async move {
            counters.connections_open.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_one(stream, app, limits, stop).await,
                Some(tls) => match tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(stream)).await {
                    Ok(Ok(s)) => serve_one(s, app, limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "API TLS handshake failed"),
                    Err(_) => tracing::debug!("API TLS handshake not finished within --api-header-timeout"),
                },
            }
            counters.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Each connection saw `stop` too and is finishing its request.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} }).await;
}

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, app: Router, limits: ApiLimits, mut stop: watch::Receiver<bool>) {
    let io = TokioIo::new(WriteStallGuard::new(stream, limits.request_timeout));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_header_size(MAX_HEAD_BYTES).max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "API connection ended");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has been pending
/// (the peer not reading) for longer than `limit`. Reads pass through.
struct WriteStallGuard<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStallGuard<T> {
    fn new(inner: T, limit: Duration) -> Self {
        WriteStallGuard { inner, limit, stalled: None }
    }

    /// Passes a ready result on (and forgets the stall); on pending, arms
    /// the stall timer or reports it expired.
    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "API response write stalled"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStallGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStallGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that never reads: the guarded writer fails after the limit
    /// instead of waiting forever.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut w = WriteStallGuard::new(a, Duration::from_secs(3));
        let started = tokio::time::Instant::now();
        let r = w.write_all(&[7u8; 1024]).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(3), "the paused clock: exactly the limit");
    }

    /// A slow reader that keeps taking bytes is not cut off: each bit of
    /// progress restarts the limit.
    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_limit() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut chunk = [0u8; 64];
            while got < 1024 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                got += b.read(&mut chunk).await.unwrap();
            }
            got
        });
        let mut w = WriteStallGuard::new(a, Duration::from_secs(3));
        w.write_all(&[7u8; 1024]).await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 1024);
    }
}
