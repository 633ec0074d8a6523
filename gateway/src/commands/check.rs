//! `mqgate check --config FILE`: validate the gateway file and every mapping file,
//! and compile every script. All errors are printed; the exit code is non-zero on any.

use std::path::Path;

use super::{load_config, EXIT_CONFIG};
use crate::pipeline::build_mappers;

pub fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match build_mappers(&config) {
        Ok(mappers) => {
            println!(
                "{}: ok ({} sources, {} mappings, {} scripts compiled)",
                config_path.display(),
                config.sources.len(),
                config.mappings.len(),
                config
                    .mappings
                    .iter()
                    .filter(|m| m.script.is_some())
                    .count()
            );
            drop(mappers);
            0
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("mqgate: {} error(s) in the scripts", errors.len());
            EXIT_CONFIG
        }
    }
}
