//! Reloading mappings and scripts while the gateway runs (SIGHUP, `systemctl
//! reload`).
//!
//! The gateway file and every mapping file are read and every script compiled
//! first; only when all of that succeeds are the new mappers put in, all at once.
//! On any error nothing changes and the errors are reported. Frames already
//! waiting for a mapping thread stay queued and are mapped by the new mapper:
//! nothing buffered is lost. Sources, outputs, the store and the status server
//! are not restarted; changes to them are reported as needing a restart.
//!
//! The embedded broker's password, ACL and TLS files are read again in the same
//! step (`broker_lite::Broker::prepare_reload`): an error in them refuses the
//! whole reload, and they are put in force together with the mappings.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;

use super::{build, discovery, Running};
use crate::config::GatewayConfig;
use crate::message::Message;

/// Reloads so far, for the status page.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    /// Reloads that put new mappings in.
    pub succeeded: AtomicU64,
    /// Reloads refused because of an error (the running mappings stayed).
    pub failed: AtomicU64,
    last: Mutex<Option<LastReload>>,
}

/// How the last reload went.
#[derive(Debug, Clone, PartialEq)]
pub struct LastReload {
    pub at: SystemTime,
    pub ok: bool,
    /// What was reloaded, or every error found, one per line.
    pub message: String,
}

impl ReloadStatus {
    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, ok: bool, message: String) {
        let counter = if ok { &self.succeeded } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastReload {
            at: SystemTime::now(),
            ok,
            message,
        });
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadOutcome {
    /// Sources whose mapping was replaced (every running source).
    pub mappings: usize,
    /// Home Assistant discovery messages published (new, changed or removed entities).
    pub discovery: usize,
    /// Parts of the configuration that changed but take effect only at a restart.
    pub need_restart: Vec<String>,
    /// What the embedded broker put in force (users, ACL rules, TLS listeners).
    pub broker: Option<String>,
}

impl ReloadOutcome {
    pub fn summary(&self) -> String {
        let mut text = format!("reloaded the mappings of {} source(s)", self.mappings);
        if self.discovery > 0 {
            text.push_str(&format!(
                "; {} Home Assistant discovery message(s) published",
                self.discovery
            ));
        }
        if let Some(broker) = &self.broker {
            text.push_str(&format!("; embedded broker {broker}"));
        }
        if !self.need_restart.is_empty() {
            text.push_str(&format!(
                "; changed but not applied until a restart: {}",
                self.need_restart.join(", ")
            ));
        }
        text
    }
}

impl Running {
    /// Read the configuration at `path` again and put in its mappings. On error the
    /// running mappings stay, and every error is returned (each naming its file).
    /// Either way the outcome is logged and kept for the status page.
    pub async fn reload(&mut self, path: &Path) -> Result<ReloadOutcome, Vec<String>> {
        let result = self.try_reload(path).await;
        match &result {
            Ok(outcome) => {
                let summary = outcome.summary();
                if outcome.need_restart.is_empty() {
                    tracing::info!("{summary}");
                } else {
                    // Part of what the user changed is not in force: worth a warning.
                    tracing::warn!("{summary}");
                }
                self.reloads.record(true, summary);
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!("reload: {e}");
                }
                tracing::error!(
                    "reload refused ({} error(s)); the running mappings stay",
                    errors.len()
                );
                self.reloads.record(false, errors.join("\n"));
            }
        }
        result
    }

    async fn try_reload(&mut self, path: &Path) -> Result<ReloadOutcome, Vec<String>> {
        let owned = path.to_path_buf();
        // Reading files and compiling scripts is blocking work.
        let (new, mappers) = tokio::task::spawn_blocking(move || {
            let new = GatewayConfig::load(&owned)
                .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
            let mappers = build::build_mappers(&new)?;
            Ok::<_, Vec<String>>((new, mappers))
        })
        .await
        .map_err(|e| vec![format!("reload: {e}")])??;

        // The embedded broker's files, read and checked before anything changes.
        let broker_files = match &self.broker {
            Some(broker) => Some(broker.prepare_reload().await.map_err(|e| {
                e.errors
                    .into_iter()
                    .map(|why| format!("embedded broker: {why}"))
                    .collect::<Vec<_>>()
            })?),
            None => None,
        };
        let need_restart = changed_sections(&self.config, &new);
        // Every mapper is ready: now put them in, all at once.
        let mut replaced = 0;
        for stats in &self.mappings {
            let Some(slot) = self.slots.get(&stats.source) else {
                continue;
            };
            let Some(mapper) = mappers.get(&stats.source) else {
                continue;
            };
            *slot.write().unwrap_or_else(|e| e.into_inner()) = mapper.clone();
            stats.set_files(build::files_of(&new, &stats.source));
            stats.clear_last_error();
            replaced += 1;
        }
        let broker = match (&self.broker, broker_files) {
            (Some(b), Some(files)) => Some(b.apply_reload(files).await.to_string()),
            _ => None,
        };
        let published = discovery_changes(&self.config, &new);
        let discovery = published.len();
        if let (Some(store), false) = (&self.store, published.is_empty()) {
            if let Err(e) = store.append(published).await {
                // The mappings are in; only the announcement failed.
                tracing::error!("reload: Home Assistant discovery messages: {e}");
            }
        }
        if new.log != self.config.log {
            crate::logging::set_level(&new.log.level);
        }
        // Keep what was applied; the parts that need a restart stay as they run.
        self.config.log = new.log;
        self.config.mappings = new.mappings;
        self.config.mappings_dir = new.mappings_dir;
        Ok(ReloadOutcome {
            mappings: replaced,
            discovery,
            need_restart,
            broker,
        })
    }
}

