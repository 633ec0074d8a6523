//! Start a broker: bind the listeners, run the router, accept connections under
//! the connection limits, publish `$SYS` at an interval, and shut it all down.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::connection::ConnShared;
use crate::handle::BrokerHandle;
use crate::listener::{self, accept_loop, Accepting, PerIp};
use crate::metrics::Metrics;
use crate::outbox::OutboxLimits;
use crate::router::{self, Event, Router};

/// Events the router channel holds before senders wait. Each event can carry a
/// whole read's worth of packets, so a short channel already keeps the router
/// busy, and a publisher that is braked has little left in flight.
const ROUTER_CAPACITY: usize = 64;

/// A running broker. Dropping it does not stop it; call `shutdown`.
pub struct Broker {
    local_addrs: Vec<SocketAddr>,
    /// The files a reload reads again: password and ACL files, listeners' TLS files.
    pub(crate) auth_config: crate::auth::AuthConfig,
    pub(crate) kinds: Vec<Arc<listener::Kind>>,
    pub(crate) accepting: Arc<Accepting>,
    pub(crate) router: mpsc::Sender<Event>,
    handle: BrokerHandle,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    router_task: JoinHandle<()>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("local_addrs", &self.local_addrs)
            .field("listeners", &self.kinds.len())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Bind every listener (`listeners`, or `listen` alone; port 0 picks a free
    /// port) and start serving. TLS files are read here: an unreadable or
    /// unusable one is an error that names it.
    pub async fn start(config: Config) -> io::Result<Broker> {
        let mut bound = Vec::new();
        for listener in config.effective_listeners() {
            bound.push(listener::bind(&listener).await?);
        }
        if !config.listeners.is_empty() && config.listen != Config::default().listen {
            warn!(listen = %config.listen, "`listen` is not used when `listeners` is given");
        }
        let local_addrs: Vec<SocketAddr> = bound.iter().map(|b| b.addr).collect();
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = mpsc::channel(ROUTER_CAPACITY);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let relief = Arc::new(Notify::new());
        let router = Router::new(&config, metrics.clone(), relief.clone())?;
        let auth = std::sync::RwLock::new(router.auth());
        let router_task = tokio::spawn(router::run(router, rx));
        let shared = Arc::new(ConnShared {
            router: tx.clone(),
            metrics: metrics.clone(),
            max_packet_size: config.limits.max_packet_size,
            connect_timeout: Duration::from_secs(config.limits.connect_timeout_secs.max(1)),
            max_keep_alive: config.limits.max_keep_alive,
            max_connect_size: config.limits.max_connect_size,
            shutdown: shutdown_rx.clone(),
            outbox_limits: OutboxLimits::for_packet_size(config.limits.max_packet_size),
            relief: relief.clone(),
            auth,
        });
        let accepting = Arc::new(Accepting {
            shared,
            limit: Semaphore::new(config.limits.max_connections),
            max_connections: config.limits.max_connections,
            per_ip: PerIp::new(config.limits.max_connections_per_ip),
            next_conn: AtomicU64::new(1),
        });
        let mut accept_tasks = Vec::new();
        let kinds = bound.iter().map(|b| b.kind.clone()).collect();
        for b in bound {
            info!(addr = %b.addr, scheme = b.kind.scheme, "broker-lite listening");
            accept_tasks.push(tokio::spawn(accept_loop(
                b.socket,
                b.kind,
                accepting.clone(),
                shutdown_rx.clone(),
            )));
        }
        if config.sys_interval_secs > 0 {
            tokio::spawn(sys_ticker(
                tx.clone(),
                Duration::from_secs(config.sys_interval_secs),
                shutdown_rx,
            ));
        }
        Ok(Broker {
            local_addrs,
            auth_config: config.auth.clone(),
            kinds,
            accepting,
            router: tx.clone(),
            handle: BrokerHandle::new(tx, relief),
            metrics,
            shutdown,
            router_task,
            accept_tasks,
        })
    }

    /// The address of the first listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs[0]
    }

    /// The address of every listener, in the order of the configuration.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
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
        for task in self.accept_tasks {
            let _ = task.await;
        }
        self.handle.send_shutdown().await;
        let _ = self.router_task.await;
        info!("broker-lite stopped");
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
