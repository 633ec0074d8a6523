//! broker-lite command line: run the broker from flags and an optional YAML file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use broker_lite::{Broker, Config};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A small, complete MQTT 3.1.1 broker.
#[derive(Debug, Parser)]
#[command(name = "broker-lite", version)]
struct Args {
    /// Address of the MQTT listener; overrides `listen` in the config file.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// YAML configuration file (see broker.example.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a user to a password file, or change its password: asked twice on a
    /// terminal, else one line read from stdin.
    Passwd {
        /// Delete the user instead.
        #[arg(long)]
        delete: bool,
        /// The password file (created with mode 0600 when missing).
        file: PathBuf,
        user: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Passwd { delete, file, user }) = &args.command {
        return broker_lite::auth::passwd_command(file, user, *delete);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!(
                    "broker-lite: {} error(s) in the configuration",
                    errors.len()
                );
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("broker-lite: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let broker = match Broker::start(config).await {
        Ok(b) => b,
        // Each error names its cause: the address that could not be bound, or the
        // certificate, password, ACL or persistence file.
        Err(e) => {
            eprintln!("broker-lite: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the bound address (useful with port 0) from stdout:
    // the first listener's on the first line, then the others'.
    println!("listening on {}", broker.local_addr());
    for addr in broker.local_addrs().iter().skip(1) {
        println!("also listening on {addr}");
    }
    serve_signals(&broker).await;
    broker.shutdown().await;
    ExitCode::SUCCESS
}

/// Until SIGTERM or Ctrl-C: SIGHUP reads the password, ACL and TLS files again
/// (see `Broker::reload`; a refused reload is logged and changes nothing).
async fn serve_signals(broker: &Broker) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                // The outcome is logged by `reload`.
                let _ = broker.reload().await;
            }
        }
    }
}
