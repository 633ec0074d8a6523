//! `mqgate run --config FILE`: run the gateway until SIGINT/SIGTERM.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{load_config, wait_for_signal};
use crate::pipeline;

pub async fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (stop, shutdown) = watch::channel(false);
    let running = match pipeline::start(&config, None, None, None, shutdown).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqgate: {e:#}");
            return 1;
        }
    };
    if let Some(broker) = &running.broker {
        println!("embedded broker listening on {}", broker.local_addr());
    }
    wait_for_signal().await;
    let _ = stop.send(true);
    // Let the upstream output say `offline` and the sources close their ports.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(broker) = running.broker {
        broker.shutdown().await;
    }
    0
}