/// The sections of the gateway file that differ and are not reloaded.
fn changed_sections(old: &GatewayConfig, new: &GatewayConfig) -> Vec<String> {
    let mut changed = Vec::new();
    let mut note = |differs: bool, name: &str| {
        if differs {
            changed.push(name.to_string());
        }
    };
    note(old.gateway != new.gateway, "gateway");
    note(old.broker != new.broker, "broker");
    note(old.upstream != new.upstream, "upstream");
    note(old.store != new.store, "store");
    note(old.status != new.status, "status");
    note(old.sources != new.sources, "sources");
    changed
}

/// Discovery messages to publish after a reload: the configs that are new or
/// changed, and an empty retained message for each entity that went away (which
/// is how Home Assistant is told to remove it).
fn discovery_changes(old: &GatewayConfig, new: &GatewayConfig) -> Vec<Message> {
    let before = discovery::messages(old);
    let after = discovery::messages(new);
    let kept: HashSet<(&str, &[u8])> = before
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_ref()))
        .collect();
    let topics_after: HashSet<&str> = after.iter().map(|m| m.topic.as_str()).collect();
    let mut out: Vec<Message> = before
        .iter()
        .filter(|m| !topics_after.contains(m.topic.as_str()))
        .map(|m| Message {
            topic: m.topic.clone(),
            payload: Bytes::new(),
            qos: m.qos,
            retain: true,
        })
        .collect();
    out.extend(
        after
            .iter()
            .filter(|m| !kept.contains(&(m.topic.as_str(), m.payload.as_ref())))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_needs_a_restart() {
        let mut o = ReloadOutcome {
            mappings: 3,
            discovery: 0,
            need_restart: vec!["sources".into()],
            broker: None,
        };
        assert_eq!(
            o.summary(),
            "reloaded the mappings of 3 source(s); changed but not applied until a restart: sources"
        );
        o.broker = Some("reloaded: 2 user(s), no ACL file; 0 TLS listener(s)".into());
        assert_eq!(
            o.summary(),
            "reloaded the mappings of 3 source(s); embedded broker reloaded: 2 user(s), \
             no ACL file; 0 TLS listener(s); changed but not applied until a restart: sources"
        );
    }

    #[test]
    fn the_status_keeps_the_last_outcome_and_counts_both_kinds() {
        let s = ReloadStatus::default();
        s.record(false, "a.yaml:3: bad".into());
        s.record(true, "ok".into());
        assert_eq!(s.succeeded.load(Ordering::Relaxed), 1);
        assert_eq!(s.failed.load(Ordering::Relaxed), 1);
        let last = s.last().unwrap();
        assert!(last.ok);
        assert_eq!(last.message, "ok");
    }
}
