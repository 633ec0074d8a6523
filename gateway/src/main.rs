//! mqgate command line: parse arguments, set up logging, run a command, exit with its code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mqgate::commands;
use mqgate::source::replay::Speed;

/// IoT gateway: serial and LoRa frames to MQTT through Rhai mappings.
#[derive(Debug, Parser)]
#[command(name = "mqgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway until SIGINT or SIGTERM.
    Run {
        /// The gateway file (mqgate.yaml); mappings and scripts are found from it.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the gateway file and every mapping, and compile every script.
    Check {
        /// The gateway file (mqgate.yaml); mappings and scripts are found from it.
        #[arg(long)]
        config: PathBuf,
    },
    /// Play a capture through one source's framer and mapping.
    Replay {
        /// The gateway file (mqgate.yaml); mappings and scripts are found from it.
        #[arg(long)]
        config: PathBuf,
        /// The source whose framing and mapping to use.
        #[arg(long)]
        source: String,
        /// Playback speed: 1 is the recorded timing, 10 ten times faster.
        #[arg(long, conflicts_with = "fast")]
        speed: Option<f64>,
        /// As fast as possible.
        #[arg(long)]
        fast: bool,
        /// Print each message as a JSON line instead of publishing it.
        #[arg(long)]
        dry_run: bool,
        /// A capture file, or a raw byte file.
        capture: PathBuf,
    },
    /// Run one script on one frame and print the messages as JSON lines.
    Map {
        /// The Rhai script with `fn map(frame)`, or a JavaScript codec (`.js`) with
        /// `decodeUplink(input)` (its `fPort` from `--meta fport=N`).
        #[arg(long, required_unless_present = "mapping", conflicts_with = "mapping")]
        script: Option<PathBuf>,
        /// A mapping file instead: its script, topic template, qos, retain and filter,
        /// so that the output is what `mqgate run` would publish.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The frame's bytes in hex.
        #[arg(long)]
        hex: String,
        /// Frame metadata, e.g. `--meta rssi=-71 --meta fport=2`.
        #[arg(long, value_parser = parse_meta)]
        meta: Vec<(String, String)>,
        /// The source id the frame seems to come from [default: the mapping's source, or `map`].
        #[arg(long)]
        source: Option<String>,
        /// Topic template for messages that do not set their topic [default: sensors/{source}].
        #[arg(long, conflicts_with = "mapping")]
        topic: Option<String>,
    },
    /// Run a commands script's `encode(command)` on one command and print what it
    /// would send, one JSON line per part.
    Encode {
        /// The Rhai script with `fn encode(command)`.
        #[arg(long, required_unless_present = "mapping", conflicts_with = "mapping")]
        script: Option<PathBuf>,
        /// A mapping file instead: the encoder of its `commands:` section.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        payload: PayloadArgs,
        /// The topic the command seems to come on [default: cmd/{source}/send].
        #[arg(long)]
        topic: Option<String>,
        /// The source id [default: the mapping's source, or `encode`].
        #[arg(long)]
        source: Option<String>,
    },
    /// Send one command through a source's script and its device, and print the
    /// result (the device must not be in use by a running gateway).
    Send {
        /// The gateway file (mqgate.yaml).
        #[arg(long)]
        config: PathBuf,
        /// The source whose device gets the command.
        #[arg(long)]
        source: String,
        #[command(flatten)]
        payload: PayloadArgs,
        /// The topic the command seems to come on [default: cmd/{source}/send].
        #[arg(long)]
        topic: Option<String>,
    },
    /// Record a serial port's output into a capture file.
    Capture {
        /// The serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...
        #[arg(long)]
        port: String,
        /// Its speed in baud, e.g. 9600.
        #[arg(long)]
        baud: u32,
        /// The capture file to write (timestamped chunks, for `replay`).
        #[arg(long)]
        out: PathBuf,
        /// Data bits: 5, 6, 7 or 8.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(5..=8))]
        data_bits: u8,
        /// Parity.
        #[arg(long, value_enum, default_value = "none")]
        parity: commands::capture::ParityArg,
        /// Stop bits: 1 or 2.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        stop_bits: u8,
    },
}

/// A command's payload: exactly one of `--hex`, `--text`, `--json`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct PayloadArgs {
    /// The payload's bytes in hex (spaces and `:` allowed).
    #[arg(long)]
    hex: Option<String>,
    /// The payload as text.
    #[arg(long)]
    text: Option<String>,
    /// The payload as JSON (checked).
    #[arg(long)]
    json: Option<String>,
}

impl PayloadArgs {
    fn get(&self) -> commands::encode::Payload {
        use commands::encode::Payload;
        match (&self.hex, &self.text, &self.json) {
            (Some(h), _, _) => Payload::Hex(h.clone()),
            (_, Some(t), _) => Payload::Text(t.clone()),
            (_, _, Some(j)) => Payload::Json(j.clone()),
            // clap requires one of the three.
            (None, None, None) => Payload::Text(String::new()),
        }
    }
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not key=value"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mqgate::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match &cli.command {
            Command::Run { config } => commands::run::run(config).await,
            Command::Check { config } => commands::check::run(config),
            Command::Replay {
                config,
                source,
                speed,
                fast,
                dry_run,
                capture,
            } => {
                let speed = if *fast {
                    Speed::Fast
                } else {
                    Speed::Times(speed.unwrap_or(1.0))
                };
                let args = commands::replay::ReplayArgs {
                    config,
                    source,
                    capture,
                    speed,
                    dry_run: *dry_run,
                };
                commands::replay::run(&args).await
            }
            Command::Map {
                script,
                mapping,
                hex,
                meta,
                source,
                topic,
            } => commands::map::run(&commands::map::MapArgs {
                script: script.as_deref(),
                mapping: mapping.as_deref(),
                hex,
                meta,
                source: source.as_deref(),
                topic: topic.as_deref(),
            }),
            Command::Encode {
                script,
                mapping,
                payload,
                topic,
                source,
            } => commands::encode::run(&commands::encode::EncodeArgs {
                script: script.as_deref(),
                mapping: mapping.as_deref(),
                payload: &payload.get(),
                topic: topic.as_deref(),
                source: source.as_deref(),
            }),
            Command::Send {
                config,
                source,
                payload,
                topic,
            } => {
                commands::send::run(&commands::send::SendArgs {
                    config,
                    source,
                    payload: &payload.get(),
                    topic: topic.as_deref(),
                })
                .await
            }
            Command::Capture {
                port,
                baud,
                out,
                data_bits,
                parity,
                stop_bits,
            } => {
                commands::capture::run(&commands::capture::CaptureArgs {
                    port,
                    baud: *baud,
                    out,
                    data_bits: *data_bits,
                    parity: *parity,
                    stop_bits: *stop_bits,
                })
                .await
            }
        }
    });
    ExitCode::from(code)
}
