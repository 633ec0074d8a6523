//! mqgate command line.
//!
//! The gateway pipeline (sources, framers, Rhai mappings, store, outputs) is not
//! built yet; for now the binary only reports its version and what it embeds.

use clap::Parser;

/// IoT gateway: serial and LoRa frames to MQTT through Rhai mappings.
#[derive(Debug, Parser)]
#[command(name = "mqgate", version)]
struct Args {}

fn main() {
    let _ = Args::parse();
    println!(
        "mqgate {} (embeds broker-lite; the gateway pipeline is not built yet, run `broker-lite`)",
        env!("CARGO_PKG_VERSION")
    );
}
