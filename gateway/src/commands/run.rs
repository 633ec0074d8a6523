//! `mqgate run --config FILE`: run the gateway until SIGINT/SIGTERM (SIGHUP is logged).

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{load_config, wait_for_signal};

/// Longest wait at shutdown for the outputs to hand over what is in flight.
const DRAIN: Duration = Duration::from_secs(5);
use crate::{notify, pipeline, status};

pub async fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Signals are caught from here on, before anything says the gateway is ready.
    let signals = wait_for_signal();
    let (stop, shutdown) = watch::channel(false);
    let mut running = match pipeline::start(&config, None, None, None, shutdown).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    };
    if let Some(broker) = &running.broker {
        println!("embedded broker listening on {}", broker.local_addr());
    }
    let watched = status::Watched::new(&running);
    match status::start(config.status.listen, watched, stop.subscribe()).await {
        Ok((addr, _task)) => println!("status page on http://{addr}/"),
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    }
    let mut service = notify::Service::from_env();
    service.ready(&notify::ready_status(&config, &running));
    signals.await;
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
