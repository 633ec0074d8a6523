//! Start a broker: bind the listener, run the router, accept connections under
//! a connection limit, publish `$SYS` at an interval, and shut it all down.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::connection::{self, ConnShared};
use crate::handle::BrokerHandle;
use crate::metrics::{self, Metrics};
use crate::outbox::OutboxLimits;
use crate::router::{self, Event, Router};

/// Events the router channel holds before senders wait. Each event can carry a
/// whole read's worth of packets, so a short channel already keeps the router
/// busy, and a publisher that is braked has little left in flight.
const ROUTER_CAPACITY: usize = 64;

/// A running broker. Dropping it does not stop it; call `shutdown`.
pub struct Broker {
    local_addr: SocketAddr,
    handle: BrokerHandle,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    router_task: JoinHandle<()>,
    accept_task: JoinHandle<()>,
}

impl Broker {
    /// Bind `config.listen` (port 0 picks a free port) and start serving.
    pub async fn start(config: Config) -> io::Result<Broker> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = mpsc::channel(ROUTER_CAPACITY);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let relief = Arc::new(Notify::new());
        let router = Router::new(&config, metrics.clone(), relief.clone());
        let router_task = tokio::spawn(router::run(router, rx));
        let shared = Arc::new(ConnShared {
            router: tx.clone(),
            metrics: metrics.clone(),
            max_packet_size: config.limits.max_packet_size,
            connect_timeout: Duration::from_secs(config.limits.connect_timeout_secs.max(1)),
            max_keep_alive: config.limits.max_keep_alive,
            shutdown: shutdown_rx.clone(),
            outbox_limits: OutboxLimits::for_packet_size(config.limits.max_packet_size),
            relief,
        });
        let accept_task = tokio::spawn(accept_loop(
            listener,
            shared,
            config.limits.max_connections,
            shutdown_rx.clone(),
        ));
        if config.sys_interval_secs > 0 {
            tokio::spawn(sys_ticker(
                tx.clone(),
                Duration::from_secs(config.sys_interval_secs),
                shutdown_rx,
            ));
        }
        info!(%local_addr, "broker-lite listening");
        Ok(Broker {
            local_addr,
            handle: BrokerHandle::new(tx),
            metrics,
            shutdown,
            router_task,
            accept_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to publish and subscribe from inside the process.
    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stop accepting, close every connection, and wait for the router to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept_task.await;
        self.handle.send_shutdown().await;
        let _ = self.router_task.await;
        info!("broker-lite stopped");
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ConnShared>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    let next_conn = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::add(&shared.metrics.connections_refused, 1);
            debug!(%peer, "max_connections ({max_connections}) reached; closing");
            drop(stream);
            continue;
        };
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        metrics::add(&shared.metrics.connections_total, 1);
        metrics::add(&shared.metrics.connections_current, 1);
        let _ = stream.set_nodelay(true);
        let peer = connection::Peer {
            addr: peer,
            cert_username: None,
            accepted: tokio::time::Instant::now(),
        };
        tokio::spawn(async move {
            connection::serve(stream, peer, conn, shared.clone()).await;
            metrics::sub(&shared.metrics.connections_current, 1);
            drop(permit);
        });
    }
}

async fn sys_ticker(
    router: mpsc::Sender<Event>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if router.send(Event::SysTick).await.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
