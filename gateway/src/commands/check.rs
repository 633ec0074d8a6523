//! `mqgate check --config FILE`: validate the gateway file and every mapping file,
//! and compile every script (commands' `encode` scripts too). All errors are printed, those of the scripts too when
//! the configuration has errors of its own; the exit code is non-zero on any. A
//! serial device that is not there is a warning only.

use std::path::Path;

use super::EXIT_CONFIG;
use crate::config::{GatewayConfig, SourceKind};

pub fn run(config_path: &Path) -> u8 {
    let (loaded, mappings) = GatewayConfig::load_parts(config_path);
    let mut errors: Vec<String> = match &loaded {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    let mut scripts = 0;
    for m in &mappings {
        if m.script.is_some() {
            scripts += 1;
        }
        match crate::pipeline::build::compile(m) {
            // A template error that loading the file reported already (with its line) is
            // not said twice; were loading ever to let one through, it is said here.
            Err(e) if !(e.reported_by_config() && loaded.is_err()) => errors.push(e.to_string()),
            _ => {}
        }
        if let Some(c) = &m.commands {
            if c.script.is_some() {
                scripts += 1;
            }
            if let Err(e) = crate::downlink::encoder(m, c) {
                errors.push(e);
            }
        }
    }
    if let Ok(config) = &loaded {
        if let Err(problems) = crate::downlink::check(config) {
            errors.extend(problems);
        }
        // The registry's decoders compile alike for every source that takes them.
        if let Err(problems) = crate::pipeline::build::device_mappers(config, "check") {
            errors.extend(problems);
        }
    }
    match loaded {
        Ok(config) if errors.is_empty() => {
            for warning in missing_devices(&config)
                .into_iter()
                .chain(slow_commands(&config))
                .chain(config.warnings.iter().cloned())
            {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} sources, {} mappings, {scripts} scripts compiled)",
                config_path.display(),
                config.sources.len(),
                config.mappings.len(),
            );
            0
        }
        _ => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("mqgate: {} error(s)", errors.len());
            EXIT_CONFIG
        }
    }
}

/// Commands that may time out behind the device's own traffic: a serial
/// source's command waits for the answer (or timeout) of the query before it,
/// and a Modbus write may take every retry of its timeout. Not an error (the
/// wait is the worst case), but a `failed` result users would not expect.
fn slow_commands(config: &GatewayConfig) -> Vec<String> {
    let mut out = Vec::new();
    for m in &config.mappings {
        let Some(c) = &m.commands else { continue };
        let Some(source) = config.sources.iter().find(|s| s.id == m.source) else {
            continue;
        };
        let (worst_ms, what) = match &source.kind {
            SourceKind::Serial(s) => {
                match s.poll.iter().map(|p| p.timeout_ms.unwrap_or(1000)).max() {
                    Some(t) => (
                        t,
                        "the longest `poll:` timeout_ms, which a command may wait behind",
                    ),
                    None => continue,
                }
            }
            SourceKind::Modbus(bus) => (
                bus.polling.timeout.as_millis() as u64 * (u64::from(bus.polling.retries) + 1),
                "timeout_ms × (retries + 1), what one write may take",
            ),
            _ => continue,
        };
        if c.send_timeout_ms <= worst_ms {
            out.push(format!(
                "{}: commands.send_timeout_ms ({}) is not above {what} ({worst_ms} ms) of source {}: \
                 such commands may fail with a timeout",
                m.path.display(),
                c.send_timeout_ms,
                source.id
            ));
        }
    }
    out
}

/// Serial devices that are not there now: not an error (a device may be plugged in
/// later, and `run` waits for it), but easy to get wrong with `/dev/serial/by-id/`.
fn missing_devices(config: &GatewayConfig) -> Vec<String> {
    config
        .sources
        .iter()
        .filter_map(|s| {
            let path = match &s.kind {
                SourceKind::Serial(c) => Some(c.path.as_str()),
                SourceKind::Rn2483(c) => c.path.as_deref(),
                SourceKind::Rak3172(c) => c.path.as_deref(),
                SourceKind::Modbus(m) => match &m.bus {
                    crate::config::ModbusBus::Rtu(c) => Some(c.path.as_str()),
                    crate::config::ModbusBus::Tcp { .. } => None,
                },
                SourceKind::Replay(_) | SourceKind::SemtechUdp(_) | SourceKind::Mqtt(_) => None,
            }?;
            (!Path::new(path).exists()).then(|| {
                format!(
                    "source {}: serial device {path} does not exist (yet); `mqgate run` waits \
                     for it and opens it once it appears",
                    s.id
                )
            })
        })
        .collect()
}
