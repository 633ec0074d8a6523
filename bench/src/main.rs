//! mqbench: a load tool for MQTT 3.1.1 brokers. Each subcommand runs one scenario
//! against a broker on a loopback address and prints one JSON line of results.

mod client;
mod payload;
mod publisher;
mod report;
mod scenario;
mod subscriber;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use mqtt_proto::codec::QoS;

use report::Json;
use scenario::{measure, Target};

#[derive(Parser, Debug)]
#[command(name = "mqbench", about = "Load tool for MQTT 3.1.1 brokers")]
struct Cli {
    /// Broker address (loopback only).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Broker port.
    #[arg(long, global = true, default_value_t = 1883)]
    port: u16,
    /// Broker process id: its CPU time (and, for `idle`, memory) is reported.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Broker name written into the result line.
    #[arg(long, global = true, default_value = "broker")]
    label: String,
    /// Seconds after which a scenario run counts as failed.
    #[arg(long, global = true, default_value_t = 120)]
    timeout: u64,
    /// QoS 1/2 messages each publisher keeps in flight.
    #[arg(long, global = true, default_value_t = 256)]
    window: usize,
    /// Runtime worker threads; 1 runs everything on the main thread.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N publishers → 1 subscriber on a wildcard.
    Fanin {
        #[arg(long, default_value_t = 4)]
        pubs: u32,
        #[arg(long, default_value_t = 0, value_parser = parse_qos)]
        qos: u8,
        /// Messages in total, over all publishers.
        #[arg(long, default_value_t = 100_000)]
        messages: u64,
    },
    /// 1 publisher → N subscribers on one topic.
    Fanout {
        #[arg(long, default_value_t = 8)]
        subs: u32,
        #[arg(long, default_value_t = 0, value_parser = parse_qos)]
        qos: u8,
        /// Messages published (each subscriber should receive all of them).
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
    },
    /// Paced publisher, end-to-end latency percentiles.
    Latency {
        /// Messages per second, all publishers together.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Publishers sharing the rate, each on its own topic.
        #[arg(long, default_value_t = 1)]
        publishers: u32,
        #[arg(long, default_value_t = 1, value_parser = parse_qos)]
        qos: u8,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Seconds at the start left out of the percentiles.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// Many silent connections; broker memory per connection (needs --pid).
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 200)]
        concurrency: u32,
        /// Keep-alive sent in CONNECT, seconds (0 = off).
        #[arg(long, default_value_t = 0)]
        keep_alive: u16,
    },
    /// Retained messages on distinct topics, then one wildcard subscriber.
    Retained {
        #[arg(long, default_value_t = 10_000)]
        count: u64,
    },
}

fn parse_qos(s: &str) -> Result<u8, String> {
    match s {
        "0" | "1" | "2" => Ok(s.as_bytes()[0] - b'0'),
        _ => Err(format!("QoS must be 0, 1 or 2, not {s:?}")),
    }
}

fn qos(v: u8) -> QoS {
    QoS::from_u8(v).unwrap_or_default()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mqbench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    if !cli.host.is_loopback() {
        bail!(
            "{} is not a loopback address; mqbench only loads local brokers",
            cli.host
        );
    }
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let target = Target {
        addr: SocketAddr::new(cli.host, cli.port),
        pid: cli.pid,
        label: cli.label.clone(),
        timeout: Duration::from_secs(cli.timeout),
        window: cli.window,
        run_id: format!("mqb{}x{}", std::process::id(), nanos % 1_000_000_000),
    };
    let (line, ok) = runtime.block_on(dispatch(&target, &cli.scenario));
    println!("{}", line.line());
    // Spawned tasks of a timed-out run may still hold connections; do not wait for them.
    runtime.shutdown_background();
    Ok(ok)
}

async fn dispatch(t: &Target, s: &Scenario) -> (Json, bool) {
    let common = Json::new().int("window", t.window as u64);
    match *s {
        Scenario::Fanin {
            pubs,
            qos: q,
            messages,
        } => {
            let params = common
                .int("qos", q as u64)
                .int("pubs", pubs as u64)
                .int("messages", messages);
            measure(
                "fanin",
                t,
                params,
                scenario::fanin(t, pubs, qos(q), messages),
            )
            .await
        }
        Scenario::Fanout {
            subs,
            qos: q,
            messages,
        } => {
            let params = common
                .int("qos", q as u64)
                .int("subs", subs as u64)
                .int("messages", messages);
            measure(
                "fanout",
                t,
                params,
                scenario::fanout(t, subs, qos(q), messages),
            )
            .await
        }
        Scenario::Latency {
            rate,
            publishers,
            qos: q,
            seconds,
            warmup,
        } => {
            let params = common
                .int("qos", q as u64)
                .int("rate", rate)
                .int("publishers", publishers as u64)
                .num("seconds", seconds)
                .num("warmup", warmup);
            measure(
                "latency",
                t,
                params,
                scenario::latency(t, publishers, rate, qos(q), seconds, warmup),
            )
            .await
        }
        Scenario::Idle {
            connections,
            concurrency,
            keep_alive,
        } => {
            let params = Json::new().int("keep_alive", keep_alive as u64);
            measure(
                "idle",
                t,
                params,
                scenario::idle(t, connections, concurrency, keep_alive),
            )
            .await
        }
        Scenario::Retained { count } => {
            let params = common.int("qos", 1).int("count", count);
            measure("retained", t, params, scenario::retained(t, count)).await
        }
    }
}
