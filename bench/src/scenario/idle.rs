//! Idle connections: the broker's resident memory per connected, silent client.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mqtt_proto::codec::{encode, Packet};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::{rate, Target};
use crate::client::Client;
use crate::report::{process_rss, raise_fd_limit, Json};

/// Open `count` connections (CONNECT, wait for CONNACK), at most `concurrency`
/// handshakes at a time; read the broker's VmRSS before and after; then check
/// with PINGREQ that the broker still serves every connection.
pub(crate) async fn idle(
    t: &Target,
    count: u32,
    concurrency: u32,
    keep_alive: u16,
) -> Result<Json> {
    let Some(pid) = t.pid else {
        bail!("the idle scenario needs --pid of the broker");
    };
    let fd_limit = raise_fd_limit();
    if fd_limit < count as u64 + 64 {
        bail!("open-file limit {fd_limit} is too low for {count} connections (ulimit -n)");
    }
    let before = process_rss(pid)?;
    let start = Instant::now();
    let mut clients = Vec::with_capacity(count as usize);
    let mut pending = JoinSet::new();
    let mut next = 0;
    while (clients.len() as u32) < count {
        while next < count && (pending.len() as u32) < concurrency.max(1) {
            let (addr, id) = (t.addr, t.client_id(&format!("idle{next}")));
            pending.spawn(async move { Client::connect(addr, &id, keep_alive).await });
            next += 1;
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        let client = joined
            .context("connect task")?
            .with_context(|| format!("connection {} of {count}", clients.len() + 1))?;
        clients.push(client);
    }
    let connect_time = start.elapsed();
    let after = settled_rss(pid).await?;

    let mut alive = 0u64;
    for c in clients.iter_mut() {
        encode(&Packet::PingReq, &mut c.wbuf);
        c.flush().await?;
    }
    for c in clients.iter_mut() {
        if let Ok(Ok(Packet::PingResp)) = timeout(Duration::from_secs(5), c.next_packet()).await {
            alive += 1;
        }
    }
    let grown = after as f64 - before as f64;
    Ok(Json::new()
        .int("connections", clients.len() as u64)
        .int("alive_after", alive)
        .int("rss_before", before)
        .int("rss_after", after)
        .num("bytes_per_connection", grown / count.max(1) as f64)
        .num("connect_rate", rate(clients.len() as u64, connect_time)))
}

/// VmRSS once two readings 200 ms apart agree within 1 %, or after 3 s.
async fn settled_rss(pid: u32) -> Result<u64> {
    let mut last = process_rss(pid)?;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = process_rss(pid)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
