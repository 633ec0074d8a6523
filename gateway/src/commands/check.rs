//! `mqgate check --config FILE`: validate the gateway file and every mapping file,
//! and compile every script. All errors are printed, those of the scripts too when
//! the configuration has errors of its own; the exit code is non-zero on any.

use std::path::Path;

use super::EXIT_CONFIG;
use crate::config::GatewayConfig;
use crate::pipeline::build;

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
        if let Err(e) = build::compile(m) {
            errors.push(e);
        }
    }
    match loaded {
        Ok(config) if errors.is_empty() => {
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
