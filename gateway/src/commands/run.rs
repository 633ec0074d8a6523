//! `mqgate run --config FILE`: run the gateway until SIGINT/SIGTERM; SIGHUP
//! reloads the mappings and scripts.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{load_config, Asked, Signals};

/// Longest wait at shutdown for the outputs to hand over what is in flight.
const DRAIN: Duration = Duration::from_secs(5);
use crate::state_lock::StateLock;
use crate::{notify, pipeline, status};

pub async fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Secret files are read now: a missing one is an error in the configuration.
    let auth = match config.status.auth() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return super::EXIT_CONFIG;
        }
    };
    // Each connection is a file descriptor: a limit below what the broker and the
    // status page may hold would let one starve the other.
    let needed = crate::fd_limit::needed(&config);
    match crate::fd_limit::raise_to(needed) {
        Ok((limit, true)) => tracing::warn!(
            "only {limit} file descriptors (hard limit) for about {needed} that the \
             broker's limits.max_connections and status.max_connections need: raise \
             LimitNOFILE= (or ulimit -n) or lower those limits"
        ),
        Ok((limit, false)) => {
            tracing::debug!("file descriptor limit {limit} (need about {needed})")
        }
        Err(e) => tracing::warn!("cannot read or raise the file descriptor limit: {e}"),
    }
    // One process per state folder, and every port bound before the gateway
    // connects anywhere: a second gateway, or a busy port, stops here without
    // having disturbed the one that runs.
    let _lock = match StateLock::acquire(&config.gateway.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    };
    let status_listener = match status::bind(config.status.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    };
    // Signals are caught from here on, before anything says the gateway is ready.
    let mut signals = Signals::install();
    let (stop, shutdown) = watch::channel(false);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let mut running = match pipeline::start(&config, None, None, None, shutdown).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            // A script that does not compile is a configuration error: not retried.
            return if e.is::<pipeline::MappingErrors>() {
                super::EXIT_CONFIG
            } else {
                1
            };
        }
    };
    if let Some(broker) = &running.broker {
        println!("embedded broker listening on {}", broker.local_addr());
    }
    let watched = status::Watched::new(&running);
    let limits = config.status.limits();
    match status::serve(status_listener, auth, limits, watched, stop.subscribe()) {
        Ok((addr, _task)) => println!("status page on http://{addr}/"),
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    }
    let mut service = notify::Service::from_env();
    let embedded_broker = running.broker.as_ref().map(|b| b.local_addr());
    service.ready(&notify::ready_status(&config, embedded_broker));
    while signals.next().await == Asked::Reload {
        tracing::info!("SIGHUP: reloading mappings and scripts");
        service.reloading();
        let status = match running.reload(config_path).await {
            Ok(outcome) => outcome.summary(),
            Err(errors) => format!(
                "reload refused ({} error(s)), running mappings kept: {}",
                errors.len(),
                errors.first().map(String::as_str).unwrap_or("")
            ),
        };
        service.reloaded(&status);
    }
    service.stopping().await;
    let _ = stop.send(true);
    // The sources stop; what they already read goes through the mappings to the
    // outputs, which then finish (the upstream one says `offline`). Bounded wait.
    if tokio::time::timeout(DRAIN, running.outputs_finished())
        .await
        .is_err()
    {
        eprintln!("mqgate: outputs still busy after {DRAIN:?}; stopping anyway");
    }
    if let Some(broker) = running.broker {
        broker.shutdown().await;
    }
    0
}
